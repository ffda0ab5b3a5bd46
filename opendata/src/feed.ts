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
import { CATALOG_PATH, DATASETS_PREFIX, OPENDATA_PREFIX } from './paths.js';

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
  /** Dublin Core frequency (`http://purl.org/cld/freq/<frequency>`). */
  frequency: 'continuous' | 'daily' | 'weekly' | 'monthly';
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
   * Reads the query string; throws QueryParameterError (`parameters.ts`) naming the parameter.
   * No parameters at all selects the whole dataset, the one the catalogue describes. Equal
   * selections must give equal JSON (sorted lists, no repeats): the JSON names the cached bytes.
   */
  parse(params: URLSearchParams): Params;
  /** The version of what `params` selects, read in the snapshot `render` will use. */
  version(db: pg.ClientBase, params: Params): Promise<FeedVersion>;
  /** The body of that version: text or bytes. */
  render(db: pg.ClientBase, params: Params, version: FeedVersion): Promise<string | Uint8Array>;
}

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
      if (feed.path === CATALOG_PATH || `${feed.path}/`.startsWith(DATASETS_PREFIX)) {
        refuse(`${CATALOG_PATH} and ${DATASETS_PREFIX}… are the catalogue's own URLs`);
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
