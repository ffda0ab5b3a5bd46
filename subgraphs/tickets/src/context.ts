import type { Database } from '@connecte/shared/db';
import type { RequestContext } from '@connecte/shared/server';
import { InterventionService } from './intervention-service.js';
import { Open311AdminService } from './open311-admin.js';
import { PersonalDataService } from './personal-data.js';
import { PhotoService } from './photo-service.js';
import { TicketResources, type TicketResourceOptions } from './resources.js';
import { TicketService } from './ticket-service.js';

/** What the tickets resolvers receive: the request, and one service per area holding the caller (each with its own DataLoaders). */
export interface TicketsContext extends RequestContext {
  resources: TicketResources;
  tickets: TicketService;
  interventions: InterventionService;
  photos: PhotoService;
  open311: Open311AdminService;
  personalData: PersonalDataService;
}

const resources = new WeakMap<Database, TicketResources>();

/** The process's resources for `db`: the first call (the workers factory) must give the rest of what they are built from. */
export function ticketResourcesFor(db: Database, options?: TicketResourceOptions): TicketResources {
  let found = resources.get(db);
  if (!found) {
    if (!options) throw new Error('tickets resources are created by the service’s workers factory before any request');
    found = new TicketResources(options);
    resources.set(db, found);
  }
  return found;
}

/** Per request: each area's service, for this caller. */
export function createTicketsContext(base: RequestContext): TicketsContext {
  const own = ticketResourcesFor(base.db);
  const context = { ...base, resources: own } as TicketsContext;
  context.tickets = new TicketService(context);
  context.interventions = new InterventionService(context);
  context.photos = new PhotoService(context);
  context.open311 = new Open311AdminService(context);
  context.personalData = new PersonalDataService(context);
  return context;
}
