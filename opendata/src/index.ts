/**
 * The open-data module: anonymised datasets for third-party developers and partner
 * agencies, no login, stable URLs, caching headers. Mounted by the gateway under /opendata.
 * It reads only the `opendata_*` views the owning domains publish, never their tables.
 *
 * What it publishes are the registered feeds (`feed.ts`, `feeds/`), one DCAT catalogue of them
 * (`catalog.ts`) and one description per feed. Every representation (catalogue, dataset
 * description, a feed for one choice of parameters) is published the same way: its version is read first (cheap), which gives the ETag without building the
 * body; the body is built once per version and content coding and kept in a bounded cache
 * (`representation-cache.ts`); brotli or gzip when the client accepts them
 * (`content-coding.ts`), with `Vary: Accept-Encoding` and an ETag per coding, since the bytes
 * differ. Links are absolute from PUBLIC_BASE_URL, never from `Host` (`public-base-url.ts`).
 * `Access-Control-Allow-Origin` is `*` whatever the `Origin`, so responses do not vary on it.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type pg from 'pg';
import { sendProblem, type ProblemInput } from '@connecte/shared/problem';
import { dcatCatalog, dcatDataset, type CatalogEntry } from './catalog.js';
import { encode, negotiateContentCoding } from './content-coding.js';
import { FeedRegistry, type Feed, type FeedVersion } from './feed.js';
import { FEEDS } from './feeds/index.js';
import { checkParameters, QueryParameterError } from './parameters.js';
import { CATALOG_PATH, DATASETS_PREFIX, OPENDATA_PREFIX } from './paths.js';
import { publicBaseUrl } from './public-base-url.js';
import { RepresentationCache } from './representation-cache.js';

export { FEEDS } from './feeds/index.js';
export type { Feed, FeedVersion, DatasetMetadata } from './feed.js';

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
  /** The feeds to publish; every registered one (`feeds/index.ts`) by default. */
  feeds?: readonly Feed[];
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

const JSON_LD = 'application/ld+json; charset=utf-8';

/** Open data is public: errors are readable cross-origin like the data. */
const problem = (res: ServerResponse, status: number, input: ProblemInput, headers: Record<string, string> = {}) =>
  sendProblem(res, status, input, { 'access-control-allow-origin': '*', ...headers });

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`. */
function matchesIfNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return (header.match(/(?:W\/)?"[^"]*"/g) ?? []).some((tag) => tag.replace(/^W\//, '') === etag);
}

interface Representation<V extends FeedVersion> {
  contentType: string;
  /** Names what is published apart from the data's version: document, parameters, base URL. */
  key: string;
  /** Request headers besides Accept-Encoding the bytes depend on. */
  varies: readonly string[];
  version: (db: pg.ClientBase) => Promise<V>;
  body: (db: pg.ClientBase, version: V) => Promise<string | Uint8Array>;
}

const bufferOf = (body: string | Uint8Array) =>
  typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);

/** Returns a handler that answers `/opendata/...` requests and returns false for any other path. */
export function createOpendataHandler(options: OpendataOptions): Handler {
  const { pool, maxAgeSeconds = 300 } = options;
  const registry = new FeedRegistry(options.feeds ?? FEEDS);
  const base = publicBaseUrl(options.publicUrl, options.trustedProxies ?? []);
  const cache = new RepresentationCache(options.cacheBytes ?? 32 * 1024 * 1024);

  async function publish<V extends FeedVersion>(req: IncomingMessage, res: ServerResponse, representation: Representation<V>) {
    const vary = ['Accept-Encoding', ...representation.varies].join(', ');
    const coding = negotiateContentCoding(req.headers['accept-encoding']);
    if (coding === null) {
      const detail = 'Accept-Encoding refuses every coding served here: br, gzip, identity';
      problem(res, 406, { code: 'NOT_ACCEPTABLE', detail, field: 'Accept-Encoding' }, { vary });
      return;
    }
    // One snapshot for the version and the body, so that the bytes kept under an ETag are the
    // data that ETag names even when an asset changes in between.
    const db = await pool.connect();
    let bytes: Buffer | null = null;
    let headers: Record<string, string>;
    try {
      await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const version = await representation.version(db);
      const tag = createHash('sha256').update(`${representation.key}|${version.tag}`).digest('base64url').slice(0, 27);
      const etag = coding === 'identity' ? `"${tag}"` : `"${tag}-${coding}"`;
      headers = {
        etag,
        vary,
        'cache-control': `public, max-age=${maxAgeSeconds}`,
        'access-control-allow-origin': '*',
        // Browser apps revalidate with the ETag; it is not readable cross-origin unless exposed.
        'access-control-expose-headers': 'etag, last-modified',
        ...(version.lastModified ? { 'last-modified': version.lastModified.toUTCString() } : {}),
      };
      if (!matchesIfNoneMatch(req.headers['if-none-match'], etag)) {
        const identity = () => cache.get(`"${tag}"`, async () => bufferOf(await representation.body(db, version)));
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
      'content-type': representation.contentType,
      'content-length': String(bytes.length),
      ...(coding === 'identity' ? {} : { 'content-encoding': coding }),
      ...headers,
    });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  /** The whole dataset of every feed, in one snapshot: the catalogue's `dct:modified` and its version. */
  async function catalogVersion(db: pg.ClientBase): Promise<FeedVersion & { entries: CatalogEntry[] }> {
    const entries: CatalogEntry[] = [];
    const tags: string[] = [];
    for (const feed of registry.feeds) {
      const version = await registry.wholeVersion(db, feed);
      entries.push({ feed, modified: version.lastModified });
      tags.push(version.tag);
    }
    const latest = Math.max(...entries.map(({ modified }) => modified?.getTime() ?? Number.NEGATIVE_INFINITY));
    return { tag: JSON.stringify(tags), lastModified: Number.isFinite(latest) ? new Date(latest) : null, entries };
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, params: URLSearchParams) {
    if (path === OPENDATA_PREFIX || path === CATALOG_PATH) {
      checkParameters(params, []);
      const baseUrl = base.of(req);
      return publish(req, res, {
        contentType: JSON_LD,
        key: `catalog|${baseUrl}`,
        varies: base.varies,
        version: catalogVersion,
        body: async (_db, { entries }) => JSON.stringify(dcatCatalog(baseUrl, entries), null, 2),
      });
    }
    const described = path.startsWith(DATASETS_PREFIX) ? registry.withId(path.slice(DATASETS_PREFIX.length)) : undefined;
    if (described) {
      checkParameters(params, []);
      const baseUrl = base.of(req);
      return publish(req, res, {
        contentType: JSON_LD,
        key: `dataset|${described.id}|${baseUrl}`,
        varies: base.varies,
        version: (db) => registry.wholeVersion(db, described),
        body: async (_db, version) => JSON.stringify(dcatDataset(baseUrl, { feed: described, modified: version.lastModified }), null, 2),
      });
    }
    const feed = registry.at(path);
    if (feed) {
      const selection = feed.parse(params);
      return publish(req, res, {
        contentType: feed.contentType,
        key: `feed|${feed.id}|${JSON.stringify(selection)}`,
        varies: [],
        version: (db) => feed.version(db, selection),
        body: (db, version) => feed.render(db, selection, version),
      });
    }
    const detail = `no open dataset at ${path.slice(0, 200)}; the catalogue is at ${CATALOG_PATH}`;
    problem(res, 404, { code: 'NOT_FOUND', detail });
  }

  return async (req, res) => {
    // Parsed from the path alone: a request target such as `//host/...` must not become a host.
    const url = new URL(`http://opendata.local${req.url?.startsWith('/') ? req.url : '/'}`);
    if (url.pathname !== OPENDATA_PREFIX && !url.pathname.startsWith(`${OPENDATA_PREFIX}/`)) return false;
    if (req.method === 'OPTIONS') {
      // Public data: any origin may read it, including with the conditional headers a browser
      // app sends itself (If-None-Match), which make its request need a preflight.
      res.writeHead(204, {
        'access-control-allow-origin': '*',
        'access-control-allow-methods': 'GET, HEAD',
        'access-control-allow-headers': 'if-none-match, accept-encoding, accept',
        'access-control-max-age': '86400',
        allow: 'GET, HEAD, OPTIONS',
      });
      res.end();
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      problem(res, 405, { code: 'METHOD_NOT_ALLOWED', detail: 'open data is read-only: use GET' }, { allow: 'GET, HEAD' });
      return true;
    }
    try {
      await route(req, res, url.pathname.replace(/\/$/, ''), url.searchParams);
    } catch (error) {
      if (!(error instanceof QueryParameterError)) throw error;
      problem(res, 400, { code: 'BAD_USER_INPUT', detail: error.message, field: error.field });
    }
    return true;
  };
}
