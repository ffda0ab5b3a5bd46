// PLACEHOLDER (replaced by the vehicles helper).
import type { Worker } from '@connecte/shared/workers';
import type { MobilityResources } from './resources.js';

export function vehicleAssignmentsWorker(_r: MobilityResources): Worker {
  return { name: 'vehicle-assignments', start: async () => {}, stop: async () => {}, status: () => ({ ready: true, state: 'placeholder' }) };
}
