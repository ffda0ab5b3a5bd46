/**
 * Live vehicles as people read them, and their assignment to blocks. One instance per request:
 * it holds the caller and its DataLoaders (buses by id, a route's buses, outliers, the running
 * states of trips).
 *
 * Visibility: buses, positions, delays and predictions are public (open data publishes them);
 * outliers are for agents, operators and admins of the bus's collectivity (an empty list for
 * anyone else). `assignVehicle`: operators and admins of the bus's collectivity.
 */
import DataLoader from 'dataloader';
import { actsIn, isPublic, type Role } from '@connecte/shared/auth';
import { badInput, forbidden, notFound, unauthenticated } from '@connecte/shared/errors';
import { mapEvents } from '@connecte/shared/events';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import type { MobilityContext } from './context.js';
import type {
  MutationAssignVehicleArgs,
  QueryVehiclesArgs,
  SubscriptionVehicleMovedArgs,
  TransitStopNextArrivalsArgs,
  VehicleFilter,
} from './generated/graphql.js';
import { addDays, parisDate, serviceDayStartMs, type Network } from './network.js';
import { VEHICLE_TOPIC, type NetworkTrip, type PredictedStopValue, type StopArrivalValue, type VehicleAssignmentRow, type VehicleOutlierRow, type VehicleRow, type VehicleState } from './types.js';
import { predictionsOf } from './vehicle-progress.js';
import {
  assignVehicle,
  countVehicles,
  listAssignments,
  listVehicles,
  loadOutliers,
  loadRouteVehicleIds,
  loadRunningStates,
  loadVehicles,
  stateOfPayload,
  type VehicleCriteria,
} from './vehicle-store.js';

export const STAFF_ROLES: Role[] = ['agent', 'operator', 'admin'];
export const WRITER_ROLES: Role[] = ['operator', 'admin'];
/** A bus's state counts for a trip's predicted arrivals when observed within this of the instant asked. */
export const PREDICTION_FRESH_MS = 15 * 60_000;
const MAX_IDS = 1_000;

/** `first` of a small list: default `fallback`, 0..max. */
export function smallFirst(first: number | null | undefined, fallback: number, max: number, field = 'first'): number {
  if (first === null || first === undefined) return fallback;
  if (!Number.isInteger(first) || first < 0) throw badInput(field, 'must be a whole number ≥ 0');
  if (first > max) throw badInput(field, `must be at most ${max}`);
  return first;
}

function checkIds(ids: readonly string[] | null | undefined, field: string): string[] | undefined {
  if (ids === null || ids === undefined) return undefined;
  if (ids.length === 0) throw badInput(field, 'must name at least one id (or be omitted)');
  if (ids.length > MAX_IDS) throw badInput(field, `must name at most ${MAX_IDS} ids`);
  return [...new Set(ids)];
}

export function criteriaOf(filter: VehicleFilter | null | undefined, prefix = 'filter.'): VehicleCriteria {
  const criteria: VehicleCriteria = {};
  if (!filter) return criteria;
  const vehicleIds = checkIds(filter.vehicleIds, `${prefix}vehicleIds`);
  const routeIds = checkIds(filter.routeIds, `${prefix}routeIds`);
  if (vehicleIds) criteria.vehicleIds = vehicleIds;
  if (routeIds) criteria.routeIds = routeIds;
  if (filter.inService !== null && filter.inService !== undefined) criteria.inService = filter.inService;
  return criteria;
}

const matches = (criteria: VehicleCriteria, state: VehicleState) =>
  (!criteria.vehicleIds || criteria.vehicleIds.includes(state.equipmentId)) &&
  (!criteria.routeIds || (state.tripId !== null && state.routeId !== null && criteria.routeIds.includes(state.routeId))) &&
  (criteria.inService === undefined || criteria.inService === (state.tripId !== null));

export interface VehicleMoveValue {
  cursor: string;
  vehicle: VehicleRow;
}

export class VehicleService {
  private readonly today = parisDate(new Date());
  private readonly byId = new DataLoader<string, VehicleRow | null>((ids) => loadVehicles(this.context.resources.db.pool, ids, this.today, this.network));
  private readonly routeVehicles = new DataLoader<string, string[]>((routeIds) => loadRouteVehicleIds(this.context.resources.db.pool, routeIds));
  private readonly outlierLists = new DataLoader<{ id: string; limit: number }, VehicleOutlierRow[], string>((keys) => loadOutliers(this.context.resources.db.pool, keys), {
    cacheKeyFn: (key) => `${key.id}|${key.limit}`,
  });
  /** Running states by trip id (a trip may be run on two service days: both are kept). */
  private readonly tripStates = new DataLoader<string, VehicleState[]>(async (tripIds) => {
    const states = await loadRunningStates(this.context.resources.db.pool, tripIds, this.network);
    return tripIds.map((tripId) => states.filter((state) => state.tripId === tripId));
  });

  constructor(private readonly context: MobilityContext) {}

  private get network(): Network {
    return this.context.resources.network.current();
  }

  // --- Reads -------------------------------------------------------------------------------

  vehicle(id: string): Promise<VehicleRow | null> {
    return this.byId.load(id);
  }

  async vehicles(args: QueryVehiclesArgs): Promise<Connection<VehicleRow>> {
    const limit = pageSize(args.first);
    const after = decodeCursor(args.after);
    const criteria = criteriaOf(args.filter);
    const pool = this.context.resources.db.pool;
    const total = () => countVehicles(pool, criteria);
    const rows = limit === 0 ? [] : await listVehicles(pool, criteria, this.today, after, limit, this.network);
    for (const row of rows) this.byId.prime(row.equipmentId, row);
    return connection(rows, limit, (row) => row.equipmentId, after !== null, total);
  }

  /** `Equipment.vehicle`: null unless the asset is a bus. */
  equipmentVehicle(equipmentId: string): Promise<VehicleRow | null> {
    return this.byId.load(equipmentId);
  }

  /** `TransitRoute.vehicles`. */
  async routeVehiclesOf(routeId: string): Promise<VehicleRow[]> {
    const ids = await this.routeVehicles.load(routeId);
    const rows = await this.byId.loadMany(ids);
    return rows.filter((row): row is VehicleRow => row !== null && !(row instanceof Error));
  }

  trip(tripId: string | null | undefined): NetworkTrip | null {
    return tripId ? (this.network.trips.get(tripId) ?? null) : null;
  }

  stop(stopId: string | null | undefined) {
    return stopId ? (this.network.stops.get(stopId) ?? null) : null;
  }

  route(routeId: string | null | undefined) {
    return routeId ? (this.network.routes.get(routeId) ?? null) : null;
  }

  /** `Vehicle.nextStops`: the stored predictions whose stop the network still has. */
  nextStops(vehicle: VehicleRow, first: number | null | undefined): PredictedStopValue[] {
    const limit = smallFirst(first, 5, 50);
    const predictions = vehicle.state?.tripId ? vehicle.state.predictions : [];
    return predictions.filter((p) => this.network.stops.has(p.stopId)).slice(0, limit);
  }

  /** `Vehicle.outliers`: staff of the bus's collectivity; empty for anyone else. */
  async outliers(vehicle: VehicleRow, first: number | null | undefined): Promise<VehicleOutlierRow[]> {
    const limit = smallFirst(first, 10, 100);
    if (limit === 0 || !actsIn(this.context.viewer, vehicle.collectivityId, STAFF_ROLES)) return [];
    return this.outlierLists.load({ id: vehicle.equipmentId, limit });
  }

  /** `Query.vehicleAssignments`. */
  assignments(serviceDate: string | null | undefined): Promise<VehicleAssignmentRow[]> {
    return listAssignments(this.context.resources.db.pool, serviceDate ?? this.today);
  }

  /** `VehicleAssignment.trips`: the block's trips of that service day. */
  assignmentTrips(row: VehicleAssignmentRow): NetworkTrip[] {
    return this.network.blocksOn(row.serviceDate).get(row.blockId) ?? [];
  }

  async assignmentVehicle(row: VehicleAssignmentRow): Promise<VehicleRow> {
    const vehicle = await this.byId.load(row.equipmentId);
    // A bus decommissioned since keeps its assignment's history: show it without a state.
    return vehicle ?? { equipmentId: row.equipmentId, collectivityId: '', label: null, blockId: row.blockId, state: null };
  }

  // --- Departures ------------------------------------------------------------------------------

  /**
   * `TransitStop.nextArrivals`: the calls at the stop of the trips running on the service days
   * around `after` (the day before, for trips past midnight, its day and the next), not yet departed at
   * `after` — by the schedule, or by the prediction when a bus runs the trip — soonest first. A
   * trip's last stop is an arrival, not a departure: it is left out. A trip whose bus has
   * already passed the stop is left out.
   */
  async nextArrivals(stopId: string, args: TransitStopNextArrivalsArgs): Promise<StopArrivalValue[]> {
    const limit = smallFirst(args.first, 5, 50);
    const after = args.after ?? new Date();
    if (!(after instanceof Date) || Number.isNaN(after.getTime())) throw badInput('after', 'must be an ISO 8601 instant');
    if (limit === 0) return [];
    const network = this.network;
    const calls = network.callsByStop.get(stopId) ?? [];
    const afterMs = after.getTime();
    const day = parisDate(after);
    type Candidate = { trip: NetworkTrip; index: number; serviceDate: string; dayStartMs: number; arrivalMs: number; departureMs: number };
    const candidates: Candidate[] = [];
    for (const serviceDate of [addDays(day, -1), day, addDays(day, 1)]) {
      const running = network.servicesOn(serviceDate);
      const dayStartMs = serviceDayStartMs(serviceDate);
      for (const { trip, index } of calls) {
        if (index === trip.stopTimes.length - 1 || !running.has(trip.serviceId)) continue;
        const call = trip.stopTimes[index];
        const departureMs = dayStartMs + call.departureSeconds * 1000;
        // Late buses run up to an hour past their schedule.
        if (departureMs < afterMs - 3_600_000) continue;
        candidates.push({ trip, index, serviceDate, dayStartMs, arrivalMs: dayStartMs + call.arrivalSeconds * 1000, departureMs });
      }
    }
    candidates.sort((a, b) => a.departureMs - b.departureMs);
    const states = await this.tripStates.loadMany([...new Set(candidates.slice(0, 200).map((c) => c.trip.tripId))]);
    const byTrip = new Map<string, VehicleState[]>();
    for (const list of states) if (Array.isArray(list)) for (const state of list) byTrip.set(state.tripId!, [...(byTrip.get(state.tripId!) ?? []), state]);
    const out: (StopArrivalValue & { sortMs: number })[] = [];
    for (const candidate of candidates.slice(0, 200)) {
      const call = candidate.trip.stopTimes[candidate.index];
      const bus = (byTrip.get(candidate.trip.tripId) ?? []).find(
        (state) => state.serviceDate === candidate.serviceDate && Math.abs(state.observedAt.getTime() - afterMs) <= PREDICTION_FRESH_MS,
      );
      let predicted: Date | null = null;
      if (bus) {
        const prediction = bus.predictions.find((p) => p.stopSequence === call.stopSequence);
        if (!prediction) {
          // No prediction for it: passed already when the bus is beyond it.
          if ((bus.shapeDistM ?? 0) > call.shapeDistTraveled) continue;
        } else {
          predicted = prediction.predictedArrival;
        }
      }
      const expectedDeparture = Math.max(candidate.departureMs, predicted?.getTime() ?? 0);
      if (expectedDeparture < afterMs) continue;
      out.push({
        tripId: candidate.trip.tripId,
        routeId: candidate.trip.routeId,
        headsign: candidate.trip.headsign,
        stopSequence: call.stopSequence,
        scheduledArrival: new Date(candidate.arrivalMs),
        scheduledDeparture: new Date(candidate.departureMs),
        predictedArrival: predicted,
        vehicleId: bus?.equipmentId ?? null,
        sortMs: predicted?.getTime() ?? candidate.arrivalMs,
      });
    }
    out.sort((a, b) => a.sortMs - b.sortMs || a.tripId.localeCompare(b.tripId));
    return out.slice(0, limit).map(({ sortMs: _, ...value }) => value);
  }

  stopArrivalVehicle(value: StopArrivalValue): Promise<VehicleRow | null> {
    return value.vehicleId ? this.byId.load(value.vehicleId) : Promise.resolve(null);
  }

  // --- Writes -----------------------------------------------------------------------------------

  /** `Mutation.assignVehicle`. */
  async assign(args: MutationAssignVehicleArgs): Promise<VehicleAssignmentRow> {
    const viewer = this.context.viewer;
    if (isPublic(viewer)) throw unauthenticated(`authentication required: buses are assigned by ${WRITER_ROLES.join(' or ')} of their collectivity`);
    const bus = await this.context.resources.directory.get(args.vehicleId, 'BUS');
    if (!bus || bus.status === 'DECOMMISSIONED') throw notFound(`vehicleId: no bus ${JSON.stringify(args.vehicleId)}`, 'vehicleId');
    if (!actsIn(viewer, bus.collectivityId, WRITER_ROLES)) {
      throw forbidden(`vehicleId: needs role ${WRITER_ROLES.join(' or ')} in collectivity '${bus.collectivityId}'`, 'vehicleId');
    }
    if (bus.status !== 'IN_SERVICE') throw badInput('vehicleId', `bus ${bus.equipmentId} is ${bus.status}: only a bus IN_SERVICE can run a block`);
    const serviceDate = args.serviceDate ?? this.today;
    if (serviceDate < addDays(this.today, -1)) throw badInput('serviceDate', `must be yesterday (${addDays(this.today, -1)}) or later`);
    const network = this.network;
    if (args.blockId.length === 0 || args.blockId.length > 200) throw badInput('blockId', 'must be a block id of the network (1 to 200 characters)');
    if (!network.tripsByBlock.has(args.blockId)) throw badInput('blockId', `the network has no block ${JSON.stringify(args.blockId)}`);
    if (!network.blocksOn(serviceDate).has(args.blockId)) throw badInput('serviceDate', `block ${args.blockId} runs no trip on ${serviceDate}`);
    const row = await this.context.resources.inTransaction((client) => assignVehicle(client, serviceDate, args.blockId, bus.equipmentId, viewer.sub!));
    this.byId.clear(bus.equipmentId);
    return row;
  }

  // --- Stream -------------------------------------------------------------------------------------

  /** `Subscription.vehicleMoved` (public): each state the tracker takes, filtered, resumable with `after`. */
  vehicleMoved(args: SubscriptionVehicleMovedArgs): AsyncIterableIterator<{ vehicleMoved: VehicleMoveValue }> {
    const criteria = criteriaOf(args.filter);
    const directory = this.context.resources.directory;
    return mapEvents(this.context.events, { topics: [VEHICLE_TOPIC], after: args.after ?? undefined }, async (event) => {
      const move = stateOfPayload(event.payload);
      if (!move || !matches(criteria, move.state)) return null;
      move.state.predictions = predictionsOf(this.network, move.state);
      const bus = await directory.get(move.state.equipmentId, 'BUS');
      const label = bus ? (bus.details.fleetNumber !== undefined && bus.details.fleetNumber !== null ? String(bus.details.fleetNumber) : bus.name) : null;
      return { vehicleMoved: { cursor: event.id, vehicle: { equipmentId: move.state.equipmentId, collectivityId: bus?.collectivityId ?? move.state.collectivityId, label, blockId: move.blockId, state: move.state } } };
    });
  }
}
