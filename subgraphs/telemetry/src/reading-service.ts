/**
 * The read side of telemetry: an asset's latest values, its readings (raw or in buckets) as a
 * cursor connection, and the live stream of readings as they are committed.
 *
 * Who reads what. `agent`, `operator` and `admin` of an asset's collectivity read all of its
 * telemetry; a `partner` reads the hourly and daily buckets of any collectivity's assets (published,
 * aggregated data) and nothing finer; citizens and the public read none. On `Equipment` a field
 * the caller may not read is empty (no error, as equipment hides a camera's position); the
 * subscription refuses instead (UNAUTHENTICATED / FORBIDDEN naming the filter), since a stream
 * that never delivers anything would look like a silent device. The asset's collectivity and kind
 * come from the device directory (memory, fed by equipment's events): no query of its own.
 *
 * Cost. Every field goes through a DataLoader keyed by its arguments, and each batch is one
 * statement for all the assets of a page (`= ANY($ids)`, or a LATERAL join over `unnest($ids)` for
 * a per-asset LIMIT): a page of 1,000 light points with their latest power is one directory lookup
 * (memory) and one statement, whatever the page size.
 */
import DataLoader from 'dataloader';
import { actsIn, COLLECTIVITY_IDS, isPublic, requireRoleIn, type Role, type Viewer } from '@connecte/shared/auth';
import type { EquipmentKind } from '@connecte/shared/db';
import { badInput, forbidden, unauthenticated } from '@connecte/shared/errors';
import type { BusEvent } from '@connecte/shared/events';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import { isMetricName, METRICS, type MetricName } from '@connecte/shared/senml';
import type { RequestContext } from '@connecte/shared/server';
import type { Bucket, EquipmentReadingsArgs, SubscriptionReadingReceivedArgs } from './generated/graphql.js';
import type { TelemetryResources } from './resources.js';
import { READINGS_TOPIC, type DeviceInfo, type ReadingsEventPayload } from './types.js';

/** Who reads an asset's telemetry in its own collectivity: every bucket, latest values, the stream. */
const READERS: Role[] = ['agent', 'operator', 'admin'];
/** What a partner reads, of any collectivity: aggregated buckets only. */
const PARTNER_BUCKETS: ReadonlySet<Bucket> = new Set(['HOUR', 'DAY']);

/** The longest range per bucket, in days (the schema's description of `readings`). */
export const RANGE_DAYS: Record<Bucket, number> = { RAW: 31, MINUTE: 31, MINUTE_15: 400, HOUR: 400, DAY: 3_660 };
const DAY_MS = 86_400_000;
/**
 * A range of whole Europe/Paris days that contains the autumn change of time is one hour longer
 * than that many days (October 2026 is 31 days and 1 hour): tolerated, so a whole month fits.
 */
const DST_TOLERANCE_MS = 3_600_000;
/** The widths of the buckets computed from raw readings (aligned on the epoch, so on UTC minutes and quarter-hours: the same as Europe/Paris's, whose offsets are whole hours). */
const BIN_MS: Partial<Record<Bucket, number>> = { MINUTE: 60_000, MINUTE_15: 900_000 };
export const MAX_STREAM_EQUIPMENT = 1_000;

export interface LatestValue {
  metric: MetricName;
  unit: string | null;
  value: number;
  time: Date;
}

/** One raw reading (count 1) or one bucket. */
export interface ReadingValue {
  time: Date;
  value: number;
  min: number;
  max: number;
  last: number;
  count: number;
}

export type ReadingConnectionValue = Connection<ReadingValue> & { unit: string | null };

export interface ReadingReceivedValue {
  cursor: string;
  equipment: { id: string };
  kind: EquipmentKind;
  metric: MetricName;
  unit: string | null;
  value: number;
  time: Date;
}

interface LatestKey {
  equipmentId: string;
  /** Deduplicated, in the caller's order; null for every metric. */
  metrics: MetricName[] | null;
}

/** One page of one asset's readings: everything but the asset is shared by a batch's group. */
interface PageKey {
  equipmentId: string;
  metric: MetricName;
  from: Date;
  to: Date;
  bucket: Bucket;
  /** Rows to fetch: the page size plus one (tells whether another page follows). */
  fetch: number;
  /** The decoded `after`: an ISO instant (a reading's time or a bucket's start), or a `YYYY-MM-DD` day for DAY. */
  after: string | null;
}

type RangeKey = Omit<PageKey, 'fetch' | 'after'>;

/** A fetched reading or bucket with its cursor key. */
interface ReadingRow extends ReadingValue {
  key: string;
}

const latestSignature = (k: LatestKey) => JSON.stringify([k.equipmentId, k.metrics]);
const rangeGroup = (k: RangeKey) => JSON.stringify([k.metric, k.from.toISOString(), k.to.toISOString(), k.bucket]);
const pageGroup = (k: PageKey) => JSON.stringify([rangeGroup(k), k.fetch, k.after]);

/** Keys that share everything but the asset, so each group is one statement. */
function groupBy<K extends { equipmentId: string }>(keys: readonly K[], signature: (key: K) => string): { key: K; indexes: number[] }[] {
  const groups = new Map<string, { key: K; indexes: number[] }>();
  keys.forEach((key, index) => {
    const sig = signature(key);
    const group = groups.get(sig) ?? { key, indexes: [] };
    group.indexes.push(index);
    groups.set(sig, group);
  });
  return [...groups.values()];
}

function checkMetric(name: string, field: string): MetricName {
  if (!isMetricName(name)) throw badInput(field, `unknown metric ${JSON.stringify(name)} (known: ${Object.keys(METRICS).join(', ')})`);
  return name;
}

const unitOf = (metric: MetricName) => METRICS[metric].unit;

/** An empty page (what a caller who may not read an asset gets). */
function emptyPage(unit: string | null, hasPrevious: boolean): ReadingConnectionValue {
  return { ...connection<ReadingValue>([], 0, () => '', hasPrevious, async () => 0), unit };
}

/** Cursor keys: the bucket, then the row's time (or day), so a cursor of one bucket is refused by another. */
const cursorKey = (bucket: Bucket, key: string) => `${bucket}|${key}`;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const ISO_DAY = /^\d{4}-\d{2}-\d{2}$/;

function decodeAfter(after: string | null | undefined, bucket: Bucket): string | null {
  const decoded = decodeCursor(after);
  if (decoded === null) return null;
  const [kind, key] = decoded.split('|', 2);
  const shape = bucket === 'DAY' ? ISO_DAY : ISO_MS;
  if (kind !== bucket || key === undefined || !shape.test(key) || Number.isNaN(Date.parse(key))) {
    throw badInput('after', `is not a cursor returned by this API for ${bucket} readings`);
  }
  return key;
}

/** A readings cursor of `readingReceived`: `<eventId>` or `<eventId>.<index in the event>`. */
const STREAM_CURSOR = /^(\d{1,19})(?:\.(\d{1,6}))?$/;
const MAX_EVENT_ID = 2n ** 63n - 1n;

export function parseStreamCursor(after: string | null | undefined): { eventId: bigint; index: number | null } | null {
  if (after === null || after === undefined) return null;
  const match = STREAM_CURSOR.exec(after);
  const eventId = match ? BigInt(match[1]) : -1n;
  if (!match || eventId > MAX_EVENT_ID || (match[2] !== undefined && eventId < 1n)) {
    throw badInput('after', 'is not a cursor returned by readingReceived (`<event id>` or `<event id>.<index>`)');
  }
  return { eventId, index: match[2] === undefined ? null : Number(match[2]) };
}

// --- SQL: one statement per batch (group of keys sharing their arguments) ---

// $1 ids, $2 metric, $3 lower bound (included), $4 upper bound (excluded), $5 rows per asset.
const RAW_PAGE = `
SELECT e.id AS equipment_id, r.time, r.value
FROM unnest($1::text[]) AS e(id)
CROSS JOIN LATERAL (
  SELECT time, value FROM readings
  WHERE equipment_id = e.id AND metric = $2 AND time >= $3 AND time < $4
  ORDER BY time LIMIT $5
) AS r
ORDER BY e.id, r.time`;

/**
 * Minute and quarter-hour buckets, from the raw readings. A GROUP BY over the range would
 * aggregate all of it (400 days of quarter-hours) to serve one page; instead a recursive walk
 * jumps from bucket to bucket through the primary key (the first reading at or after the next
 * bucket's start), at most $6 steps per asset, then aggregates each bucket found. The bounds $3
 * and $4 are bucket starts, so every bucket is whole; they also prune the partitions at plan time.
 * $5 is the bucket width.
 */
const BIN_PAGE = `
WITH RECURSIVE steps(equipment_id, bucket, n) AS (
  SELECT e.id, date_bin($5::interval, f.time, timestamptz '2000-01-01 00:00:00+00'), 1
  FROM unnest($1::text[]) AS e(id)
  CROSS JOIN LATERAL (
    SELECT time FROM readings
    WHERE equipment_id = e.id AND metric = $2 AND time >= $3 AND time < $4
    ORDER BY time LIMIT 1
  ) AS f
  UNION ALL
  SELECT s.equipment_id, date_bin($5::interval, f.time, timestamptz '2000-01-01 00:00:00+00'), s.n + 1
  FROM steps AS s
  CROSS JOIN LATERAL (
    SELECT time FROM readings
    WHERE equipment_id = s.equipment_id AND metric = $2 AND time >= $3 AND time < $4 AND time >= s.bucket + $5::interval
    ORDER BY time LIMIT 1
  ) AS f
  WHERE s.n < $6
)
SELECT s.equipment_id, s.bucket AS time, a.count, a.value, a.min, a.max, a.last
FROM steps AS s
CROSS JOIN LATERAL (
  SELECT count(*)::int AS count, avg(value) AS value, min(value) AS min, max(value) AS max,
         (array_agg(value ORDER BY time DESC))[1] AS last
  FROM readings
  WHERE equipment_id = s.equipment_id AND metric = $2 AND time >= $3 AND time < $4
    AND time >= s.bucket AND time < s.bucket + $5::interval
) AS a
ORDER BY s.equipment_id, s.bucket`;

// $3 lower bound (included), $4 upper bound (excluded), $5 rows per asset.
const HOUR_PAGE = `
SELECT e.id AS equipment_id, h.hour AS time, h.count, h.sum / h.count AS value, h.min, h.max, h.last_value AS last
FROM unnest($1::text[]) AS e(id)
CROSS JOIN LATERAL (
  SELECT hour, count, sum, min, max, last_value FROM reading_rollups_hourly
  WHERE equipment_id = e.id AND metric = $2 AND hour >= $3 AND hour < $4
  ORDER BY hour LIMIT $5
) AS h
ORDER BY e.id, h.hour`;

/**
 * The Europe/Paris days whose midnight is in [$3, $4): from the first midnight at or after $3
 * (the day of the instant just before it, plus one) to the last before $4; after the cursor's
 * day $5. `greatest` ignores a null cursor.
 */
const DAY_BOUNDS = `
  day >= greatest(((($3::timestamptz - interval '1 millisecond') AT TIME ZONE 'Europe/Paris')::date + 1), $5::date + 1)
  AND day < ((($4::timestamptz - interval '1 millisecond') AT TIME ZONE 'Europe/Paris')::date + 1)`;

// $5 the cursor's day or null, $6 rows per asset.
const DAY_PAGE = `
SELECT e.id AS equipment_id, d.day::text AS day, (d.day::timestamp AT TIME ZONE 'Europe/Paris') AS time,
       d.count, d.sum / d.count AS value, d.min, d.max, d.last_value AS last
FROM unnest($1::text[]) AS e(id)
CROSS JOIN LATERAL (
  SELECT day, count, sum, min, max, last_value FROM reading_rollups_daily
  WHERE equipment_id = e.id AND metric = $2 AND ${DAY_BOUNDS}
  ORDER BY day LIMIT $6
) AS d
ORDER BY e.id, d.day`;

/** Per asset, how many readings or buckets the whole range holds: $1 ids, $2 metric, $3 and $4 the bounds ($5 the width for bins). */
const COUNTS: Record<'RAW' | 'BIN' | 'HOUR' | 'DAY', string> = {
  RAW: `SELECT e.id AS equipment_id,
    (SELECT count(*) FROM readings WHERE equipment_id = e.id AND metric = $2 AND time >= $3 AND time < $4)::int AS count
    FROM unnest($1::text[]) AS e(id)`,
  BIN: `SELECT e.id AS equipment_id,
    (SELECT count(DISTINCT date_bin($5::interval, time, timestamptz '2000-01-01 00:00:00+00')) FROM readings
     WHERE equipment_id = e.id AND metric = $2 AND time >= $3 AND time < $4)::int AS count
    FROM unnest($1::text[]) AS e(id)`,
  HOUR: `SELECT e.id AS equipment_id,
    (SELECT count(*) FROM reading_rollups_hourly WHERE equipment_id = e.id AND metric = $2 AND hour >= $3 AND hour < $4)::int AS count
    FROM unnest($1::text[]) AS e(id)`,
  DAY: `SELECT e.id AS equipment_id,
    (SELECT count(*) FROM reading_rollups_daily WHERE equipment_id = e.id AND metric = $2 AND ${DAY_BOUNDS.replace('$5::date', 'NULL::date')})::int AS count
    FROM unnest($1::text[]) AS e(id)`,
};

interface ReadingSqlRow {
  equipment_id: string;
  time: Date;
  value: number;
  min?: number;
  max?: number;
  last?: number;
  count?: number;
  day?: string;
}

const ceilTo = (ms: number, width: number) => Math.ceil(ms / width) * width;

/**
 * The rules of telemetry's read side for one caller; one instance per request, holding its
 * loaders (so their caches live as long as the request).
 */
export class ReadingService {
  private readonly viewer: Viewer;
  /** The collectivities whose assets' telemetry the caller reads in full. */
  private readonly readable: ReadonlySet<string>;
  private readonly partner: boolean;

  private readonly devices: DataLoader<string, DeviceInfo | null>;
  private readonly latestLoader: DataLoader<LatestKey, LatestValue[], string>;
  private readonly pageLoader: DataLoader<PageKey, ReadingRow[], string>;
  private readonly countLoader: DataLoader<RangeKey, number, string>;

  constructor(
    base: RequestContext,
    private readonly r: TelemetryResources,
  ) {
    this.viewer = base.viewer;
    this.readable = new Set(base.viewer.collectivities.filter((id) => actsIn(base.viewer, id, READERS)));
    this.partner = base.viewer.roles.includes('partner');
    this.devices = new DataLoader(async (ids) => {
      const found = await this.r.directory.lookup(ids);
      return ids.map((id) => found.get(id) ?? null);
    });
    this.latestLoader = new DataLoader((keys) => this.loadLatest(keys), { cacheKeyFn: latestSignature });
    this.pageLoader = new DataLoader((keys) => this.loadPages(keys), {
      cacheKeyFn: (k) => JSON.stringify([k.equipmentId, pageGroup(k)]),
    });
    this.countLoader = new DataLoader((keys) => this.loadCounts(keys), {
      cacheKeyFn: (k) => JSON.stringify([k.equipmentId, rangeGroup(k)]),
    });
  }

  /** Whether the caller may read this asset's readings in `bucket` (latest values: as RAW). */
  private mayRead(device: DeviceInfo | null, bucket: Bucket): boolean {
    if (!device) return false;
    return this.readable.has(device.collectivityId) || (this.partner && PARTNER_BUCKETS.has(bucket));
  }

  /** Whether the caller could read anything of some asset in `bucket`: if not, no lookup at all. */
  private mayReadAny(bucket: Bucket): boolean {
    return this.readable.size > 0 || (this.partner && PARTNER_BUCKETS.has(bucket));
  }

  // --- Equipment.latest ---

  async latest(equipmentId: string, metrics: readonly string[] | null | undefined): Promise<LatestValue[]> {
    const wanted = metrics ? [...new Set(metrics.map((m) => checkMetric(m, 'metrics')))] : null;
    if (wanted?.length === 0 || !this.mayReadAny('RAW')) return [];
    return this.latestLoader.load({ equipmentId, metrics: wanted });
  }

  /**
   * One statement for the whole batch: the readable assets' rows of every metric any key asks
   * for (all of them if one key asks for all), shared out per key. In the order of `metrics`
   * when given, else of the metric table.
   */
  private async loadLatest(keys: readonly LatestKey[]): Promise<LatestValue[][]> {
    const devices = await this.devices.loadMany(keys.map((k) => k.equipmentId));
    const readable = keys.filter((k, i) => this.mayRead(asDevice(devices[i]), 'RAW'));
    if (readable.length === 0) return keys.map(() => []);
    const ids = [...new Set(readable.map((k) => k.equipmentId))];
    const allMetrics = readable.some((k) => k.metrics === null);
    const metrics = allMetrics ? null : [...new Set(readable.flatMap((k) => k.metrics!))];
    const { rows } = await this.r.db.pool.query<{ equipment_id: string; metric: MetricName; time: Date; value: number }>(
      `SELECT equipment_id, metric, time, value FROM latest_readings
       WHERE equipment_id = ANY($1::text[]) AND ($2::text[] IS NULL OR metric = ANY($2::text[]))`,
      [ids, metrics],
    );
    const byAsset = new Map<string, Map<MetricName, LatestValue>>();
    for (const row of rows) {
      if (!isMetricName(row.metric)) continue;
      const values = byAsset.get(row.equipment_id) ?? new Map<MetricName, LatestValue>();
      values.set(row.metric, { metric: row.metric, unit: unitOf(row.metric), value: row.value, time: row.time });
      byAsset.set(row.equipment_id, values);
    }
    const tableOrder = Object.keys(METRICS) as MetricName[];
    return keys.map((key, i) => {
      if (!this.mayRead(asDevice(devices[i]), 'RAW')) return [];
      const values = byAsset.get(key.equipmentId);
      if (!values) return [];
      return (key.metrics ?? tableOrder).flatMap((metric) => values.get(metric) ?? []);
    });
  }

  // --- Equipment.readings ---

  async readings(equipmentId: string, args: EquipmentReadingsArgs): Promise<ReadingConnectionValue> {
    const metric = checkMetric(args.metric, 'metric');
    const bucket: Bucket = args.bucket ?? 'RAW';
    const { from, to } = args;
    if (!(from.getTime() < to.getTime())) throw badInput('to', 'must be after from');
    const maxMs = RANGE_DAYS[bucket] * DAY_MS + DST_TOLERANCE_MS;
    if (to.getTime() - from.getTime() > maxMs) {
      throw badInput('to', `must be at most ${RANGE_DAYS[bucket].toLocaleString('en')} days after from for ${bucket} readings`);
    }
    const limit = pageSize(args.first);
    const after = decodeAfter(args.after, bucket);
    const unit = unitOf(metric);
    if (!this.mayReadAny(bucket) || !this.mayRead(await this.devices.load(equipmentId), bucket)) return emptyPage(unit, after !== null);
    const range: RangeKey = { equipmentId, metric, from, to, bucket };
    const rows = limit === 0 ? [] : await this.pageLoader.load({ ...range, fetch: limit + 1, after });
    return { ...connection(rows, limit, (row) => cursorKey(bucket, row.key), after !== null, () => this.countLoader.load(range)), unit };
  }

  private async loadPages(keys: readonly PageKey[]): Promise<ReadingRow[][]> {
    const results: ReadingRow[][] = keys.map(() => []);
    await Promise.all(
      groupBy(keys, pageGroup).map(async ({ key, indexes }) => {
        const ids = [...new Set(indexes.map((i) => keys[i].equipmentId))];
        const byAsset = new Map<string, ReadingRow[]>();
        for (const row of await this.pageRows(ids, key)) {
          const list = byAsset.get(row.equipment_id) ?? [];
          list.push(row);
          byAsset.set(row.equipment_id, list);
        }
        for (const i of indexes) results[i] = byAsset.get(keys[i].equipmentId) ?? [];
      }),
    );
    return results;
  }

  private async pageRows(ids: string[], key: PageKey): Promise<(ReadingRow & { equipment_id: string })[]> {
    const { metric, from, to, bucket, fetch, after } = key;
    const query = async (sql: string, values: unknown[]) => (await this.r.db.pool.query<ReadingSqlRow>(sql, values)).rows;
    const width = BIN_MS[bucket];
    let rows: ReadingSqlRow[];
    if (bucket === 'RAW' || bucket === 'HOUR') {
      // Times are stored to the millisecond: "after the cursor" is "from the next millisecond".
      const lower = new Date(Math.max(from.getTime(), after === null ? -Infinity : Date.parse(after) + 1));
      if (lower >= to) return [];
      rows = await query(bucket === 'RAW' ? RAW_PAGE : HOUR_PAGE, [ids, metric, lower, to, fetch]);
    } else if (width) {
      const { lower, upper } = binBounds(from, to, width, after);
      if (lower >= upper) return [];
      rows = await query(BIN_PAGE, [ids, metric, new Date(lower), new Date(upper), `${width / 1000} seconds`, fetch]);
    } else {
      rows = await query(DAY_PAGE, [ids, metric, from, to, after, fetch]);
    }
    return rows.map((row) => ({
      equipment_id: row.equipment_id,
      key: row.day ?? row.time.toISOString(),
      time: row.time,
      value: row.value,
      min: row.min ?? row.value,
      max: row.max ?? row.value,
      last: row.last ?? row.value,
      count: row.count ?? 1,
    }));
  }

  private async loadCounts(keys: readonly RangeKey[]): Promise<number[]> {
    const results = keys.map(() => 0);
    await Promise.all(
      groupBy(keys, rangeGroup).map(async ({ key, indexes }) => {
        const ids = [...new Set(indexes.map((i) => keys[i].equipmentId))];
        const { metric, from, to, bucket } = key;
        const width = BIN_MS[bucket];
        let sql: string;
        let values: unknown[];
        if (width) {
          const { lower, upper } = binBounds(from, to, width, null);
          sql = COUNTS.BIN;
          values = [ids, metric, new Date(lower), new Date(upper), `${width / 1000} seconds`];
        } else {
          sql = COUNTS[bucket as 'RAW' | 'HOUR' | 'DAY'];
          values = [ids, metric, from, to];
        }
        const { rows } = await this.r.db.pool.query<{ equipment_id: string; count: number }>(sql, values);
        const counts = new Map(rows.map((row) => [row.equipment_id, row.count]));
        for (const i of indexes) results[i] = counts.get(keys[i].equipmentId) ?? 0;
      }),
    );
    return results;
  }

  // --- Subscription.readingReceived ---

  /**
   * The stream of committed readings matching the filter, one at a time. Several readings share
   * one event (one per ingest transaction and collectivity), so a reading's cursor is
   * `<event id>.<index in the event>`: resuming after it replays the event from the bus (after the
   * id before it) and skips the readings up to that index. The bus subscription is taken before
   * anything is awaited, so without `after` every reading committed after the call is delivered.
   */
  async received(args: SubscriptionReadingReceivedArgs): Promise<AsyncIterableIterator<{ readingReceived: ReadingReceivedValue }>> {
    const { filter } = args;
    const resume = parseStreamCursor(args.after);
    const byIds = filter.equipmentIds !== null && filter.equipmentIds !== undefined;
    const byKinds = (filter.kinds !== null && filter.kinds !== undefined) || (filter.collectivityId !== null && filter.collectivityId !== undefined);
    if (byIds === byKinds) throw badInput('filter', 'give either equipmentIds, or kinds with collectivityId (one of the two)');
    const metrics = filter.metrics ? new Set(filter.metrics.map((m, i) => checkMetric(m, `filter.metrics.${i}`))) : null;
    if (isPublic(this.viewer)) throw unauthenticated('authentication required: readings are streamed to agents, operators and admins of the assets’ collectivity');

    let equipmentIds: Set<string> | null = null;
    let kinds: Set<EquipmentKind> | null = null;
    let collectivityIds: string[];
    if (byIds) {
      const ids = filter.equipmentIds!;
      if (ids.length === 0) throw badInput('filter.equipmentIds', 'must name at least one asset');
      if (ids.length > MAX_STREAM_EQUIPMENT) throw badInput('filter.equipmentIds', `must name at most ${MAX_STREAM_EQUIPMENT.toLocaleString('en')} assets`);
      equipmentIds = new Set(ids);
      // Narrowed to the assets' own collectivities once they are looked up (below).
      collectivityIds = [...this.readable];
      if (collectivityIds.length === 0) throw this.refusal('filter.equipmentIds');
    } else {
      if (!filter.kinds) throw badInput('filter.kinds', 'is required with filter.collectivityId');
      if (filter.kinds.length === 0) throw badInput('filter.kinds', 'must name at least one kind');
      const collectivityId = filter.collectivityId;
      if (collectivityId === null || collectivityId === undefined) throw badInput('filter.collectivityId', 'is required with filter.kinds');
      if (!(COLLECTIVITY_IDS as readonly string[]).includes(collectivityId)) {
        throw badInput('filter.collectivityId', `is not a known collectivity (known: ${COLLECTIVITY_IDS.join(', ')})`);
      }
      requireRoleIn(this.viewer, collectivityId, READERS, 'filter.collectivityId');
      kinds = new Set(filter.kinds);
      collectivityIds = [collectivityId];
    }

    const abort = new AbortController();
    const source = this.r.events.subscribe({
      topics: [READINGS_TOPIC],
      after: resume === null ? undefined : resume.index === null ? resume.eventId : resume.eventId - 1n,
      collectivityIds,
      signal: abort.signal,
    });
    if (equipmentIds) {
      try {
        const found = await this.r.directory.lookup([...equipmentIds]);
        for (const [i, id] of filter.equipmentIds!.entries()) {
          const device = found.get(id);
          if (!device) throw badInput(`filter.equipmentIds.${i}`, `no equipment with id ${id}`);
          if (!this.readable.has(device.collectivityId)) throw this.refusal(`filter.equipmentIds.${i}`, device.collectivityId);
        }
      } catch (error) {
        abort.abort();
        await source.return?.();
        throw error;
      }
    }

    const pending: ReadingReceivedValue[] = [];
    const take = (event: BusEvent) => {
      const entries = (event.payload as Partial<ReadingsEventPayload> | null)?.r;
      if (!Array.isArray(entries)) return;
      const skipThrough = resume && resume.index !== null && BigInt(event.id) === resume.eventId ? resume.index : -1;
      entries.forEach((entry, index) => {
        if (index <= skipThrough || !Array.isArray(entry)) return;
        const [equipmentId, kind, metric, time, value] = entry;
        if (equipmentIds ? !equipmentIds.has(equipmentId) : !kinds!.has(kind)) return;
        if (!isMetricName(metric) || (metrics && !metrics.has(metric))) return;
        pending.push({ cursor: `${event.id}.${index}`, equipment: { id: equipmentId }, kind, metric, unit: unitOf(metric), value, time: new Date(time) });
      });
    };

    const iterator: AsyncIterableIterator<{ readingReceived: ReadingReceivedValue }> = {
      async next() {
        while (pending.length === 0) {
          const next = await source.next();
          if (next.done) return { done: true, value: undefined };
          take(next.value);
        }
        return { done: false, value: { readingReceived: pending.shift()! } };
      },
      async return() {
        abort.abort();
        pending.length = 0;
        await source.return?.();
        return { done: true, value: undefined };
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** FORBIDDEN naming the filter's field: what the caller lacks, and that a partner reads only buckets. */
  private refusal(field: string, collectivityId?: string) {
    const where = collectivityId ? `in collectivity '${collectivityId}'` : 'in the assets’ collectivity';
    const partner = this.partner ? ' (partners read hourly and daily readings, not the stream)' : '';
    return forbidden(`${field}: needs role ${READERS.join(' or ')} ${where}${partner}`, field);
  }
}

/** A DataLoader's `loadMany` answer: an Error for a failed id is treated as unknown. */
const asDevice = (value: DeviceInfo | null | Error): DeviceInfo | null => (value instanceof Error ? null : value);

/**
 * Bounds of the raw readings behind whole buckets of `width` that start in [from, to) and after
 * the cursor's bucket: from the first bucket start at or after `from`, to the first at or after `to`.
 */
function binBounds(from: Date, to: Date, width: number, after: string | null): { lower: number; upper: number } {
  const start = ceilTo(from.getTime(), width);
  return { lower: after === null ? start : Math.max(start, Date.parse(after) + width), upper: ceilTo(to.getTime(), width) };
}
