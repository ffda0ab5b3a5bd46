/**
 * `POST /mobility/gtfs` and the network queries, on the seeded database with the real equipment
 * service: every refusal (no token, expired token, another collectivity, a citizen, the wrong
 * content type, a body over the limit, not a zip, an invalid feed) leaves the network as it was,
 * and a report names each problem's file, line and field; a dry run writes nothing; an import
 * registers its new stops through equipment and replaces the network in one go.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { signDevelopmentToken } from '@connecte/shared/auth';
import { createTestDatabase, gql, startHub, tokenFor, type Hub, type TestDatabase } from '@connecte/testkit';
import { buildSeedGtfs } from '../../../prisma/seed/index.js';
import { writeZip } from '@connecte/shared/zip';
import { tinyFeed } from './gtfs-fixture.js';

let db: TestDatabase;
let hub: Hub;
let pool: pg.Pool;
let url: string;
let mobility: string;
let operator: string;

async function post(body: Buffer | string, headers: Record<string, string>, query = ''): Promise<{ status: number; json: any }> {
  const res = await fetch(`${url}/mobility/gtfs${query}`, { method: 'POST', headers, body });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

/** A fingerprint of the whole network. */
async function networkState(): Promise<string> {
  const { rows } = await pool.query(`SELECT (SELECT max(id) FROM gtfs_feeds)::text AS feed,
    (SELECT md5(string_agg(trip_id || stop_sequence || stop_id || arrival_seconds, ',' ORDER BY trip_id, stop_sequence)) FROM gtfs_stop_times) AS st,
    (SELECT count(*) FROM gtfs_stops)::text AS stops, (SELECT count(*) FROM gtfs_routes)::text AS routes`);
  return JSON.stringify(rows[0]);
}

const zipHeaders = (token: string) => ({ 'content-type': 'application/zip', authorization: `Bearer ${token}` });

before(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  hub = await startHub(db.url, { LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent' }, { subgraphs: ['territory', 'equipment', 'mobility'] });
  mobility = hub.subgraphs.mobility.url;
  url = mobility.replace(/\/graphql$/, '');
  operator = await tokenFor(hub.config, ['operator'], ['chalons-agglo']);
});

after(async () => {
  await pool?.end();
  await hub?.close();
  await db?.drop();
});

describe('the seeded network', () => {
  it('is there: the feed, its routes, its stops mapped to their BUS_STOP assets, trips of a day', async () => {
    const res = await gql(mobility, `{
      gtfsFeed { source feedVersion validFrom validTo counts { file rows } }
      routes(first: 10) { totalCount edges { node { id shortName longName type color agencyName stops { id } shapes { type } } } }
      stop(id: "BS-AGG-00001") { id name equipment { id } location { coordinates } routes { id } }
      route(id: "L1") { trips(serviceDate: "2026-12-02", directionId: 0) { id blockId headsign stopTimes { stopSequence arrivalTime shapeDistTraveled stop { id } } } }
      sunday: route(id: "L1") { trips(serviceDate: "2026-12-25") { serviceId } }
    }`);
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    const data = res.data;
    assert.equal(data.gtfsFeed.source, 'subgraphs/mobility/gtfs/chalons-agglo');
    assert.equal(data.gtfsFeed.validFrom, '2026-01-01');
    assert.equal(data.routes.totalCount, 6);
    const l1 = data.routes.edges[0].node;
    assert.equal(l1.id, 'L1');
    assert.equal(l1.type, 'BUS');
    assert.ok(l1.stops.length > 10);
    assert.equal(l1.shapes.length, 2);
    assert.equal(data.stop.equipment.id, 'bs-chalons-agglo-00001');
    assert.equal(data.stop.routes.length >= 1, true);
    const trips = data.route.trips;
    assert.ok(trips.length > 20);
    assert.equal(trips[0].stopTimes[0].arrivalTime, '05:30:00');
    assert.ok(trips.every((t: any) => t.id.startsWith('WK-')));
    assert.ok(data.sunday.trips.every((t: any) => t.serviceId === 'SUNDAY'), 'Christmas runs the Sunday service');
  });

  it('stops near a point (by distance), on a route, by name ignoring accents; Equipment.transitStop', async () => {
    const res = await gql(mobility, `{
      near: stops(filter: { near: { lon: 4.3655, lat: 48.9575, radiusMeters: 600 } }, first: 3) { totalCount edges { cursor node { id } } }
      onL2: stops(filter: { routeId: "L2" }) { totalCount }
      _entities(representations: [{ __typename: "Equipment", id: "bs-chalons-agglo-00001" }, { __typename: "Equipment", id: "lp-chalons-00001" }]) { ... on Equipment { transitStop { id } } }
    }`);
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    assert.ok(res.data.near.totalCount >= 3);
    assert.ok(res.data.onL2.totalCount > 10);
    assert.deepEqual(res.data._entities.map((e: any) => e.transitStop?.id ?? null), ['BS-AGG-00001', null]);
    const next = await gql(mobility, `query($after: String) { stops(filter: { near: { lon: 4.3655, lat: 48.9575, radiusMeters: 600 } }, first: 3, after: $after) { edges { node { id } } } }`, {
      variables: { after: res.data.near.edges[2].cursor },
    });
    const firstIds = res.data.near.edges.map((e: any) => e.node.id);
    assert.ok(next.data.stops.edges.every((e: any) => !firstIds.includes(e.node.id)));
    const name = buildSeedGtfs().files['stops.txt'].split('\r\n')[1].split(',')[2];
    const byName = await gql(mobility, `query($n: String) { stops(filter: { name: $n }) { edges { node { name } } } }`, { variables: { n: name.toUpperCase() } });
    assert.ok(byName.data.stops.edges.some((e: any) => e.node.name === name));
    const bad = await gql(mobility, `{ stops(filter: { near: { lon: 4.36, lat: 200, radiusMeters: 10 } }) { totalCount } }`);
    assert.equal(bad.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.match(String(bad.errors?.[0].extensions?.field), /filter\.near\.lat/);
  });
});

describe('POST /mobility/gtfs refusals leave the network unchanged', () => {
  it('no token, an expired token, a citizen, an operator of another collectivity', async () => {
    const before = await networkState();
    const zip = writeZip(tinyFeed());
    assert.equal((await post(zip, { 'content-type': 'application/zip' })).status, 401);
    const expired = await signDevelopmentToken({ sub: 'old', roles: ['operator'], collectivities: ['chalons-agglo'], expiresIn: -3600 }, hub.config);
    const stale = await post(zip, zipHeaders(expired));
    assert.equal(stale.status, 401);
    assert.equal(stale.json.field, 'authorization');
    assert.equal((await post(zip, zipHeaders('not.a.token'))).status, 401);
    const citizen = await tokenFor(hub.config, ['citizen'], ['chalons-agglo']);
    assert.equal((await post(zip, zipHeaders(citizen))).status, 403);
    const other = await tokenFor(hub.config, ['operator'], ['chalons']);
    const refused = await post(zip, zipHeaders(other));
    assert.equal(refused.status, 403);
    assert.equal(refused.json.code, 'FORBIDDEN');
    assert.equal((await post(zip, zipHeaders(other), '?collectivityId=nowhere')).status, 400);
    assert.equal(await networkState(), before);
  });

  it('wrong content type 415, a body over the limit 413, not a zip 422, an empty body 400', async () => {
    const before = await networkState();
    const wrong = await post(writeZip(tinyFeed()), { 'content-type': 'text/csv', authorization: `Bearer ${operator}` });
    assert.equal(wrong.status, 415);
    assert.equal(wrong.json.field, 'content-type');
    const huge = await post(Buffer.alloc(51 * 1024 * 1024), zipHeaders(operator));
    assert.equal(huge.status, 413);
    const notZip = await post('stop_id,stop_name\n', zipHeaders(operator));
    assert.equal(notZip.status, 422);
    assert.equal(notZip.json.problems[0].code, 'NOT_A_ZIP');
    assert.equal((await post(Buffer.alloc(0), zipHeaders(operator))).status, 400);
    assert.equal(await networkState(), before);
  });

  it('an invalid feed: 422 with every problem by file, line and field, nothing imported', async () => {
    const before = await networkState();
    const feed: Record<string, string> = {
      ...tinyFeed(),
      'stop_times.txt': 'trip_id,arrival_time,departure_time,stop_id,stop_sequence\nT1,08:00:00,08:00:00,S1,1\nT1,07:05:00,07:05:30,S9,2\n',
      'calendar.txt': 'service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\nWK,1,1,1,1,1,0,0,20260231,20281231\n',
    };
    delete feed['agency.txt'];
    const res = await post(writeZip(feed), zipHeaders(operator));
    assert.equal(res.status, 422);
    assert.equal(res.json.code, 'INVALID_GTFS');
    const find = (file: string, line: number | null, field: string | null) => res.json.problems.find((p: any) => p.file === file && p.line === line && p.field === field);
    assert.ok(find('agency.txt', null, null), 'missing file');
    assert.ok(find('stop_times.txt', 3, 'stop_id'), 'unknown stop');
    assert.ok(find('stop_times.txt', 3, 'arrival_time'), 'time out of order');
    assert.ok(find('calendar.txt', 2, 'start_date'), 'invalid date');
    const dup = await post(writeZip({ ...tinyFeed(), 'trips.txt': tinyFeed()['trips.txt'] + 'R1,WK,T1,SH1,0,B1\n' }), zipHeaders(operator));
    assert.equal(dup.status, 422);
    assert.ok(dup.json.problems.some((p: any) => p.file === 'trips.txt' && p.line === 3 && p.field === 'trip_id' && p.code === 'DUPLICATE_ID'));
    const nul = await post(writeZip({ ...tinyFeed(), 'routes.txt': 'route_id,route_type\nR1\0,3\n' }), zipHeaders(operator));
    assert.equal(nul.status, 422);
    assert.ok(nul.json.problems.some((p: any) => p.file === 'routes.txt' && p.line === 2 && p.code === 'INVALID_ENCODING'));
    assert.equal(await networkState(), before);
  });
});

describe('POST /mobility/gtfs imports', () => {
  it('a dry run validates and writes nothing; an import registers new stops and replaces the network; the shipped feed restores it', async () => {
    const before = await networkState();
    const dry = await post(writeZip(tinyFeed()), zipHeaders(operator), '?dryRun=true');
    assert.equal(dry.status, 200, JSON.stringify(dry.json));
    assert.deepEqual(dry.json.stopsToRegister, ['S1', 'S2']);
    assert.equal(await networkState(), before);

    const res = await post(writeZip(tinyFeed()), zipHeaders(operator));
    assert.equal(res.status, 201, JSON.stringify(res.json));
    assert.deepEqual(res.json.stopsRegistered, ['S1', 'S2']);
    const { rows } = await pool.query(`SELECT s.stop_id, e.kind::text, e.collectivity_id FROM gtfs_stops s JOIN equipment e ON e.id = s.equipment_id ORDER BY 1`);
    assert.deepEqual(rows, [
      { stop_id: 'S1', kind: 'BUS_STOP', collectivity_id: 'chalons-agglo' },
      { stop_id: 'S2', kind: 'BUS_STOP', collectivity_id: 'chalons-agglo' },
    ]);
    const events = await pool.query(`SELECT payload FROM events WHERE topic = 'mobility.network' ORDER BY id DESC LIMIT 1`).catch(() => ({ rows: [] as any[] }));
    if (events.rows.length) assert.equal(events.rows[0].payload.feedId, res.json.feed.id);
    const feed = await gql(mobility, '{ gtfsFeed { id source counts { file rows } } routes { totalCount } }');
    assert.equal(feed.data.gtfsFeed.id, res.json.feed.id);
    assert.equal(feed.data.routes.totalCount, 1);

    // Again: the stops are found (case-insensitive reference), none registered twice.
    const lower = tinyFeed();
    lower['stops.txt'] = lower['stops.txt'].replace('S1,', 's1,');
    lower['stop_times.txt'] = lower['stop_times.txt'].replace(',S1,', ',s1,');
    const again = await post(writeZip(lower), zipHeaders(operator));
    assert.equal(again.status, 201, JSON.stringify(again.json));
    assert.deepEqual(again.json.stopsRegistered, []);

    const shipped = await post(writeZip(buildSeedGtfs().files), zipHeaders(operator));
    assert.equal(shipped.status, 201, JSON.stringify(shipped.json).slice(0, 500));
    assert.deepEqual(shipped.json.stopsRegistered, []);
    const restored = JSON.parse(await networkState());
    assert.equal(restored.st, JSON.parse(before).st);
  });

  it('two imports at once, read throughout: every read sees one whole network, never a mix, and the last import wins whole', async () => {
    const contents = async () => {
      const state = JSON.parse(await networkState());
      delete state.feed;
      return JSON.stringify(state);
    };
    const tiny = writeZip(tinyFeed());
    const shipped = writeZip(buildSeedGtfs().files);
    assert.equal((await post(tiny, zipHeaders(operator))).status, 201);
    const tinyState = await contents();
    assert.equal((await post(shipped, zipHeaders(operator))).status, 201);
    const shippedState = await contents();
    assert.notEqual(tinyState, shippedState);

    let reading = true;
    const seen = new Set<string>();
    const reader = (async () => {
      while (reading) seen.add(await contents());
    })();
    const answers = await Promise.all([post(shipped, zipHeaders(operator)), post(tiny, zipHeaders(operator)), post(shipped, zipHeaders(operator))]);
    reading = false;
    await reader;
    assert.deepEqual(answers.map((a) => a.status), [201, 201, 201], JSON.stringify(answers.map((a) => a.json)).slice(0, 500));
    for (const state of seen) assert.ok(state === tinyState || state === shippedState, `a read saw a mixed network: ${state}`);
    // Serialised by the import lock: the feed imported last (highest id) is the network in use.
    const { rows } = await pool.query<{ routes: number }>(`SELECT (counts->>'routes.txt')::int AS routes FROM gtfs_feeds ORDER BY id DESC LIMIT 1`);
    assert.equal(await contents(), rows[0].routes === 1 ? tinyState : shippedState);
    // Leave the shipped network in place.
    assert.equal((await post(shipped, zipHeaders(operator))).status, 201);
  });
});

