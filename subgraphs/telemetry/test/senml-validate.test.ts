/**
 * SenML validation (RFC 8428 resolution and the hub's profile): every bad input of issue #7's
 * "Bad input" list, each rejected with the record's index, the field and a reason, and the
 * resolution rules (base name, base time, base unit, base value) on good input.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { MetricName } from '@connecte/shared/senml';
import { validateSenml, type ValidatedPack } from '../src/senml-validate.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const T = NOW / 1000;
const BN = 'urn:dev:connecte:lp-chalons-0001:';
const retention: Partial<Record<MetricName, number>> = { speed: 30, lat: 30, lon: 30 };
const options = { now: NOW, maxRecords: 100, retentionDays: (m: MetricName) => retention[m] ?? 400 };

const check = (pack: unknown, opts: Partial<typeof options> = {}): ValidatedPack =>
  validateSenml(typeof pack === 'string' ? pack : JSON.stringify(pack), { ...options, ...opts });

/** The only rejection of a one-record pack. */
function rejectionOf(record: Record<string, unknown>) {
  const result = check([record]);
  assert.equal(result.refused, null, 'not refused whole');
  assert.equal(result.records.length, 0, `rejected: ${JSON.stringify(record)}`);
  assert.equal(result.rejected.length, 1);
  return result.rejected[0];
}

const good = { bn: BN, bt: T, n: 'power', u: 'W', v: 16 };

describe('SenML validation', () => {
  describe('a whole message is refused', () => {
    it('malformed JSON, with a reason and nothing else', () => {
      for (const text of ['[{"n":', 'not json', '[{"v": NaN}]', '[{"v": Infinity}]', '', '\u0000[]']) {
        const result = check(text);
        assert.equal(result.refused?.code, 'malformed', text);
        assert.equal(result.refused?.index, null);
        assert.equal(result.refused?.field, 'body');
        assert.match(result.refused!.reason, /not valid JSON/);
        assert.doesNotMatch(result.refused!.reason, /\u0000/, 'no NUL in a reason');
      }
    });
    it('JSON that is not an array of records', () => {
      for (const value of [{ n: 'power' }, 42, 'text', null, true]) {
        const result = check(JSON.stringify(value));
        assert.equal(result.refused?.code, 'not_a_pack', JSON.stringify(value));
        assert.match(result.refused!.reason, /JSON array/);
      }
    });
    it('an empty pack', () => {
      assert.equal(check([]).refused?.code, 'empty');
    });
    it('a pack over the record limit (INGEST_MAX_RECORDS), without reading its records', () => {
      const pack = Array.from({ length: 101 }, (_, i) => ({ ...good, bt: T - i }));
      const result = check(pack);
      assert.equal(result.refused?.code, 'too_many_records');
      assert.match(result.refused!.reason, /101 records, more than the limit of 100 \(INGEST_MAX_RECORDS\)/);
      assert.equal(check(pack.slice(0, 100)).records.length, 100, 'exactly the limit is accepted');
    });
    it('deep nesting is read without overflowing the stack', () => {
      const deep = '['.repeat(200_000) + ']'.repeat(200_000);
      const result = check(deep);
      assert.equal(result.refused, null);
      assert.equal(result.rejected[0].code, 'bad_record');
    });
    it('a byte-order mark is ignored; invalid UTF-8 does not throw', () => {
      assert.equal(validateSenml(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify([good]))]), options).records.length, 1);
      assert.equal(validateSenml(Buffer.from([0x5b, 0xff, 0xfe, 0x5d]), options).refused?.code, 'malformed');
    });
  });

  describe('a record is rejected, naming its field', () => {
    it('SenML without a name (no bn nor n; a base name without a metric)', () => {
      const none = rejectionOf({ bt: T, u: 'W', v: 1 });
      assert.deepEqual([none.code, none.field, none.index], ['no_name', 'n', 0]);
      const noMetric = rejectionOf({ bn: BN, bt: T, u: 'W', v: 1 });
      assert.deepEqual([noMetric.code, noMetric.field], ['no_name', 'n']);
      assert.match(noMetric.reason, /no metric after the equipment id/);
    });
    it('SenML without a value', () => {
      const r = rejectionOf({ bn: BN, bt: T, n: 'power', u: 'W' });
      assert.deepEqual([r.code, r.field], ['no_value', 'v']);
      const b = rejectionOf({ bn: BN, bt: T, n: 'fault' });
      assert.deepEqual([b.code, b.field], ['no_value', 'vb']);
    });
    it('SenML without a time (neither bt nor t)', () => {
      const r = rejectionOf({ bn: BN, n: 'power', u: 'W', v: 1 });
      assert.deepEqual([r.code, r.field], ['no_time', 't']);
    });
    it('a time relative to the moment of receipt (below 2^28, RFC 8428 §4.5.3)', () => {
      for (const t of [0, -60, 1000]) {
        const r = rejectionOf({ bn: BN, n: 'power', u: 'W', v: 1, t });
        assert.deepEqual([r.code, r.field], ['relative_time', 't']);
      }
    });
    it('an unknown metric', () => {
      const r = rejectionOf({ ...good, n: 'voltage' });
      assert.deepEqual([r.code, r.field], ['unknown_metric', 'n']);
      assert.match(r.reason, /unknown metric "voltage" \(known: power, energy/);
    });
    it('a name that is not urn:dev:connecte:<equipmentId>:<metric>', () => {
      assert.equal(rejectionOf({ ...good, bn: 'urn:dev:mac:0024befffe804ff1:' }).field, 'bn');
      assert.equal(rejectionOf({ bt: T, n: 'power', u: 'W', v: 1 }).code, 'bad_name');
      assert.equal(rejectionOf({ ...good, bn: 'urn:dev:connecte:lp/1+#:' }).code, 'bad_name', 'not usable as an MQTT topic level');
      assert.equal(rejectionOf({ ...good, bn: 'urn:dev:connecte::' }).code, 'bad_name');
    });
    it('a unit that does not match the metric (nothing is converted)', () => {
      const r = rejectionOf({ ...good, u: 'kW' });
      assert.deepEqual([r.code, r.field], ['unit_mismatch', 'u']);
      assert.equal(r.reason, 'unit "kW" does not match metric power (W)');
      assert.deepEqual([rejectionOf({ ...good, u: undefined }).code], ['unit_mismatch'], 'a missing unit');
      assert.equal(rejectionOf({ ...good, u: 'w' }).code, 'unit_mismatch', 'units are case-sensitive');
    });
    it('a unit on a unit-less metric (fault, signal_state)', () => {
      const r = rejectionOf({ bn: BN, bt: T, n: 'fault', u: '/', vb: true });
      assert.deepEqual([r.code, r.field], ['unit_mismatch', 'u']);
      const s = rejectionOf({ bn: BN, bt: T, bu: 'W', n: 'signal_state', v: 1 });
      assert.deepEqual([s.code, s.field], ['unit_mismatch', 'bu'], 'a base unit applies too');
    });
    it('a non-numeric value on a numeric metric: a string in v, vs, vb, vd, a sum', () => {
      for (const [field, record] of [
        ['v', { ...good, v: '16' }],
        ['v', { ...good, v: null }],
        ['v', { ...good, v: [16] }],
        ['vs', { bn: BN, bt: T, n: 'power', u: 'W', vs: '16' }],
        ['vb', { bn: BN, bt: T, n: 'power', u: 'W', vb: true }],
        ['vd', { bn: BN, bt: T, n: 'power', u: 'W', vd: 'aGk' }],
        ['s', { bn: BN, bt: T, n: 'power', u: 'W', s: 16 }],
      ] as const) {
        const r = rejectionOf(record);
        assert.deepEqual([r.code, r.field], ['wrong_type', field], JSON.stringify(record));
      }
    });
    it('a non-boolean value on a boolean metric', () => {
      for (const [field, record] of [
        ['v', { bn: BN, bt: T, n: 'fault', v: 1 }],
        ['vb', { bn: BN, bt: T, n: 'fault', vb: 'true' }],
        ['vb', { bn: BN, bt: T, n: 'fault', vb: 1 }],
      ] as const) {
        assert.deepEqual([rejectionOf(record).code, rejectionOf(record).field], ['wrong_type', field], JSON.stringify(record));
      }
    });
    it('several values in one record', () => {
      assert.equal(rejectionOf({ ...good, vs: 'x' }).code, 'wrong_type');
    });
    it('NaN or Infinity: 1e309 parses to Infinity, in v, bv, bt or t', () => {
      const v = check(`[{"bn":"${BN}","bt":${T},"n":"power","u":"W","v":1e309}]`).rejected[0];
      assert.deepEqual([v.code, v.field], ['not_finite', 'v']);
      const negative = check(`[{"bn":"${BN}","bt":${T},"n":"power","u":"W","v":-1e309}]`).rejected[0];
      assert.equal(negative.code, 'not_finite');
      const sum = check(`[{"bn":"${BN}","bt":${T},"bv":1.7e308,"n":"power","u":"W","v":1.7e308}]`).rejected[0];
      assert.deepEqual([sum.code, sum.field], ['not_finite', 'bv'], 'v + bv overflows');
      const bt = check(`[{"bn":"${BN}","bt":1e309,"n":"power","u":"W","v":1}]`).rejected[0];
      assert.deepEqual([bt.code, bt.field], ['bad_field', 'bt']);
      const t = check(`[{"bn":"${BN}","n":"power","u":"W","v":1,"t":1e309}]`).rejected[0];
      assert.deepEqual([t.code, t.field], ['not_finite', 't']);
      const big = check(`[{"bn":"${BN}","bt":1.7e308,"n":"power","u":"W","v":1,"t":1.7e308}]`).rejected[0];
      assert.deepEqual([big.code, big.field], ['not_finite', 't'], 'bt + t overflows');
    });
    it('a time more than 5 minutes in the future (5 minutes is accepted)', () => {
      const r = rejectionOf({ ...good, bt: T + 301 });
      assert.deepEqual([r.code, r.field], ['future_time', 'bt']);
      assert.match(r.reason, /more than 5 minutes in the future/);
      assert.equal(check([{ ...good, bt: T + 300 }]).records.length, 1);
      assert.equal(rejectionOf({ ...good, bt: 1e15 }).code, 'future_time', 'far beyond what a Date holds');
    });
    it('a time older than the metric’s retention (400 days by default, 30 for speed)', () => {
      const old = rejectionOf({ ...good, bt: T - 401 * 86_400 });
      assert.deepEqual([old.code, old.field], ['too_old', 'bt']);
      assert.match(old.reason, /older than the retention of power \(400 days\)/);
      assert.equal(check([{ ...good, bt: T - 399 * 86_400 }]).records.length, 1);
      const speed = { bn: 'urn:dev:connecte:bus-chalons-0001:', n: 'speed', u: 'm/s', v: 8 };
      assert.equal(rejectionOf({ ...speed, bt: T - 31 * 86_400 }).code, 'too_old');
      assert.equal(check([{ ...speed, bt: T - 29 * 86_400 }]).records.length, 1);
    });
    it('a time that is not a number', () => {
      assert.deepEqual([rejectionOf({ ...good, t: '10' }).field], ['t']);
      assert.deepEqual([rejectionOf({ ...good, bt: '2026-12-01' }).field, rejectionOf({ ...good, bt: '2026-12-01' }).code], ['bt', 'bad_field']);
    });
    it('fields of the wrong JSON type (bn, n, u, bver)', () => {
      assert.deepEqual([rejectionOf({ ...good, bn: 42 }).field], ['bn']);
      assert.deepEqual([rejectionOf({ ...good, n: 7 }).field], ['n']);
      assert.deepEqual([rejectionOf({ ...good, u: 1 }).field], ['u']);
      assert.deepEqual([rejectionOf({ ...good, bver: 'ten' }).field], ['bver']);
    });
    it('a SenML version above 10, and a must-understand field (ending in _)', () => {
      const version = rejectionOf({ ...good, bver: 11 });
      assert.deepEqual([version.code, version.field], ['unsupported_version', 'bver']);
      assert.equal(check([{ ...good, bver: 10 }]).records.length, 1);
      const extension = rejectionOf({ ...good, key_: 1 });
      assert.deepEqual([extension.code, extension.field], ['bad_field', 'key_']);
      assert.equal(check([{ ...good, note: 'ignored' }]).records.length, 1, 'other unknown fields are ignored');
    });
    it('a record that is not an object', () => {
      const result = check([good, 42, null, [good], 'x']);
      assert.deepEqual(result.rejected.map((r) => [r.index, r.code]), [[1, 'bad_record'], [2, 'bad_record'], [3, 'bad_record'], [4, 'bad_record']]);
      assert.equal(result.records.length, 1);
    });
    it('NUL bytes and long strings in names are quoted, escaped and cut in the reason', () => {
      const r = rejectionOf({ ...good, n: `power\u0000${'x'.repeat(500)}` });
      assert.equal(r.code, 'unknown_metric');
      assert.doesNotMatch(r.reason, /\u0000/);
      assert.match(r.reason, /\\u0000/);
      assert.ok(r.reason.length < 400, 'cut');
      const id = rejectionOf({ ...good, bn: 'urn:dev:connecte:lp\u0000:' });
      assert.equal(id.code, 'bad_name');
      assert.doesNotMatch(id.reason, /\u0000/);
    });
  });

  describe('resolution (RFC 8428 §4.5)', () => {
    it('base name and base time carry over; t is relative to bt; booleans are 1 and 0', () => {
      const result = check([
        { bn: BN, bt: T - 60, n: 'power', u: 'W', v: 16 },
        { n: 'energy', u: 'Wh', v: 1043.2, t: 30 },
        { n: 'fault', vb: true },
        { bn: 'urn:dev:connecte:lp-chalons-0002:', n: 'fault', vb: false, t: -30 },
      ]);
      assert.deepEqual(result.rejected, []);
      assert.deepEqual(
        result.records.map((r) => [r.index, r.equipmentId, r.metric, r.time.toISOString(), r.value]),
        [
          [0, 'lp-chalons-0001', 'power', '2026-12-01T11:59:00.000Z', 16],
          [1, 'lp-chalons-0001', 'energy', '2026-12-01T11:59:30.000Z', 1043.2],
          [2, 'lp-chalons-0001', 'fault', '2026-12-01T11:59:00.000Z', 1],
          [3, 'lp-chalons-0002', 'fault', '2026-12-01T11:58:30.000Z', 0],
        ],
      );
    });
    it('a full name in n without bn; a base unit and a base value', () => {
      const result = check([
        { n: `${BN}power`, bt: T, u: 'W', v: 5 },
        { bn: BN, bu: 'W', bv: 100, n: 'power', v: 5, t: 1 },
      ]);
      assert.deepEqual(result.records.map((r) => [r.metric, r.value]), [['power', 5], ['power', 105]]);
    });
    it('times are kept to the millisecond', () => {
      const [record] = check([{ ...good, bt: T + 0.1234 }]).records;
      assert.equal(record.time.getTime(), NOW + 123);
    });
    it('a bad record does not block the others; indexes are positions in the pack', () => {
      const result = check([good, { ...good, u: 'kW', bt: T - 1 }, { n: 'energy', u: 'Wh', v: 3 }]);
      assert.deepEqual(result.records.map((r) => r.index), [0, 2]);
      assert.deepEqual(result.rejected.map((r) => [r.index, r.field]), [[1, 'u']]);
      assert.equal(result.size, 3);
    });
    it('a malformed base field is not carried over to the next records', () => {
      const result = check([{ bn: BN, bt: 'now', n: 'power', u: 'W', v: 1 }, { n: 'energy', u: 'Wh', v: 3 }]);
      assert.deepEqual(result.rejected.map((r) => [r.index, r.code, r.field]), [[0, 'bad_field', 'bt'], [1, 'no_time', 't']]);
    });
  });

  it('never throws, whatever it is given (random bytes, random JSON)', () => {
    const values = [null, true, 1, -1, 1e309, 'x', '', [], {}, [1], { a: 1 }, '\u0000', 2 ** 31];
    const keys = ['bn', 'bt', 'bu', 'bv', 'bs', 'bver', 'n', 'u', 'v', 'vs', 'vb', 'vd', 's', 't', 'ut', '__proto__', 'x_', 'constructor'];
    for (let i = 0; i < 2000; i++) {
      validateSenml(randomBytes(Math.floor(Math.random() * 64)), options);
      const pack = Array.from({ length: 1 + Math.floor(Math.random() * 4) }, () =>
        Object.fromEntries(keys.filter(() => Math.random() < 0.4).map((key) => [key, values[Math.floor(Math.random() * values.length)]])),
      );
      const text = JSON.stringify(pack).replaceAll('null', () => (Math.random() < 0.2 ? '1e309' : 'null'));
      const result = validateSenml(text, options);
      assert.equal(result.records.length + result.rejected.length + (result.refused ? pack.length : 0), pack.length);
    }
  });
});
