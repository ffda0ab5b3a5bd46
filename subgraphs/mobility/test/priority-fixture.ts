/**
 * What the signal-priority tests share: a mobility service over a seeded database (its asset
 * directory caught up with the seeded controllers and buses), a small network of its own beside
 * whatever the database holds — for each controller asked for, line TSP-<n>: one straight shape
 * west → east through the controller (800 m, the controller at 400 m), one trip a day, two
 * stops — hand-made vehicle states on it, and a fake controller that listens to downlinks and
 * acks them (or not).
 */
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { startService, connectTestBroker, createTestDatabase, type Owner, type TestDatabase, type TestService } from '@connecte/testkit';
import { mobilityResourcesFor } from '../src/context.js';
import { haversineM } from '../src/network.js';
import type { MobilityResources } from '../src/resources.js';
import type { AssetRow, VehicleState } from '../src/types.js';

export const LINE_M = 800;
export const CONTROLLER_AT_M = 400;

export interface PriorityLine {
  routeId: string;
  tripId: string;
  shapeId: string;
  controller: AssetRow;
  /** [lon, lat] at `metres` along the line. */
  pointAt(metres: number): [number, number];
}

export interface PriorityEnv {
  service: TestService;
  database: TestDatabase;
  r: MobilityResources;
  controllers: AssetRow[];
  buses: AssetRow[];
  close(): Promise<void>;
}

export async function startPriorityService(env: Record<string, string> = {}, database?: TestDatabase): Promise<PriorityEnv> {
  const db = database ?? (await createTestDatabase());
  const service = await startService('mobility', { db, env });
  const r = mobilityResourcesFor(service.db);
  await r.directory.caughtUp();
  const controllers = (await r.directory.ofKind('TRAFFIC_SIGNAL_CONTROLLER')).filter((c) => c.status === 'IN_SERVICE' && c.location);
  const buses = (await r.directory.ofKind('BUS')).filter((b) => b.status === 'IN_SERVICE');
  assert.ok(controllers.length >= 3 && buses.length >= 3, 'the seed has traffic-signal controllers and buses');
  return {
    service,
    database: db,
    r,
    controllers,
    buses,
    async close() {
      await service.close();
      if (!database) await db.drop();
    },
  };
}

/** Controllers far enough from each other (600 m) that a line through one passes no other of the list. */
export function spreadControllers(controllers: AssetRow[], count: number, collectivityId?: string): AssetRow[] {
  const picked: AssetRow[] = [];
  for (const c of controllers) {
    if (collectivityId && c.collectivityId !== collectivityId) continue;
    if (picked.every((p) => haversineM(p.location![0], p.location![1], c.location![0], c.location![1]) > 600)) picked.push(c);
    if (picked.length === count) break;
  }
  assert.equal(picked.length, count, `${count} controllers ${collectivityId ?? ''} 600 m apart`);
  return picked;
}

/** Adds line TSP-<n> through each controller (in one transaction), then reloads the network. */
export async function installPriorityLines(r: MobilityResources, controllers: AssetRow[]): Promise<PriorityLine[]> {
  const lines: PriorityLine[] = controllers.map((controller, n) => {
    const [lon0, lat0] = controller.location!;
    const perDegLon = haversineM(lon0, lat0, lon0 + 1, lat0);
    const pointAt = (metres: number): [number, number] => [lon0 + (metres - CONTROLLER_AT_M) / perDegLon, lat0];
    return { routeId: `TSP-${n + 1}`, tripId: `TSP-${n + 1}-T1`, shapeId: `TSP-${n + 1}-SH`, controller, pointAt };
  });
  await r.inTransaction(async (client) => {
    await client.query(
      `INSERT INTO gtfs_agencies (agency_id, name, url, timezone) VALUES ('TSP', 'Priority tests', 'https://example.org', 'Europe/Paris') ON CONFLICT DO NOTHING`,
    );
    await client.query(
      `INSERT INTO gtfs_calendar VALUES ('TSP-ALL', true, true, true, true, true, true, true, '2020-01-01', '2099-12-31') ON CONFLICT DO NOTHING`,
    );
    for (const line of lines) {
      const points = Array.from({ length: 9 }, (_, i) => line.pointAt(i * 100));
      const distances = points.map((_, i) => i * 100);
      await client.query(
        `INSERT INTO gtfs_routes (route_id, agency_id, short_name, long_name, route_type) VALUES ($1, 'TSP', $1, $2, 3)`,
        [line.routeId, `Priority line through ${line.controller.name ?? line.controller.equipmentId}`],
      );
      await client.query(
        `INSERT INTO gtfs_shapes (shape_id, geom, distances, length_m) VALUES ($1, ST_SetSRID(ST_GeomFromGeoJSON($2), 4326), $3, $4)`,
        [line.shapeId, JSON.stringify({ type: 'LineString', coordinates: points }), distances, LINE_M],
      );
      await client.query(`INSERT INTO gtfs_trips (trip_id, route_id, service_id, shape_id, headsign, direction_id) VALUES ($1, $2, 'TSP-ALL', $3, 'East', 0)`, [
        line.tripId,
        line.routeId,
        line.shapeId,
      ]);
      for (const [i, at] of [0, LINE_M].entries()) {
        const stopId = `${line.routeId}-S${i + 1}`;
        const [lon, lat] = line.pointAt(at);
        await client.query(
          `INSERT INTO gtfs_stops (stop_id, equipment_id, name, geom) VALUES ($1, $2, $3, ST_SetSRID(ST_MakePoint($4, $5), 4326))`,
          [stopId, `tsp-${stopId.toLowerCase()}`, `Stop ${stopId}`, lon, lat],
        );
        await client.query(
          `INSERT INTO gtfs_stop_times (trip_id, stop_sequence, stop_id, arrival_seconds, departure_seconds, shape_dist_traveled) VALUES ($1, $2, $3, $4, $4, $5)`,
          [line.tripId, i + 1, stopId, 8 * 3600 + i * 120, at],
        );
      }
    }
  });
  const network = await r.network.reload();
  for (const line of lines) assert.ok(network.trips.has(line.tripId), `the network in memory has ${line.tripId}`);
  return lines;
}

const parisDay = (at: Date) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris', year: 'numeric', month: '2-digit', day: '2-digit' }).format(at);

/** A bus on `line`, `alongM` metres along it, late by `delaySeconds`. */
export function stateOn(
  line: PriorityLine,
  bus: AssetRow,
  alongM: number,
  delaySeconds: number,
  overrides: Partial<VehicleState> = {},
): VehicleState {
  const observedAt = overrides.observedAt ?? new Date();
  const [lon, lat] = line.pointAt(alongM);
  return {
    equipmentId: bus.equipmentId,
    collectivityId: bus.collectivityId,
    observedAt,
    lon,
    lat,
    speedMps: 8,
    bearing: 90,
    serviceDate: parisDay(observedAt),
    tripId: line.tripId,
    routeId: line.routeId,
    shapeDistM: alongM,
    delaySeconds,
    currentStatus: 'IN_TRANSIT_TO',
    stopSequence: 2,
    stopId: `${line.routeId}-S2`,
    predictions: [],
    ...overrides,
  };
}

/** Hands states to signal priority in a transaction of their own (as the tracker does), committed. */
export function feed(r: MobilityResources, states: VehicleState[]): Promise<void> {
  return r.inTransaction((client) => r.priority.onVehicleStates(client, states));
}

export interface Downlink {
  topic: string;
  body: Record<string, any>;
  at: number;
}

export type AckPolicy = (body: Record<string, any>) => Record<string, unknown> | null;

/**
 * A controller's side: subscribes to the downlinks of `equipmentIds` (every downlink when empty)
 * and answers each with `policy(body)` (no answer when null) on its ack topic.
 */
export async function fakeController(
  owner: Owner,
  options: {
    url?: string;
    equipmentIds?: string[];
    policy?: AckPolicy;
    clientOptions?: Record<string, unknown>;
    /**
     * Only the downlinks of requests this service's database holds: the machine broker is shared
     * with other tests' hubs, whose mobility sends real requests to the same seeded controllers.
     */
    r?: MobilityResources;
  } = {},
): Promise<{ client: MqttClient; received: Downlink[]; ack(topic: string, payload: string | Record<string, unknown>): Promise<void>; setPolicy(policy: AckPolicy): void }> {
  let policy: AckPolicy = options.policy ?? ((body) => ({ cid: body.cid, ok: true }));
  const received: Downlink[] = [];
  let chain: Promise<void> = Promise.resolve();
  let client: MqttClient;
  const ack = async (downTopic: string, payload: string | Record<string, unknown>) => {
    await client.publishAsync(downTopic.replace(/\/down$/, '/ack'), typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
  };
  client = await connectTestBroker(owner, {
    url: options.url,
    ...options.clientOptions,
    onMessage: (topic, payload) => {
      const at = Date.now();
      const body = JSON.parse(payload.toString()) as Record<string, any>;
      const ours = options.r
        ? options.r.db.pool.query('SELECT 1 FROM signal_priority_requests WHERE id::text = $1', [String(body.cid)]).then((result) => (result.rowCount ?? 0) > 0)
        : Promise.resolve(true);
      // In order of arrival, whatever the lookups' order.
      chain = chain.then(async () => {
        if (!(await ours)) return;
        received.push({ topic, body, at });
        const answer = policy(body);
        if (answer) void ack(topic, answer);
      });
    },
  });
  const filters = options.equipmentIds?.length ? options.equipmentIds.map((id) => `connecte/+/${id}/down`) : ['connecte/+/+/down'];
  await client.subscribeAsync(filters, { qos: 1 });
  return { client, received, ack, setPolicy: (next) => (policy = next) };
}

/** Waits until `check` returns a truthy value (polling), or fails with `what`. */
export async function eventually<T>(check: () => Promise<T> | T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface RequestRecord {
  id: string;
  controllerId: string;
  vehicleId: string;
  status: string;
  sentAt: Date | null;
  error: string | null;
  secondsSaved: number | null;
  distanceM: number;
  etaSeconds: number;
}

export async function requestsOf(r: MobilityResources, controllerId: string): Promise<RequestRecord[]> {
  const { rows } = await r.db.pool.query<RequestRecord>(
    `SELECT id::text, controller_id AS "controllerId", vehicle_id AS "vehicleId", status, sent_at AS "sentAt", error,
            seconds_saved AS "secondsSaved", distance_m AS "distanceM", eta_seconds AS "etaSeconds"
       FROM signal_priority_requests WHERE controller_id = $1 ORDER BY requested_at, id`,
    [controllerId],
  );
  return rows;
}
