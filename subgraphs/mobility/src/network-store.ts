/**
 * SQL of the network's queries (the gtfs_* tables, written by gtfs-write.ts). Pure data access:
 * network-service.ts batches these through DataLoaders and applies the arguments' rules.
 */
import type pg from 'pg';
import type { GtfsFeedRow, RouteRow, StopRow, StopTimeRow, TripRow } from './types.js';

type Queryable = Pick<pg.Pool, 'query'>;

const FEED_COLUMNS = `id::text, source, feed_version AS "feedVersion", sha256, imported_at AS "importedAt", counts, warnings,
  to_char(valid_from, 'YYYY-MM-DD') AS "validFrom", to_char(valid_to, 'YYYY-MM-DD') AS "validTo"`;

export async function loadCurrentFeed(db: Queryable): Promise<GtfsFeedRow | null> {
  const { rows } = await db.query<GtfsFeedRow>(`SELECT ${FEED_COLUMNS} FROM gtfs_feeds ORDER BY id DESC LIMIT 1`);
  return rows[0] ?? null;
}

const ROUTE_COLUMNS = `r.route_id AS "routeId", r.agency_id AS "agencyId", a.name AS "agencyName", r.short_name AS "shortName",
  r.long_name AS "longName", r.description, r.route_type AS "routeType", r.color, r.text_color AS "textColor", r.sort_order AS "sortOrder"`;
const ROUTE_ORDER = `coalesce(r.sort_order, 2147483647), coalesce(r.short_name, ''), r.route_id`;

/** The cursor key of a route in `listRoutes`' order. */
export const routeKey = (r: RouteRow) => JSON.stringify([r.sortOrder ?? 2147483647, r.shortName ?? '', r.routeId]);

export async function listRoutes(db: Queryable, after: string | null, limit: number): Promise<RouteRow[]> {
  const key = after ? (JSON.parse(after) as [number, string, string]) : null;
  const { rows } = await db.query<RouteRow>(
    `SELECT ${ROUTE_COLUMNS} FROM gtfs_routes r JOIN gtfs_agencies a USING (agency_id)
     WHERE $1::int IS NULL OR (${ROUTE_ORDER}) > ($1::int, $2::text, $3::text)
     ORDER BY ${ROUTE_ORDER} LIMIT $4`,
    [key?.[0] ?? null, key?.[1] ?? null, key?.[2] ?? null, limit + 1],
  );
  return rows;
}

export async function countRoutes(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM gtfs_routes');
  return rows[0].n;
}

export async function loadRoutes(db: Queryable, ids: readonly string[]): Promise<RouteRow[]> {
  const { rows } = await db.query<RouteRow>(`SELECT ${ROUTE_COLUMNS} FROM gtfs_routes r JOIN gtfs_agencies a USING (agency_id) WHERE r.route_id = ANY($1)`, [ids]);
  return rows;
}

const STOP_COLUMNS = `s.stop_id AS "stopId", s.equipment_id AS "equipmentId", s.code, s.name, s.description,
  ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.wheelchair_boarding AS "wheelchairBoarding"`;

export async function loadStops(db: Queryable, ids: readonly string[]): Promise<StopRow[]> {
  const { rows } = await db.query<StopRow>(`SELECT ${STOP_COLUMNS} FROM gtfs_stops s WHERE s.stop_id = ANY($1)`, [ids]);
  return rows;
}

export async function loadStopsByEquipment(db: Queryable, equipmentIds: readonly string[]): Promise<StopRow[]> {
  const { rows } = await db.query<StopRow>(`SELECT ${STOP_COLUMNS} FROM gtfs_stops s WHERE s.equipment_id = ANY($1)`, [equipmentIds]);
  return rows;
}

export interface StopCriteria {
  near: { lon: number; lat: number; radiusMeters: number } | null;
  routeId: string | null;
  name: string | null;
}

/** Accents and case folded (the stop names are French): used on both sides of `name`. */
const FOLD = (sql: string) => `translate(lower(${sql}), 'àáâäãåçèéêëìíîïñòóôöõùúûüýÿœæ', 'aaaaaaceeeeiiiinooooouuuuyyoa')`;

function stopWhere(criteria: StopCriteria, params: unknown[]): string {
  const where: string[] = [];
  if (criteria.near) {
    params.push(criteria.near.lon, criteria.near.lat, criteria.near.radiusMeters);
    where.push(`ST_DWithin(s.geom::geography, ST_SetSRID(ST_MakePoint($${params.length - 2}, $${params.length - 1}), 4326)::geography, $${params.length})`);
  }
  if (criteria.routeId) {
    params.push(criteria.routeId);
    where.push(`EXISTS (SELECT 1 FROM gtfs_stop_times st JOIN gtfs_trips t USING (trip_id) WHERE st.stop_id = s.stop_id AND t.route_id = $${params.length})`);
  }
  if (criteria.name) {
    params.push(`%${criteria.name.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`${FOLD('s.name')} LIKE ${FOLD(`$${params.length}`)}`);
  }
  return where.length ? `WHERE ${where.join(' AND ')}` : '';
}

export type StopListRow = StopRow & { distance: number | null };

/** Ordered by name then stop_id, or by distance then stop_id with `near`; cursor key `[name|distance, stopId]`. */
export async function listStops(db: Queryable, criteria: StopCriteria, after: [string | number, string] | null, limit: number): Promise<StopListRow[]> {
  const params: unknown[] = [];
  const where = stopWhere(criteria, params);
  const distance = criteria.near ? `ST_Distance(s.geom::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography)` : 'NULL::float8';
  const orderKey = criteria.near ? distance : 's.name';
  let afterSql = '';
  if (after) {
    params.push(after[0], after[1]);
    afterSql = `${where ? 'AND' : 'WHERE'} (${orderKey}, s.stop_id) > ($${params.length - 1}${criteria.near ? '::float8' : '::text'}, $${params.length}::text)`;
  }
  params.push(limit + 1);
  const { rows } = await db.query<StopListRow>(
    `SELECT ${STOP_COLUMNS}, ${distance} AS distance FROM gtfs_stops s ${where} ${afterSql} ORDER BY ${orderKey}, s.stop_id LIMIT $${params.length}`,
    params,
  );
  return rows;
}

export async function countStops(db: Queryable, criteria: StopCriteria): Promise<number> {
  const params: unknown[] = [];
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM gtfs_stops s ${stopWhere(criteria, params)}`, params);
  return rows[0].n;
}

/** Routes serving each stop. */
export async function loadRouteIdsOfStops(db: Queryable, stopIds: readonly string[]): Promise<{ stopId: string; routeId: string }[]> {
  const { rows } = await db.query<{ stopId: string; routeId: string }>(
    `SELECT DISTINCT st.stop_id AS "stopId", t.route_id AS "routeId"
       FROM gtfs_stop_times st JOIN gtfs_trips t USING (trip_id) WHERE st.stop_id = ANY($1)`,
    [stopIds],
  );
  return rows;
}

/** Each route's stops in the order of its longest trip of each direction (direction 0 first), without repeats. */
export async function loadStopIdsOfRoutes(db: Queryable, routeIds: readonly string[]): Promise<{ routeId: string; stopIds: string[] }[]> {
  const { rows } = await db.query<{ routeId: string; stopIds: string[] }>(
    `WITH longest AS (
       SELECT DISTINCT ON (t.route_id, coalesce(t.direction_id, 0)) t.route_id, t.trip_id, coalesce(t.direction_id, 0) AS dir
         FROM gtfs_trips t JOIN LATERAL (SELECT count(*) AS n FROM gtfs_stop_times st WHERE st.trip_id = t.trip_id) c ON true
        WHERE t.route_id = ANY($1)
        ORDER BY t.route_id, coalesce(t.direction_id, 0), c.n DESC, t.trip_id)
     SELECT l.route_id AS "routeId", array_agg(st.stop_id ORDER BY l.dir, st.stop_sequence) AS "stopIds"
       FROM longest l JOIN gtfs_stop_times st USING (trip_id) GROUP BY l.route_id`,
    [routeIds],
  );
  return rows.map((r) => ({ routeId: r.routeId, stopIds: [...new Set(r.stopIds)] }));
}

/** The distinct shapes of each route's trips. */
export async function loadShapeIdsOfRoutes(db: Queryable, routeIds: readonly string[]): Promise<{ routeId: string; shapeId: string }[]> {
  const { rows } = await db.query<{ routeId: string; shapeId: string }>(
    `SELECT DISTINCT route_id AS "routeId", shape_id AS "shapeId" FROM gtfs_trips WHERE route_id = ANY($1) ORDER BY 1, 2`,
    [routeIds],
  );
  return rows;
}

export async function loadShapes(db: Queryable, ids: readonly string[]): Promise<{ shapeId: string; coordinates: [number, number][] }[]> {
  const { rows } = await db.query<{ shapeId: string; geojson: string }>(`SELECT shape_id AS "shapeId", ST_AsGeoJSON(geom) AS geojson FROM gtfs_shapes WHERE shape_id = ANY($1)`, [ids]);
  return rows.map((r) => ({ shapeId: r.shapeId, coordinates: (JSON.parse(r.geojson) as { coordinates: [number, number][] }).coordinates }));
}

const TRIP_COLUMNS = `t.trip_id AS "tripId", t.route_id AS "routeId", t.service_id AS "serviceId", t.shape_id AS "shapeId", t.headsign,
  t.short_name AS "shortName", t.direction_id AS "directionId", t.block_id AS "blockId"`;

export async function loadTrips(db: Queryable, ids: readonly string[]): Promise<TripRow[]> {
  const { rows } = await db.query<TripRow>(`SELECT ${TRIP_COLUMNS} FROM gtfs_trips t WHERE t.trip_id = ANY($1)`, [ids]);
  return rows;
}

/** SQL: the service_ids running on the date `$n` (calendar, plus added dates, minus removed ones). */
export const activeServicesSql = (n: number) => `(
  SELECT c.service_id FROM gtfs_calendar c
   WHERE $${n}::date BETWEEN c.start_date AND c.end_date
     AND (ARRAY[c.monday, c.tuesday, c.wednesday, c.thursday, c.friday, c.saturday, c.sunday])[extract(isodow FROM $${n}::date)::int]
  UNION SELECT d.service_id FROM gtfs_calendar_dates d WHERE d.date = $${n}::date AND d.exception_type = 1
  EXCEPT SELECT d.service_id FROM gtfs_calendar_dates d WHERE d.date = $${n}::date AND d.exception_type = 2)`;

/** A route's trips running on a service day, by first departure. */
export async function listTripsOfRoute(db: Queryable, routeId: string, serviceDate: string, directionId: number | null): Promise<TripRow[]> {
  const { rows } = await db.query<TripRow>(
    `SELECT ${TRIP_COLUMNS} FROM gtfs_trips t
       JOIN LATERAL (SELECT min(departure_seconds) AS first FROM gtfs_stop_times st WHERE st.trip_id = t.trip_id) f ON true
      WHERE t.route_id = $1 AND t.service_id IN ${activeServicesSql(2)} AND ($3::int IS NULL OR t.direction_id = $3)
      ORDER BY f.first, t.trip_id`,
    [routeId, serviceDate, directionId],
  );
  return rows;
}

export async function loadStopTimes(db: Queryable, tripIds: readonly string[]): Promise<StopTimeRow[]> {
  const { rows } = await db.query<StopTimeRow>(
    `SELECT trip_id AS "tripId", stop_sequence AS "stopSequence", stop_id AS "stopId", arrival_seconds AS "arrivalSeconds",
            departure_seconds AS "departureSeconds", shape_dist_traveled AS "shapeDistTraveled"
       FROM gtfs_stop_times WHERE trip_id = ANY($1) ORDER BY trip_id, stop_sequence`,
    [tripIds],
  );
  return rows;
}
