/**
 * The retention worker over 100,000 closed tickets: how long it takes, and the longest wait it
 * causes to ticket creation going on meanwhile (target ≤ 100 ms).
 *
 * One fresh seeded database, one hub (territory, equipment, tickets, gateway) whose own retention
 * worker has made its start-up run on an empty tickets table. Then 100,000 tickets closed or
 * rejected 13 to 30 months ago are loaded in bulk (SQL), each with its reporter's account, name,
 * e-mail and phone and its CREATED history entry; one in ten has a duplicate attached, one in
 * twenty a photo (a few KB). Creation is measured twice with the same CONCURRENCY citizens
 * reporting through the gateway: for BASELINE_S seconds with nothing else running (the
 * baseline), then during one retention run (`runRetention`, the worker's own pass). Prints the
 * run's time and rate, and per phase the reports' p50, p99 and longest latency; the wait the run
 * causes is the longest report during it minus the baseline's p50, next to the baseline's own
 * longest minus p50 (what the machine does anyway).
 *
 *   npm run bench:tickets-retention
 *   npm run bench:tickets-retention -- --tickets 20000 --concurrency 4 --batch 50
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { signDevelopmentToken } from '@connecte/shared/auth';
import { createTestDatabase, gql, startHub } from '@connecte/testkit';
import { mulberry32 } from '../prisma/seed/rng.js';
import { ticketResourcesFor } from '../subgraphs/tickets/src/context.js';
import { recordTicketChange } from '../subgraphs/tickets/src/changes.js';
import { RETENTION_BATCH, runRetention } from '../subgraphs/tickets/src/retention.js';
import { TICKET_COLUMNS, type TicketRow } from '../subgraphs/tickets/src/types.js';

const { values: args } = parseArgs({
  options: {
    tickets: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '4' },
    baseline: { type: 'string', default: '15' },
    batch: { type: 'string', default: String(RETENTION_BATCH) },
  },
});
const TICKETS = Number(args.tickets);
const CONCURRENCY = Number(args.concurrency);
const BASELINE_S = Number(args.baseline);
const BATCH = Number(args.batch);
const TARGET_WAIT_MS = 100;

const random = mulberry32(20261202);
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
};

const database = await createTestDatabase();
const pool = new pg.Pool({ connectionString: database.url, max: 4 });
const hub = await startHub(database.url, { LOG_LEVEL: 'warn', TICKETS_RETENTION_INTERVAL_MS: '0' }, { subgraphs: ['territory', 'equipment', 'tickets'] });
try {
  const resources = ticketResourcesFor(hub.subgraphs.tickets.db);
  // The worker's start-up run (on whatever the seed made) is over before the load (its state in /readyz).
  const readyz = hub.subgraphs.tickets.url.replace(/\/graphql$/, '/readyz');
  for (let i = 0; !/"retention":"ran at/.test(await (await fetch(readyz)).text()); i++) {
    if (i > 600) throw new Error(`the retention worker's start-up run did not finish: ${await (await fetch(readyz)).text()}`);
    await sleep(100);
  }
  await pool.query('TRUNCATE ticket_photos, ticket_history, ticket_outbox, personal_data_access_log, personal_data_erasures, interventions, intervention_history, tickets RESTART IDENTITY CASCADE');

  // --- 100,000 closed tickets with their reporters, duplicates, history and photos -----------------
  const loading = performance.now();
  const { rows: places } = await pool.query<{ lon: number; lat: number }>(
    // Light points of Châlons at least 60 m inside the commune: a report near one is in Châlons.
    `SELECT ST_X(e.location) AS lon, ST_Y(e.location) AS lat FROM equipment e JOIN commune c ON c.insee_code = e.insee_code
     WHERE e.kind = 'LIGHT_POINT' AND e.insee_code = '51108' AND e.location IS NOT NULL
       AND NOT ST_DWithin(ST_Boundary(c.geom)::geography, e.location::geography, 60) ORDER BY e.id`,
  );
  await pool.query(
    `WITH p AS (SELECT x.lon, x.lat, x.n - 1 AS k FROM unnest($2::float8[], $3::float8[]) WITH ORDINALITY AS x(lon, lat, n)),
          g AS (SELECT g, now() - interval '13 months' - random() * interval '17 months' AS closed, (g::bigint * 104729) % $4::int AS pk FROM generate_series(1, $1::int) AS g)
     INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, insee_code, source,
                          reporter_sub, reporter_name, reporter_email, reporter_phone, created_at, updated_at, acknowledged_at, resolved_at, closed_at, ack_due_at, resolve_due_at)
     SELECT 'TAG', 'chalons', 'Propreté urbaine', CASE WHEN g.g % 9 = 0 THEN 'REJECTED' ELSE 'CLOSED' END, 'Old report ' || g.g,
            ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326), '51108', 'APP',
            'old-citizen-' || g.g, 'Reporter ' || g.g, 'reporter' || g.g || '@example.org', '06 00 00 ' || lpad((g.g % 100)::text, 2, '0') || ' 00',
            g.closed - interval '10 days', g.closed, g.closed - interval '9 days', CASE WHEN g.g % 9 <> 0 THEN g.closed - interval '1 day' END, g.closed,
            g.closed - interval '8 days', g.closed
     FROM g JOIN p ON p.k = g.pk`,
    [TICKETS, places.map((p) => p.lon), places.map((p) => p.lat), places.length],
  );
  await pool.query(
    `INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, insee_code, source, duplicate_of, reporter_sub, reporter_email,
                          created_at, updated_at, ack_due_at, resolve_due_at)
     SELECT category_code, collectivity_id, service, 'DUPLICATE', 'Same problem', geom, insee_code, 'APP', id, 'dup-citizen-' || id, 'dup' || id || '@example.org',
            created_at + interval '1 hour', created_at + interval '1 hour', ack_due_at, resolve_due_at
     FROM tickets WHERE id % 10 = 0`,
  );
  await pool.query(
    `INSERT INTO ticket_history (ticket_id, at, action, to_status, actor_sub, actor_roles)
     SELECT id, created_at, 'CREATED', CASE WHEN status = 'DUPLICATE' THEN 'DUPLICATE' ELSE 'NEW' END, reporter_sub, '{citizen}' FROM tickets`,
  );
  await pool.query(
    `INSERT INTO ticket_photos (id, ticket_id, uploader_sub, content_type, width, height, bytes, created_at)
     SELECT gen_random_uuid(), id, reporter_sub, 'image/jpeg', 640, 480, decode(repeat('ffd8ffe0', 1024), 'hex'), created_at FROM tickets WHERE id % 20 = 0`,
  );
  await pool.query('ANALYZE tickets; ANALYZE ticket_history; ANALYZE ticket_photos');
  const { rows: loaded } = await pool.query<{ tickets: number; duplicates: number; photos: number }>(
    `SELECT (SELECT count(*)::int FROM tickets) AS tickets, (SELECT count(*)::int FROM tickets WHERE status = 'DUPLICATE') AS duplicates,
            (SELECT count(*)::int FROM ticket_photos) AS photos`,
  );
  console.log(
    `loaded ${loaded[0].tickets.toLocaleString('en')} tickets (${(loaded[0].tickets - loaded[0].duplicates).toLocaleString('en')} closed or rejected 13 to 30 months ago, ${loaded[0].duplicates.toLocaleString('en')} duplicates of them), ${loaded[0].photos.toLocaleString('en')} photos, in ${((performance.now() - loading) / 1000).toFixed(1)} s`,
  );

  // --- Concurrent creation: a baseline, then during the retention run -----------------------------
  const citizens = await Promise.all(
    Array.from({ length: CONCURRENCY }, (_, i) => signDevelopmentToken({ sub: `bench-reporter-${i}`, roles: ['citizen'], collectivities: [], expiresIn: '2h' }, hub.config)),
  );
  const MUTATION = `mutation Report($input: ReportInput!) { reportProblem(input: $input) { ticket { id } } }`;
  const CATEGORIES = ['TAG', 'POTHOLE', 'DAMAGED_FURNITURE', 'ILLEGAL_DUMPING'];
  /** Reports until `until()` says stop; each report's latency. */
  const create = async (until: () => boolean) => {
    const latencies: number[] = [];
    await Promise.all(
      citizens.map(async (token) => {
        while (!until()) {
          const place = places[Math.floor(random() * places.length)];
          const input = { category: CATEGORIES[Math.floor(random() * CATEGORIES.length)], location: { lon: place.lon + (random() - 0.5) * 0.0004, lat: place.lat + (random() - 0.5) * 0.0003 }, description: 'Bench: a new report' };
          const sent = performance.now();
          const answer = await gql(hub.gatewayUrl, MUTATION, { token, variables: { input } });
          latencies.push(performance.now() - sent);
          if (answer.errors) throw new Error(JSON.stringify(answer.errors));
        }
      }),
    );
    return latencies;
  };
  /**
   * The database's part of a creation alone, on connections of its own: the ticket's insert and
   * its CREATED change (history, event) in one transaction, every 10 ms; each one's duration.
   */
  const probePool = new pg.Pool({ connectionString: database.url, max: 1 });
  const probe = async (until: () => boolean) => {
    const durations: number[] = [];
    while (!until()) {
      const client = await probePool.connect();
      const sent = performance.now();
      try {
        await client.query('BEGIN');
        const place = places[Math.floor(random() * places.length)];
        const { rows } = await client.query<TicketRow>(
          `INSERT INTO tickets AS t (category_code, collectivity_id, service, description, geom, insee_code, source, reporter_sub, ack_due_at, resolve_due_at)
           VALUES ('TAG', 'chalons', 'Propreté urbaine', 'Probe', ST_SetSRID(ST_MakePoint($1, $2), 4326), '51108', 'APP', 'bench-probe', now() + interval '48 hours', now() + interval '240 hours')
           RETURNING ${TICKET_COLUMNS}`,
          [place.lon, place.lat],
        );
        await recordTicketChange(client, { ticket: rows[0], action: 'CREATED', fromStatus: null, toStatus: 'NEW', actor: { sub: 'bench-probe', roles: ['citizen'] } }, { exportToGrc: false });
        await client.query('COMMIT');
      } finally {
        client.release();
      }
      durations.push(performance.now() - sent);
      await sleep(10);
    }
    return durations;
  };

  // Warm-up (JIT, pools), then the baseline.
  let deadline = performance.now() + 3_000;
  await Promise.all([create(() => performance.now() > deadline), probe(() => performance.now() > deadline)]);
  deadline = performance.now() + BASELINE_S * 1000;
  const [baseline, baselineProbe] = await Promise.all([create(() => performance.now() > deadline), probe(() => performance.now() > deadline)]);

  /** What waits on a lock meanwhile, sampled every 10 ms from pg_stat_activity: the longest wait seen, and on what. */
  const sampler = new pg.Client({ connectionString: database.url });
  await sampler.connect();
  const lockWaits = { longestMs: 0, what: 'none', samples: 0 };
  const sample = async (until: () => boolean) => {
    while (!until()) {
      const { rows } = await sampler.query<{ ms: number; what: string }>(
        `SELECT (extract(epoch FROM now() - state_change) * 1000)::float8 AS ms, wait_event || ': ' || left(regexp_replace(query, '\s+', ' ', 'g'), 60) AS what
         FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid() ORDER BY 1 DESC LIMIT 1`,
      );
      lockWaits.samples++;
      if (rows[0] && rows[0].ms > lockWaits.longestMs) Object.assign(lockWaits, { longestMs: rows[0].ms, what: rows[0].what });
      await sleep(10);
    }
  };

  let done = false;
  const during = Promise.all([create(() => done), probe(() => done), sample(() => done)]);
  const started = performance.now();
  const run = await runRetention(resources, { batchSize: BATCH });
  const runMs = performance.now() - started;
  done = true;
  const [duringRun, duringProbe] = await during;
  await probePool.end();
  await sampler.end();

  const { rows: left } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM tickets WHERE closed_at < now() - interval '12 months' AND reporter_erased_at IS NULL`);
  if (left[0].n !== 0 || run.tickets < TICKETS) throw new Error(`retention left ${left[0].n} due tickets (${run.tickets} erased)`);

  const stats = (values: number[]) => ({ p50: percentile(values, 50), p99: percentile(values, 99), max: Math.max(...values) });
  const b = stats(baseline);
  const d = stats(duringRun);
  const wait = d.max - b.p50;
  const bp = stats(baselineProbe);
  const dp = stats(duringProbe);
  const dbWait = dp.max - bp.p50;
  console.log(`\nretention run over ${run.tickets.toLocaleString('en')} tickets (${run.photos.toLocaleString('en')} photos): ${(runMs / 1000).toFixed(1)} s, ${Math.round(run.tickets / (runMs / 1000)).toLocaleString('en')} tickets/s, ${run.batches} transactions of ≤ ${BATCH} originals with their duplicates (${(runMs / run.batches).toFixed(1)} ms each)`);
  console.log(`reportProblem through the gateway (in this process, with the retention), ${CONCURRENCY} concurrent citizens:`);
  console.log(`  baseline (${BASELINE_S} s, nothing else)   ${baseline.length} reports  p50 ${b.p50.toFixed(1)} ms  p99 ${b.p99.toFixed(1)} ms  longest ${b.max.toFixed(1)} ms`);
  console.log(`  during the retention run        ${duringRun.length} reports  p50 ${d.p50.toFixed(1)} ms  p99 ${d.p99.toFixed(1)} ms  longest ${d.max.toFixed(1)} ms`);
  console.log(`  ratio during/baseline: p50 ×${(d.p50 / b.p50).toFixed(2)}, p99 ×${(d.p99 / b.p99).toFixed(2)}`);
  console.log(`the database's part of a creation (insert + CREATED change, one transaction, every 10 ms, own connection):`);
  console.log(`  baseline                        ${baselineProbe.length} creations  p50 ${bp.p50.toFixed(1)} ms  p99 ${bp.p99.toFixed(1)} ms  longest ${bp.max.toFixed(1)} ms`);
  console.log(`  during the retention run        ${duringProbe.length} creations  p50 ${dp.p50.toFixed(1)} ms  p99 ${dp.p99.toFixed(1)} ms  longest ${dp.max.toFixed(1)} ms`);
  console.log(`  lock waits seen in ${lockWaits.samples} samples of pg_stat_activity (every 10 ms): longest ${lockWaits.longestMs.toFixed(1)} ms${lockWaits.longestMs > 0 ? ` (${lockWaits.what})` : ''}`);
  console.log(`  longest wait caused at the database: ${dbWait.toFixed(1)} ms (longest during − baseline p50); target ≤ ${TARGET_WAIT_MS} ms: ${dbWait <= TARGET_WAIT_MS ? 'met' : 'NOT met'}`);
  console.log(
    `  longest wait caused to a report through the gateway: ${wait.toFixed(1)} ms (longest during − baseline p50; the baseline's own longest − p50 is ${(b.max - b.p50).toFixed(1)} ms); target ≤ ${TARGET_WAIT_MS} ms: ${wait <= TARGET_WAIT_MS ? 'met' : 'NOT met'}`,
  );
} finally {
  await hub.close();
  await pool.end();
  await database.drop();
}
