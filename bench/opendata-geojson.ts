/**
 * Open-data GeoJSON of light points: what the module costs on top of PostgreSQL, and whether a
 * territory of any size streams with flat memory.
 *
 * 1. On the seeded territory (~7,300 light points), through the open-data handler on a real
 *    socket: p50 of a request served from the representation cache; p50 of the first request
 *    after an equipment update (version read, the cursor streamed, the copy cached); against
 *    p50 of PostgreSQL alone building the same FeatureCollection in one
 *    `SELECT json_build_object(… json_agg(…))` statement (same features, same order, same view).
 * 2. In a child process (its own peak RSS): 1,000,000 synthetic light points added to a fresh
 *    database, the whole collection requested (identity, then gzip), counted as it arrives and
 *    thrown away; peak RSS (`maxRSS`) must stay ≤ 300 MB.
 *
 *   npx tsx bench/opendata-geojson.ts            # both parts
 *   BENCH_FEATURES=200000 npx tsx bench/opendata-geojson.ts   # a smaller second part
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { createOpendataHandler } from '@connecte/opendata';
import { assetFeatureSql } from '../opendata/src/feeds/asset-geojson.js';
import { lightPointsGeojson } from '../opendata/src/feeds/light-points-geojson.js';

const PATH = '/opendata/geojson/light-points.geojson';
const CACHED_REQUESTS = 200;
const FRESH_REQUESTS = 20;
const FEATURES = Number(process.env.BENCH_FEATURES ?? 1_000_000);
const RSS_LIMIT_MB = 300;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

async function serve(pool: pg.Pool) {
  let handle: ReturnType<typeof createOpendataHandler>;
  const server = http.createServer((req, res) => {
    handle(req, res).then(
      (handled) => handled || res.writeHead(404).end(),
      (error) => {
        console.error(error);
        if (res.headersSent) res.destroy();
        else res.writeHead(500).end();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  handle = createOpendataHandler({ pool, publicUrl: base, feeds: [lightPointsGeojson] });
  return { base, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** GETs `url` and counts bytes and features as they arrive, keeping nothing. */
function drain(url: string, headers: Record<string, string> = {}): Promise<{ bytes: number; wireBytes: number; features: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers, agent: false }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`${url}: HTTP ${res.statusCode}`));
        let wireBytes = 0;
        res.on('data', (chunk: Buffer) => (wireBytes += chunk.length));
        const body = res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
        const marker = '"Feature"';
        let bytes = 0;
        let features = 0;
        let carry = '';
        body.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          const text = carry + chunk.toString('latin1');
          for (let at = text.indexOf(marker); at !== -1; at = text.indexOf(marker, at + 1)) features++;
          carry = text.slice(-(marker.length - 1));
        });
        body.on('end', () => resolve({ bytes, wireBytes, features, ms: performance.now() - started }));
        body.on('error', reject);
      })
      .on('error', reject);
  });
}

/** The test kit (and the seed it builds from) only in the parent: the child's RSS is the module's. */
const testDatabase = async () => (await import('@connecte/testkit')).createTestDatabase({ seed: true });

async function partOne() {
  const db = await testDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 4 });
  const served = await serve(pool);
  try {
    const { rows } = await pool.query<{ count: string }>('SELECT count(*) FROM opendata_light_points');
    const url = `${served.base}${PATH}`;
    await drain(url); // builds and caches
    const cached: number[] = [];
    for (let i = 0; i < CACHED_REQUESTS; i++) cached.push((await drain(url)).ms);
    const fresh: number[] = [];
    let bytes = 0;
    for (let i = 0; i < FRESH_REQUESTS; i++) {
      await pool.query(`UPDATE equipment SET updated_at = clock_timestamp() WHERE id = (SELECT id FROM equipment WHERE kind = 'LIGHT_POINT' ORDER BY random() LIMIT 1)`);
      const result = await drain(url);
      fresh.push(result.ms);
      bytes = result.bytes;
    }
    // PostgreSQL alone: the same features (the feed's own per-feature SQL), aggregated in one statement.
    const features = assetFeatureSql({ id: 'light-points', view: 'opendata_light_points', dataset: lightPointsGeojson.dataset, properties: LIGHT_POINT_PROPERTIES }, '');
    const sql = `SELECT '{"type":"FeatureCollection","features":[' || coalesce(string_agg(f.feature, ','), '') || ']}' AS body FROM (${features}) f`;
    const jsonAgg = `SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(f.feature::json), '[]'::json))::text AS body FROM (${features}) f`;
    const pgOnly: number[] = [];
    const pgJsonAgg: number[] = [];
    let pgBytes = 0;
    for (let i = 0; i < FRESH_REQUESTS; i++) {
      let started = performance.now();
      const { rows: aggregated } = await pool.query<{ body: string }>(sql);
      pgOnly.push(performance.now() - started);
      pgBytes = Buffer.byteLength(aggregated[0].body);
      started = performance.now();
      await pool.query(jsonAgg);
      pgJsonAgg.push(performance.now() - started);
    }
    console.log(`light points: ${rows[0].count} features, ${(bytes / 1e6).toFixed(2)} MB (PostgreSQL's own: ${(pgBytes / 1e6).toFixed(2)} MB)`);
    console.log(`  cached request          p50 ${percentile(cached, 50).toFixed(2)} ms  p95 ${percentile(cached, 95).toFixed(2)} ms  (${CACHED_REQUESTS} requests)`);
    console.log(`  first after an update   p50 ${percentile(fresh, 50).toFixed(1)} ms  p95 ${percentile(fresh, 95).toFixed(1)} ms  (${FRESH_REQUESTS} updates)`);
    console.log(`  PostgreSQL alone, json_build_object + string_agg  p50 ${percentile(pgOnly, 50).toFixed(1)} ms`);
    console.log(`  PostgreSQL alone, json_build_object + json_agg    p50 ${percentile(pgJsonAgg, 50).toFixed(1)} ms`);
    console.log(`  ratio first-after-update / PostgreSQL (string_agg) ${(percentile(fresh, 50) / percentile(pgOnly, 50)).toFixed(2)}`);
  } finally {
    await served.close();
    await pool.end();
    await db.drop();
  }
}

const LIGHT_POINT_PROPERTIES = {
  typeSource: 't.type_source',
  puissanceNominale: 't.puissance_nominale_w',
  temperatureCouleur: 't.temperature_couleur_k',
  regimeFonctionnement: 't.regime_fonctionnement',
  hauteurFeu: 't.hauteur_feu_m',
  telegestion: 't.telegestion',
};

/** Adds FEATURES synthetic light points (random positions over Châlons, plausible attributes). */
async function addLightPoints(pool: pg.Pool) {
  await pool.query(
    `INSERT INTO equipment (id, kind, reference, status, collectivity_id, insee_code, location, installed_on, details, updated_at)
     SELECT 'lp-bench-' || lpad(g::text, 7, '0'), 'LIGHT_POINT', 'LP-BENCH-' || lpad(g::text, 7, '0'), 'IN_SERVICE', 'chalons', '51108',
            ST_SetSRID(ST_MakePoint(4.30 + random() * 0.12, 48.92 + random() * 0.08), 4326), DATE '2025-01-01' + (g % 600),
            jsonb_build_object('powerW', (ARRAY[18, 24, 30, 36, 45, 60])[1 + g % 6], 'lampType', 'LED', 'dimmable', g % 3 = 0,
                               'colorTemperatureK', CASE WHEN g % 10 < 7 THEN 2700 ELSE 3000 END, 'poleHeightM', 4 + (g % 5)),
            now()
       FROM generate_series(1, $1::int) g`,
    [FEATURES],
  );
  await pool.query('VACUUM ANALYZE equipment');
}

/**
 * The child: only the open-data handler and a pool on the prepared database (argv), so that its
 * RSS is the module's; streams the whole collection twice (identity, gzip) and prints its figures.
 */
async function partTwoChild(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const served = await serve(pool);
  const rssBefore = process.memoryUsage().rss;
  let peakSampled = rssBefore;
  const sampler = setInterval(() => (peakSampled = Math.max(peakSampled, process.memoryUsage().rss)), 50);
  const identity = await drain(`${served.base}${PATH}`);
  const gzip = await drain(`${served.base}${PATH}`, { 'accept-encoding': 'gzip' });
  clearInterval(sampler);
  await served.close();
  await pool.end();
  console.log(
    JSON.stringify({
      features: identity.features,
      identity: { ms: identity.ms, bytes: identity.bytes },
      gzip: { ms: gzip.ms, bytes: gzip.bytes, wireBytes: gzip.wireBytes, features: gzip.features },
      rssBeforeMb: rssBefore / 2 ** 20,
      peakSampledMb: peakSampled / 2 ** 20,
      maxRssMb: process.resourceUsage().maxRSS / 1024,
    }),
  );
}

async function partTwo() {
  const db = await testDatabase();
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  try {
    const started = performance.now();
    await addLightPoints(pool);
    const loadMs = performance.now() - started;
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', db.url], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let text = '';
      child.stdout.on('data', (chunk) => (text += chunk));
      child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`child exited with ${code}`))));
    });
    const r = JSON.parse(output.trim().split('\n').at(-1)!);
    console.log(`streaming ${r.features.toLocaleString('en')} light points (${FEATURES.toLocaleString('en')} synthetic + the seed's), server and client in a child process:`);
    console.log(`  ${FEATURES.toLocaleString('en')} rows inserted in ${(loadMs / 1000).toFixed(1)} s`);
    console.log(`  identity: ${(r.identity.bytes / 1e6).toFixed(0)} MB in ${(r.identity.ms / 1000).toFixed(1)} s (${(r.identity.bytes / 1e6 / (r.identity.ms / 1000)).toFixed(1)} MB/s)`);
    console.log(
      `  gzip:     ${(r.gzip.wireBytes / 1e6).toFixed(0)} MB on the wire (${(r.gzip.bytes / 1e6).toFixed(0)} MB decoded, ${r.gzip.features.toLocaleString('en')} features) in ${(r.gzip.ms / 1000).toFixed(1)} s`,
    );
    console.log(`  RSS before ${r.rssBeforeMb.toFixed(0)} MB, sampled peak ${r.peakSampledMb.toFixed(0)} MB, maxRSS ${r.maxRssMb.toFixed(0)} MB (limit ${RSS_LIMIT_MB} MB): ${r.maxRssMb <= RSS_LIMIT_MB ? 'OK' : 'OVER'}`);
    if (r.maxRssMb > RSS_LIMIT_MB) process.exitCode = 1;
  } finally {
    await pool.end();
    await db.drop();
  }
}

const child = process.argv.indexOf('--child');
if (child !== -1) {
  await partTwoChild(process.argv[child + 1]);
} else {
  await partOne();
  await partTwo();
}
