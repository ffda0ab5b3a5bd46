// Skeleton (contract in /work/notes/interfaces.md): replaced by its helper.
import type { Worker } from '@connecte/shared/workers';
import type { TicketResources } from './resources.js';

export function retentionWorker(_resources: TicketResources): Worker {
  return { name: 'retention', start: async () => {}, stop: async () => {}, status: () => ({ ready: true, state: 'not built' }) };
}
