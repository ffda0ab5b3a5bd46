/**
 * The one consumer of telemetry's readings in mobility (`mobility.readings`, durable: each event
 * applied exactly once, across restarts and instances). Each `telemetry.readings` event is split
 * by kind and handed, in the consumer's transaction, to the areas that want it: buses' positions
 * to the vehicle tracker, car parks' counters and bay sensors to parking occupancy. A new
 * consumer starts at the newest event (a live view has no use for past positions).
 */
import { durableConsumer, type DurableConsumer } from '@connecte/shared/durable-consumer';
import type { BusEvent } from '@connecte/shared/events';
import type { MobilityResources } from './resources.js';
import { TELEMETRY_READINGS_TOPIC, type Reading, type ReadingsHandler } from './types.js';

export const READINGS_CONSUMER = 'mobility.readings';

/** The readings of a `telemetry.readings` event of the given kinds, skipping malformed entries. */
export function readingsOfEvent(event: BusEvent, kinds: ReadonlySet<string>): Reading[] {
  const list = (event.payload as { r?: unknown } | null)?.r;
  if (!Array.isArray(list)) return [];
  const readings: Reading[] = [];
  for (const entry of list) {
    if (!Array.isArray(entry) || entry.length < 5) continue;
    const [equipmentId, kind, metric, time, value] = entry as unknown[];
    if (typeof kind !== 'string' || !kinds.has(kind)) continue;
    if (typeof equipmentId !== 'string' || typeof metric !== 'string' || typeof time !== 'string' || typeof value !== 'number' || !Number.isFinite(value)) continue;
    const at = new Date(time);
    if (Number.isNaN(at.getTime())) continue;
    readings.push({ equipmentId, kind, metric, time: at, value });
  }
  return readings;
}

export function readingsWorker(r: MobilityResources, handlers: readonly ReadingsHandler[]): DurableConsumer {
  const wanted = new Set(handlers.flatMap((handler) => handler.kinds));
  const perHandler = handlers.map((handler) => ({ handler, kinds: new Set(handler.kinds) }));
  return durableConsumer({
    name: READINGS_CONSUMER,
    workerName: 'readings',
    topics: [TELEMETRY_READINGS_TOPIC],
    initialPosition: 'latest',
    db: r.db,
    events: r.events,
    log: r.log,
    async handle(client, event) {
      const readings = readingsOfEvent(event, wanted);
      if (readings.length === 0) return;
      for (const { handler, kinds } of perHandler) {
        const own = readings.filter((reading) => kinds.has(reading.kind));
        if (own.length > 0) await handler.apply(client, own, event.collectivityId);
      }
    },
  });
}
