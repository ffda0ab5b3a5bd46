/**
 * GTFS-Realtime trip updates of Châlons Agglo's buses, from the `opendata_trip_updates` view the
 * mobility domain publishes: each trip a bus heard from within the last 90 s runs, with its
 * current delay and the predicted arrival at each stop ahead (ids of the static feed).
 */
import type pg from 'pg';
import { LICENCE_OUVERTE } from '../catalog.js';
import {
  fullDataset,
  LIVE_ENTITY_SECONDS,
  LIVE_MAX_AGE_SECONDS,
  liveVersion,
  realtimeFeed,
  STOP_SCHEDULE_RELATIONSHIP,
  TRIP_SCHEDULE_RELATIONSHIP,
  type FeedMessageObject,
  type RealtimeVersion,
} from './gtfs-rt.js';

interface TripUpdateRow {
  vehicle_id: string;
  label: string | null;
  ts: number;
  trip_id: string;
  route_id: string;
  direction_id: number | null;
  start_date: string;
  start_time: string;
  delay_seconds: number | null;
  /** [[stop_sequence, stop_id, predicted arrival (epoch seconds)], …] in stop_sequence order. */
  stop_time_updates: [number, string, number][];
}

/**
 * One row per trip (the bus heard from last, should two claim it), in trip order; a trip without
 * a prediction left (its bus at the last stop) is left out: a trip update needs stop time updates.
 */
export async function tripUpdateRows(db: pg.ClientBase): Promise<TripUpdateRow[]> {
  const { rows } = await db.query<TripUpdateRow>(
    `SELECT DISTINCT ON (trip_id COLLATE "C") vehicle_id, label, floor(extract(epoch FROM observed_at))::float8 AS ts, trip_id, route_id,
            direction_id, start_date, start_time, delay_seconds, stop_time_updates
     FROM opendata_trip_updates
     WHERE observed_at > now() - make_interval(secs => $1) AND jsonb_array_length(stop_time_updates) > 0
     ORDER BY trip_id COLLATE "C", observed_at DESC, vehicle_id COLLATE "C"`,
    [LIVE_ENTITY_SECONDS],
  );
  return rows;
}

export function tripUpdateEntities(rows: readonly TripUpdateRow[]): Record<string, unknown>[] {
  return rows.map((r) => ({
    id: r.trip_id,
    tripUpdate: {
      trip: {
        tripId: r.trip_id,
        routeId: r.route_id,
        directionId: r.direction_id ?? undefined,
        startTime: r.start_time,
        startDate: r.start_date,
        scheduleRelationship: TRIP_SCHEDULE_RELATIONSHIP.SCHEDULED,
      },
      vehicle: { id: r.vehicle_id, label: r.label ?? undefined },
      stopTimeUpdate: r.stop_time_updates.map(([stopSequence, stopId, time]) => ({
        stopSequence,
        stopId,
        arrival: { time },
        scheduleRelationship: STOP_SCHEDULE_RELATIONSHIP.SCHEDULED,
      })),
      timestamp: r.ts,
      delay: r.delay_seconds ?? undefined,
    },
  }));
}

export async function tripUpdatesMessage(db: pg.ClientBase, version: RealtimeVersion): Promise<FeedMessageObject> {
  return fullDataset(version.headerTimestamp, tripUpdateEntities(await tripUpdateRows(db)));
}

export const gtfsRtTripUpdates = realtimeFeed({
  id: 'gtfs-rt-trip-updates',
  path: '/opendata/gtfs-rt/trip-updates.pb',
  maxAgeSeconds: LIVE_MAX_AGE_SECONDS,
  dataset: {
    title: 'Horaires des bus en temps réel (GTFS-RT) — Châlons Agglo',
    description:
      "Retard de chaque course en cours du réseau SITAC de Châlons Agglo et heure d'arrivée prévue à chacun des arrêts suivants, au format GTFS-Realtime (TripUpdates, jeu complet). Les identifiants de courses, lignes et arrêts sont ceux du GTFS publié (gtfs/gtfs.zip). Aussi en JSON (?format=json).",
    keywords: ['transport', 'bus', 'temps réel', 'horaires', 'GTFS-RT', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GTFS-RT',
    frequency: 'continuous',
  },
  version: liveVersion,
  message: tripUpdatesMessage,
});
