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
 *
 * Before anything, each request counts against its client address's budget (`rate-limit.ts`:
 * 429 with Retry-After, an allow-list never throttled). `Accept` is negotiated (`accept.ts`):
 * `/opendata/` is the index page (`index-page.ts`) for a browser and the catalogue for anyone
 * else, `catalog.ttl` the catalogue in Turtle (`turtle.ts`); a type a URL cannot send is a 406.
 * An unknown path is a 404 listing the valid ones. Each feed says its own `Cache-Control` max-age.
 */
import { createHash } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type pg from 'pg';
import { PROBLEM_CONTENT_TYPE, sendProblem, type ProblemInput } from '@connecte/shared/problem';
import { mediaTypeOf, negotiateMediaType } from './accept.js';
import { dcatCatalog, dcatDataset, type CatalogEntry, type CatalogOptions } from './catalog.js';
import { encode, negotiateContentCoding } from './content-coding.js';
import { FeedRegistry, isFeedStream, type Feed, type FeedBody, type FeedStream, type FeedVersion } from './feed.js';
import { FEEDS } from './feeds/index.js';
import { geojsonPreviewPoints, HTML, INDEX_PAGE_CSP, PREVIEW_POINTS, renderIndexPage, type IndexEntry } from './index-page.js';
import { checkParameters, QueryParameterError } from './parameters.js';
import { CATALOG_PATH, CATALOG_TURTLE_PATH, DATASETS_PREFIX, datasetPath, INDEX_PAGE_PATH, OPENDATA_PREFIX } from './paths.js';
import { publicBaseUrl } from './public-base-url.js';
import { createAddressRateLimit, type RateLimitOptions } from './rate-limit.js';
import { RepresentationCache } from './representation-cache.js';
import { sendStreamed, STREAMED } from './streaming.js';
import { jsonLdToTurtle } from './turtle.js';

export { FEEDS } from './feeds/index.js';
export type { Feed, FeedVersion, DatasetMetadata } from './feed.js';
export type { RateLimitOptions } from './rate-limit.js';

export interface OpendataOptions {
  pool: pg.Pool;
  /** PUBLIC_BASE_URL: the absolute base of every link the catalogue publishes. */
  publicUrl: string;
  /** TRUSTED_PROXIES: peers whose `Forwarded` / `X-Forwarded-Host` / `-Proto` name the public host. */
  trustedProxies?: readonly string[];
  /** Seconds clients and caches may reuse a response, unless a feed says otherwise (`Feed.maxAgeSeconds`). */
  maxAgeSeconds?: number;
  /**
   * Per-address rate limit (OPENDATA_RATE_PER_SECOND, _BURST, _ALLOWLIST); none when absent
   * (a handler built by a test or a bench). Client addresses are read as TRUSTED_PROXIES says.
   */
  rateLimit?: RateLimitOptions;
  /** OPENDATA_CONTACT_EMAIL: the catalogue's contact point; the index page's URL without it. */
  contactEmail?: string;
  /** Memory for built and compressed representations (the full GeoJSON is 2.8 MB raw, ~130 kB in brotli). */
  cacheBytes?: number;
  /**
   * OPENDATA_VERSION_REUSE_MS: for this long after a request read a representation's version, the
   * next ones reuse it without a database round trip when its bytes are cached (never longer than
   * a tenth of the representation's max-age). 0, the default of a handler built without it: every
   * request reads the version.
   */
  versionReuseMs?: number;
  /** The feeds to publish; every registered one (`feeds/index.ts`) by default. */
  feeds?: readonly Feed[];
}

type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

const JSON_LD = 'application/ld+json; charset=utf-8';
const TURTLE = 'text/turtle; charset=utf-8';

/**
 * A problem with extension members besides `code` and `field` (RFC 9457 §3.2), e.g. the valid
 * paths of a 404: the same members as `sendProblem`'s, then the extensions.
 */
function problemWith(res: ServerResponse, status: number, input: ProblemInput, extensions: Record<string, unknown>, headers: Record<string, string> = {}) {
  const url = res.req.url ?? '/';
  const path = url.split('?')[0];
  const body = JSON.stringify({
    type: 'about:blank',
    title: STATUS_CODES[status] ?? `HTTP ${status}`,
    status,
    detail: input.detail,
    ...(path.length <= 512 ? { instance: path } : {}),
    code: input.code,
    ...(input.field !== undefined ? { field: input.field } : {}),
    ...extensions,
  });
  res.writeHead(status, {
    'access-control-allow-origin': '*',
    ...headers,
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/** The ETag's base (without coding) of a representation key and a data version. */
const tagOf = (key: string, versionTag: string) => createHash('sha256').update(`${key}|${versionTag}`).digest('base64url').slice(0, 27);

/** The representation key of a feed's selection: its cached bytes are shared by every URL that names it. */
const feedKey = (feed: Feed, selection: unknown) => `feed|${feed.id}|${JSON.stringify(selection)}`;

/** Past this a streamed GeoJSON body is not read for the index page's preview. */
const PREVIEW_MAX_BYTES = 16 * 1024 * 1024;

/** Thrown through the cache when a streamed body is too large to preview: nothing is kept. */
const TOO_LARGE = Symbol('too large to preview');

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
  /** `Cache-Control: public, max-age=…`. */
  maxAgeSeconds: number;
  /** Further response headers of a 200 or 304 (the index page's Content-Security-Policy). */
  headers?: Record<string, string>;
  /** Names what is published apart from the data's version: document, parameters, base URL. */
  key: string;
  /** Request headers besides Accept-Encoding the bytes depend on. */
  varies: readonly string[];
  version: (db: pg.ClientBase) => Promise<V>;
  body: (db: pg.ClientBase, version: V) => Promise<FeedBody>;
}

const bufferOf = (body: string | Uint8Array) =>
  typeof body === 'string' ? Buffer.from(body) : Buffer.from(body.buffer, body.byteOffset, body.byteLength);

/** Returns a handler that answers `/opendata/...` requests and returns false for any other path. */
export function createOpendataHandler(options: OpendataOptions): Handler {
  const { pool, maxAgeSeconds = 300 } = options;
  const registry = new FeedRegistry(options.feeds ?? FEEDS);
  const base = publicBaseUrl(options.publicUrl, options.trustedProxies ?? []);
  const cacheBytes = options.cacheBytes ?? 32 * 1024 * 1024;
  const cache = new RepresentationCache(cacheBytes);
  const versionReuseMs = options.versionReuseMs ?? 0;
  const rateLimit = options.rateLimit ? createAddressRateLimit(options.rateLimit, options.trustedProxies ?? []) : null;
  if (options.contactEmail !== undefined && !/^[^\s@<>"]+@[^\s@<>"]+\.[^\s@<>"]+$/.test(options.contactEmail)) {
    throw new Error(`OPENDATA_CONTACT_EMAIL: '${options.contactEmail}' is not an e-mail address`);
  }
  const catalogOptions: CatalogOptions = { contactEmail: options.contactEmail };

  // The version each representation had at its last read, and when (`versionReuseMs`).
  const recentVersions = new Map<string, { version: FeedVersion; at: number }>();
  const RECENT_VERSIONS_KEPT = 1_000;

  async function publish<V extends FeedVersion>(req: IncomingMessage, res: ServerResponse, representation: Representation<V>) {
    const vary = ['Accept-Encoding', ...representation.varies].join(', ');
    const coding = negotiateContentCoding(req.headers['accept-encoding']);
    if (coding === null) {
      const detail = 'Accept-Encoding refuses every coding served here: br, gzip, identity';
      problem(res, 406, { code: 'NOT_ACCEPTABLE', detail, field: 'Accept-Encoding' }, { vary });
      return;
    }
    const named = (version: FeedVersion) => {
      const tag = tagOf(representation.key, version.tag);
      const etag = coding === 'identity' ? `"${tag}"` : `"${tag}-${coding}"`;
      const headers: Record<string, string> = {
        etag,
        vary,
        'cache-control': `public, max-age=${representation.maxAgeSeconds}`,
        'access-control-allow-origin': '*',
        // Browser apps revalidate with the ETag; it is not readable cross-origin unless exposed.
        'access-control-expose-headers': 'etag, last-modified',
        ...(version.lastModified ? { 'last-modified': version.lastModified.toUTCString() } : {}),
        ...representation.headers,
      };
      return { tag, etag, headers };
    };
    const send = (bytes: Buffer | null, headers: Record<string, string>) => {
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
    };
    // A version read a moment ago, whose bytes are cached, answers without the database.
    const reuseMs = Math.min(versionReuseMs, representation.maxAgeSeconds * 100);
    const recent = reuseMs > 0 ? recentVersions.get(representation.key) : undefined;
    if (recent && performance.now() - recent.at < reuseMs) {
      const { etag, headers } = named(recent.version);
      if (matchesIfNoneMatch(req.headers['if-none-match'], etag)) return send(null, headers);
      const kept = cache.peek(etag);
      if (kept) return send(await kept, headers);
    }
    // One snapshot for the version and the body, so that the bytes kept under an ETag are the
    // data that ETag names even when an asset changes in between.
    const db = await pool.connect();
    let bytes: Buffer | null = null;
    let headers: Record<string, string>;
    try {
      await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const version = await representation.version(db);
      if (reuseMs > 0) {
        if (recentVersions.size >= RECENT_VERSIONS_KEPT) recentVersions.clear();
        recentVersions.set(representation.key, { version, at: performance.now() });
      }
      const { tag, etag, headers: own } = named(version);
      headers = own;
      if (!matchesIfNoneMatch(req.headers['if-none-match'], etag)) {
        // A streamed body (feed.ts `FeedStream`) is not built into the cache: it is sent as it
        // comes, inside this snapshot, and cached afterwards when it turned out small enough.
        let stream: FeedStream | null = null;
        const identity = () =>
          cache.get(`"${tag}"`, async () => {
            const body = await representation.body(db, version);
            if (!isFeedStream(body)) return bufferOf(body);
            stream = body;
            throw STREAMED;
          });
        try {
          bytes = await (coding === 'identity' ? identity() : cache.get(etag, async () => encode(coding, await identity())));
        } catch (error) {
          if (error !== STREAMED) throw error;
          // Another request's stream (shared through the cache) cannot be replayed: render our own.
          stream ??= (await representation.body(db, version)) as FeedStream;
          const head = { 'content-type': representation.contentType, ...(coding === 'identity' ? {} : { 'content-encoding': coding }), ...headers };
          const copies = await sendStreamed(req, res, head, stream, coding, cacheBytes);
          if (copies === null) {
            db.release(true); // stopped half-way (the client went away): the cursor may still be open
            return;
          }
          // Kept before anything else is awaited: a client may ask again as soon as the last byte is sent.
          if (copies.identity) void cache.get(`"${tag}"`, async () => copies.identity!);
          if (copies.coded) void cache.get(etag, async () => copies.coded!);
          await db.query('COMMIT');
          db.release();
          return;
        }
      }
      await db.query('COMMIT');
    } catch (error) {
      // The connection may be inside a failed transaction: it is not given back to the pool.
      db.release(true);
      throw error;
    }
    db.release();
    send(bytes, headers);
  }

  /** The whole dataset of every feed, in one snapshot: the catalogue's `dct:modified` and its version. */
  async function catalogVersion(db: pg.ClientBase): Promise<FeedVersion & { entries: CatalogEntry[]; versions: FeedVersion[] }> {
    const entries: CatalogEntry[] = [];
    const versions: FeedVersion[] = [];
    for (const feed of registry.feeds) {
      const version = await registry.wholeVersion(db, feed);
      entries.push({ feed, modified: version.lastModified });
      versions.push(version);
    }
    const latest = Math.max(...entries.map(({ modified }) => modified?.getTime() ?? Number.NEGATIVE_INFINITY));
    return { tag: JSON.stringify(versions.map(({ tag }) => tag)), lastModified: Number.isFinite(latest) ? new Date(latest) : null, entries, versions };
  }

  const maxAgeOf = (feed: Feed) => feed.maxAgeSeconds ?? maxAgeSeconds;

  /**
   * The whole dataset's identity bytes, from the cache that serves the feed itself (so the index
   * page and the feed build it once between them); a streamed body is read up to
   * PREVIEW_MAX_BYTES, null past that.
   */
  async function wholeBytes(db: pg.ClientBase, feed: Feed, version: FeedVersion): Promise<Buffer | null> {
    const selection = feed.parse(new URLSearchParams());
    try {
      return await cache.get(`"${tagOf(feedKey(feed, selection), version.tag)}"`, async () => {
        const body = await feed.render(db, selection, version);
        if (!isFeedStream(body)) return bufferOf(body);
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const piece of body) {
          const chunk = bufferOf(piece);
          size += chunk.length;
          if (size > PREVIEW_MAX_BYTES) throw TOO_LARGE; // leaving the loop closes the stream
          chunks.push(chunk);
        }
        return Buffer.concat(chunks, size);
      });
    } catch (error) {
      if (error === TOO_LARGE) return null;
      throw error;
    }
  }

  /** What the index page draws of a feed: its own preview, else a sample of its GeoJSON, else nothing. */
  async function previewOf(db: pg.ClientBase, feed: Feed, version: FeedVersion): Promise<[number, number][]> {
    if (feed.previewPoints) return (await feed.previewPoints(db, PREVIEW_POINTS)).slice(0, PREVIEW_POINTS);
    if (mediaTypeOf(feed.contentType) !== 'application/geo+json') return [];
    const bytes = await wholeBytes(db, feed, version);
    return bytes ? geojsonPreviewPoints(bytes.toString('utf8'), PREVIEW_POINTS) : [];
  }

  /** 406 naming Accept, or the media type chosen among `offers` (content types, the preferred first). */
  function negotiate(req: IncomingMessage, res: ServerResponse, offers: readonly string[], vary?: string): string | null {
    const chosen = negotiateMediaType(req.headers.accept, offers);
    if (chosen === null) {
      const available = offers.map(mediaTypeOf).join(', ');
      problem(res, 406, { code: 'NOT_ACCEPTABLE', detail: `Accept: this document is available as ${available} only`, field: 'Accept' }, vary ? { vary } : {});
    }
    return chosen;
  }

  /** The module's own documents (index, catalogue in JSON-LD and Turtle) and every feed, for a 404. */
  const validPaths = () => [INDEX_PAGE_PATH, CATALOG_PATH, CATALOG_TURTLE_PATH, ...registry.feeds.map((feed) => feed.path)];

  async function route(req: IncomingMessage, res: ServerResponse, path: string, params: URLSearchParams) {
    if (path === OPENDATA_PREFIX || path === CATALOG_PATH || path === CATALOG_TURTLE_PATH) {
      checkParameters(params, []);
      // `/opendata/` is the index page for a browser (Accept: text/html) and the JSON-LD
      // catalogue, as it always was, for any other client; the catalogue's own URLs are one type each.
      const negotiated = path === OPENDATA_PREFIX;
      const offers = negotiated ? [JSON_LD, HTML, TURTLE] : path === CATALOG_PATH ? [JSON_LD] : [TURTLE];
      const contentType = negotiate(req, res, offers, negotiated ? 'Accept' : undefined);
      if (contentType === null) return;
      const baseUrl = base.of(req);
      const varies = negotiated ? ['Accept', ...base.varies] : base.varies;
      if (contentType === HTML) {
        return publish(req, res, {
          contentType,
          maxAgeSeconds,
          headers: { 'content-security-policy': INDEX_PAGE_CSP, 'x-content-type-options': 'nosniff' },
          key: `index|${baseUrl}`,
          varies,
          version: catalogVersion,
          body: async (db, { entries, versions }) => {
            const page: IndexEntry[] = [];
            for (const [i, { feed, modified }] of entries.entries()) {
              page.push({ feed, modified, maxAgeSeconds: maxAgeOf(feed), points: await previewOf(db, feed, versions[i]) });
            }
            return renderIndexPage(baseUrl, page);
          },
        });
      }
      const catalog = (entries: CatalogEntry[]) => dcatCatalog(baseUrl, entries, catalogOptions);
      return publish(req, res, {
        contentType,
        maxAgeSeconds,
        key: `${contentType === TURTLE ? 'catalog-turtle' : 'catalog'}|${baseUrl}`,
        varies,
        version: catalogVersion,
        body: async (_db, { entries }) =>
          contentType === TURTLE ? jsonLdToTurtle(catalog(entries)) : JSON.stringify(catalog(entries), null, 2),
      });
    }
    if (path.startsWith(DATASETS_PREFIX)) {
      const described = registry.withId(path.slice(DATASETS_PREFIX.length));
      if (!described) {
        const ids = registry.feeds.map((feed) => feed.id);
        const detail = `no dataset '${path.slice(DATASETS_PREFIX.length, DATASETS_PREFIX.length + 80)}'; the datasets are ${ids.join(', ')}`;
        return problemWith(res, 404, { code: 'NOT_FOUND', detail }, { validPaths: ids.map(datasetPath) });
      }
      checkParameters(params, []);
      if (negotiate(req, res, [JSON_LD]) === null) return;
      const baseUrl = base.of(req);
      return publish(req, res, {
        contentType: JSON_LD,
        maxAgeSeconds,
        key: `dataset|${described.id}|${baseUrl}`,
        varies: base.varies,
        version: (db) => registry.wholeVersion(db, described),
        body: async (_db, version) => JSON.stringify(dcatDataset(baseUrl, { feed: described, modified: version.lastModified }, catalogOptions), null, 2),
      });
    }
    const feed = registry.at(path);
    if (feed) {
      const selection = feed.parse(params);
      const contentType = negotiate(req, res, [feed.contentTypeOf?.(selection) ?? feed.contentType]);
      if (contentType === null) return;
      return publish(req, res, {
        contentType,
        maxAgeSeconds: maxAgeOf(feed),
        key: feedKey(feed, selection),
        varies: [],
        version: (db) => feed.version(db, selection),
        body: (db, version) => feed.render(db, selection, version),
      });
    }
    const paths = validPaths();
    const detail = `no open dataset at ${path.slice(0, 200)}; the valid paths are ${paths.join(', ')} (the catalogue ${CATALOG_PATH} describes each dataset)`;
    problemWith(res, 404, { code: 'NOT_FOUND', detail }, { validPaths: paths });
  }

  return async (req, res) => {
    // Parsed from the path alone: a request target such as `//host/...` must not become a host.
    const url = new URL(`http://opendata.local${req.url?.startsWith('/') ? req.url : '/'}`);
    if (url.pathname !== OPENDATA_PREFIX && !url.pathname.startsWith(`${OPENDATA_PREFIX}/`)) return false;
    // Every request counts, whatever it asks and however it ends: a flood of errors is a flood.
    const decision = rateLimit?.take(req);
    if (decision && !decision.allowed) {
      const { retryAfterSeconds } = decision;
      const detail = `too many requests from this address: at most ${rateLimit!.perSecond} per second (bursts of ${rateLimit!.burst}); retry after ${retryAfterSeconds} s`;
      // Browser apps read Retry-After cross-origin only when it is exposed.
      problem(res, 429, { code: 'RATE_LIMITED', detail }, { 'retry-after': String(retryAfterSeconds), 'access-control-expose-headers': 'retry-after' });
      req.resume();
      return true;
    }
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
      // A body failing once its headers are sent (a stream cut short) has been answered already:
      // the socket is closed, and the caller must not try to write an error after it.
      if (res.headersSent) {
        res.destroy();
        return true;
      }
      if (!(error instanceof QueryParameterError)) throw error;
      problem(res, 400, { code: 'BAD_USER_INPUT', detail: error.message, field: error.field });
    }
    return true;
  };
}
