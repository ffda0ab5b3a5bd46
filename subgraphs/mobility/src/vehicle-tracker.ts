// PLACEHOLDER (replaced by the vehicles helper).
import type pg from 'pg';
import type { MobilityResources } from './resources.js';
import type { Reading, ReadingsHandler, VehicleStatesListener } from './types.js';

export class VehicleTracker implements ReadingsHandler {
  readonly kinds = ['BUS'] as const;
  constructor(
    private readonly r: MobilityResources,
    private readonly listener: VehicleStatesListener,
  ) {}
  async apply(_client: pg.PoolClient, _readings: Reading[]): Promise<void> {}
}
