/**
 * Live vehicles end to end: telemetry runs beside mobility on one database, buses' positions are
 * posted to telemetry's `POST /ingest` with an ingest key of Châlons Agglo (SenML, the way the
 * buses' gateway sends them), and mobility takes them from the `telemetry.readings` events. On the
 * fixture network (network-fixture.ts, a schedule known by heart): the day's assignment of blocks
 * to buses, the trip, progress, delay, status and predictions, outliers flagged and not taken as
 * state (140 m/s, a jump, off route, out of order) with their visibility, `nextArrivals`,
 * `vehicleMoved` over graphql-ws with its filter and resumed with `after`, `assignVehicle` for
 * every role and collectivity, and bad inputs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Role } from '@connecte/shared/auth';
import { deviceBaseName, senmlPack } from '@connecte/shared/senml';
import { createTestDatabase, startService, startTestBroker, subscriptions, tokenFor, type TestBroker, type TestDatabase, type TestService } from '@connecte/testkit';
import { mobilityResourcesFor } from '../src/context.js';
import { addDays, parisDate, serviceDayStartMs } from '../src/network.js';
import type { MobilityResources } from '../src/resources.js';
import { vehicleAssignments } from '../src/vehicle-assignments.js';
import { alongTrip, fixtureTripAt, fixtureTripId, installFixtureNetwork, type InstalledFixture } from './network-fixture.js';

let broker: TestBroker;
let database: TestDatabase;
let pool: pg.Pool;
let telemetry: TestService;
let mobility: TestService;
let r: MobilityResources;
let fixture: InstalledFixture;
let ingestUrl: string;
let ingestToken: string;
/** IN_SERVICE buses by fleet number, and one in MAINTENANCE. */
let buses: { id: string; fleet: string }[];
let maintenanceBus: string;

// The trip the tests follow: an outbound one that started at least 8 minutes ago (so every
// position posted is in the past), on today's service day (yesterday's just after midnight).
const now = Date.now();
let serviceDate = parisDate(now);
let T0 = Math.floor(((now - serviceDayStartMs(serviceDate)) / 1000 - 480) / 1800) * 1800;
if (T0 < 0) {
  serviceDate = addDays(serviceDate, -1);
  T0 = 23 * 3600 + 1800;
}
const { tripId: TRIP, blockId: BLOCK } = fixtureTripAt(T0);
const OTHER_BLOCK = BLOCK === 'F-B1' ? 'F-B2' : 'F-B1';
const dayStart = serviceDayStartMs(serviceDate);
/** The instant of `s` seconds after the trip's start. */
const at = (s: number) => new Date(dayStart + (T0 + s) * 1000);
const iso = (s: number) => at(s).toISOString();

let busOf: Record<string, string>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ok = (response: { data?: unknown; errors?: unknown }): any => {
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data;
};
const errorOf = (response: { errors?: { extensions?: { code?: string; field?: string } }[] }) => [response.errors?.[0]?.extensions?.code, response.errors?.[0]?.extensions?.field];
const token = (roles: Role[], collectivities: string[]) => tokenFor(mobility.config, roles, collectivities);

interface Fix {
  bus: string;
  s: number;
  metres: number;
  north?: number;
  speed?: number;
  /** Far away (a jump): this many metres east of the line's end. */
  lonShift?: number;
}

/** Posts positions to telemetry in one request and waits until mobility has applied them. */
async function post(...fixes: Fix[]): Promise<void> {
  const body = fixes.flatMap((fix) => {
    const [lon, lat] = alongTrip(0, fix.metres, fix.north ?? 0);
    return senmlPack(deviceBaseName(fix.bus).slice(0, -1), at(fix.s).getTime() / 1000, { lat, lon: lon + (fix.lonShift ?? 0), speed: fix.speed ?? 8 });
  });
  const response = await fetch(ingestUrl, { method: 'POST', headers: { authorization: `Bearer ${ingestToken}`, 'content-type': 'application/senml+json' }, body: JSON.stringify(body) });
  const answer = (await response.json()) as { accepted: number; rejected: unknown[] };
  assert.equal(response.status, 200, JSON.stringify(answer));
  assert.equal(answer.accepted, fixes.length * 3, JSON.stringify(answer));
  await r.readings!.caughtUp();
}

const VEHICLE = `query V($id: ID!) { vehicle(id: $id) {
  id label blockId currentStatus stopSequence delaySeconds distanceAlongShapeMeters observedAt serviceDate speedMetersPerSecond bearing
  position { type coordinates } trip { id } stop { id } equipment { id }
  nextStops { stop { id } stopSequence scheduledArrival predictedArrival }
} }`;

const eventPosition = async () => (await pool.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM events`)).rows[0].id;

before(async () => {
  broker = await startTestBroker();
  database = await createTestDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  fixture = await installFixtureNetwork(pool);
  telemetry = await startService('telemetry', { db: database, env: broker.env });
  mobility = await startService('mobility', { db: database, env: broker.env });
  r = mobilityResourcesFor(mobility.db);
  await r.directory.caughtUp();
  const { rows } = await pool.query<{ id: string; fleet: string; status: string }>(
    `SELECT id, details->>'fleetNumber' AS fleet, status::text FROM equipment WHERE kind = 'BUS' AND collectivity_id = 'chalons-agglo' ORDER BY (details->>'fleetNumber')::int`,
  );
  buses = rows.filter((row) => row.status === 'IN_SERVICE');
  maintenanceBus = rows.find((row) => row.status === 'MAINTENANCE')!.id;
  await vehicleAssignments(r).run(serviceDate);
  const admin = await tokenFor(telemetry.config, ['admin'], ['chalons-agglo']);
  const issued = ok(await telemetry.gql(`mutation { issueIngestKey(collectivityId: "chalons-agglo", label: "bus gateway") { secret { token } } }`, { token: admin }));
  ingestToken = issued.issueIngestKey.secret.token;
  ingestUrl = telemetry.url.replace(/\/graphql$/, '/ingest');
});

after(async () => {
  await mobility?.close();
  await telemetry?.close();
  await pool?.end();
  await database?.drop();
  await broker?.stop();
});

describe('the day’s assignments', () => {
  it('gives each block of the day an IN_SERVICE bus by fleet number, in order of first departure, and does it once', async () => {
    assert.equal(r.network.current().feedId, fixture.data.feedId, 'the fixture network is loaded');
    const data = ok(await mobility.gql(`query A($d: Date) { vehicleAssignments(serviceDate: $d) { serviceDate blockId vehicle { id label } trips { id } } }`, { variables: { d: serviceDate } }));
    assert.deepEqual(
      data.vehicleAssignments.map((a: any) => [a.serviceDate, a.blockId, a.vehicle.id, a.vehicle.label, a.trips.length, a.trips[0].id]),
      [
        [serviceDate, 'F-B1', buses[0].id, buses[0].fleet, 48, fixtureTripId(0, 0)],
        [serviceDate, 'F-B2', buses[1].id, buses[1].fleet, 48, fixtureTripId(1800, 0)],
      ],
    );
    assert.equal(await vehicleAssignments(r).run(serviceDate), 0, 'a second run assigns nothing');
    busOf = Object.fromEntries(data.vehicleAssignments.map((a: any) => [a.blockId, a.vehicle.id]));
  });
});

describe('positions from telemetry', () => {
  it('puts the bus on its block’s trip, on time half way to B, then 30 s late between B and C, with its predictions', async () => {
    const bus = busOf[BLOCK];
    await post({ bus, s: 60, metres: 300 });
    let v = ok(await mobility.gql(VEHICLE, { variables: { id: bus } })).vehicle;
    assert.equal(v.trip.id, TRIP);
    assert.equal(v.blockId, BLOCK);
    assert.equal(v.serviceDate, serviceDate);
    assert.equal(v.delaySeconds, 0);
    assert.equal(v.currentStatus, 'IN_TRANSIT_TO');
    assert.equal(v.stop.id, fixture.stopIds[1]);
    assert.equal(v.stopSequence, 2);
    assert.ok(Math.abs(v.distanceAlongShapeMeters - 300) < 2, String(v.distanceAlongShapeMeters));
    assert.equal(v.observedAt, iso(60));

    await post({ bus, s: 240, metres: 900 });
    v = ok(await mobility.gql(VEHICLE, { variables: { id: bus } })).vehicle;
    assert.equal(v.delaySeconds, 30);
    assert.equal(v.stop.id, fixture.stopIds[2]);
    assert.equal(v.speedMetersPerSecond, 8);
    assert.ok(Math.abs(v.bearing - 90) < 1, `heading east: ${v.bearing}`);
    assert.deepEqual(v.position.coordinates.map((c: number) => Math.round(c * 1e5)), alongTrip(0, 900).map((c) => Math.round(c * 1e5)));
    assert.deepEqual(
      v.nextStops.map((p: any) => [p.stop.id, p.stopSequence, p.scheduledArrival, p.predictedArrival]),
      [
        [fixture.stopIds[2], 3, iso(270), iso(300)],
        [fixture.stopIds[3], 4, iso(390), iso(420)],
      ],
    );
  });

  it('lists buses by route and service, finds a route’s buses and a bus as an Equipment', async () => {
    const bus = busOf[BLOCK];
    const list = async (filter: string) => ok(await mobility.gql(`{ vehicles(filter: ${filter}, first: 1000) { totalCount edges { node { id currentStatus } } } }`)).vehicles;
    const onRoute = await list(`{ routeIds: ["F1"] }`);
    assert.deepEqual(onRoute.edges.map((e: any) => e.node.id), [bus]);
    assert.equal(onRoute.totalCount, 1);
    const idle = await list(`{ inService: false }`);
    assert.ok(idle.edges.every((e: any) => e.node.currentStatus === 'NOT_IN_SERVICE' && e.node.id !== bus));
    assert.equal(idle.totalCount, buses.length + 2 - 1, 'every other bus, maintenance ones included');
    assert.deepEqual((await list(`{ routeIds: ["NONE"] }`)).edges, []);
    const route = ok(await mobility.gql(`{ route(id: "F1") { vehicles { id trip { id } } } }`));
    assert.deepEqual(route.route.vehicles, [{ id: bus, trip: { id: TRIP } }]);
    const entity = ok(
      await mobility.gql(`query E($r: [_Any!]!) { _entities(representations: $r) { ... on Equipment { id vehicle { id delaySeconds } } } }`, {
        variables: { r: [{ __typename: 'Equipment', id: bus }, { __typename: 'Equipment', id: fixture.equipmentIds[0] }] },
      }),
    );
    assert.deepEqual(entity._entities, [
      { id: bus, vehicle: { id: bus, delaySeconds: 30 } },
      { id: fixture.equipmentIds[0], vehicle: null },
    ]);
  });

  it('answers a stop’s next departures: the running trip predicted from its bus, the next ones scheduled', async () => {
    const data = ok(
      await mobility.gql(`query N($s: ID!, $after: DateTime) { stop(id: $s) { nextArrivals(after: $after, first: 3) {
        trip { id } route { id } headsign stopSequence scheduledArrival scheduledDeparture predictedArrival vehicle { id } } } }`, { variables: { s: fixture.stopIds[2], after: iso(250) } }),
    );
    const arrivals = data.stop.nextArrivals;
    assert.deepEqual(
      arrivals.map((a: any) => [a.trip.id, a.route.id, a.scheduledArrival, a.predictedArrival, a.vehicle?.id ?? null]),
      [
        [TRIP, 'F1', iso(270), iso(300), busOf[BLOCK]],
        [fixtureTripId(T0 + 1200, 1), 'F1', iso(1320), null, null],
        [fixtureTripId((T0 + 1800) % 86_400, 0), 'F1', iso(1800 + 270), null, null],
      ],
    );
    assert.equal(arrivals[0].headsign, 'Fixture D');
    assert.equal(arrivals[1].scheduledDeparture, iso(1350));
    // From the terminus D nothing departs outbound: only inbound trips start there.
    const fromD = ok(await mobility.gql(`query N($s: ID!, $after: DateTime) { stop(id: $s) { nextArrivals(after: $after) { trip { directionId } stopSequence } } }`, { variables: { s: fixture.stopIds[3], after: iso(0) } }));
    assert.ok(fromD.stop.nextArrivals.length === 5 && fromD.stop.nextArrivals.every((a: any) => a.trip.directionId === 1 && a.stopSequence === 1));
  });
});

describe('outliers', () => {
  it('flags 140 m/s, a jump, a position off the route and one out of order, leaves the state as it was, then takes a plausible one', async () => {
    const bus = busOf[BLOCK];
    const before = ok(await mobility.gql(VEHICLE, { variables: { id: bus } })).vehicle;
    await post({ bus, s: 255, metres: 950, speed: 140 });
    await post({ bus, s: 270, metres: 1000, lonShift: 0.1 });
    await post({ bus, s: 300, metres: 1000, north: 400 });
    await post({ bus, s: 200, metres: 800 });
    const still = ok(await mobility.gql(VEHICLE, { variables: { id: bus } })).vehicle;
    assert.deepEqual(still, before, 'no outlier became the state');
    const OUTLIERS = `query O($id: ID!) { vehicle(id: $id) { outliers { observedAt reason speedMetersPerSecond lat lon } } }`;
    const staff = ok(await mobility.gql(OUTLIERS, { variables: { id: bus }, token: await token(['operator'], ['chalons-agglo']) })).vehicle.outliers;
    assert.deepEqual(
      staff.map((o: any) => [o.observedAt, o.reason]),
      [
        [iso(300), 'OFF_ROUTE'],
        [iso(270), 'JUMP_IMPLAUSIBLE'],
        [iso(255), 'SPEED_IMPLAUSIBLE'],
        [iso(200), 'OUT_OF_ORDER'],
      ],
    );
    assert.equal(staff[2].speedMetersPerSecond, 140);
    assert.ok(Math.abs(staff[0].lat - alongTrip(0, 1000, 400)[1]) < 1e-9);
    for (const [roles, collectivities] of [[['agent'], ['chalons-agglo']], [['admin'], ['chalons-agglo']]] as [Role[], string[]][]) {
      assert.equal(ok(await mobility.gql(OUTLIERS, { variables: { id: bus }, token: await token(roles, collectivities) })).vehicle.outliers.length, 4, roles[0]);
    }
    for (const viewer of [undefined, await token(['partner'], ['chalons-agglo']), await token(['operator'], ['chalons']), await token(['citizen'], [])]) {
      assert.deepEqual(ok(await mobility.gql(OUTLIERS, { variables: { id: bus }, token: viewer })).vehicle.outliers, [], 'not staff of the bus’s collectivity');
    }
    assert.equal(ok(await mobility.gql(`query O($id: ID!) { vehicle(id: $id) { outliers(first: 1) { reason } } }`, { variables: { id: bus }, token: await token(['operator'], ['chalons-agglo']) })).vehicle.outliers.length, 1);

    await post({ bus, s: 320, metres: 1120 });
    const after = ok(await mobility.gql(VEHICLE, { variables: { id: bus } })).vehicle;
    assert.equal(after.observedAt, iso(320));
    assert.equal(after.currentStatus, 'INCOMING_AT');
  });
});

describe('vehicleMoved', () => {
  const MOVED = (args: string) => `subscription { vehicleMoved${args} { cursor vehicle { id label blockId currentStatus delaySeconds trip { id } nextStops(first: 1) { stopSequence } } } }`;

  it('streams the moves of the buses its filter names, and resumes after a cursor', async () => {
    const bus = busOf[BLOCK];
    const other = busOf[OTHER_BLOCK];
    const subs = subscriptions(mobility.url);
    try {
      const start = await eventPosition();
      const mine = subs.subscribe(MOVED(`(after: "${start}", filter: { vehicleIds: ["${bus}"] })`));
      const all = subs.subscribe(MOVED(`(after: "${start}")`));
      const onRoute = subs.subscribe(MOVED(`(after: "${start}", filter: { routeIds: ["F1"], inService: true })`));
      await post({ bus, s: 335, metres: 1190, speed: 0 }, { bus: other, s: 335, metres: 0, speed: 0 });
      await post({ bus, s: 350, metres: 1200, speed: 0 });
      const received = await mine.waitFor(2);
      assert.deepEqual(
        received.map((m) => [m.data.vehicleMoved.vehicle.id, m.data.vehicleMoved.vehicle.currentStatus, m.data.vehicleMoved.vehicle.trip?.id, m.data.vehicleMoved.vehicle.blockId]),
        [
          [bus, 'STOPPED_AT', TRIP, BLOCK],
          [bus, 'STOPPED_AT', TRIP, BLOCK],
        ],
      );
      assert.equal(received[0].data.vehicleMoved.vehicle.label, buses.find((b) => b.id === bus)!.fleet);
      assert.deepEqual(received[1].data.vehicleMoved.vehicle.nextStops, [{ stopSequence: 4 }], 'predictions recomputed for the stream');
      assert.equal(received[1].data.vehicleMoved.vehicle.delaySeconds, 350 - 270);
      const everyone = await all.waitFor(3);
      assert.deepEqual(new Set(everyone.map((m) => m.data.vehicleMoved.vehicle.id)), new Set([bus, other]));
      // The other bus waits 25 minutes before its trip: in service (its block's next trip), on route F1.
      const routed = await onRoute.waitFor(3);
      assert.equal(routed.length, 3);

      const [first, second] = received.map((m) => m.data.vehicleMoved.cursor);
      assert.ok(BigInt(second) > BigInt(first));
      const resumed = subs.subscribe(MOVED(`(after: "${first}", filter: { vehicleIds: ["${bus}"] })`));
      const [again] = await resumed.waitFor(1);
      assert.equal(again.data.vehicleMoved.cursor, second, 'the move after the cursor, none before');
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(resumed.received.length, 1);
    } finally {
      await subs.dispose();
    }
  });

  it('refuses a bad cursor and empty lists', async () => {
    const subs = subscriptions(mobility.url);
    try {
      for (const [args, field] of [
        ['(after: "12abc")', 'after'],
        ['(filter: { vehicleIds: [] })', 'filter.vehicleIds'],
        ['(filter: { routeIds: [] })', 'filter.routeIds'],
      ]) {
        const [message] = await subs.subscribe(MOVED(args)).waitFor(1);
        assert.deepEqual(errorOf(message), ['BAD_USER_INPUT', field], `${args}: ${JSON.stringify(message)}`);
      }
    } finally {
      await subs.dispose();
    }
  });
});

describe('bad inputs', () => {
  it('answers null for an id that is no bus, and refuses bad dates, bad cursors and pages too large, naming the field', async () => {
    const data = ok(await mobility.gql(`query V($a: ID!, $b: ID!) { a: vehicle(id: $a) { id } b: vehicle(id: $b) { id } }`, { variables: { a: 'no-such-bus', b: fixture.equipmentIds[0] } }));
    assert.deepEqual(data, { a: null, b: null });
    const cases: [string, Record<string, unknown>, string][] = [
      [`query Q($d: Date) { vehicleAssignments(serviceDate: $d) { blockId } }`, { d: '2026-02-30' }, 'serviceDate'],
      [`{ vehicles(first: 1001) { totalCount } }`, {}, 'first'],
      [`{ vehicles(first: -1) { totalCount } }`, {}, 'first'],
      [`{ vehicles(after: "garbage") { totalCount } }`, {}, 'after'],
      [`{ vehicles(filter: { vehicleIds: [] }) { totalCount } }`, {}, 'filter.vehicleIds'],
      [`query V($id: ID!) { vehicle(id: $id) { nextStops(first: 51) { stopSequence } } }`, { id: buses[0].id }, 'first'],
      [`query V($id: ID!) { vehicle(id: $id) { outliers(first: 101) { reason } } }`, { id: buses[0].id }, 'first'],
      [`query S($s: ID!) { stop(id: $s) { nextArrivals(first: 51) { stopSequence } } }`, { s: fixture.stopIds[0] }, 'first'],
      [`query S($s: ID!, $a: DateTime) { stop(id: $s) { nextArrivals(after: $a) { stopSequence } } }`, { s: fixture.stopIds[0], a: 'yesterday' }, 'after'],
    ];
    for (const [query, variables, field] of cases) {
      const response = await mobility.gql(query, { variables });
      assert.deepEqual(errorOf(response), ['BAD_USER_INPUT', field], `${query}: ${JSON.stringify(response.errors)}`);
    }
    // A bad literal fails validation, still naming the argument.
    const literal = await mobility.gql(`{ vehicleAssignments(serviceDate: "26-01-01") { blockId } }`);
    assert.deepEqual(errorOf(literal), ['GRAPHQL_VALIDATION_FAILED', 'serviceDate']);
  });
});

describe('assignVehicle', () => {
  const ASSIGN = `mutation A($v: ID!, $b: String!, $d: Date) { assignVehicle(vehicleId: $v, blockId: $b, serviceDate: $d) { serviceDate blockId vehicle { id } trips { id } assignedAt } }`;

  it('is for operators and admins of the bus’s collectivity only, every other role and collectivity refused', async () => {
    const bus = buses[2].id;
    const cases: [Role[], string[], string | null][] = [
      [['citizen'], [], 'FORBIDDEN'],
      [['agent'], ['chalons-agglo'], 'FORBIDDEN'],
      [['partner'], ['chalons-agglo'], 'FORBIDDEN'],
      [['operator'], ['chalons'], 'FORBIDDEN'],
      [['admin'], ['chalons', 'fagnieres', 'saint-martin-sur-le-pre'], 'FORBIDDEN'],
      [['agent', 'partner'], ['chalons-agglo'], 'FORBIDDEN'],
      [['operator'], ['chalons-agglo'], null],
      [['admin'], ['chalons-agglo'], null],
      [['operator'], ['chalons', 'chalons-agglo'], null],
    ];
    const publicAnswer = await mobility.gql(ASSIGN, { variables: { v: bus, b: OTHER_BLOCK } });
    assert.equal(publicAnswer.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    for (const [roles, collectivities, code] of cases) {
      const response = await mobility.gql(ASSIGN, { variables: { v: bus, b: OTHER_BLOCK, d: serviceDate }, token: await token(roles, collectivities) });
      if (code) assert.deepEqual(errorOf(response), [code, 'vehicleId'], `${roles} of ${collectivities}`);
      else assert.equal(ok(response).assignVehicle.vehicle.id, bus, `${roles} of ${collectivities}`);
    }
  });

  it('replaces the block’s bus and the bus’s block that day', async () => {
    const operator = await token(['operator'], ['chalons-agglo']);
    const assign = async (v: string, b: string) => ok(await mobility.gql(ASSIGN, { variables: { v, b, d: serviceDate }, token: operator })).assignVehicle;
    const row = await assign(buses[3].id, BLOCK);
    assert.equal(row.serviceDate, serviceDate);
    assert.equal(row.trips.length, 48);
    assert.ok(Math.abs(Date.parse(row.assignedAt) - Date.now()) < 60_000);
    await assign(buses[3].id, OTHER_BLOCK);
    const list = ok(await mobility.gql(`query A($d: Date) { vehicleAssignments(serviceDate: $d) { blockId vehicle { id } } }`, { variables: { d: serviceDate } })).vehicleAssignments;
    assert.deepEqual(list, [{ blockId: OTHER_BLOCK, vehicle: { id: buses[3].id } }], 'the bus left its first block, the block’s buses were replaced');
    // The worker fills the free block again, without touching the operator's choice.
    assert.equal(await vehicleAssignments(r).run(serviceDate), 1);
    const again = ok(await mobility.gql(`query A($d: Date) { vehicleAssignments(serviceDate: $d) { blockId vehicle { id } } }`, { variables: { d: serviceDate } })).vehicleAssignments;
    assert.equal(again.find((a: any) => a.blockId === OTHER_BLOCK).vehicle.id, buses[3].id);
    assert.ok(again.find((a: any) => a.blockId === BLOCK));
  });

  it('refuses unknown ids, a bus out of service, a block the day does not run and bad dates, naming the field', async () => {
    const operator = await token(['operator'], ['chalons-agglo']);
    const cases: [Record<string, unknown>, string, string][] = [
      [{ v: 'no-such-bus', b: BLOCK }, 'NOT_FOUND', 'vehicleId'],
      [{ v: fixture.equipmentIds[0], b: BLOCK }, 'NOT_FOUND', 'vehicleId'],
      [{ v: maintenanceBus, b: BLOCK }, 'BAD_USER_INPUT', 'vehicleId'],
      [{ v: buses[4].id, b: 'NO-SUCH-BLOCK' }, 'BAD_USER_INPUT', 'blockId'],
      [{ v: buses[4].id, b: '' }, 'BAD_USER_INPUT', 'blockId'],
      [{ v: buses[4].id, b: BLOCK, d: '2030-05-01' }, 'BAD_USER_INPUT', 'serviceDate'],
      [{ v: buses[4].id, b: BLOCK, d: '2020-01-01' }, 'BAD_USER_INPUT', 'serviceDate'],
      [{ v: buses[4].id, b: BLOCK, d: '2026-13-01' }, 'BAD_USER_INPUT', 'serviceDate'],
    ];
    for (const [variables, code, field] of cases) {
      const response = await mobility.gql(ASSIGN, { variables, token: operator });
      assert.deepEqual(errorOf(response), [code, field], `${JSON.stringify(variables)}: ${JSON.stringify(response.errors)}`);
    }
  });
});
