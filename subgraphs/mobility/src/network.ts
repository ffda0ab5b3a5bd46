/**
 * The imported GTFS network in memory (`r.network.current()`): routes, stops, shapes with their
 * points' distances and a planar copy for fast projection, trips with their stop_times, trips by
 * block and by route in order of departure, every stop's calls in order of departure, and the
 * services running on a date (calendar + calendar_dates). Everything the live-vehicle computation
 * reads is here, so that a round of positions costs no query but the store's.
 *
 * Loaded at the worker's start (`network`) and again on each `mobility.network` event (an import
 * on this instance or another); `current()` answers the last network loaded (an empty one before
 * the first load). A network is never changed once built: a reload replaces it whole.
 *
 * Times: GTFS times are seconds after "noon minus 12 h" of the service day in the agency's zone
 * (Europe/Paris); `serviceDayStartMs(date)` gives that instant, so a DST day is right.
 */
import type pg from 'pg';
import type { BusEvent } from '@connecte/shared/events';
import type { Worker } from '@connecte/shared/workers';
import type { MobilityResources } from './resources.js';
import { NETWORK_TOPIC, type NetworkShape, type NetworkTrip, type RouteRow, type StopRow, type StopTimeRow, type TripRow } from './types.js';

export const NETWORK_TIME_ZONE = 'Europe/Paris';
const DAY_MS = 86_400_000;
const WEEKDAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;

// --- Time: service days in Europe/Paris --------------------------------------------------------

const dateFormat = new Intl.DateTimeFormat('en-CA', { timeZone: NETWORK_TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' });
const offsetFormat = new Intl.DateTimeFormat('en-US', { timeZone: NETWORK_TIME_ZONE, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });

/** The Europe/Paris calendar day (YYYY-MM-DD) of an instant. */
export function parisDate(at: Date | number): string {
  return dateFormat.format(typeof at === 'number' ? new Date(at) : at);
}

/** Milliseconds Europe/Paris is ahead of UTC at an instant. */
function parisOffsetMs(ms: number): number {
  const parts: Record<string, number> = {};
  for (const part of offsetFormat.formatToParts(new Date(ms))) if (part.type !== 'literal') parts[part.type] = Number(part.value);
  const asUtc = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second);
  return asUtc - Math.floor(ms / 1000) * 1000;
}

const dayStarts = new Map<string, number>();

/** The instant GTFS time 0 of a service day stands for: noon (Europe/Paris) minus 12 hours. */
export function serviceDayStartMs(date: string): number {
  let start = dayStarts.get(date);
  if (start === undefined) {
    const [y, m, d] = date.split('-').map(Number);
    const noonUtc = Date.UTC(y, m - 1, d, 12);
    const noon = noonUtc - parisOffsetMs(noonUtc);
    start = noon - 12 * 3_600_000;
    if (dayStarts.size > 4_000) dayStarts.clear();
    dayStarts.set(date, start);
  }
  return start;
}

/** The day before/after a YYYY-MM-DD date. */
export function addDays(date: string, days: number): string {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d) + days * DAY_MS).toISOString().slice(0, 10);
}

/** `HH:MM:SS` of GTFS seconds (hours may exceed 24). */
export function gtfsTime(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

// --- Geometry -----------------------------------------------------------------------------------

/** Metres per degree of latitude, and of longitude at the equator (WGS84 mean, equirectangular). */
export const M_PER_DEG_LAT = 111_132.954;
export const M_PER_DEG_LON = 111_319.49;

/** Great-circle distance in metres (haversine, mean Earth radius). */
export function haversineM(lon1: number, lat1: number, lon2: number, lat2: number): number {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const a = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6_371_008.8 * Math.asin(Math.min(1, Math.sqrt(a)));
}

/** Initial bearing from one point to another, degrees clockwise from north in [0, 360). */
export function bearingDeg(lon1: number, lat1: number, lon2: number, lat2: number): number {
  const rad = Math.PI / 180;
  const y = Math.sin((lon2 - lon1) * rad) * Math.cos(lat2 * rad);
  const x = Math.cos(lat1 * rad) * Math.sin(lat2 * rad) - Math.sin(lat1 * rad) * Math.cos(lat2 * rad) * Math.cos((lon2 - lon1) * rad);
  return ((Math.atan2(y, x) * 180) / Math.PI + 360) % 360;
}

/**
 * A shape with a planar copy of its points (metres east/north of the network's reference point,
 * equirectangular at the network's mean latitude: under 0.1 % of error across the territory).
 * `distances` stay the geodesic ones of the import; within a segment the fraction is planar.
 */
export interface ProjectedShape extends NetworkShape {
  x: Float64Array;
  y: Float64Array;
}

/** The planar frame of a network: positions are projected with it before being matched to shapes. */
export interface PlanarFrame {
  lon0: number;
  lat0: number;
  /** Metres per degree of longitude at the frame's latitude. */
  kx: number;
  /** Metres per degree of latitude. */
  ky: number;
}

export function planarFrame(lon0: number, lat0: number): PlanarFrame {
  return { lon0, lat0, kx: M_PER_DEG_LON * Math.cos((lat0 * Math.PI) / 180), ky: M_PER_DEG_LAT };
}

export function projectShape(shape: NetworkShape, frame: PlanarFrame): ProjectedShape {
  const n = shape.coordinates.length;
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = (shape.coordinates[i][0] - frame.lon0) * frame.kx;
    y[i] = (shape.coordinates[i][1] - frame.lat0) * frame.ky;
  }
  return { ...shape, x, y };
}

// --- The network --------------------------------------------------------------------------------

export interface CalendarRow {
  serviceId: string;
  /** Sunday first (JavaScript's getUTCDay order). */
  days: boolean[];
  startDate: string;
  endDate: string;
}

/** One call of a trip at a stop, for the stop's departures board. */
export interface StopCall {
  trip: NetworkTrip;
  /** Index in `trip.stopTimes`. */
  index: number;
}

export interface Network {
  /** `gtfs_feeds.id` of the feed loaded; null when none was ever imported. */
  feedId: string | null;
  /** The collectivity owning the feed's stops (`gtfs_feeds.collectivity_id`). */
  collectivityId: string | null;
  loadedAt: Date;
  frame: PlanarFrame;
  routes: Map<string, RouteRow>;
  stops: Map<string, StopRow>;
  stopsByEquipment: Map<string, StopRow>;
  shapes: Map<string, ProjectedShape>;
  trips: Map<string, NetworkTrip>;
  /** Trips of each block, in order of first departure. */
  tripsByBlock: Map<string, NetworkTrip[]>;
  /** Trips of each route, in order of first departure. */
  tripsByRoute: Map<string, NetworkTrip[]>;
  /** Calls at each stop, in order of departure (seconds of the service day). */
  callsByStop: Map<string, StopCall[]>;
  calendar: Map<string, CalendarRow>;
  /** service_id → date → exception_type (1 added, 2 removed). */
  calendarDates: Map<string, Map<string, 1 | 2>>;
  /** Service ids running on a date. */
  servicesOn(date: string): Set<string>;
  /** Blocks running on a date, each with its trips of that date in order (blocks of no running trip are left out). */
  blocksOn(date: string): Map<string, NetworkTrip[]>;
  /** First and last day any service runs, or null for an empty network. */
  validity: { from: string; to: string } | null;
}

export interface NetworkData {
  feedId: string | null;
  collectivityId: string | null;
  routes: RouteRow[];
  stops: StopRow[];
  shapes: NetworkShape[];
  trips: TripRow[];
  stopTimes: StopTimeRow[];
  calendar: CalendarRow[];
  calendarDates: { serviceId: string; date: string; exceptionType: 1 | 2 }[];
}

const byStart = (a: NetworkTrip, b: NetworkTrip) => a.startSeconds - b.startSeconds || (a.tripId < b.tripId ? -1 : a.tripId > b.tripId ? 1 : 0);

/** Builds the in-memory network from rows (the loader's, or a bench's synthetic ones). */
export function buildNetwork(data: NetworkData): Network {
  const routes = new Map(data.routes.map((route) => [route.routeId, route]));
  const stops = new Map(data.stops.map((stop) => [stop.stopId, stop]));
  const stopsByEquipment = new Map(data.stops.map((stop) => [stop.equipmentId, stop]));
  let lonSum = 0;
  let latSum = 0;
  for (const stop of data.stops) {
    lonSum += stop.lon;
    latSum += stop.lat;
  }
  const first = data.shapes[0]?.coordinates[0];
  const frame = data.stops.length > 0 ? planarFrame(lonSum / data.stops.length, latSum / data.stops.length) : planarFrame(first?.[0] ?? 4.36, first?.[1] ?? 48.96);
  const shapes = new Map(data.shapes.map((shape) => [shape.shapeId, projectShape(shape, frame)]));

  const timesByTrip = new Map<string, StopTimeRow[]>();
  for (const stopTime of data.stopTimes) {
    let list = timesByTrip.get(stopTime.tripId);
    if (!list) timesByTrip.set(stopTime.tripId, (list = []));
    list.push(stopTime);
  }
  const trips = new Map<string, NetworkTrip>();
  const tripsByBlock = new Map<string, NetworkTrip[]>();
  const tripsByRoute = new Map<string, NetworkTrip[]>();
  const callsByStop = new Map<string, StopCall[]>();
  for (const row of data.trips) {
    const stopTimes = (timesByTrip.get(row.tripId) ?? []).sort((a, b) => a.stopSequence - b.stopSequence);
    if (stopTimes.length === 0) continue;
    const trip: NetworkTrip = { ...row, stopTimes, startSeconds: stopTimes[0].departureSeconds, endSeconds: stopTimes[stopTimes.length - 1].arrivalSeconds };
    trips.set(trip.tripId, trip);
    if (trip.blockId !== null) {
      const list = tripsByBlock.get(trip.blockId);
      if (list) list.push(trip);
      else tripsByBlock.set(trip.blockId, [trip]);
    }
    const ofRoute = tripsByRoute.get(trip.routeId);
    if (ofRoute) ofRoute.push(trip);
    else tripsByRoute.set(trip.routeId, [trip]);
    stopTimes.forEach((stopTime, index) => {
      const list = callsByStop.get(stopTime.stopId);
      if (list) list.push({ trip, index });
      else callsByStop.set(stopTime.stopId, [{ trip, index }]);
    });
  }
  for (const list of tripsByBlock.values()) list.sort(byStart);
  for (const list of tripsByRoute.values()) list.sort(byStart);
  for (const list of callsByStop.values()) list.sort((a, b) => a.trip.stopTimes[a.index].departureSeconds - b.trip.stopTimes[b.index].departureSeconds);

  const calendar = new Map(data.calendar.map((row) => [row.serviceId, row]));
  const calendarDates = new Map<string, Map<string, 1 | 2>>();
  for (const row of data.calendarDates) {
    let dates = calendarDates.get(row.serviceId);
    if (!dates) calendarDates.set(row.serviceId, (dates = new Map()));
    dates.set(row.date, row.exceptionType);
  }
  const serviceIds = new Set([...calendar.keys(), ...calendarDates.keys()]);
  const servicesCache = new Map<string, Set<string>>();
  const servicesOn = (date: string): Set<string> => {
    let running = servicesCache.get(date);
    if (running) return running;
    running = new Set();
    const weekday = new Date(`${date}T00:00:00Z`).getUTCDay();
    for (const serviceId of serviceIds) {
      const exception = calendarDates.get(serviceId)?.get(date);
      if (exception === 2) continue;
      const row = calendar.get(serviceId);
      if (exception === 1 || (row && row.startDate <= date && date <= row.endDate && row.days[weekday])) running.add(serviceId);
    }
    if (servicesCache.size > 400) servicesCache.clear();
    servicesCache.set(date, running);
    return running;
  };
  const blocksCache = new Map<string, Map<string, NetworkTrip[]>>();
  const blocksOn = (date: string): Map<string, NetworkTrip[]> => {
    let blocks = blocksCache.get(date);
    if (blocks) return blocks;
    const running = servicesOn(date);
    blocks = new Map();
    for (const [blockId, list] of tripsByBlock) {
      const today = list.filter((trip) => running.has(trip.serviceId));
      if (today.length > 0) blocks.set(blockId, today);
    }
    if (blocksCache.size > 400) blocksCache.clear();
    blocksCache.set(date, blocks);
    return blocks;
  };
  let from: string | null = null;
  let to: string | null = null;
  const widen = (date: string) => {
    if (from === null || date < from) from = date;
    if (to === null || date > to) to = date;
  };
  for (const row of calendar.values()) {
    widen(row.startDate);
    widen(row.endDate);
  }
  for (const row of data.calendarDates) if (row.exceptionType === 1) widen(row.date);

  return {
    feedId: data.feedId,
    collectivityId: data.collectivityId,
    loadedAt: new Date(),
    frame,
    routes,
    stops,
    stopsByEquipment,
    shapes,
    trips,
    tripsByBlock,
    tripsByRoute,
    callsByStop,
    calendar,
    calendarDates,
    servicesOn,
    blocksOn,
    validity: from !== null && to !== null ? { from, to } : null,
  };
}

export const EMPTY_NETWORK: Network = buildNetwork({ feedId: null, collectivityId: null, routes: [], stops: [], shapes: [], trips: [], stopTimes: [], calendar: [], calendarDates: [] });

// --- Loading ------------------------------------------------------------------------------------

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/** Reads the gtfs_* tables (in one REPEATABLE READ snapshot when given a client in a transaction). */
export async function loadNetworkData(db: Queryable): Promise<NetworkData> {
  const feed = await db.query<{ id: string; collectivityId: string }>(`SELECT id::text, collectivity_id AS "collectivityId" FROM gtfs_feeds ORDER BY id DESC LIMIT 1`);
  const routes = await db.query<RouteRow>(
    `SELECT r.route_id AS "routeId", r.agency_id AS "agencyId", a.name AS "agencyName", r.short_name AS "shortName", r.long_name AS "longName",
            r.description, r.route_type AS "routeType", r.color, r.text_color AS "textColor", r.sort_order AS "sortOrder"
     FROM gtfs_routes r JOIN gtfs_agencies a USING (agency_id)`,
  );
  const stops = await db.query<StopRow>(
    `SELECT stop_id AS "stopId", equipment_id AS "equipmentId", code, name, description, ST_X(geom) AS lon, ST_Y(geom) AS lat, wheelchair_boarding AS "wheelchairBoarding"
     FROM gtfs_stops`,
  );
  const shapes = await db.query<{ shapeId: string; coordinates: string; distances: number[]; lengthM: number }>(
    `SELECT shape_id AS "shapeId", ST_AsGeoJSON(geom, 9)::json->>'coordinates' AS coordinates, distances, length_m AS "lengthM" FROM gtfs_shapes`,
  );
  const trips = await db.query<TripRow>(
    `SELECT trip_id AS "tripId", route_id AS "routeId", service_id AS "serviceId", shape_id AS "shapeId", headsign, short_name AS "shortName",
            direction_id AS "directionId", block_id AS "blockId"
     FROM gtfs_trips`,
  );
  const stopTimes = await db.query<StopTimeRow>(
    `SELECT trip_id AS "tripId", stop_sequence AS "stopSequence", stop_id AS "stopId", arrival_seconds AS "arrivalSeconds",
            departure_seconds AS "departureSeconds", shape_dist_traveled AS "shapeDistTraveled"
     FROM gtfs_stop_times ORDER BY trip_id, stop_sequence`,
  );
  const calendar = await db.query<{ serviceId: string; days: boolean[]; startDate: string; endDate: string }>(
    `SELECT service_id AS "serviceId", ARRAY[sunday, monday, tuesday, wednesday, thursday, friday, saturday] AS days,
            to_char(start_date, 'YYYY-MM-DD') AS "startDate", to_char(end_date, 'YYYY-MM-DD') AS "endDate"
     FROM gtfs_calendar`,
  );
  const calendarDates = await db.query<{ serviceId: string; date: string; exceptionType: 1 | 2 }>(
    `SELECT service_id AS "serviceId", to_char(date, 'YYYY-MM-DD') AS date, exception_type AS "exceptionType" FROM gtfs_calendar_dates`,
  );
  return {
    feedId: feed.rows[0]?.id ?? null,
    collectivityId: feed.rows[0]?.collectivityId ?? null,
    routes: routes.rows,
    stops: stops.rows,
    shapes: shapes.rows.map((row) => ({ shapeId: row.shapeId, coordinates: JSON.parse(row.coordinates) as [number, number][], distances: row.distances, lengthM: row.lengthM })),
    trips: trips.rows,
    stopTimes: stopTimes.rows,
    calendar: calendar.rows,
    calendarDates: calendarDates.rows,
  };
}

/** Loads the network in one consistent snapshot. */
export async function loadNetwork(pool: pg.Pool): Promise<Network> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const data = await loadNetworkData(client);
    await client.query('COMMIT');
    return buildNetwork(data);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

export class NetworkCache {
  private network: Network = EMPTY_NETWORK;
  private loading: Promise<Network> | null = null;
  private follower: AbortController | null = null;
  private readonly listeners = new Set<(network: Network) => void>();
  private lastError: string | null = null;
  private loaded = false;

  constructor(private readonly r: MobilityResources) {}

  /** The network loaded last (empty before the first load). */
  current(): Network {
    return this.network;
  }

  /** Reads the tables again and swaps the network in; concurrent calls share one load. */
  reload(): Promise<Network> {
    if (this.loading) return this.loading;
    const started = performance.now();
    this.loading = loadNetwork(this.r.db.pool)
      .then((network) => {
        this.network = network;
        this.loaded = true;
        this.lastError = null;
        this.r.log.info({ feedId: network.feedId, trips: network.trips.size, ms: Math.round(performance.now() - started) }, 'mobility network loaded');
        for (const listener of this.listeners) {
          try {
            listener(network);
          } catch (error) {
            this.r.log.warn({ err: error }, 'network listener failed');
          }
        }
        return network;
      })
      .catch((error: unknown) => {
        this.lastError = error instanceof Error ? error.message : String(error);
        throw error;
      })
      .finally(() => {
        this.loading = null;
      });
    return this.loading;
  }

  /** Called with each network loaded (the assignments worker runs again). */
  onReload(listener: (network: Network) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  worker(): Worker {
    return {
      name: 'network',
      start: async () => {
        this.follower = new AbortController();
        // Follow the topic before the first load, so that an import committed meanwhile is not missed.
        const events = this.r.events.subscribe({ topics: [NETWORK_TOPIC], signal: this.follower.signal });
        await this.reload();
        void this.follow(events, this.follower.signal);
      },
      stop: async () => {
        this.follower?.abort();
        await this.loading?.catch(() => {});
      },
      status: () => ({
        ready: this.loaded,
        state: this.lastError ? `error: ${this.lastError}` : this.loaded ? `feed ${this.network.feedId ?? 'none'}, ${this.network.trips.size} trips` : 'loading',
      }),
    };
  }

  private async follow(events: AsyncIterableIterator<BusEvent>, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for await (const event of events) {
          void event;
          await this.reload().catch((error: unknown) => this.r.log.error({ err: error }, 'mobility network reload failed'));
        }
        return;
      } catch {
        if (signal.aborted) return;
        await new Promise((resolve) => setTimeout(resolve, 1_000).unref());
        events = this.r.events.subscribe({ topics: [NETWORK_TOPIC], signal });
        await this.reload().catch(() => {});
      }
    }
  }
}
