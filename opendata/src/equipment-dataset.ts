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
  /** Sorted and without repeats, so that equal filters name the same cached representation. */
  kinds: string[] | null;
  collectivityId: string | null;
  inseeCode: string | null;
  bbox: [number, number, number, number] | null;
}

export const NO_FILTER: EquipmentFilter = { kinds: null, collectivityId: null, inseeCode: null, bbox: null };

const PARAMETERS = ['kind', 'collectivity', 'commune', 'bbox'] as const;
/** The one list parameter: `kind=A&kind=B` is `kind=A,B`. Every other parameter is given at most once. */
const LIST_PARAMETER = 'kind';
/** No valid value comes close; longer ones are refused before they are looked at. */
const MAX_VALUE_LENGTH = 256;
/** A plain decimal number: `Number()` alone would read '' and ' ' as 0 and accept hex. */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/** Part of a client's value, printable in an error message whatever it holds. */
const shown = (value: string) => JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);

/**
 * Reads and validates the dataset's query parameters; each error names its parameter. Repeating
 * a single-valued parameter is refused rather than resolved by keeping one of the values: the
 * client would not get what at least one of them asked for.
 */
export function parseEquipmentFilter(params: URLSearchParams): EquipmentFilter {
  const counts = new Map<string, number>();
  for (const [name, value] of params) {
    if (!(PARAMETERS as readonly string[]).includes(name)) {
      throw new QueryParameterError(name.slice(0, 64), `unknown parameter ${shown(name)}; use ${PARAMETERS.join(', ')}`);
    }
    if (value.length > MAX_VALUE_LENGTH) throw new QueryParameterError(name, `longer than ${MAX_VALUE_LENGTH} characters`);
    if (/[\u0000-\u001f\u007f]/.test(value)) throw new QueryParameterError(name, 'contains control characters');
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  for (const [name, count] of counts) {
    if (count > 1 && name !== LIST_PARAMETER) {
      throw new QueryParameterError(name, `given ${count} times; give it once (only ${LIST_PARAMETER} takes several values)`);
    }
  }
  const kindValues = params.getAll(LIST_PARAMETER);
  const kinds = kindValues.length === 0 ? null : [...new Set(kindValues.flatMap((v) => v.split(',')).map((k) => k.trim().toUpperCase()))].sort();
  for (const kind of kinds ?? []) {
    if (!(PUBLISHED_KINDS as readonly string[]).includes(kind)) {
      throw new QueryParameterError('kind', `${shown(kind)} is not a published kind (${PUBLISHED_KINDS.join(', ')})`);
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
    const parts = bboxParam.split(',').map((part) => part.trim());
    if (parts.length !== 4 || !parts.every((part) => DECIMAL.test(part))) {
      throw new QueryParameterError('bbox', 'must be four numbers: minLon,minLat,maxLon,maxLat');
    }
    const numbers = parts.map(Number);
    if (!numbers.every(Number.isFinite)) throw new QueryParameterError('bbox', 'numbers must be finite');
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

export interface EquipmentVersion {
  /** Changes whenever the filtered rows do: which rows (a checksum of ids and update times), how many, how recent. */
  tag: string;
  lastModified: Date | null;
}

/**
 * A version of the filtered dataset, cheap to compute: the ETag without building the body.
 * Run it in the same snapshot as the body it stands for (see `index.ts`).
 */
export async function equipmentVersion(db: pg.ClientBase, filter: EquipmentFilter): Promise<EquipmentVersion> {
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
export async function equipmentFeatureCollection(db: pg.ClientBase, filter: EquipmentFilter): Promise<string> {
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
