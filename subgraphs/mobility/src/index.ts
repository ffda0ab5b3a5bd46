import { readFileSync } from 'node:fs';
import { gql } from 'graphql-tag';
import type { SubgraphService } from '@connecte/shared/server';
import { createMobilityContext, mobilityResourcesFor, type MobilityContext } from './context.js';
import { handleGtfsRequest } from './gtfs-routes.js';
import { resolvers } from './resolvers.js';

/** The SDL stays a plain file: the gateway composes the supergraph from it, codegen types the resolvers from it. */
export const typeDefs = gql(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/** The bus network (GTFS), live vehicles, transit-signal priority, parking availability. */
export const mobilitySubgraph: SubgraphService<MobilityContext> = {
  name: 'mobility',
  typeDefs,
  resolvers,
  extendContext: createMobilityContext,
  // In the registry's order: asset-directory, network, vehicle-assignments, readings, signal-priority.
  workers: (resources) => mobilityResourcesFor(resources.db, resources).workers(),
  routes: {
    '/mobility': (req, res, resources) => handleGtfsRequest(req, res, mobilityResourcesFor(resources.db, resources)),
  },
};
