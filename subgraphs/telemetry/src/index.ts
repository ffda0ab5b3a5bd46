import { readFileSync } from 'node:fs';
import { gql } from 'graphql-tag';
import type { SubgraphService } from '@connecte/shared/server';
import { createTelemetryContext, telemetryResourcesFor, type TelemetryContext } from './context.js';
import { resolvers } from './resolvers.js';
import { handleIngestRequest } from './http-ingest.js';

/** The SDL stays a plain file: the gateway composes the supergraph from it, codegen types the resolvers from it. */
export const typeDefs = gql(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/** Readings over MQTT and HTTP, latest values, roll-ups, alarms, device credentials, energy and CO2. */
export const telemetrySubgraph: SubgraphService<TelemetryContext> = {
  name: 'telemetry',
  typeDefs,
  resolvers,
  extendContext: createTelemetryContext,
  // In the registry's order: device-directory, partitions, broker-auth, mqtt-ingest, alarms.
  workers: (resources) => telemetryResourcesFor(resources.db, resources).workers(),
  routes: {
    '/ingest': (req, res, resources) => handleIngestRequest(req, res, telemetryResourcesFor(resources.db, resources)),
  },
};
