/**
 * Sustained HTTP ingestion (`POST /ingest`, batches of 500 records) against a raw COPY of the same
 * rows, same run.
 *
 * A seeded database, a broker of the bench's own (issuing ingest keys updates it), and the
 * telemetry service as a process of its own (all its workers), so that the load generator does
 * not share its event loop. BENCH_CONNECTIONS keep-alive connections each post, one after the
 * other, SenML packs of 100 light points × 5 metrics (power, energy, dim_level, illuminance,
 * fault) with the ingest key of the points' collectivity: the fleet (every seeded light point in
 * groups of 100, ~7,200 devices) reports round after round, each round 2 minutes after the
 * previous one, from 12 hours ago, so that latest values move forward and hourly and daily
 * roll-ups are updated (and new hours started) as in service. Every answer must be 200 with 500
 * accepted; the rate is readings stored over the time of the run.
 *
 * Baseline: the very rows stored, by one `COPY readings FROM STDIN` (psql's \copy) into a second
 * database with the same schema and partitions. Then the rows are counted: nothing lost.
 *
 * CPU per reading (the service's process, and PostgreSQL's backends of the bench's database, from
 * /proc) is printed too: on a machine shared with other work, it says more than the rate.
 *
 *   npm run bench:ingest-http
 *   BENCH_SECONDS=5 BENCH_CONNECTIONS=4 npm run bench:ingest-http
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Pool } from 'undici';
import { signDevelopmentToken } from '@connecte/shared/auth';
import { loadConfig } from '@connecte/shared/config';
import { createTestDatabase, startTestBroker } from '@connecte/testkit';
import { ensurePartitions, utcDay } from '../subgraphs/telemetry/src/partitions.js';
import { brokerAccess, TelemetryProcess } from '../subgraphs/telemetry/test/mqtt-fixtures.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const DEVICES_PER_BATCH = 100;
const METRICS_PER_DEVICE = 5;
const BATCH = DEVICES_PER_BATCH * METRICS_PER_DEVICE;
const TARGET = 50_000;
/** Seconds between two rounds of the fleet. */
const STEP = 120;
/** Twelve hours ago: within retention, and 360 rounds before the clock catches up. */
const T0 = Math.floor(Date.now() / 1000) - 12 * 3_600;

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

interface Group {
  collectivityId: string;
  ids: string[];
}

/** Batch `b`: group b mod G at round b div G. */
const batchOf = (groups: Group[], b: number) => ({ group: groups[b % groups.length], round: Math.floor(b / groups.length) });
const valuesOf = (round: number, i: number) => ({ power: 30 + ((round + i) % 17), energy: 1_000 + round * 7 + i, dim: round % 2 === 0 ? 100 : 40, lux: 10 + (i % 9) });

function body(group: Group, round: number): string {
  const t = T0 + round * STEP;
  const parts: string[] = [];
  group.ids.forEach((id, i) => {
    const v = valuesOf(round, i);
    parts.push(
      `{"bn":"urn:dev:connecte:${id}:","bt":${t},"n":"power","u":"W","v":${v.power}},{"n":"energy","u":"Wh","v":${v.energy}},` +
        `{"n":"dim_level","u":"%","v":${v.dim}},{"n":"illuminance","u":"lx","v":${v.lux}},{"n":"fault","vb":false}`,
    );
  });
  return `[${parts.join(',')}]`;
}

/** The same readings as rows of `readings`, CSV. */
function rowsOf(group: Group, round: number): string {
  const time = new Date((T0 + round * STEP) * 1000).toISOString();
  let csv = '';
  group.ids.forEach((id, i) => {
    const v = valuesOf(round, i);
    const c = group.collectivityId;
    csv += `${id},power,${time},${v.power},${c}\n${id},energy,${time},${v.energy},${c}\n${id},dim_level,${time},${v.dim},${c}\n${id},illuminance,${time},${v.lux},${c}\n${id},fault,${time},0,${c}\n`;
  });
  return csv;
}

/** CPU time (ms) a process has used, from /proc; 0 when it cannot be read. */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

const database = await createTestDatabase();
const baselineDb = await createTestDatabase({ seed: false });
const broker = await startTestBroker();
const access = brokerAccess(broker);
const service = new TelemetryProcess({
  ...access.env,
  DATABASE_URL: database.url,
  NODE_ENV: 'test',
  MQTT_CLIENT_ID: `bench-ingest-http-${process.pid}`,
  MQTT_INGEST_GROUP: 'bench-http',
  // One connection per concurrent request, and some for the workers.
  DB_POOL_SIZE: String(CONNECTIONS + 4),
});
const pool = new pg.Pool({ connectionString: database.url, max: 2 });
let http: Pool | null = null;
try {
  const { rows } = await pool.query<{ equipment_id: string; collectivity_id: string }>(
    `SELECT equipment_id, collectivity_id FROM telemetry_devices WHERE kind = 'LIGHT_POINT' AND status <> 'DECOMMISSIONED' ORDER BY collectivity_id, equipment_id`,
  );
  const groups: Group[] = [];
  const byCollectivity = new Map<string, string[]>();
  for (const row of rows) byCollectivity.set(row.collectivity_id, [...(byCollectivity.get(row.collectivity_id) ?? []), row.equipment_id]);
  for (const [collectivityId, ids] of byCollectivity) {
    for (let i = 0; i + DEVICES_PER_BATCH <= ids.length; i += DEVICES_PER_BATCH) groups.push({ collectivityId, ids: ids.slice(i, i + DEVICES_PER_BATCH) });
  }
  await service.start();
  const config = loadConfig({ NODE_ENV: 'test' });
  const keys = new Map<string, string>();
  for (const collectivityId of byCollectivity.keys()) {
    const token = await signDevelopmentToken({ sub: 'bench', roles: ['admin'], collectivities: [collectivityId] }, config);
    const response = await fetch(`${service.origin}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: `mutation { issueIngestKey(collectivityId: "${collectivityId}", label: "bench") { secret { token } } }` }),
    });
    const answer = (await response.json()) as { data?: { issueIngestKey: { secret: { token: string } } }; errors?: unknown };
    if (!answer.data) throw new Error(`issueIngestKey(${collectivityId}): ${JSON.stringify(answer.errors)}`);
    keys.set(collectivityId, answer.data.issueIngestKey.secret.token);
  }

  // --- HTTP --------------------------------------------------------------------------------
  http = new Pool(service.origin, { connections: CONNECTIONS, pipelining: 1 });
  const backends = (await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()')).rows.map((r) => r.pid);
  let next = 0;
  let accepted = 0;
  const failures: string[] = [];
  const serviceCpu0 = cpuMs(service.child!.pid!);
  const started = performance.now();
  const deadline = started + SECONDS * 1000;
  // Backends the service opens during the run are counted at the end; those open now from here.
  const pgCpu0 = backends.reduce((sum, pid) => sum + cpuMs(pid), 0);
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < deadline) {
        const { group, round } = batchOf(groups, next++);
        const response = await http!.request({
          method: 'POST',
          path: '/ingest',
          headers: { 'content-type': 'application/senml+json', authorization: `Bearer ${keys.get(group.collectivityId)}` },
          body: body(group, round),
        });
        const text = await response.body.text();
        if (response.statusCode !== 200) {
          failures.push(`${response.statusCode} ${text.slice(0, 200)}`);
          continue;
        }
        const result = JSON.parse(text) as { accepted: number; duplicate: number; rejected: unknown[] };
        accepted += result.accepted;
        if (result.accepted !== BATCH) failures.push(`accepted ${result.accepted} of ${BATCH}: ${JSON.stringify(result.rejected.slice(0, 2))}`);
      }
    }),
  );
  const httpSeconds = (performance.now() - started) / 1000;
  const sent = next;
  const serviceCpu = cpuMs(service.child!.pid!) - serviceCpu0;
  const allBackends = (await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database()')).rows.map((r) => r.pid);
  const pgCpu = allBackends.reduce((sum, pid) => sum + cpuMs(pid), 0) - pgCpu0;

  const counted = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM readings')).rows[0].n);
  const httpRate = counted / httpSeconds;

  // --- baseline: COPY of the same rows ------------------------------------------------------
  const baselinePool = new pg.Pool({ connectionString: baselineDb.url, max: 1 });
  const days = new Set<string>();
  const lastRound = batchOf(groups, sent - 1).round;
  for (let round = 0; round <= lastRound; round++) days.add(utcDay((T0 + round * STEP) * 1000));
  await ensurePartitions(baselinePool, days);
  const chunks: Buffer[] = [];
  for (let b = 0; b < sent; b++) {
    const { group, round } = batchOf(groups, b);
    chunks.push(Buffer.from(rowsOf(group, round)));
  }
  const copyStarted = performance.now();
  await new Promise<void>((resolve, reject) => {
    const psql = spawn('psql', [baselineDb.url, '-v', 'ON_ERROR_STOP=1', '-q', '-c', '\\copy readings (equipment_id, metric, time, value, collectivity_id) FROM STDIN WITH (FORMAT csv)'], {
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    psql.once('error', reject);
    psql.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`psql \\copy exited with ${code}`))));
    void (async () => {
      for (const chunk of chunks) if (!psql.stdin.write(chunk)) await new Promise((drained) => psql.stdin.once('drain', drained));
      psql.stdin.end();
    })();
  });
  const copySeconds = (performance.now() - copyStarted) / 1000;
  const copied = Number((await baselinePool.query<{ n: string }>('SELECT count(*) AS n FROM readings')).rows[0].n);
  await baselinePool.end();
  const copyRate = copied / copySeconds;

  const rollups = (await pool.query<{ hourly: string; daily: string; latest: string }>(
    'SELECT (SELECT count(*) FROM reading_rollups_hourly) AS hourly, (SELECT count(*) FROM reading_rollups_daily) AS daily, (SELECT count(*) FROM latest_readings) AS latest',
  )).rows[0];
  console.log(`HTTP ingestion: ${CONNECTIONS} connections, batches of ${BATCH} records (${DEVICES_PER_BATCH} light points × ${METRICS_PER_DEVICE} metrics), ${fmt(groups.length * DEVICES_PER_BATCH)} devices, ${SECONDS} s`);
  console.log(`  sent       ${fmt(sent)} batches (${fmt(sent * BATCH)} readings), ${failures.length} failed`);
  console.log(`  stored     ${fmt(counted)} rows; latest ${fmt(Number(rollups.latest))}, hourly roll-ups ${fmt(Number(rollups.hourly))}, daily ${fmt(Number(rollups.daily))}`);
  console.log(`  HTTP       ${fmt(httpRate)} readings/s (${(httpSeconds).toFixed(1)} s)`);
  console.log(`  COPY       ${fmt(copyRate)} readings/s (${fmt(copied)} rows in ${copySeconds.toFixed(2)} s)`);
  console.log(`  ratio      HTTP / COPY = ${(httpRate / copyRate).toFixed(2)}`);
  console.log(`  CPU        per reading over HTTP: service ${((serviceCpu * 1000) / counted).toFixed(1)} µs, PostgreSQL ${((pgCpu * 1000) / counted).toFixed(1)} µs (load average ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]})`);
  console.log(`  target     ≥ ${fmt(TARGET)} readings/s: ${httpRate >= TARGET ? 'met' : 'NOT met'}`);
  if (failures.length > 0) console.error(`  first failure: ${failures[0]}`);
  if (counted !== accepted || counted !== copied || failures.length > 0) {
    console.error(`LOST OR DOUBLED: ${fmt(sent * BATCH)} readings sent, ${fmt(accepted)} accepted, ${fmt(counted)} rows stored, ${fmt(copied)} copied`);
    process.exitCode = 1;
  } else {
    console.log(`  nothing lost: rows = readings sent = readings copied`);
  }
} finally {
  await http?.close();
  await service.stop();
  await pool.end();
  await broker.stop();
  await database.drop();
  await baselineDb.drop();
}
