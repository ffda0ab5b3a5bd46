/**
 * Mobility through the gateway, with every subgraph on one seeded database and a broker of its
 * own: bus positions sent to the gateway's `/ingest` become a vehicle on its trip, which the
 * gateway joins with the equipment domain both ways (`vehicles { equipment }` and
 * `equipment { vehicle }`); `vehicleMoved` over the gateway's graphql-ws carries the bus's
 * equipment fields, fetched from the equipment subgraph for each event; parking facilities join
 * their assets; and the GTFS import route is forwarded (a dry run of the shipped feed, a refusal
 * without a token).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { deviceBaseName, senmlPack } from '@connecte/shared/senml';
import { createTestDatabase, gql, startHub, startTestBroker, subscriptions, tokenFor, type GraphQLResponse, type Hub, type TestBroker, type TestDatabase } from '@connecte/testkit';
import { writeZip } from '@connecte/shared/zip';
import { addDays, parisDate, serviceDayStartMs } from '../subgraphs/mobility/src/network.js';
import { alongTrip, fixtureTripAt, installFixtureNetwork } from '../subgraphs/mobility/test/network-fixture.js';

let broker: TestBroker;
let database: TestDatabase;
let pool: pg.Pool;
let hub: Hub;
let ingestToken: string;
let bus: { id: string; reference: string };

// An outbound fixture trip that started at least 8 minutes ago, on its service day.
const now = Date.now();
let serviceDate = parisDate(now);
let T0 = Math.floor(((now - serviceDayStartMs(serviceDate)) / 1000 - 480) / 1800) * 1800;
if (T0 < 0) {
  serviceDate = addDays(serviceDate, -1);
  T0 = 23 * 3600 + 1800;
}
const { tripId: TRIP, blockId: BLOCK } = fixtureTripAt(T0);
const at = (s: number) => serviceDayStartMs(serviceDate) + (T0 + s) * 1000;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const ok = (response: GraphQLResponse<any>): any => {
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data;
};

/** Posts one position of the bus to the gateway's /ingest, `metres` along the trip, at `s` seconds after its start. */
async function post(s: number, metres: number): Promise<void> {
  const [lon, lat] = alongTrip(0, metres);
  const response = await fetch(`${new URL(hub.gatewayUrl).origin}/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ingestToken}`, 'content-type': 'application/senml+json' },
    body: JSON.stringify(senmlPack(deviceBaseName(bus.id).slice(0, -1), at(s) / 1000, { lat, lon, speed: 8 })),
  });
  const answer = (await response.json()) as { accepted: number };
  assert.equal(response.status, 200, JSON.stringify(answer));
  assert.equal(answer.accepted, 3);
}

async function eventually<T>(check: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

before(async () => {
  broker = await startTestBroker();
  database = await createTestDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  await installFixtureNetwork(pool);
  hub = await startHub(database.url, { MQTT_URL: broker.url, ...broker.env });
  const admin = await tokenFor(hub.config, ['admin'], ['chalons-agglo']);
  ingestToken = ok(await gql(hub.gatewayUrl, `mutation { issueIngestKey(collectivityId: "chalons-agglo", label: "bus gateway") { secret { token } } }`, { token: admin }))
    .issueIngestKey.secret.token;
  const { rows } = await pool.query<{ id: string; reference: string }>(
    `SELECT id, reference FROM equipment WHERE kind = 'BUS' AND status = 'IN_SERVICE' ORDER BY (details->>'fleetNumber')::int LIMIT 1`,
  );
  bus = rows[0];
  const operator = await tokenFor(hub.config, ['operator'], ['chalons-agglo']);
  ok(await gql(hub.gatewayUrl, `mutation($v: ID!, $b: String!, $d: Date) { assignVehicle(vehicleId: $v, blockId: $b, serviceDate: $d) { blockId } }`, { token: operator, variables: { v: bus.id, b: BLOCK, d: serviceDate } }));
});

after(async () => {
  await hub?.close();
  await pool?.end();
  await database?.drop();
  await broker?.stop();
});

describe('mobility through the gateway', () => {
  it('turns positions sent to /ingest into a vehicle on its trip, joined with its asset both ways, and streams its moves with the asset’s fields', async () => {
    // From the start of the stream (`after: "0"`): this database has no vehicle event before ours.
    const stream = subscriptions(hub.gatewayUrl);
    try {
      const moves = stream.subscribe(
        `subscription { vehicleMoved(filter: { vehicleIds: ["${bus.id}"] }, after: "0") { cursor vehicle { id trip { id } equipment { reference kind status } } } }`,
      );
      await post(120, 400);
      const [move] = await moves.waitFor(1);
      assert.equal(move.errors, undefined, JSON.stringify(move.errors));
      assert.deepEqual(move.data.vehicleMoved.vehicle, { id: bus.id, trip: { id: TRIP }, equipment: { reference: bus.reference, kind: 'BUS', status: 'IN_SERVICE' } });
    } finally {
      await stream.dispose();
    }
    const listed = await eventually(async () => {
      const data = ok(await gql(hub.gatewayUrl, `{ vehicles(filter: { inService: true }) { edges { node { id blockId trip { id route { id } } delaySeconds equipment { reference name } } } } }`));
      assert.equal(data.vehicles.edges.length, 1);
      return data.vehicles.edges[0].node;
    });
    assert.equal(listed.id, bus.id);
    assert.equal(listed.blockId, BLOCK);
    assert.equal(listed.trip.id, TRIP);
    assert.equal(listed.trip.route.id, 'F1');
    assert.equal(listed.equipment.reference, bus.reference);
    assert.equal(typeof listed.delaySeconds, 'number');
    const joined = ok(await gql(hub.gatewayUrl, `query($id: ID!) { equipment(id: $id) { reference vehicle { id trip { id } currentStatus } tickets { totalCount } } }`, { variables: { id: bus.id } }));
    assert.deepEqual(joined.equipment.vehicle, { id: bus.id, trip: { id: TRIP }, currentStatus: joined.equipment.vehicle.currentStatus });
    assert.notEqual(joined.equipment.vehicle.currentStatus, 'NOT_IN_SERVICE');
    assert.equal(typeof joined.equipment.tickets.totalCount, 'number');
  });

  it('serves parking facilities with their assets, and forwards the GTFS import route', async () => {
    const parking = ok(await gql(hub.gatewayUrl, `{ parkingFacilities(first: 20) { totalCount edges { node { id capacity freeSpaces equipment { kind reference } } } } }`));
    assert.equal(parking.parkingFacilities.totalCount, 8);
    for (const { node } of parking.parkingFacilities.edges) assert.equal(node.equipment.kind, 'PARKING_FACILITY');

    const folder = new URL('../subgraphs/mobility/gtfs/chalons-agglo/', import.meta.url);
    const zip = writeZip(Object.fromEntries(readdirSync(folder).map((name) => [name, readFileSync(new URL(name, folder))])));
    const route = `${new URL(hub.gatewayUrl).origin}/mobility/gtfs?dryRun=true`;
    const refused = await fetch(route, { method: 'POST', headers: { 'content-type': 'application/zip' }, body: zip });
    assert.equal(refused.status, 401);
    const operator = await tokenFor(hub.config, ['operator'], ['chalons-agglo']);
    const dry = await fetch(route, { method: 'POST', headers: { 'content-type': 'application/zip', authorization: `Bearer ${operator}` }, body: zip });
    const report = (await dry.json()) as { valid?: boolean; counts?: Record<string, number> };
    assert.equal(dry.status, 200, JSON.stringify(report).slice(0, 500));
    assert.equal(report.valid, true);
    assert.equal(report.counts?.['stops.txt'], 150);
    // A dry run changes nothing: the fixture network is still the one in use.
    const feed = ok(await gql(hub.gatewayUrl, `{ routes { edges { node { id } } } }`));
    assert.deepEqual(feed.routes.edges.map((edge: { node: { id: string } }) => edge.node.id), ['F1']);
  });
});
