// PLACEHOLDER (replaced by the network helper): POST /mobility/gtfs.
import type http from 'node:http';
import type { MobilityResources } from './resources.js';

export async function handleGtfsRequest(_req: http.IncomingMessage, res: http.ServerResponse, _r: MobilityResources): Promise<void> {
  res.writeHead(404).end();
}
