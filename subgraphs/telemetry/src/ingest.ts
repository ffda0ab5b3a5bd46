/**
 * The one write path of readings, for MQTT and HTTP alike. `ingest(messages)` validates each
 * message (senml-validate.ts), checks each record's equipment against the device directory and
 * the sender, makes sure the partitions of its days exist (partitions.ts, before the transaction:
 * DDL must not run inside it), then writes everything of the whole array in ONE transaction:
 *
 * 1. the readings, one statement from `unnest` arrays, ON CONFLICT (equipment_id, metric, time)
 *    DO NOTHING: its row count is what was accepted, the rest were duplicates (which ones, only
 *    when there are any, by a second look: the rows carrying this transaction's xid);
 * 2. from the rows actually inserted only, one statement for the latest values (moved forward in
 *    time only) and the hourly (UTC) and daily (Europe/Paris) roll-ups: count, sum, min, max,
 *    first and last by time. The increments are aggregated here, one row per key, from the
 *    inserted rows in key order, so the statement only merges them (no sort, no time-zone
 *    arithmetic, no grouping in the database, which is the bottleneck);
 * 3. dead letters for MQTT messages with a rejected record or refused whole;
 * 4. one `telemetry.readings` event per collectivity;
 * 5. the alarm engine's evaluation of the stored readings.
 *
 * Concurrent batches. A reading inserted by a transaction that is still running makes a
 * concurrent insert of the same key wait for its outcome (the unique index), so a key is counted
 * in the roll-ups exactly once, by the transaction whose insert committed; a rollback undoes its
 * roll-up increments with its rows. Every statement takes its rows in key order (readings, then
 * latest, then hourly, then daily, each sorted the same way), so two batches never wait on each
 * other in a cycle. Duplicates inside one batch are removed before the statement (the first
 * record wins) and counted as duplicates.
 *
 * Array parameters go in PostgreSQL's binary format (see float8Array): at 500 records a batch,
 * pg's text serialisation and the server's parsing of it were the largest costs after the writes.
 *
 * Throws only when the database fails (nothing is then written): the MQTT worker does not ack
 * and retries; HTTP answers 503.
 */
import type pg from 'pg';
import { Counter, Histogram, type Registry } from 'prom-client';
import { publishEvents, type NewEvent } from '@connecte/shared/events';
import type { MetricName } from '@connecte/shared/senml';
import { ensurePartitions, retentionPolicy, utcDay } from './partitions.js';
import type { TelemetryResources } from './resources.js';
import { quote, validateSenml, type CodedRejection, type RejectionCode } from './senml-validate.js';
import {
  READINGS_TOPIC,
  type DeviceInfo,
  type IngestMessage,
  type IngestRecord,
  type IngestResult,
  type Principal,
  type ReadingsEventPayload,
  type Rejection,
  type StoredReading,
} from './types.js';

/** What a dead letter keeps of a payload. */
export const DEAD_LETTER_MAX_BYTES = 64 * 1024;

/**
 * The readings, in the order given (sorted by key: the order in which unique-index entries are
 * taken). Its row count is how many were inserted; the others were already stored.
 */
const READINGS_SQL = `
INSERT INTO readings (equipment_id, metric, time, value, collectivity_id)
SELECT u.equipment_id, u.metric, 'epoch'::timestamptz + u.ms * interval '1 millisecond', u.value, u.collectivity_id
FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::text[]) AS u(equipment_id, metric, ms, value, collectivity_id)
ON CONFLICT (equipment_id, metric, time) DO NOTHING`;

/**
 * Only when some were not inserted (duplicates): which were, by position. A row this transaction
 * inserted carries its xid (the Ingestor runs no savepoint, so no subtransaction's).
 */
const INSERTED_SQL = `
SELECT u.n::int AS n
FROM unnest($1::text[], $2::text[], $3::float8[]) WITH ORDINALITY AS u(equipment_id, metric, ms, n)
JOIN readings r ON r.equipment_id = u.equipment_id AND r.metric = u.metric AND r.time = 'epoch'::timestamptz + u.ms * interval '1 millisecond'
WHERE r.xmin = pg_current_xact_id()::xid`;

const EPOCH_MS = (column: string) => `'epoch'::timestamptz + ${column} * interval '1 millisecond'`;

/** The merge of an increment into a roll-up row (`r`) from the batch's (`excluded`). */
const MERGE_ROLLUP = (r: string) => `
    collectivity_id = excluded.collectivity_id,
    count = ${r}.count + excluded.count,
    sum = ${r}.sum + excluded.sum,
    min = least(${r}.min, excluded.min),
    max = greatest(${r}.max, excluded.max),
    first_time = least(${r}.first_time, excluded.first_time),
    first_value = CASE WHEN excluded.first_time < ${r}.first_time THEN excluded.first_value ELSE ${r}.first_value END,
    last_time = greatest(${r}.last_time, excluded.last_time),
    last_value = CASE WHEN excluded.last_time > ${r}.last_time THEN excluded.last_value ELSE ${r}.last_value END`;

/**
 * Latest values, hourly and daily roll-ups of the rows the readings statement inserted, aggregated
 * by the Ingestor (one row per key, in key order: the order in which rows are locked). The three
 * run in this order in every transaction, so two batches never wait on each other in a cycle.
 */
const DERIVED_SQL = `
WITH latest AS (
  INSERT INTO latest_readings AS l (equipment_id, metric, time, value, collectivity_id)
  SELECT u.e, u.m, ${EPOCH_MS('u.ms')}, u.v, u.c
  FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::text[]) AS u(e, m, ms, v, c)
  ON CONFLICT (equipment_id, metric) DO UPDATE
    SET time = excluded.time, value = excluded.value, collectivity_id = excluded.collectivity_id, received_at = excluded.received_at
    WHERE l.time < excluded.time
),
hourly AS (
  INSERT INTO reading_rollups_hourly AS h
    (equipment_id, metric, hour, collectivity_id, count, sum, min, max, first_time, first_value, last_time, last_value)
  SELECT u.e, u.m, ${EPOCH_MS('u.bucket')}, u.c, u.n, u.sum, u.min, u.max, ${EPOCH_MS('u.first_ms')}, u.first_v, ${EPOCH_MS('u.last_ms')}, u.last_v
  FROM unnest($6::text[], $7::text[], $8::float8[], $9::text[], $10::int[], $11::float8[], $12::float8[], $13::float8[],
              $14::float8[], $15::float8[], $16::float8[], $17::float8[])
       AS u(e, m, bucket, c, n, sum, min, max, first_ms, first_v, last_ms, last_v)
  ON CONFLICT (equipment_id, metric, hour) DO UPDATE SET ${MERGE_ROLLUP('h')}
),
daily AS (
  INSERT INTO reading_rollups_daily AS d
    (equipment_id, metric, day, collectivity_id, kind, count, sum, min, max, first_time, first_value, last_time, last_value)
  SELECT u.e, u.m, u.day::date, u.c, u.k, u.n, u.sum, u.min, u.max, ${EPOCH_MS('u.first_ms')}, u.first_v, ${EPOCH_MS('u.last_ms')}, u.last_v
  FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::int[], $24::float8[], $25::float8[], $26::float8[],
              $27::float8[], $28::float8[], $29::float8[], $30::float8[])
       AS u(e, m, day, c, k, n, sum, min, max, first_ms, first_v, last_ms, last_v)
  ON CONFLICT (equipment_id, metric, day) DO UPDATE SET ${MERGE_ROLLUP('d')}, kind = excluded.kind
)
SELECT 1`;

const DEAD_LETTER_SQL = `
INSERT INTO ingest_dead_letters (transport, topic, collectivity_id, equipment_id, payload, payload_bytes, reasons)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::jsonb[])`;

/** The payload as a dead letter keeps it: at most 64 KiB, as text, NUL escaped (PostgreSQL text cannot hold it). */
export function deadLetterText(payload: Buffer): string {
  const text = payload.subarray(0, DEAD_LETTER_MAX_BYTES).toString('utf8');
  return text.includes('\u0000') ? text.replaceAll('\u0000', '\\u0000') : text;
}

type Outcome = 'accepted' | 'duplicate' | 'rejected';

/** Prometheus counters of ingest, in the service's registry. */
export class IngestMetrics {
  readonly records: Counter<'transport' | 'outcome' | 'reason'>;
  readonly messages: Counter<'transport' | 'outcome'>;
  readonly batchSeconds: Histogram<'transport'>;

  constructor(registry: Registry) {
    this.records = new Counter({
      name: 'telemetry_ingest_records_total',
      help: 'SenML records ingested, by transport (mqtt, http), outcome (accepted, duplicate, rejected) and reason of a rejection',
      labelNames: ['transport', 'outcome', 'reason'] as const,
      registers: [registry],
    });
    this.messages = new Counter({
      name: 'telemetry_ingest_messages_total',
      help: 'Ingest messages (MQTT publishes, HTTP bodies), by transport and outcome (stored, partial, refused, failed: the database failed)',
      labelNames: ['transport', 'outcome'] as const,
      registers: [registry],
    });
    this.batchSeconds = new Histogram({
      name: 'telemetry_ingest_batch_seconds',
      help: 'Duration of one ingest call (validation and its transaction), by transport',
      labelNames: ['transport'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  }
}

const metricsByRegistry = new WeakMap<Registry, IngestMetrics>();

/** One set of counters per registry (several Ingestors of one service share it). */
export function ingestMetricsFor(registry: Registry): IngestMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (!metrics) metricsByRegistry.set(registry, (metrics = new IngestMetrics(registry)));
  return metrics;
}

/** A validated record, with what the directory says of its device. */
interface Candidate {
  record: IngestRecord;
  message: number;
  device: DeviceInfo;
}

interface MessageState {
  message: IngestMessage;
  result: IngestResult;
  /** Rejections with their codes (the result holds them without). */
  coded: CodedRejection[];
  refused: CodedRejection | null;
}

/** An IngestResult, with the code of a whole-message refusal. */
export interface DetailedIngestResult extends IngestResult {
  refusal: RejectionCode | null;
}

const DAY_MS = 86_400_000;

const publicRejection = ({ index, field, reason }: CodedRejection): Rejection => ({ index, field, reason });

/** Why `principal` may not report for equipment `equipmentId` (`device` as the directory knows it), or null. */
function notAllowed(principal: Principal, equipmentId: string, device: DeviceInfo | undefined): CodedRejection | null {
  switch (principal.kind) {
    case 'device':
      if (equipmentId !== principal.equipmentId) {
        return { index: null, field: 'bn', code: 'not_allowed', reason: `this device credential reports only for equipment ${quote(principal.equipmentId)}, not ${quote(equipmentId)}` };
      }
      break;
    case 'topic':
      if (equipmentId !== principal.equipmentId) {
        return { index: null, field: 'bn', code: 'not_allowed', reason: `the record is for equipment ${quote(equipmentId)}, but it was published on the topic of ${quote(principal.equipmentId)}` };
      }
      break;
    case 'ingest-key':
      // Unknown and another collectivity's read the same: a key learns nothing of other collectivities.
      if (!device || device.collectivityId !== principal.collectivityId) {
        return { index: null, field: 'bn', code: 'unknown_equipment', reason: `unknown equipment ${quote(equipmentId)} in collectivity ${quote(principal.collectivityId)}` };
      }
      break;
  }
  if (!device) return { index: null, field: 'bn', code: 'unknown_equipment', reason: `unknown equipment ${quote(equipmentId)}` };
  if (principal.kind !== 'ingest-key' && device.collectivityId !== principal.collectivityId) {
    return {
      index: null,
      field: principal.kind === 'topic' ? 'topic' : 'bn',
      code: 'not_allowed',
      reason: `equipment ${quote(equipmentId)} is not of collectivity ${quote(principal.collectivityId)}`,
    };
  }
  if (device.status === 'DECOMMISSIONED') {
    return { index: null, field: 'bn', code: 'decommissioned', reason: `equipment ${quote(equipmentId)} is decommissioned: its readings are no longer taken` };
  }
  return null;
}

export class Ingestor {
  private metricsCache: IngestMetrics | null | undefined;

  constructor(private readonly r: TelemetryResources) {}

  private get metrics(): IngestMetrics | null {
    if (this.metricsCache === undefined) this.metricsCache = this.r.metrics ? ingestMetricsFor(this.r.metrics.registry) : null;
    return this.metricsCache;
  }

  /** Results in the order of `messages`. Throws only when the database fails (nothing is written then). */
  async ingest(messages: IngestMessage[]): Promise<IngestResult[]> {
    return (await this.ingestDetailed(messages)).map(({ accepted, duplicate, rejected }) => ({ accepted, duplicate, rejected }));
  }

  /** `ingest`, with why a message was refused whole (HTTP answers 400 or 413 from it). */
  async ingestDetailed(messages: IngestMessage[]): Promise<DetailedIngestResult[]> {
    const started = performance.now();
    const now = Date.now();
    const policy = retentionPolicy(this.r.config);
    const states: MessageState[] = messages.map((message) => ({
      message,
      result: { accepted: 0, duplicate: 0, rejected: [] },
      coded: [],
      refused: null,
    }));

    // 1. Validation, message by message.
    const packs = messages.map((message) =>
      validateSenml(message.payload, { now, maxRecords: this.r.config.INGEST_MAX_RECORDS, retentionDays: policy.daysOf }),
    );
    // The records' devices, and the devices a topic or a device credential names.
    const ids = new Set<string>();
    for (const m of messages) if (m.principal.kind !== 'ingest-key') ids.add(m.principal.equipmentId);
    for (const pack of packs) for (const record of pack.records) ids.add(record.equipmentId);
    const devices = ids.size > 0 ? await this.r.directory.lookup([...ids]) : new Map<string, DeviceInfo>();

    // 2. Ownership and the directory, record by record; duplicates inside the batch.
    const candidates: Candidate[] = [];
    const seen = new Set<string>();
    packs.forEach((pack, m) => {
      const state = states[m];
      const { principal } = state.message;
      if (pack.refused) {
        state.refused = pack.refused;
        return;
      }
      // A topic pairing an equipment with a collectivity that does not own it: the whole message.
      if (principal.kind === 'topic') {
        const device = devices.get(principal.equipmentId);
        if (device && device.collectivityId !== principal.collectivityId) {
          state.refused = {
            index: null,
            field: 'topic',
            code: 'not_allowed',
            reason: `equipment ${quote(principal.equipmentId)} of the topic is not of collectivity ${quote(principal.collectivityId)}`,
          };
          return;
        }
      }
      state.coded.push(...pack.rejected);
      for (const record of pack.records) {
        const device = devices.get(record.equipmentId);
        const refusal = notAllowed(principal, record.equipmentId, device);
        if (refusal) {
          state.coded.push({ ...refusal, index: record.index });
          continue;
        }
        const key = `${record.equipmentId}\u0000${record.metric}\u0000${record.time.getTime()}`;
        if (seen.has(key)) {
          state.result.duplicate++;
          continue;
        }
        seen.add(key);
        candidates.push({ record, message: m, device: device! });
      }
      state.coded.sort((a, b) => (a.index ?? -1) - (b.index ?? -1));
    });
    for (const state of states) {
      state.result.rejected = state.refused ? [publicRejection(state.refused)] : state.coded.map(publicRejection);
    }

    // 3. Partitions for the days of the candidates (usually cached: no query).
    if (candidates.length > 0) {
      const days = new Set<number>();
      for (const candidate of candidates) days.add(Math.floor(candidate.record.time.getTime() / DAY_MS));
      await ensurePartitions(this.r.db.pool, [...days].map((day) => utcDay(day * DAY_MS)));
    }

    // 4. One transaction for everything.
    const deadLetters = states.filter((s) => s.message.transport === 'mqtt' && (s.refused || s.coded.length > 0));
    let stored: StoredReading[] = [];
    if (candidates.length > 0 || deadLetters.length > 0) {
      const client = await this.r.db.pool.connect();
      try {
        await client.query('BEGIN');
        let inserted: Candidate[] = [];
        if (candidates.length > 0) inserted = await this.insert(client, candidates);
        for (const candidate of inserted) states[candidate.message].result.accepted++;
        stored = inserted.map(({ record, device }) => ({
          equipmentId: record.equipmentId,
          collectivityId: device.collectivityId,
          kind: device.kind,
          metric: record.metric,
          time: record.time,
          value: record.value,
        }));
        if (deadLetters.length > 0) await this.writeDeadLetters(client, deadLetters);
        if (stored.length > 0) {
          await publishEvents(client, readingsEvents(stored));
          await this.r.alarms.evaluate(client, stored);
        }
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        // A connection that failed mid-transaction is not reused.
        client.release(true);
        for (const message of messages) this.metrics?.messages.inc({ transport: message.transport, outcome: 'failed' });
        throw error;
      }
      client.release();
    }
    // Duplicates: candidates the insert did not take, plus those within the batch (counted above).
    const acceptedBy = states.map((s) => s.result.accepted);
    const candidatesBy = new Array<number>(states.length).fill(0);
    for (const candidate of candidates) candidatesBy[candidate.message]++;
    states.forEach((state, m) => {
      state.result.duplicate += candidatesBy[m] - acceptedBy[m];
    });

    this.count(states, performance.now() - started);
    return states.map((state) => ({ ...state.result, refusal: state.refused?.code ?? null }));
  }

  /**
   * The readings (READINGS_SQL), then what derives from the rows it inserted (DERIVED_SQL); returns
   * the candidates it inserted, in key order.
   */
  private async insert(client: pg.PoolClient, candidates: Candidate[]): Promise<Candidate[]> {
    candidates.sort(byKey);
    const n = candidates.length;
    const equipment = new Array<string>(n);
    const metric = new Array<MetricName>(n);
    const ms = new Array<number>(n);
    const value = new Array<number>(n);
    const collectivity = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const { record, device } = candidates[i];
      equipment[i] = record.equipmentId;
      metric[i] = record.metric;
      ms[i] = record.time.getTime();
      value[i] = record.value;
      collectivity[i] = device.collectivityId;
    }
    const keys = [textArray(equipment), textArray(metric), float8Array(ms)];
    const result = await client.query({ name: 'telemetry-ingest-readings', text: READINGS_SQL, values: [...keys, float8Array(value), textArray(collectivity)] });
    let inserted = candidates;
    if ((result.rowCount ?? 0) < n) {
      const { rows } = await client.query<{ n: number }>({ name: 'telemetry-ingest-inserted', text: INSERTED_SQL, values: keys });
      const taken = new Uint8Array(n);
      for (const row of rows) taken[row.n - 1] = 1;
      inserted = candidates.filter((_, i) => taken[i] === 1);
    }
    if (inserted.length > 0) {
      await client.query({ name: 'telemetry-ingest-derived', text: DERIVED_SQL, values: derivedParameters(inserted) });
    }
    return inserted;
  }

  private async writeDeadLetters(client: pg.PoolClient, states: MessageState[]): Promise<void> {
    const columns: [string[], (string | null)[], (string | null)[], (string | null)[], string[], number[], string[]] = [[], [], [], [], [], [], []];
    for (const state of states) {
      const { message } = state;
      const principal = message.principal;
      columns[0].push(message.transport);
      columns[1].push(message.topic);
      columns[2].push(principal.collectivityId);
      columns[3].push(principal.kind === 'ingest-key' ? null : principal.equipmentId);
      columns[4].push(deadLetterText(message.payload));
      columns[5].push(message.payload.length);
      columns[6].push(JSON.stringify(state.result.rejected));
    }
    await client.query(DEAD_LETTER_SQL, columns);
  }

  private count(states: MessageState[], elapsedMs: number): void {
    const metrics = this.metrics;
    if (!metrics) return;
    const transports = new Set<IngestMessage['transport']>();
    for (const { message, result, coded, refused } of states) {
      const transport = message.transport;
      transports.add(transport);
      const add = (outcome: Outcome, reason: RejectionCode | 'none', by: number) => {
        if (by > 0) metrics.records.inc({ transport, outcome, reason }, by);
      };
      add('accepted', 'none', result.accepted);
      add('duplicate', 'none', result.duplicate);
      if (refused) add('rejected', refused.code, 1);
      for (const rejection of coded) add('rejected', rejection.code, 1);
      const outcome = refused ? 'refused' : result.rejected.length > 0 ? 'partial' : 'stored';
      metrics.messages.inc({ transport, outcome });
    }
    for (const transport of transports) metrics.batchSeconds.observe({ transport }, elapsedMs / 1000);
  }
}

/** One `telemetry.readings` event per collectivity, readings in the order stored. */
function readingsEvents(stored: StoredReading[]): NewEvent[] {
  const byCollectivity = new Map<string, ReadingsEventPayload['r']>();
  // Readings of a batch share few times (a device's metrics, a gateway's round): format each once.
  let lastMs = NaN;
  let lastIso = '';
  for (const reading of stored) {
    const ms = reading.time.getTime();
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = reading.time.toISOString();
    }
    let list = byCollectivity.get(reading.collectivityId);
    if (!list) byCollectivity.set(reading.collectivityId, (list = []));
    list.push([reading.equipmentId, reading.kind, reading.metric, lastIso, reading.value]);
  }
  return [...byCollectivity].map(([collectivityId, r]) => ({ topic: READINGS_TOPIC, collectivityId, payload: { r } satisfies ReadingsEventPayload }));
}

/*
 * Array parameters in PostgreSQL's binary format (a Buffer parameter is sent as binary by pg):
 * pg's own text serialisation escapes element by element, and the server then parses every
 * element's text; here each number is 8 bytes written as is, each text its bytes. This was the
 * largest cost of the Ingestor in Node and a measurable one in PostgreSQL. Layout (array_recv):
 * ndim, has-nulls flag, element type oid, then per dimension its length and lower bound, then
 * per element its length and bytes.
 */
const FLOAT8 = 701;
const INT4 = 23;
const TEXT = 25;

function arrayHeader(buffer: Buffer, length: number, oid: number): number {
  buffer.writeInt32BE(length === 0 ? 0 : 1, 0);
  buffer.writeInt32BE(0, 4);
  buffer.writeInt32BE(oid, 8);
  if (length === 0) return 12;
  buffer.writeInt32BE(length, 12);
  buffer.writeInt32BE(1, 16);
  return 20;
}

/** A float8[] parameter (finite numbers). */
export function float8Array(values: readonly number[]): Buffer {
  const buffer = Buffer.allocUnsafe(20 + values.length * 12);
  let offset = arrayHeader(buffer, values.length, FLOAT8);
  for (const value of values) {
    buffer.writeInt32BE(8, offset);
    buffer.writeDoubleBE(value, offset + 4);
    offset += 12;
  }
  return buffer.subarray(0, offset);
}

/** An int4[] parameter (whole numbers). */
export function int4Array(values: readonly number[]): Buffer {
  const buffer = Buffer.allocUnsafe(20 + values.length * 8);
  let offset = arrayHeader(buffer, values.length, INT4);
  for (const value of values) {
    buffer.writeInt32BE(4, offset);
    buffer.writeInt32BE(value, offset + 4);
    offset += 8;
  }
  return buffer.subarray(0, offset);
}

/** A text[] parameter (UTF-8; the values hold no NUL: ids, metric names, collectivities, kinds, dates). */
export function textArray(values: readonly string[]): Buffer {
  let size = 20;
  for (const value of values) size += 4 + Buffer.byteLength(value);
  const buffer = Buffer.allocUnsafe(size);
  let offset = arrayHeader(buffer, values.length, TEXT);
  for (const value of values) {
    const written = buffer.write(value, offset + 4, 'utf8');
    buffer.writeInt32BE(written, offset);
    offset += 4 + written;
  }
  return buffer.subarray(0, offset);
}

/** Key order (equipment, metric, time): the order in which every statement takes its rows. */
function byKey(a: Candidate, b: Candidate): number {
  const x = a.record;
  const y = b.record;
  if (x.equipmentId !== y.equipmentId) return x.equipmentId < y.equipmentId ? -1 : 1;
  if (x.metric !== y.metric) return x.metric < y.metric ? -1 : 1;
  return x.time.getTime() - y.time.getTime();
}

const HOUR_MS = 3_600_000;
const PARIS_DATE = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris', year: 'numeric', month: '2-digit', day: '2-digit' });
/** Europe/Paris's offsets are whole hours, so each UTC hour lies within one Paris day: remembered per hour. */
const parisDays = new Map<number, string>();

/** The Europe/Paris calendar day (`YYYY-MM-DD`) of an instant. */
export function parisDay(ms: number): string {
  const hour = Math.floor(ms / HOUR_MS);
  let day = parisDays.get(hour);
  if (day === undefined) {
    if (parisDays.size >= 100_000) parisDays.clear();
    day = PARIS_DATE.format(hour * HOUR_MS);
    parisDays.set(hour, day);
  }
  return day;
}

/** One roll-up row's increment. */
class Increment {
  n = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  firstMs = 0;
  firstValue = 0;
  lastMs = 0;
  lastValue = 0;

  constructor(
    readonly candidate: Candidate,
    readonly bucket: number | string,
  ) {}

  add(ms: number, value: number): void {
    // Readings come in time order within a key: the first added is the first, the last the last.
    if (this.n === 0) {
      this.firstMs = ms;
      this.firstValue = value;
    }
    this.n++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
    this.lastMs = ms;
    this.lastValue = value;
  }
}

/**
 * DERIVED_SQL's parameters from the inserted rows, in key order: one pass, since a key's hours and
 * Paris days follow each other in time order.
 */
function derivedParameters(inserted: Candidate[]): Buffer[] {
  const latest: Candidate[] = [];
  const hourly: Increment[] = [];
  const daily: Increment[] = [];
  let previous: Candidate | null = null;
  let hour: Increment | null = null;
  let day: Increment | null = null;
  for (const candidate of inserted) {
    const { record } = candidate;
    const ms = record.time.getTime();
    const sameKey = previous !== null && previous.record.equipmentId === record.equipmentId && previous.record.metric === record.metric;
    if (!sameKey && previous !== null) latest.push(previous);
    const hourStart = Math.floor(ms / HOUR_MS) * HOUR_MS;
    if (!sameKey || hour!.bucket !== hourStart) hourly.push((hour = new Increment(candidate, hourStart)));
    hour!.add(ms, record.value);
    const parisDate = parisDay(ms);
    if (!sameKey || day!.bucket !== parisDate) daily.push((day = new Increment(candidate, parisDate)));
    day!.add(ms, record.value);
    previous = candidate;
  }
  if (previous !== null) latest.push(previous);
  const latestTimes = new Array<number>(latest.length);
  const latestValues = new Array<number>(latest.length);
  for (let i = 0; i < latest.length; i++) {
    latestTimes[i] = latest[i].record.time.getTime();
    latestValues[i] = latest[i].record.value;
  }
  return [
    textArray(latest.map((c) => c.record.equipmentId)),
    textArray(latest.map((c) => c.record.metric)),
    float8Array(latestTimes),
    float8Array(latestValues),
    textArray(latest.map((c) => c.device.collectivityId)),
    ...incrementColumns(hourly, false),
    ...incrementColumns(daily, true),
  ];
}

/** The columns of DERIVED_SQL for hourly (bucket: epoch ms) or daily (bucket: the Paris day, and the kind) increments. */
function incrementColumns(increments: Increment[], daily: boolean): Buffer[] {
  const n = increments.length;
  const equipment = new Array<string>(n);
  const metric = new Array<string>(n);
  const collectivity = new Array<string>(n);
  const kind = new Array<string>(n);
  const days = new Array<string>(n);
  const hours = new Array<number>(n);
  const count = new Array<number>(n);
  const sum = new Array<number>(n);
  const min = new Array<number>(n);
  const max = new Array<number>(n);
  const firstMs = new Array<number>(n);
  const firstValue = new Array<number>(n);
  const lastMs = new Array<number>(n);
  const lastValue = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const increment = increments[i];
    const { record, device } = increment.candidate;
    equipment[i] = record.equipmentId;
    metric[i] = record.metric;
    collectivity[i] = device.collectivityId;
    kind[i] = device.kind;
    if (daily) days[i] = increment.bucket as string;
    else hours[i] = increment.bucket as number;
    count[i] = increment.n;
    sum[i] = increment.sum;
    min[i] = increment.min;
    max[i] = increment.max;
    firstMs[i] = increment.firstMs;
    firstValue[i] = increment.firstValue;
    lastMs[i] = increment.lastMs;
    lastValue[i] = increment.lastValue;
  }
  return [
    textArray(equipment),
    textArray(metric),
    daily ? textArray(days) : float8Array(hours),
    textArray(collectivity),
    ...(daily ? [textArray(kind)] : []),
    int4Array(count),
    float8Array(sum),
    float8Array(min),
    float8Array(max),
    float8Array(firstMs),
    float8Array(firstValue),
    float8Array(lastMs),
    float8Array(lastValue),
  ];
}
