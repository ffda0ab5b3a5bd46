/**
 * Nothing lost, nothing doubled, while a device keeps publishing: a QoS 1 publisher with a
 * persistent session publishes SenML from 300 light points without pause, into the telemetry
 * service run as a process of its own (`src/main.ts`, so that it can be killed for real), on a
 * throwaway PostgreSQL cluster (migrations and seed) and a broker of the test's own. In turn:
 *  - the broker restarts (SIGTERM: it saves its sessions, and the ingestor's queue with them);
 *  - PostgreSQL stops for a while, then starts again (the ingestor retries, holding its acks);
 *  - the ingestor is killed (SIGKILL, batches in flight) and started again with its client id;
 *  - a second ingestor joins the group: both take a share.
 * After each, publishing pauses until the broker has acknowledged every publish, and the rows
 * are counted against the records published: equal, and the hourly roll-ups count each once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import { migrate } from '@connecte/shared/migrate';
import { deviceBaseName, senmlPack, uplinkTopic } from '@connecte/shared/senml';
import { connectTestBroker, startTestBroker, startThrowawayCluster, type TestBroker, type ThrowawayCluster } from '@connecte/testkit';
import { brokerAccess, clientsOwner, publisherAccount, TelemetryProcess, until } from './mqtt-fixtures.js';

const DEVICES = 300;
/** Publishes per tick, every TICK_MS: about 300 messages (900 readings) a second. */
const PER_TICK = 3;
const TICK_MS = 10;
const RECORDS_PER_MESSAGE = 3;
/** Rows catch up with the publishes within this after a disruption. */
const CATCH_UP_MS = 45_000;
const BASE = Math.floor(Date.now() / 1000) - 6 * 3_600;
const GROUP = 'restarts';

interface Device {
  id: string;
  collectivityId: string;
}

let cluster: ThrowawayCluster;
let broker: TestBroker;
let pool: pg.Pool;
let publisher: MqttClient;
let devices: Device[];
const clients = clientsOwner();
const ingestors: TelemetryProcess[] = [];

// --- the publisher: never stops unless paused; remembers what it published ------------------
let published = 0;
let failedPublishes: string[] = [];
let paused = true;
let ended = false;
let seq = 0;
const inFlight = new Set<Promise<unknown>>();
let ticking: Promise<void> | null = null;

function publishOne(): void {
  const n = seq++;
  const device = devices[n % DEVICES];
  const at = BASE + Math.floor(n / DEVICES);
  const payload = JSON.stringify(senmlPack(deviceBaseName(device.id).slice(0, -1), at, { power: 40 + (n % 11), energy: n, dim_level: 100 }));
  const sent = publisher.publishAsync(uplinkTopic(device.collectivityId, device.id), payload, { qos: 1 }).then(
    () => void published++,
    (error: Error) => void failedPublishes.push(error.message),
  );
  inFlight.add(sent);
  void sent.finally(() => inFlight.delete(sent));
}

async function tick(): Promise<void> {
  while (!ended) {
    if (!paused) for (let i = 0; i < PER_TICK; i++) publishOne();
    await sleep(TICK_MS);
  }
}

/**
 * Pauses publishing, waits until the broker acknowledged every publish, then until the rows
 * match the records published: exactly, and each counted once in the roll-ups.
 */
async function checkpoint(what: string, t: { diagnostic(message: string): void }): Promise<void> {
  paused = true;
  await until(() => inFlight.size === 0, () => `the broker to acknowledge ${inFlight.size} publishes (${what})`, 30_000);
  assert.deepEqual(failedPublishes, [], 'every publish acknowledged by the broker');
  const expected = published * RECORDS_PER_MESSAGE;
  assert.equal(seq, published, 'every message attempted was acknowledged');
  let rows = 0;
  const waited = await until(
    async () => (rows = await count('SELECT count(*) AS n FROM readings')) >= expected,
    () => `${expected} readings after ${what} (got ${rows}):\n${ingestors.map((i) => i.tail()).join('\n')}`,
    CATCH_UP_MS,
  );
  await sleep(300); // a late extra row would show now
  assert.equal(await count('SELECT count(*) AS n FROM readings'), expected, `${what}: as many rows as records published`);
  assert.equal(await count('SELECT coalesce(sum(count), 0) AS n FROM reading_rollups_hourly'), expected, `${what}: each reading rolled up once`);
  assert.equal(await count('SELECT count(*) AS n FROM ingest_dead_letters'), 0, `${what}: no dead letter`);
  t.diagnostic(`${what}: ${published} messages, ${expected} readings, all stored (${waited} ms to catch up)`);
  paused = false;
}

const count = async (sql: string) => Number((await pool.query<{ n: string }>(sql)).rows[0].n);

before(async () => {
  cluster = await startThrowawayCluster();
  const admin = new pg.Client({ connectionString: cluster.url() });
  await admin.connect();
  try {
    await admin.query('CREATE DATABASE connecte');
  } finally {
    await admin.end();
  }
  const url = cluster.url('connecte');
  await migrate(url);
  const { seed } = await import('../../../prisma/seed/index.js');
  const seeding = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await seed(seeding);
  } finally {
    await seeding.end();
  }
  pool = new pg.Pool({ connectionString: url, max: 2 });
  // The test's own connections meet the restart too: an idle one losing its server must not crash the test.
  pool.on('error', () => {});
  const { rows } = await pool.query<{ id: string; collectivity_id: string }>(
    `SELECT id, collectivity_id FROM equipment WHERE kind = 'LIGHT_POINT' AND status <> 'DECOMMISSIONED' ORDER BY id LIMIT ${DEVICES}`,
  );
  devices = rows.map((row) => ({ id: row.id, collectivityId: row.collectivity_id }));
  broker = await startTestBroker();
  const access = brokerAccess(broker);
  const env = { ...access.env, DATABASE_URL: url };
  ingestors.push(
    new TelemetryProcess({ ...env, MQTT_CLIENT_ID: 'restarts-ingestor-a', MQTT_INGEST_GROUP: GROUP }),
    new TelemetryProcess({ ...env, MQTT_CLIENT_ID: 'restarts-ingestor-b', MQTT_INGEST_GROUP: GROUP }),
  );
  publisher = await connectTestBroker(clients, {
    url: broker.url,
    ...(await publisherAccount(broker)),
    protocolVersion: 4,
    clientId: 'restarts-publisher',
    clean: false,
    reconnectPeriod: 200,
  });
  ticking = tick();
});

after(async () => {
  ended = true;
  await ticking;
  await Promise.all(ingestors.map((ingestor) => ingestor.kill()));
  await clients.end();
  await pool?.end();
  await broker?.stop();
  await cluster?.destroy();
});

describe('MQTT ingestion loses nothing and doubles nothing across restarts', { timeout: 300_000 }, () => {
  it('ingests a continuous stream', async (t) => {
    await ingestors[0].start();
    paused = false;
    await sleep(1_500);
    await checkpoint('steady state', t);
  });

  it('across a broker restart', async (t) => {
    await sleep(500);
    await broker.restart();
    await sleep(1_500);
    await checkpoint('broker restart', t);
  });

  it('across a PostgreSQL restart (down for 2 s)', async (t) => {
    await sleep(500);
    await cluster.stop();
    await sleep(2_000);
    await cluster.start();
    await sleep(1_000);
    await checkpoint('PostgreSQL restart', t);
  });

  it('across a kill (SIGKILL) and restart of the ingestor', async (t) => {
    await sleep(500);
    await ingestors[0].kill();
    await sleep(1_000); // published meanwhile: queued in its session
    await ingestors[0].start();
    await sleep(1_000);
    await checkpoint('ingestor killed and restarted', t);
  });

  it('two ingestors of one group share the load', async (t) => {
    const [a, b] = ingestors;
    const aBefore = await a.ingested();
    await b.start();
    await sleep(3_000);
    await checkpoint('two ingestors', t);
    const shares = [(await a.ingested()) - aBefore, await b.ingested()];
    t.diagnostic(`messages ingested meanwhile: a ${shares[0]}, b ${shares[1]}`);
    assert.ok(shares[0] > 0 && shares[1] > 0, `both take a share (${shares.join(' / ')})`);
  });
});
