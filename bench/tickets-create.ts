/**
 * Creating reports through the gateway with 100,000 existing tickets: duplicate detection on
 * (the default) against the same creation with TICKETS_DUPLICATE_DETECTION=false, in one run,
 * and the duplicate lookup itself at the database.
 *
 * One fresh seeded database gets 100,000 tickets in bulk (SQL): around the territory's light
 * points (within 40 m), over the last year, every category, a third of them open. Two hubs serve
 * it side by side (territory, equipment, tickets and a gateway each), one with detection on, one
 * with it off; rounds alternate between them (on, off, on, ...) so that both see the same machine
 * and the same growing table. Each round sends REPORTS reports from CONCURRENCY clients, each a
 * citizen of his own, at points drawn the same way as the existing tickets (so that some are
 * duplicates). Prints reports/s and latency per mode, their ratio, how many reports were
 * attached as duplicates, then the duplicate lookup's own statement (report-service.ts'
 * `findOriginal`, lock included) run LOOKUPS times under EXPLAIN ANALYZE: its execution time at
 * the database, p50 and p95, against the target of 5 ms at p50.
 *
 *   npm run bench:tickets-create
 *   npm run bench:tickets-create -- --rounds 6 --reports 300 --concurrency 8
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { signDevelopmentToken } from '@connecte/shared/auth';
import { createTestDatabase, gql, startHub, type Hub } from '@connecte/testkit';
import { mulberry32 } from '../prisma/seed/rng.js';
import { findOriginal } from '../subgraphs/tickets/src/report-service.js';

const { values: args } = parseArgs({
  options: {
    tickets: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '6' },
    reports: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
    lookups: { type: 'string', default: '1000' },
  },
});
const TICKETS = Number(args.tickets);
const ROUNDS = Number(args.rounds);
const REPORTS = Number(args.reports);
const CONCURRENCY = Number(args.concurrency);
const LOOKUPS = Number(args.lookups);
const TARGET_LOOKUP_P50_MS = 5;
const SUBGRAPHS = ['territory', 'equipment', 'tickets'];

/** Categories, by competence: municipal ones go to the commune, the others to the agglomeration. */
const MUNICIPAL = ['LIGHT_OUT', 'OPEN_CABINET', 'TAG', 'ILLEGAL_DUMPING', 'DAMAGED_FURNITURE', 'POTHOLE'];
const AGGLOMERATION = ['BUS_STOP_DAMAGED', 'FULL_BIN'];
const CATEGORIES = [...MUNICIPAL, ...AGGLOMERATION];

const random = mulberry32(20261201);
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
};
const median = (values: number[]) => percentile(values, 50);

const database = await createTestDatabase();
const pool = new pg.Pool({ connectionString: database.url, max: 4 });
const hubs: Hub[] = [];
try {
  // --- 100,000 tickets in bulk, around the light points of the three communes -------------------
  const loading = performance.now();
  await pool.query('TRUNCATE ticket_photos, ticket_history, ticket_outbox, personal_data_access_log, interventions, intervention_history, tickets RESTART IDENTITY CASCADE');
  const { rows: places } = await pool.query<{ lon: number; lat: number; insee: string; collectivity: string }>(
    // Light points of the three communes at least 60 m inside theirs: a report within 40 m of one is in that commune.
    `SELECT ST_X(e.location) AS lon, ST_Y(e.location) AS lat, e.insee_code AS insee, c.collectivity_id AS collectivity
     FROM equipment e JOIN commune c ON c.insee_code = e.insee_code
     WHERE e.kind = 'LIGHT_POINT' AND e.insee_code IN ('51108', '51242', '51504') AND e.location IS NOT NULL
       AND NOT ST_DWithin(ST_Boundary(c.geom)::geography, e.location::geography, 60) ORDER BY e.id`,
  );
  await pool.query(
    `WITH p AS (SELECT x.*, x.n - 1 AS k FROM unnest($3::float8[], $4::float8[], $6::text[], $7::text[]) WITH ORDINALITY AS x(lon, lat, insee, collectivity, n)),
          c AS (SELECT code, service, ack_hours, resolve_hours, row_number() OVER (ORDER BY code) - 1 AS k FROM ticket_categories),
          g AS (SELECT g, now() - random() * interval '365 days' AS created, (g::bigint * 104729) % $8::int AS pk, (g * 31) % (SELECT count(*) FROM c) AS ck,
                       ($2::text[])[1 + (g::bigint * 7919) % array_length($2::text[], 1)] AS status
                FROM generate_series(1, $1::int) AS g)
     INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, insee_code, source, reporter_sub, reporter_email,
                          created_at, updated_at, acknowledged_at, resolved_at, closed_at, ack_due_at, resolve_due_at)
     SELECT c.code, CASE WHEN c.code = ANY($5::text[]) THEN 'chalons-agglo' ELSE p.collectivity END, c.service, g.status,
            'Bench report ' || g.g, ST_SetSRID(ST_MakePoint(p.lon + (random() - 0.5) * 0.001, p.lat + (random() - 0.5) * 0.0007), 4326),
            p.insee, 'APP', 'bench-' || (g.g % 5000), 'bench' || (g.g % 5000) || '@example.org',
            g.created, g.created, CASE WHEN g.status <> 'NEW' THEN g.created + interval '3 hours' END,
            CASE WHEN g.status IN ('RESOLVED', 'CLOSED') THEN g.created + interval '2 days' END,
            CASE WHEN g.status IN ('CLOSED', 'REJECTED') THEN g.created + interval '3 days' END,
            g.created + make_interval(hours => c.ack_hours), g.created + make_interval(hours => c.resolve_hours)
     FROM g JOIN p ON p.k = g.pk JOIN c ON c.k = g.ck`,
    [
      TICKETS,
      // A third open (what duplicates attach to), the rest resolved, closed or rejected.
      ['NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS', 'RESOLVED', 'CLOSED', 'CLOSED', 'CLOSED', 'CLOSED', 'CLOSED', 'REJECTED', 'RESOLVED'],
      places.map((p) => p.lon),
      places.map((p) => p.lat),
      AGGLOMERATION,
      places.map((p) => p.insee),
      places.map((p) => p.collectivity),
      places.length,
    ],
  );
  await pool.query('ANALYZE tickets');
  const { rows: stats } = await pool.query<{ total: number; open: number; recentOpen: number }>(
    `SELECT count(*)::int AS total, count(*) FILTER (WHERE status IN ('NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS'))::int AS open,
            count(*) FILTER (WHERE status IN ('NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS') AND created_at > now() - interval '7 days')::int AS "recentOpen"
     FROM tickets`,
  );
  console.log(
    `loaded ${stats[0].total.toLocaleString('en')} tickets (${stats[0].open.toLocaleString('en')} open, ${stats[0].recentOpen.toLocaleString('en')} of them from the last 7 days) around ${places.length.toLocaleString('en')} light points in ${((performance.now() - loading) / 1000).toFixed(1)} s`,
  );

  // --- Two hubs on the database: detection on, detection off -------------------------------------
  const env = { LOG_LEVEL: 'warn', TICKETS_RETENTION_INTERVAL_MS: '0' };
  hubs.push(await startHub(database.url, env, { subgraphs: SUBGRAPHS }));
  hubs.push(await startHub(database.url, { ...env, TICKETS_DUPLICATE_DETECTION: 'false' }, { subgraphs: SUBGRAPHS }));
  const [on, off] = hubs;
  const citizens = await Promise.all(
    Array.from({ length: CONCURRENCY * 2 }, (_, i) => signDevelopmentToken({ sub: `bench-citizen-${i}`, roles: ['citizen'], collectivities: [], expiresIn: '2h' }, on.config)),
  );
  const MUTATION = `mutation Report($input: ReportInput!) { reportProblem(input: $input) { ticket { id status } duplicateOf { id } } }`;
  const nextReport = () => {
    const place = places[Math.floor(random() * places.length)];
    return {
      category: CATEGORIES[Math.floor(random() * CATEGORIES.length)],
      location: { lon: place.lon + (random() - 0.5) * 0.0006, lat: place.lat + (random() - 0.5) * 0.0004 },
      description: 'Bench: something is wrong here',
    };
  };

  const results = { on: { rates: [] as number[], latencies: [] as number[], duplicates: 0, reports: 0 }, off: { rates: [] as number[], latencies: [] as number[], duplicates: 0, reports: 0 } };
  const round = async (mode: 'on' | 'off', record: boolean) => {
    const hub = mode === 'on' ? on : off;
    let left = REPORTS;
    const latencies: number[] = [];
    let duplicates = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, worker) => {
        while (left-- > 0) {
          const input = nextReport();
          const sent = performance.now();
          const answer = await gql(hub.gatewayUrl, MUTATION, { token: citizens[worker + (mode === 'on' ? 0 : CONCURRENCY)], variables: { input } });
          latencies.push(performance.now() - sent);
          if (answer.errors) throw new Error(`${mode}: ${JSON.stringify(answer.errors)}`);
          if (answer.data.reportProblem.duplicateOf) duplicates++;
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    if (!record) return;
    results[mode].rates.push(REPORTS / seconds);
    results[mode].latencies.push(...latencies);
    results[mode].duplicates += duplicates;
    results[mode].reports += REPORTS;
  };
  // A warm-up round each (JIT, pools, plan caches), then the measured ones, in turns.
  await round('on', false);
  await round('off', false);
  for (let i = 0; i < ROUNDS; i++) {
    await round('on', true);
    await round('off', true);
  }
  const line = (mode: 'on' | 'off') => {
    const r = results[mode];
    return `${median(r.rates).toFixed(1)} reports/s (median of ${ROUNDS} rounds)  latency p50 ${median(r.latencies).toFixed(1)} ms  p95 ${percentile(r.latencies, 95).toFixed(1)} ms  duplicates ${r.duplicates}/${r.reports}`;
  };
  console.log(`\nreportProblem through the gateway, ${CONCURRENCY} concurrent citizens, ${REPORTS} reports per round, ${stats[0].total.toLocaleString('en')}+ existing tickets`);
  console.log(`  detection on    ${line('on')}`);
  console.log(`  detection off   ${line('off')}`);
  console.log(
    `  ratio on/off: throughput ×${(median(results.on.rates) / median(results.off.rates)).toFixed(2)}, p50 latency ×${(median(results.on.latencies) / median(results.off.latencies)).toFixed(2)} (detection adds ${(median(results.on.latencies) - median(results.off.latencies)).toFixed(1)} ms per report at p50)`,
  );

  // --- The duplicate lookup at the database --------------------------------------------------------
  const client = await pool.connect();
  const executions: number[] = [];
  const wall: number[] = [];
  let found = 0;
  let plan = '';
  try {
    await client.query('ANALYZE tickets');
    for (let i = 0; i < LOOKUPS + 50; i++) {
      const { category, location } = nextReport();
      // findOriginal's own statement (and lock), each time under EXPLAIN ANALYZE in a transaction rolled back.
      const explaining = {
        query: async (sql: string, params: unknown[]) => {
          const { rows } = await client.query<{ 'QUERY PLAN': [{ 'Execution Time': number; Plan: { 'Actual Rows': number } }] }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
          const [result] = rows[0]['QUERY PLAN'];
          if (i >= 50) executions.push(result['Execution Time']);
          if (result.Plan['Actual Rows'] > 0 && i >= 50) found++;
          if (i === 50) plan = JSON.stringify(result.Plan).match(/"Index Name":"[^"]+"/g)?.join(', ') ?? 'no index';
          return { rows: [] };
        },
      } as unknown as pg.ClientBase;
      await client.query('BEGIN');
      await findOriginal(explaining, category, location.lon, location.lat);
      await client.query('ROLLBACK');
      // And as the service runs it (client side: round trip included).
      await client.query('BEGIN');
      const sent = performance.now();
      await findOriginal(client, category, location.lon, location.lat);
      if (i >= 50) wall.push(performance.now() - sent);
      await client.query('ROLLBACK');
    }
  } finally {
    client.release();
  }
  const p50 = median(executions);
  console.log(`\nduplicate lookup (findOriginal: same category, open, ≤ 50 m on the spheroid, ≤ 7 days), ${LOOKUPS} random points, ${found} with an original found`);
  console.log(`  at the database (EXPLAIN ANALYZE execution time)  p50 ${p50.toFixed(3)} ms  p95 ${percentile(executions, 95).toFixed(3)} ms  max ${Math.max(...executions).toFixed(3)} ms   indexes: ${plan}`);
  console.log(`  from the service (round trip)                      p50 ${median(wall).toFixed(3)} ms  p95 ${percentile(wall, 95).toFixed(3)} ms`);
  console.log(`  target p50 ≤ ${TARGET_LOOKUP_P50_MS} ms: ${p50 <= TARGET_LOOKUP_P50_MS ? 'met' : 'NOT met'} (×${(p50 / TARGET_LOOKUP_P50_MS).toFixed(3)} of the target)`);
} finally {
  for (const hub of hubs) await hub.close();
  await pool.end();
  await database.drop();
}
