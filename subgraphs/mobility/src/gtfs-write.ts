/**
 * Writing a validated network: in the caller's transaction, under the import's advisory lock,
 * the gtfs_* tables are emptied and refilled, the feed is recorded in `gtfs_feeds` and
 * `mobility.network` is published (every instance reloads its network on it). Used by the
 * importer (gtfs-import.ts) and by the seed (prisma/seed/index.ts), so both write the same way.
 */
import type pg from 'pg';
import { publishEvents } from '@connecte/shared/events';
import { NETWORK_TOPIC } from './types.js';
import type { GtfsNetwork } from './gtfs-validate.js';

/** Held for the whole import transaction: two imports never interleave. */
export const GTFS_IMPORT_LOCK = 72707390;

export interface NetworkWriteMeta {
  collectivityId: string;
  source: string;
  sha256: string;
  importedBy: string;
  warnings: string[];
}

const BATCH = 10_000;

async function insertBatches<T>(client: pg.PoolClient, rows: T[], sql: string, columns: ((r: T) => unknown)[]): Promise<void> {
  for (let start = 0; start < rows.length; start += BATCH) {
    const batch = rows.slice(start, start + BATCH);
    await client.query(sql, columns.map((c) => batch.map(c)));
  }
}

/**
 * Replaces the network with `network`; `stopEquipment` gives each stop_id its BUS_STOP asset id
 * (every stop must have one). Returns the new feed's id.
 */
export async function writeNetwork(client: pg.PoolClient, network: GtfsNetwork, stopEquipment: Map<string, string>, meta: NetworkWriteMeta): Promise<string> {
  for (const s of network.stops) if (!stopEquipment.has(s.stopId)) throw new Error(`gtfs: stop ${s.stopId} has no BUS_STOP asset`);
  await client.query('SELECT pg_advisory_xact_lock($1)', [GTFS_IMPORT_LOCK]);
  // DELETE, not TRUNCATE: readers (the network cache, the assignment worker, queries) keep
  // reading the old network until the commit instead of queueing behind an exclusive lock (and
  // deadlocking with a reader that takes its tables in another order). Children first.
  for (const table of ['gtfs_stop_times', 'gtfs_trips', 'gtfs_shapes', 'gtfs_calendar_dates', 'gtfs_calendar', 'gtfs_stops', 'gtfs_routes', 'gtfs_agencies']) {
    await client.query(`DELETE FROM ${table}`);
  }
  await insertBatches(
    client,
    network.agencies,
    `INSERT INTO gtfs_agencies (agency_id, name, url, timezone, lang, phone)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])`,
    [(a) => a.agencyId, (a) => a.name, (a) => a.url, (a) => a.timezone, (a) => a.lang, (a) => a.phone],
  );
  await insertBatches(
    client,
    network.routes,
    `INSERT INTO gtfs_routes (route_id, agency_id, short_name, long_name, description, route_type, color, text_color, sort_order)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::int[])`,
    [(r) => r.routeId, (r) => r.agencyId, (r) => r.shortName, (r) => r.longName, (r) => r.description, (r) => r.routeType, (r) => r.color, (r) => r.textColor, (r) => r.sortOrder],
  );
  await insertBatches(
    client,
    network.stops,
    `INSERT INTO gtfs_stops (stop_id, equipment_id, code, name, description, geom, wheelchair_boarding)
     SELECT id, eq, code, name, descr, ST_SetSRID(ST_MakePoint(lon, lat), 4326), wb
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[], $8::int[])
       AS t(id, eq, code, name, descr, lon, lat, wb)`,
    [(s) => s.stopId, (s) => stopEquipment.get(s.stopId), (s) => s.code, (s) => s.name, (s) => s.description, (s) => s.lon, (s) => s.lat, (s) => s.wheelchairBoarding],
  );
  await insertBatches(
    client,
    network.calendar,
    `INSERT INTO gtfs_calendar (service_id, monday, tuesday, wednesday, thursday, friday, saturday, sunday, start_date, end_date)
     SELECT * FROM unnest($1::text[], $2::bool[], $3::bool[], $4::bool[], $5::bool[], $6::bool[], $7::bool[], $8::bool[], $9::date[], $10::date[])`,
    [(c) => c.serviceId, ...[0, 1, 2, 3, 4, 5, 6].map((d) => (c: (typeof network.calendar)[number]) => c.days[d]), (c) => c.startDate, (c) => c.endDate],
  );
  await insertBatches(
    client,
    network.calendarDates,
    `INSERT INTO gtfs_calendar_dates (service_id, date, exception_type) SELECT * FROM unnest($1::text[], $2::date[], $3::int[])`,
    [(c) => c.serviceId, (c) => c.date, (c) => c.exceptionType],
  );
  // One row per shape: its line as WKT, and the distances as a Postgres array literal.
  await insertBatches(
    client,
    network.shapes,
    `INSERT INTO gtfs_shapes (shape_id, geom, distances, length_m)
     SELECT id, ST_GeomFromText(wkt, 4326), d::float8[], len
     FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS t(id, wkt, d, len)`,
    [
      (s) => s.shapeId,
      (s) => `LINESTRING(${s.coordinates.map((c) => `${c[0]} ${c[1]}`).join(',')})`,
      (s) => `{${s.distances.join(',')}}`,
      (s) => s.lengthM,
    ],
  );
  await insertBatches(
    client,
    network.trips,
    `INSERT INTO gtfs_trips (trip_id, route_id, service_id, shape_id, headsign, short_name, direction_id, block_id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[], $8::text[])`,
    [(t) => t.tripId, (t) => t.routeId, (t) => t.serviceId, (t) => t.shapeId, (t) => t.headsign, (t) => t.shortName, (t) => t.directionId, (t) => t.blockId],
  );
  await insertBatches(
    client,
    network.stopTimes,
    `INSERT INTO gtfs_stop_times (trip_id, stop_sequence, stop_id, arrival_seconds, departure_seconds, shape_dist_traveled, timepoint)
     SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::int[], $5::int[], $6::float8[], $7::bool[])`,
    [(s) => s.tripId, (s) => s.stopSequence, (s) => s.stopId, (s) => s.arrivalSeconds, (s) => s.departureSeconds, (s) => s.shapeDistTraveled, (s) => s.timepoint],
  );
  const { rows } = await client.query<{ id: string }>(
    `INSERT INTO gtfs_feeds (collectivity_id, source, feed_version, sha256, imported_by, counts, warnings, valid_from, valid_to)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id::text`,
    [
      meta.collectivityId,
      meta.source,
      network.feedVersion,
      meta.sha256,
      meta.importedBy,
      JSON.stringify(network.counts),
      JSON.stringify(meta.warnings),
      network.validFrom,
      network.validTo,
    ],
  );
  const feedId = rows[0].id;
  await publishEvents(client, [{ topic: NETWORK_TOPIC, collectivityId: meta.collectivityId, payload: { feedId } }]);
  return feedId;
}
