/**
 * GTFS-Realtime service alerts from the interventions and planned works that affect bus stops or
 * routes (the tickets domain's `opendata_transit_alerts` view): the open ones (planned, assigned,
 * in progress) not past their scheduled end, future ones included, each with its period and the
 * stops and routes it names that the static network has (others are dropped; an alert left with
 * none is not published). The texts are written here from those facts, in French: the agents'
 * own title and description are not published (free text).
 */
import type pg from 'pg';
import { LICENCE_OUVERTE } from '../catalog.js';
import { ALERT_CAUSE, ALERT_EFFECT, fullDataset, realtimeFeed, type FeedMessageObject, type RealtimeVersion } from './gtfs-rt.js';

/** Published: open, and not past its scheduled end (`a` is the view's alias). */
const open = (a: string) => `${a}.status IN ('PLANNED', 'ASSIGNED', 'IN_PROGRESS') AND (${a}.active_until IS NULL OR ${a}.active_until > now())`;

/**
 * Version and header timestamp: the latest write of any intervention in the view, the moment an
 * open one passed its end (it left the feed then), and the network's import (names and ids).
 */
async function alertsVersion(db: pg.ClientBase): Promise<RealtimeVersion> {
  const { rows } = await db.query<{ count: string; checksum: string | null; stamp: Date | null; feed: string | null }>(
    `WITH a AS (SELECT intervention_id, updated_at, active_until, ${open('v')} AS open FROM opendata_transit_alerts v),
          f AS (SELECT feed_id, imported_at FROM opendata_gtfs_feed_info)
     SELECT (SELECT count(*) FROM a WHERE open)::text AS count,
            (SELECT sum(hashtextextended(intervention_id || '|' || extract(epoch FROM updated_at)::text, 0)) FROM a WHERE open)::text AS checksum,
            greatest((SELECT max(CASE WHEN active_until <= now() THEN greatest(updated_at, active_until) ELSE updated_at END) FROM a),
                     (SELECT imported_at FROM f)) AS stamp,
            (SELECT feed_id::text FROM f) AS feed`,
  );
  const { count, checksum, stamp, feed } = rows[0];
  return { tag: `${count}|${checksum}|${stamp?.getTime() ?? ''}|${feed ?? ''}`, lastModified: stamp, headerTimestamp: stamp ? Math.floor(stamp.getTime() / 1000) : 0 };
}

interface AlertRow {
  id: string;
  origin: string;
  status: string;
  active_from: number | null;
  active_until: number | null;
  stops: { id: string; name: string }[];
  routes: { id: string; name: string }[];
}

export async function alertRows(db: pg.ClientBase): Promise<AlertRow[]> {
  // Stop ids are compared ignoring case (a stop's id is its asset's reference, compared so); the
  // network's spelling is published. Routes in the network's order.
  const { rows } = await db.query<AlertRow>(
    `SELECT a.intervention_id::text AS id, a.origin, a.status,
            extract(epoch FROM a.active_from)::float8 AS active_from, extract(epoch FROM a.active_until)::float8 AS active_until,
            coalesce((SELECT json_agg(json_build_object('id', s.stop_id, 'name', s.stop_name) ORDER BY s.stop_name, s.stop_id COLLATE "C")
                      FROM opendata_gtfs_stops s WHERE upper(s.stop_id) IN (SELECT upper(x) FROM unnest(a.stop_ids) x)), '[]') AS stops,
            coalesce((SELECT json_agg(json_build_object('id', r.route_id, 'name', coalesce(r.route_short_name, r.route_long_name))
                                      ORDER BY r.route_sort_order NULLS LAST, r.route_id COLLATE "C")
                      FROM opendata_gtfs_routes r WHERE upper(r.route_id) IN (SELECT upper(x) FROM unnest(a.route_ids) x)), '[]') AS routes
     FROM opendata_transit_alerts a
     WHERE ${open('a')}
     ORDER BY a.intervention_id`,
  );
  return rows.filter((r) => r.stops.length > 0 || r.routes.length > 0);
}

const PARIS = new Intl.DateTimeFormat('fr-FR', { timeZone: 'Europe/Paris', weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit' });
const when = (seconds: number) => PARIS.format(new Date(seconds * 1000));
const list = (names: string[]) => (names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} et ${names[names.length - 1]}`);
const french = (text: string) => ({ translation: [{ text, language: 'fr' }] });

/** Header and description, from the facts only. */
export function alertTexts(row: AlertRow): { header: string; description: string } {
  const what = row.origin === 'PLANNED' ? 'Travaux' : 'Intervention technique';
  const state = row.status === 'IN_PROGRESS' ? 'en cours' : 'prévue' + (row.origin === 'PLANNED' ? 's' : '');
  const stops = row.stops.map((s) => s.name);
  const routes = row.routes.map((r) => `ligne ${r.name}`);
  const where = [stops.length ? `${stops.length > 1 ? 'arrêts' : 'arrêt'} ${list(stops)}` : '', routes.length ? list(routes) : ''].filter(Boolean);
  const header = `${what} ${state} — ${where.join(' ; ')}`;
  const parts: string[] = [];
  if (stops.length) parts.push(`${stops.length > 1 ? 'Arrêts concernés' : 'Arrêt concerné'} : ${list(stops)}.`);
  if (routes.length) parts.push(`${routes.length > 1 ? 'Lignes concernées' : 'Ligne concernée'} : ${list(row.routes.map((r) => r.name))}.`);
  if (row.active_from !== null && row.active_until !== null) parts.push(`Du ${when(row.active_from)} au ${when(row.active_until)} (heure de Paris).`);
  else if (row.active_from !== null) parts.push(`À partir du ${when(row.active_from)} (heure de Paris).`);
  else if (row.active_until !== null) parts.push(`Jusqu'au ${when(row.active_until)} (heure de Paris).`);
  parts.push('Le service peut être perturbé : consultez les horaires en temps réel.');
  return { header, description: parts.join(' ') };
}

export function alertEntities(rows: readonly AlertRow[]): Record<string, unknown>[] {
  return rows.map((row) => {
    const { header, description } = alertTexts(row);
    const period: Record<string, number> = {};
    if (row.active_from !== null) period.start = Math.floor(row.active_from);
    if (row.active_until !== null) period.end = Math.floor(row.active_until);
    return {
      id: `intervention-${row.id}`,
      alert: {
        activePeriod: Object.keys(period).length ? [period] : [],
        informedEntity: [...row.stops.map((s) => ({ stopId: s.id })), ...row.routes.map((r) => ({ routeId: r.id }))],
        cause: row.origin === 'PLANNED' ? ALERT_CAUSE.CONSTRUCTION : ALERT_CAUSE.MAINTENANCE,
        // An intervention says what it touches, not what it does to the service.
        effect: ALERT_EFFECT.UNKNOWN_EFFECT,
        headerText: french(header),
        descriptionText: french(description),
      },
    };
  });
}

export async function alertsMessage(db: pg.ClientBase, version: RealtimeVersion): Promise<FeedMessageObject> {
  return fullDataset(version.headerTimestamp, alertEntities(await alertRows(db)));
}

export const gtfsRtAlerts = realtimeFeed({
  id: 'gtfs-rt-alerts',
  path: '/opendata/gtfs-rt/alerts.pb',
  maxAgeSeconds: 60,
  dataset: {
    title: 'Alertes du réseau de bus (GTFS-RT) — Châlons Agglo',
    description:
      "Travaux et interventions en cours ou prévus qui touchent des arrêts ou des lignes du réseau SITAC de Châlons Agglo, au format GTFS-Realtime (Alerts, jeu complet) : période, arrêts et lignes concernés (identifiants du GTFS publié, gtfs/gtfs.zip). Aussi en JSON (?format=json).",
    keywords: ['transport', 'bus', 'travaux', 'perturbations', 'GTFS-RT', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GTFS-RT',
    frequency: 'continuous',
  },
  version: alertsVersion,
  message: alertsMessage,
});
