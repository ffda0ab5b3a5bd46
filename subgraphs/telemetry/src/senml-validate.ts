/**
 * SenML JSON (RFC 8428) as the hub accepts it: a pack is resolved record by record (base fields
 * carry over to the records that follow until changed, §4.5), then each resolved record is checked
 * against the metric table (packages/shared/src/senml.ts). Every problem is a rejection naming the
 * record and the field; a whole message is refused only when it is not a pack at all (malformed
 * JSON, not an array, empty, too many records). Never throws, whatever the input.
 *
 * The hub's profile of RFC 8428, on purpose stricter than the RFC in four places:
 * - a record's time must be given (`bt` and/or `t`) and absolute: times below 2^28 are relative
 *   to the moment of receipt in the RFC (§4.5.3), which would make a retransmitted record a new
 *   reading; idempotency on (equipment, metric, time) needs the device's own clock;
 * - a numeric metric takes `v` (plus any `bv`), a boolean one `vb`; `vs`, `vd` and sums (`s`) are
 *   refused rather than converted, like a unit that is not exactly the table's (nothing is converted);
 * - names are `urn:dev:connecte:<equipmentId>:<metric>` (docs/devices.md), the equipment id coming
 *   from the base name;
 * - a numeric value must lie in its metric's domain (`min`/`max`, whole numbers for counts and
 *   modes: the table in senml.ts): `out_of_range` / `not_integer`, nothing is clamped.
 * As the RFC requires, a record whose `bver` is above 10 is not used, nor one with an unknown
 * field ending in `_` (must-understand); other unknown fields are ignored.
 */
import { isMetricName, metricDomain, METRICS, type MetricName } from '@connecte/shared/senml';
import type { IngestRecord, Rejection } from './types.js';

/** How far in the future a reading may be (clocks of devices drift). */
export const MAX_FUTURE_MS = 5 * 60_000;
/** RFC 8428 §4.5.3: times below 2^28 seconds are relative to now. */
const RELATIVE_TIME_LIMIT = 2 ** 28;
/** The SenML version this code understands (RFC 8428's). */
const SENML_VERSION = 10;
/** `urn:dev:connecte:<equipmentId>:` (docs/devices.md). */
export const BASE_NAME_PREFIX = 'urn:dev:connecte:';
/** Equipment ids as the hub issues them; also safe as an MQTT topic level. */
const EQUIPMENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const DAY_MS = 86_400_000;

/** Why a record was rejected, as a fixed word for the metrics' `reason` label (the text goes to the caller). */
export type RejectionCode =
  | 'malformed'
  | 'not_a_pack'
  | 'empty'
  | 'too_many_records'
  | 'bad_record'
  | 'bad_field'
  | 'unsupported_version'
  | 'no_name'
  | 'bad_name'
  | 'unknown_metric'
  | 'unit_mismatch'
  | 'no_value'
  | 'wrong_type'
  | 'not_finite'
  | 'out_of_range'
  | 'not_integer'
  | 'no_time'
  | 'relative_time'
  | 'future_time'
  | 'too_old'
  | 'unknown_equipment'
  | 'decommissioned'
  | 'not_allowed';

export interface CodedRejection extends Rejection {
  code: RejectionCode;
}

export interface ValidationOptions {
  /** The moment of receipt, epoch ms. */
  now: number;
  /** More records than this: the whole message is refused (`too_many_records`). */
  maxRecords: number;
  /** Days a metric is kept: an older reading is refused. */
  retentionDays: (metric: MetricName) => number;
}

export interface ValidatedPack {
  /** Records that passed, in pack order. */
  records: IngestRecord[];
  /** Records that did not, in pack order. */
  rejected: CodedRejection[];
  /** The whole message refused (then `records` and `rejected` are empty). */
  refused: CodedRejection | null;
  /** Number of records in the pack (0 when refused before it could be read). */
  size: number;
}

/**
 * A value quoted for a reason: at most 64 characters, control characters (NUL included) escaped
 * by JSON.stringify, so that a reason is always safe to store in PostgreSQL text and jsonb.
 */
export function quote(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (typeof value === 'number') return String(value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : String(value);
}

const refusal = (code: RejectionCode, field: string | null, reason: string): ValidatedPack => ({
  records: [],
  rejected: [],
  refused: { index: null, field, reason, code },
  size: 0,
});

const isNumber = (value: unknown): value is number => typeof value === 'number';

/** Parses the payload (a Buffer or text); a leading UTF-8 byte-order mark is ignored (RFC 8259 §8.1). */
function parse(payload: Buffer | string): { ok: true; value: unknown } | { ok: false; reason: string } {
  let text: string;
  try {
    text = typeof payload === 'string' ? payload : payload.toString('utf8');
  } catch (error) {
    return { ok: false, reason: `payload is not text: ${(error as Error).message}` };
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    // V8's messages quote a bit of the input: keep them short and free of control characters.
    return { ok: false, reason: `payload is not valid JSON: ${quote(String((error as Error).message)).slice(1, -1)}` };
  }
}

const BASE_FIELDS = ['bn', 'bt', 'bu', 'bv', 'bs', 'bver'] as const;

/**
 * Resolves and checks a SenML pack. `records` carry the resolved equipment id, metric, time (ms,
 * a Date) and value (booleans 1/0); ownership and the directory are the Ingestor's to check.
 */
export function validateSenml(payload: Buffer | string, options: ValidationOptions): ValidatedPack {
  try {
    return validate(payload, options);
  } catch (error) {
    // Not expected: every path above returns. Kept so that no input can ever crash a caller.
    return refusal('malformed', null, `payload could not be read: ${quote(String((error as Error)?.message ?? error))}`);
  }
}

function validate(payload: Buffer | string, options: ValidationOptions): ValidatedPack {
  const parsed = parse(payload);
  if (!parsed.ok) return refusal('malformed', 'body', parsed.reason);
  const pack = parsed.value;
  if (!Array.isArray(pack)) {
    return refusal('not_a_pack', 'body', `a SenML pack is a JSON array of records, not ${quote(pack)}`);
  }
  if (pack.length === 0) return refusal('empty', 'body', 'the SenML pack has no record');
  if (pack.length > options.maxRecords) {
    return refusal('too_many_records', 'body', `the SenML pack has ${pack.length} records, more than the limit of ${options.maxRecords} (INGEST_MAX_RECORDS)`);
  }

  const records: IngestRecord[] = [];
  const rejected: CodedRejection[] = [];
  // Base values in force (RFC 8428 §4.5.1): each applies from the record that sets it on.
  let bn: string | undefined;
  let bt: number | undefined;
  let bu: string | undefined;
  let bv: number | undefined;
  let bver: number | undefined;
  const oldestByMetric = new Map<MetricName, number>();
  const newest = options.now + MAX_FUTURE_MS;

  let index = 0;
  // One function for the whole pack (not a closure per record): `index` is the record's.
  const reject = (code: RejectionCode, field: string | null, reason: string) => {
    rejected.push({ index, field, reason, code });
  };
  for (; index < pack.length; index++) {
    const record: unknown = pack[index];
    if (typeof record !== 'object' || record === null || Array.isArray(record)) {
      reject('bad_record', null, `a SenML record is a JSON object, not ${quote(record)}`);
      continue;
    }
    const r = record as Record<string, unknown>;

    // Base fields first: a malformed one rejects this record and is not carried over.
    let baseProblem = false;
    for (const field of BASE_FIELDS) {
      if (!Object.hasOwn(r, field)) continue;
      const value = r[field];
      const problem =
        field === 'bn' || field === 'bu'
          ? typeof value !== 'string'
            ? `must be a string, not ${quote(value)}`
            : null
          : !isNumber(value)
            ? `must be a number, not ${quote(value)}`
            : !Number.isFinite(value)
              ? `must be a finite number, not ${quote(value)}`
              : field === 'bver' && !(Number.isInteger(value) && value > 0)
                ? `must be a positive whole number, not ${quote(value)}`
                : null;
      if (problem) {
        if (!baseProblem) reject('bad_field', field, `${field} ${problem}`);
        baseProblem = true;
        continue;
      }
      if (field === 'bn') bn = value as string;
      else if (field === 'bt') bt = value as number;
      else if (field === 'bu') bu = value as string;
      else if (field === 'bv') bv = value as number;
      else if (field === 'bver') bver = value as number;
      // bs (base sum) only matters to sums, which are refused below.
    }
    if (baseProblem) continue;
    if (bver !== undefined && bver > SENML_VERSION) {
      reject('unsupported_version', 'bver', `SenML version ${bver} is not supported (this hub reads version ${SENML_VERSION})`);
      continue;
    }
    const mustUnderstand = Object.keys(r).find((key) => key.endsWith('_'));
    if (mustUnderstand !== undefined) {
      reject('bad_field', mustUnderstand, `field ${quote(mustUnderstand)} must be understood (it ends in "_", RFC 8428 §4.4) and is not supported`);
      continue;
    }

    // Name: bn + n.
    const n = r.n;
    if (n !== undefined && typeof n !== 'string') {
      reject('bad_field', 'n', `n must be a string, not ${quote(n)}`);
      continue;
    }
    const name = (bn ?? '') + (n ?? '');
    const nameField = n === undefined || n === '' ? 'bn' : 'n';
    if (name === '') {
      reject('no_name', 'n', 'the record has no name (neither bn nor n)');
      continue;
    }
    if (!name.startsWith(BASE_NAME_PREFIX)) {
      reject('bad_name', bn === undefined ? 'n' : 'bn', `name ${quote(name)} does not start with ${BASE_NAME_PREFIX}<equipmentId>: (docs/devices.md)`);
      continue;
    }
    const rest = name.slice(BASE_NAME_PREFIX.length);
    const colon = rest.lastIndexOf(':');
    if (colon === -1) {
      reject('no_name', 'n', `name ${quote(name)} has no metric after the equipment id (urn:dev:connecte:<equipmentId>:<metric>)`);
      continue;
    }
    const equipmentId = rest.slice(0, colon);
    const metricName = rest.slice(colon + 1);
    if (!EQUIPMENT_ID.test(equipmentId)) {
      reject('bad_name', bn === undefined ? 'n' : 'bn', `equipment id ${quote(equipmentId)} in name ${quote(name)} is not an equipment id`);
      continue;
    }
    if (metricName === '') {
      reject('no_name', 'n', `name ${quote(name)} has no metric after the equipment id (urn:dev:connecte:<equipmentId>:<metric>)`);
      continue;
    }
    if (!isMetricName(metricName)) {
      reject('unknown_metric', nameField, `unknown metric ${quote(metricName)} (known: ${Object.keys(METRICS).join(', ')})`);
      continue;
    }
    const metric = METRICS[metricName];

    // Unit: u, else bu; exactly the table's, or absent for a unit-less metric.
    const u = r.u;
    if (u !== undefined && typeof u !== 'string') {
      reject('bad_field', 'u', `u must be a string, not ${quote(u)}`);
      continue;
    }
    const unit = u ?? bu;
    const unitField = u !== undefined ? 'u' : 'bu';
    if (metric.unit === null) {
      if (unit !== undefined) {
        reject('unit_mismatch', unitField, `metric ${metricName} has no unit, but the record gives ${quote(unit)}`);
        continue;
      }
    } else if (unit === undefined) {
      reject('unit_mismatch', 'u', `the record has no unit; metric ${metricName} is in ${metric.unit}`);
      continue;
    } else if (unit !== metric.unit) {
      reject('unit_mismatch', unitField, `unit ${quote(unit)} does not match metric ${metricName} (${metric.unit})`);
      continue;
    }

    // Value: exactly one of v / vs / vb / vd (or a sum), of the metric's type.
    const present = (['v', 'vs', 'vb', 'vd'] as const).filter((field) => Object.hasOwn(r, field));
    if (present.length > 1) {
      reject('wrong_type', present[1], `the record has several values (${present.join(', ')}); a record carries one`);
      continue;
    }
    let value: number;
    if (metric.type === 'boolean') {
      if (present.length === 0) {
        reject(Object.hasOwn(r, 's') ? 'wrong_type' : 'no_value', Object.hasOwn(r, 's') ? 's' : 'vb', `the record has no value; metric ${metricName} is a boolean (vb)`);
        continue;
      }
      if (present[0] !== 'vb') {
        reject('wrong_type', present[0], `metric ${metricName} is a boolean: send vb, not ${present[0]}`);
        continue;
      }
      if (typeof r.vb !== 'boolean') {
        reject('wrong_type', 'vb', `vb must be true or false, not ${quote(r.vb)}`);
        continue;
      }
      value = r.vb ? 1 : 0;
    } else {
      if (present.length === 0) {
        if (Object.hasOwn(r, 's')) reject('wrong_type', 's', `sums (s) are not accepted; metric ${metricName} takes a number in v`);
        else reject('no_value', 'v', `the record has no value; metric ${metricName} takes a number in v`);
        continue;
      }
      if (present[0] !== 'v') {
        reject('wrong_type', present[0], `metric ${metricName} takes a number in v, not ${present[0]}`);
        continue;
      }
      if (!isNumber(r.v)) {
        reject('wrong_type', 'v', `v must be a number, not ${quote(r.v)}`);
        continue;
      }
      value = r.v + (bv ?? 0);
      if (!Number.isFinite(value)) {
        reject('not_finite', Number.isFinite(r.v) ? 'bv' : 'v', `value ${Number.isFinite(r.v) ? `${r.v} + bv ${bv}` : quote(r.v)} is not a finite number`);
        continue;
      }
      // The metric's domain (senml.ts): two comparisons, plus one for counts and modes; the
      // reason is built only for a rejected record.
      if (value < metric.min || value > metric.max) {
        reject('out_of_range', 'v', `value ${bv === undefined ? value : `${r.v} + bv ${bv} = ${value}`} is outside the domain of ${metricName} (${metricDomain(metricName)})`);
        continue;
      }
      if (metric.integer && value !== Math.trunc(value)) {
        reject('not_integer', 'v', `value ${bv === undefined ? value : `${r.v} + bv ${bv} = ${value}`} of ${metricName} is not a whole number (${metricDomain(metricName)})`);
        continue;
      }
    }

    // Time: bt + t, seconds since the epoch; required, absolute, not too far ahead, within retention.
    const t = r.t;
    if (t !== undefined && !isNumber(t)) {
      reject('bad_field', 't', `t must be a number, not ${quote(t)}`);
      continue;
    }
    if (t === undefined && bt === undefined) {
      reject('no_time', 't', 'the record has no time (neither bt nor t)');
      continue;
    }
    const timeField = t !== undefined ? 't' : 'bt';
    const seconds = (bt ?? 0) + (t ?? 0);
    if (!Number.isFinite(seconds)) {
      reject('not_finite', timeField, `time ${quote(t ?? bt)} is not a finite number`);
      continue;
    }
    if (seconds < RELATIVE_TIME_LIMIT) {
      reject(
        'relative_time',
        timeField,
        `time ${seconds} is relative to the moment of receipt (below 2^28, RFC 8428 §4.5.3); send seconds since the epoch`,
      );
      continue;
    }
    const ms = Math.round(seconds * 1000);
    if (ms > newest) {
      reject('future_time', timeField, `time ${new Date(Math.min(ms, 8.64e15)).toISOString()} is more than 5 minutes in the future`);
      continue;
    }
    let oldest = oldestByMetric.get(metricName);
    if (oldest === undefined) {
      oldest = options.now - options.retentionDays(metricName) * DAY_MS;
      oldestByMetric.set(metricName, oldest);
    }
    if (ms < oldest) {
      reject('too_old', timeField, `time ${new Date(ms).toISOString()} is older than the retention of ${metricName} (${options.retentionDays(metricName)} days)`);
      continue;
    }
    records.push({ index, equipmentId, metric: metricName, time: new Date(ms), value });
  }
  return { records, rejected, refused: null, size: pack.length };
}
