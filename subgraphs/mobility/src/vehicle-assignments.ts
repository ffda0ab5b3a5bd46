/**
 * The day's blocks get buses (worker `vehicle-assignments`): each block running today (Europe/
 * Paris) that has no bus gets, in order of its first departure, the IN_SERVICE bus of lowest
 * fleet number not yet assigned that day, among the buses of the collectivity owning the network.
 * An operator's assignment (`assignVehicle`) is never replaced: only free blocks and free buses
 * are paired, so a run is idempotent. Runs at start, every `EVERY_MS`, when the network reloads,
 * and past midnight for the new day; one instance at a time (transaction advisory lock).
 * Trips without a `block_id` are not assigned (nothing tells which bus chains them). Each run also
 * deletes outliers older than 30 days and assignments older than 400.
 */
import type { Worker } from '@connecte/shared/workers';
import { parisDate } from './network.js';
import type { MobilityResources } from './resources.js';
import type { AssetRow } from './types.js';

const EVERY_MS = 5 * 60_000;
export const ASSIGNED_BY_SYSTEM = 'system:vehicle-assignments';
const LOCK_KEY = 'mobility.vehicle-assignments';

const fleetNumber = (asset: AssetRow): number => {
  const value = Number(asset.details.fleetNumber);
  return Number.isFinite(value) ? value : Number.POSITIVE_INFINITY;
};

/** Pairs the date's free blocks with free buses; returns how many were assigned. */
export async function assignBlocks(r: MobilityResources, serviceDate: string = parisDate(new Date())): Promise<number> {
  const network = r.network.current();
  const blocks = [...network.blocksOn(serviceDate)].sort(([a, ta], [b, tb]) => ta[0].startSeconds - tb[0].startSeconds || (a < b ? -1 : 1));
  if (blocks.length === 0) return 0;
  const buses = (await r.directory.ofKind('BUS'))
    .filter((bus) => bus.status === 'IN_SERVICE' && (network.collectivityId === null || bus.collectivityId === network.collectivityId))
    .sort((a, b) => fleetNumber(a) - fleetNumber(b) || (a.equipmentId < b.equipmentId ? -1 : 1));
  return r.inTransaction(async (client) => {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [LOCK_KEY]);
    const { rows } = await client.query<{ blockId: string; equipmentId: string }>(
      `SELECT block_id AS "blockId", equipment_id AS "equipmentId" FROM vehicle_assignments WHERE service_date = $1::date`,
      [serviceDate],
    );
    const takenBlocks = new Set(rows.map((row) => row.blockId));
    const takenBuses = new Set(rows.map((row) => row.equipmentId));
    const freeBuses = buses.filter((bus) => !takenBuses.has(bus.equipmentId));
    const pairs: { blockId: string; equipmentId: string }[] = [];
    for (const [blockId] of blocks) {
      if (takenBlocks.has(blockId)) continue;
      const bus = freeBuses.shift();
      if (!bus) break;
      pairs.push({ blockId, equipmentId: bus.equipmentId });
    }
    if (pairs.length === 0) return 0;
    const inserted = await client.query(
      `INSERT INTO vehicle_assignments (service_date, block_id, equipment_id, assigned_by)
       SELECT $1::date, p.block, p.bus, $4 FROM unnest($2::text[], $3::text[]) AS p(block, bus)
       ON CONFLICT DO NOTHING`,
      [serviceDate, pairs.map((p) => p.blockId), pairs.map((p) => p.equipmentId), ASSIGNED_BY_SYSTEM],
    );
    return inserted.rowCount ?? 0;
  });
}

/** Outliers are kept this many days (`vehicle_outliers`), assignments this many (`vehicle_assignments`). */
export const OUTLIER_RETENTION_DAYS = 30;
export const ASSIGNMENT_RETENTION_DAYS = 400;

/** Forgets outliers and assignments past their retention; returns how many rows went. */
export async function purgeVehicleHistory(r: MobilityResources): Promise<number> {
  const outliers = await r.db.pool.query(`DELETE FROM vehicle_outliers WHERE observed_at < now() - make_interval(days => $1)`, [OUTLIER_RETENTION_DAYS]);
  const assignments = await r.db.pool.query(`DELETE FROM vehicle_assignments WHERE service_date < (now() - make_interval(days => $1))::date`, [ASSIGNMENT_RETENTION_DAYS]);
  return (outliers.rowCount ?? 0) + (assignments.rowCount ?? 0);
}

export interface VehicleAssignments {
  /** Runs now (after the asset directory has caught up); resolves with the number assigned (0 when `signal` aborted the wait). */
  run(serviceDate?: string, signal?: AbortSignal): Promise<number>;
}

const runners = new WeakMap<MobilityResources, VehicleAssignments>();

/** The assignments runner of a service's resources (tests await `run()`). */
export function vehicleAssignments(r: MobilityResources): VehicleAssignments {
  let runner = runners.get(r);
  if (!runner) {
    let chain: Promise<unknown> = Promise.resolve();
    runner = {
      run: (serviceDate, signal) => {
        const next = chain.then(async () => {
          // The directory's consumer stops after this worker: a stop must not wait for it to catch up.
          const aborted = signal ? new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })) : null;
          await (aborted ? Promise.race([r.directory.caughtUp(), aborted]) : r.directory.caughtUp());
          if (signal?.aborted) return 0;
          return assignBlocks(r, serviceDate);
        });
        chain = next.catch(() => {});
        return next;
      },
    };
    runners.set(r, runner);
  }
  return runner;
}

export function vehicleAssignmentsWorker(r: MobilityResources): Worker {
  const runner = vehicleAssignments(r);
  const timers: NodeJS.Timeout[] = [];
  let unlisten: (() => void) | null = null;
  let inFlight: Promise<unknown> = Promise.resolve();
  let lastRun = 'not run yet';
  let lastDay = '';
  const stopping = new AbortController();
  const tick = () => {
    if (stopping.signal.aborted) return;
    const day = parisDate(new Date());
    lastDay = day;
    inFlight = runner
      .run(day, stopping.signal)
      .then(async (n) => {
        lastRun = `${day}: ${n} assigned at the last run`;
        if (n > 0) r.log.info({ serviceDate: day, assigned: n }, 'vehicles assigned to blocks');
        const purged = await purgeVehicleHistory(r);
        if (purged > 0) r.log.info({ purged }, 'vehicle outliers and assignments past their retention deleted');
      })
      .catch((error: unknown) => {
        lastRun = `error: ${error instanceof Error ? error.message : String(error)}`;
        r.log.error({ err: error }, 'vehicle assignment failed');
      });
  };
  return {
    name: 'vehicle-assignments',
    start: async () => {
      unlisten = r.network.onReload(() => tick());
      tick();
      timers.push(setInterval(tick, EVERY_MS));
      // The new day's blocks within a minute of midnight.
      timers.push(setInterval(() => parisDate(new Date()) !== lastDay && tick(), 60_000));
      for (const timer of timers) timer.unref();
    },
    stop: async () => {
      stopping.abort();
      unlisten?.();
      for (const timer of timers.splice(0)) clearInterval(timer);
      await inFlight;
    },
    status: () => ({ ready: true, state: lastRun }),
  };
}
