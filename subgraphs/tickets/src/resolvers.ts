import { DateTimeScalar } from '@connecte/shared/scalars';
import type { Resolvers } from './generated/graphql.js';
import { interventionResolvers } from './resolvers-interventions.js';
import { open311Resolvers } from './resolvers-open311.js';
import { personalDataResolvers } from './resolvers-personal-data.js';
import { photoResolvers } from './resolvers-photos.js';
import { ticketResolvers } from './resolvers-tickets.js';

/** Each area's resolvers (thin: the rules live in its service), merged type by type. */
function merge(...parts: Resolvers[]): Resolvers {
  const merged: Record<string, Record<string, unknown>> = {};
  for (const part of parts) {
    for (const [type, fields] of Object.entries(part)) {
      // A scalar (GraphQLScalarType) is taken whole: spreading it would lose its prototype.
      if (Object.getPrototypeOf(fields) !== Object.prototype) {
        if (type in merged) throw new Error(`tickets resolvers: ${type} is defined twice`);
        merged[type] = fields as Record<string, unknown>;
        continue;
      }
      const existing = merged[type];
      for (const field of Object.keys((fields ?? {}) as object)) {
        if (existing && field in existing) throw new Error(`tickets resolvers: ${type}.${field} is defined twice`);
      }
      merged[type] = { ...existing, ...(fields as object) };
    }
  }
  return merged as Resolvers;
}

export const resolvers: Resolvers = merge(
  { DateTime: DateTimeScalar },
  {
    Equipment: {
      // Tickets holds no row of an asset: a reference is its id, each field loads what it needs.
      __resolveReference: ({ id }) => ({ id }),
    },
  },
  ticketResolvers,
  interventionResolvers,
  photoResolvers,
  open311Resolvers,
  personalDataResolvers,
);
