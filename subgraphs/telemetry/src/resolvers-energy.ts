import type { Resolvers } from './generated/graphql.js';

/** Thin: the figures are computed by EnergyService (`ctx.energy`), in SQL. */
export const energyResolvers: Resolvers = {
  Query: {
    energy: (_, args, ctx) => ctx.energy.energy(args),
  },
};
