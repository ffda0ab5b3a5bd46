import { DateScalar, DateTimeScalar } from '@connecte/shared/scalars';
import type { Resolvers } from './generated/graphql.js';
import { alarmResolvers } from './resolvers-alarms.js';
import { credentialResolvers } from './resolvers-credentials.js';
import { energyResolvers } from './resolvers-energy.js';
import { ingestResolvers } from './resolvers-ingest.js';
import { readingResolvers } from './resolvers-readings.js';

/** Each area's resolvers (thin: the rules live in its service), merged type by type. */
function merge(...parts: Resolvers[]): Resolvers {
  const merged: Record<string, Record<string, unknown>> = {};
  for (const part of parts) {
    for (const [type, fields] of Object.entries(part)) {
      // A scalar (GraphQLScalarType) is taken whole: spreading it would lose its prototype.
      if (Object.getPrototypeOf(fields) !== Object.prototype) {
        if (type in merged) throw new Error(`telemetry resolvers: ${type} is defined twice`);
        merged[type] = fields as Record<string, unknown>;
        continue;
      }
      const existing = merged[type];
      for (const field of Object.keys((fields ?? {}) as object)) {
        if (existing && field in existing) throw new Error(`telemetry resolvers: ${type}.${field} is defined twice`);
      }
      merged[type] = { ...existing, ...(fields as object) };
    }
  }
  return merged as Resolvers;
}

export const resolvers: Resolvers = merge(
  { Date: DateScalar, DateTime: DateTimeScalar },
  {
    Equipment: {
      // Telemetry holds no row of an asset: a reference is its id, each field loads what it needs.
      __resolveReference: ({ id }) => ({ id }),
    },
  },
  readingResolvers,
  alarmResolvers,
  energyResolvers,
  credentialResolvers,
  ingestResolvers,
);
