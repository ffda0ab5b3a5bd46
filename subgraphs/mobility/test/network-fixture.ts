/**
 * A small network with a schedule known by heart, for the live-vehicle tests: line F1, four stops
 * A–B–C–D along a straight east–west line in Châlons (600 m apart, 1,800 m in all), every day of
 * the year, both ways, two blocks:
 *
 *   block F-B1: outbound A→D at every hour HH:00, inbound D→A at HH:20;
 *   block F-B2: outbound at HH:30, inbound at HH:50 (00:00 to 23:59).
 *
 * An outbound trip: A dep +0:00, B arr +2:00 dep +2:30 (a 30 s dwell), C arr/dep +4:30, D arr
 * +6:30. Inbound the same from D. Shapes have a point every 100 m. The stops are seeded BUS_STOP
 * assets (their references are the stop_ids), placed on the line.
 *
 * `installFixtureNetwork` replaces whatever network the database holds (the seed's) in one
 * transaction that publishes `mobility.network`, so that a running mobility reloads it; install
 * it before starting mobility to keep the seed's blocks out of the day's assignments.
 */
import type pg from 'pg';
import { publishEvent } from '@connecte/shared/events';
import { haversineM, type NetworkData } from '../src/network.js';
import { NETWORK_TOPIC, type StopTimeRow, type TripRow } from '../src/types.js';

export const FIXTURE_ROUTE = 'F1';
export const FIXTURE_BLOCKS = ['F-B1', 'F-B2'] as const;
export const FIXTURE_LAT = 48.956;
export const FIXTURE_LON0 = 4.35;
/** Metres per degree of longitude at the fixture's latitude (haversine, for placing points). */
const M_PER_DEG_LON = haversineM(FIXTURE_LON0, FIXTURE_LAT, FIXTURE_LON0 + 1, FIXTURE_LAT);
export const LINE_M = 1_800;
export const STOP_DISTANCES = [0, 600, 1_200, 1_800];
/** Offsets (seconds) from a trip's start: [arrival, departure] per stop. */
export const SCHEDULE: [number, number][] = [
  [0, 0],
  [120, 150],
  [270, 270],
  [390, 390],
];

/** The point `metres` east of the line's west end (A), `north` metres north of the line. */
export function pointAt(metres: number, north = 0): [number, number] {
  return [FIXTURE_LON0 + metres / M_PER_DEG_LON, FIXTURE_LAT + north / 111_195];
}

/** The point at `metres` along a trip of a direction (0: A→D, 1: D→A). */
export const alongTrip = (direction: 0 | 1, metres: number, north = 0) => pointAt(direction === 0 ? metres : LINE_M - metres, north);

const hhmm = (seconds: number) => `${String(Math.floor(seconds / 3600)).padStart(2, '0')}${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}`;

/** The trip id of a block's trip starting at `startSeconds` of the service day. */
export const fixtureTripId = (startSeconds: number, direction: 0 | 1) => `F1-${hhmm(startSeconds)}-${direction === 0 ? 'O' : 'I'}`;

/** The block and direction of the trip starting at a minute of the hour. */
export function fixtureTripAt(startSeconds: number): { tripId: string; blockId: string; direction: 0 | 1 } {
  const minute = Math.floor((startSeconds % 3600) / 60);
  const direction: 0 | 1 = minute === 0 || minute === 30 ? 0 : 1;
  const blockId = minute < 30 ? 'F-B1' : 'F-B2';
  return { tripId: fixtureTripId(startSeconds, direction), blockId, direction };
}

function shapeOf(direction: 0 | 1): { coordinates: [number, number][]; distances: number[] } {
  const coordinates: [number, number][] = [];
  for (let m = 0; m <= LINE_M; m += 100) coordinates.push(alongTrip(direction, m));
  const distances = [0];
  for (let i = 1; i < coordinates.length; i++) distances.push(distances[i - 1] + haversineM(...coordinates[i - 1], ...coordinates[i]));
  return { coordinates, distances };
}

/**
 * The fixture's rows; `stopIds`/`equipmentIds` name its four stops (A–D). In memory for pure tests
 * (any ids), in the database with seeded BUS_STOP assets.
 */
export function fixtureNetworkData(stopIds: string[] = ['FA', 'FB', 'FC', 'FD'], equipmentIds: string[] = stopIds): NetworkData {
  const shapes = ([0, 1] as const).map((direction) => {
    const { coordinates, distances } = shapeOf(direction);
    return { shapeId: `F1-${direction}`, coordinates, distances, lengthM: distances[distances.length - 1] };
  });
  const trips: TripRow[] = [];
  const stopTimes: StopTimeRow[] = [];
  for (let hour = 0; hour < 24; hour++) {
    for (const minute of [0, 20, 30, 50]) {
      const start = hour * 3600 + minute * 60;
      const { tripId, blockId, direction } = fixtureTripAt(start);
      const shape = shapes[direction];
      trips.push({ tripId, routeId: FIXTURE_ROUTE, serviceId: 'DAILY', shapeId: shape.shapeId, headsign: direction === 0 ? 'Fixture D' : 'Fixture A', shortName: null, directionId: direction, blockId });
      for (let k = 0; k < 4; k++) {
        const stop = direction === 0 ? k : 3 - k;
        // The stop's distance along this shape: the shape's own (geodesic) distance at that point.
        stopTimes.push({ tripId, stopSequence: k + 1, stopId: stopIds[stop], arrivalSeconds: start + SCHEDULE[k][0], departureSeconds: start + SCHEDULE[k][1], shapeDistTraveled: shape.distances[k * 6] });
      }
    }
  }
  return {
    feedId: null,
    collectivityId: 'chalons-agglo',
    routes: [{ routeId: FIXTURE_ROUTE, agencyId: 'FIX', agencyName: 'Fixture Transports', shortName: 'F1', longName: 'Fixture A – D', description: null, routeType: 3, color: '0055A4', textColor: 'FFFFFF', sortOrder: 1 }],
    stops: STOP_DISTANCES.map((metres, i) => {
      const [lon, lat] = pointAt(metres);
      return { stopId: stopIds[i], equipmentId: equipmentIds[i], code: null, name: `Fixture ${'ABCD'[i]}`, description: null, lon, lat, wheelchairBoarding: 1 };
    }),
    shapes,
    trips,
    stopTimes,
    calendar: [
      { serviceId: 'DAILY', days: [true, true, true, true, true, true, true], startDate: '2020-01-01', endDate: '2099-12-31' },
      { serviceId: 'EXTRA', days: [false, false, false, false, false, false, false], startDate: '2020-01-01', endDate: '2099-12-31' },
    ],
    calendarDates: [
      { serviceId: 'DAILY', date: '2030-05-01', exceptionType: 2 },
      { serviceId: 'EXTRA', date: '2030-05-01', exceptionType: 1 },
    ],
  };
}

export interface InstalledFixture {
  data: NetworkData;
  /** The four stops' ids (= their BUS_STOP references) and asset ids, A to D. */
  stopIds: string[];
  equipmentIds: string[];
}

/** Replaces the database's network with the fixture (and forgets the day's assignments), publishing `mobility.network`. */
export async function installFixtureNetwork(pool: pg.Pool): Promise<InstalledFixture> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: string; reference: string }>(
      `SELECT id, reference FROM equipment WHERE kind = 'BUS_STOP' AND collectivity_id = 'chalons-agglo' ORDER BY reference LIMIT 4`,
    );
    if (rows.length < 4) throw new Error('the seed has fewer than 4 bus stops in chalons-agglo');
    const stopIds = rows.map((row) => row.reference);
    const equipmentIds = rows.map((row) => row.id);
    const data = fixtureNetworkData(stopIds, equipmentIds);
    for (const table of ['gtfs_stop_times', 'gtfs_trips', 'gtfs_shapes', 'gtfs_calendar_dates', 'gtfs_calendar', 'gtfs_stops', 'gtfs_routes', 'gtfs_agencies', 'vehicle_assignments']) {
      await client.query(`DELETE FROM ${table}`);
    }
    const feed = await client.query<{ id: string }>(
      `INSERT INTO gtfs_feeds (collectivity_id, source, feed_version, sha256, imported_by, counts) VALUES ('chalons-agglo', 'test fixture', 'fixture-1', repeat('0', 64), 'test', '{}') RETURNING id::text`,
    );
    data.feedId = feed.rows[0].id;
    await client.query(`INSERT INTO gtfs_agencies (agency_id, name, url, timezone, lang) VALUES ('FIX', 'Fixture Transports', 'https://example.org', 'Europe/Paris', 'fr')`);
    for (const route of data.routes) {
      await client.query(
        `INSERT INTO gtfs_routes (route_id, agency_id, short_name, long_name, route_type, color, text_color, sort_order) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [route.routeId, route.agencyId, route.shortName, route.longName, route.routeType, route.color, route.textColor, route.sortOrder],
      );
    }
    for (const stop of data.stops) {
      await client.query(`INSERT INTO gtfs_stops (stop_id, equipment_id, name, geom, wheelchair_boarding) VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326), $6)`, [
        stop.stopId,
        stop.equipmentId,
        stop.name,
        stop.lon,
        stop.lat,
        stop.wheelchairBoarding,
      ]);
    }
    for (const shape of data.shapes) {
      await client.query(`INSERT INTO gtfs_shapes (shape_id, geom, distances, length_m) VALUES ($1, ST_SetSRID(ST_GeomFromGeoJSON($2), 4326), $3, $4)`, [
        shape.shapeId,
        JSON.stringify({ type: 'LineString', coordinates: shape.coordinates }),
        shape.distances,
        shape.lengthM,
      ]);
    }
    for (const row of data.calendar) {
      const [su, mo, tu, we, th, fr, sa] = row.days;
      await client.query(
        `INSERT INTO gtfs_calendar (service_id, monday, tuesday, wednesday, thursday, friday, saturday, sunday, start_date, end_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [row.serviceId, mo, tu, we, th, fr, sa, su, row.startDate, row.endDate],
      );
    }
    for (const row of data.calendarDates) {
      await client.query(`INSERT INTO gtfs_calendar_dates (service_id, date, exception_type) VALUES ($1, $2, $3)`, [row.serviceId, row.date, row.exceptionType]);
    }
    await client.query(
      `INSERT INTO gtfs_trips (trip_id, route_id, service_id, shape_id, headsign, direction_id, block_id)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[])`,
      [data.trips.map((t) => t.tripId), data.trips.map((t) => t.routeId), data.trips.map((t) => t.serviceId), data.trips.map((t) => t.shapeId), data.trips.map((t) => t.headsign), data.trips.map((t) => t.directionId), data.trips.map((t) => t.blockId)],
    );
    await client.query(
      `INSERT INTO gtfs_stop_times (trip_id, stop_sequence, stop_id, arrival_seconds, departure_seconds, shape_dist_traveled)
       SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::int[], $6::float8[])`,
      [
        data.stopTimes.map((s) => s.tripId),
        data.stopTimes.map((s) => s.stopSequence),
        data.stopTimes.map((s) => s.stopId),
        data.stopTimes.map((s) => s.arrivalSeconds),
        data.stopTimes.map((s) => s.departureSeconds),
        data.stopTimes.map((s) => s.shapeDistTraveled),
      ],
    );
    await publishEvent(client, { topic: NETWORK_TOPIC, collectivityId: 'chalons-agglo', payload: { feedId: data.feedId } });
    await client.query('COMMIT');
    return { data, stopIds, equipmentIds };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}
