/**
 * The open-data module: anonymised datasets for third-party developers and partner
 * agencies, no login, stable URLs, caching headers. Mounted by the gateway under /opendata.
 * It reads only the `opendata_*` views the owning domains publish, never their tables.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type pg from 'pg';
import { dcatCatalog } from './catalog.js';
import { equipmentFeatureCollection, equipmentVersion, parseEquipmentFilter, QueryParameterError } from './equipment-dataset.js';

export { DATASETS } from './catalog.js';

export interface OpendataOptions {
  pool: pg.Pool;
  /** Absolute base of the links in the catalogue; defaults to the request's own origin. */
  publicUrl?: string;
  /** Seconds clients and caches may reuse a response. */
  maxAgeSeconds?: number;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}, head = false) {
  res.writeHead(status, { 'content-type': type, 'access-control-allow-origin': '*', ...headers });
  res.end(head ? undefined : body);
}

const problem = (res: ServerResponse, status: number, code: string, message: string, field?: string) =>
  send(res, status, 'application/json; charset=utf-8', JSON.stringify({ error: { code, message, ...(field ? { field } : {}) } }));

/** Returns a handler that answers `/opendata/...` requests and returns false for any other path. */
export function createOpendataHandler(options: OpendataOptions): Handler {
  const { pool, maxAgeSeconds = 300 } = options;
  const baseUrlOf = (req: IncomingMessage) => {
    if (options.publicUrl) return options.publicUrl.replace(/\/$/, '');
    const host = req.headers.host ?? 'localhost';
    return /^[A-Za-z0-9.:[\]-]+$/.test(host) ? `http://${host}` : 'http://localhost';
  };

  // Conditional GET: the version is computed without building the body.
  async function cached(req: IncomingMessage, res: ServerResponse, type: string, version: string, lastModified: Date | null, body: () => Promise<string>) {
    const etag = `"${createHash('sha256').update(version).digest('base64url').slice(0, 27)}"`;
    const headers: Record<string, string> = {
      etag,
      'cache-control': `public, max-age=${maxAgeSeconds}`,
      ...(lastModified ? { 'last-modified': lastModified.toUTCString() } : {}),
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, { ...headers, 'access-control-allow-origin': '*' });
      res.end();
      return;
    }
    send(res, 200, type, await body(), headers, req.method === 'HEAD');
  }

  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://opendata.local');
    if (url.pathname !== '/opendata' && !url.pathname.startsWith('/opendata/')) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      problem(res, 405, 'METHOD_NOT_ALLOWED', 'open data is read-only: use GET');
      return true;
    }
    try {
      switch (url.pathname.replace(/\/$/, '')) {
        case '/opendata':
        case '/opendata/catalog.jsonld': {
          const version = await equipmentVersion(pool, { kinds: null, collectivityId: null, inseeCode: null, bbox: null });
          const baseUrl = baseUrlOf(req);
          await cached(req, res, 'application/ld+json; charset=utf-8', `catalog|${baseUrl}|${version.count}|${version.lastModified?.getTime()}`, version.lastModified, async () =>
            JSON.stringify(dcatCatalog(baseUrl, { equipment: version.lastModified }), null, 2),
          );
          return true;
        }
        case '/opendata/equipment.geojson': {
          const filter = parseEquipmentFilter(url.searchParams);
          const version = await equipmentVersion(pool, filter);
          await cached(
            req,
            res,
            'application/geo+json; charset=utf-8',
            `equipment|${url.searchParams.toString()}|${version.count}|${version.lastModified?.getTime()}`,
            version.lastModified,
            () => equipmentFeatureCollection(pool, filter),
          );
          return true;
        }
        default:
          problem(res, 404, 'NOT_FOUND', `no open dataset at ${url.pathname}; the catalogue is at /opendata/catalog.jsonld`);
          return true;
      }
    } catch (error) {
      if (error instanceof QueryParameterError) {
        problem(res, 400, 'BAD_USER_INPUT', error.message, error.field);
        return true;
      }
      throw error;
    }
  };
}
