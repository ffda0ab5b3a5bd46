/**
 * What the GeoJSON feeds of assets and measurements share: the place filter (`collectivity`,
 * `commune`, `bbox`), a cheap version of a view's selected rows, and an RFC 7946
 * FeatureCollection streamed from a cursor of the render's snapshot (PostgreSQL writes each
 * Feature's JSON; Node only joins them), so that a collection of any size is sent with flat memory.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { FeedStream, FeedVersion } from '../feed.js';
import { checkParameters, QueryParameterError } from '../parameters.js';

export const COLLECTIVITIES = ['chalons', 'fagnieres', 'saint-martin-sur-le-pre', 'chalons-agglo'];

/** A plain decimal number: `Number()` alone would read '' and ' ' as 0 and accept hex. */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export interface PlaceFilter {
  collectivityId: string | null;
  inseeCode: string | null;
  bbox: [number, number, number, number] | null;
}

export const PLACE_PARAMETERS = ['collectivity', 'commune', 'bbox'] as const;

/** Reads `collectivity`, `commune` and `bbox` (each at most once); `extra` are the feed's own parameters. */
export function parsePlaceFilter(params: URLSearchParams, extra: readonly string[] = []): PlaceFilter {
  checkParameters(params, [...PLACE_PARAMETERS, ...extra]);
  return readPlaceFilter(params);
}

/** `collectivity`, `commune` and `bbox`, each checked, once `checkParameters` has passed the query. */
export function readPlaceFilter(params: URLSearchParams): PlaceFilter {
  const collectivityId = params.get('collectivity');
  if (collectivityId !== null && !COLLECTIVITIES.includes(collectivityId)) {
    throw new QueryParameterError('collectivity', `must be one of ${COLLECTIVITIES.join(', ')}`);
  }
  const inseeCode = params.get('commune');
  if (inseeCode !== null && !/^\d[\dAB]\d{3}$/.test(inseeCode)) {
    throw new QueryParameterError('commune', 'must be an INSEE commune code such as 51108');
  }
  const bboxParam = params.get('bbox');
  let bbox: PlaceFilter['bbox'] = null;
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
  return { collectivityId, inseeCode, bbox };
}

/** SQL conditions with numbered parameters, built up by the feeds. */
export class Conditions {
  readonly clauses: string[] = [];
  readonly values: unknown[] = [];
  param(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
  add(clause: string): this {
    this.clauses.push(clause);
    return this;
  }
  get where(): string {
    return this.clauses.length ? `WHERE ${this.clauses.join(' AND ')}` : '';
  }
}

/** The place filter on a view with `collectivity_id`, `insee_code` and a Point `location` (prefix `t.` by default). */
export function placeConditions(filter: PlaceFilter, table = 't'): Conditions {
  const c = new Conditions();
  if (filter.collectivityId) c.add(`${table}.collectivity_id = ${c.param(filter.collectivityId)}`);
  if (filter.inseeCode) c.add(`${table}.insee_code = ${c.param(filter.inseeCode)}`);
  if (filter.bbox) {
    // `&&` finds candidates through the GiST index (float4 boxes rounded outwards); the exact
    // test on the double-precision coordinates decides, edges included (as equipment.geojson).
    const [minLon, minLat, maxLon, maxLat] = filter.bbox.map((v) => c.param(v));
    c.add(`${table}.location && ST_MakeEnvelope(${minLon}, ${minLat}, ${maxLon}, ${maxLat}, 4326)`);
    c.add(
      `ST_X(${table}.location) BETWEEN ${minLon}::float8 AND ${maxLon}::float8 AND ST_Y(${table}.location) BETWEEN ${minLat}::float8 AND ${maxLat}::float8`,
    );
  }
  return c;
}

/**
 * The version of the rows `from … where` selects: how many, the latest `updated_at`, and a
 * checksum of `key` (an SQL text expression naming a row and its state) over them, so that a row
 * that changes, appears or leaves moves it even when no remaining row is newer.
 */
export async function rowsVersion(db: pg.ClientBase, from: string, key: string, conditions: Conditions): Promise<FeedVersion> {
  const { rows } = await db.query<{ count: string; last_modified: Date | null; latest: string | null; checksum: string | null }>(
    `SELECT count(*) AS count, max(t.updated_at) AS last_modified, extract(epoch FROM max(t.updated_at))::text AS latest,
            sum(hashtextextended(${key}, 0))::text AS checksum
       FROM ${from} ${conditions.where}`,
    conditions.values,
  );
  const { count, last_modified, latest, checksum } = rows[0];
  return { tag: `${count}|${latest}|${checksum}`, lastModified: last_modified };
}

/** Rows fetched per round trip: ~0.5 MB of light points, few enough to keep memory flat. */
export const BATCH_ROWS = 2000;

/**
 * An RFC 7946 FeatureCollection streamed from `featureSql`, a query whose column `feature` is
 * one Feature's JSON text, in the order it gives. `members` are written before `features` (e.g.
 * a `metadata` object). Reads through a cursor of the caller's transaction (the render's
 * snapshot), `batchRows` at a time; nothing is read before the first piece is asked for.
 */
export async function* featureCollection(
  db: pg.ClientBase,
  featureSql: string,
  values: readonly unknown[],
  options: { members?: Record<string, unknown>; batchRows?: number } = {},
): FeedStream {
  const members = Object.entries(options.members ?? {})
    .map(([name, value]) => `${JSON.stringify(name)}:${JSON.stringify(value)},`)
    .join('');
  yield `{"type":"FeatureCollection",${members}"features":[`;
  const cursor = `opendata_${randomUUID().replaceAll('-', '')}`;
  await db.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${featureSql}`, values as unknown[]);
  try {
    let first = true;
    for (;;) {
      const { rows } = await db.query<{ feature: string }>(`FETCH FORWARD ${options.batchRows ?? BATCH_ROWS} FROM ${cursor}`);
      if (rows.length === 0) break;
      let piece = first ? '' : ',';
      for (let i = 0; i < rows.length; i++) piece += (i ? ',' : '') + rows[i].feature;
      first = false;
      yield piece;
    }
  } finally {
    // Stopped early (client gone) or done: the cursor goes; a failed transaction refuses it, harmlessly.
    await db.query(`CLOSE ${cursor}`).catch(() => undefined);
  }
  yield ']}';
}

/** A UTC day `YYYY-MM-DD` given as `name`, or null when absent. */
export function parseDay(params: URLSearchParams, name: string): string | null {
  const value = params.get(name);
  if (value === null) return null;
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  const date = match ? new Date(`${value}T00:00:00Z`) : null;
  if (!date || Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== value) {
    throw new QueryParameterError(name, 'must be a date YYYY-MM-DD');
  }
  return value;
}
