import type { Database } from '@connecte/shared/db';
import type { RequestContext } from '@connecte/shared/server';
import { AlarmService } from './alarm-service.js';
import { CredentialService } from './credential-service.js';
import { DeadLetterService } from './dead-letters.js';
import { EnergyService } from './energy.js';
import { ReadingService } from './reading-service.js';
import { TelemetryResources, type TelemetryResourceOptions } from './resources.js';

/** What the telemetry resolvers receive: the request, and one service per area holding the caller (each with its own DataLoaders). */
export interface TelemetryContext extends RequestContext {
  telemetry: TelemetryResources;
  readings: ReadingService;
  alarms: AlarmService;
  energy: EnergyService;
  credentials: CredentialService;
  deadLetters: DeadLetterService;
}

const resources = new WeakMap<Database, TelemetryResources>();

/** The process's resources for `db`: the first call (the workers factory) must give the rest of what they are built from. */
export function telemetryResourcesFor(db: Database, options?: TelemetryResourceOptions): TelemetryResources {
  let found = resources.get(db);
  if (!found) {
    if (!options) throw new Error('telemetry resources are created by the service’s workers factory before any request');
    found = new TelemetryResources(options);
    resources.set(db, found);
  }
  return found;
}

/** Per request: each area's service, for this caller. */
export function createTelemetryContext(base: RequestContext): TelemetryContext {
  const telemetry = telemetryResourcesFor(base.db);
  return {
    ...base,
    telemetry,
    readings: new ReadingService(base, telemetry),
    alarms: new AlarmService(base, telemetry),
    energy: new EnergyService(base, telemetry),
    credentials: new CredentialService(base, telemetry),
    deadLetters: new DeadLetterService(base, telemetry),
  };
}
