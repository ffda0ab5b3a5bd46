/**
 * The open-data module: anonymised datasets for third-party developers and partner
 * agencies, no login, stable URLs, caching headers. Mounted by the gateway under /opendata.
 * It reads only the `opendata_*` views the owning domains publish, never their tables.
 *
 * Every representation (catalogue, dataset description, GeoJSON for one filter) is published
 * the same way: its version is read first (cheap), which gives the ETag without building the
 * body; the body is built once per version and content coding and kept in a bounded cache
 * (`representation-cache.ts`); brotli or gzip when the client accepts them
 * (`content-coding.ts`), with `Vary: Accept-Encoding` and an ETag per coding, since the bytes
 * differ. Links are absolute from PUBLIC_BASE_URL, never from `Host` (`public-base-url.ts`).
 * `Access-Control-Allow-Origin` is `*` whatever the `Origin`, so responses do not vary on it.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type pg from 'pg';
import { CATALOG_PATH, DATASETS, dcatCatalog, dcatDataset, datasetPath } from './catalog.js';
import { encode, negotiateContentCoding } from './content-coding.js';
import {
  equipmentFeatureCollection,
  equipmentVersion,
  NO_FILTER,
  parseEquipmentFilter,
  QueryParameterError,
  type EquipmentFilter,
  type EquipmentVersion,
} from './equipment-dataset.js';
import { publicBaseUrl } from './public-base-url.js';
import { RepresentationCache } from './representation-cache.js';

export { DATASETS } from './catalog.js';

export interface OpendataOptions {
  pool: pg.Pool;
  /** PUBLIC_BASE_URL: the absolute base of every link the catalogue publishes. */
  publicUrl: string;
  /** TRUSTED_PROXIES: peers whose `Forwarded` / `X-Forwarded-Host` / `-Proto` name the public host. */
  trustedProxies?: readonly string[];
  /** Seconds clients and caches may reuse a response. */
  maxAgeSeconds?: number;
  /** Memory for built and compressed representations (the full GeoJSON is 2.8 MB raw, ~130 kB in brotli). */
  cacheBytes?: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

const JSON_LD = 'application/ld+json; charset=utf-8';
const GEOJSON = 'application/geo+json; charset=utf-8';

function problem(res: ServerResponse, status: number, code: string, message: string, field?: string, headers: Record<string, string> = {}) {
  const body = JSON.stringify({ error: { code, message, ...(field ? { field } : {}) } });
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'access-control-allow-origin': '*',
    ...headers,
  });
  res.end(body);
}

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`. */
function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return (header.match(/(?:W\/)?"[^"]*"/g) ?? []).some((tag) => tag.replace(/^W\//, '') === etag);
}

/** The catalogue and the dataset descriptions take no parameters. */
function refuseParameters(params: URLSearchParams) {
  const first = params.keys().next();
  if (!first.done) throw new QueryParameterError(first.value.slice(0, 64), 'unknown parameter; this document takes none');
}

interface Representation {
  type: string;
  /** Names what is published apart from the data's version: document, filter, base URL. */
  key: string;
  filter: EquipmentFilter;
  /** Request headers besides Accept-Encoding the bytes depend on. */
  varies: readonly string[];
  body: (db: pg.ClientBase, version: EquipmentVersion) => Promise<string>;
}

/** Returns a handler that answers `/opendata/...` requests and returns false for any other path. */
export function createOpendataHandler(options: OpendataOptions): Handler {
  const { pool, maxAgeSeconds = 300 } = options;
  const base = publicBaseUrl(options.publicUrl, options.trustedProxies ?? []);
  const cache = new RepresentationCache(options.cacheBytes ?? 32 * 1024 * 1024);

  async function publish(req: IncomingMessage, res: ServerResponse, representation: Representation) {
    const vary = ['Accept-Encoding', ...representation.varies].join(', ');
    const coding = negotiateContentCoding(req.headers['accept-encoding']);
    if (coding === null) {
      problem(res, 406, 'NOT_ACCEPTABLE', 'Accept-Encoding refuses every coding served here: br, gzip, identity', 'Accept-Encoding', { vary });
      return;
    }
    // One snapshot for the version and the body, so that the bytes kept under an ETag are the
    // data that ETag names even when an asset changes in between.
    const db = await pool.connect();
    let bytes: Buffer | null = null;
    let headers: Record<string, string>;
    try {
      await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const version = await equipmentVersion(db, representation.filter);
      const tag = createHash('sha256').update(`${representation.key}|${version.tag}`).digest('base64url').slice(0, 27);
      const etag = coding === 'identity' ? `"${tag}"` : `"${tag}-${coding}"`;
      headers = {
        etag,
        vary,
        'cache-control': `public, max-age=${maxAgeSeconds}`,
        'access-control-allow-origin': '*',
        ...(version.lastModified ? { 'last-modified': version.lastModified.toUTCString() } : {}),
      };
      if (!matchesIfNoneMatch(req.headers['if-none-match'], etag)) {
        const identity = () => cache.get(`"${tag}"`, async () => Buffer.from(await representation.body(db, version)));
        bytes = await (coding === 'identity' ? identity() : cache.get(etag, async () => encode(coding, await identity())));
      }
      await db.query('COMMIT');
    } catch (error) {
      // The connection may be inside a failed transaction: it is not given back to the pool.
      db.release(true);
      throw error;
    }
    db.release();
    if (bytes === null) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, {
      'content-type': representation.type,
      'content-length': String(bytes.length),
      ...(coding === 'identity' ? {} : { 'content-encoding': coding }),
      ...headers,
    });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, params: URLSearchParams) {
    if (path === '/opendata' || path === CATALOG_PATH) {
      refuseParameters(params);
      const baseUrl = base.of(req);
      return publish(req, res, {
        type: JSON_LD,
        key: `catalog|${baseUrl}`,
        filter: NO_FILTER,
        varies: base.varies,
        body: async (_db, version) => JSON.stringify(dcatCatalog(baseUrl, { equipment: version.lastModified }), null, 2),
      });
    }
    const dataset = DATASETS.find((entry) => datasetPath(entry.id) === path);
    if (dataset) {
      refuseParameters(params);
      const baseUrl = base.of(req);
      return publish(req, res, {
        type: JSON_LD,
        key: `dataset|${dataset.id}|${baseUrl}`,
        filter: NO_FILTER,
        varies: base.varies,
        body: async (_db, version) => JSON.stringify(dcatDataset(baseUrl, dataset.id, version.lastModified), null, 2),
      });
    }
    if (path === '/opendata/equipment.geojson') {
      const filter = parseEquipmentFilter(params);
      return publish(req, res, {
        type: GEOJSON,
        key: `equipment|${JSON.stringify(filter)}`,
        filter,
        varies: [],
        body: (db) => equipmentFeatureCollection(db, filter),
      });
    }
    problem(res, 404, 'NOT_FOUND', `no open dataset at ${path.slice(0, 200)}; the catalogue is at ${CATALOG_PATH}`);
  }

  return async (req, res) => {
    // Parsed from the path alone: a request target such as `//host/...` must not become a host.
    const url = new URL(`http://opendata.local${req.url?.startsWith('/') ? req.url : '/'}`);
    if (url.pathname !== '/opendata' && !url.pathname.startsWith('/opendata/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      problem(res, 405, 'METHOD_NOT_ALLOWED', 'open data is read-only: use GET', undefined, { allow: 'GET, HEAD' });
      return true;
    }
    try {
      await route(req, res, url.pathname.replace(/\/$/, ''), url.searchParams);
    } catch (error) {
      if (!(error instanceof QueryParameterError)) throw error;
      problem(res, 400, 'BAD_USER_INPUT', error.message, error.field);
    }
    return true;
  };
}
