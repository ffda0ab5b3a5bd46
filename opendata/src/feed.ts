/**
 * An open-data feed: one published dataset, declared in one file under `feeds/` and listed in
 * `feeds/index.ts`. The router (`index.ts`) and the DCAT catalogue (`catalog.ts`) know nothing
 * of any feed beyond this interface: what a feed declares is all they publish.
 *
 * The module publishes every feed the same way: `version` first (cheap), which gives the ETag
 * without building the body; `render` only when the client does not hold that version, once per
 * version and content coding however many clients ask; both inside one REPEATABLE READ
 * snapshot, so that the bytes kept under an ETag are the data that ETag names.
 */
import type pg from 'pg';
import { CATALOG_PATH, CATALOG_TURTLE_PATH, DATASETS_PREFIX, OPENDATA_PREFIX } from './paths.js';

export interface FeedVersion {
  /** Changes whenever the data the parameters select does (row ids, update times, count…). */
  tag: string;
  /** `Last-Modified`, and the dataset's `dct:modified` for the whole dataset; null when unknown or empty. */
  lastModified: Date | null;
}

/** The feed's entry in the DCAT catalogue (data.gouv.fr harvests it). */
export interface DatasetMetadata {
  title: string;
  description: string;
  keywords: readonly string[];
  /** URI of the licence of the distribution. */
  licence: string;
  /** `dct:format`: GeoJSON, GTFS-RT, DATEX II… */
  format: string;
  /** `dct:accrualPeriodicity`, as the EU frequency vocabulary's CONT, DAILY, WEEKLY, MONTHLY. */
  frequency: 'continuous' | 'daily' | 'weekly' | 'monthly';
  /**
   * `dct:temporal`: the period the data covers, `YYYY-MM-DD`; no `end` for a dataset still
   * updated. Default: from the day the hub started publishing (`PUBLISHED_SINCE`, catalog.ts), open-ended.
   */
  temporal?: { start: string; end?: string };
  /** `dct:conformsTo`: URIs of the standards the distribution follows (the GTFS-RT reference, DATEX II 3.7, RFC 7946…). */
  conformsTo?: readonly string[];
}

export interface Feed<Params = unknown> {
  /** `dct:identifier` and `/opendata/datasets/<id>`: harvesters key the dataset on it, it never changes. */
  readonly id: string;
  /** The distribution's URL under the hub, e.g. `/opendata/equipment.geojson`. */
  readonly path: string;
  /**
   * `Content-Type` of the body; its media type without parameters is the distribution's
   * `dcat:mediaType`. A text feed says `; charset=utf-8` (strings are sent as UTF-8), a binary
   * one (GTFS-RT protobuf) says none.
   */
  readonly contentType: string;
  readonly dataset: DatasetMetadata;
  /**
   * `Cache-Control: public, max-age=<seconds>` of the feed's answers: how long clients and caches
   * may reuse one without asking again, i.e. the freshness the feed promises (GTFS-RT positions:
   * 10). A whole number from 0 (always revalidate: the ETag still saves the body) to 86400.
   * Default: the handler's `maxAgeSeconds`, 300.
   */
  readonly maxAgeSeconds?: number;
  /**
   * The `Content-Type` of what `params` selects, when it depends on them (GTFS-RT's
   * `?format=json` is `application/json; charset=utf-8`); `contentType` otherwise. `Accept` is
   * negotiated against it, and the ETag already differs since the selection does.
   */
  contentTypeOf?(params: Params): string;
  /**
   * At most `limit` [lon, lat] positions of the whole dataset for the index page's map
   * preview (`index-page.ts`). Optional: a GeoJSON feed's preview is sampled from its body; a
   * feed in another format (GTFS stops, DATEX II car parks) may give some here. Read only
   * `opendata_*` views; runs in the index page's snapshot.
   */
  previewPoints?(db: pg.ClientBase, limit: number): Promise<[number, number][]>;
  /**
   * Reads the query string; throws QueryParameterError (`parameters.ts`) naming the parameter.
   * No parameters at all selects the whole dataset, the one the catalogue describes. Equal
   * selections must give equal JSON (sorted lists, no repeats): the JSON names the cached bytes.
   */
  parse(params: URLSearchParams): Params;
  /** The version of what `params` selects, read in the snapshot `render` will use. */
  version(db: pg.ClientBase, params: Params): Promise<FeedVersion>;
  /**
   * The body of that version: text or bytes, or — for datasets too large to hold in memory —
   * a stream of pieces (`FeedStream`), sent as they come (chunked), compressed on the fly.
   */
  render(db: pg.ClientBase, params: Params, version: FeedVersion): Promise<FeedBody>;
}

/**
 * A body produced piece by piece, e.g. rows read from a cursor of the render's snapshot. The
 * router iterates it while the snapshot is open, writing each piece as it comes (with the
 * socket's backpressure); a client that goes away ends the iteration (`return()`: the generator's
 * `finally` runs). A streamed representation no larger than the cache's budget is kept like any
 * other; a larger one is streamed again for each request. Nothing should be read from the
 * database before the first piece is asked for: a HEAD request never asks.
 */
export type FeedStream = AsyncIterable<string | Uint8Array>;

/** What `render` returns. */
export type FeedBody = string | Uint8Array | FeedStream;

/** True for a streamed body (anything but text or bytes). */
export const isFeedStream = (body: FeedBody): body is FeedStream =>
  typeof body !== 'string' && !(body instanceof Uint8Array) && typeof (body as FeedStream)[Symbol.asyncIterator] === 'function';

const ID = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;
const SEGMENT = '[A-Za-z0-9_~-][A-Za-z0-9._~-]*';
const FEED_PATH = new RegExp(`^${OPENDATA_PREFIX}(?:/${SEGMENT})+$`);
const CONTENT_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+(?:\s*;\s*[a-z0-9!#$&^_.+-]+=[^;]+)*$/i;

/** A feed whose declaration cannot be published as it is: the hub refuses to start. */
export class FeedRegistrationError extends Error {}

/** The feeds a handler publishes, checked once at start-up, looked up by path and id. */
export class FeedRegistry {
  readonly feeds: readonly Feed[];
  private readonly byPath = new Map<string, Feed>();
  private readonly byId = new Map<string, Feed>();
  /** What each feed's empty query string selects: the whole dataset. */
  private readonly whole = new Map<Feed, unknown>();

  constructor(feeds: readonly Feed[]) {
    this.feeds = feeds;
    for (const feed of feeds) {
      const refuse = (reason: string): never => {
        throw new FeedRegistrationError(`open-data feed '${feed.id}' (${feed.path}): ${reason}`);
      };
      if (!ID.test(feed.id)) refuse('its id must be lower-case letters, digits and single hyphens (it is a URL segment and the dct:identifier)');
      if (!FEED_PATH.test(feed.path)) refuse(`its path must be ${OPENDATA_PREFIX}/<name>, with no trailing slash, '.' first or query`);
      if (feed.path === CATALOG_PATH || feed.path === CATALOG_TURTLE_PATH || `${feed.path}/`.startsWith(DATASETS_PREFIX)) {
        refuse(`${CATALOG_PATH}, ${CATALOG_TURTLE_PATH} and ${DATASETS_PREFIX}… are the catalogue's own URLs`);
      }
      const maxAge = feed.maxAgeSeconds;
      if (maxAge !== undefined && !(Number.isInteger(maxAge) && maxAge >= 0 && maxAge <= 86_400)) {
        refuse(`maxAgeSeconds ${maxAge} must be a whole number of seconds from 0 to 86400`);
      }
      const { temporal, conformsTo, licence } = feed.dataset;
      for (const uri of [licence, ...(conformsTo ?? [])]) {
        if (!/^[A-Za-z][A-Za-z0-9+.-]*:[^\u0000-\u0020<>"{}|^`\\]+$/.test(uri)) refuse(`'${uri.slice(0, 80)}' is not an absolute IRI (licence, conformsTo): percent-encode it`);
      }
      const isDate = (value: string) => {
        const time = Date.parse(`${value}T00:00:00Z`);
        return /^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(time) && new Date(time).toISOString().startsWith(value);
      };
      if (temporal && (!isDate(temporal.start) || (temporal.end !== undefined && (!isDate(temporal.end) || temporal.end < temporal.start)))) {
        refuse(`dataset.temporal must be { start: 'YYYY-MM-DD', end?: 'YYYY-MM-DD' } with start ≤ end`);
      }
      const other = this.byId.get(feed.id);
      if (other) refuse(`the id '${feed.id}' is registered twice (also for ${other.path})`);
      const samePath = this.byPath.get(feed.path);
      if (samePath) refuse(`the path ${feed.path} is registered twice (also by feed '${samePath.id}')`);
      if (!CONTENT_TYPE.test(feed.contentType)) refuse(`content type '${feed.contentType}' is not type/subtype[; parameter=value]`);
      const charset = /;\s*charset=([^;\s]+)/i.exec(feed.contentType)?.[1];
      if (charset !== undefined && charset.toLowerCase() !== 'utf-8') refuse(`charset ${charset}: text is sent as UTF-8, say charset=utf-8`);
      try {
        this.whole.set(feed, feed.parse(new URLSearchParams()));
      } catch (error) {
        refuse(`a request without parameters must select the whole dataset (the catalogue describes it), but: ${(error as Error).message}`);
      }
      this.byId.set(feed.id, feed);
      this.byPath.set(feed.path, feed);
    }
  }

  at(path: string): Feed | undefined {
    return this.byPath.get(path);
  }

  withId(id: string): Feed | undefined {
    return this.byId.get(id);
  }

  /** The version of the whole dataset: the catalogue's `dct:modified` and its ETag. */
  wholeVersion(db: pg.ClientBase, feed: Feed): Promise<FeedVersion> {
    return feed.version(db, this.whole.get(feed));
  }
}
