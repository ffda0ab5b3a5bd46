// Skeleton (contract in /work/notes/interfaces.md): replaced by its helper.
import type { TicketsContext } from './context.js';

export class Open311AdminService {
  constructor(readonly context: TicketsContext) {}
}
