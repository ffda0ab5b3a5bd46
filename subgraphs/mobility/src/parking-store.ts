/**
 * Every SQL statement of parking, on its own tables only: `parking_facility_info` (tariffs,
 * hours, free minutes), `parking_occupancy` (each facility's last count) and `parking_bays`
 * (each bay sensor's last state). The facilities themselves (name, type, position, capacity) are
 * assets: the directory's (asset-directory.ts), never read here.
 */
import type pg from 'pg';
import type { OpeningHoursValue, ParkingTariffValue } from './types.js';

type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

/** A facility's stored occupancy (`parking_occupancy`). */
export interface OccupancyRow {
  equipmentId: string;
  collectivityId: string;
  capacity: number;
  occupied: number;
  reported: number;
  source: 'COUNTER' | 'SENSORS';
  status: 'OK' | 'OVER_CAPACITY';
  observedAt: Date;
}

/** A facility's stored tariffs and hours (`parking_facility_info`). */
export interface InfoRow {
  equipmentId: string;
  openingHours: OpeningHoursValue[];
  tariffs: ParkingTariffValue[];
  freeMinutes: number;
}

export interface FacilityState {
  occupancy: OccupancyRow | null;
  info: InfoRow | null;
}

const OCCUPANCY_COLUMNS = `o.equipment_id AS "equipmentId", o.collectivity_id AS "collectivityId", o.capacity, o.occupied,
  o.reported, o.source, o.status, o.observed_at AS "observedAt"`;

/** Occupancy and info of each facility of `ids` (one statement). */
export async function loadFacilityStates(db: Queryable, ids: readonly string[]): Promise<Map<string, FacilityState>> {
  const states = new Map<string, FacilityState>();
  if (ids.length === 0) return states;
  const { rows } = await db.query<{ id: string; o: OccupancyRow | null; i: InfoRow | null }>(
    `SELECT ids.id,
            CASE WHEN o.equipment_id IS NULL THEN NULL ELSE json_build_object(
              'equipmentId', o.equipment_id, 'collectivityId', o.collectivity_id, 'capacity', o.capacity,
              'occupied', o.occupied, 'reported', o.reported, 'source', o.source, 'status', o.status,
              'observedAt', o.observed_at) END AS o,
            CASE WHEN i.equipment_id IS NULL THEN NULL ELSE json_build_object(
              'equipmentId', i.equipment_id, 'openingHours', i.opening_hours, 'tariffs', i.tariffs,
              'freeMinutes', i.free_minutes) END AS i
       FROM unnest($1::text[]) AS ids(id)
       LEFT JOIN parking_occupancy o ON o.equipment_id = ids.id
       LEFT JOIN parking_facility_info i ON i.equipment_id = ids.id`,
    [ids],
  );
  for (const row of rows) {
    const occupancy = row.o ? { ...row.o, observedAt: new Date(row.o.observedAt as unknown as string) } : null;
    states.set(row.id, { occupancy, info: row.i });
  }
  return states;
}

/** The tariffs and hours of each facility of `ids` that has them. */
export async function loadInfos(db: Queryable, ids: readonly string[]): Promise<Map<string, InfoRow>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<InfoRow>(
    `SELECT equipment_id AS "equipmentId", opening_hours AS "openingHours", tariffs, free_minutes AS "freeMinutes"
       FROM parking_facility_info WHERE equipment_id = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((row) => [row.equipmentId, row]));
}

/** Locks the occupancy rows of `ids` for the consumer's transaction and returns them (the state before the change). */
export async function lockOccupancy(client: pg.PoolClient, ids: readonly string[]): Promise<Map<string, OccupancyRow>> {
  if (ids.length === 0) return new Map();
  const { rows } = await client.query<OccupancyRow>(
    `SELECT ${OCCUPANCY_COLUMNS} FROM parking_occupancy o WHERE o.equipment_id = ANY($1::text[]) ORDER BY o.equipment_id FOR UPDATE`,
    [ids],
  );
  return new Map(rows.map((row) => [row.equipmentId, row]));
}

/** What a count writes: `occupied` is already capped and `status` already decided by the caller. */
export interface OccupancyWrite {
  equipmentId: string;
  collectivityId: string;
  capacity: number;
  occupied: number;
  reported: number;
  source: 'COUNTER' | 'SENSORS';
  status: 'OK' | 'OVER_CAPACITY';
  observedAt: Date;
}

/**
 * Writes counts, each only over an older one: a counter's count strictly newer than the stored
 * one (an older count arriving late never overwrites a newer one), a sector's recount at least
 * as new (two bays of the same instant arrive in two events). Returns the rows written.
 */
export async function writeOccupancy(client: pg.PoolClient, writes: readonly OccupancyWrite[]): Promise<OccupancyRow[]> {
  if (writes.length === 0) return [];
  const { rows } = await client.query<OccupancyRow>(
    `INSERT INTO parking_occupancy AS o (equipment_id, collectivity_id, capacity, occupied, reported, source, status, observed_at, updated_at)
     SELECT * , now() FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[], $6::text[], $7::text[], $8::timestamptz[])
     ON CONFLICT (equipment_id) DO UPDATE
       SET collectivity_id = excluded.collectivity_id, capacity = excluded.capacity, occupied = excluded.occupied,
           reported = excluded.reported, source = excluded.source, status = excluded.status,
           observed_at = excluded.observed_at, updated_at = now()
       WHERE o.observed_at < excluded.observed_at
          OR (excluded.source = 'SENSORS' AND o.observed_at = excluded.observed_at)
     RETURNING ${OCCUPANCY_COLUMNS}`,
    [
      writes.map((w) => w.equipmentId),
      writes.map((w) => w.collectivityId),
      writes.map((w) => w.capacity),
      writes.map((w) => w.occupied),
      writes.map((w) => w.reported),
      writes.map((w) => w.source),
      writes.map((w) => w.status),
      writes.map((w) => w.observedAt),
    ],
  );
  return rows;
}

export interface BayWrite {
  sensorId: string;
  facilityId: string;
  occupied: boolean;
  observedAt: Date;
}

/** Writes bay states, each only over an older one; returns the facilities whose bays changed. */
export async function writeBays(client: pg.PoolClient, bays: readonly BayWrite[]): Promise<string[]> {
  if (bays.length === 0) return [];
  const { rows } = await client.query<{ facilityId: string }>(
    `WITH written AS (
       INSERT INTO parking_bays AS b (sensor_id, facility_id, occupied, observed_at)
       SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::timestamptz[])
       ON CONFLICT (sensor_id) DO UPDATE
         SET facility_id = excluded.facility_id, occupied = excluded.occupied, observed_at = excluded.observed_at
         WHERE b.observed_at < excluded.observed_at
       RETURNING facility_id)
     SELECT DISTINCT facility_id AS "facilityId" FROM written ORDER BY 1`,
    [bays.map((b) => b.sensorId), bays.map((b) => b.facilityId), bays.map((b) => b.occupied), bays.map((b) => b.observedAt)],
  );
  return rows.map((row) => row.facilityId);
}

/**
 * Each sector's occupied bays and newest bay time, counting only the bays whose sensor the
 * directory still has as a live (not decommissioned) child of that facility.
 */
export async function countBays(client: pg.PoolClient, facilityIds: readonly string[]): Promise<Map<string, { occupied: number; observedAt: Date }>> {
  if (facilityIds.length === 0) return new Map();
  const { rows } = await client.query<{ facilityId: string; occupied: number; observedAt: Date }>(
    `SELECT b.facility_id AS "facilityId", count(*) FILTER (WHERE b.occupied)::int AS occupied, max(b.observed_at) AS "observedAt"
       FROM parking_bays b
       JOIN mobility_assets a ON a.equipment_id = b.sensor_id AND a.kind = 'PARKING_SENSOR' AND a.status <> 'DECOMMISSIONED'
      WHERE b.facility_id = ANY($1::text[])
      GROUP BY b.facility_id`,
    [facilityIds],
  );
  return new Map(rows.map((row) => [row.facilityId, { occupied: row.occupied, observedAt: row.observedAt }]));
}

/** Sets the fields given (`undefined`: left as it is), creating the row with the defaults when there is none. */
export async function writeInfo(
  client: pg.PoolClient,
  equipmentId: string,
  collectivityId: string,
  change: { openingHours?: OpeningHoursValue[]; tariffs?: ParkingTariffValue[]; freeMinutes?: number },
  updatedBy: string,
): Promise<void> {
  await client.query(
    `INSERT INTO parking_facility_info AS i (equipment_id, collectivity_id, opening_hours, tariffs, free_minutes, updated_by, updated_at)
     VALUES ($1, $2, COALESCE($3::jsonb, '[]'), COALESCE($4::jsonb, '[]'), COALESCE($5::int, 0), $6, now())
     ON CONFLICT (equipment_id) DO UPDATE
       SET collectivity_id = excluded.collectivity_id,
           opening_hours = COALESCE($3::jsonb, i.opening_hours),
           tariffs = COALESCE($4::jsonb, i.tariffs),
           free_minutes = COALESCE($5::int, i.free_minutes),
           updated_by = excluded.updated_by, updated_at = now()`,
    [
      equipmentId,
      collectivityId,
      change.openingHours === undefined ? null : JSON.stringify(change.openingHours),
      change.tariffs === undefined ? null : JSON.stringify(change.tariffs),
      change.freeMinutes ?? null,
      updatedBy,
    ],
  );
}

/** Distance in metres (on the WGS84 spheroid, as `near` everywhere) of each facility of `ids` within the circle. */
export async function facilitiesWithin(
  db: Queryable,
  ids: readonly string[],
  near: { lon: number; lat: number; radiusMeters: number },
): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<{ id: string; distance: number }>(
    `SELECT equipment_id AS id, ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography) AS distance
       FROM mobility_assets
      WHERE equipment_id = ANY($1::text[]) AND geom IS NOT NULL
        AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, $4)`,
    [ids, near.lon, near.lat, near.radiusMeters],
  );
  return new Map(rows.map((row) => [row.id, row.distance]));
}
