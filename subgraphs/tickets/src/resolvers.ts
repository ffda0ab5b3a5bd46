import { mergeResolvers } from '@connecte/shared/resolver-merge';
import { DateTimeScalar } from '@connecte/shared/scalars';
import type { Resolvers } from './generated/graphql.js';
import { interventionResolvers } from './resolvers-interventions.js';
import { open311Resolvers } from './resolvers-open311.js';
import { personalDataResolvers } from './resolvers-personal-data.js';
import { photoResolvers } from './resolvers-photos.js';
import { ticketResolvers } from './resolvers-tickets.js';

export const resolvers: Resolvers = mergeResolvers<Resolvers>(
  'tickets',
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
