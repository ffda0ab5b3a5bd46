/**
 * What the three GTFS-Realtime feeds share: the official `gtfs-realtime.proto` (copied unmodified
 * into `opendata/reference/gtfs-rt/`, read once when the module loads), the `format` parameter
 * (`pb`, the default, or `json`: the protobuf JSON mapping of the same message — lowerCamelCase
 * names, enums by name, 64-bit integers as strings), the full-dataset header, and how a feed is
 * declared: a version (cheap) and the message of that version, as the plain objects protobufjs
 * encodes (enums as numbers).
 *
 * The header timestamp comes from the data, never from the clock of the request: equal versions
 * are equal bytes (the ETag names them), and it moves whenever the content does — each view
 * keeps the rows that leave the published set (stale positions, works done), and a row that
 * leaves by passing a moment in time contributes that moment — so a consumer never sees content
 * change under an unchanged timestamp (validator E017), nor the timestamp go back (E018).
 */
import protobuf from 'protobufjs';
import type pg from 'pg';
import type { DatasetMetadata, Feed, FeedVersion } from '../feed.js';
import { checkParameters, QueryParameterError, shown } from '../parameters.js';

const PROTO = new URL('../../reference/gtfs-rt/gtfs-realtime.proto', import.meta.url);
const root = protobuf.loadSync(decodeURIComponent(PROTO.pathname));

/** `transit_realtime.FeedMessage` of the official proto. */
export const FeedMessage = root.lookupType('transit_realtime.FeedMessage');

const enumValues = (name: string) => root.lookupEnum(name).values;
export const VEHICLE_STOP_STATUS = enumValues('transit_realtime.VehiclePosition.VehicleStopStatus');
export const ALERT_CAUSE = enumValues('transit_realtime.Alert.Cause');
export const ALERT_EFFECT = enumValues('transit_realtime.Alert.Effect');
export const TRIP_SCHEDULE_RELATIONSHIP = enumValues('transit_realtime.TripDescriptor.ScheduleRelationship');
export const STOP_SCHEDULE_RELATIONSHIP = enumValues('transit_realtime.TripUpdate.StopTimeUpdate.ScheduleRelationship');
const FULL_DATASET = enumValues('transit_realtime.FeedHeader.Incrementality').FULL_DATASET;

/** The media types served: the protobuf as GTFS-RT consumers expect it, and its JSON mapping. */
export const PROTOBUF_TYPE = 'application/x-protobuf';
export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * Positions and trip updates: a client or cache may keep a response 10 s. The hub answers each
 * request from the database's current state (the version is read per request), buses report every
 * 15 s, so what a client holds is at most ~25 s behind the bus (the bound: 30 s).
 */
export const LIVE_MAX_AGE_SECONDS = 10;

/**
 * A bus not heard from for 90 s leaves the positions and trip updates (GTFS-Realtime best
 * practices: vehicle positions and trip updates no older than 90 s); it comes back with its next
 * position. Six reports missed: a bus in a dead zone for a minute stays on the map.
 */
export const LIVE_ENTITY_SECONDS = 90;

export type RealtimeFormat = 'protobuf' | 'json';
export interface RealtimeSelection {
  format: RealtimeFormat;
}

/** `format`: absent, `pb` or `protobuf` → the protobuf; `json` → its JSON mapping. Nothing else. */
export function parseRealtimeSelection(params: URLSearchParams): RealtimeSelection {
  checkParameters(params, ['format']);
  const format = params.get('format');
  if (format === null || format === 'pb' || format === 'protobuf') return { format: 'protobuf' };
  if (format === 'json') return { format: 'json' };
  throw new QueryParameterError('format', `${shown(format)} is not served here: use json, or pb (the protobuf, the default)`);
}

/** A version whose header timestamp (POSIX seconds) the message uses. */
export interface RealtimeVersion extends FeedVersion {
  headerTimestamp: number;
}

/** The message as protobufjs encodes it: plain objects, camelCase fields, enums as numbers. */
export interface FeedMessageObject {
  header: { gtfsRealtimeVersion: string; incrementality: number; timestamp: number };
  entity: Record<string, unknown>[];
}

export const fullDataset = (timestamp: number, entity: Record<string, unknown>[]): FeedMessageObject => ({
  header: { gtfsRealtimeVersion: '2.0', incrementality: FULL_DATASET, timestamp },
  entity,
});

export const encodeFeedMessage = (message: FeedMessageObject): Uint8Array => FeedMessage.encode(message).finish();

/** The protobuf JSON mapping of encoded bytes (what `?format=json` serves): decoded, so it is exactly the protobuf's content. */
export const feedMessageJson = (bytes: Uint8Array): unknown => FeedMessage.decode(bytes).toJSON();

/** Selection-dependent content type and the freshness a feed declares (see the open-data README). */
export interface RealtimeFeed extends Feed<RealtimeSelection> {
  readonly maxAgeSeconds: number;
  contentTypeOf(selection: RealtimeSelection): string;
  /** The message of a version, before encoding (the bench encodes it alone). */
  message(db: pg.ClientBase, version: RealtimeVersion): Promise<FeedMessageObject>;
}

export function realtimeFeed(spec: {
  id: string;
  path: string;
  dataset: DatasetMetadata;
  maxAgeSeconds: number;
  version(db: pg.ClientBase): Promise<RealtimeVersion>;
  message(db: pg.ClientBase, version: RealtimeVersion): Promise<FeedMessageObject>;
}): RealtimeFeed {
  return {
    id: spec.id,
    path: spec.path,
    contentType: PROTOBUF_TYPE,
    dataset: spec.dataset,
    maxAgeSeconds: spec.maxAgeSeconds,
    contentTypeOf: (selection) => (selection.format === 'json' ? JSON_TYPE : PROTOBUF_TYPE),
    parse: parseRealtimeSelection,
    version: (db) => spec.version(db),
    message: spec.message,
    async render(db, selection, version) {
      const bytes = encodeFeedMessage(await spec.message(db, version as RealtimeVersion));
      return selection.format === 'json' ? JSON.stringify(feedMessageJson(bytes)) : bytes;
    },
  };
}

/**
 * The version and header timestamp of the live feeds (positions and trip updates: both are the
 * buses' states, so both carry the same timestamp). A row counts while observed within
 * LIVE_ENTITY_SECONDS; the timestamp is the latest of: each published row's write, each stale
 * row's write or the moment it left (observation + LIVE_ENTITY_SECONDS), the newest observation
 * (the header is never older than an entity), and the static network's import (trip fields
 * depend on it).
 */
export async function liveVersion(db: pg.ClientBase): Promise<RealtimeVersion> {
  const { rows } = await db.query<{ count: string; checksum: string | null; stamp: Date | null; feed: string | null }>(
    `SELECT count(*) FILTER (WHERE live)::text AS count,
            sum(hashtextextended(vehicle_id || '|' || extract(epoch FROM updated_at)::text, 0)) FILTER (WHERE live)::text AS checksum,
            greatest(max(CASE WHEN live THEN greatest(updated_at, observed_at) ELSE greatest(updated_at, observed_at + make_interval(secs => $1)) END),
                     (SELECT imported_at FROM opendata_gtfs_feed_info)) AS stamp,
            (SELECT feed_id::text FROM opendata_gtfs_feed_info) AS feed
     FROM (SELECT vehicle_id, observed_at, updated_at, observed_at > now() - make_interval(secs => $1) AS live FROM opendata_vehicle_positions) p`,
    [LIVE_ENTITY_SECONDS],
  );
  const { count, checksum, stamp, feed } = rows[0];
  return {
    tag: `${count}|${checksum}|${stamp?.getTime() ?? ''}|${feed ?? ''}`,
    lastModified: stamp,
    headerTimestamp: stamp ? Math.floor(stamp.getTime() / 1000) : 0,
  };
}
