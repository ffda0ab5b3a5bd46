/**
 * Storage of readings (subgraphs/telemetry/src/ingest.ts, partitions.ts) against the real database:
 * idempotency; roll-ups and latest values equal to a recomputation from the raw readings after
 * concurrent, overlapping batches that wait inside their transactions and roll back at random;
 * partitions created ahead, on demand and dropped by retention; per-metric retention; the
 * Ingestor's refusals (unknown, decommissioned, another's equipment), dead letters and events.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { deviceBaseName, senmlPack, type MetricName } from '@connecte/shared/senml';
import { ensurePartitions, listPartitions, maintainPartitions, partitionName, utcDay } from '../src/partitions.js';
import type { DeviceInfo, IngestMessage, Principal } from '../src/types.js';
import { startIngestHarness, type IngestHarness } from './ingest-fixtures.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const seconds = (ms: number) => ms / 1000;

const message = (pack: unknown, principal: Principal, transport: IngestMessage['transport'] = 'http', topic: string | null = null): IngestMessage => ({
  transport,
  topic,
  payload: Buffer.from(typeof pack === 'string' ? pack : JSON.stringify(pack)),
  principal,
});
const keyOf = (collectivityId: string): Principal => ({ kind: 'ingest-key', keyId: 'cik_test', collectivityId });
const packOf = (equipmentId: string, ms: number, values: Partial<Record<MetricName, number | boolean>>) =>
  senmlPack(deviceBaseName(equipmentId).slice(0, -1), seconds(ms), values);

/** Devices of the seed, by kind and status. */
function devicesOf(h: IngestHarness, kind: string, status: DeviceInfo['status'] = 'IN_SERVICE', collectivityId = 'chalons'): DeviceInfo[] {
  return [...h.devices().values()].filter((d) => d.kind === kind && d.status === status && d.collectivityId === collectivityId);
}

/** The roll-ups recomputed from the raw readings, in the tables' shape, for comparison. */
const RECOMPUTE_HOURLY = `
SELECT equipment_id, metric, date_trunc('hour', time, 'UTC') AS bucket, count(*)::int AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
       min(time) AS first_time, (array_agg(value ORDER BY time))[1] AS first_value, max(time) AS last_time, (array_agg(value ORDER BY time DESC))[1] AS last_value
FROM readings WHERE equipment_id = ANY($1) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
const STORED_HOURLY = `
SELECT equipment_id, metric, hour AS bucket, count, sum, min, max, first_time, first_value, last_time, last_value
FROM reading_rollups_hourly WHERE equipment_id = ANY($1) ORDER BY 1, 2, 3`;
const RECOMPUTE_DAILY = `
SELECT equipment_id, metric, to_char((time AT TIME ZONE 'Europe/Paris')::date, 'YYYY-MM-DD') AS bucket, count(*)::int AS count, sum(value) AS sum,
       min(value) AS min, max(value) AS max, min(time) AS first_time, (array_agg(value ORDER BY time))[1] AS first_value,
       max(time) AS last_time, (array_agg(value ORDER BY time DESC))[1] AS last_value
FROM readings WHERE equipment_id = ANY($1) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`;
const STORED_DAILY = `
SELECT equipment_id, metric, to_char(day, 'YYYY-MM-DD') AS bucket, count, sum, min, max, first_time, first_value, last_time, last_value
FROM reading_rollups_daily WHERE equipment_id = ANY($1) ORDER BY 1, 2, 3`;
const RECOMPUTE_LATEST = `
SELECT DISTINCT ON (equipment_id, metric) equipment_id, metric, time, value FROM readings WHERE equipment_id = ANY($1) ORDER BY equipment_id, metric, time DESC`;
const STORED_LATEST = `SELECT equipment_id, metric, time, value FROM latest_readings WHERE equipment_id = ANY($1) ORDER BY 1, 2`;

describe('storage of readings', () => {
  let h: IngestHarness;
  let lights: DeviceInfo[];

  before(async () => {
    h = await startIngestHarness({ poolSize: 12 });
    lights = devicesOf(h, 'LIGHT_POINT');
    assert.ok(lights.length > 100, 'the seed has light points');
  });
  after(() => h?.close());

  it('is idempotent on (equipment, metric, time): the same pack twice stores once, and roll-ups count it once', async () => {
    const [lamp] = lights;
    const at = Date.now() - 2 * HOUR;
    const pack = packOf(lamp.equipmentId, at, { power: 16, energy: 1043.2, dim_level: 40, fault: false });
    const [first] = await h.r.ingestor.ingest([message(pack, keyOf('chalons'))]);
    assert.deepEqual(first, { accepted: 4, duplicate: 0, rejected: [] });
    const [again] = await h.r.ingestor.ingest([message(pack, keyOf('chalons'))]);
    assert.deepEqual(again, { accepted: 0, duplicate: 4, rejected: [] });
    const { rows } = await h.db.pool.query('SELECT count(*)::int AS n FROM readings WHERE equipment_id = $1', [lamp.equipmentId]);
    assert.equal(rows[0].n, 4);
    const rollups = await h.db.pool.query('SELECT metric, count, sum FROM reading_rollups_daily WHERE equipment_id = $1 ORDER BY metric', [lamp.equipmentId]);
    assert.deepEqual(rollups.rows.map((r) => [r.metric, r.count, r.sum]), [['dim_level', 1, 40], ['energy', 1, 1043.2], ['fault', 1, 0], ['power', 1, 16]]);
  });

  it('counts duplicates inside one batch (the first record wins) and across the messages of one call', async () => {
    const lamp = lights[1];
    const at = Date.now() - 3 * HOUR;
    const record = { bn: deviceBaseName(lamp.equipmentId), bt: seconds(at), n: 'power', u: 'W', v: 10 };
    const [one, two] = await h.r.ingestor.ingest([
      message([record, { ...record, v: 99 }, { n: 'power', u: 'W', v: 11, t: 60 }], keyOf('chalons')),
      message([{ ...record, v: 12 }], keyOf('chalons')),
    ]);
    assert.deepEqual(one, { accepted: 2, duplicate: 1, rejected: [] });
    assert.deepEqual(two, { accepted: 0, duplicate: 1, rejected: [] });
    const { rows } = await h.db.pool.query('SELECT value FROM readings WHERE equipment_id = $1 ORDER BY time', [lamp.equipmentId]);
    assert.deepEqual(rows.map((r) => r.value), [10, 11]);
  });

  it('keeps the latest value moving forward only: an older reading arriving later does not replace it', async () => {
    const lamp = lights[2];
    const now = Date.now();
    await h.r.ingestor.ingest([message(packOf(lamp.equipmentId, now - HOUR, { power: 20 }), keyOf('chalons'))]);
    const [late] = await h.r.ingestor.ingest([message(packOf(lamp.equipmentId, now - 5 * HOUR, { power: 5 }), keyOf('chalons'))]);
    assert.equal(late.accepted, 1, 'the older reading is stored');
    const { rows } = await h.db.pool.query(`SELECT value, time FROM latest_readings WHERE equipment_id = $1 AND metric = 'power'`, [lamp.equipmentId]);
    assert.equal(rows[0].value, 20);
    assert.equal(rows[0].time.getTime(), now - HOUR);
    const rollup = await h.db.pool.query(`SELECT first_value, last_value, count FROM reading_rollups_daily WHERE equipment_id = $1 AND metric = 'power'`, [lamp.equipmentId]);
    const total = rollup.rows.reduce((n, r) => n + r.count, 0);
    assert.equal(total, 2);
  });

  it('keeps roll-ups and latest values equal to a recomputation from raw readings after concurrent overlapping batches that wait and roll back at random', async () => {
    const devices = lights.slice(200, 212);
    const ids = devices.map((d) => d.equipmentId);
    const metrics: MetricName[] = ['power', 'energy', 'dim_level'];
    // 40 slots of 7 minutes: across several UTC hours and (most days of the year) a Paris midnight.
    const midnight = Date.parse(`${utcDay(Date.now() - 2 * DAY)}T23:00:00Z`);
    const slots = Array.from({ length: 40 }, (_, i) => midnight - 2 * HOUR + i * 7 * 60_000 + (i % 3) * 1_000);
    const failure = new Error('injected failure inside the ingest transaction');
    let inside = 0;
    let overlapped = 0;
    h.alarms = {
      async evaluate() {
        inside++;
        if (inside > 1) overlapped++;
        try {
          // Hold the transaction's locks a while, so that the others meet them.
          await sleep(Math.random() * 15);
          if (Math.random() < 0.25) throw failure;
        } finally {
          inside--;
        }
      },
    };
    const random = <T>(items: readonly T[]) => items[Math.floor(Math.random() * items.length)];
    let accepted = 0;
    let duplicates = 0;
    let failed = 0;
    const unexpected: unknown[] = [];
    try {
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let batch = 0; batch < 25; batch++) {
            const pack: object[] = [];
            for (let n = 0; n < 60; n++) {
              const device = random(devices);
              const metric = random(metrics);
              // Integer values: sums are exact, so the comparison can be exact (a dim level within its 0–100 %).
              pack.push({ bn: deviceBaseName(device.equipmentId), bt: seconds(random(slots)), n: metric, u: metric === 'power' ? 'W' : metric === 'energy' ? 'Wh' : '%', v: Math.floor(Math.random() * (metric === 'dim_level' ? 101 : 1000)) });
            }
            try {
              const [result] = await h.r.ingestor.ingest([message(pack, keyOf('chalons'))]);
              assert.equal(result.rejected.length, 0);
              accepted += result.accepted;
              duplicates += result.duplicate;
            } catch (error) {
              if (error === failure) failed++;
              else unexpected.push(error);
            }
          }
        }),
      );
    } finally {
      h.alarms = { evaluate: async () => {} };
    }
    assert.deepEqual(unexpected, [], 'no deadlock, no other failure');
    assert.ok(failed > 10, `transactions rolled back (${failed})`);
    assert.ok(overlapped > 10, `transactions overlapped (${overlapped})`);
    assert.ok(duplicates > 100, `batches overlapped on keys (${duplicates} duplicates)`);
    const stored = await h.db.pool.query('SELECT count(*)::int AS n FROM readings WHERE equipment_id = ANY($1)', [ids]);
    assert.equal(stored.rows[0].n, accepted, 'every accepted reading is stored, once; nothing of a rolled-back batch');
    for (const [label, recompute, kept] of [
      ['hourly', RECOMPUTE_HOURLY, STORED_HOURLY],
      ['daily', RECOMPUTE_DAILY, STORED_DAILY],
      ['latest', RECOMPUTE_LATEST, STORED_LATEST],
    ] as const) {
      const expected = (await h.db.pool.query(recompute, [ids])).rows;
      const actual = (await h.db.pool.query(kept, [ids])).rows;
      assert.ok(expected.length > 0);
      assert.deepEqual(actual, expected, `${label} roll-ups equal their recomputation from raw readings`);
    }
    const days = await h.db.pool.query('SELECT count(DISTINCT day)::int AS n FROM reading_rollups_daily WHERE equipment_id = ANY($1)', [ids]);
    assert.ok(days.rows[0].n >= 2, 'the slots span two Europe/Paris days');
  });

  it('accepts a reading for a day without a partition, within retention, by creating it', async () => {
    const lamp = lights[3];
    const at = Date.now() - 90 * DAY;
    const day = utcDay(at);
    assert.ok(!(await listPartitions(h.db.pool)).includes(day), 'no partition for that day yet');
    const [result] = await h.r.ingestor.ingest([message(packOf(lamp.equipmentId, at, { power: 7 }), keyOf('chalons'))]);
    assert.deepEqual(result, { accepted: 1, duplicate: 0, rejected: [] });
    assert.ok((await listPartitions(h.db.pool)).includes(day));
    const { rows } = await h.db.pool.query(`SELECT tableoid::regclass::text AS partition FROM readings WHERE equipment_id = $1`, [lamp.equipmentId]);
    assert.deepEqual(rows.map((r) => r.partition), [partitionName(day)]);
  });

  it('creates a partition once when several instances ask for it at the same time', async () => {
    const day = utcDay(Date.now() - 120 * DAY);
    const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: h.database.url, max: 2 }));
    try {
      const created = await Promise.all(pools.map((pool) => ensurePartitions(pool, [day, utcDay(Date.now() - 121 * DAY)])));
      assert.equal(created.flat().filter((d) => d === day).length, 1, 'one of them created it');
      assert.equal((await listPartitions(h.db.pool)).filter((d) => d === day).length, 1);
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  describe('the Ingestor refuses, record by record', () => {
    it('an unknown equipment, a decommissioned one, one of another collectivity (ingest key); the other records are stored', async () => {
      const lamp = lights[4];
      const [retired] = devicesOf(h, 'LIGHT_POINT', 'DECOMMISSIONED');
      const [foreign] = devicesOf(h, 'LIGHT_POINT', 'IN_SERVICE', 'fagnieres');
      const at = Date.now() - 60_000;
      const pack = [
        ...packOf(lamp.equipmentId, at, { power: 3 }),
        ...packOf('lp-nowhere-0001', at, { power: 3 }),
        ...packOf(retired.equipmentId, at, { power: 3 }),
        ...packOf(foreign.equipmentId, at, { power: 3 }),
        ...packOf(lamp.equipmentId, at, { energy: 4 }),
      ];
      const [result] = await h.r.ingestor.ingest([message(pack, keyOf('chalons'))]);
      assert.equal(result.accepted, 2);
      assert.deepEqual(
        result.rejected.map((r) => [r.index, r.field]),
        [[1, 'bn'], [2, 'bn'], [3, 'bn']],
      );
      assert.match(result.rejected[0].reason, /unknown equipment "lp-nowhere-0001"/);
      assert.match(result.rejected[1].reason, /is decommissioned/);
      assert.equal(result.rejected[2].reason, `unknown equipment "${foreign.equipmentId}" in collectivity "chalons"`, 'another collectivity’s asset reads as unknown');
    });

    it('a device credential reporting for another device', async () => {
      const [mine, other] = [lights[5], lights[6]];
      const device: Principal = { kind: 'device', credentialId: 'cdt_test', equipmentId: mine.equipmentId, collectivityId: 'chalons' };
      const at = Date.now() - 60_000;
      const [result] = await h.r.ingestor.ingest([message([...packOf(other.equipmentId, at, { power: 1 }), ...packOf(mine.equipmentId, at, { power: 2 })], device)]);
      assert.equal(result.accepted, 1);
      assert.deepEqual(result.rejected.map((r) => [r.index, r.field]), [[0, 'bn']]);
      assert.match(result.rejected[0].reason, /reports only for equipment/);
    });

    it('over MQTT: a record for another equipment than the topic’s, a topic whose collectivity does not own its equipment (whole message); each kept as a dead letter', async () => {
      const lamp = lights[7];
      const other = lights[8];
      const at = Date.now() - 60_000;
      const topicOf = (collectivityId: string, equipmentId: string): Principal => ({ kind: 'topic', collectivityId, equipmentId });
      const before = Number((await h.db.pool.query('SELECT coalesce(max(id), 0) AS id FROM ingest_dead_letters')).rows[0].id);
      const [mixed, misplaced, clean] = await h.r.ingestor.ingest([
        message([...packOf(lamp.equipmentId, at, { power: 1 }), ...packOf(other.equipmentId, at, { power: 1 })], topicOf('chalons', lamp.equipmentId), 'mqtt', `connecte/chalons/${lamp.equipmentId}/up`),
        message(packOf(lamp.equipmentId, at - 1000, { power: 1 }), topicOf('fagnieres', lamp.equipmentId), 'mqtt', `connecte/fagnieres/${lamp.equipmentId}/up`),
        message(packOf(lamp.equipmentId, at - 2000, { power: 1 }), topicOf('chalons', lamp.equipmentId), 'mqtt', `connecte/chalons/${lamp.equipmentId}/up`),
      ]);
      assert.equal(mixed.accepted, 1);
      assert.deepEqual(mixed.rejected.map((r) => [r.index, r.field]), [[1, 'bn']]);
      assert.deepEqual(misplaced, { accepted: 0, duplicate: 0, rejected: [{ index: null, field: 'topic', reason: `equipment "${lamp.equipmentId}" of the topic is not of collectivity "fagnieres"` }] });
      assert.deepEqual(clean, { accepted: 1, duplicate: 0, rejected: [] });
      const { rows } = await h.db.pool.query('SELECT transport, topic, collectivity_id, equipment_id, reasons FROM ingest_dead_letters WHERE id > $1 ORDER BY id', [before]);
      assert.deepEqual(rows.map((r) => [r.transport, r.topic, r.collectivity_id, r.equipment_id]), [
        ['mqtt', `connecte/chalons/${lamp.equipmentId}/up`, 'chalons', lamp.equipmentId],
        ['mqtt', `connecte/fagnieres/${lamp.equipmentId}/up`, 'fagnieres', lamp.equipmentId],
      ]);
      assert.deepEqual(rows[0].reasons, mixed.rejected);
    });

    it('dead letters keep at most 64 KiB of the payload, as text, with NUL escaped; HTTP rejections are answered, not kept', async () => {
      const lamp = lights[9];
      const topic: Principal = { kind: 'topic', collectivityId: 'chalons', equipmentId: lamp.equipmentId };
      const before = Number((await h.db.pool.query('SELECT coalesce(max(id), 0) AS id FROM ingest_dead_letters')).rows[0].id);
      const huge = JSON.stringify(Array.from({ length: 100 }, () => ({ n: 'x'.repeat(1_000) })));
      const nul = Buffer.concat([Buffer.from('[{"n":"power"'), Buffer.from([0]), Buffer.from('}]')]);
      const results = await h.r.ingestor.ingest([
        message(huge, topic, 'mqtt', 'connecte/chalons/x/up'),
        { transport: 'mqtt', topic: 'connecte/chalons/x/up', payload: nul, principal: topic },
        message('not json', keyOf('chalons'), 'http'),
      ]);
      assert.equal(results[0].rejected.length, 100);
      assert.equal(results[1].rejected[0].index, null);
      assert.equal(results[2].rejected[0].field, 'body');
      const { rows } = await h.db.pool.query('SELECT payload, payload_bytes, jsonb_array_length(reasons) AS reasons FROM ingest_dead_letters WHERE id > $1 ORDER BY id', [before]);
      assert.equal(rows.length, 2, 'the HTTP message is not kept');
      assert.equal(Buffer.byteLength(rows[0].payload), 64 * 1024);
      assert.equal(rows[0].payload_bytes, Buffer.byteLength(huge));
      assert.equal(rows[0].reasons, 100);
      assert.equal(rows[1].payload, '[{"n":"power"\\u0000}]');
    });
  });

  it('publishes one telemetry.readings event per collectivity, with the readings stored (not the duplicates)', async () => {
    const lamp = lights[10];
    const [foreign] = devicesOf(h, 'LIGHT_POINT', 'IN_SERVICE', 'fagnieres');
    const at = Date.now() - 30 * 60_000;
    await h.r.ingestor.ingest([message(packOf(lamp.equipmentId, at, { power: 1 }), keyOf('chalons'))]);
    const before = Number((await h.db.pool.query('SELECT max(id) AS id FROM events')).rows[0].id);
    await h.r.ingestor.ingest([
      message(packOf(lamp.equipmentId, at, { power: 1, energy: 2 }), keyOf('chalons')),
      message(packOf(foreign.equipmentId, at, { fault: true }), keyOf('fagnieres')),
    ]);
    const { rows } = await h.db.pool.query(`SELECT collectivity_id, payload FROM events WHERE id > $1 AND topic = 'telemetry.readings' ORDER BY id`, [before]);
    assert.deepEqual(rows.map((r) => r.collectivity_id).sort(), ['chalons', 'fagnieres']);
    const chalons = rows.find((r) => r.collectivity_id === 'chalons')!;
    assert.deepEqual(chalons.payload.r, [[lamp.equipmentId, 'LIGHT_POINT', 'energy', new Date(at).toISOString(), 2]]);
    const fagnieres = rows.find((r) => r.collectivity_id === 'fagnieres')!;
    assert.equal(fagnieres.payload.r[0][4], 1, 'a boolean is 1');
  });

  it('counts records in Prometheus by transport, outcome and reason', async () => {
    const lines = (await h.metrics.registry.metrics()).split('\n');
    const value = (name: string, labels: string[]) => {
      const line = lines.find((l) => l.startsWith(`${name}{`) && labels.every((label) => l.includes(label)));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    assert.ok(value('telemetry_ingest_records_total', ['transport="http"', 'outcome="accepted"', 'reason="none"']) > 1000);
    assert.ok(value('telemetry_ingest_records_total', ['transport="http"', 'outcome="duplicate"', 'reason="none"']) > 100);
    assert.ok(value('telemetry_ingest_records_total', ['transport="http"', 'outcome="rejected"', 'reason="unknown_equipment"']) >= 2);
    assert.equal(value('telemetry_ingest_records_total', ['transport="http"', 'outcome="rejected"', 'reason="decommissioned"']), 1);
    assert.ok(value('telemetry_ingest_records_total', ['transport="mqtt"', 'outcome="rejected"', 'reason="not_allowed"']) >= 2);
    assert.ok(value('telemetry_ingest_messages_total', ['transport="http"', 'outcome="refused"']) >= 1);
    assert.ok(value('telemetry_ingest_messages_total', ['transport="http"', 'outcome="failed"']) > 10, 'the rolled-back batches');
  });
});

describe('partitions and retention', () => {
  let h: IngestHarness;
  const now = Date.now();

  before(async () => {
    h = await startIngestHarness({
      env: { TELEMETRY_RETENTION_DAYS: '10', TELEMETRY_RETENTION: 'speed=3', TELEMETRY_PARTITIONS_AHEAD_DAYS: '7' },
    });
  });
  after(() => h?.close());

  it('creates today’s partition and the next 7 days’', async () => {
    const report = await maintainPartitions(h.db.pool, h.config, new Date(now));
    const expected = Array.from({ length: 8 }, (_, n) => utcDay(now + n * DAY));
    const partitions = await listPartitions(h.db.pool);
    for (const day of expected) assert.ok(partitions.includes(day), `partition ${day}`);
    assert.ok(report.created.every((day) => expected.includes(day)));
    const again = await maintainPartitions(h.db.pool, h.config, new Date(now));
    assert.deepEqual(again.created, [], 'nothing twice');
  });

  it('drops partitions older than the longest retention, deletes the rows of a shorter-retention metric once, and old hourly roll-ups', async () => {
    const [lamp] = [...h.devices().values()].filter((d) => d.kind === 'LIGHT_POINT' && d.status === 'IN_SERVICE');
    const [bus] = [...h.devices().values()].filter((d) => d.kind === 'BUS' && d.status === 'IN_SERVICE');
    const old = now - 8 * DAY;
    const recent = now - 2 * DAY;
    const results = await h.r.ingestor.ingest([
      message(packOf(lamp.equipmentId, old, { power: 1 }), keyOf(lamp.collectivityId)),
      message(packOf(lamp.equipmentId, recent, { power: 2 }), keyOf(lamp.collectivityId)),
      message(packOf(bus.equipmentId, recent, { speed: 8, lat: 48.95, lon: 4.36 }), keyOf(bus.collectivityId)),
      message(packOf(bus.equipmentId, now - 4 * DAY, { speed: 8 }), keyOf(bus.collectivityId)),
    ]);
    assert.deepEqual(results.map((r) => r.accepted), [1, 1, 3, 0], 'speed 4 days old is past its retention of 3 days');
    assert.equal(results[3].rejected[0].reason.includes('older than the retention of speed (3 days)'), true);

    // Five days later: the old day is past 10 days (+ a day's margin), speed's of 2 days ago past 3.
    const later = new Date(now + 5 * DAY);
    const report = await maintainPartitions(h.db.pool, h.config, later);
    assert.ok(report.dropped.includes(utcDay(old)), 'the partition of 8 days ago is dropped');
    assert.ok(!report.dropped.includes(utcDay(now - 5 * DAY)), 'one of 5 days ago is within 10 days (and the margin) of the new today');
    const partitions = await listPartitions(h.db.pool);
    assert.ok(!partitions.includes(utcDay(old)));
    assert.ok(partitions.includes(utcDay(recent)));
    assert.ok(partitions.includes(utcDay(later.getTime() + 7 * DAY)), 'created ahead of the new today');
    const purge = report.purged.find((p) => p.partition === partitionName(utcDay(recent)));
    assert.deepEqual(purge && [purge.metrics, purge.rows], [['speed'], 1]);

    const { rows } = await h.db.pool.query('SELECT equipment_id, metric, value FROM readings ORDER BY equipment_id, metric');
    assert.deepEqual(
      rows.map((r) => [r.equipment_id, r.metric, r.value]).sort(),
      [[bus.equipmentId, 'lat', 48.95], [bus.equipmentId, 'lon', 4.36], [lamp.equipmentId, 'power', 2]].sort(),
      'speed is gone; lat, lon (kept 10 days here) and the recent power stay',
    );
    const hourly = await h.db.pool.query('SELECT count(*)::int AS n, min(hour) AS oldest FROM reading_rollups_hourly');
    assert.equal(report.rollupsDeleted, 1, 'the hourly roll-up of 8 days ago');
    assert.ok(hourly.rows[0].oldest.getTime() >= recent - HOUR);
    const daily = await h.db.pool.query(`SELECT count(*)::int AS n FROM reading_rollups_daily WHERE equipment_id = $1 AND metric = 'power'`, [lamp.equipmentId]);
    assert.equal(daily.rows[0].n, 2, 'daily roll-ups stay');

    const again = await maintainPartitions(h.db.pool, h.config, later);
    assert.deepEqual([again.dropped, again.purged, again.rollupsDeleted], [[], [], 0], 'each partition is purged of a metric once');
  });
});
