// Skeleton (contract in /work/notes/interfaces.md): replaced by its helper.
import type http from 'node:http';
import { sendJson } from '@connecte/shared/http';
import type { TicketResources } from './resources.js';

export async function handleOpen311Request(_req: http.IncomingMessage, res: http.ServerResponse, _resources: TicketResources): Promise<void> {
  sendJson(res, 404, { error: 'not built yet' });
}
