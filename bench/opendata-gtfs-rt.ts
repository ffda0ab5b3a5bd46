/**
 * GTFS-Realtime vehicle positions: the feed's build (version + rows from `opendata_vehicle_positions`
 * + message + protobuf encoding, in one REPEATABLE READ snapshot, as the router runs it) for the
 * seed's 32 buses and for 10,000 synthetic vehicles, against encoding the same prepared message
 * objects with protobufjs alone (the ratio is what the database read and the building cost on
 * top of the encoding); then a request served from the representation cache, p50, against a
 * static file of the same bytes served by the same HTTP server in the same run.
 *
 *   npx tsx bench/opendata-gtfs-rt.ts [--runs 30] [--requests 500]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createTestDatabase } from '@connecte/testkit';
import { createOpendataHandler } from '../opendata/src/index.js';
import { encodeFeedMessage, type RealtimeVersion } from '../opendata/src/feeds/gtfs-rt.js';
import { gtfsRtVehiclePositions, vehiclePositionsMessage } from '../opendata/src/feeds/gtfs-rt-vehicle-positions.js';
import { rawRequest } from '../opendata/test/serve.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '30' }, requests: { type: 'string', default: '500' } } });
const RUNS = Math.max(5, Number(args.runs));
const REQUESTS = Math.max(50, Number(args.requests));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ms = (value: number) => `${value.toFixed(3)} ms`;

const db = await createTestDatabase({ seed: true });
const pool = new pg.Pool({ connectionString: db.url, max: 4 });

/** `count` buses on trips of today's network, observed now; the seed's buses first, then synthetic ones. */
async function placeVehicles(count: number) {
  await pool.query(`DELETE FROM vehicle_states`);
  await pool.query(`DELETE FROM mobility_assets WHERE equipment_id LIKE 'bench-bus-%'`);
  const seedBuses = (await pool.query<{ id: string }>(`SELECT equipment_id AS id FROM mobility_assets WHERE kind = 'BUS' AND status <> 'DECOMMISSIONED' ORDER BY equipment_id`)).rows.map((r) => r.id);
  const ids = seedBuses.slice(0, count);
  if (ids.length < count) {
    const extra = Array.from({ length: count - ids.length }, (_, i) => `bench-bus-${String(i + 1).padStart(5, '0')}`);
    await pool.query(
      `INSERT INTO mobility_assets (equipment_id, collectivity_id, kind, reference, name, status, details, event_id)
       SELECT id, 'chalons-agglo', 'BUS', id, id, 'IN_SERVICE', jsonb_build_object('fleetNumber', (1000 + n)::text), 0
       FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n)`,
      [extra],
    );
    ids.push(...extra);
  }
  // Each bus on a trip (round robin), at its third stop, predicting the next 10 (a typical state).
  await pool.query(
    `WITH t AS (SELECT trip_id, route_id, row_number() OVER (ORDER BY trip_id) - 1 AS k, count(*) OVER () AS n FROM gtfs_trips),
          b AS (SELECT id, n - 1 AS k FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n))
     INSERT INTO vehicle_states (equipment_id, collectivity_id, observed_at, geom, speed_mps, bearing, service_date, trip_id, route_id,
                                 shape_dist_m, delay_seconds, current_status, stop_sequence, stop_id, predictions)
     SELECT b.id, 'chalons-agglo', now(), ST_SetSRID(ST_MakePoint(4.36 + (b.k % 100) * 0.0005, 48.95 + (b.k / 100) * 0.0002), 4326), 8.3, (b.k * 37) % 360,
            current_date, t.trip_id, t.route_id, 800, 60, 'IN_TRANSIT_TO', st.stop_sequence, st.stop_id,
            (SELECT jsonb_agg(jsonb_build_array(s.stop_sequence, extract(epoch FROM now())::bigint + 60 * s.stop_sequence) ORDER BY s.stop_sequence)
               FROM gtfs_stop_times s WHERE s.trip_id = t.trip_id AND s.stop_sequence > st.stop_sequence AND s.stop_sequence <= st.stop_sequence + 10)
     FROM b JOIN t ON t.k = b.k % t.n
     JOIN LATERAL (SELECT stop_sequence, stop_id FROM gtfs_stop_times WHERE trip_id = t.trip_id ORDER BY stop_sequence OFFSET 2 LIMIT 1) st ON true`,
    [ids],
  );
  await pool.query('ANALYZE vehicle_states');
  await pool.query('ANALYZE mobility_assets');
}

async function buildOnce(): Promise<{ ms: number; bytes: Uint8Array; message: Awaited<ReturnType<typeof vehiclePositionsMessage>> }> {
  const client = await pool.connect();
  try {
    const started = performance.now();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const version = (await gtfsRtVehiclePositions.version(client, { format: 'protobuf' })) as RealtimeVersion;
    const message = await vehiclePositionsMessage(client, version);
    const bytes = encodeFeedMessage(message);
    await client.query('COMMIT');
    return { ms: performance.now() - started, bytes, message };
  } finally {
    client.release();
  }
}

async function benchBuild(count: number) {
  await placeVehicles(count);
  for (let i = 0; i < 3; i++) await buildOnce();
  const builds: number[] = [];
  let last: Awaited<ReturnType<typeof buildOnce>> | undefined;
  for (let i = 0; i < RUNS; i++) {
    last = await buildOnce();
    builds.push(last.ms);
  }
  const prepared = last!.message;
  for (let i = 0; i < 5; i++) encodeFeedMessage(prepared);
  const encodes: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const started = performance.now();
    encodeFeedMessage(prepared);
    encodes.push(performance.now() - started);
  }
  const build = median(builds);
  const encode = median(encodes);
  console.log(
    `${String(prepared.entity.length).padStart(6)} vehicles: build p50 ${ms(build)}, protobufjs encode alone p50 ${ms(encode)}, ratio ${(build / encode).toFixed(1)}×; ${last!.bytes.length.toLocaleString('en')} bytes`,
  );
}

console.log(`GTFS-RT vehicle positions (${RUNS} runs each, medians)`);
await benchBuild(32);
await benchBuild(10_000);

// Cached request vs static bytes, on one server (32 buses, as the seed runs).
await placeVehicles(32);
const handle = createOpendataHandler({ pool, publicUrl: 'http://127.0.0.1', feeds: [gtfsRtVehiclePositions] });
let staticBytes: Buffer = Buffer.alloc(0);
const server = http.createServer((req, res) => {
  if (req.url === '/static/vehicle-positions.pb') {
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': String(staticBytes.length), 'cache-control': 'public, max-age=10' });
    res.end(staticBytes);
    return;
  }
  handle(req, res).then((handled) => {
    if (!handled) res.writeHead(404).end();
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const first = await rawRequest(`${base}/opendata/gtfs-rt/vehicle-positions.pb`);
staticBytes = first.body;
async function p50(url: string): Promise<number> {
  for (let i = 0; i < 20; i++) await rawRequest(url);
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    const res = await rawRequest(url);
    times.push(performance.now() - started);
    if (res.status !== 200 || res.body.length !== staticBytes.length) throw new Error(`${url}: ${res.status}, ${res.body.length} bytes`);
  }
  return median(times);
}
const cached = await p50(`${base}/opendata/gtfs-rt/vehicle-positions.pb`);
const file = await p50(`${base}/static/vehicle-positions.pb`);
console.log(`cached request p50 ${ms(cached)} vs static bytes p50 ${ms(file)} (${(cached / file).toFixed(1)}×), ${staticBytes.length.toLocaleString('en')} bytes, ${REQUESTS} requests each`);

await new Promise<void>((resolve) => server.close(() => resolve()));
await pool.end();
await db.drop();
