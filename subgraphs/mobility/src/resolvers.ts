import { mergeResolvers } from '@connecte/shared/resolver-merge';
import { DateScalar, DateTimeScalar } from '@connecte/shared/scalars';
import type { Resolvers } from './generated/graphql.js';
import { networkResolvers } from './resolvers-network.js';
import { parkingResolvers } from './resolvers-parking.js';
import { priorityResolvers } from './resolvers-priority.js';
import { vehicleResolvers } from './resolvers-vehicles.js';

export const resolvers: Resolvers = mergeResolvers<Resolvers>(
  'mobility',
  { Date: DateScalar, DateTime: DateTimeScalar },
  {
    Equipment: {
      // Mobility holds no row of an asset: a reference is its id, each field loads what it needs.
      __resolveReference: ({ id }) => ({ id }),
    },
  },
  networkResolvers,
  vehicleResolvers,
  priorityResolvers,
  parkingResolvers,
);
