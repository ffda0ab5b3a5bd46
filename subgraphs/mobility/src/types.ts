/**
 * The mobility domain's shared vocabulary: event topics, the rows its store returns (the GraphQL
 * mappers), the in-memory network model, and the hooks the readings consumer calls. Areas:
 * network (gtfs-*.ts, network.ts), vehicles (vehicle-*.ts), signal priority (signal-priority*.ts),
 * parking (parking-*.ts). docs/mobility.md describes each.
 */
import type pg from 'pg';

// --- Event topics (docs/mobility.md, docs/event-bus.md) -----------------------------------------

/** One event per vehicle state change; payload `VehicleEventPayload`; read by `vehicleMoved`. */
export const VEHICLE_TOPIC = 'mobility.vehicle';
/** One event per facility whose availability changed; payload `ParkingEventPayload`; read by `parkingAvailabilityChanged`. */
export const PARKING_TOPIC = 'mobility.parking';
/** One event per priority request sent or answered; payload `PriorityEventPayload`. */
export const PRIORITY_TOPIC = 'mobility.signal-priority';
/**
 * A controller that does not answer priority requests, or answers with a fault: telemetry raises
 * its `SIGNAL_PRIORITY_FAULT` alarm from this event (payload `{ equipmentId, code, message }`,
 * telemetry's EVENT rule), and clears it from `SIGNAL_FAULT_CLEARED_TOPIC` when the controller
 * grants or denies a later request normally.
 */
export const SIGNAL_FAULT_TOPIC = 'mobility.signal-fault';
export const SIGNAL_FAULT_CLEARED_TOPIC = 'mobility.signal-fault.cleared';
export const SIGNAL_FAULT_CODE = 'SIGNAL_PRIORITY_FAULT';

/** A new network was imported (payload `{ feedId }`): every instance reloads its in-memory network. */
export const NETWORK_TOPIC = 'mobility.network';

/** Equipment's topic (mobility keeps `mobility_assets` from it) and telemetry's readings topic. */
export const EQUIPMENT_CHANGED_TOPIC = 'equipment.changed';
export const TELEMETRY_READINGS_TOPIC = 'telemetry.readings';

/** The asset kinds mobility follows (`mobility_assets.kind`). */
export const MOBILITY_KINDS = ['BUS', 'BUS_STOP', 'PARKING_FACILITY', 'PARKING_SENSOR', 'TRAFFIC_SIGNAL_CONTROLLER'] as const;
export type MobilityKind = (typeof MOBILITY_KINDS)[number];

// --- The asset directory (mobility_assets) -----------------------------------------------------

export interface AssetRow {
  equipmentId: string;
  collectivityId: string;
  kind: MobilityKind;
  reference: string;
  name: string | null;
  status: 'IN_SERVICE' | 'FAULT' | 'MAINTENANCE' | 'DECOMMISSIONED';
  /** [lon, lat], null when unlocated. */
  location: [number, number] | null;
  parentId: string | null;
  details: Record<string, unknown>;
}

// --- Readings, as telemetry publishes them ------------------------------------------------------

/** One reading of a `telemetry.readings` event: telemetry's `[equipmentId, kind, metric, time (ISO), value]`. */
export interface Reading {
  equipmentId: string;
  kind: string;
  metric: string;
  time: Date;
  value: number;
}

/** An area fed by readings: called by the readings consumer inside its transaction, once per event. */
export interface ReadingsHandler {
  /** The kinds whose readings it wants. */
  readonly kinds: readonly string[];
  apply(client: pg.PoolClient, readings: Reading[], eventCollectivityId: string | null): Promise<void>;
}

// --- Network (GTFS) rows ----------------------------------------------------------------------------

export interface GtfsFeedRow {
  id: string;
  source: string;
  feedVersion: string | null;
  sha256: string;
  importedAt: Date;
  counts: Record<string, number>;
  warnings: string[];
  /** YYYY-MM-DD: first and last day any of its services runs; null without services. */
  validFrom: string | null;
  validTo: string | null;
}

export interface RouteRow {
  routeId: string;
  agencyId: string;
  agencyName: string;
  shortName: string | null;
  longName: string | null;
  description: string | null;
  routeType: number;
  color: string | null;
  textColor: string | null;
  sortOrder: number | null;
}

export interface StopRow {
  stopId: string;
  equipmentId: string;
  code: string | null;
  name: string;
  description: string | null;
  lon: number;
  lat: number;
  wheelchairBoarding: number | null;
}

export interface TripRow {
  tripId: string;
  routeId: string;
  serviceId: string;
  shapeId: string;
  headsign: string | null;
  shortName: string | null;
  directionId: number | null;
  blockId: string | null;
}

export interface StopTimeRow {
  tripId: string;
  stopSequence: number;
  stopId: string;
  /** Seconds after "noon minus 12 h" of the service day (may exceed 86,400). */
  arrivalSeconds: number;
  departureSeconds: number;
  shapeDistTraveled: number;
}

// --- Network, in memory (network.ts loads it from the gtfs_* tables) ---------------------------

export interface NetworkShape {
  shapeId: string;
  /** [lon, lat] per point. */
  coordinates: [number, number][];
  /** Distance of each point from the start, metres (same length as coordinates). */
  distances: number[];
  lengthM: number;
}

export interface NetworkTrip extends TripRow {
  stopTimes: StopTimeRow[];
  /** First departure and last arrival, seconds of the service day. */
  startSeconds: number;
  endSeconds: number;
}

// --- Vehicles -----------------------------------------------------------------------------------

export type VehicleStopStatus = 'INCOMING_AT' | 'STOPPED_AT' | 'IN_TRANSIT_TO' | 'NOT_IN_SERVICE';

export interface PredictedStopValue {
  stopId: string;
  stopSequence: number;
  scheduledArrival: Date;
  predictedArrival: Date;
}

/** A bus's live state (`vehicle_states`), as the tracker computes it. */
export interface VehicleState {
  equipmentId: string;
  collectivityId: string;
  observedAt: Date;
  lon: number;
  lat: number;
  speedMps: number | null;
  bearing: number | null;
  /** YYYY-MM-DD (Europe/Paris) of the trip's service day. */
  serviceDate: string | null;
  tripId: string | null;
  routeId: string | null;
  shapeDistM: number | null;
  delaySeconds: number | null;
  currentStatus: VehicleStopStatus;
  stopSequence: number | null;
  stopId: string | null;
  predictions: PredictedStopValue[];
}

/** What `Vehicle` resolvers receive: the bus asset, and its state when it has one. */
export interface VehicleRow {
  equipmentId: string;
  collectivityId: string;
  label: string | null;
  blockId: string | null;
  state: VehicleState | null;
}

export interface VehicleAssignmentRow {
  serviceDate: string;
  blockId: string;
  equipmentId: string;
  assignedAt: Date;
}

export interface VehicleOutlierRow {
  observedAt: Date;
  reason: 'SPEED_IMPLAUSIBLE' | 'JUMP_IMPLAUSIBLE' | 'OFF_ROUTE' | 'OUT_OF_ORDER';
  lon: number | null;
  lat: number | null;
  speedMps: number | null;
}

export interface StopArrivalValue {
  tripId: string;
  routeId: string;
  headsign: string | null;
  stopSequence: number;
  scheduledArrival: Date;
  scheduledDeparture: Date;
  predictedArrival: Date | null;
  vehicleId: string | null;
}

/** Payload of a `mobility.vehicle` event: the state after the move. */
export interface VehicleEventPayload {
  state: VehicleState;
  /** The block the bus is assigned on the state's service day (today when not in service), when it has one. */
  blockId?: string | null;
}

/**
 * Called by the tracker, in the readings consumer's transaction, with the states it has just
 * stored (signal priority decides there whether to send requests).
 */
export interface VehicleStatesListener {
  onVehicleStates(client: pg.PoolClient, states: VehicleState[]): Promise<void>;
}

// --- Signal priority --------------------------------------------------------------------------------

export type SignalPriorityStatus = 'REQUESTED' | 'GRANTED' | 'DENIED' | 'EXPIRED';

export interface SignalPriorityRequestRow {
  id: string;
  controllerId: string;
  collectivityId: string;
  vehicleId: string;
  tripId: string;
  routeId: string;
  serviceDate: string;
  requestedAt: Date;
  expiresAt: Date;
  distanceM: number;
  delaySeconds: number;
  etaSeconds: number;
  status: SignalPriorityStatus;
  answeredAt: Date | null;
  error: string | null;
  secondsSaved: number | null;
}

export interface SignalPriorityStatsValue {
  requests: number;
  grants: number;
  denials: number;
  expired: number;
  secondsSaved: number;
}

export interface PriorityEventPayload {
  request: SignalPriorityRequestRow;
}

// --- Parking ----------------------------------------------------------------------------------------

export type OccupancyStatus = 'OK' | 'OVER_CAPACITY' | 'STALE' | 'UNKNOWN';

export interface OpeningHoursValue {
  days: number[];
  opens: string;
  closes: string;
}

export interface ParkingTariffValue {
  label: string;
  upToMinutes: number | null;
  priceEur: number;
}

export interface ParkingFacilityRow {
  equipmentId: string;
  collectivityId: string;
  name: string;
  type: 'UNDERGROUND' | 'SURFACE' | 'ON_STREET';
  location: [number, number] | null;
  capacity: number;
  occupied: number | null;
  reported: number | null;
  source: 'COUNTER' | 'SENSORS' | null;
  /** As stored (OK / OVER_CAPACITY); STALE and UNKNOWN are derived when read. */
  status: 'OK' | 'OVER_CAPACITY' | null;
  observedAt: Date | null;
  openingHours: OpeningHoursValue[];
  tariffs: ParkingTariffValue[];
  freeMinutes: number;
}

export interface ParkingEventPayload {
  facility: ParkingFacilityRow;
}
