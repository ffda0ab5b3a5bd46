/**
 * Mobility's directory of the assets it runs (`mobility_assets`): buses, bus stops, parking
 * facilities and their bay sensors, traffic-signal controllers. Mobility never reads equipment's
 * tables; it keeps this copy from `equipment.changed` events (the seed publishes one per seeded
 * asset) with a durable consumer (`mobility.asset-directory`: each event applied exactly once,
 * across restarts and instances), guarded by the event id.
 *
 * Readers get the directory from memory: every instance reloads a kind's rows when a change to
 * that kind is applied (by it, or by another instance: it follows the topic too), and at most
 * `CACHE_MS` after any change it did not see.
 */
import type pg from 'pg';
import { durableConsumer, type DurableConsumer } from '@connecte/shared/durable-consumer';
import type { BusEvent } from '@connecte/shared/events';
import type { Worker } from '@connecte/shared/workers';
import type { MobilityResources } from './resources.js';
import { EQUIPMENT_CHANGED_TOPIC, MOBILITY_KINDS, type AssetRow, type MobilityKind } from './types.js';

export const ASSET_DIRECTORY_CONSUMER = 'mobility.asset-directory';
/** The longest a reader may see a kind's rows as they were before a change another instance applied. */
const CACHE_MS = 5_000;

interface EquipmentChangedPayload {
  equipmentId?: unknown;
  kind?: unknown;
  status?: unknown;
  snapshot?: {
    collectivityId?: unknown;
    reference?: unknown;
    name?: unknown;
    lon?: unknown;
    lat?: unknown;
    parentId?: unknown;
    details?: unknown;
  };
}

const UPSERT = `
INSERT INTO mobility_assets (equipment_id, collectivity_id, kind, reference, name, status, geom, parent_id, details, event_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7::float8 IS NULL OR $8::float8 IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint($7, $8), 4326) END, $9, $10, $11, now())
ON CONFLICT (equipment_id) DO UPDATE
  SET collectivity_id = excluded.collectivity_id, kind = excluded.kind, reference = excluded.reference, name = excluded.name,
      status = excluded.status, geom = excluded.geom, parent_id = excluded.parent_id, details = excluded.details,
      event_id = excluded.event_id, updated_at = now()
  WHERE mobility_assets.event_id < excluded.event_id`;

const SELECT = `
SELECT equipment_id AS "equipmentId", collectivity_id AS "collectivityId", kind, reference, name, status,
       CASE WHEN geom IS NULL THEN NULL ELSE ARRAY[ST_X(geom), ST_Y(geom)] END AS location,
       parent_id AS "parentId", details
FROM mobility_assets WHERE kind = $1 ORDER BY equipment_id`;

const isKind = (kind: unknown): kind is MobilityKind => typeof kind === 'string' && (MOBILITY_KINDS as readonly string[]).includes(kind);
const finite = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

/** The row an `equipment.changed` event gives, or null when it is not about a kind mobility follows. */
export function assetOfEvent(event: BusEvent): (AssetRow & { eventId: string }) | null {
  const payload = event.payload as EquipmentChangedPayload | null;
  if (!payload || typeof payload.equipmentId !== 'string' || !isKind(payload.kind)) return null;
  const snapshot = payload.snapshot ?? {};
  const collectivityId = typeof snapshot.collectivityId === 'string' ? snapshot.collectivityId : event.collectivityId;
  if (!collectivityId) return null;
  const lon = finite(snapshot.lon);
  const lat = finite(snapshot.lat);
  return {
    equipmentId: payload.equipmentId,
    collectivityId,
    kind: payload.kind,
    reference: typeof snapshot.reference === 'string' ? snapshot.reference : payload.equipmentId,
    name: typeof snapshot.name === 'string' ? snapshot.name : null,
    status: (typeof payload.status === 'string' ? payload.status : 'IN_SERVICE') as AssetRow['status'],
    location: lon === null || lat === null ? null : [lon, lat],
    parentId: typeof snapshot.parentId === 'string' ? snapshot.parentId : null,
    details: snapshot.details && typeof snapshot.details === 'object' && !Array.isArray(snapshot.details) ? (snapshot.details as Record<string, unknown>) : {},
    eventId: event.id,
  };
}

export class AssetDirectory {
  private readonly cache = new Map<MobilityKind, { at: number; rows: Promise<AssetRow[]> }>();
  private consumer: DurableConsumer | null = null;
  private follower: AbortController | null = null;

  constructor(private readonly r: MobilityResources) {}

  /** Every asset of a kind (decommissioned ones included: callers filter by status), by id. */
  async ofKind(kind: MobilityKind): Promise<AssetRow[]> {
    const cached = this.cache.get(kind);
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.rows;
    const rows = this.r.db.pool.query<AssetRow>(SELECT, [kind]).then((result) => result.rows);
    this.cache.set(kind, { at: Date.now(), rows });
    rows.catch(() => this.cache.delete(kind));
    return rows;
  }

  /** The asset of that id when it is of a kind mobility follows, else null. */
  async get(equipmentId: string, kind: MobilityKind): Promise<AssetRow | null> {
    return (await this.ofKind(kind)).find((asset) => asset.equipmentId === equipmentId) ?? null;
  }

  /** Forgets what it holds of a kind (after a change). */
  invalidate(kind?: MobilityKind): void {
    if (kind) this.cache.delete(kind);
    else this.cache.clear();
  }

  /** Applies one event in the consumer's transaction. */
  async apply(client: pg.PoolClient, event: BusEvent): Promise<void> {
    const asset = assetOfEvent(event);
    if (!asset) return;
    await client.query(UPSERT, [
      asset.equipmentId,
      asset.collectivityId,
      asset.kind,
      asset.reference,
      asset.name,
      asset.status,
      asset.location?.[0] ?? null,
      asset.location?.[1] ?? null,
      asset.parentId,
      JSON.stringify(asset.details),
      asset.eventId,
    ]);
    this.invalidate(asset.kind);
  }

  /** Resolves once every `equipment.changed` event committed before the call is applied. */
  caughtUp(): Promise<void> {
    return this.consumer?.caughtUp() ?? Promise.resolve();
  }

  worker(): Worker {
    const consumer = durableConsumer({
      name: ASSET_DIRECTORY_CONSUMER,
      workerName: 'asset-directory',
      topics: [EQUIPMENT_CHANGED_TOPIC],
      db: this.r.db,
      events: this.r.events,
      log: this.r.log,
      handle: (client, event) => this.apply(client, event),
    });
    this.consumer = consumer;
    return {
      name: 'asset-directory',
      start: async () => {
        await consumer.start();
        // Another instance may apply a change: follow the topic to forget the kinds it touches.
        this.follower = new AbortController();
        void this.follow(this.follower.signal);
      },
      stop: async () => {
        this.follower?.abort();
        await consumer.stop();
      },
      status: () => consumer.status(),
    };
  }

  private async follow(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for await (const event of this.r.events.subscribe({ topics: [EQUIPMENT_CHANGED_TOPIC], signal })) {
          const payload = event.payload as EquipmentChangedPayload | null;
          if (isKind(payload?.kind)) this.invalidate(payload.kind);
        }
      } catch {
        if (signal.aborted) return;
        this.invalidate();
        await new Promise((resolve) => setTimeout(resolve, 1_000).unref());
      }
    }
  }
}
