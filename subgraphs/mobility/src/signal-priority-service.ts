/**
 * Transit-signal priority as people read it: the requests and their figures per intersection,
 * per route and per controller. One instance per request (the caller, its DataLoaders).
 *
 * Who sees what: agents, operators and admins see the requests to their collectivities'
 * controllers and those for their collectivities' buses; partners see all of them. Anyone else
 * is refused (UNAUTHENTICATED for the public, FORBIDDEN for a token without such a role) on the
 * lists, and gets null from `Equipment.signalPriority`.
 */
import DataLoader from 'dataloader';
import { actsIn, isPublic, type Role } from '@connecte/shared/auth';
import { badInput, forbidden, unauthenticated } from '@connecte/shared/errors';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import type { MobilityContext } from './context.js';
import type {
  EquipmentSignalPriorityArgs,
  QuerySignalPriorityByIntersectionArgs,
  QuerySignalPriorityByRouteArgs,
  QuerySignalPriorityRequestsArgs,
} from './generated/graphql.js';
import {
  controllerStats,
  countRequests,
  EMPTY_STATS,
  loadRoutes,
  loadTrips,
  requestPage,
  statsBy,
  type PriorityScope,
  type RequestCursor,
  type RequestFilterValue,
} from './signal-priority-store.js';
import type { RouteRow, SignalPriorityRequestRow, SignalPriorityStatsValue, SignalPriorityStatus, TripRow, VehicleRow } from './types.js';

/** Who reads priority requests in a collectivity. */
export const PRIORITY_READERS: Role[] = ['agent', 'operator', 'admin'];
const DEFAULT_PERIOD_MS = 7 * 86_400_000;
const MAX_PERIOD_MS = 366 * 86_400_000;
const MAX_FILTER_IDS = 100;
const MAX_ID_LENGTH = 200;
const STATUSES: readonly SignalPriorityStatus[] = ['REQUESTED', 'GRANTED', 'DENIED', 'EXPIRED'];
const ANY_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** [from, to) from the arguments: default the 7 days before `to` (default now); from before to, at most 366 days. */
export function period(from: Date | null | undefined, to: Date | null | undefined, prefix = ''): { from: Date; to: Date } {
  const end = to ?? new Date();
  const start = from ?? new Date(end.getTime() - DEFAULT_PERIOD_MS);
  if (!(start.getTime() < end.getTime())) throw badInput(`${prefix}from`, `must be before ${prefix}to (${start.toISOString()} is not before ${end.toISOString()})`);
  if (end.getTime() - start.getTime() > MAX_PERIOD_MS) throw badInput(`${prefix}from`, 'the period must be at most 366 days');
  return { from: start, to: end };
}

function ids(field: string, values: readonly string[] | null | undefined): string[] | null {
  if (values === null || values === undefined) return null;
  if (values.length > MAX_FILTER_IDS) throw badInput(field, `must list at most ${MAX_FILTER_IDS} ids (got ${values.length})`);
  return [
    ...new Set(
      values.map((value, i) => {
        const trimmed = value.trim();
        if (!trimmed) throw badInput(`${field}.${i}`, 'must not be empty');
        if (trimmed.length > MAX_ID_LENGTH || ANY_CONTROL.test(trimmed)) throw badInput(`${field}.${i}`, `must be an id of at most ${MAX_ID_LENGTH} characters without control characters`);
        return trimmed;
      }),
    ),
  ];
}

function decodeRequestCursor(after: string | null | undefined): RequestCursor | null {
  const key = decodeCursor(after);
  if (key === null) return null;
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(key);
  const requestedAt = match ? new Date(match[1]) : null;
  if (!match || !requestedAt || Number.isNaN(requestedAt.getTime())) throw badInput('after', 'is not a cursor returned by this API');
  return { requestedAt, id: match[2] };
}

const cursorKey = (row: SignalPriorityRequestRow) => `${row.requestedAt.toISOString()}|${row.id}`;

interface ControllerStatsKey {
  controllerId: string;
  from: Date;
  to: Date;
}

export class SignalPriorityService {
  /** Collectivities where the caller reads priority (agent, operator, admin). */
  private readonly readsIn: string[];
  private readonly partner: boolean;

  private readonly trips = new DataLoader<string, TripRow | null>(async (keys) => {
    const found = await loadTrips(this.pool, keys);
    return keys.map((key) => found.get(key) ?? null);
  });
  private readonly routes = new DataLoader<string, RouteRow | null>(async (keys) => {
    const found = await loadRoutes(this.pool, keys);
    return keys.map((key) => found.get(key) ?? null);
  });
  private readonly controllerFigures = new DataLoader<ControllerStatsKey, SignalPriorityStatsValue | null, string>((keys) => this.loadControllerFigures(keys), {
    cacheKeyFn: (key) => `${key.controllerId}|${key.from.toISOString()}|${key.to.toISOString()}`,
  });

  constructor(private readonly context: MobilityContext) {
    const viewer = context.viewer;
    this.readsIn = viewer.collectivities.filter((id) => actsIn(viewer, id, PRIORITY_READERS));
    this.partner = viewer.roles.includes('partner');
  }

  private get pool() {
    return this.context.resources.db.pool;
  }

  /** The caller's scope, or null when it reads nothing. */
  private scope(): PriorityScope | null {
    if (this.partner) return { all: true };
    if (this.readsIn.length > 0) return { all: false, collectivities: this.readsIn };
    return null;
  }

  /** The scope, or the refusal of a list. */
  private requireScope(field: string): PriorityScope {
    const scope = this.scope();
    if (scope) return scope;
    if (isPublic(this.context.viewer)) throw unauthenticated(`authentication required: ${field} needs role ${PRIORITY_READERS.join(', ')} in a collectivity, or partner`);
    throw forbidden(`${field}: needs role ${PRIORITY_READERS.join(', ')} in a collectivity, or partner`, field);
  }

  async requests(args: QuerySignalPriorityRequestsArgs): Promise<Connection<SignalPriorityRequestRow>> {
    const scope = this.requireScope('signalPriorityRequests');
    const limit = pageSize(args.first);
    const after = decodeRequestCursor(args.after);
    const filter = args.filter ?? {};
    const status = filter.status ? [...new Set(filter.status)] : null;
    if (status?.some((value) => !STATUSES.includes(value))) throw badInput('filter.status', `must be among ${STATUSES.join(', ')}`);
    const value: RequestFilterValue = {
      controllerIds: ids('filter.controllerIds', filter.controllerIds),
      routeIds: ids('filter.routeIds', filter.routeIds),
      status,
      from: filter.from ?? null,
      to: filter.to ?? null,
    };
    if (value.from && value.to && !(value.from.getTime() < value.to.getTime())) {
      throw badInput('filter.from', `must be before filter.to (${value.from.toISOString()} is not before ${value.to.toISOString()})`);
    }
    const rows = limit === 0 ? [] : await requestPage(this.pool, scope, value, limit, after);
    return connection(rows, limit, cursorKey, after !== null, () => countRequests(this.pool, scope, value));
  }

  async byIntersection(args: QuerySignalPriorityByIntersectionArgs): Promise<{ controllerId: string; stats: SignalPriorityStatsValue }[]> {
    const scope = this.requireScope('signalPriorityByIntersection');
    const { from, to } = period(args.from, args.to);
    return (await statsBy(this.pool, 'controller_id', scope, from, to)).map(({ key, stats }) => ({ controllerId: key, stats }));
  }

  async byRoute(args: QuerySignalPriorityByRouteArgs): Promise<{ routeId: string; stats: SignalPriorityStatsValue }[]> {
    const scope = this.requireScope('signalPriorityByRoute');
    const { from, to } = period(args.from, args.to);
    return (await statsBy(this.pool, 'route_id', scope, from, to)).map(({ key, stats }) => ({ routeId: key, stats }));
  }

  /** A controller's figures, or null (not a controller, or the caller reads none of its requests). */
  async equipmentStats(equipmentId: string, args: Partial<EquipmentSignalPriorityArgs>): Promise<SignalPriorityStatsValue | null> {
    if (!this.scope()) return null;
    const { from, to } = period(args.from, args.to);
    return this.controllerFigures.load({ controllerId: equipmentId, from, to });
  }

  private async loadControllerFigures(keys: readonly ControllerStatsKey[]): Promise<(SignalPriorityStatsValue | null)[]> {
    const directory = this.context.resources.directory;
    const controllers = new Map((await directory.ofKind('TRAFFIC_SIGNAL_CONTROLLER')).map((asset) => [asset.equipmentId, asset]));
    // Those who read priority for their buses see a controller's requests for their buses.
    const busCollectivities = new Set((await directory.ofKind('BUS')).map((asset) => asset.collectivityId));
    const ownBuses = this.readsIn.filter((id) => busCollectivities.has(id));
    const results: (SignalPriorityStatsValue | null)[] = keys.map(() => null);
    const groups = new Map<string, { from: Date; to: Date; restrict: string[] | null; items: { index: number; controllerId: string }[] }>();
    keys.forEach((key, index) => {
      const controller = controllers.get(key.controllerId);
      if (!controller) return;
      const whole = this.partner || this.readsIn.includes(controller.collectivityId);
      if (!whole && ownBuses.length === 0) return;
      const restrict = whole ? null : ownBuses;
      const group = `${key.from.toISOString()}|${key.to.toISOString()}|${restrict?.join(',') ?? '*'}`;
      let entry = groups.get(group);
      if (!entry) groups.set(group, (entry = { from: key.from, to: key.to, restrict, items: [] }));
      entry.items.push({ index, controllerId: key.controllerId });
    });
    for (const group of groups.values()) {
      const figures = await controllerStats(this.pool, [...new Set(group.items.map((item) => item.controllerId))], group.restrict, group.from, group.to);
      for (const item of group.items) results[item.index] = figures.get(item.controllerId) ?? { ...EMPTY_STATS };
    }
    return results;
  }

  /** The bus of a request (its live state when it has one: positions are public), as the Vehicle type's resolvers take it. */
  async vehicleOf(row: SignalPriorityRequestRow): Promise<VehicleRow> {
    const live = await this.context.vehicles.vehicle(row.vehicleId);
    if (live) return live;
    const asset = await this.context.resources.directory.get(row.vehicleId, 'BUS');
    const fleet = asset?.details.fleetNumber;
    return {
      equipmentId: row.vehicleId,
      collectivityId: asset?.collectivityId ?? row.collectivityId,
      label: typeof fleet === 'string' || typeof fleet === 'number' ? String(fleet) : (asset?.name ?? null),
      blockId: null,
      state: null,
    };
  }

  /** The trip a request names; the network may have been replaced since: then what the request knew of it. */
  async tripOf(row: SignalPriorityRequestRow): Promise<TripRow> {
    return (
      (await this.trips.load(row.tripId)) ?? {
        tripId: row.tripId,
        routeId: row.routeId,
        serviceId: '',
        shapeId: '',
        headsign: null,
        shortName: null,
        directionId: null,
        blockId: null,
      }
    );
  }

  /** A route by id; one the network no longer has keeps its id only. */
  async routeOf(routeId: string): Promise<RouteRow> {
    return (
      (await this.routes.load(routeId)) ?? {
        routeId,
        agencyId: '',
        agencyName: '',
        shortName: null,
        longName: null,
        description: null,
        routeType: 3,
        color: null,
        textColor: null,
        sortOrder: null,
      }
    );
  }
}
