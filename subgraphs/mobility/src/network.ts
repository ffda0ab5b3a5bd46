// PLACEHOLDER (replaced by the vehicles helper): the network in memory.
import type { Worker } from '@connecte/shared/workers';
import type { MobilityResources } from './resources.js';

export class NetworkCache {
  constructor(private readonly r: MobilityResources) {}
  worker(): Worker {
    return { name: 'network', start: async () => {}, stop: async () => {}, status: () => ({ ready: true, state: 'placeholder' }) };
  }
}
