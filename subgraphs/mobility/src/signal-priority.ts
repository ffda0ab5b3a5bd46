// PLACEHOLDER (replaced by the signal-priority helper).
import type pg from 'pg';
import type { Worker } from '@connecte/shared/workers';
import type { MobilityResources } from './resources.js';
import type { VehicleState, VehicleStatesListener } from './types.js';

export class SignalPriority implements VehicleStatesListener {
  constructor(private readonly r: MobilityResources) {}
  async onVehicleStates(_client: pg.PoolClient, _states: VehicleState[]): Promise<void> {}
  worker(): Worker {
    return { name: 'signal-priority', start: async () => {}, stop: async () => {}, status: () => ({ ready: true, state: 'placeholder' }) };
  }
}
