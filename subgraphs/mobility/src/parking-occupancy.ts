// PLACEHOLDER (replaced by the parking helper).
import type pg from 'pg';
import type { MobilityResources } from './resources.js';
import type { Reading, ReadingsHandler } from './types.js';

export class ParkingOccupancy implements ReadingsHandler {
  readonly kinds = ['PARKING_FACILITY', 'PARKING_SENSOR'] as const;
  constructor(private readonly r: MobilityResources) {}
  async apply(_client: pg.PoolClient, _readings: Reading[]): Promise<void> {}
}
