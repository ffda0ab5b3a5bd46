/**
 * GTFS-Realtime vehicle positions of Châlons Agglo's buses, from the `opendata_vehicle_positions`
 * view the mobility domain publishes: every bus heard from within the last 90 s, with the trip it
 * runs (ids of the static feed `gtfs/gtfs.zip`), where it is, its stop status. A bus not running a
 * trip is published without one.
 */
import type pg from 'pg';
import { LICENCE_OUVERTE } from '../catalog.js';
import {
  fullDataset,
  LIVE_ENTITY_SECONDS,
  LIVE_MAX_AGE_SECONDS,
  liveVersion,
  realtimeFeed,
  TRIP_SCHEDULE_RELATIONSHIP,
  VEHICLE_STOP_STATUS,
  type FeedMessageObject,
  type RealtimeVersion,
} from './gtfs-rt.js';

interface PositionRow {
  vehicle_id: string;
  label: string | null;
  ts: number;
  lat: number;
  lon: number;
  bearing: number | null;
  speed_mps: number | null;
  current_status: string | null;
  stop_sequence: number | null;
  stop_id: string | null;
  trip_id: string | null;
  route_id: string | null;
  direction_id: number | null;
  start_date: string | null;
  start_time: string | null;
}

/** The rows the message is built from, in a stable order (by vehicle id). */
export async function vehiclePositionRows(db: pg.ClientBase): Promise<PositionRow[]> {
  const { rows } = await db.query<PositionRow>(
    `SELECT vehicle_id, label, floor(extract(epoch FROM observed_at))::float8 AS ts, lat, lon, bearing, speed_mps, current_status,
            stop_sequence, stop_id, trip_id, route_id, direction_id, start_date, start_time
     FROM opendata_vehicle_positions WHERE observed_at > now() - make_interval(secs => $1)
     ORDER BY vehicle_id COLLATE "C"`,
    [LIVE_ENTITY_SECONDS],
  );
  return rows;
}

/** A FeedEntity per row (GTFS-RT VehiclePosition). */
export function vehiclePositionEntities(rows: readonly PositionRow[]): Record<string, unknown>[] {
  return rows.map((r) => {
    const inService = r.trip_id !== null;
    const position: Record<string, number> = { latitude: r.lat, longitude: r.lon };
    if (r.bearing !== null && Number.isFinite(r.bearing)) position.bearing = ((r.bearing % 360) + 360) % 360;
    if (r.speed_mps !== null && r.speed_mps >= 0) position.speed = r.speed_mps;
    return {
      id: r.vehicle_id,
      vehicle: {
        trip: inService
          ? {
              tripId: r.trip_id,
              routeId: r.route_id ?? undefined,
              directionId: r.direction_id ?? undefined,
              startTime: r.start_time ?? undefined,
              startDate: r.start_date ?? undefined,
              scheduleRelationship: TRIP_SCHEDULE_RELATIONSHIP.SCHEDULED,
            }
          : undefined,
        vehicle: { id: r.vehicle_id, label: r.label ?? undefined },
        position,
        currentStopSequence: inService && r.stop_sequence !== null ? r.stop_sequence : undefined,
        stopId: inService && r.stop_id !== null ? r.stop_id : undefined,
        currentStatus: inService && r.current_status !== null ? VEHICLE_STOP_STATUS[r.current_status] : undefined,
        timestamp: r.ts,
      },
    };
  });
}

export async function vehiclePositionsMessage(db: pg.ClientBase, version: RealtimeVersion): Promise<FeedMessageObject> {
  return fullDataset(version.headerTimestamp, vehiclePositionEntities(await vehiclePositionRows(db)));
}

export const gtfsRtVehiclePositions = realtimeFeed({
  id: 'gtfs-rt-vehicle-positions',
  path: '/opendata/gtfs-rt/vehicle-positions.pb',
  maxAgeSeconds: LIVE_MAX_AGE_SECONDS,
  dataset: {
    title: 'Position des bus en temps réel (GTFS-RT) — Châlons Agglo',
    description:
      "Position, cap, vitesse et course en cours de chaque bus du réseau SITAC de Châlons Agglo, au format GTFS-Realtime (VehiclePositions, jeu complet). Les identifiants de courses, lignes et arrêts sont ceux du GTFS publié (gtfs/gtfs.zip). Un bus sans nouvelles depuis 90 s n'est plus publié. Aussi en JSON (?format=json).",
    keywords: ['transport', 'bus', 'temps réel', 'GTFS-RT', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GTFS-RT',
    frequency: 'continuous',
  },
  version: liveVersion,
  message: vehiclePositionsMessage,
});
