import type { Database } from '@connecte/shared/db';
import type { RequestContext } from '@connecte/shared/server';
import { createLoaders, type TerritoryLoaders } from './loaders.js';
import { TerritoryService } from './territory-service.js';
import { TerritoryStore } from './territory-store.js';

/** What the territory's resolvers receive: the request, its loaders and the rules for it. */
export interface TerritoryContext extends RequestContext {
  territory: TerritoryService;
  loaders: TerritoryLoaders;
}

/** What lives as long as the database (so the process): the store and the outline it keeps. */
export interface TerritoryResources {
  store: TerritoryStore;
}

const resources = new WeakMap<Database, TerritoryResources>();

export function territoryResourcesFor(db: Database): TerritoryResources {
  let found = resources.get(db);
  if (!found) {
    found = { store: new TerritoryStore(db) };
    resources.set(db, found);
  }
  return found;
}

/** Per request: loaders whose caches end with it, and the service over them. */
export function createTerritoryContext(base: RequestContext): TerritoryContext {
  const { store } = territoryResourcesFor(base.db);
  const loaders = createLoaders(store);
  return { ...base, loaders, territory: new TerritoryService(store, loaders) };
}
