/**
 * The network as people read it (public: open data publishes it): the feed in use, routes,
 * stops (near a point, on a route, by name), trips of a service day, stop times, shapes, and a
 * BUS_STOP asset's GTFS stop. One instance per request, holding its DataLoaders.
 */
import DataLoader from 'dataloader';
import { badInput } from '@connecte/shared/errors';
import { checkNear } from '@connecte/shared/geo';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import type { MobilityContext } from './context.js';
import {
  countRoutes,
  countStops,
  listRoutes,
  listStops,
  listTripsOfRoute,
  loadCurrentFeed,
  loadRouteIdsOfStops,
  loadRoutes,
  loadShapeIdsOfRoutes,
  loadShapes,
  loadStopIdsOfRoutes,
  loadStops,
  loadStopsByEquipment,
  loadStopTimes,
  loadTrips,
  routeKey,
  type StopCriteria,
} from './network-store.js';
import type { GtfsFeedRow, RouteRow, StopRow, StopTimeRow, TripRow } from './types.js';

/** Today in Europe/Paris, YYYY-MM-DD. */
export function parisToday(now = new Date()): string {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris', year: 'numeric', month: '2-digit', day: '2-digit' }).format(now);
}

function byKey<K, V>(rows: V[], keyOf: (row: V) => K): Map<K, V> {
  return new Map(rows.map((r) => [keyOf(r), r]));
}

function grouped<K, V>(rows: V[], keyOf: (row: V) => K): Map<K, V[]> {
  const out = new Map<K, V[]>();
  for (const r of rows) {
    const k = keyOf(r);
    const list = out.get(k);
    if (list) list.push(r);
    else out.set(k, [r]);
  }
  return out;
}

export class NetworkService {
  private readonly pool;
  private readonly routesLoader: DataLoader<string, RouteRow | null>;
  private readonly stopsLoader: DataLoader<string, StopRow | null>;
  private readonly stopsByEquipment: DataLoader<string, StopRow | null>;
  private readonly tripsLoader: DataLoader<string, TripRow | null>;
  private readonly stopTimesLoader: DataLoader<string, StopTimeRow[]>;
  private readonly routeIdsOfStop: DataLoader<string, string[]>;
  private readonly stopIdsOfRoute: DataLoader<string, string[]>;
  private readonly shapeIdsOfRoute: DataLoader<string, string[]>;
  private readonly shapesLoader: DataLoader<string, [number, number][] | null>;
  private feed: Promise<GtfsFeedRow | null> | null = null;

  constructor(private readonly context: MobilityContext) {
    const pool = (this.pool = context.resources.db.pool);
    this.routesLoader = new DataLoader(async (ids) => {
      const found = byKey(await loadRoutes(pool, ids), (r) => r.routeId);
      return ids.map((id) => found.get(id) ?? null);
    });
    this.stopsLoader = new DataLoader(async (ids) => {
      const found = byKey(await loadStops(pool, ids), (r) => r.stopId);
      return ids.map((id) => found.get(id) ?? null);
    });
    this.stopsByEquipment = new DataLoader(async (ids) => {
      const found = byKey(await loadStopsByEquipment(pool, ids), (r) => r.equipmentId);
      return ids.map((id) => found.get(id) ?? null);
    });
    this.tripsLoader = new DataLoader(async (ids) => {
      const found = byKey(await loadTrips(pool, ids), (r) => r.tripId);
      return ids.map((id) => found.get(id) ?? null);
    });
    this.stopTimesLoader = new DataLoader(async (ids) => {
      const found = grouped(await loadStopTimes(pool, ids), (r) => r.tripId);
      return ids.map((id) => found.get(id) ?? []);
    });
    this.routeIdsOfStop = new DataLoader(async (ids) => {
      const found = grouped(await loadRouteIdsOfStops(pool, ids), (r) => r.stopId);
      return ids.map((id) => (found.get(id) ?? []).map((r) => r.routeId));
    });
    this.stopIdsOfRoute = new DataLoader(async (ids) => {
      const found = byKey(await loadStopIdsOfRoutes(pool, ids), (r) => r.routeId);
      return ids.map((id) => found.get(id)?.stopIds ?? []);
    });
    this.shapeIdsOfRoute = new DataLoader(async (ids) => {
      const found = grouped(await loadShapeIdsOfRoutes(pool, ids), (r) => r.routeId);
      return ids.map((id) => (found.get(id) ?? []).map((r) => r.shapeId));
    });
    this.shapesLoader = new DataLoader(async (ids) => {
      const found = byKey(await loadShapes(pool, ids), (r) => r.shapeId);
      return ids.map((id) => found.get(id)?.coordinates ?? null);
    });
  }

  currentFeed(): Promise<GtfsFeedRow | null> {
    return (this.feed ??= loadCurrentFeed(this.pool));
  }

  route(id: string): Promise<RouteRow | null> {
    return this.routesLoader.load(id);
  }

  stop(id: string): Promise<StopRow | null> {
    return this.stopsLoader.load(id);
  }

  stopOfEquipment(equipmentId: string): Promise<StopRow | null> {
    return this.stopsByEquipment.load(equipmentId);
  }

  trip(id: string): Promise<TripRow | null> {
    return this.tripsLoader.load(id);
  }

  stopTimes(tripId: string): Promise<StopTimeRow[]> {
    return this.stopTimesLoader.load(tripId);
  }

  async routesOfStop(stopId: string): Promise<RouteRow[]> {
    const ids = await this.routeIdsOfStop.load(stopId);
    const routes = (await this.routesLoader.loadMany(ids)).filter((r): r is RouteRow => !!r && !(r instanceof Error));
    return routes.sort((a, b) => (a.sortOrder ?? 2147483647) - (b.sortOrder ?? 2147483647) || a.routeId.localeCompare(b.routeId));
  }

  async stopsOfRoute(routeId: string): Promise<StopRow[]> {
    const ids = await this.stopIdsOfRoute.load(routeId);
    return (await this.stopsLoader.loadMany(ids)).filter((s): s is StopRow => !!s && !(s instanceof Error));
  }

  async shapesOfRoute(routeId: string): Promise<[number, number][][]> {
    const ids = await this.shapeIdsOfRoute.load(routeId);
    return (await this.shapesLoader.loadMany(ids)).filter((s): s is [number, number][] => Array.isArray(s));
  }

  async shape(shapeId: string): Promise<[number, number][]> {
    return (await this.shapesLoader.load(shapeId)) ?? [];
  }

  tripsOfRoute(routeId: string, serviceDate: string | null | undefined, directionId: number | null | undefined): Promise<TripRow[]> {
    if (directionId !== null && directionId !== undefined && directionId !== 0 && directionId !== 1) throw badInput('directionId', 'must be 0 or 1');
    return listTripsOfRoute(this.pool, routeId, serviceDate ?? parisToday(), directionId ?? null);
  }

  async routes(first: number | null | undefined, after: string | null | undefined): Promise<Connection<RouteRow>> {
    const limit = pageSize(first);
    const key = decodeCursor(after);
    if (key !== null) checkKey(key, 3);
    const rows = await listRoutes(this.pool, key, limit);
    return connection(rows, limit, routeKey, key !== null, () => countRoutes(this.pool));
  }

  async stops(
    filter: { near?: { lon: number; lat: number; radiusMeters: number } | null; routeId?: string | null; name?: string | null } | null | undefined,
    first: number | null | undefined,
    after: string | null | undefined,
  ): Promise<Connection<StopRow>> {
    const limit = pageSize(first);
    const name = filter?.name ?? null;
    if (name !== null && (name.trim() === '' || name.length > 100)) throw badInput('filter.name', 'must be 1 to 100 characters');
    const criteria: StopCriteria = {
      near: filter?.near ? checkNear(filter.near, 'filter.near.') : null,
      routeId: filter?.routeId ?? null,
      name: name?.trim() ?? null,
    };
    const raw = decodeCursor(after);
    let key: [string | number, string] | null = null;
    if (raw !== null) {
      const parsed = checkKey(raw, 2);
      if (typeof parsed[1] !== 'string' || (criteria.near ? typeof parsed[0] !== 'number' : typeof parsed[0] !== 'string')) throw badInput('after', 'is not a cursor of this list');
      key = parsed as [string | number, string];
    }
    const rows = await listStops(this.pool, criteria, key, limit);
    return connection(rows, limit, (s) => JSON.stringify([criteria.near ? s.distance : s.name, s.stopId]), key !== null, () => countStops(this.pool, criteria));
  }
}

function checkKey(key: string, length: number): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(key);
  } catch {
    throw badInput('after', 'is not a cursor of this list');
  }
  if (!Array.isArray(parsed) || parsed.length !== length) throw badInput('after', 'is not a cursor of this list');
  return parsed;
}
