import type { Database } from '@connecte/shared/db';
import type { RequestContext } from '@connecte/shared/server';
import { cameraCollectivitiesOf, EquipmentService } from './equipment-service.js';
import { EquipmentStore } from './equipment-store.js';
import { createLoaders, type EquipmentLoaders } from './loaders.js';

/** What the equipment resolvers receive: the request, its loaders and the rules for its caller. */
export interface EquipmentContext extends RequestContext {
  equipment: EquipmentService;
  loaders: EquipmentLoaders;
}

/** What lives as long as the database (so the process): the store. */
export interface EquipmentResources {
  store: EquipmentStore;
}

const resources = new WeakMap<Database, EquipmentResources>();

export function equipmentResourcesFor(db: Database): EquipmentResources {
  let found = resources.get(db);
  if (!found) {
    found = { store: new EquipmentStore(db) };
    resources.set(db, found);
  }
  return found;
}

/** Per request: loaders that see what the caller may see, and the service holding the caller. */
export function createEquipmentContext(base: RequestContext): EquipmentContext {
  const { store } = equipmentResourcesFor(base.db);
  const loaders = createLoaders(store, cameraCollectivitiesOf(base.viewer));
  return { ...base, loaders, equipment: new EquipmentService(base.viewer, store, base.db, loaders, base.log) };
}
