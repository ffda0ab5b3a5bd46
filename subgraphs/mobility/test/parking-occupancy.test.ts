/**
 * Parking occupancy end to end: telemetry beside mobility, readings posted over HTTP `POST /ingest`
 * with an ingest key issued the real way, read back through the gateway. Counters (occupancy of a
 * PARKING_FACILITY), bay sensors (0/1 of PARKING_SENSOR children), and the hostile values: a count
 * above the capacity (OVER_CAPACITY, free spaces never negative), negative and fractional counts
 * (telemetry refuses them), a bay value other than 0/1, a sensor whose facility mobility does not
 * know, a facility it does not know, readings out of time order (an older count never overwrites a
 * newer one), a count older than MOBILITY_PARKING_STALE_S (STALE), and the availability stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deviceBaseName, senmlPack } from '@connecte/shared/senml';
import {
  createTestDatabase,
  gql,
  startHub,
  startTestBroker,
  subscriptions,
  tokenFor,
  type Hub,
  type TestBroker,
  type TestDatabase,
} from '@connecte/testkit';
import { mobilityResourcesFor } from '../src/context.js';
import type { MobilityResources } from '../src/resources.js';
import type { AssetRow } from '../src/types.js';

const ISSUE_KEY = `mutation Key($c: ID!) { issueIngestKey(collectivityId: $c, label: "parking test") { secret { token } } }`;
const FACILITY = `query F($id: ID!) { parkingFacility(id: $id) {
  id name type capacity occupied freeSpaces reportedOccupied occupancyRate occupancyStatus occupancySource observedAt
  equipment { id } } }`;

let broker: TestBroker;
let database: TestDatabase;
let hub: Hub;
let r: MobilityResources;
let ingestUrl: string;
let ingestKey: string;
let counters: AssetRow[];
let sectors: AssetRow[];
let sensorsOf: (facilityId: string) => AssetRow[];

/** Seconds since the epoch, a little in the past (telemetry refuses more than 5 minutes ahead). */
const NOW_S = Math.floor(Date.now() / 1000) - 120;

async function ingest(records: unknown[]): Promise<{ accepted: number; duplicate: number; rejected: { index: number; field: string; reason: string }[] }> {
  const response = await fetch(ingestUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${ingestKey}`, 'content-type': 'application/senml+json' },
    body: JSON.stringify(records),
  });
  assert.equal(response.status, 200, await response.clone().text());
  const answer = (await response.json()) as Awaited<ReturnType<typeof ingest>>;
  await r.readings!.caughtUp();
  return answer;
}
const occupancy = (equipmentId: string, seconds: number, value: number) => senmlPack(deviceBaseName(equipmentId).slice(0, -1), seconds, { occupancy: value });

async function facility(id: string) {
  const answer = await gql<{ parkingFacility: any }>(hub.gatewayUrl, FACILITY, { variables: { id } });
  assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
  return answer.data!.parkingFacility;
}

before(async () => {
  broker = await startTestBroker();
  database = await createTestDatabase();
  hub = await startHub(database.url, broker.env, { subgraphs: ['territory', 'equipment', 'telemetry', 'mobility'] });
  r = mobilityResourcesFor(hub.subgraphs.mobility.db);
  await r.directory.caughtUp();
  ingestUrl = hub.subgraphs.telemetry.url.replace(/\/graphql$/, '/ingest');
  const admin = await tokenFor(hub.config, ['admin'], ['chalons']);
  const issued = await gql<{ issueIngestKey: { secret: { token: string } } }>(hub.gatewayUrl, ISSUE_KEY, { token: admin, variables: { c: 'chalons' } });
  assert.equal(issued.errors, undefined, JSON.stringify(issued.errors));
  ingestKey = issued.data!.issueIngestKey.secret.token;
  const facilities = await r.directory.ofKind('PARKING_FACILITY');
  counters = facilities.filter((f) => f.details.type !== 'ON_STREET');
  sectors = facilities.filter((f) => f.details.type === 'ON_STREET');
  const sensors = await r.directory.ofKind('PARKING_SENSOR');
  sensorsOf = (id) => sensors.filter((s) => s.parentId === id).sort((a, b) => Number(a.details.bayNumber) - Number(b.details.bayNumber));
  assert.equal(counters.length, 6, 'the seed’s six car parks');
  assert.equal(sectors.length, 2, 'and two on-street sectors');
  assert.equal(sensorsOf(sectors[0].equipmentId).length, 48);
});

after(async () => {
  await hub?.close();
  await database?.drop();
  await broker?.stop();
});

describe('parking occupancy from telemetry', () => {
  it('a facility never reported is UNKNOWN, with no count', async () => {
    const f = await facility(counters[5].equipmentId);
    assert.equal(f.occupancyStatus, 'UNKNOWN');
    assert.deepEqual([f.occupied, f.freeSpaces, f.reportedOccupied, f.occupancyRate, f.occupancySource, f.observedAt], [null, null, null, null, null, null]);
    assert.equal(f.capacity, counters[5].details.capacity);
    assert.equal(f.equipment.id, counters[5].equipmentId);
  });

  it('a counter’s count: occupied, free spaces and rate from the asset’s capacity', async () => {
    const park = counters[0];
    const capacity = park.details.capacity as number;
    const answer = await ingest(occupancy(park.equipmentId, NOW_S - 60, capacity - 40));
    assert.deepEqual([answer.accepted, answer.rejected], [1, []]);
    const f = await facility(park.equipmentId);
    assert.equal(f.occupied, capacity - 40);
    assert.equal(f.freeSpaces, 40);
    assert.equal(f.reportedOccupied, capacity - 40);
    assert.equal(f.occupancyStatus, 'OK');
    assert.equal(f.occupancySource, 'COUNTER');
    assert.equal(f.observedAt, new Date((NOW_S - 60) * 1000).toISOString());
    assert.ok(Math.abs(f.occupancyRate - (capacity - 40) / capacity) < 1e-9);
  });

  it('a count above the capacity: OVER_CAPACITY, occupied capped, free spaces 0 (never negative), the count kept', async () => {
    const park = counters[0];
    const capacity = park.details.capacity as number;
    await ingest(occupancy(park.equipmentId, NOW_S - 50, capacity + 37));
    const f = await facility(park.equipmentId);
    assert.deepEqual([f.occupied, f.freeSpaces, f.reportedOccupied, f.occupancyRate, f.occupancyStatus], [capacity, 0, capacity + 37, 1, 'OVER_CAPACITY']);
    const stored = await hub.subgraphs.mobility.db.pool.query('SELECT occupied, reported, status FROM parking_occupancy WHERE equipment_id = $1', [park.equipmentId]);
    assert.deepEqual(stored.rows[0], { occupied: capacity, reported: capacity + 37, status: 'OVER_CAPACITY' });
  });

  it('an older count arriving late does not overwrite a newer one; a newer one does', async () => {
    const park = counters[0];
    const capacity = park.details.capacity as number;
    await ingest(occupancy(park.equipmentId, NOW_S - 55, 3));
    let f = await facility(park.equipmentId);
    assert.deepEqual([f.reportedOccupied, f.occupancyStatus, f.observedAt], [capacity + 37, 'OVER_CAPACITY', new Date((NOW_S - 50) * 1000).toISOString()]);
    // Several counts of one facility in one pack, out of order: the newest wins.
    await ingest([...occupancy(park.equipmentId, NOW_S - 30, 12), ...occupancy(park.equipmentId, NOW_S - 10, 20), ...occupancy(park.equipmentId, NOW_S - 20, 16)]);
    f = await facility(park.equipmentId);
    assert.deepEqual([f.occupied, f.freeSpaces, f.occupancyStatus, f.observedAt], [20, capacity - 20, 'OK', new Date((NOW_S - 10) * 1000).toISOString()]);
  });

  it('negative and fractional counts are refused by telemetry, naming the record; nothing changes', async () => {
    const park = counters[1];
    await ingest(occupancy(park.equipmentId, NOW_S - 100, 10));
    const answer = await ingest([...occupancy(park.equipmentId, NOW_S - 90, -5), ...occupancy(park.equipmentId, NOW_S - 80, 12.5), ...occupancy(park.equipmentId, NOW_S - 70, -0.5)]);
    assert.equal(answer.accepted, 0);
    assert.deepEqual(
      answer.rejected.map((x) => [x.index, x.field]),
      [
        [0, 'v'],
        [1, 'v'],
        [2, 'v'],
      ],
    );
    assert.match(answer.rejected[0].reason, /value -5 is outside the domain of occupancy \(whole numbers ≥ 0\)/);
    assert.match(answer.rejected[1].reason, /value 12\.5 of occupancy is not a whole number/);
    assert.match(answer.rejected[2].reason, /value -0\.5 is outside the domain of occupancy/);
    const f = await facility(park.equipmentId);
    assert.deepEqual([f.occupied, f.observedAt], [10, new Date((NOW_S - 100) * 1000).toISOString()]);
  });

  it('bay sensors: the sector is the recount of its bays (source SENSORS); an older bay state is ignored', async () => {
    const sector = sectors[0];
    const bays = sensorsOf(sector.equipmentId);
    await ingest(bays.slice(0, 10).map((bay, i) => ({ bn: deviceBaseName(bay.equipmentId), bt: NOW_S - 200 + i, n: 'occupancy', u: 'count', v: 1 })));
    let f = await facility(sector.equipmentId);
    assert.deepEqual([f.capacity, f.occupied, f.freeSpaces, f.occupancySource, f.occupancyStatus], [48, 10, 38, 'SENSORS', 'OK']);
    assert.equal(f.observedAt, new Date((NOW_S - 191) * 1000).toISOString(), 'the newest bay’s time');
    // Two cars leave; one late message says bay 3 was free before it was taken: ignored.
    await ingest([
      ...occupancy(bays[0].equipmentId, NOW_S - 150, 0),
      ...occupancy(bays[1].equipmentId, NOW_S - 149, 0),
      ...occupancy(bays[2].equipmentId, NOW_S - 250, 0),
    ]);
    f = await facility(sector.equipmentId);
    assert.deepEqual([f.occupied, f.freeSpaces], [8, 40]);
    const bay3 = await hub.subgraphs.mobility.db.pool.query('SELECT occupied FROM parking_bays WHERE sensor_id = $1', [bays[2].equipmentId]);
    assert.equal(bay3.rows[0].occupied, true);
  });

  it('a bay value other than 0 or 1 is skipped (telemetry takes it as a count); the rest of the pack counts', async () => {
    const sector = sectors[0];
    const bays = sensorsOf(sector.equipmentId);
    const answer = await ingest([...occupancy(bays[20].equipmentId, NOW_S - 140, 2), ...occupancy(bays[21].equipmentId, NOW_S - 140, 1)]);
    assert.equal(answer.accepted, 2);
    const f = await facility(sector.equipmentId);
    assert.equal(f.occupied, 9, 'bay 22 taken, bay 21’s "2" not counted');
    const bay21 = await hub.subgraphs.mobility.db.pool.query('SELECT 1 FROM parking_bays WHERE sensor_id = $1', [bays[20].equipmentId]);
    assert.equal(bay21.rowCount, 0);
  });

  it('more occupied bays than the declared capacity: OVER_CAPACITY, capped', async () => {
    const sector = sectors[1];
    const bays = sensorsOf(sector.equipmentId);
    // The asset declares fewer bays than it has sensors (an operator's mistake in equipment).
    await hub.subgraphs.mobility.db.pool.query(`UPDATE mobility_assets SET details = details || '{"capacity": 4}' WHERE equipment_id = $1`, [sector.equipmentId]);
    r.directory.invalidate('PARKING_FACILITY');
    await ingest(bays.slice(0, 6).map((bay) => ({ bn: deviceBaseName(bay.equipmentId), bt: NOW_S - 100, n: 'occupancy', u: 'count', v: 1 })));
    const f = await facility(sector.equipmentId);
    assert.deepEqual([f.capacity, f.occupied, f.freeSpaces, f.reportedOccupied, f.occupancyStatus], [4, 4, 0, 6, 'OVER_CAPACITY']);
    await hub.subgraphs.mobility.db.pool.query(`UPDATE mobility_assets SET details = details || '{"capacity": 48}' WHERE equipment_id = $1`, [sector.equipmentId]);
    r.directory.invalidate('PARKING_FACILITY');
    const back = await facility(sector.equipmentId);
    assert.deepEqual([back.capacity, back.occupied, back.freeSpaces, back.occupancyStatus], [48, 6, 42, 'OK'], 'the count is compared with the capacity in force');
  });

  it('a sensor whose facility mobility does not know, and a facility it does not know, are skipped; the rest of the pack counts', async () => {
    const pool = hub.subgraphs.mobility.db.pool;
    const sector = sectors[0];
    const bays = sensorsOf(sector.equipmentId);
    const stray = bays[30];
    await pool.query(`UPDATE mobility_assets SET parent_id = 'pf-chalons-99999', details = '{"facilityId": "pf-chalons-99999"}' WHERE equipment_id = $1`, [stray.equipmentId]);
    const lost = counters[2];
    await pool.query(`DELETE FROM mobility_assets WHERE equipment_id = $1`, [lost.equipmentId]);
    r.directory.invalidate();
    const answer = await ingest([...occupancy(stray.equipmentId, NOW_S - 90, 1), ...occupancy(lost.equipmentId, NOW_S - 90, 33), ...occupancy(counters[3].equipmentId, NOW_S - 90, 44)]);
    assert.equal(answer.accepted, 3, 'telemetry knows all three');
    assert.equal((await pool.query('SELECT 1 FROM parking_bays WHERE sensor_id = $1', [stray.equipmentId])).rowCount, 0);
    assert.equal((await pool.query('SELECT 1 FROM parking_occupancy WHERE equipment_id = $1', [lost.equipmentId])).rowCount, 0);
    assert.equal((await facility(sector.equipmentId)).occupied, 9, 'the sector is unchanged');
    assert.equal(await facility(lost.equipmentId), null, 'not a facility mobility knows');
    assert.equal((await facility(counters[3].equipmentId)).occupied, 44);
  });

  it('a count older than MOBILITY_PARKING_STALE_S (900 s) is STALE, with its last figures', async () => {
    const park = counters[4];
    await ingest(occupancy(park.equipmentId, NOW_S - 1_200, 25));
    const f = await facility(park.equipmentId);
    assert.deepEqual([f.occupied, f.occupancyStatus], [25, 'STALE']);
  });

  it('parkingAvailabilityChanged streams a change of free spaces or status, not a count that changes nothing', async () => {
    const park = counters[1];
    const streams = subscriptions(hub.gatewayUrl);
    try {
      const sub = streams.subscribe(`subscription { parkingAvailabilityChanged(facilityIds: ["${park.equipmentId}"]) { cursor facility { id occupied freeSpaces occupancyStatus } } }`);
      const other = streams.subscribe(`subscription { parkingAvailabilityChanged(collectivityIds: ["fagnieres"]) { cursor facility { id } } }`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const capacity = park.details.capacity as number;
      await ingest(occupancy(park.equipmentId, NOW_S - 40, 10)); // same count as before: nothing
      await ingest(occupancy(park.equipmentId, NOW_S - 30, 11));
      await ingest(occupancy(park.equipmentId, NOW_S - 20, capacity + 5));
      await ingest(occupancy(counters[3].equipmentId, NOW_S - 20, 1)); // another facility
      const events = await sub.waitFor(2);
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(sub.received.length, 2, JSON.stringify(sub.received));
      assert.deepEqual(
        events.map((e) => e.data.parkingAvailabilityChanged.facility),
        [
          { id: park.equipmentId, occupied: 11, freeSpaces: capacity - 11, occupancyStatus: 'OK' },
          { id: park.equipmentId, occupied: capacity, freeSpaces: 0, occupancyStatus: 'OVER_CAPACITY' },
        ],
      );
      assert.equal(other.received.length, 0, 'fagnieres has no facility');
      // Resumable: after the first cursor comes the second change.
      const resumed = streams.subscribe(
        `subscription { parkingAvailabilityChanged(facilityIds: ["${park.equipmentId}"], after: "${events[0].data.parkingAvailabilityChanged.cursor}") { facility { occupied } } }`,
      );
      const replay = await resumed.waitFor(1);
      assert.equal(replay[0].data.parkingAvailabilityChanged.facility.occupied, capacity);
    } finally {
      await streams.dispose();
    }
  });
});
