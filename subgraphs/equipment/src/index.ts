import { readFileSync } from 'node:fs';
import { gql } from 'graphql-tag';
import type { RequestContext, SubgraphService } from '@connecte/shared/server';
import { cameraCollectivitiesOf, EquipmentService } from './equipment-service.js';
import { EquipmentStore } from './equipment-store.js';
import { createLoaders, type EquipmentLoaders } from './loaders.js';
import { resolvers } from './resolvers.js';

/** The SDL stays a plain file: the gateway composes the supergraph from it. */
export const typeDefs = gql(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

export interface EquipmentContext extends RequestContext {
  equipment: EquipmentService;
  loaders: EquipmentLoaders;
}

export const equipmentService: SubgraphService<EquipmentContext> = {
  name: 'equipment',
  typeDefs,
  resolvers,
  extendContext(base) {
    const store = new EquipmentStore(base.db);
    const loaders = createLoaders(store, cameraCollectivitiesOf(base.viewer));
    return { ...base, loaders, equipment: new EquipmentService(base.viewer, store, base.db, loaders, base.log) };
  },
};
