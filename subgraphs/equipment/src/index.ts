import { readFileSync } from 'node:fs';
import { gql } from 'graphql-tag';
import type { SubgraphService } from '@connecte/shared/server';
import { alarmStatusWorker } from './alarm-status.js';
import { createEquipmentContext, type EquipmentContext } from './context.js';
import { resolvers } from './resolvers.js';

/** The SDL stays a plain file: the gateway composes the supergraph from it, codegen types the resolvers from it. */
export const typeDefs = gql(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/** Every physical asset: identity, owner, position, status, attributes, history; spatial search and writes. */
export const equipmentSubgraph: SubgraphService<EquipmentContext> = {
  name: 'equipment',
  typeDefs,
  resolvers,
  extendContext: createEquipmentContext,
  // FAULT / IN_SERVICE from telemetry's fault alarms (alarm-status.ts).
  workers: (resources) => [alarmStatusWorker(resources)],
};
