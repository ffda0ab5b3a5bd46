import type pg from 'pg';

/** Kinds the equipment domain publishes in `opendata_equipment` (cameras and buses never are). */
export const PUBLISHED_KINDS = [
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

const COLLECTIVITIES = ['chalons', 'fagnieres', 'saint-martin-sur-le-pre', 'chalons-agglo'];

export class QueryParameterError extends Error {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

export interface EquipmentFilter {
  kinds: string[] | null;
  collectivityId: string | null;
  inseeCode: string | null;
  bbox: [number, number, number, number] | null;
}

/** Reads and validates the dataset's query parameters; each error names its parameter. */
export function parseEquipmentFilter(params: URLSearchParams): EquipmentFilter {
  const known = new Set(['kind', 'collectivity', 'commune', 'bbox']);
  for (const name of params.keys()) {
    if (!known.has(name)) throw new QueryParameterError(name, `unknown parameter; use ${[...known].join(', ')}`);
  }
  const kindParam = params.get('kind');
  const kinds = kindParam === null ? null : kindParam.split(',').map((k) => k.trim().toUpperCase());
  for (const kind of kinds ?? []) {
    if (!(PUBLISHED_KINDS as readonly string[]).includes(kind)) {
      throw new QueryParameterError('kind', `'${kind}' is not a published kind (${PUBLISHED_KINDS.join(', ')})`);
    }
  }
  const collectivityId = params.get('collectivity');
  if (collectivityId !== null && !COLLECTIVITIES.includes(collectivityId)) {
    throw new QueryParameterError('collectivity', `must be one of ${COLLECTIVITIES.join(', ')}`);
  }
  const inseeCode = params.get('commune');
  if (inseeCode !== null && !/^\d[\dAB]\d{3}$/.test(inseeCode)) {
    throw new QueryParameterError('commune', 'must be an INSEE commune code such as 51108');
  }
  const bboxParam = params.get('bbox');
  let bbox: EquipmentFilter['bbox'] = null;
  if (bboxParam !== null) {
    const numbers = bboxParam.split(',').map(Number);
    if (numbers.length !== 4 || numbers.some((n) => !Number.isFinite(n))) {
      throw new QueryParameterError('bbox', 'must be four numbers: minLon,minLat,maxLon,maxLat');
    }
    const [minLon, minLat, maxLon, maxLat] = numbers;
    if (minLon < -180 || maxLon > 180 || minLat < -90 || maxLat > 90 || minLon >= maxLon || minLat >= maxLat) {
      throw new QueryParameterError('bbox', 'must be minLon,minLat,maxLon,maxLat in WGS84 with min < max');
    }
    bbox = [minLon, minLat, maxLon, maxLat];
  }
  return { kinds, collectivityId, inseeCode, bbox };
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
  if (filter.bbox) clauses.push(`location && ST_MakeEnvelope(${filter.bbox.map(param).join(', ')}, 4326)`);
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', values };
}

/** A version of the filtered dataset, cheap to compute: the ETag without building the body. */
export async function equipmentVersion(pool: pg.Pool, filter: EquipmentFilter): Promise<{ count: number; lastModified: Date | null }> {
  const { sql, values } = where(filter);
  const { rows } = await pool.query<{ count: string; last_modified: Date | null }>(
    `SELECT count(*) AS count, max(updated_at) AS last_modified FROM opendata_equipment ${sql}`,
    values,
  );
  return { count: Number(rows[0].count), lastModified: rows[0].last_modified };
}

/**
 * RFC 7946 FeatureCollection built by PostGIS in one statement: [lon, lat] positions with
 * 6 decimals (~10 cm), no `crs` member, a stable order.
 */
export async function equipmentFeatureCollection(pool: pg.Pool, filter: EquipmentFilter): Promise<string> {
  const { sql, values } = where(filter);
  const { rows } = await pool.query<{ body: string }>(
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
