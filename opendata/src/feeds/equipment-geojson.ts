/**
 * The public equipment of the territory as RFC 7946 GeoJSON, from the `opendata_equipment` view
 * the equipment domain publishes (no cameras, no buses, no decommissioned assets).
 */
import type pg from 'pg';
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed, FeedVersion } from '../feed.js';
import { checkParameters, QueryParameterError, shown } from '../parameters.js';
import { readPlaceFilter } from './geojson-stream.js';

/** Kinds the equipment domain publishes in `opendata_equipment` (cameras and buses never are). */
const PUBLISHED_KINDS = [
  'LIGHT_POINT',
  'PRESENCE_DETECTOR',
  'TRAFFIC_SIGNAL_CONTROLLER',
  'BUS_STOP',
  'PARKING_FACILITY',
  'PARKING_SENSOR',
  'AIR_QUALITY_SENSOR',
  'HEATING_CONTROLLER',
  'ENERGY_METER',
  'WIFI_HOTSPOT',
  'ELECTRICAL_CABINET',
  'BUILDING',
] as const;

export interface EquipmentFilter {
  /** Sorted and without repeats, so that equal filters name the same cached representation. */
  kinds: string[] | null;
  collectivityId: string | null;
  inseeCode: string | null;
  bbox: [number, number, number, number] | null;
}

const PARAMETERS = ['kind', 'collectivity', 'commune', 'bbox'] as const;
/** The one list parameter: `kind=A&kind=B` is `kind=A,B`. Every other parameter is given at most once. */
const LIST_PARAMETER = 'kind';

/** Reads and validates the feed's query parameters; each error names its parameter. */
export function parseEquipmentFilter(params: URLSearchParams): EquipmentFilter {
  checkParameters(params, PARAMETERS, [LIST_PARAMETER]);
  const kindValues = params.getAll(LIST_PARAMETER);
  const kinds = kindValues.length === 0 ? null : [...new Set(kindValues.flatMap((v) => v.split(',')).map((k) => k.trim().toUpperCase()))].sort();
  for (const kind of kinds ?? []) {
    if (!(PUBLISHED_KINDS as readonly string[]).includes(kind)) {
      throw new QueryParameterError('kind', `${shown(kind)} is not a published kind (${PUBLISHED_KINDS.join(', ')})`);
    }
  }
  return { kinds, ...readPlaceFilter(params) };
}

function where(filter: EquipmentFilter): { sql: string; values: unknown[] } {
  const clauses: string[] = [];
  const values: unknown[] = [];
  const param = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  if (filter.kinds) clauses.push(`kind = ANY(${param(filter.kinds)}::text[])`);
  if (filter.collectivityId) clauses.push(`collectivity_id = ${param(filter.collectivityId)}`);
  if (filter.inseeCode) clauses.push(`insee_code = ${param(filter.inseeCode)}`);
  if (filter.bbox) {
    // `&&` alone compares float4 boxes rounded outwards (what the GiST index stores): it keeps
    // points a few millionths of a degree outside the box. It finds the candidates through the
    // index; the exact test on the double-precision coordinates decides (edges included).
    const [minLon, minLat, maxLon, maxLat] = filter.bbox.map(param);
    clauses.push(
      `location && ST_MakeEnvelope(${minLon}, ${minLat}, ${maxLon}, ${maxLat}, 4326)`,
      `ST_X(location) BETWEEN ${minLon}::float8 AND ${maxLon}::float8 AND ST_Y(location) BETWEEN ${minLat}::float8 AND ${maxLat}::float8`,
    );
  }
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', values };
}

/**
 * A version of the filtered rows, cheap to compute: which rows (a checksum of ids and update
 * times), how many, how recent.
 */
async function equipmentVersion(db: pg.ClientBase, filter: EquipmentFilter): Promise<FeedVersion> {
  const { sql, values } = where(filter);
  const { rows } = await db.query<{ count: string; last_modified: Date | null; latest: string | null; checksum: string | null }>(
    `SELECT count(*) AS count, max(updated_at) AS last_modified, extract(epoch FROM max(updated_at))::text AS latest,
            sum(hashtextextended(id || '|' || extract(epoch FROM updated_at)::text, 0))::text AS checksum
     FROM opendata_equipment ${sql}`,
    values,
  );
  const { count, last_modified, latest, checksum } = rows[0];
  return { tag: `${count}|${latest}|${checksum}`, lastModified: last_modified };
}

/**
 * RFC 7946 FeatureCollection built by PostGIS in one statement: [lon, lat] positions with
 * 6 decimals (~10 cm), no `crs` member, a stable order.
 */
async function equipmentFeatureCollection(db: pg.ClientBase, filter: EquipmentFilter): Promise<string> {
  const { sql, values } = where(filter);
  const { rows } = await db.query<{ body: string }>(
    `SELECT json_build_object(
        'type', 'FeatureCollection',
        'features', coalesce(json_agg(json_build_object(
            'type', 'Feature',
            'id', id,
            'geometry', ST_AsGeoJSON(location, 6)::json,
            'properties', jsonb_build_object(
                'kind', kind, 'status', status, 'collectivity', collectivity_id,
                'commune', insee_code, 'installedOn', installed_on) || attributes
        ) ORDER BY id), '[]'::json)
     )::text AS body
     FROM opendata_equipment ${sql}`,
    values,
  );
  return rows[0].body;
}

export const equipmentGeojson: Feed<EquipmentFilter> = {
  id: 'equipment',
  path: '/opendata/equipment.geojson',
  contentType: 'application/geo+json; charset=utf-8',
  dataset: {
    title: 'Équipements publics connectés — Châlons-en-Champagne et agglomération',
    description:
      "Points lumineux LED, détecteurs de présence, carrefours à feux, arrêts de bus, parkings, bâtiments (écoles, gymnases) et leurs capteurs, bornes Wi-Fi et armoires électriques des collectivités de Châlons-en-Champagne, Fagnières, Saint-Martin-sur-le-Pré et Châlons Agglo. Les caméras ne sont jamais publiées.",
    keywords: ['éclairage public', 'smart city', 'équipements', 'Châlons-en-Champagne', 'Marne'],
    licence: LICENCE_OUVERTE,
    format: 'GeoJSON',
    frequency: 'continuous',
  },
  parse: parseEquipmentFilter,
  version: equipmentVersion,
  render: (db, filter) => equipmentFeatureCollection(db, filter),
};
