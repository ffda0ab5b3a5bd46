/**
 * The GTFS-Realtime feeds, decoded with the official proto as a consumer would: full-dataset
 * headers (2.0, FULL_DATASET, a timestamp no older than any entity's), entities from the buses'
 * states and the interventions that affect the network, every trip, route and stop id present in
 * the static GTFS the hub serves, the JSON mapping equal to the protobuf, bad parameters named,
 * versions moving with the data and header timestamps never going back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { parseGtfs } from '../../../subgraphs/mobility/src/gtfs-parse.js';
import { validateGtfs } from '../../../subgraphs/mobility/src/gtfs-validate.js';
import { rawRequest, serveOpendata, type ServedOpendata } from '../../test/serve.js';
import { QueryParameterError } from '../parameters.js';
import { FeedMessage, feedMessageJson, LIVE_MAX_AGE_SECONDS, type RealtimeFeed, type RealtimeVersion } from './gtfs-rt.js';
import { gtfsRtAlerts } from './gtfs-rt-alerts.js';
import { gtfsRtTripUpdates } from './gtfs-rt-trip-updates.js';
import { gtfsRtVehiclePositions } from './gtfs-rt-vehicle-positions.js';
import { gtfsStatic } from './gtfs-static.js';

type Json = any;

describe('open-data feeds: GTFS-Realtime', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;
  let buses: string[];
  let staticIds: { trips: Map<string, { routeId: string; directionId: number | null }>; routes: Set<string>; stops: Set<string>; stopTimes: Map<string, Map<number, string>> };

  const inSnapshot = async <T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } finally {
      client.release();
    }
  };
  const decoded = (feed: RealtimeFeed) =>
    inSnapshot(async (client) => {
      const version = (await feed.version(client, feed.parse(new URLSearchParams()))) as RealtimeVersion;
      const bytes = (await feed.render(client, { format: 'protobuf' }, version)) as Uint8Array;
      const json = JSON.parse((await feed.render(client, { format: 'json' }, version)) as string);
      return { version, bytes, message: FeedMessage.decode(bytes).toJSON() as Json, json };
    });

  /** A state for `bus` on `trip` (or none), observed `ageS` seconds ago, predicting its next `ahead` stops. */
  async function putState(bus: string, trip: string | null, ageS: number, ahead = 3) {
    const stopTimes = trip ? [...(staticIds.stopTimes.get(trip) ?? new Map([[1, 'NOPE']])).entries()] : [];
    const predictions = stopTimes.slice(1, 1 + ahead).map(([seq], i) => [seq, Math.floor(Date.now() / 1000) + 60 * (i + 1)]);
    const [seq, stop] = stopTimes[0] ?? [null, null];
    await pool.query(
      `INSERT INTO vehicle_states (equipment_id, collectivity_id, observed_at, geom, speed_mps, bearing, service_date, trip_id, route_id,
                                   shape_dist_m, delay_seconds, current_status, stop_sequence, stop_id, predictions, updated_at)
       VALUES ($1, 'chalons-agglo', now() - make_interval(secs => $2), ST_SetSRID(ST_MakePoint(4.3647, 48.9566), 4326), 7.5, 370, current_date,
               $3, $4, 120, 95, $5, $6, $7, $8::jsonb, now())
       ON CONFLICT (equipment_id) DO UPDATE SET observed_at = EXCLUDED.observed_at, trip_id = EXCLUDED.trip_id, route_id = EXCLUDED.route_id,
              current_status = EXCLUDED.current_status, stop_sequence = EXCLUDED.stop_sequence, stop_id = EXCLUDED.stop_id,
              predictions = EXCLUDED.predictions, updated_at = now()`,
      [bus, ageS, trip, trip ? (staticIds.trips.get(trip)?.routeId ?? 'L1') : null, trip ? 'IN_TRANSIT_TO' : 'NOT_IN_SERVICE', trip ? seq : null, trip ? stop : null, JSON.stringify(predictions)],
    );
  }

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    // The static feed as served: the ids every real-time entity must use.
    const zip = await inSnapshot(async (client) => gtfsStatic.render(client, {}, await gtfsStatic.version(client, {})));
    const { network } = validateGtfs(parseGtfs(zip as Buffer));
    assert.ok(network);
    const stopTimes = new Map<string, Map<number, string>>();
    for (const st of network.stopTimes) {
      if (!stopTimes.has(st.tripId)) stopTimes.set(st.tripId, new Map());
      stopTimes.get(st.tripId)!.set(st.stopSequence, st.stopId);
    }
    staticIds = {
      trips: new Map(network.trips.map((t) => [t.tripId, { routeId: t.routeId, directionId: t.directionId ?? null }])),
      routes: new Set(network.routes.map((r) => r.routeId)),
      stops: new Set(network.stops.map((s) => s.stopId)),
      stopTimes,
    };
    buses = (await pool.query<{ id: string }>(`SELECT equipment_id AS id FROM mobility_assets WHERE kind = 'BUS' AND status <> 'DECOMMISSIONED' ORDER BY equipment_id LIMIT 5`)).rows.map((r) => r.id);
    assert.equal(buses.length, 5);
    const trips = [...staticIds.trips.keys()].sort();
    await putState(buses[0], trips[0], 5);
    await putState(buses[1], trips[1], 20);
    await putState(buses[2], null, 3); // not in service
    await putState(buses[3], trips[2], 600); // silent for 10 minutes: not published
    await putState(buses[4], 'NOT-A-TRIP', 4); // a trip the network no longer has: published without it
    served = await serveOpendata({ pool, feeds: [gtfsStatic, gtfsRtVehiclePositions, gtfsRtTripUpdates, gtfsRtAlerts] });
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it('reads format=pb|protobuf|json and nothing else, each error naming the parameter', () => {
    const parse = (q: string) => gtfsRtVehiclePositions.parse(new URLSearchParams(q));
    assert.equal(JSON.stringify(parse('')), JSON.stringify(parse('format=pb')));
    assert.deepEqual(parse('format=protobuf'), { format: 'protobuf' });
    assert.deepEqual(parse('format=json'), { format: 'json' });
    for (const [query, field] of [['format=xml', 'format'], ['format=json&format=pb', 'format'], ['route=L1', 'route']]) {
      assert.throws(() => parse(query), (e: unknown) => e instanceof QueryParameterError && e.field === field, query);
    }
  });

  it('publishes the buses heard from within 90 s, with trip, route and stop ids of the static feed', async () => {
    const { message, json, version } = await decoded(gtfsRtVehiclePositions);
    assert.deepEqual(message.header, { gtfsRealtimeVersion: '2.0', incrementality: 'FULL_DATASET', timestamp: String(version.headerTimestamp) });
    assert.deepEqual(json, message, 'the JSON mapping is the protobuf');
    const ids = message.entity.map((e: Json) => e.id);
    assert.deepEqual(ids, [buses[0], buses[1], buses[2], buses[4]].sort());
    const header = Number(message.header.timestamp);
    assert.ok(Math.abs(header - Date.now() / 1000) < 60, 'a current header timestamp');
    for (const { vehicle } of message.entity) {
      assert.ok(Number(vehicle.timestamp) <= header, 'E012: no entity newer than the header');
      assert.ok(Math.abs(vehicle.position.latitude - 48.9566) < 1e-4 && Math.abs(vehicle.position.longitude - 4.3647) < 1e-4);
      assert.ok(vehicle.position.bearing >= 0 && vehicle.position.bearing < 360, 'E027');
      assert.equal(vehicle.vehicle.id, vehicle.vehicle.id.trim());
      assert.equal(vehicle.vehicle.licensePlate, undefined);
      if (!vehicle.trip) continue;
      const trip = staticIds.trips.get(vehicle.trip.tripId);
      assert.ok(trip, `trip ${vehicle.trip.tripId} is in trips.txt`);
      assert.equal(vehicle.trip.routeId, trip.routeId);
      assert.ok(staticIds.routes.has(vehicle.trip.routeId));
      assert.ok(staticIds.stops.has(vehicle.stopId), `stop ${vehicle.stopId} is in stops.txt`);
      assert.equal(staticIds.stopTimes.get(vehicle.trip.tripId)!.get(vehicle.currentStopSequence), vehicle.stopId);
      assert.match(vehicle.trip.startDate, /^\d{8}$/);
      assert.match(vehicle.trip.startTime, /^\d{2}:\d{2}:\d{2}$/);
      assert.equal(vehicle.currentStatus, 'IN_TRANSIT_TO');
    }
    const withTrips = message.entity.filter((e: Json) => e.vehicle.trip).map((e: Json) => e.id);
    assert.deepEqual(withTrips, [buses[0], buses[1]].sort(), 'not in service, or on a trip the network lacks: no trip');
    const fleet = (await pool.query(`SELECT details->>'fleetNumber' AS label FROM mobility_assets WHERE equipment_id = $1`, [buses[0]])).rows[0].label;
    assert.equal(message.entity.find((e: Json) => e.id === buses[0]).vehicle.vehicle.label, fleet);
  });

  it('publishes each running trip with its predicted arrivals, in stop order, at stops of its stop_times', async () => {
    const { message, json } = await decoded(gtfsRtTripUpdates);
    assert.equal(message.header.incrementality, 'FULL_DATASET');
    assert.deepEqual(json, message);
    assert.equal(message.entity.length, 2);
    for (const { id, tripUpdate } of message.entity) {
      assert.equal(id, tripUpdate.trip.tripId);
      const stopTimes = staticIds.stopTimes.get(tripUpdate.trip.tripId)!;
      assert.ok(stopTimes, 'E003');
      assert.equal(tripUpdate.trip.routeId, staticIds.trips.get(tripUpdate.trip.tripId)!.routeId, 'E031');
      assert.equal(tripUpdate.stopTimeUpdate.length, 3);
      let previous = { seq: -1, time: 0 };
      for (const update of tripUpdate.stopTimeUpdate) {
        assert.equal(stopTimes.get(update.stopSequence), update.stopId, 'E045: sequence and stop agree with stop_times.txt');
        assert.ok(update.stopSequence > previous.seq, 'E002');
        assert.ok(Number(update.arrival.time) > previous.time, 'E022');
        previous = { seq: update.stopSequence, time: Number(update.arrival.time) };
      }
      assert.equal(tripUpdate.delay, 95);
      assert.ok(Number(tripUpdate.timestamp) <= Number(message.header.timestamp));
    }
  });

  it('moves its version when a state is written or goes stale, and its header timestamp never goes back', async () => {
    const first = await decoded(gtfsRtVehiclePositions);
    assert.equal((await decoded(gtfsRtVehiclePositions)).version.tag, first.version.tag, 'nothing changed');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await putState(buses[0], [...staticIds.trips.keys()].sort()[0], 0);
    const moved = await decoded(gtfsRtVehiclePositions);
    assert.notEqual(moved.version.tag, first.version.tag);
    assert.ok(moved.version.headerTimestamp > first.version.headerTimestamp, 'E017: new content, new timestamp');
    // The bus falls silent: once 90 s have passed it leaves the feed, and the timestamp is when it left.
    await pool.query(`UPDATE vehicle_states SET observed_at = now() - interval '91 seconds', updated_at = now() - interval '91 seconds' WHERE equipment_id = $1`, [buses[1]]);
    const stale = await decoded(gtfsRtVehiclePositions);
    assert.ok(!stale.message.entity.some((e: Json) => e.id === buses[1]));
    assert.ok(stale.version.headerTimestamp >= moved.version.headerTimestamp, 'E018');
    const trips = await decoded(gtfsRtTripUpdates);
    assert.equal(trips.version.headerTimestamp, stale.version.headerTimestamp, 'positions and trip updates: one timestamp');
  });

  it('publishes the open interventions that name stops or routes of the network, with the facts only', async () => {
    const insert = (values: { status: string; origin?: string; start: string | null; end: string | null; stops: string[]; routes: string[]; title: string }) =>
      pool.query<{ id: string }>(
        `INSERT INTO interventions (collectivity_id, origin, title, description, status, scheduled_start, scheduled_end, stop_ids, route_ids, assignee_sub)
         VALUES ('chalons-agglo', $1, $2, 'Call Jean Dupont on 06 12 34 56 78', $3, now() + $4::interval, now() + $5::interval, $6, $7, 'agent-sub-1') RETURNING id::text`,
        [values.origin ?? 'PLANNED', values.title, values.status, values.start, values.end, values.stops, values.routes],
      );
    const stops = [...staticIds.stops].sort();
    const routes = [...staticIds.routes].sort();
    const open = (await insert({ status: 'PLANNED', start: '2 days', end: '3 days', stops: [stops[0].toLowerCase(), 'NOPE-1'], routes: [routes[0], 'SITAC-9'], title: 'Secret title at 12 rue X' })).rows[0].id;
    await insert({ status: 'DONE', start: '-3 days', end: '-2 days', stops: [stops[1]], routes: [], title: 'done' });
    await insert({ status: 'IN_PROGRESS', start: '-3 days', end: '-1 hour', stops: [stops[2]], routes: [], title: 'past its end' });
    await insert({ status: 'PLANNED', start: '1 day', end: '2 days', stops: ['NOPE-2'], routes: ['SITAC-3'], title: 'nothing of the network' });
    const { message, json } = await decoded(gtfsRtAlerts);
    assert.deepEqual(json, message);
    assert.equal(message.header.gtfsRealtimeVersion, '2.0');
    const ours = message.entity.filter((e: Json) => e.id === `intervention-${open}`);
    assert.equal(ours.length, 1);
    const { alert } = ours[0];
    assert.deepEqual(alert.informedEntity, [{ stopId: stops[0] }, { routeId: routes[0] }], 'only ids of the static feed, in its spelling');
    assert.equal(alert.cause, 'CONSTRUCTION');
    assert.equal(alert.activePeriod.length, 1);
    assert.ok(Number(alert.activePeriod[0].start) < Number(alert.activePeriod[0].end));
    assert.equal(alert.headerText.translation[0].language, 'fr');
    assert.match(alert.descriptionText.translation[0].text, /Arrêt concerné/);
    for (const entity of message.entity) {
      assert.ok(entity.alert.informedEntity.length > 0, 'E032');
      for (const selector of entity.alert.informedEntity) {
        assert.ok(selector.stopId ? staticIds.stops.has(selector.stopId) : staticIds.routes.has(selector.routeId), 'E011 / E004');
      }
    }
    const text = JSON.stringify(message);
    for (const leak of ['Secret title', 'Dupont', '06 12 34 56 78', 'agent-sub-1', 'done', 'past its end', 'nothing of the network']) {
      assert.ok(!text.includes(leak), `does not publish ${leak}`);
    }
  });

  it('serves the protobuf and its JSON over HTTP, 10 s fresh, with ETags and 304s; a bad format is a 400 naming it', async () => {
    const pb = await rawRequest(`${served.base}/opendata/gtfs-rt/vehicle-positions.pb`);
    assert.equal(pb.status, 200);
    assert.equal(pb.headers['content-type'], 'application/x-protobuf');
    assert.equal(pb.headers['cache-control'], `public, max-age=${LIVE_MAX_AGE_SECONDS}`);
    const message = FeedMessage.decode(pb.body).toJSON() as Json;
    assert.equal(message.header.incrementality, 'FULL_DATASET');
    assert.ok(message.entity.length > 0);
    const again = await rawRequest(`${served.base}/opendata/gtfs-rt/vehicle-positions.pb`, { 'if-none-match': pb.headers.etag as string });
    assert.equal(again.status, 304);
    const json = await rawRequest(`${served.base}/opendata/gtfs-rt/vehicle-positions.pb?format=json`);
    assert.equal(json.status, 200);
    assert.equal(json.headers['content-type'], 'application/json; charset=utf-8');
    assert.notEqual(json.headers.etag, pb.headers.etag);
    assert.deepEqual(JSON.parse(json.body.toString('utf8')), feedMessageJson(pb.body));
    for (const path of ['trip-updates.pb', 'alerts.pb']) {
      const res = await rawRequest(`${served.base}/opendata/gtfs-rt/${path}`);
      assert.equal(res.status, 200, path);
      assert.equal(FeedMessage.decode(res.body).toJSON().header.gtfsRealtimeVersion, '2.0');
    }
    assert.match((await rawRequest(`${served.base}/opendata/gtfs-rt/alerts.pb`)).headers['cache-control'] as string, /max-age=60$/);
    const zip = await rawRequest(`${served.base}/opendata/gtfs/gtfs.zip`);
    assert.equal(zip.status, 200);
    assert.equal(zip.headers['content-type'], 'application/zip');
    const bad = await rawRequest(`${served.base}/opendata/gtfs-rt/trip-updates.pb?format=xml`);
    assert.equal(bad.status, 400);
    const problem = JSON.parse(bad.body.toString('utf8'));
    assert.equal(problem.code, 'BAD_USER_INPUT');
    assert.equal(problem.field, 'format');
  });
});
