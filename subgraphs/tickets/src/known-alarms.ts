// Skeleton (contract in /work/notes/interfaces.md): replaced by its helper.
import type { Worker } from '@connecte/shared/workers';
import type { TicketResources } from './resources.js';

export function knownAlarmsWorker(_resources: TicketResources): Worker {
  return { name: 'known-alarms', start: async () => {}, stop: async () => {}, status: () => ({ ready: true, state: 'not built' }) };
}
