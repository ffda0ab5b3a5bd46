/**
 * A bus's progress, pure (no I/O): from one position, the state before it, the block it is
 * assigned and the network in memory, either its new state — the trip it runs, the distance it
 * has travelled along the trip's shape, its delay against the schedule, where it stands relative
 * to its next stop and the predicted arrival at the stops ahead — or the reason the position is
 * not believed (an outlier). vehicle-tracker.ts calls it for each position of a round, and the
 * bench (bench/mobility-progress.ts) for thousands of synthetic ones.
 *
 * Projection. A position is projected on the planar copy of the trip's shape (network.ts), on the
 * segments within a window around the previous progress — from `WINDOW_BACK_M` behind it to what
 * the bus could have covered since at the speed limit, plus `WINDOW_AHEAD_M` — then, if nothing
 * in the window is near enough, on the whole shape, where each pass near enough is a candidate
 * (a shape that comes back on itself: out and back along one street, a loop) and the one the
 * schedule explains best (the smallest delay) wins; so do the trips a time could mean (a late bus
 * still on its trip, or already on the next). The window costs a few segments instead of
 * hundreds, and keeps a bus on the pass it is on.
 *
 * Delay. The schedule at a distance along the shape is interpolated between the stop_times
 * around it by shape_dist_traveled; at a stop (within `AT_STOP_M`) the bus is on time between the
 * scheduled arrival and departure. Waiting at the first stop before departure is on time.
 *
 * Predictions. The delay is carried to each stop ahead; a stop's scheduled dwell (departure −
 * arrival) absorbs lateness up to its length, and an early bus waits there until its scheduled
 * departure. A prediction is never before the position's time.
 */
import { bearingDeg, haversineM, serviceDayStartMs, type Network, type ProjectedShape } from './network.js';
import type { NetworkShape, NetworkTrip, PredictedStopValue, VehicleOutlierRow, VehicleState, VehicleStopStatus } from './types.js';

/** Behind the previous progress, metres, the window still looks (GPS noise, a bus reversing at a terminus). */
export const WINDOW_BACK_M = 100;
/** Beyond what the bus could cover at the speed limit, metres. */
export const WINDOW_AHEAD_M = 200;
/** Within this distance along the shape of a stop, the bus is at it. */
export const AT_STOP_M = 25;
/** Within this distance before its next stop, the bus is INCOMING_AT it. */
export const INCOMING_M = 100;
/** GPS error a move may have on top of what the speed limit allows (jump check). */
export const GPS_TOLERANCE_M = 50;
/** Beyond this many seconds since the last position believed, a move is not checked for a jump (the bus may have been towed, switched off…). */
export const JUMP_WINDOW_S = 300;
/** A trip whose end is this close (metres) has been completed: the next position starts the block's next trip. */
export const TRIP_END_M = 30;
/** A trip is left for the next one this long after its scheduled end, however late the bus. */
export const MAX_LATE_S = 3_600;
/** A block's bus is in service from this long before its first departure to this long after its last arrival. */
export const BLOCK_MARGIN_S = 1_800;
/** Predictions kept per state (the schema's `nextStops(first)` maximum). */
export const MAX_PREDICTIONS = 50;

export interface ProgressConfig {
  /** MOBILITY_MAX_SPEED_MPS. */
  maxSpeedMps: number;
  /** MOBILITY_OFF_ROUTE_M. */
  offRouteM: number;
}

/** One position of a bus (its lat, lon and speed readings of one time). */
export interface PositionInput {
  equipmentId: string;
  collectivityId: string;
  observedAt: Date;
  lon: number;
  lat: number;
  speedMps: number | null;
}

/** A bus's block on a service day. */
export interface BlockAssignment {
  serviceDate: string;
  blockId: string;
}

export type TrackOutcome =
  | { kind: 'state'; state: VehicleState }
  | { kind: 'outlier'; outlier: VehicleOutlierRow & { equipmentId: string } }
  /** The same time as the state's: already applied. */
  | { kind: 'duplicate' };

export interface Projection {
  /** Metres along the shape. */
  distanceAlong: number;
  /** Metres from the shape. */
  offsetM: number;
  /** The segment (index of its first point); -1 when unknown. */
  segment: number;
}

export interface TrackOptions {
  /** `naive`: the baseline of the bench — every segment of the shape, geodesic arithmetic, no window. */
  projector?: 'windowed' | 'naive';
}

// --- Projection ----------------------------------------------------------------------------------

/** Index of the segment holding distance `d` (the last point index i with distances[i] ≤ d, clamped to a segment). */
function segmentAt(distances: number[], d: number): number {
  let lo = 0;
  let hi = distances.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (distances[mid] <= d) lo = mid;
    else hi = mid - 1;
  }
  return Math.min(lo, Math.max(0, distances.length - 2));
}

/** The nearest point of the shape's segments between distances `fromM` and `toM` to the planar point (px, py). */
export function projectOnShape(shape: ProjectedShape, px: number, py: number, fromM = -Infinity, toM = Infinity): Projection {
  const { x, y, distances } = shape;
  const n = x.length;
  if (n === 1) return { distanceAlong: 0, offsetM: Math.hypot(px - x[0], py - y[0]), segment: -1 };
  const first = fromM <= 0 ? 0 : segmentAt(distances, fromM);
  const last = toM >= shape.lengthM ? n - 2 : segmentAt(distances, toM);
  let best = Infinity;
  let bestAlong = 0;
  let bestSegment = -1;
  for (let i = first; i <= last; i++) {
    const ax = x[i];
    const ay = y[i];
    const dx = x[i + 1] - ax;
    const dy = y[i + 1] - ay;
    const len2 = dx * dx + dy * dy;
    let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
    if (t < 0) t = 0;
    else if (t > 1) t = 1;
    const ex = ax + t * dx - px;
    const ey = ay + t * dy - py;
    const d2 = ex * ex + ey * ey;
    if (d2 < best) {
      best = d2;
      bestAlong = distances[i] + t * (distances[i + 1] - distances[i]);
      bestSegment = i;
    }
  }
  return { distanceAlong: bestAlong, offsetM: Math.sqrt(best), segment: bestSegment };
}

/**
 * Every pass of the whole shape within `maxOffsetM` of the planar point: for each run of
 * consecutive segments that near, its nearest point. A shape that comes back on itself (out and
 * back along one street, a loop) gives several; the schedule decides between them.
 */
export function projectCandidates(shape: ProjectedShape, px: number, py: number, maxOffsetM: number): Projection[] {
  const { x, y, distances } = shape;
  const n = x.length;
  if (n === 1) {
    const offsetM = Math.hypot(px - x[0], py - y[0]);
    return offsetM <= maxOffsetM ? [{ distanceAlong: 0, offsetM, segment: -1 }] : [];
  }
  const max2 = maxOffsetM * maxOffsetM;
  const out: Projection[] = [];
  let runBest = Infinity;
  let runAlong = 0;
  let runSegment = -1;
  for (let i = 0; i < n - 1; i++) {
    const ax = x[i];
    const ay = y[i];
    const dx = x[i + 1] - ax;
    const dy = y[i + 1] - ay;
    const len2 = dx * dx + dy * dy;
    let t = len2 > 0 ? ((px - ax) * dx + (py - ay) * dy) / len2 : 0;
    if (t < 0) t = 0;
    else if (t > 1) t = 1;
    const ex = ax + t * dx - px;
    const ey = ay + t * dy - py;
    const d2 = ex * ex + ey * ey;
    if (d2 <= max2) {
      if (d2 < runBest) {
        runBest = d2;
        runAlong = distances[i] + t * (distances[i + 1] - distances[i]);
        runSegment = i;
      }
    } else if (runBest !== Infinity) {
      out.push({ distanceAlong: runAlong, offsetM: Math.sqrt(runBest), segment: runSegment });
      runBest = Infinity;
    }
  }
  if (runBest !== Infinity) out.push({ distanceAlong: runAlong, offsetM: Math.sqrt(runBest), segment: runSegment });
  return out;
}

/**
 * The baseline: every segment, each in its own local frame (a cosine per segment), the offset by
 * haversine — what a first implementation does, kept for the bench's ratio.
 */
export function projectNaive(shape: NetworkShape, lon: number, lat: number): Projection {
  const c = shape.coordinates;
  if (c.length === 1) return { distanceAlong: 0, offsetM: haversineM(lon, lat, c[0][0], c[0][1]), segment: -1 };
  let best = Infinity;
  let bestAlong = 0;
  for (let i = 0; i < c.length - 1; i++) {
    const k = Math.cos((((c[i][1] + c[i + 1][1]) / 2) * Math.PI) / 180);
    const dx = (c[i + 1][0] - c[i][0]) * k;
    const dy = c[i + 1][1] - c[i][1];
    const len2 = dx * dx + dy * dy;
    let t = len2 > 0 ? (((lon - c[i][0]) * k) * dx + (lat - c[i][1]) * dy) / len2 : 0;
    t = Math.max(0, Math.min(1, t));
    const offset = haversineM(lon, lat, c[i][0] + t * (c[i + 1][0] - c[i][0]), c[i][1] + t * dy);
    if (offset < best) {
      best = offset;
      bestAlong = shape.distances[i] + t * (shape.distances[i + 1] - shape.distances[i]);
    }
  }
  return { distanceAlong: bestAlong, offsetM: best, segment: -1 };
}

// --- Schedule -----------------------------------------------------------------------------------

/** The scheduled time (seconds of the service day) at a distance along the trip, between its stops. */
export function scheduledSecondsAt(trip: NetworkTrip, d: number): number {
  const st = trip.stopTimes;
  if (d <= st[0].shapeDistTraveled) return st[0].departureSeconds;
  const last = st[st.length - 1];
  if (d >= last.shapeDistTraveled) return last.arrivalSeconds;
  let lo = 0;
  let hi = st.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (st[mid].shapeDistTraveled <= d) lo = mid;
    else hi = mid;
  }
  const a = st[lo];
  const b = st[hi];
  const span = b.shapeDistTraveled - a.shapeDistTraveled;
  const fraction = span > 0 ? (d - a.shapeDistTraveled) / span : 1;
  return a.departureSeconds + fraction * (b.arrivalSeconds - a.departureSeconds);
}

/** Index of the first stop_time farther along than `d` (stopTimes.length when none). */
function nextStopIndex(trip: NetworkTrip, d: number): number {
  const st = trip.stopTimes;
  let lo = 0;
  let hi = st.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (st[mid].shapeDistTraveled <= d) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface ScheduleStanding {
  delaySeconds: number;
  currentStatus: Exclude<VehicleStopStatus, 'NOT_IN_SERVICE'>;
  /** Index in trip.stopTimes of the stop the status refers to. */
  stopIndex: number;
}

/** Delay and status of a bus at distance `d` along its trip at `s` seconds of the service day. */
export function standingOn(trip: NetworkTrip, d: number, s: number): ScheduleStanding {
  const st = trip.stopTimes;
  const next = nextStopIndex(trip, d);
  // The stop it stands at: the nearer of the previous and the next within AT_STOP_M.
  let at = -1;
  if (next > 0 && d - st[next - 1].shapeDistTraveled <= AT_STOP_M) at = next - 1;
  if (next < st.length && st[next].shapeDistTraveled - d <= AT_STOP_M && (at < 0 || st[next].shapeDistTraveled - d < d - st[at].shapeDistTraveled)) at = next;
  if (at >= 0) {
    const call = st[at];
    let delay = 0;
    if (s > call.departureSeconds && at < st.length - 1) delay = s - call.departureSeconds;
    else if (s > call.arrivalSeconds && at === st.length - 1) delay = s - call.arrivalSeconds;
    else if (s < call.arrivalSeconds && at > 0) delay = s - call.arrivalSeconds;
    return { delaySeconds: Math.round(delay), currentStatus: 'STOPPED_AT', stopIndex: at };
  }
  if (next === 0) {
    // Before the first stop: late only once its departure time is past.
    return { delaySeconds: Math.round(Math.max(0, s - st[0].departureSeconds)), currentStatus: st[0].shapeDistTraveled - d <= INCOMING_M ? 'INCOMING_AT' : 'IN_TRANSIT_TO', stopIndex: 0 };
  }
  if (next >= st.length) {
    return { delaySeconds: Math.round(s - st[st.length - 1].arrivalSeconds), currentStatus: 'STOPPED_AT', stopIndex: st.length - 1 };
  }
  const delay = s - scheduledSecondsAt(trip, d);
  return { delaySeconds: Math.round(delay), currentStatus: st[next].shapeDistTraveled - d <= INCOMING_M ? 'INCOMING_AT' : 'IN_TRANSIT_TO', stopIndex: next };
}

/** Predicted arrivals at the stops from `fromIndex` on, carrying `delaySeconds` (see the header). */
export function predictArrivals(trip: NetworkTrip, fromIndex: number, delaySeconds: number, dayStartMs: number, observedAtMs: number, limit = MAX_PREDICTIONS): PredictedStopValue[] {
  const st = trip.stopTimes;
  const out: PredictedStopValue[] = [];
  let carry = delaySeconds;
  for (let k = fromIndex; k < st.length && out.length < limit; k++) {
    const call = st[k];
    const scheduledMs = dayStartMs + call.arrivalSeconds * 1000;
    const predictedMs = Math.max(observedAtMs, scheduledMs + carry * 1000);
    out.push({ stopId: call.stopId, stopSequence: call.stopSequence, scheduledArrival: new Date(scheduledMs), predictedArrival: new Date(predictedMs) });
    // What it carries to the next stop: lateness less the dwell it can cut, no earliness past a dwell.
    carry = (predictedMs - scheduledMs) / 1000;
    const dwell = call.departureSeconds - call.arrivalSeconds;
    if (dwell > 0) carry = carry > 0 ? Math.max(0, carry - dwell) : 0;
  }
  return out;
}

// --- Trip within a block --------------------------------------------------------------------------

export interface TripChoice {
  trip: NetworkTrip;
  serviceDate: string;
  dayStartMs: number;
}

/**
 * The trips of its block a bus may be running at `atMs`, the likeliest first: the one it was
 * running until it reaches its end (however late, up to MAX_LATE_S past its scheduled end), then
 * the block's next; without a trip in progress, the first trip of the block not yet scheduled to
 * have ended, and the one before it while it may still be running late (the position decides
 * between them: see `trackPosition`). Empty outside the block's hours (BLOCK_MARGIN_S around
 * them) or once its last trip is done.
 */
export function candidateTrips(network: Network, assignments: readonly BlockAssignment[], atMs: number, previous: VehicleState | null): TripChoice[] {
  let fallback: TripChoice[] = [];
  for (const assignment of assignments) {
    const trips = network.blocksOn(assignment.serviceDate).get(assignment.blockId);
    if (!trips || trips.length === 0) continue;
    const dayStartMs = serviceDayStartMs(assignment.serviceDate);
    const s = (atMs - dayStartMs) / 1000;
    if (s < trips[0].startSeconds - BLOCK_MARGIN_S || s > trips[trips.length - 1].endSeconds + BLOCK_MARGIN_S + MAX_LATE_S) continue;
    const choice = (trip: NetworkTrip): TripChoice => ({ trip, serviceDate: assignment.serviceDate, dayStartMs });
    if (previous?.tripId && previous.serviceDate === assignment.serviceDate) {
      const index = trips.findIndex((trip) => trip.tripId === previous.tripId);
      if (index >= 0) {
        const trip = trips[index];
        const length = trip.stopTimes[trip.stopTimes.length - 1].shapeDistTraveled;
        const finished = (previous.shapeDistM ?? 0) >= length - TRIP_END_M;
        if (!finished && s <= trip.endSeconds + MAX_LATE_S) return [choice(trip)];
        if (finished) {
          const next = trips[index + 1];
          if (next) return [choice(next)];
          continue;
        }
      }
    }
    if (fallback.length > 0 || s > trips[trips.length - 1].endSeconds + BLOCK_MARGIN_S) continue;
    let index = trips.findIndex((candidate) => s <= candidate.endSeconds);
    if (index < 0) index = trips.length - 1;
    fallback = [choice(trips[index])];
    const before = trips[index - 1];
    if (before && s <= before.endSeconds + MAX_LATE_S) fallback.push(choice(before));
  }
  return fallback;
}

/** The likeliest trip (the first candidate), or null. */
export function chooseTrip(network: Network, assignments: readonly BlockAssignment[], atMs: number, previous: VehicleState | null): TripChoice | null {
  return candidateTrips(network, assignments, atMs, previous)[0] ?? null;
}

// --- One position ----------------------------------------------------------------------------------

/** Whether the shape's segment runs within 90° of a heading (degrees clockwise from north); true when either is unknown. */
function alongHeading(shape: ProjectedShape, segment: number, heading: number | null): boolean {
  if (heading === null || segment < 0) return true;
  const dx = shape.x[segment + 1] - shape.x[segment];
  const dy = shape.y[segment + 1] - shape.y[segment];
  if (dx === 0 && dy === 0) return true;
  const diff = Math.abs((((Math.atan2(dx, dy) * 180) / Math.PI - heading) % 360) + 360) % 360;
  return diff <= 90 || diff >= 270;
}

/**
 * The position's places on the shape: in the window after `previousM` when given and something
 * there is near enough; else every pass of the whole shape near enough (none: off the route).
 * `nearestM` is the distance to the shape when none is near enough.
 */
function project(
  network: Network,
  shape: ProjectedShape,
  position: PositionInput,
  previousM: number | null,
  dt: number,
  heading: number | null,
  config: ProgressConfig,
  options: TrackOptions,
): { places: Projection[]; nearestM: number } {
  if (options.projector === 'naive') {
    const naive = projectNaive(shape, position.lon, position.lat);
    return { places: naive.offsetM <= config.offRouteM ? [naive] : [], nearestM: naive.offsetM };
  }
  const px = (position.lon - network.frame.lon0) * network.frame.kx;
  const py = (position.lat - network.frame.lat0) * network.frame.ky;
  if (previousM !== null) {
    const windowed = projectOnShape(shape, px, py, previousM - WINDOW_BACK_M, previousM + Math.min(dt, 3_600) * config.maxSpeedMps + WINDOW_AHEAD_M);
    // Near, and the bus going the shape's way there (else it took the wrong pass: look again).
    if (windowed.offsetM <= config.offRouteM && alongHeading(shape, windowed.segment, heading)) return { places: [windowed], nearestM: windowed.offsetM };
  }
  const places = projectCandidates(shape, px, py, config.offRouteM);
  // Passes the bus runs against are left out, unless all are.
  const ahead = places.filter((place) => alongHeading(shape, place.segment, heading));
  return { places: ahead.length > 0 ? ahead : places, nearestM: places.length > 0 ? 0 : Infinity };
}

const outlier = (position: PositionInput, reason: VehicleOutlierRow['reason']): TrackOutcome => ({
  kind: 'outlier',
  outlier: { equipmentId: position.equipmentId, observedAt: position.observedAt, reason, lon: position.lon, lat: position.lat, speedMps: position.speedMps },
});

/** The outcome of one position of a bus (see the header). */
export function trackPosition(
  network: Network,
  position: PositionInput,
  previous: VehicleState | null,
  assignments: readonly BlockAssignment[],
  config: ProgressConfig,
  options: TrackOptions = {},
): TrackOutcome {
  const atMs = position.observedAt.getTime();
  if (position.speedMps !== null && position.speedMps > config.maxSpeedMps) return outlier(position, 'SPEED_IMPLAUSIBLE');
  let moved = 0;
  let dt = Infinity;
  if (previous) {
    const prevMs = previous.observedAt.getTime();
    if (atMs < prevMs) return outlier(position, 'OUT_OF_ORDER');
    if (atMs === prevMs) return { kind: 'duplicate' };
    dt = (atMs - prevMs) / 1000;
    moved = haversineM(previous.lon, previous.lat, position.lon, position.lat);
    if (dt <= JUMP_WINDOW_S && moved > config.maxSpeedMps * dt + GPS_TOLERANCE_M) return outlier(position, 'JUMP_IMPLAUSIBLE');
  }
  const bearing = previous && moved >= 5 ? Math.round(bearingDeg(previous.lon, previous.lat, position.lon, position.lat) * 10) / 10 : (previous?.bearing ?? null);
  // The heading of this move, when the bus moved enough for it to mean something (GPS noise).
  const heading = previous && moved >= 15 && dt <= JUMP_WINDOW_S ? bearing : null;
  const base: VehicleState = {
    equipmentId: position.equipmentId,
    collectivityId: position.collectivityId,
    observedAt: position.observedAt,
    lon: position.lon,
    lat: position.lat,
    speedMps: position.speedMps,
    bearing,
    serviceDate: null,
    tripId: null,
    routeId: null,
    shapeDistM: null,
    delaySeconds: null,
    currentStatus: 'NOT_IN_SERVICE',
    stopSequence: null,
    stopId: null,
    predictions: [],
  };
  const candidates = candidateTrips(network, assignments, atMs, previous);
  if (candidates.length === 0) return { kind: 'state', state: base };
  // Each candidate's projection; of those on their route, the one the schedule explains best.
  let chosen: { choice: TripChoice; d: number; standing: ScheduleStanding } | null = null;
  let known = false;
  for (const choice of candidates) {
    const shape = network.shapes.get(choice.trip.shapeId);
    if (!shape) continue;
    const sameTrip = previous?.tripId === choice.trip.tripId && previous.serviceDate === choice.serviceDate && previous.shapeDistM !== null;
    const { places } = project(network, shape, position, sameTrip ? previous!.shapeDistM! : null, dt, heading, config, options);
    known = true;
    for (const place of places) {
      let d = place.distanceAlong;
      // GPS noise must not move a bus backwards: a small step back keeps the previous progress.
      if (sameTrip && d < previous!.shapeDistM! && previous!.shapeDistM! - d <= AT_STOP_M) d = previous!.shapeDistM!;
      const standing = standingOn(choice.trip, d, (atMs - choice.dayStartMs) / 1000);
      if (!chosen || Math.abs(standing.delaySeconds) < Math.abs(chosen.standing.delaySeconds)) chosen = { choice, d, standing };
    }
  }
  if (!chosen) return known ? outlier(position, 'OFF_ROUTE') : { kind: 'state', state: base };
  const { choice, d, standing } = chosen;
  const { trip, dayStartMs } = choice;
  const from = standing.currentStatus === 'STOPPED_AT' ? standing.stopIndex + 1 : standing.stopIndex;
  const call = trip.stopTimes[standing.stopIndex];
  return {
    kind: 'state',
    state: {
      ...base,
      serviceDate: choice.serviceDate,
      tripId: trip.tripId,
      routeId: trip.routeId,
      shapeDistM: Math.round(d * 10) / 10,
      delaySeconds: standing.delaySeconds,
      currentStatus: standing.currentStatus,
      stopSequence: call.stopSequence,
      stopId: call.stopId,
      predictions: predictArrivals(trip, from, standing.delaySeconds, dayStartMs, atMs),
    },
  };
}

/**
 * A state's predictions computed again from the state alone (its trip, service day, stop, status,
 * delay and time) — what `trackPosition` gave it; for readers of `mobility.vehicle` events, which
 * carry no predictions. Empty when not in service or when the network no longer has its trip.
 */
export function predictionsOf(network: Network, state: VehicleState, limit = MAX_PREDICTIONS): PredictedStopValue[] {
  if (!state.tripId || !state.serviceDate || state.delaySeconds === null || state.stopSequence === null) return [];
  const trip = network.trips.get(state.tripId);
  if (!trip) return [];
  const index = trip.stopTimes.findIndex((call) => call.stopSequence === state.stopSequence);
  if (index < 0) return [];
  const from = state.currentStatus === 'STOPPED_AT' ? index + 1 : index;
  return predictArrivals(trip, from, state.delaySeconds, serviceDayStartMs(state.serviceDate), state.observedAt.getTime(), limit);
}

/** Stored predictions (`[[stopSequence, predicted arrival in epoch seconds], …]`) back as values, through the trip's stop_times. */
export function storedPredictions(network: Network, tripId: string | null, serviceDate: string | null, pairs: unknown): PredictedStopValue[] {
  if (!tripId || !serviceDate || !Array.isArray(pairs)) return [];
  const trip = network.trips.get(tripId);
  if (!trip) return [];
  const dayStartMs = serviceDayStartMs(serviceDate);
  const out: PredictedStopValue[] = [];
  for (const pair of pairs as [number, number][]) {
    const call = trip.stopTimes.find((stopTime) => stopTime.stopSequence === pair[0]);
    if (call) out.push({ stopId: call.stopId, stopSequence: call.stopSequence, scheduledArrival: new Date(dayStartMs + call.arrivalSeconds * 1000), predictedArrival: new Date(pair[1] * 1000) });
  }
  return out;
}
