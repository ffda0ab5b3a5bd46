import type { Database } from '@connecte/shared/db';
import type { RequestContext } from '@connecte/shared/server';
import { NetworkService } from './network-service.js';
import { ParkingService } from './parking-service.js';
import { MobilityResources, type MobilityResourceOptions } from './resources.js';
import { SignalPriorityService } from './signal-priority-service.js';
import { VehicleService } from './vehicle-service.js';

/** What the mobility resolvers receive: the request, and one service per area holding the caller (each with its own DataLoaders). */
export interface MobilityContext extends RequestContext {
  resources: MobilityResources;
  network: NetworkService;
  vehicles: VehicleService;
  priority: SignalPriorityService;
  parking: ParkingService;
}

const resources = new WeakMap<Database, MobilityResources>();

/** The process's resources for `db`: the first call (the workers factory) must give the rest of what they are built from. */
export function mobilityResourcesFor(db: Database, options?: MobilityResourceOptions): MobilityResources {
  let found = resources.get(db);
  if (!found) {
    if (!options) throw new Error('mobility resources are created by the service’s workers factory before any request');
    found = new MobilityResources(options);
    resources.set(db, found);
  }
  return found;
}

/** Per request: each area's service, for this caller. */
export function createMobilityContext(base: RequestContext): MobilityContext {
  const own = mobilityResourcesFor(base.db);
  const context = { ...base, resources: own } as MobilityContext;
  context.network = new NetworkService(context);
  context.vehicles = new VehicleService(context);
  context.priority = new SignalPriorityService(context);
  context.parking = new ParkingService(context);
  return context;
}
