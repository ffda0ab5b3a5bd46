import { readFileSync } from 'node:fs';
import { gql } from 'graphql-tag';
import type { SubgraphService } from '@connecte/shared/server';
import { createTicketsContext, ticketResourcesFor, type TicketsContext } from './context.js';
import { resolvers } from './resolvers.js';
import { handleOpen311Request } from './open311.js';
import { handlePhotoRequest } from './photo-routes.js';

/** The SDL stays a plain file: the gateway composes the supergraph from it, codegen types the resolvers from it. */
export const typeDefs = gql(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/** Citizen reports, their lifecycle and photos, interventions, Open311, the GRC webhook, personal data. */
export const ticketsSubgraph: SubgraphService<TicketsContext> = {
  name: 'tickets',
  typeDefs,
  resolvers,
  extendContext: createTicketsContext,
  // In the registry's order: known-alarms, grc-outbox, retention.
  workers: (resources) => ticketResourcesFor(resources.db, resources).workers(),
  routes: {
    '/open311/v2': (req, res, resources) => handleOpen311Request(req, res, ticketResourcesFor(resources.db, resources)),
    '/tickets': (req, res, resources) => handlePhotoRequest(req, res, ticketResourcesFor(resources.db, resources)),
  },
};
