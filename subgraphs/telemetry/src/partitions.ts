/**
 * The readings table's partitions and retention. `readings` is partitioned BY RANGE (time), one
 * partition per UTC day, `readings_pYYYYMMDD`. The `partitions` worker, at start and then hourly:
 *
 * - creates the partitions of today and the next TELEMETRY_PARTITIONS_AHEAD_DAYS days;
 * - drops the partitions whose whole day is older than the longest retention (plus a day's margin,
 *   so that a reading validated just before a drop never meets a missing partition);
 * - for each metric kept for less than the longest retention (TELEMETRY_RETENTION), deletes its
 *   rows from the partitions whose whole day is past that retention, in batches of blocks, once per
 *   partition and metric (`reading_partition_purges` remembers which are done): a metric's rows are
 *   thus kept at most one day longer than its retention;
 * - deletes hourly roll-ups older than the longest retention, in batches (daily roll-ups stay).
 *
 * Ingest refuses readings older than their metric's retention (senml-validate.ts), so no reading
 * ever lands in a partition that is dropped or purged of its metric. A reading within retention
 * for a day whose partition does not exist (days back, after a device's outage) is accepted: the
 * Ingestor asks `ensurePartitions` for its day before its transaction. Creation is race-safe
 * between instances (an advisory lock, then CREATE TABLE IF NOT EXISTS) and remembered in memory.
 */
import type pg from 'pg';
import type { Config } from '@connecte/shared/config';
import type { Logger } from '@connecte/shared/log';
import { METRICS, type MetricName } from '@connecte/shared/senml';
import type { Worker, WorkerStatus } from '@connecte/shared/workers';
import type { TelemetryResources } from './resources.js';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** Maintenance runs this often (and at start). */
export const MAINTENANCE_INTERVAL_MS = HOUR_MS;
/** Partitions are dropped, and hourly roll-ups deleted, this much later than retention requires. */
const DROP_MARGIN_MS = DAY_MS;
/** Serialises partition creation and dropping across instances and with the Ingestor's on-demand creation. */
const PARTITION_LOCK = 72707381;
/** A purge deletes from this many 8 kB blocks of a partition per statement (TID range scan). */
const PURGE_BLOCKS = 2_048;
/** Hourly roll-ups deleted per statement. */
const ROLLUP_DELETE_BATCH = 10_000;
/** DDL waits no longer than this for ingest transactions to let go of `readings`; maintenance retries next hour. */
const DDL_LOCK_TIMEOUT = '5s';

export interface RetentionPolicy {
  /** TELEMETRY_RETENTION_DAYS. */
  defaultDays: number;
  /** Days a metric is kept. */
  daysOf(metric: MetricName): number;
  /** The longest of all: partitions older than it are dropped. */
  longestDays: number;
  /** Metrics kept for less than `longestDays`, whose rows are deleted from partitions still kept. */
  shorter: MetricName[];
}

export function retentionPolicy(config: Pick<Config, 'TELEMETRY_RETENTION_DAYS' | 'TELEMETRY_RETENTION'>): RetentionPolicy {
  const overrides: Partial<Record<MetricName, number>> = config.TELEMETRY_RETENTION ?? {};
  const daysOf = (metric: MetricName) => overrides[metric] ?? config.TELEMETRY_RETENTION_DAYS;
  const metrics = Object.keys(METRICS) as MetricName[];
  const longestDays = Math.max(...metrics.map(daysOf));
  return { defaultDays: config.TELEMETRY_RETENTION_DAYS, daysOf, longestDays, shorter: metrics.filter((m) => daysOf(m) < longestDays) };
}

/** `2026-12-01` for an instant (UTC). */
export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
/** `readings_p20261201` for `2026-12-01`. */
export const partitionName = (day: string) => `readings_p${day.replaceAll('-', '')}`;
const dayOfPartition = (name: string): string | null => {
  const match = /^readings_p(\d{4})(\d{2})(\d{2})$/.exec(name);
  return match ? `${match[1]}-${match[2]}-${match[3]}` : null;
};
const dayStart = (day: string) => Date.parse(`${day}T00:00:00Z`);

/** Days whose partition this process has seen exist, per pool. */
const known = new WeakMap<pg.Pool, Set<string>>();
const knownOf = (pool: pg.Pool) => {
  let days = known.get(pool);
  if (!days) known.set(pool, (days = new Set()));
  return days;
};

export async function listPartitions(pool: pg.Pool | pg.ClientBase): Promise<string[]> {
  const { rows } = await pool.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'readings'::regclass ORDER BY 1`,
  );
  return rows.map((row) => dayOfPartition(row.name)).filter((day): day is string => day !== null);
}

/**
 * Makes sure the partitions of `days` (`YYYY-MM-DD`) exist: free when this process already saw
 * them; otherwise one transaction that takes the partition lock and creates the missing ones.
 * Returns the days it created.
 */
export async function ensurePartitions(pool: pg.Pool, days: Iterable<string>): Promise<string[]> {
  const cache = knownOf(pool);
  const wanted = [...new Set(days)].filter((day) => !cache.has(day)).sort();
  if (wanted.length === 0) return [];
  const client = await pool.connect();
  const created: string[] = [];
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
    await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
    const existing = new Set(await listPartitions(client));
    for (const day of wanted) {
      if (existing.has(day)) continue;
      const from = new Date(dayStart(day)).toISOString();
      const to = new Date(dayStart(day) + DAY_MS).toISOString();
      // IF NOT EXISTS as well: safe against anything that creates partitions without the lock.
      await client.query(`CREATE TABLE IF NOT EXISTS "${partitionName(day)}" PARTITION OF readings FOR VALUES FROM ('${from}') TO ('${to}')`);
      created.push(day);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    client.release(true);
    throw error;
  }
  client.release();
  for (const day of wanted) cache.add(day);
  return created;
}

export interface MaintenanceReport {
  created: string[];
  dropped: string[];
  purged: { partition: string; metrics: MetricName[]; rows: number }[];
  rollupsDeleted: number;
}

/** Today's partition and the next `aheadDays` ones. */
export async function createAhead(pool: pg.Pool, config: Pick<Config, 'TELEMETRY_PARTITIONS_AHEAD_DAYS'>, now: Date): Promise<string[]> {
  const today = dayStart(utcDay(now.getTime()));
  const days = Array.from({ length: config.TELEMETRY_PARTITIONS_AHEAD_DAYS + 1 }, (_, n) => utcDay(today + n * DAY_MS));
  return ensurePartitions(pool, days);
}

/** Drops the partitions whose whole day is older than the longest retention, plus the margin. */
export async function dropExpired(pool: pg.Pool, policy: RetentionPolicy, now: Date): Promise<string[]> {
  const cutoff = now.getTime() - policy.longestDays * DAY_MS - DROP_MARGIN_MS;
  const expired = (await listPartitions(pool)).filter((day) => dayStart(day) + DAY_MS <= cutoff);
  const dropped: string[] = [];
  for (const day of expired) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL lock_timeout = '${DDL_LOCK_TIMEOUT}'`);
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
      await client.query(`DROP TABLE IF EXISTS "${partitionName(day)}"`);
      await client.query('DELETE FROM reading_partition_purges WHERE partition_name = $1', [partitionName(day)]);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      client.release(true);
      throw error;
    }
    client.release();
    knownOf(pool).delete(day);
    dropped.push(day);
  }
  return dropped;
}

/**
 * Deletes the rows of metrics kept for less than the longest retention from the partitions whose
 * whole day is past that metric's retention, each partition once per metric, in batches of blocks.
 */
export async function purgeShorterRetention(
  pool: pg.Pool,
  policy: RetentionPolicy,
  now: Date,
  keepGoing: () => boolean = () => true,
): Promise<MaintenanceReport['purged']> {
  if (policy.shorter.length === 0) return [];
  const days = await listPartitions(pool);
  const { rows: done } = await pool.query<{ partition_name: string; metric: string }>('SELECT partition_name, metric FROM reading_partition_purges');
  const doneSet = new Set(done.map((row) => `${row.partition_name}/${row.metric}`));
  const purged: MaintenanceReport['purged'] = [];
  for (const day of days) {
    if (!keepGoing()) break;
    const name = partitionName(day);
    const due = policy.shorter.filter(
      (metric) => dayStart(day) + DAY_MS <= now.getTime() - policy.daysOf(metric) * DAY_MS && !doneSet.has(`${name}/${metric}`),
    );
    if (due.length === 0) continue;
    const { rows } = await pool.query<{ blocks: string }>(
      `SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::int)::text AS blocks`,
      [name],
    );
    const blocks = Number(rows[0].blocks);
    let deleted = 0;
    let complete = true;
    // A TID range per statement: each batch reads only its blocks, and no statement runs for long.
    for (let block = 0; block < blocks; block += PURGE_BLOCKS) {
      if (!keepGoing()) {
        complete = false;
        break;
      }
      const result = await pool.query(
        `DELETE FROM "${name}" WHERE ctid >= $1::tid AND ctid < $2::tid AND metric = ANY($3::text[])`,
        [`(${block},0)`, `(${block + PURGE_BLOCKS},0)`, due],
      );
      deleted += result.rowCount ?? 0;
    }
    // Interrupted (shutdown): not recorded, so the next pass does it again from the start.
    if (!complete) break;
    await pool.query(
      `INSERT INTO reading_partition_purges (partition_name, metric) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`,
      [name, due],
    );
    purged.push({ partition: name, metrics: due, rows: deleted });
  }
  return purged;
}

/** Deletes hourly roll-ups older than the longest retention (plus the margin), in batches. */
export async function deleteExpiredRollups(
  pool: pg.Pool,
  policy: RetentionPolicy,
  now: Date,
  keepGoing: () => boolean = () => true,
): Promise<number> {
  const cutoff = new Date(Math.floor((now.getTime() - policy.longestDays * DAY_MS - DROP_MARGIN_MS) / HOUR_MS) * HOUR_MS);
  let total = 0;
  for (;;) {
    const result = await pool.query(
      `DELETE FROM reading_rollups_hourly WHERE ctid = ANY(ARRAY(
         SELECT ctid FROM reading_rollups_hourly WHERE hour < $1 LIMIT ${ROLLUP_DELETE_BATCH}))`,
      [cutoff],
    );
    total += result.rowCount ?? 0;
    if ((result.rowCount ?? 0) < ROLLUP_DELETE_BATCH || !keepGoing()) return total;
  }
}

/** One maintenance pass at `now` (tests choose it): create ahead, drop, purge, delete old roll-ups. */
export async function maintainPartitions(
  pool: pg.Pool,
  config: Pick<Config, 'TELEMETRY_RETENTION_DAYS' | 'TELEMETRY_RETENTION' | 'TELEMETRY_PARTITIONS_AHEAD_DAYS'>,
  now: Date = new Date(),
): Promise<MaintenanceReport> {
  const policy = retentionPolicy(config);
  const created = await createAhead(pool, config, now);
  const dropped = await dropExpired(pool, policy, now);
  const purged = await purgeShorterRetention(pool, policy, now);
  const rollupsDeleted = await deleteExpiredRollups(pool, policy, now);
  return { created, dropped, purged, rollupsDeleted };
}

/**
 * The `partitions` worker: a pass at start (the creation of the partitions ahead is awaited, so
 * that the service takes readings with today's partition in place; the rest goes on in the
 * background) and every hour on an unref'd timer. A failed pass is logged and retried at the next
 * tick: ingest creates a missing partition itself, so the service stays ready meanwhile.
 */
export function partitionWorker(r: TelemetryResources): Worker {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;
  let state = 'starting';
  const log = (): Logger => r.log;

  const pass = (skipCreate: boolean) =>
    (running ??= (async () => {
      try {
        const now = new Date();
        const policy = retentionPolicy(r.config);
        const created = skipCreate ? [] : await createAhead(r.db.pool, r.config, now);
        const dropped = await dropExpired(r.db.pool, policy, now);
        const keepGoing = () => !stopped;
        const purged = await purgeShorterRetention(r.db.pool, policy, now, keepGoing);
        const rollupsDeleted = keepGoing() ? await deleteExpiredRollups(r.db.pool, policy, now, keepGoing) : 0;
        if (created.length || dropped.length || purged.length || rollupsDeleted) {
          log().info({ created, dropped, purged, rollupsDeleted }, 'readings partitions maintained');
        }
        state = `maintained at ${now.toISOString()}`;
      } catch (error) {
        state = `last pass failed: ${(error as Error).message}`;
        if (!stopped) log().warn({ err: (error as Error).message }, 'readings partition maintenance failed; retrying at the next pass');
      } finally {
        running = null;
      }
    })());

  return {
    name: 'partitions',
    async start() {
      stopped = false;
      try {
        await createAhead(r.db.pool, r.config, new Date());
      } catch (error) {
        // A database that is down at start is not fatal: ingest creates partitions on demand.
        log().warn({ err: (error as Error).message }, 'readings partitions could not be created at start; retrying');
      }
      void pass(true);
      timer = setInterval(() => void pass(false), MAINTENANCE_INTERVAL_MS);
      timer.unref();
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
    status(): WorkerStatus {
      return { ready: true, state };
    },
  };
}
