/**
 * Live vehicles on the seeded network (the repository's GTFS, written by the seed): the day's
 * blocks get the seed's buses, and a round of positions — published as `telemetry.readings`
 * events exactly as telemetry's Ingestor writes them (one event per collectivity, readings
 * `[equipmentId, kind, metric, time, value]`) — puts every running bus on its scheduled trip with
 * the delay it was given, on every line of the network, in both directions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { publishEvents } from '@connecte/shared/events';
import { createTestDatabase, startService, type TestDatabase, type TestService } from '@connecte/testkit';
import { mobilityResourcesFor } from '../src/context.js';
import { addDays, parisDate, serviceDayStartMs, type Network } from '../src/network.js';
import type { MobilityResources } from '../src/resources.js';
import { TELEMETRY_READINGS_TOPIC, type NetworkTrip } from '../src/types.js';
import { assignBlocks, vehicleAssignments } from '../src/vehicle-assignments.js';

let database: TestDatabase;
let pool: pg.Pool;
let mobility: TestService;
let r: MobilityResources;
let network: Network;

/** Metres along the trip where the schedule puts it at `s` seconds of the service day. */
function scheduledDistance(trip: NetworkTrip, s: number): number {
  const st = trip.stopTimes;
  for (let k = 0; k < st.length - 1; k++) {
    const [a, b] = [st[k], st[k + 1]];
    if (s <= a.departureSeconds) return a.shapeDistTraveled;
    if (s <= b.arrivalSeconds) return a.shapeDistTraveled + ((s - a.departureSeconds) / (b.arrivalSeconds - a.departureSeconds)) * (b.shapeDistTraveled - a.shapeDistTraveled);
  }
  return st[st.length - 1].shapeDistTraveled;
}

function pointAlong(trip: NetworkTrip, d: number): [number, number] {
  const { coordinates: c, distances } = network.shapes.get(trip.shapeId)!;
  let i = 0;
  while (i < distances.length - 2 && distances[i + 1] < d) i++;
  const t = Math.max(0, Math.min(1, (d - distances[i]) / (distances[i + 1] - distances[i] || 1)));
  return [c[i][0] + t * (c[i + 1][0] - c[i][0]), c[i][1] + t * (c[i + 1][1] - c[i][1])];
}

/** Publishes one `telemetry.readings` event as telemetry does, and waits until mobility applied it. */
async function publishReadings(readings: [string, string, string, string, number][]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await publishEvents(client, [{ topic: TELEMETRY_READINGS_TOPIC, collectivityId: 'chalons-agglo', payload: { r: readings } }]);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  await r.readings!.caughtUp();
}

before(async () => {
  database = await createTestDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  mobility = await startService('mobility', { db: database });
  r = mobilityResourcesFor(mobility.db);
  await r.directory.caughtUp();
  network = r.network.current();
});

after(async () => {
  await mobility?.close();
  await pool?.end();
  await database?.drop();
});

describe('the seeded network', () => {
  it('is loaded, and a weekday’s blocks get distinct IN_SERVICE buses by fleet number, at most 24 running at once', async () => {
    assert.ok(network.trips.size > 100, `trips: ${network.trips.size}`);
    // The first weekday from today within the feed.
    let date = parisDate(new Date());
    while (!network.servicesOn(date).has('WEEKDAY') && date < '2029-01-01') date = addDays(date, 1);
    const blocks = network.blocksOn(date);
    assert.ok(blocks.size > 0 && blocks.size <= 30, `blocks on ${date}: ${blocks.size}`);
    // The worker has assigned today's at its start; a run assigns what is left (none the second time).
    await vehicleAssignments(r).run(date);
    assert.equal(await vehicleAssignments(r).run(date), 0);
    const { rows } = await pool.query<{ blockId: string; equipmentId: string; fleet: number; status: string }>(
      `SELECT va.block_id AS "blockId", va.equipment_id AS "equipmentId", (e.details->>'fleetNumber')::int AS fleet, e.status::text
       FROM vehicle_assignments va JOIN equipment e ON e.id = va.equipment_id WHERE va.service_date = $1::date`,
      [date],
    );
    assert.equal(rows.length, blocks.size);
    assert.equal(new Set(rows.map((row) => row.equipmentId)).size, rows.length);
    assert.ok(rows.every((row) => row.status === 'IN_SERVICE'));
    assert.deepEqual(rows.map((row) => row.fleet).sort((a, b) => a - b), rows.map((_, i) => 201 + i), 'the lowest fleet numbers');
    // At most 24 trips of blocks at once, every 5 minutes of the day.
    for (let s = 0; s < 30 * 3600; s += 300) {
      let running = 0;
      for (const trips of blocks.values()) if (trips.some((trip) => trip.startSeconds <= s && s <= trip.endSeconds)) running++;
      assert.ok(running <= 24, `${running} buses at ${s}`);
    }
  });

  it('assigns each block of a day once and each bus once, however many runs race for it', async () => {
    // A weekday a week ahead: no run has touched it. Four runs at once, on their own connections.
    let date = addDays(parisDate(new Date()), 7);
    while (!network.servicesOn(date).has('WEEKDAY') && date < '2029-01-01') date = addDays(date, 1);
    const counts = await Promise.all([assignBlocks(r, date), assignBlocks(r, date), assignBlocks(r, date), assignBlocks(r, date)]);
    const blocks = network.blocksOn(date).size;
    assert.equal(counts.reduce((a, b) => a + b, 0), blocks, `assigned by the four runs: ${counts.join(', ')}`);
    const { rows } = await pool.query<{ blocks: number; buses: number; n: number }>(
      `SELECT count(DISTINCT block_id)::int AS blocks, count(DISTINCT equipment_id)::int AS buses, count(*)::int AS n FROM vehicle_assignments WHERE service_date = $1::date`,
      [date],
    );
    assert.deepEqual(rows[0], { blocks, buses: blocks, n: blocks });
  });

  it('puts each running bus of a round on its scheduled trip with the delay it was given', async () => {
    let date = parisDate(new Date());
    while (!network.servicesOn(date).has('WEEKDAY') && date < '2029-01-01') date = addDays(date, 1);
    const s = 8 * 3600 + 10 * 60;
    const dayStart = serviceDayStartMs(date);
    const { rows } = await pool.query<{ blockId: string; equipmentId: string }>(
      `SELECT block_id AS "blockId", equipment_id AS "equipmentId" FROM vehicle_assignments WHERE service_date = $1::date ORDER BY block_id`,
      [date],
    );
    const expected = new Map<string, { trip: NetworkTrip; delay: number }>();
    const readings: [string, string, string, string, number][] = [];
    const second: [string, string, string, string, number][] = [];
    rows.forEach((row, i) => {
      const delay = 20 + (i % 6) * 40;
      // The trip running at s − delay, whose stops are both sides of the bus (not at one).
      const trip = network.blocksOn(date).get(row.blockId)!.find((t) => t.startSeconds + 120 <= s - delay && s - delay + 60 <= t.endSeconds - 120);
      if (!trip) return;
      expected.set(row.equipmentId, { trip, delay });
      for (const [list, at] of [[readings, s], [second, s + 15]] as const) {
        const [lon, lat] = pointAlong(trip, scheduledDistance(trip, at - delay));
        const time = new Date(dayStart + at * 1000).toISOString();
        list.push([row.equipmentId, 'BUS', 'lat', time, lat], [row.equipmentId, 'BUS', 'lon', time, lon], [row.equipmentId, 'BUS', 'speed', time, 7]);
      }
    });
    assert.ok(expected.size >= 10, `buses running at 08:10: ${expected.size}`);
    assert.ok(new Set([...expected.values()].map((e) => e.trip.routeId)).size === network.routes.size, 'every line has a running bus');
    await publishReadings(readings);
    await publishReadings(second);

    const data = await mobility.gql(`{ vehicles(filter: { inService: true }, first: 100) { totalCount edges { node { id trip { id } delaySeconds currentStatus stop { id } nextStops(first: 2) { scheduledArrival predictedArrival } } } } }`);
    assert.equal(data.errors, undefined, JSON.stringify(data.errors));
    assert.equal(data.data.vehicles.totalCount, expected.size);
    for (const { node } of data.data.vehicles.edges) {
      const { trip, delay } = expected.get(node.id)!;
      assert.equal(node.trip.id, trip.tripId, node.id);
      // Near a stop the schedule's dwell may hide a few seconds; elsewhere the delay is the one given, within the projection's metres.
      assert.ok(Math.abs(node.delaySeconds - delay) <= 5 || node.currentStatus === 'STOPPED_AT', `${node.id} on ${trip.tripId}: delay ${node.delaySeconds}, given ${delay}, ${node.currentStatus}`);
      assert.ok(node.stop.id && node.nextStops.length > 0);
      const [next] = node.nextStops;
      assert.ok(Date.parse(next.predictedArrival) >= Date.parse(next.scheduledArrival), 'a late bus is predicted late');
    }
  });
});
