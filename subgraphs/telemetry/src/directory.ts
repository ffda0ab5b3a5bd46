/**
 * Telemetry's directory of assets: which collectivity owns each device, its kind, status and
 * parent (a sensor's building). Telemetry never reads equipment's tables; it keeps this copy from
 * equipment's `equipment.changed` events (the seed publishes one per seeded asset), in the table
 * `telemetry_devices` and in memory, so that validating a batch of readings costs no query.
 *
 * Every instance applies every event itself (an upsert guarded by the event id, so applying one
 * twice or in a race with another instance changes nothing) and keeps its own memory in step. It
 * resumes after the highest event id in the table: events are applied in id order, so every
 * event up to that id is applied. A device registered a moment ago may not be known yet when its
 * first reading arrives: a lookup that misses waits (briefly) for the directory to catch up.
 */
import type { EquipmentKind } from '@connecte/shared/db';
import type { BusEvent } from '@connecte/shared/events';
import type { Worker, WorkerStatus } from '@connecte/shared/workers';
import type { TelemetryResources } from './resources.js';
import type { DeviceInfo } from './types.js';
import { revokeDecommissionedCredential } from './credential-service.js';

export const EQUIPMENT_CHANGED = 'equipment.changed';
/** How long a lookup that misses waits for the directory to reach the newest equipment event. */
const MISS_WAIT_MS = 2_000;
const RETRY_MS = [100, 500, 2_000, 5_000];

interface EquipmentChangedEvent {
  equipmentId: string;
  kind: EquipmentKind;
  status: DeviceInfo['status'];
  snapshot?: { collectivityId?: string; parentId?: string | null };
}

const UPSERT = `
INSERT INTO telemetry_devices (equipment_id, collectivity_id, kind, status, parent_id, event_id, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (equipment_id) DO UPDATE
  SET collectivity_id = excluded.collectivity_id, kind = excluded.kind, status = excluded.status,
      parent_id = excluded.parent_id, event_id = excluded.event_id, updated_at = now()
  WHERE telemetry_devices.event_id < excluded.event_id`;

export class DeviceDirectory {
  private readonly devices = new Map<string, DeviceInfo>();
  private applied: bigint | null = null;
  private controller: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private lastError: string | null = null;
  private waiters: { id: bigint; resolve: () => void }[] = [];

  constructor(private readonly r: TelemetryResources) {}

  /** The known devices among `ids` (unknown ones are absent). */
  async lookup(ids: readonly string[]): Promise<Map<string, DeviceInfo>> {
    const found = new Map<string, DeviceInfo>();
    let missing = false;
    for (const id of ids) {
      const device = this.devices.get(id);
      if (device) found.set(id, device);
      else missing = true;
    }
    if (!missing || !this.loop) return found;
    await this.caughtUp(MISS_WAIT_MS);
    for (const id of ids) {
      const device = this.devices.get(id);
      if (device) found.set(id, device);
    }
    return found;
  }

  /** Every device of a collectivity (optionally of some kinds), from memory. */
  devicesOf(collectivityId: string, kinds?: readonly string[] | null): DeviceInfo[] {
    const wanted = kinds ? new Set(kinds) : null;
    return [...this.devices.values()].filter((d) => d.collectivityId === collectivityId && (!wanted || wanted.has(d.kind)));
  }

  /** Resolves once the newest `equipment.changed` event (at the call) is applied, or after `timeoutMs`. */
  async caughtUp(timeoutMs = MISS_WAIT_MS): Promise<void> {
    const { rows } = await this.r.db.pool.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM events WHERE topic = $1', [EQUIPMENT_CHANGED]);
    const target = BigInt(rows[0].id);
    if (this.applied !== null && this.applied >= target) return;
    await new Promise<void>((resolve) => {
      const waiter = { id: target, resolve: () => (clearTimeout(timer), resolve()) };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve();
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  private remember(row: { equipment_id: string; collectivity_id: string; kind: string; status: string; parent_id: string | null }) {
    this.devices.set(row.equipment_id, {
      equipmentId: row.equipment_id,
      collectivityId: row.collectivity_id,
      kind: row.kind as EquipmentKind,
      status: row.status as DeviceInfo['status'],
      parentId: row.parent_id,
    });
  }

  private async load(): Promise<void> {
    const { rows } = await this.r.db.pool.query<{ equipment_id: string; collectivity_id: string; kind: string; status: string; parent_id: string | null; max: string }>(
      'SELECT equipment_id, collectivity_id, kind, status, parent_id, (max(event_id) OVER ())::text AS max FROM telemetry_devices',
    );
    this.devices.clear();
    for (const row of rows) this.remember(row);
    this.applied = rows.length > 0 ? BigInt(rows[0].max) : 0n;
  }

  private async apply(event: BusEvent): Promise<void> {
    const payload = event.payload as EquipmentChangedEvent;
    const collectivityId = payload.snapshot?.collectivityId ?? event.collectivityId;
    if (typeof payload?.equipmentId !== 'string' || !collectivityId) {
      this.r.log.warn(`device directory: event ${event.id} carries no asset or collectivity; skipped`);
      return;
    }
    const row = {
      equipment_id: payload.equipmentId,
      collectivity_id: collectivityId,
      kind: payload.kind,
      status: payload.status,
      parent_id: payload.snapshot?.parentId ?? null,
    };
    await this.r.db.pool.query(UPSERT, [row.equipment_id, row.collectivity_id, row.kind, row.status, row.parent_id, event.id]);
    this.remember(row);
    if (row.status === 'DECOMMISSIONED') await revokeDecommissionedCredential(this.r, row.equipment_id);
  }

  private settle() {
    const applied = this.applied;
    if (applied === null) return;
    const ready = this.waiters.filter((w) => w.id <= applied);
    this.waiters = this.waiters.filter((w) => w.id > applied);
    for (const waiter of ready) waiter.resolve();
  }

  private async run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      try {
        for await (const event of this.r.events.subscribe({ topics: [EQUIPMENT_CHANGED], after: this.applied, signal })) {
          await this.apply(event);
          this.applied = BigInt(event.id);
          this.lastError = null;
          attempt = 0;
          this.settle();
        }
      } catch (error) {
        if (signal.aborted) return;
        this.lastError = (error as Error).message;
        const delay = RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)];
        this.r.log.warn(`device directory: ${this.lastError}; retrying in ${delay} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }

  worker(): Worker {
    return {
      name: 'device-directory',
      start: async () => {
        await this.load();
        this.controller = new AbortController();
        this.loop = this.run(this.controller.signal);
        // Serve no reading before the directory has what the bus holds now.
        await this.caughtUp(5_000);
      },
      stop: async () => {
        this.controller?.abort();
        await this.loop;
        this.loop = null;
        for (const waiter of this.waiters) waiter.resolve();
        this.waiters = [];
      },
      status: (): WorkerStatus =>
        this.lastError ? { ready: false, state: `retrying: ${this.lastError}` } : { ready: this.loop !== null, state: `${this.devices.size} devices` },
    };
  }
}
