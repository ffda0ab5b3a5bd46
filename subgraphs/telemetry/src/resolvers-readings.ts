import type { Resolvers } from './generated/graphql.js';

/** Thin: the rules (who reads what, ranges, batching) live in ReadingService (`ctx.readings`). */
export const readingResolvers: Resolvers = {
  Equipment: {
    latest: (equipment, { metrics }, ctx) => ctx.readings.latest(equipment.id, metrics),
    readings: (equipment, args, ctx) => ctx.readings.readings(equipment.id, args),
  },
  Subscription: {
    readingReceived: {
      subscribe: (_, args, ctx) => ctx.readings.received(args),
    },
  },
};
