/**
 * Transit-signal priority (docs/mobility.md, "Signal priority").
 *
 * Deciding (`onVehicleStates`, in the readings consumer's transaction, with the states the tracker
 * has just stored): a bus in service, moving on a trip, at least MOBILITY_PRIORITY_MIN_DELAY_S
 * late, whose shape passes a traffic-signal controller (an IN_SERVICE TRAFFIC_SIGNAL_CONTROLLER
 * asset within INTERSECTION_OFFSET_M of the shape, `details.busPriority` not false) at most
 * MOBILITY_PRIORITY_DISTANCE_M ahead of it along the shape, gets one request per pass (bus,
 * service day, trip, controller: a later position on the same pass inserts nothing). Inserting is
 * all that happens there: nothing leaves the process before that transaction commits.
 *
 * Sending (worker `signal-priority`, an outbox): committed requests not sent yet are claimed (a
 * lease, so that another instance does not send them too), published QoS 1 on the controller's
 * downlink `connecte/<collectivity>/<controller>/down` as
 * `{ cid, op: 'priority_request', vehicleId, tripId, routeId, etaSeconds, delaySeconds, ttl }`
 * and marked sent once the broker acknowledged them (PUBACK). A connection that drops keeps the
 * message in the client's store and sends it again on reconnection (dropped from the store once
 * expired); the row is neither lost (claimed again once its lease passes if it was never
 * acknowledged by the broker) nor sent again by this instance while it is in its hands.
 *
 * Answers: acks `{ cid, ok, error? }` on `$share/<group>/connecte/+/+/ack` (QoS 1, persistent
 * session; the PUBACK is written after the answer is committed): `ok: true` → GRANTED with the
 * `secondsSaved` estimate (`estimatedSecondsSaved`), `ok: false` → DENIED with the reason. Only a
 * REQUESTED row changes: a redelivered ack finds it answered and changes nothing. An ack naming
 * an unknown cid, another controller's cid, or that is not JSON of that shape is logged and
 * ignored. No ack within the ttl (plus ACK_GRACE_MS) → EXPIRED.
 *
 * Faults: after MOBILITY_PRIORITY_FAULT_AFTER consecutive sent requests of a controller expired
 * unanswered, or an answer whose error mentions a fault, `mobility.signal-fault` (telemetry
 * raises SIGNAL_PRIORITY_FAULT); the controller's next normal answer (a grant, or a denial that
 * is not a fault) publishes `mobility.signal-fault.cleared`. One open fault per controller.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import mqtt, { Store, type IPublishPacket, type MqttClient } from 'mqtt';
import type pg from 'pg';
import { publishEvents, type NewEvent } from '@connecte/shared/events';
import { downlinkTopic } from '@connecte/shared/senml';
import type { Worker, WorkerStatus } from '@connecte/shared/workers';
import type { MobilityResources } from './resources.js';
import {
  answerRequest,
  claimUnsent,
  clearFault,
  expireRequests,
  hasOpenFault,
  insertRequests,
  lastUnanswered,
  lockController,
  markFaultRaised,
  markSent,
  releaseLease,
  requestById,
  type NewRequest,
  type OutboxRow,
} from './signal-priority-store.js';
import {
  PRIORITY_TOPIC,
  SIGNAL_FAULT_CLEARED_TOPIC,
  SIGNAL_FAULT_CODE,
  SIGNAL_FAULT_TOPIC,
  type AssetRow,
  type PriorityEventPayload,
  type SignalPriorityRequestRow,
  type VehicleState,
  type VehicleStatesListener,
} from './types.js';

/** A controller farther than this from a shape is not on it (its asset stands at a corner of the junction). */
export const INTERSECTION_OFFSET_M = 30;
/** Below this speed (a bus pulling away, or no speed reported), the ETA assumes NOMINAL_SPEED_MPS. */
export const MIN_ETA_SPEED_MPS = 2;
export const NOMINAL_SPEED_MPS = 6;
/** An ack may still be on its way this long after the request's expiry. */
export const ACK_GRACE_MS = 2_000;
/** How long a claim keeps a row from other instances (at most until its expiry). */
const SEND_LEASE_MS = 15_000;
/** The worker's safety poll (expiry, rows committed by other instances, leases that passed). */
const POLL_MS = 1_000;
/** After (re)connecting, acks queued by the broker arrive first: sent requests do not expire before this. */
const SETTLE_AFTER_CONNECT_MS = 1_500;
const CLAIM_BATCH = 100;
const ERROR_MAX_CHARS = 500;
const ACK_FILTER = 'connecte/+/+/ack';
/** A session of a test instance that disconnected goes after this (same as telemetry's ingest). */
const TEST_SESSION_EXPIRY_SECONDS = 60;
const SESSION_NEVER_EXPIRES = 0xffff_ffff;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** An ack's error that says the controller cannot grant anything (rather than refusing this once). */
const FAULT_ERROR = /\bfault/i;

const EARTH_RADIUS_M = 6_371_008.8;
const RAD = Math.PI / 180;

// --- Geometry and models (pure) ------------------------------------------------------------------

/** A controller on a shape: where along it (metres from the start) and how far from it. */
export interface ShapeIntersection {
  controllerId: string;
  collectivityId: string;
  alongM: number;
  offsetM: number;
}

export interface ShapeGeometry {
  /** [lon, lat] per point. */
  coordinates: readonly (readonly [number, number])[];
  /** Distance of each point from the start, metres. */
  distances: readonly number[];
}

/**
 * The controllers within `maxOffsetM` of the shape, each at its nearest point of it (a shape that
 * passes a junction twice keeps the nearer pass), ordered along the shape. Local equirectangular
 * projection around each controller: exact to well under a metre at these distances.
 */
export function intersectionsAlong(shape: ShapeGeometry, controllers: readonly AssetRow[], maxOffsetM = INTERSECTION_OFFSET_M): ShapeIntersection[] {
  const points = shape.coordinates;
  if (points.length < 2 || shape.distances.length !== points.length) return [];
  let minLon = Infinity, minLat = Infinity, maxLon = -Infinity, maxLat = -Infinity;
  for (const [lon, lat] of points) {
    if (lon < minLon) minLon = lon;
    if (lon > maxLon) maxLon = lon;
    if (lat < minLat) minLat = lat;
    if (lat > maxLat) maxLat = lat;
  }
  const marginLat = maxOffsetM / (EARTH_RADIUS_M * RAD);
  const found: ShapeIntersection[] = [];
  for (const controller of controllers) {
    if (!controller.location) continue;
    const [lon0, lat0] = controller.location;
    const marginLon = marginLat / Math.max(0.01, Math.cos(lat0 * RAD));
    if (lon0 < minLon - marginLon || lon0 > maxLon + marginLon || lat0 < minLat - marginLat || lat0 > maxLat + marginLat) continue;
    const kx = Math.cos(lat0 * RAD) * EARTH_RADIUS_M * RAD;
    const ky = EARTH_RADIUS_M * RAD;
    let best: { offset: number; along: number } | null = null;
    for (let i = 0; i + 1 < points.length; i++) {
      const ax = (points[i][0] - lon0) * kx, ay = (points[i][1] - lat0) * ky;
      const bx = (points[i + 1][0] - lon0) * kx, by = (points[i + 1][1] - lat0) * ky;
      const dx = bx - ax, dy = by - ay;
      const length2 = dx * dx + dy * dy;
      const t = length2 === 0 ? 0 : Math.min(1, Math.max(0, -(ax * dx + ay * dy) / length2));
      const px = ax + t * dx, py = ay + t * dy;
      const offset = Math.hypot(px, py);
      if (offset <= maxOffsetM && (best === null || offset < best.offset)) {
        best = { offset, along: shape.distances[i] + t * (shape.distances[i + 1] - shape.distances[i]) };
      }
    }
    if (best) found.push({ controllerId: controller.equipmentId, collectivityId: controller.collectivityId, alongM: best.along, offsetM: best.offset });
  }
  return found.sort((a, b) => a.alongM - b.alongM || a.controllerId.localeCompare(b.controllerId));
}

/** Seconds before the bus reaches the stop line: its speed, or NOMINAL_SPEED_MPS when it is (nearly) still or unknown. */
export function etaSeconds(distanceM: number, speedMps: number | null): number {
  const speed = speedMps !== null && Number.isFinite(speedMps) && speedMps >= MIN_ETA_SPEED_MPS ? speedMps : NOMINAL_SPEED_MPS;
  return Math.round((distanceM / speed) * 10) / 10;
}

/** The cycle a controller runs with `phases` phases when its asset does not say (`details.cycleSeconds`). */
export const CYCLE_SECONDS_BY_PHASES: Readonly<Record<number, number>> = { 2: 60, 3: 80, 4: 100 };
/** Share of the signal delay a granted priority (green extension or early green) removes. */
export const PRIORITY_EFFECTIVENESS = 0.8;

/**
 * The seconds a grant saves the bus: the mean signal delay of a vehicle arriving at random in
 * a fixed-time cycle of C seconds whose approach is red for r seconds, r² / (2C) (uniform
 * arrival: it meets red with probability r/C and then waits r/2 on average), of which a grant
 * removes PRIORITY_EFFECTIVENESS. C from the controller's `details.cycleSeconds`, else by its
 * `details.phases` (2: 60 s, 3: 80 s, 4: 100 s; 2 phases when unknown); the bus's approach has
 * one phase of green, r = C × (phases − 1) / phases. 2 phases: 6 s; 3: 14.2 s; 4: 22.5 s.
 */
export function estimatedSecondsSaved(details: Record<string, unknown>): number {
  const phasesValue = Number(details.phases);
  const phases = Number.isInteger(phasesValue) && phasesValue >= 2 && phasesValue <= 8 ? phasesValue : 2;
  const cycleValue = Number(details.cycleSeconds);
  const cycle = Number.isFinite(cycleValue) && cycleValue >= 20 && cycleValue <= 300 ? cycleValue : (CYCLE_SECONDS_BY_PHASES[phases] ?? 20 + 20 * phases);
  const red = (cycle * (phases - 1)) / phases;
  return Math.round(((red * red) / (2 * cycle)) * PRIORITY_EFFECTIVENESS * 10) / 10;
}

/** The downlink of a request (docs/devices.md: `{ cid, op, ...args, ttl }`), its ttl what is left of it. */
export function downlinkOf(request: SignalPriorityRequestRow, now = Date.now()): { topic: string; payload: string; ttl: number } {
  const ttl = Math.max(1, Math.ceil((request.expiresAt.getTime() - now) / 1000));
  return {
    topic: downlinkTopic(request.collectivityId, request.controllerId),
    payload: JSON.stringify({
      cid: request.id,
      op: 'priority_request',
      vehicleId: request.vehicleId,
      tripId: request.tripId,
      routeId: request.routeId,
      etaSeconds: request.etaSeconds,
      delaySeconds: request.delaySeconds,
      ttl,
    }),
    ttl,
  };
}

export type ParsedAck = { ok: true; cid: string; granted: boolean; error: string | null } | { ok: false; reason: string };

/** An ack's payload `{ cid, ok, error? }`, or why it is not one. */
export function parseAck(payload: Buffer | string): ParsedAck {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString());
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  const { cid, ok, error } = value as Record<string, unknown>;
  if (typeof cid !== 'string' || cid === '') return { ok: false, reason: 'cid: missing or not a string' };
  if (typeof ok !== 'boolean') return { ok: false, reason: 'ok: missing or not a boolean' };
  if (error !== undefined && error !== null && typeof error !== 'string') return { ok: false, reason: 'error: not a string' };
  // eslint-disable-next-line no-control-regex
  const reason = typeof error === 'string' ? error.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim().slice(0, ERROR_MAX_CHARS) || null : null;
  return { ok: true, cid, granted: ok, error: ok ? null : (reason ?? 'no reason given') };
}

/** `connecte/<collectivityId>/<equipmentId>/ack` → its parts, or null. */
export function ackTopicParts(topic: string): { collectivityId: string; equipmentId: string } | null {
  const parts = topic.split('/');
  if (parts.length !== 4 || parts[0] !== 'connecte' || parts[3] !== 'ack' || !parts[1] || !parts[2]) return null;
  return { collectivityId: parts[1], equipmentId: parts[2] };
}

const rowOf = (row: OutboxRow): SignalPriorityRequestRow => ({
  id: row.id,
  controllerId: row.controllerId,
  collectivityId: row.collectivityId,
  vehicleId: row.vehicleId,
  tripId: row.tripId,
  routeId: row.routeId,
  serviceDate: row.serviceDate,
  requestedAt: row.requestedAt,
  expiresAt: row.expiresAt,
  distanceM: row.distanceM,
  delaySeconds: row.delaySeconds,
  etaSeconds: row.etaSeconds,
  status: row.status,
  answeredAt: row.answeredAt,
  error: row.error,
  secondsSaved: row.secondsSaved,
});

const priorityEvent = (row: OutboxRow): NewEvent => ({
  topic: PRIORITY_TOPIC,
  collectivityId: row.collectivityId,
  payload: { request: rowOf(row) } satisfies PriorityEventPayload,
});

const faultEvent = (topic: string, row: Pick<OutboxRow, 'controllerId' | 'collectivityId'>, message: string): NewEvent => ({
  topic,
  collectivityId: row.collectivityId,
  payload: { equipmentId: row.controllerId, code: SIGNAL_FAULT_CODE, message },
});

interface TripShape {
  shapeId: string;
  shape: ShapeGeometry;
}

// --- The listener and the worker ---------------------------------------------------------------------

export interface PriorityWorkerStats {
  published: number;
  acknowledgedByBroker: number;
  acks: number;
  duplicateAcks: number;
  ignoredAcks: number;
  connections: number;
}

export class SignalPriority implements VehicleStatesListener {
  private readonly intersectionCache = new Map<string, { signature: string; shape: ShapeGeometry; list: ShapeIntersection[] }>();
  private client: MqttClient | null = null;
  private running = false;
  private connectedAt: number | null = null;
  /** Requests handed to the MQTT client and not yet acknowledged by the broker, by cid → expiry (ms). */
  private readonly inFlight = new Map<string, number>();
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  private sweeping: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private follower: AbortController | null = null;
  private lastError: string | null = null;
  private readonly handling = new Set<Promise<unknown>>();
  readonly stats: PriorityWorkerStats = { published: 0, acknowledgedByBroker: 0, acks: 0, duplicateAcks: 0, ignoredAcks: 0, connections: 0 };

  constructor(private readonly r: MobilityResources) {}

  // --- deciding -------------------------------------------------------------------------------

  async onVehicleStates(client: pg.PoolClient, states: VehicleState[]): Promise<void> {
    const config = this.r.config;
    const now = Date.now();
    const candidates = states.filter(
      (state) =>
        state.currentStatus !== 'NOT_IN_SERVICE' &&
        state.currentStatus !== 'STOPPED_AT' &&
        state.tripId !== null &&
        state.routeId !== null &&
        state.serviceDate !== null &&
        state.shapeDistM !== null &&
        state.delaySeconds !== null &&
        state.delaySeconds >= config.MOBILITY_PRIORITY_MIN_DELAY_S &&
        // A position replayed long after it was taken asks for nothing.
        now - state.observedAt.getTime() <= config.MOBILITY_PRIORITY_TTL_S * 1000,
    );
    if (candidates.length === 0) return;
    const controllers = (await this.r.directory.ofKind('TRAFFIC_SIGNAL_CONTROLLER')).filter(
      (asset) => asset.status === 'IN_SERVICE' && asset.location !== null && asset.details.busPriority !== false,
    );
    if (controllers.length === 0) return;
    // A bus whose asset says it has no priority equipment (`details.signalPriority: false`) asks for none.
    const buses = new Map((await this.r.directory.ofKind('BUS')).map((bus) => [bus.equipmentId, bus]));
    const requests: NewRequest[] = [];
    for (const state of candidates) {
      if (buses.get(state.equipmentId)?.details.signalPriority === false) continue;
      const trip = this.shapeOfTrip(state.tripId!);
      if (!trip) continue;
      for (const intersection of this.intersectionsOf(trip, controllers)) {
        const distance = intersection.alongM - state.shapeDistM!;
        if (distance <= 0) continue;
        if (distance > config.MOBILITY_PRIORITY_DISTANCE_M) break;
        requests.push({
          id: randomUUID(),
          controllerId: intersection.controllerId,
          collectivityId: intersection.collectivityId,
          vehicleId: state.equipmentId,
          vehicleCollectivityId: state.collectivityId,
          tripId: state.tripId!,
          routeId: state.routeId!,
          serviceDate: state.serviceDate!,
          ttlSeconds: config.MOBILITY_PRIORITY_TTL_S,
          distanceM: Math.round(distance * 10) / 10,
          delaySeconds: Math.round(state.delaySeconds!),
          etaSeconds: etaSeconds(distance, state.speedMps),
        });
      }
    }
    const inserted = await insertRequests(client, requests);
    // The worker wakes on these events, once they are committed (the outbox's signal).
    await publishEvents(client, inserted.map(priorityEvent));
  }

  private intersectionsOf(trip: TripShape, controllers: readonly AssetRow[]): ShapeIntersection[] {
    const signature = `${controllers.length}:${controllers.map((c) => `${c.equipmentId}@${c.location?.join(',')}`).join(';')}`;
    const cached = this.intersectionCache.get(trip.shapeId);
    if (cached && cached.signature === signature && cached.shape === trip.shape) return cached.list;
    const list = intersectionsAlong(trip.shape, controllers);
    this.intersectionCache.set(trip.shapeId, { signature, shape: trip.shape, list });
    return list;
  }

  /** The trip's shape, from the network in memory (the one the tracker placed the bus on). */
  private shapeOfTrip(tripId: string): TripShape | null {
    const network = this.r.network.current();
    const trip = network.trips.get(tripId);
    const shape = trip ? network.shapes.get(trip.shapeId) : undefined;
    return trip && shape ? { shapeId: trip.shapeId, shape } : null;
  }

  // --- the worker ---------------------------------------------------------------------------------

  /** Client id, ack group and session expiry (isolated per instance under NODE_ENV=test, as telemetry's ingest). */
  private mqttSettings(): { clientId: string; group: string; sessionExpirySeconds: number } {
    const isolated = this.r.config.NODE_ENV === 'test';
    const clientId = isolated ? `mobility-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}` : `mobility-${hostname()}`;
    return {
      clientId,
      group: isolated ? clientId.replace(/[/+#\s]/g, '_') : 'mobility',
      sessionExpirySeconds: isolated ? TEST_SESSION_EXPIRY_SECONDS : SESSION_NEVER_EXPIRES,
    };
  }

  /** The worker's MQTT client (tests drop its connection with `client.stream.destroy()`). */
  get mqttClient(): MqttClient | null {
    return this.client;
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  worker(): Worker {
    return {
      name: 'signal-priority',
      start: () => this.start(),
      stop: () => this.stop(),
      status: (): WorkerStatus => {
        if (!this.running) return { ready: false, state: 'stopped' };
        if (!this.connected) return { ready: false, state: `disconnected from the broker${this.lastError ? ` (${this.lastError})` : ''}` };
        return { ready: true, state: `connected; ${this.inFlight.size} in flight` };
      },
    };
  }

  private async start(): Promise<void> {
    const config = this.r.config;
    const settings = this.mqttSettings();
    const outgoingStore = this.expiringStore();
    const client = mqtt.connect(config.MQTT_URL, {
      clientId: settings.clientId,
      protocolVersion: 5,
      clean: false,
      properties: { sessionExpiryInterval: settings.sessionExpirySeconds },
      reconnectPeriod: 500,
      connectTimeout: 5_000,
      keepalive: 30,
      resubscribe: false,
      outgoingStore,
      ...(config.MQTT_USERNAME ? { username: config.MQTT_USERNAME, password: config.MQTT_PASSWORD } : {}),
    });
    this.client = client;
    this.running = true;
    // The PUBACK of an ack is written once its answer is committed (mqtt.js calls back then).
    client.handleMessage = (packet, done) => {
      const work = this.onAck(packet).then(
        () => done(),
        (error: Error) => {
          // Nothing committed (the database failed): no PUBACK; the broker redelivers it on the next connection.
          this.r.log.warn({ err: error.message, topic: packet.topic }, 'signal priority: recording an ack failed; it stays unacknowledged');
          client.stream?.destroy();
          done();
        },
      );
      this.track(work);
    };
    client.on('connect', () => {
      this.stats.connections++;
      this.connectedAt = Date.now();
      this.lastError = null;
      // Mosquitto does not keep shared subscriptions across its restart: subscribe on every connection.
      client.subscribe(`$share/${settings.group}/${ACK_FILTER}`, { qos: 1 }, (error, granted) => {
        const refused = granted?.find((grant) => (grant.qos as number) >= 0x80);
        if (error || refused) this.r.log.error({ err: error?.message, granted }, 'signal priority: the broker refused the ack subscription');
      });
      this.r.log.info({ clientId: settings.clientId }, 'signal priority: connected to the broker');
      this.schedulePump();
    });
    client.on('close', () => {
      if (this.connectedAt !== null) this.r.log.warn('signal priority: connection to the broker lost, reconnecting');
      this.connectedAt = null;
    });
    client.on('error', (error) => {
      this.lastError = error.message;
      this.r.log.warn({ err: error.message }, 'signal priority: MQTT error');
    });
    // Resolves once connected, or once the first attempt failed (it goes on trying meanwhile).
    await new Promise<void>((resolve) => {
      const settle = () => {
        client.off('connect', settle).off('error', settle).off('offline', settle);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(settle, 5_000);
      client.once('connect', settle).once('error', settle).once('offline', settle);
    });
    this.follower = new AbortController();
    void this.follow(this.follower.signal);
    this.timer = setInterval(() => {
      this.schedulePump();
      this.scheduleSweep();
    }, POLL_MS);
    this.timer.unref();
  }

  private async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.follower?.abort();
    await this.pumping;
    await this.sweeping;
    await Promise.allSettled([...this.handling]);
    const client = this.client;
    this.client = null;
    if (client) {
      // Gives in-flight publishes a moment to be acknowledged; what is left is claimed again after its lease.
      await Promise.race([client.endAsync(false), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
      await client.endAsync(true);
    }
    this.inFlight.clear();
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.handling.add(work);
    void work.finally(() => this.handling.delete(work)).catch(() => {});
    return work;
  }

  /** A store whose stored publishes are not sent again once their request has expired. */
  private expiringStore(): Store {
    const store = new Store();
    const createStream = store.createStream.bind(store);
    store.createStream = () => {
      const now = Date.now();
      const inflights = (store as unknown as { _inflights: Map<number, IPublishPacket> | null })._inflights;
      for (const [messageId, packet] of inflights ?? []) {
        const cid = packet.cmd === 'publish' ? cidOf(packet) : null;
        const expiry = cid ? this.inFlight.get(cid) : undefined;
        if (cid && expiry !== undefined && expiry <= now) {
          inflights!.delete(messageId);
          this.inFlight.delete(cid);
          this.r.log.warn({ cid }, 'signal priority: a request expired before the broker took it; not sent again');
        }
      }
      return createStream();
    };
    return store;
  }

  /** Wakes on committed requests (theirs and other instances'). */
  private async follow(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        for await (const event of this.r.events.subscribe({ topics: [PRIORITY_TOPIC], signal })) {
          if ((event.payload as PriorityEventPayload | null)?.request?.status === 'REQUESTED') this.schedulePump();
        }
      } catch (error) {
        if (signal.aborted) return;
        this.r.log.warn({ err: (error as Error).message }, 'signal priority: following requests failed; polling meanwhile');
        await new Promise((resolve) => setTimeout(resolve, 1_000).unref());
      }
    }
  }

  private schedulePump(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = this.track(this.pump())
      .catch((error: Error) => this.r.log.warn({ err: error.message }, 'signal priority: sending requests failed; retrying'))
      .finally(() => {
        this.pumping = null;
        if (this.pumpAgain) {
          this.pumpAgain = false;
          this.schedulePump();
        }
      });
  }

  /** Claims and publishes committed requests while connected. */
  private async pump(): Promise<void> {
    for (;;) {
      const client = this.client;
      if (!this.running || !client?.connected) return;
      const rows = await claimUnsent(this.r.db.pool, [...this.inFlight.keys()], CLAIM_BATCH, SEND_LEASE_MS);
      for (const row of rows) this.publish(client, row);
      if (rows.length < CLAIM_BATCH) return;
    }
  }

  private publish(client: MqttClient, row: OutboxRow): void {
    const { topic, payload, ttl } = downlinkOf(row);
    this.inFlight.set(row.id, row.expiresAt.getTime());
    this.stats.published++;
    client.publish(topic, payload, { qos: 1, properties: { messageExpiryInterval: ttl } }, (error) => {
      const done = error ? releaseLease(this.r.db.pool, row.id) : markSent(this.r.db.pool, row.id);
      if (error) this.r.log.warn({ err: error.message, cid: row.id, topic }, 'signal priority: the broker did not take a request; it is sent again unless it expires first');
      else this.stats.acknowledgedByBroker++;
      void this.track(
        done
          .catch((dbError: Error) => this.r.log.warn({ err: dbError.message, cid: row.id }, 'signal priority: recording a send failed'))
          .finally(() => this.inFlight.delete(row.id)),
      );
    });
  }

  private scheduleSweep(): void {
    if (!this.running || this.sweeping) return;
    this.sweeping = this.track(this.sweep())
      .catch((error: Error) => this.r.log.warn({ err: error.message }, 'signal priority: expiring requests failed; retrying'))
      .finally(() => {
        this.sweeping = null;
      });
  }

  /**
   * Expires what was not answered in time. Sent requests only while connected for a moment (the
   * acks the broker kept for this session arrive first), unsent ones at their expiry.
   */
  private async sweep(): Promise<void> {
    const settled = this.connectedAt !== null && Date.now() - this.connectedAt >= SETTLE_AFTER_CONNECT_MS;
    for (;;) {
      const count = await this.r.inTransaction(async (client) => {
        const expired = await expireRequests(client, ACK_GRACE_MS, settled);
        const events = expired.map(priorityEvent);
        const controllers = [...new Set(expired.filter((row) => row.sentAt !== null).map((row) => row.controllerId))].sort();
        for (const controllerId of controllers) {
          await lockController(client, controllerId);
          const last = expired.filter((row) => row.controllerId === controllerId && row.sentAt !== null).at(-1)!;
          if (!(await lastUnanswered(client, controllerId, this.r.config.MOBILITY_PRIORITY_FAULT_AFTER))) continue;
          if (await hasOpenFault(client, controllerId)) continue;
          await markFaultRaised(client, last.id);
          events.push(
            faultEvent(
              SIGNAL_FAULT_TOPIC,
              last,
              `no answer to the last ${this.r.config.MOBILITY_PRIORITY_FAULT_AFTER} priority requests (each within ${this.r.config.MOBILITY_PRIORITY_TTL_S} s)`,
            ),
          );
        }
        for (const row of expired.filter((r) => r.sentAt === null)) {
          this.r.log.warn({ cid: row.id, controllerId: row.controllerId }, 'signal priority: a request expired before it could be sent (broker unreachable)');
        }
        await publishEvents(client, events);
        return expired.length;
      });
      if (count < 500) return;
    }
  }

  /** One ack, in its own transaction; resolves once committed (or ignored). */
  private async onAck(packet: IPublishPacket): Promise<void> {
    const topic = packet.topic;
    const from = ackTopicParts(topic);
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    if (!from) {
      this.stats.ignoredAcks++;
      this.r.log.warn({ topic }, 'signal priority: ack on a topic of another shape; ignored');
      return;
    }
    const ack = parseAck(payload);
    if (!ack.ok) {
      this.stats.ignoredAcks++;
      this.r.log.warn({ topic, reason: ack.reason, bytes: payload.length }, `signal priority: malformed ack (${ack.reason}); ignored`);
      return;
    }
    if (!UUID.test(ack.cid)) {
      // Acks of other domains' downlinks may share the topic: not ours.
      this.stats.ignoredAcks++;
      this.r.log.info({ topic, cid: ack.cid.slice(0, 100) }, 'signal priority: ack with an unknown cid; ignored');
      return;
    }
    await this.r.inTransaction(async (client) => {
      const request = await requestById(client, ack.cid.toLowerCase());
      if (!request) {
        this.stats.ignoredAcks++;
        this.r.log.info({ topic, cid: ack.cid }, 'signal priority: ack with an unknown cid; ignored');
        return;
      }
      if (request.controllerId !== from.equipmentId || request.collectivityId !== from.collectivityId) {
        this.stats.ignoredAcks++;
        this.r.log.warn({ topic, cid: ack.cid, controllerId: request.controllerId }, 'signal priority: ack from another device than the request’s controller; ignored');
        return;
      }
      if (!request.open) {
        this.stats.duplicateAcks++;
        this.r.log.info({ topic, cid: ack.cid, status: request.status, dup: packet.dup }, 'signal priority: ack for a request already answered or expired; ignored');
        return;
      }
      const faulty = !ack.granted && FAULT_ERROR.test(ack.error ?? '');
      const controller = await this.r.directory.get(request.controllerId, 'TRAFFIC_SIGNAL_CONTROLLER');
      const saved = ack.granted ? estimatedSecondsSaved(controller?.details ?? {}) : null;
      await lockController(client, request.controllerId);
      const answered = await answerRequest(client, request.id, ack.granted ? 'GRANTED' : 'DENIED', ack.error, saved);
      if (!answered) return;
      this.stats.acks++;
      const events = [priorityEvent(answered)];
      if (faulty) {
        if (!(await hasOpenFault(client, request.controllerId))) {
          await markFaultRaised(client, request.id);
          events.push(faultEvent(SIGNAL_FAULT_TOPIC, answered, `the controller answered a priority request with a fault: ${ack.error}`));
        }
      } else if (await clearFault(client, request.controllerId)) {
        events.push(faultEvent(SIGNAL_FAULT_CLEARED_TOPIC, answered, `the controller answers priority requests again (${answered.status.toLowerCase()})`));
      }
      await publishEvents(client, events);
    });
  }
}

function cidOf(packet: IPublishPacket): string | null {
  try {
    const value = JSON.parse(packet.payload.toString()) as { cid?: unknown; op?: unknown };
    return value.op === 'priority_request' && typeof value.cid === 'string' ? value.cid : null;
  } catch {
    return null;
  }
}
