/**
 * Values outside their metric's domain (packages/shared/src/senml.ts: `min`, `max`, `integer`)
 * are rejected record by record, with the field, a reason naming the domain and a code
 * (`out_of_range`, `not_integer`): a latitude of 200 posted over HTTP ingest with an ingest key,
 * and every bound of the table at its edge (the edge accepted, just past it rejected).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deviceBaseName, METRICS, metricDomain, type MetricName } from '@connecte/shared/senml';
import { createTestDatabase, startService, startTestBroker, tokenFor, type TestBroker, type TestDatabase, type TestService } from '@connecte/testkit';
import { validateSenml } from '../src/senml-validate.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const options = { now: NOW, maxRecords: 100, retentionDays: () => 400 };
const record = (metric: MetricName, v: number) => ({
  bn: 'urn:dev:connecte:x-1:',
  bt: NOW / 1000,
  n: metric,
  ...(METRICS[metric].unit === null ? {} : { u: METRICS[metric].unit }),
  v,
});
const numeric = (Object.keys(METRICS) as MetricName[]).filter((m) => METRICS[m].type === 'number');

describe('metric domains (validation)', () => {
  it('every numeric metric: its bounds are accepted, just past them rejected as out_of_range on v', () => {
    for (const metric of numeric) {
      const { min, max, integer } = METRICS[metric];
      const step = integer ? 1 : 0.001;
      for (const edge of [min, max].filter(Number.isFinite)) {
        assert.equal(validateSenml(JSON.stringify([record(metric, edge)]), options).records.length, 1, `${metric} = ${edge} is in the domain`);
      }
      for (const past of [min - step, max + step].filter(Number.isFinite)) {
        const { records, rejected } = validateSenml(JSON.stringify([record(metric, past)]), options);
        assert.equal(records.length, 0, `${metric} = ${past}`);
        assert.deepEqual([rejected[0].code, rejected[0].field, rejected[0].index], ['out_of_range', 'v', 0], `${metric} = ${past}`);
        assert.equal(rejected[0].reason, `value ${past} is outside the domain of ${metric} (${metricDomain(metric)})`);
      }
    }
  });

  it('counts and modes take whole numbers only (not_integer); other quantities take fractions', () => {
    for (const metric of numeric) {
      const { min, integer } = METRICS[metric];
      const fraction = (Number.isFinite(min) ? min : 0) + 0.5;
      const { records, rejected } = validateSenml(JSON.stringify([record(metric, fraction)]), options);
      if (integer) {
        assert.deepEqual([rejected[0]?.code, rejected[0]?.field], ['not_integer', 'v'], metric);
        assert.match(rejected[0].reason, new RegExp(`of ${metric} is not a whole number`));
      } else assert.equal(records.length, 1, `${metric} = ${fraction}`);
    }
    assert.deepEqual(['occupancy', 'presence', 'signal_state'].map((m) => METRICS[m as MetricName].integer), [true, true, true]);
  });

  it('the domain applies to v + bv, and the reason shows the sum', () => {
    const { rejected } = validateSenml(JSON.stringify([{ bn: 'urn:dev:connecte:bus-1:', bt: NOW / 1000, bv: 80, n: 'lat', u: 'lat', v: 20 }]), options);
    assert.deepEqual([rejected[0].code, rejected[0].reason], ['out_of_range', 'value 20 + bv 80 = 100 is outside the domain of lat ([-90, 90])']);
  });

  it('bounds are of the quantity, not of plausibility: 140 m/s and -40 °C pass', () => {
    assert.equal(validateSenml(JSON.stringify([record('speed', 140), record('temperature', -40)]), options).records.length, 2);
    assert.equal(validateSenml(JSON.stringify([record('temperature', -274)]), options).rejected[0].code, 'out_of_range');
  });
});

describe('metric domains over HTTP ingest', () => {
  let broker: TestBroker;
  let database: TestDatabase;
  let telemetry: TestService;

  before(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase();
    telemetry = await startService('telemetry', { db: database, env: broker.env });
  });
  after(async () => {
    await telemetry?.close();
    await database?.drop();
    await broker?.stop();
  });

  it('a bus’s latitude of 200 is rejected naming the record; its other records are stored', async () => {
    const admin = await tokenFor(telemetry.config, ['admin'], ['chalons-agglo']);
    const issued = await telemetry.gql<{ issueIngestKey: { secret: { token: string } } }>(
      `mutation { issueIngestKey(collectivityId: "chalons-agglo", label: "domains") { secret { token } } }`,
      { token: admin },
    );
    assert.equal(issued.errors, undefined, JSON.stringify(issued.errors));
    const { rows } = await telemetry.db.pool.query<{ equipment_id: string }>(
      `SELECT equipment_id FROM telemetry_devices WHERE kind = 'BUS' AND status = 'IN_SERVICE' ORDER BY equipment_id LIMIT 1`,
    );
    const bus = rows[0].equipment_id;
    const t = Math.floor(Date.now() / 1000) - 60;
    const body = [
      { bn: deviceBaseName(bus), bt: t, n: 'lat', u: 'lat', v: 200 },
      { n: 'lon', u: 'lon', v: 4.36 },
      { n: 'speed', u: 'm/s', v: -3 },
      { n: 'speed', u: 'm/s', v: 140, t: 1 },
    ];
    const response = await fetch(telemetry.url.replace(/\/graphql$/, '/ingest'), {
      method: 'POST',
      headers: { authorization: `Bearer ${issued.data!.issueIngestKey.secret.token}`, 'content-type': 'application/senml+json' },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200);
    const answer = (await response.json()) as { accepted: number; rejected: unknown[] };
    assert.equal(answer.accepted, 2);
    assert.deepEqual(answer.rejected, [
      { index: 0, field: 'v', reason: 'value 200 is outside the domain of lat ([-90, 90])' },
      { index: 2, field: 'v', reason: 'value -3 is outside the domain of speed (≥ 0)' },
    ]);
    const stored = await telemetry.db.pool.query<{ metric: string; value: number }>(`SELECT metric, value FROM readings WHERE equipment_id = $1 ORDER BY metric`, [bus]);
    assert.deepEqual(stored.rows.map((x) => [x.metric, x.value]), [['lon', 4.36], ['speed', 140]], 'an implausible speed is mobility’s to flag, not a rejection');
    const metrics = await (await fetch(telemetry.url.replace(/\/graphql$/, '/metrics'))).text();
    assert.match(metrics, /reason="out_of_range"/, 'counted by reason in /metrics');
  });
});
