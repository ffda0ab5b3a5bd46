/**
 * The static GTFS of Châlons Agglo's bus network, as imported (ids identical to the network's,
 * hence to the GTFS-Realtime feeds'), zipped from the mobility domain's `opendata_gtfs_*` views:
 * one view per file, whose columns are the file's fields. Versioned by the import: the network
 * tables change only when a new feed is imported, which writes a new `gtfs_feeds` row.
 */
import type pg from 'pg';
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed, FeedVersion } from '../feed.js';
import { checkParameters } from '../parameters.js';
import { writeZip } from '@connecte/shared/zip';

/** Each file: the view, its fields in order, and a stable row order ("C" collation: bytes, not locale). */
export const GTFS_FILES: readonly { file: string; view: string; fields: readonly string[]; order: string }[] = [
  { file: 'agency.txt', view: 'opendata_gtfs_agency', fields: ['agency_id', 'agency_name', 'agency_url', 'agency_timezone', 'agency_lang'], order: 'agency_id COLLATE "C"' },
  {
    file: 'stops.txt',
    view: 'opendata_gtfs_stops',
    fields: ['stop_id', 'stop_code', 'stop_name', 'stop_desc', 'stop_lat', 'stop_lon', 'location_type', 'wheelchair_boarding'],
    order: 'stop_id COLLATE "C"',
  },
  {
    file: 'routes.txt',
    view: 'opendata_gtfs_routes',
    fields: ['route_id', 'agency_id', 'route_short_name', 'route_long_name', 'route_desc', 'route_type', 'route_color', 'route_text_color', 'route_sort_order'],
    order: 'route_id COLLATE "C"',
  },
  {
    file: 'trips.txt',
    view: 'opendata_gtfs_trips',
    fields: ['route_id', 'service_id', 'trip_id', 'trip_headsign', 'trip_short_name', 'direction_id', 'block_id', 'shape_id'],
    order: 'trip_id COLLATE "C"',
  },
  {
    file: 'stop_times.txt',
    view: 'opendata_gtfs_stop_times',
    fields: ['trip_id', 'arrival_time', 'departure_time', 'stop_id', 'stop_sequence', 'shape_dist_traveled', 'timepoint'],
    order: 'trip_id COLLATE "C", stop_sequence',
  },
  {
    file: 'calendar.txt',
    view: 'opendata_gtfs_calendar',
    fields: ['service_id', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday', 'start_date', 'end_date'],
    order: 'service_id COLLATE "C"',
  },
  { file: 'calendar_dates.txt', view: 'opendata_gtfs_calendar_dates', fields: ['service_id', 'date', 'exception_type'], order: 'service_id COLLATE "C", date' },
  {
    file: 'shapes.txt',
    view: 'opendata_gtfs_shapes',
    fields: ['shape_id', 'shape_pt_lat', 'shape_pt_lon', 'shape_pt_sequence', 'shape_dist_traveled'],
    order: 'shape_id COLLATE "C", shape_pt_sequence',
  },
  {
    file: 'feed_info.txt',
    view: 'opendata_gtfs_feed_info',
    fields: ['feed_publisher_name', 'feed_publisher_url', 'feed_lang', 'feed_start_date', 'feed_end_date', 'feed_version'],
    order: 'feed_id',
  },
];

/** RFC 4180 field: quoted when it holds a comma, a quote or a line break; null is empty. */
function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A GTFS file: header and rows, CRLF line ends, UTF-8 without byte-order mark. */
async function gtfsFile(db: pg.ClientBase, spec: (typeof GTFS_FILES)[number]): Promise<Buffer> {
  const { rows } = await db.query<unknown[]>({
    text: `SELECT ${spec.fields.map((f) => `"${f}"`).join(', ')} FROM ${spec.view} ORDER BY ${spec.order}`,
    rowMode: 'array',
  });
  let text = `${spec.fields.join(',')}\r\n`;
  for (const row of rows) text += `${row.map(csvField).join(',')}\r\n`;
  return Buffer.from(text, 'utf8');
}

async function gtfsVersion(db: pg.ClientBase): Promise<FeedVersion> {
  const { rows } = await db.query<{ feed_id: string; sha256: string; imported_at: Date }>(`SELECT feed_id::text, sha256, imported_at FROM opendata_gtfs_feed_info`);
  const feed = rows[0];
  return feed ? { tag: `${feed.feed_id}|${feed.sha256}`, lastModified: feed.imported_at } : { tag: 'none', lastModified: null };
}

export const gtfsStatic: Feed<Record<string, never>> & { readonly maxAgeSeconds: number } = {
  id: 'gtfs',
  path: '/opendata/gtfs/gtfs.zip',
  contentType: 'application/zip',
  // A new import is rare (a new timetable); an hour's delay in seeing it is harmless.
  maxAgeSeconds: 3600,
  dataset: {
    title: 'Réseau de bus SITAC — horaires théoriques (GTFS) — Châlons Agglo',
    description:
      "Lignes, arrêts, courses, horaires, tracés et calendriers du réseau de bus SITAC de Châlons Agglo au format GTFS, tels qu'importés dans le hub. Les identifiants sont ceux des flux temps réel GTFS-RT (positions, horaires en temps réel, alertes).",
    keywords: ['transport', 'bus', 'horaires', 'GTFS', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GTFS',
    frequency: 'monthly',
  },
  parse(params) {
    checkParameters(params, []);
    return {};
  },
  version: gtfsVersion,
  async render(db, _selection, version) {
    const files: Record<string, Buffer> = {};
    for (const spec of GTFS_FILES) files[spec.file] = await gtfsFile(db, spec);
    return writeZip(files, version.lastModified ?? new Date(0));
  },
};
