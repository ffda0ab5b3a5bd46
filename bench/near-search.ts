/**
 * `near` search: the geography GiST index against a sequential scan, same run, same data.
 *
 * A throwaway database gets 100,000 synthetic assets spread over the territory's bbox, then
 * the equipment store's own `equipmentSearch` statement with a 300 m `near` filter (first 50)
 * runs for 200 random centres: once as the planner likes it, once on a connection with index
 * and bitmap scans disabled. Prints p50/p95, the ratio, and the plan nodes proving each path.
 *
 *   npx tsx bench/near-search.ts
 */
import { performance } from 'node:perf_hooks';
import { createDatabase, Prisma, type Database } from '@connecte/shared/db';
import { createTestDatabase } from '@connecte/testkit';
import { searchQuery, type SearchCriteria } from '../subgraphs/equipment/src/equipment-store.js';
import { mulberry32 } from '../prisma/seed/rng.js';

const ROWS = 100_000;
const CENTRES = 200;
const RADIUS_M = 300;
const PAGE = 50;
const TERRITORY = { minLon: 4.25, maxLon: 4.48, minLat: 48.88, maxLat: 49.03 };
const KINDS = ['LIGHT_POINT', 'LIGHT_POINT', 'LIGHT_POINT', 'PRESENCE_DETECTOR', 'BUS_STOP', 'ELECTRICAL_CABINET', 'CAMERA'];

const random = mulberry32(20261125);
const randomPoint = () => ({
  lon: TERRITORY.minLon + random() * (TERRITORY.maxLon - TERRITORY.minLon),
  lat: TERRITORY.minLat + random() * (TERRITORY.maxLat - TERRITORY.minLat),
});

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}
const planNodes = (node: PlanNode): string[] => [
  node['Index Name'] ? `${node['Node Type']} (${node['Index Name']})` : node['Node Type'],
  ...(node.Plans ?? []).flatMap(planNodes),
];

async function measure(db: Database, centres: { lon: number; lat: number }[]) {
  const criteria = (c: { lon: number; lat: number }): SearchCriteria => ({
    near: { lon: c.lon, lat: c.lat, radiusMeters: RADIUS_M },
    cameraCollectivities: [],
  });
  const [{ 'QUERY PLAN': plan }] = await db.prisma.$queryRaw<{ 'QUERY PLAN': [{ Plan: PlanNode }] }[]>(
    Prisma.sql`EXPLAIN (FORMAT JSON) ${searchQuery(criteria(centres[0]), PAGE, null)}`,
  );
  for (const c of centres.slice(0, 10)) await db.prisma.$queryRaw(searchQuery(criteria(c), PAGE, null)); // warm-up
  const times: number[] = [];
  let rows = 0;
  for (const c of centres) {
    const started = performance.now();
    rows += (await db.prisma.$queryRaw<unknown[]>(searchQuery(criteria(c), PAGE, null))).length;
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p95: percentile(times, 95), meanRows: rows / centres.length, plan: planNodes(plan[0].Plan) };
}

const database = await createTestDatabase({ seed: false });
const indexed = createDatabase({ DATABASE_URL: database.url, DB_POOL_SIZE: 1 });
const seqUrl = new URL(database.url);
seqUrl.searchParams.set('options', '-c enable_indexscan=off -c enable_bitmapscan=off');
const sequential = createDatabase({ DATABASE_URL: seqUrl.toString(), DB_POOL_SIZE: 1 });
try {
  const started = performance.now();
  await indexed.prisma.$executeRaw`
    INSERT INTO collectivity (id, name, kind, insee_code, siren) VALUES ('bench', 'Bench', 'AGGLOMERATION', NULL, '000000000')`;
  const points = Array.from({ length: ROWS }, randomPoint);
  await indexed.prisma.$executeRaw`
    INSERT INTO equipment (id, kind, reference, collectivity_id, location)
    SELECT 'b-' || n, kind::equipment_kind, 'B-' || n, 'bench', ST_SetSRID(ST_MakePoint(lon, lat), 4326)
    FROM unnest(${points.map((_, i) => i)}::int[], ${points.map((_, i) => KINDS[i % KINDS.length])}::text[],
                ${points.map((p) => p.lon)}::float8[], ${points.map((p) => p.lat)}::float8[]) AS t(n, kind, lon, lat)`;
  await indexed.prisma.$executeRawUnsafe('ANALYZE equipment');
  console.log(`inserted ${ROWS.toLocaleString('en')} rows and analysed in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const centres = Array.from({ length: CENTRES }, randomPoint);
  const withIndex = await measure(indexed, centres);
  const withSeqScan = await measure(sequential, centres);

  const fmt = (ms: number) => `${ms.toFixed(2)} ms`;
  console.log(`\nnear ${RADIUS_M} m, first ${PAGE}, ${CENTRES} centres, ${ROWS.toLocaleString('en')} rows (mean ${withIndex.meanRows.toFixed(1)} rows returned)`);
  console.log(`  GiST index  p50 ${fmt(withIndex.p50)}  p95 ${fmt(withIndex.p95)}  plan: ${withIndex.plan.join(' > ')}`);
  console.log(`  seq scan    p50 ${fmt(withSeqScan.p50)}  p95 ${fmt(withSeqScan.p95)}  plan: ${withSeqScan.plan.join(' > ')}`);
  console.log(`  ratio seqscan/index: p50 ×${(withSeqScan.p50 / withIndex.p50).toFixed(1)}  p95 ×${(withSeqScan.p95 / withIndex.p95).toFixed(1)}`);
  if (!withIndex.plan.some((node) => node.includes('equipment_location_geography_idx'))) {
    console.log('  WARNING: the planner did not use equipment_location_geography_idx');
    process.exitCode = 1;
  }
} finally {
  await indexed.close();
  await sequential.close();
  await database.drop();
}
