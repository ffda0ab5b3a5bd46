/**
 * MQTT ingestion end to end: the telemetry service (every worker of it) on a seeded database of its
 * own and a broker of the test's own; devices publish SenML QoS 1 on their uplink topics.
 *  - every record of 1,000 messages from 250 device topics is stored, once, and rolled up;
 *  - bad messages (malformed JSON, NaN, 1e309, a unit that does not match, an equipment the topic's
 *    collectivity does not own, an unknown equipment, a record for another device than the topic's,
 *    an empty topic level) each end as a dead letter with its reasons, while the good messages
 *    published among them are stored, and a pack mixing good and bad records keeps its good ones;
 *  - the same messages published again change nothing (idempotent), and leave no dead letter;
 *  - a message PostgreSQL itself refuses (a trigger raising a data exception for one value) is
 *    singled out of its batch and dead-lettered, and the rest of the batch is stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import { deviceBaseName, senmlPack, uplinkTopic } from '@connecte/shared/senml';
import { connectTestBroker, startService, startTestBroker, type TestBroker, type TestService } from '@connecte/testkit';
import { uniqueClientId } from '../src/mqtt-subscriber.js';
import { brokerAccess, clientsOwner, publisherAccount, until } from './mqtt-fixtures.js';

const DEVICES = 250;
const MESSAGES_PER_DEVICE = 4;
/** power, energy, dim_level. */
const RECORDS_PER_MESSAGE = 3;
/** Whole seconds, an hour ago: within retention, not in the future. */
const BASE = Math.floor(Date.now() / 1000) - 3_600;

interface Device {
  id: string;
  collectivityId: string;
}

let broker: TestBroker;
let service: TestService;
let pool: pg.Pool;
let publisher: MqttClient;
let devices: Device[];
let foreign: Device;
const clients = clientsOwner();

/** One message of a light point: three readings at BASE + seq seconds. */
const lightPack = (device: Device, seq: number) =>
  JSON.stringify(senmlPack(deviceBaseName(device.id).slice(0, -1), BASE + seq, { power: 40 + (seq % 7), energy: 1000 + seq, dim_level: 100 }));

const publish = (topic: string, payload: string) => publisher.publishAsync(topic, payload, { qos: 1 });

const count = async (sql: string, params: unknown[]) => Number((await pool.query<{ n: string }>(sql, params)).rows[0].n);
const readingsOf = (ids: string[]) => count('SELECT count(*) AS n FROM readings WHERE equipment_id = ANY($1) AND time >= to_timestamp($2)', [ids, BASE]);
const rolledUpOf = (ids: string[]) =>
  count('SELECT coalesce(sum(count), 0) AS n FROM reading_rollups_hourly WHERE equipment_id = ANY($1) AND hour >= date_trunc($3, to_timestamp($2), $4)', [ids, BASE, 'hour', 'UTC']);
const deadLettersOf = (topics: string[]) => count('SELECT count(*) AS n FROM ingest_dead_letters WHERE topic = ANY($1)', [topics]);

/** The mqtt-ingest worker's state in /readyz. */
async function ingestState(): Promise<string> {
  const body = (await (await fetch(service.url.replace(/\/graphql$/, '/readyz'))).json()) as { checks?: Record<string, string> };
  return body.checks?.['mqtt-ingest'] ?? 'absent';
}

before(async () => {
  broker = await startTestBroker();
  const access = brokerAccess(broker);
  service = await startService('telemetry', { env: { ...access.env, MQTT_CLIENT_ID: uniqueClientId('mqtt-ingest-test'), MQTT_INGEST_GROUP: 'mqtt-ingest-test' } });
  pool = new pg.Pool({ connectionString: service.database.url, max: 2 });
  const { rows } = await pool.query<{ id: string; collectivity_id: string }>(
    `SELECT id, collectivity_id FROM equipment WHERE kind = 'LIGHT_POINT' AND collectivity_id = 'chalons' AND status <> 'DECOMMISSIONED' ORDER BY id LIMIT ${DEVICES + 20}`,
  );
  devices = rows.map((row) => ({ id: row.id, collectivityId: row.collectivity_id }));
  const other = await pool.query<{ id: string; collectivity_id: string }>(`SELECT id, collectivity_id FROM equipment WHERE kind = 'LIGHT_POINT' AND collectivity_id = 'fagnieres' ORDER BY id LIMIT 1`);
  foreign = { id: other.rows[0].id, collectivityId: other.rows[0].collectivity_id };
  publisher = await connectTestBroker(clients, { url: broker.url, ...(await publisherAccount(broker)), protocolVersion: 4 });
});

after(async () => {
  await clients.end();
  await pool?.end();
  await service?.close();
  await broker?.stop();
});

describe('MQTT ingestion through the telemetry service', { timeout: 90_000 }, () => {
  it('stores every record published from 250 device topics, once, rolled up', async (t) => {
    assert.match(await ingestState(), /^(connected|\d+ unacknowledged)$/);
    const batch = devices.slice(0, DEVICES);
    const started = Date.now();
    const sends: Promise<unknown>[] = [];
    for (let seq = 0; seq < MESSAGES_PER_DEVICE; seq++) {
      for (const device of batch) sends.push(publish(uplinkTopic(device.collectivityId, device.id), lightPack(device, seq)));
    }
    await Promise.all(sends);
    const expected = DEVICES * MESSAGES_PER_DEVICE * RECORDS_PER_MESSAGE;
    const ids = batch.map((d) => d.id);
    let stored = 0;
    await until(async () => (stored = await readingsOf(ids)) >= expected, () => `${expected} readings (got ${stored})`, 30_000);
    t.diagnostic(`${sends.length} messages, ${expected} readings stored in ${Date.now() - started} ms`);
    await until(async () => (await ingestState()) === 'connected', () => 'every message acknowledged', 5_000);
    assert.equal(await readingsOf(ids), expected, 'no more rows than records');
    assert.equal(await rolledUpOf(ids), expected, 'each reading counted once in the hourly roll-ups');
    assert.equal(await deadLettersOf(batch.map((d) => uplinkTopic(d.collectivityId, d.id))), 0, 'no dead letter');
  });

  it('puts each bad message in the dead-letter table with its reasons, without holding up the good ones', async (t) => {
    const spare = devices.slice(DEVICES, DEVICES + 20);
    const at = BASE + 100;
    const urn = (device: Device) => deviceBaseName(device.id).slice(0, -1);
    const record = (device: Device, extra: string) => `[{"bn":"${deviceBaseName(device.id)}","bt":${at},${extra}}]`;
    const unknownId = 'lp-chalons-does-not-exist';
    const bad: { name: string; topic: string; payload: string; reason: RegExp; field?: string; stores?: number }[] = [
      { name: 'malformed JSON', topic: uplinkTopic('chalons', spare[0].id), payload: '[{"n":"power",', reason: /JSON/i },
      { name: 'NaN', topic: uplinkTopic('chalons', spare[1].id), payload: record(spare[1], '"n":"power","u":"W","v":NaN'), reason: /JSON/i },
      { name: '1e309', topic: uplinkTopic('chalons', spare[2].id), payload: record(spare[2], '"n":"power","u":"W","v":1e309'), reason: /finite|infinit/i, field: 'v' },
      { name: 'unit mismatch', topic: uplinkTopic('chalons', spare[3].id), payload: record(spare[3], '"n":"power","u":"kW","v":0.04'), reason: /unit|"W"/i, field: 'u' },
      {
        name: 'a good record beside a bad one',
        topic: uplinkTopic('chalons', spare[4].id),
        payload: JSON.stringify([...senmlPack(urn(spare[4]), at, { power: 41 }), { n: 'energy', u: 'kWh', v: 1 }]),
        reason: /unit|"Wh"/i,
        field: 'u',
        stores: 1,
      },
      {
        name: 'an equipment its topic’s collectivity does not own',
        topic: uplinkTopic('chalons', foreign.id),
        payload: JSON.stringify(senmlPack(urn(foreign), at, { power: 40 })),
        reason: /collectivity/i,
        field: 'topic',
      },
      { name: 'an unknown equipment', topic: uplinkTopic('chalons', unknownId), payload: JSON.stringify(senmlPack(`urn:dev:connecte:${unknownId}`, at, { power: 40 })), reason: /unknown equipment/i },
      {
        name: 'a record for another device than the topic’s',
        topic: uplinkTopic('chalons', spare[5].id),
        payload: JSON.stringify(senmlPack(urn(spare[6]), at, { power: 40 })),
        reason: new RegExp(spare[5].id),
      },
      { name: 'an empty topic level', topic: `connecte//${spare[7].id}/up`, payload: JSON.stringify(senmlPack(urn(spare[7]), at, { power: 40 })), reason: /./ },
    ];
    // Each bad message among good ones, in one burst.
    const good = spare.slice(8, 8 + bad.length);
    const sends: Promise<unknown>[] = [];
    bad.forEach((message, i) => {
      sends.push(publish(message.topic, message.payload));
      sends.push(publish(uplinkTopic(good[i].collectivityId, good[i].id), lightPack(good[i], 100)));
    });
    await Promise.all(sends);

    const goodIds = good.map((d) => d.id);
    const expectedGood = good.length * RECORDS_PER_MESSAGE;
    await until(async () => (await readingsOf(goodIds)) === expectedGood, () => `the ${expectedGood} good readings`, 20_000);
    const topics = bad.map((message) => message.topic);
    await until(async () => (await deadLettersOf(topics)) >= bad.length, () => `${bad.length} dead letters`, 20_000);
    await until(async () => (await ingestState()) === 'connected', () => 'every message acknowledged, bad ones included', 5_000);

    const { rows } = await pool.query<{ topic: string; reasons: { index: number | null; field: string | null; reason: string }[]; payload: string; equipment_id: string | null }>(
      'SELECT topic, reasons, payload, equipment_id FROM ingest_dead_letters WHERE topic = ANY($1)',
      [topics],
    );
    assert.equal(rows.length, bad.length, 'one dead letter per bad message');
    for (const message of bad) {
      const letter = rows.find((row) => row.topic === message.topic);
      assert.ok(letter, `${message.name}: a dead letter`);
      t.diagnostic(`${message.name}: ${letter.reasons.map((r) => `[${r.index ?? '-'}] ${r.field}: ${r.reason}`).join('; ')}`);
      assert.ok(letter.reasons.length > 0, `${message.name}: with reasons`);
      assert.ok(letter.reasons.some((r) => message.reason.test(r.reason)), `${message.name}: ${JSON.stringify(letter.reasons)} names ${message.reason}`);
      if (message.field) assert.ok(letter.reasons.some((r) => r.field === message.field), `${message.name}: names field ${message.field}: ${JSON.stringify(letter.reasons)}`);
      assert.equal(letter.payload, message.payload, `${message.name}: the payload kept`);
    }
    // Nothing of a refused message was stored; the good record of the mixed pack was.
    const stored = await pool.query<{ equipment_id: string; n: string }>(
      'SELECT equipment_id, count(*) AS n FROM readings WHERE equipment_id = ANY($1) GROUP BY 1',
      [[...spare.slice(0, 8).map((d) => d.id), foreign.id, unknownId]],
    );
    assert.deepEqual(
      stored.rows.map((row) => [row.equipment_id, Number(row.n)]),
      [[spare[4].id, 1]],
      'only the good record of the mixed pack',
    );
  });

  it('accepts the same messages again idempotently: no new row, no double count, no dead letter', async () => {
    const batch = devices.slice(0, DEVICES);
    const ids = batch.map((d) => d.id);
    const before = { rows: await readingsOf(ids), rolled: await rolledUpOf(ids) };
    const sends: Promise<unknown>[] = [];
    for (let seq = 0; seq < 2; seq++) for (const device of batch) sends.push(publish(uplinkTopic(device.collectivityId, device.id), lightPack(device, seq)));
    // A new reading after them: once it is stored and nothing waits for an acknowledgement, the copies were processed.
    const sentinel = devices[0];
    sends.push(publish(uplinkTopic(sentinel.collectivityId, sentinel.id), lightPack(sentinel, 1_000)));
    await Promise.all(sends);
    await until(async () => (await readingsOf(ids)) === before.rows + RECORDS_PER_MESSAGE, () => 'the sentinel reading', 20_000);
    await until(async () => (await ingestState()) === 'connected', () => 'every copy acknowledged', 5_000);
    assert.equal(await readingsOf(ids), before.rows + RECORDS_PER_MESSAGE, 'the copies added nothing');
    assert.equal(await rolledUpOf(ids), before.rolled + RECORDS_PER_MESSAGE, 'nor to the roll-ups');
    assert.equal(await deadLettersOf(batch.map((d) => uplinkTopic(d.collectivityId, d.id))), 0);
  });

  it('a message the database itself refuses (not a passing failure) goes to the dead letters, and does not hold the others back', async (t) => {
    // A real refusal from PostgreSQL for one value: a trigger on readings raising a data exception.
    const poisoned = devices[DEVICES + 19];
    await pool.query(`
      CREATE FUNCTION mqtt_ingest_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.value = 666.25 THEN RAISE EXCEPTION 'value 666.25 refused by the test' USING ERRCODE = '22023'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER mqtt_ingest_test_refuse BEFORE INSERT ON readings FOR EACH ROW EXECUTE FUNCTION mqtt_ingest_test_refuse();`);
    t.after(() => pool.query('DROP TRIGGER mqtt_ingest_test_refuse ON readings; DROP FUNCTION mqtt_ingest_test_refuse()'));
    const others = devices.slice(0, 40);
    const topic = uplinkTopic(poisoned.collectivityId, poisoned.id);
    const sends = others.map((device) => publish(uplinkTopic(device.collectivityId, device.id), lightPack(device, 2_000)));
    sends.splice(20, 0, publish(topic, JSON.stringify(senmlPack(deviceBaseName(poisoned.id).slice(0, -1), BASE + 2_000, { power: 666.25 }))));
    await Promise.all(sends);
    const ids = others.map((d) => d.id);
    await until(async () => (await deadLettersOf([topic])) === 1, () => 'the refused message as a dead letter', 20_000);
    await until(
      async () => (await count('SELECT count(*) AS n FROM readings WHERE equipment_id = ANY($1) AND time = to_timestamp($2)', [ids, BASE + 2_000])) === others.length * RECORDS_PER_MESSAGE,
      () => 'the other messages of its batch stored',
      20_000,
    );
    await until(async () => (await ingestState()) === 'connected', () => 'every message acknowledged', 5_000);
    const { rows } = await pool.query<{ reasons: { reason: string }[] }>('SELECT reasons FROM ingest_dead_letters WHERE topic = $1', [topic]);
    assert.match(rows[0].reasons[0].reason, /database refused.*22023.*refused by the test/);
    assert.equal(await count('SELECT count(*) AS n FROM readings WHERE equipment_id = $1', [poisoned.id]), 0);
  });
});
