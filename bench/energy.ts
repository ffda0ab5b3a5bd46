/**
 * Energy per collectivity per month over 90 days of 10-minute `energy` readings of seeded light
 * points: the GraphQL `energy` query, served from the daily roll-ups, against the same figures
 * computed from the raw readings in the same run — both must give the same kWh, to the Wh.
 *
 * The default is the issue's scale: all 7,290 light points, 94.5 M readings, 14 GB (dropped at
 * the end). It takes about 10 minutes on two otherwise idle cores (21 minutes when other work
 * shares them); BENCH_ENERGY_DEVICES=2430 (a third, ~5 minutes) or BENCH_ENERGY_DAYS make it
 * smaller, and the scale used is printed first.
 *
 * A throwaway seeded database. The readings are generated inside PostgreSQL (`generate_series`)
 * straight into the daily partitions of `readings` (created UNLOGGED: the bench needs no WAL of
 * them): each light point's counter follows the night-time lighting profile at its LED wattage,
 * and about 1 % of them are replaced once (the counter restarts from 0). The daily roll-ups are
 * then built from those readings by the ingest's own aggregation (Paris day; first and last by
 * measurement time), so the two sides read the same data. Then:
 *
 * - GraphQL: `energy(from, to, granularity: MONTH)` for the four collectivities against the
 *   telemetry subgraph (warm-up, then p50/p95 of BENCH_ENERGY_RUNS runs);
 * - raw: one SQL statement over `readings` — each reading's rise since the asset's previous
 *   reading (a drop counts 0), summed per collectivity and Paris month.
 *
 *   npm run bench:energy                                # 90 days × 7,290 light points
 *   BENCH_ENERGY_DEVICES=2430 npm run bench:energy      # a third of them
 *   BENCH_ENERGY_DAYS=30 BENCH_ENERGY_DEVICES=1000 npm run bench:energy
 */
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { createTestDatabase, startService } from '@connecte/testkit';
import { partitionName } from '../subgraphs/telemetry/src/partitions.js';

const positive = (name: string, fallback: number, max: number) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > max) {
    console.error(`${name} must be a whole number between 1 and ${max} (got ${JSON.stringify(raw)})`);
    process.exit(2);
  }
  return Number(raw);
};
const DAYS = positive('BENCH_ENERGY_DAYS', 90, 365);
const DEVICES = positive('BENCH_ENERGY_DEVICES', 7_290, 7_290);
const RUNS = positive('BENCH_ENERGY_RUNS', 15, 1_000);
const SLOTS_PER_DAY = 144; // one reading every 10 minutes
const SLOT_MS = 600_000;
/** One light point in this many is replaced once during the period (its counter restarts from 0). */
const REPLACED_EVERY = 97;

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const dayMs = (day: string) => Date.parse(`${day}T00:00:00Z`);
const addDays = (day: string, n: number) => isoDay(dayMs(day) + n * DAY_MS);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

interface PlanNode {
  'Node Type': string;
  Plans?: PlanNode[];
}
/** The plan's node types, top down; a partition's scan is counted once with how many there are. */
const planNodes = (node: PlanNode): string[] => {
  const children = (node.Plans ?? []).map(planNodes);
  const scans = children.filter((c) => c.length === 1 && c[0].includes('Scan'));
  if (scans.length > 1) return [node['Node Type'], `${scans.length} × ${scans[0][0]}`];
  return [node['Node Type'], ...children.flat()];
};

/** The instant of midnight in Paris at the start of `day` (UTC+1 or UTC+2). */
function parisMidnight(day: string): number {
  const format = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', hourCycle: 'h23', day: '2-digit' });
  for (const offset of [1, 2]) {
    const ms = dayMs(day) - offset * 3_600_000;
    const parts = Object.fromEntries(format.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
    if (parts.hour === '00' && parts.day === day.slice(8, 10)) return ms;
  }
  throw new Error(`no Paris midnight on ${day}`);
}

/**
 * The lighting profile, per 10-minute slot of a UTC day: off by day, full power at dusk and dawn,
 * 40 % in the middle of the night (the territory's dimming). Cumulative full-power hours at the
 * end of each slot, so that a counter's value is a closed form of its slot number.
 */
function cumulativeHours(): { perDay: number; bySlot: number[] } {
  const bySlot: number[] = [];
  let hours = 0;
  for (let slot = 0; slot < SLOTS_PER_DAY; slot++) {
    const hour = slot / 6;
    const level = hour >= 16.5 || hour < 6.5 ? (hour >= 22 || hour < 4 ? 0.4 : 1) : 0;
    hours += level / 6;
    bySlot.push(hours);
  }
  return { perDay: hours, bySlot };
}

// The first Paris day: the first of a month, so that the months read as months; the last is
// at least the day before yesterday, so that every day is complete.
const today = isoDay(Date.now());
const firstDay = `${addDays(today, -DAYS - 1).slice(0, 7)}-01`;
const lastDay = addDays(firstDay, DAYS - 1);
const startMs = parisMidnight(firstDay);
const endMs = parisMidnight(addDays(lastDay, 1));
const slots = (endMs - startMs) / SLOT_MS;

console.log(
  `scale: ${DEVICES.toLocaleString('en')} light points × ${DAYS} days (${firstDay} … ${lastDay}, Europe/Paris) × ${SLOTS_PER_DAY} readings a day` +
    ` = ${(DEVICES * slots).toLocaleString('en')} readings` +
    (DAYS !== 90 || DEVICES !== 7_290 ? ' — not the full 90 days × 7,290 light points = 94.5 M (BENCH_ENERGY_DAYS, BENCH_ENERGY_DEVICES)' : ''),
);

const df = () => execFileSync('df', ['-h', '/work'], { encoding: 'utf8' }).trim().split('\n').at(-1);
console.log(`disk before: ${df()}`);

const database = await createTestDatabase();
// Long statements: no timeout on the bench's own connections.
const pool = new pg.Pool({ connectionString: database.url, max: 2, options: '-c statement_timeout=0 -c work_mem=64MB' });
let service: Awaited<ReturnType<typeof startService>> | undefined;
try {
  const t0 = performance.now();
  const { perDay, bySlot } = cumulativeHours();
  // The light points, with their wattage, a counter's starting value and, for some, the slot of
  // the period at which they are replaced.
  await pool.query(`
    CREATE TABLE bench_lights AS
    SELECT e.id, e.collectivity_id, (e.details->>'powerW')::float8 AS power_w,
           (n * 7919 % 50000)::float8 * 10 AS initial_wh,
           CASE WHEN n % ${REPLACED_EVERY} = 0 THEN 1 + (n * 104729) % ${slots - 1} END AS replaced_at
      -- In a fixed shuffled order, so that a smaller scale still spans the collectivities.
      FROM (SELECT e.*, row_number() OVER (ORDER BY md5(e.id)) AS n FROM equipment e WHERE e.kind = 'LIGHT_POINT') e
     WHERE n <= ${DEVICES}`);

  // UTC partitions covering the Paris range.
  const partitionDays: string[] = [];
  for (let day = isoDay(startMs); dayMs(day) < endMs; day = addDays(day, 1)) partitionDays.push(day);
  for (const day of partitionDays) {
    await pool.query(
      `CREATE UNLOGGED TABLE IF NOT EXISTS "${partitionName(day)}" PARTITION OF readings FOR VALUES FROM ('${new Date(dayMs(day)).toISOString()}') TO ('${new Date(dayMs(day) + DAY_MS).toISOString()}')`,
    );
  }

  // Readings, one UTC day per statement, two at a time (two cores).
  const counter = `
    INSERT INTO readings (equipment_id, metric, time, value, collectivity_id, received_at)
    SELECT l.id, 'energy', $1::timestamptz + k * interval '10 minutes',
           round(CASE WHEN l.replaced_at IS NULL OR k < l.replaced_at
                      THEN l.initial_wh + l.power_w * cum.at_k
                      ELSE l.power_w * (cum.at_k - cum.before_replacement) END * 10) / 10,
           l.collectivity_id, $1::timestamptz + k * interval '10 minutes'
      FROM bench_lights l
      CROSS JOIN generate_series($2::int, $3::int) AS k
      CROSS JOIN LATERAL (
        SELECT (k / ${SLOTS_PER_DAY}) * $4::float8 + ($5::float8[])[k % ${SLOTS_PER_DAY} + 1] AS at_k,
               CASE WHEN l.replaced_at IS NULL THEN 0
                    ELSE ((l.replaced_at - 1) / ${SLOTS_PER_DAY}) * $4::float8 + ($5::float8[])[(l.replaced_at - 1) % ${SLOTS_PER_DAY} + 1] END
                 AS before_replacement) cum`;
  // Slot k is at startMs + k × 10 min; the profile is indexed by the slot of the UTC day, so the
  // slot numbering starts at a UTC midnight.
  const originMs = dayMs(isoDay(startMs));
  const firstSlot = (startMs - originMs) / SLOT_MS;
  const lastSlot = firstSlot + slots - 1;
  const origin = new Date(originMs).toISOString();
  // Replacement slots are counted from the range's first reading.
  await pool.query(`UPDATE bench_lights SET replaced_at = replaced_at + ${firstSlot} WHERE replaced_at IS NOT NULL`);
  let written = 0;
  const queue = partitionDays.map((day, index) => ({ day, from: Math.max(firstSlot, index * SLOTS_PER_DAY), to: Math.min(lastSlot, (index + 1) * SLOTS_PER_DAY - 1) }));
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      if (next.from > next.to) continue;
      const { rowCount } = await pool.query(counter, [origin, next.from, next.to, perDay, bySlot]);
      written += rowCount ?? 0;
      if (partitionDays.indexOf(next.day) % 10 === 9) console.log(`  … ${written.toLocaleString('en')} readings (${seconds(performance.now() - t0)})`);
    }
  };
  await Promise.all([worker(), worker()]);
  const tReadings = performance.now();
  console.log(`readings: ${written.toLocaleString('en')} in ${seconds(tReadings - t0)} (${Math.round(written / ((tReadings - t0) / 1000)).toLocaleString('en')}/s)`);

  // Daily roll-ups from those readings, the ingest's aggregation, one Paris day per statement.
  const rollup = `
    INSERT INTO reading_rollups_daily
      (equipment_id, metric, day, collectivity_id, kind, count, sum, min, max, first_time, first_value, last_time, last_value)
    SELECT equipment_id, metric, (time AT TIME ZONE 'Europe/Paris')::date, max(collectivity_id), 'LIGHT_POINT', count(*), sum(value),
           min(value), max(value), min(time), (min(ARRAY[extract(epoch FROM time)::float8, value]))[2],
           max(time), (max(ARRAY[extract(epoch FROM time)::float8, value]))[2]
      FROM readings
     WHERE metric = 'energy' AND time >= $1 AND time < $2
     GROUP BY 1, 2, 3`;
  const days: string[] = [];
  for (let day = firstDay; day <= lastDay; day = addDays(day, 1)) days.push(day);
  const dayQueue = [...days];
  let rollups = 0;
  const rollupWorker = async () => {
    for (let day = dayQueue.shift(); day; day = dayQueue.shift()) {
      const { rowCount } = await pool.query(rollup, [new Date(parisMidnight(day)), new Date(parisMidnight(addDays(day, 1)))]);
      rollups += rowCount ?? 0;
    }
  };
  await Promise.all([rollupWorker(), rollupWorker()]);
  await pool.query('ANALYZE reading_rollups_daily');
  await pool.query('ANALYZE readings');
  const tRollups = performance.now();
  console.log(`daily roll-ups: ${rollups.toLocaleString('en')} rows in ${seconds(tRollups - tReadings)}`);
  const { rows: sizes } = await pool.query<{ readings: string; rollups: string }>(`
    SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) AS readings,
           pg_size_pretty(pg_total_relation_size('reading_rollups_daily')) AS rollups
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass`);
  console.log(`sizes: readings ${sizes[0].readings} (with their primary key), daily roll-ups ${sizes[0].rollups}; disk: ${df()}`);

  // ---- GraphQL, from the roll-ups.
  service = await startService('telemetry', { db: database, env: { DB_STATEMENT_TIMEOUT_MS: '600000' } });
  const query = `query Energy($from: Date!, $to: Date!) {
    energy(from: $from, to: $to, granularity: MONTH) {
      collectivity { id } periods { start end figures { consumedKwh lightingKwh reportingAssets } } total { consumedKwh savedKwh }
    }
  }`;
  type Answer = { energy: { collectivity: { id: string }; periods: { start: string; end: string; figures: { consumedKwh: number; lightingKwh: number; reportingAssets: number } }[] }[] };
  const ask = async () => {
    const response = await service!.gql<Answer>(query, { variables: { from: firstDay, to: lastDay } });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data!.energy;
  };
  await ask();
  await ask();
  const times: number[] = [];
  let answer: Answer['energy'] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    answer = await ask();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);

  // ---- The same figures from the raw readings.
  // Each reading's Paris month by the instants months start at (a binary search), rather than a
  // time-zone conversion per reading: the fairest raw baseline.
  const monthStarts: string[] = [];
  for (let day = firstDay; day <= lastDay; day = addDays(day, 1)) if (day === firstDay || day.endsWith('-01')) monthStarts.push(day);
  const raw = `
    WITH rises AS (
      SELECT collectivity_id, time,
             value - lag(value) OVER (PARTITION BY equipment_id ORDER BY time) AS rise
        FROM readings
       WHERE metric = 'energy' AND time >= $1 AND time < $2
    )
    SELECT collectivity_id, ($4::text[])[width_bucket(time, $3::timestamptz[])] AS month,
           sum(greatest(coalesce(rise, 0), 0)) / 1000 AS kwh
      FROM rises GROUP BY 1, 2 ORDER BY 1, 2`;
  const rawParams = [new Date(startMs), new Date(endMs), monthStarts.map((day) => new Date(parisMidnight(day))), monthStarts.map((day) => `${day.slice(0, 7)}-01`)];
  const { rows: explained } = await pool.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`EXPLAIN (FORMAT JSON) ${raw}`, rawParams);
  const plan = planNodes(explained[0]['QUERY PLAN'][0].Plan);
  const rawStarted = performance.now();
  const { rows: rawRows } = await pool.query<{ collectivity_id: string; month: string; kwh: number }>(raw, rawParams);
  const rawMs = performance.now() - rawStarted;

  // ---- Compare, to the Wh.
  let mismatches = 0;
  console.log(`\n${'collectivity'.padEnd(26)}${'month from'.padEnd(12)}${'GraphQL kWh'.padStart(16)}${'raw kWh'.padStart(16)}${'assets'.padStart(8)}`);
  for (const entry of answer) {
    for (const period of entry.periods) {
      const month = `${period.start.slice(0, 7)}-01`;
      const rawKwh = rawRows.find((r) => r.collectivity_id === entry.collectivity.id && r.month === month)?.kwh ?? 0;
      const same = Math.abs(period.figures.consumedKwh - rawKwh) <= 0.001;
      if (!same) mismatches++;
      console.log(
        `${entry.collectivity.id.padEnd(26)}${period.start.padEnd(12)}${period.figures.consumedKwh.toFixed(3).padStart(16)}${rawKwh.toFixed(3).padStart(16)}${String(period.figures.reportingAssets).padStart(8)}${same ? '' : '  MISMATCH'}`,
      );
    }
  }
  const p50 = percentile(times, 50);
  console.log(`\nenergy per collectivity per month, ${DAYS} days, ${DEVICES.toLocaleString('en')} light points (${written.toLocaleString('en')} readings, ${rollups.toLocaleString('en')} daily roll-ups)`);
  console.log(`  GraphQL energy (roll-ups)  p50 ${p50.toFixed(1)} ms  p95 ${percentile(times, 95).toFixed(1)} ms  (${RUNS} runs)`);
  console.log(`  raw readings (SQL)         ${rawMs.toFixed(1)} ms  plan: ${plan.join(' > ')}`);
  console.log(`  ratio raw / roll-ups: ×${(rawMs / p50).toFixed(0)}`);
  console.log(`  same kWh per collectivity and month: ${mismatches === 0 ? 'yes' : `NO (${mismatches} differ)`}`);
  console.log(`  total time ${seconds(performance.now() - t0)}`);
  if (mismatches > 0) process.exitCode = 1;
} finally {
  await service?.close();
  await pool.end();
  await database.drop();
  console.log(`disk after: ${df()}`);
}
