/**
 * Sustained MQTT ingestion against a raw COPY of the same rows, same run.
 *
 * A seeded database, a broker of the bench's own (the repository's configuration: persistence,
 * raised queue limits), and the telemetry service as a process of its own (all its workers), so
 * that the publishers do not share its event loop. Several publisher connections publish QoS 1
 * SenML, 10 records per message (five light-point metrics at two times), round the uplink topics
 * of 3,000 light points, as fast as the ingestor keeps up: publishing holds while more than
 * MAX_LAG messages are published and not yet stored, so the broker's queue stays far below its
 * limit and the rate measured is the ingestor's, sustained. After BENCH_SECONDS it waits for the
 * last rows; the MQTT rate is readings stored over the time from the first publish to the last row.
 *
 * Baseline: the very rows stored, by one `COPY readings FROM STDIN` (psql's \copy) into a second
 * database with the same schema and partitions. Then the rows are counted: nothing lost.
 *
 *   npm run bench:ingest-mqtt
 *   BENCH_SECONDS=10 BENCH_PUBLISHERS=4 BENCH_DEVICES=3000 npm run bench:ingest-mqtt
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { deviceBaseName, uplinkTopic, type SenmlRecord } from '@connecte/shared/senml';
import { createTestDatabase, startTestBroker } from '@connecte/testkit';
import { ensurePartitions, utcDay } from '../subgraphs/telemetry/src/partitions.js';
import { brokerAccess, publisherAccount, TelemetryProcess } from '../subgraphs/telemetry/test/mqtt-fixtures.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const PUBLISHERS = Number(process.env.BENCH_PUBLISHERS ?? 4);
const DEVICES = Number(process.env.BENCH_DEVICES ?? 3_000);
/** Five metrics at two times. */
const RECORDS_PER_MESSAGE = 10;
/** Published and not yet stored, at most (messages); the broker queues up to 100,000 per session. */
const MAX_LAG = 20_000;
/** Publishes a publisher leaves unacknowledged by the broker at most. */
const PUBLISHER_WINDOW = 500;
const TARGET = 20_000;
/** Two hours ago: within retention; each device's messages step 2 s forward from there. */
const T0 = Math.floor(Date.now() / 1000) - 2 * 3_600;

if (DEVICES < 2_000) console.warn(`BENCH_DEVICES=${DEVICES}: the issue asks for at least 2,000 distinct device topics`);

interface Device {
  id: string;
  collectivityId: string;
}

/** Message `k` of a device: power, energy, dim_level, illuminance, fault at T0 + 2k and T0 + 2k + 1. */
function message(device: Device, k: number): SenmlRecord[] {
  const records: SenmlRecord[] = [];
  for (const dt of [0, 1]) {
    const t = T0 + 2 * k + dt;
    const first = records.length === 0 ? { bn: deviceBaseName(device.id), bt: t } : { bt: t };
    records.push(
      { ...first, n: 'power', u: 'W', v: 38 + ((k + dt) % 9) },
      { n: 'energy', u: 'Wh', v: 1_000 + 2 * k + dt },
      { n: 'dim_level', u: '%', v: 100 },
      { n: 'illuminance', u: 'lx', v: 20 + (k % 5) },
      { n: 'fault', vb: false },
    );
  }
  return records;
}

/** The same readings as rows of `readings`, CSV. */
function rowsOf(device: Device, k: number): string {
  let csv = '';
  for (const dt of [0, 1]) {
    const time = new Date((T0 + 2 * k + dt) * 1000).toISOString();
    const values: [string, number][] = [
      ['power', 38 + ((k + dt) % 9)],
      ['energy', 1_000 + 2 * k + dt],
      ['dim_level', 100],
      ['illuminance', 20 + (k % 5)],
      ['fault', 0],
    ];
    for (const [metric, value] of values) csv += `${device.id},${metric},${time},${value},${device.collectivityId}\n`;
  }
  return csv;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function connectPublisher(url: string, access: { username?: string; password?: string }, i: number): Promise<MqttClient> {
  const client = mqtt.connect(url, { clientId: `bench-publisher-${process.pid}-${i}`, protocolVersion: 4, clean: true, reconnectPeriod: 500, ...access });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

/** Accepted MQTT records so far, from the service's own counter (cheap, unlike count(*)). */
async function acceptedRecords(service: TelemetryProcess): Promise<number> {
  const text = await (await fetch(`${service.origin}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('telemetry_ingest_records_total{') && line.includes('transport="mqtt"') && line.includes('outcome="accepted"')) total += Number(line.split(' ').at(-1));
  }
  return total;
}

const database = await createTestDatabase();
const baselineDb = await createTestDatabase({ seed: false });
const broker = await startTestBroker();
const access = brokerAccess(broker);
const service = new TelemetryProcess({
  ...access.env,
  DATABASE_URL: database.url,
  NODE_ENV: 'development',
  MQTT_CLIENT_ID: `bench-ingest-${process.pid}`,
  MQTT_INGEST_GROUP: 'bench',
});
const pool = new pg.Pool({ connectionString: database.url, max: 2 });
const publishers: MqttClient[] = [];
try {
  const { rows } = await pool.query<{ id: string; collectivity_id: string }>(
    `SELECT id, collectivity_id FROM equipment WHERE kind = 'LIGHT_POINT' AND status <> 'DECOMMISSIONED' ORDER BY id LIMIT $1`,
    [DEVICES],
  );
  const devices: Device[] = rows.map((row) => ({ id: row.id, collectivityId: row.collectivity_id }));
  if (devices.length < DEVICES) throw new Error(`the seed has only ${devices.length} light points (BENCH_DEVICES=${DEVICES})`);
  await service.start();
  const publisher = await publisherAccount(broker);
  for (let i = 0; i < PUBLISHERS; i++) publishers.push(await connectPublisher(broker.url, publisher, i));

  // --- MQTT ---------------------------------------------------------------------------
  let published = 0;
  let stored = 0;
  let publishing = true;
  const failures: string[] = [];
  const poller = (async () => {
    while (publishing || stored < published * RECORDS_PER_MESSAGE) {
      stored = await acceptedRecords(service);
      await sleep(100);
    }
  })();
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  // Publisher p sends messages p, p + P, p + 2P... of the sequence (device = n mod DEVICES, k = n div DEVICES).
  let next = 0;
  await Promise.all(
    publishers.map(async (client) => {
      let unacked = 0;
      while (performance.now() < deadline) {
        if (unacked >= PUBLISHER_WINDOW || published * RECORDS_PER_MESSAGE - stored > MAX_LAG * RECORDS_PER_MESSAGE) {
          await sleep(2);
          continue;
        }
        const n = next++;
        const device = devices[n % DEVICES];
        unacked++;
        client.publish(uplinkTopic(device.collectivityId, device.id), JSON.stringify(message(device, Math.floor(n / DEVICES))), { qos: 1 }, (error) => {
          unacked--;
          if (error) failures.push(error.message);
          else published++;
        });
        // Let the socket and the acknowledgements through now and then.
        if (n % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      while (unacked > 0) await sleep(5);
    }),
  );
  const publishedAfter = (performance.now() - started) / 1000;
  publishing = false;
  const expected = published * RECORDS_PER_MESSAGE;
  const drainDeadline = performance.now() + 120_000;
  while (stored < expected && performance.now() < drainDeadline) await sleep(20);
  const mqttSeconds = (performance.now() - started) / 1000;
  await poller;
  if (failures.length > 0) throw new Error(`${failures.length} publishes failed: ${failures[0]}`);

  const counted = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM readings')).rows[0].n);
  const deadLetters = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM ingest_dead_letters')).rows[0].n);
  const mqttRate = counted / mqttSeconds;

  // --- baseline: COPY of the same rows ------------------------------------------------------
  const baselinePool = new pg.Pool({ connectionString: baselineDb.url, max: 1 });
  const days = new Set<string>();
  const lastK = Math.floor((published - 1) / DEVICES);
  for (let k = 0; k <= lastK + 1; k++) days.add(utcDay((T0 + 2 * k) * 1000));
  await ensurePartitions(baselinePool, days);
  const chunks: string[] = [];
  for (let n = 0; n < published; n++) chunks.push(rowsOf(devices[n % DEVICES], Math.floor(n / DEVICES)));
  const csv = chunks.join('');
  const copyStarted = performance.now();
  await new Promise<void>((resolve, reject) => {
    const psql = spawn('psql', [baselineDb.url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', '\\copy readings (equipment_id, metric, time, value, collectivity_id) FROM STDIN WITH (FORMAT csv)'], {
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    psql.once('error', reject);
    psql.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`psql \\copy exited with ${code}`))));
    psql.stdin.end(csv);
  });
  const copySeconds = (performance.now() - copyStarted) / 1000;
  const copied = Number((await baselinePool.query<{ n: string }>('SELECT count(*) AS n FROM readings')).rows[0].n);
  await baselinePool.end();
  const copyRate = copied / copySeconds;

  console.log(`MQTT ingestion: ${PUBLISHERS} publisher connections, ${fmt(DEVICES)} device topics, ${RECORDS_PER_MESSAGE} records per message, QoS 1`);
  console.log(`  published  ${fmt(published)} messages (${fmt(expected)} readings) in ${publishedAfter.toFixed(1)} s`);
  console.log(`  stored     ${fmt(counted)} rows, the last ${(mqttSeconds - publishedAfter).toFixed(1)} s after the last publish; ${deadLetters} dead letters`);
  console.log(`  MQTT       ${fmt(mqttRate)} readings/s (first publish to last row)`);
  console.log(`  COPY       ${fmt(copyRate)} readings/s (${fmt(copied)} rows in ${copySeconds.toFixed(2)} s)`);
  console.log(`  ratio      MQTT / COPY = ${(mqttRate / copyRate).toFixed(2)}`);
  console.log(`  target     ≥ ${fmt(TARGET)} readings/s: ${mqttRate >= TARGET ? 'met' : 'NOT met'}`);
  if (counted !== expected) {
    console.error(`LOST OR DOUBLED: ${fmt(expected)} readings published, ${fmt(counted)} rows stored`);
    process.exitCode = 1;
  } else {
    console.log(`  nothing lost: rows = readings published`);
  }
} finally {
  await Promise.all(publishers.map((client) => client.endAsync(true)));
  await service.stop();
  await pool.end();
  await broker.stop();
  await database.drop();
  await baselineDb.drop();
}
