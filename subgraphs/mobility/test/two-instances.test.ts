/**
 * Two mobility instances on one database take telemetry's readings exactly once between them:
 * positions posted one request at a time to telemetry's `/ingest` while both run, then while one
 * of them is stopped halfway, give exactly one `mobility.vehicle` event per position (none lost,
 * none twice), in the order of the positions, and the bus's state is the last position.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { deviceBaseName, senmlPack } from '@connecte/shared/senml';
import { createTestDatabase, startService, startTestBroker, tokenFor, type TestBroker, type TestDatabase, type TestService } from '@connecte/testkit';
import { mobilityResourcesFor } from '../src/context.js';
import { addDays, parisDate, serviceDayStartMs } from '../src/network.js';
import { vehicleAssignments } from '../src/vehicle-assignments.js';
import { alongTrip, fixtureTripAt, installFixtureNetwork } from './network-fixture.js';

let broker: TestBroker;
let database: TestDatabase;
let pool: pg.Pool;
let telemetry: TestService;
let first: TestService;
let second: TestService;
let ingestUrl: string;
let ingestToken: string;
let bus: string;

const now = Date.now();
let serviceDate = parisDate(now);
let T0 = Math.floor(((now - serviceDayStartMs(serviceDate)) / 1000 - 480) / 1800) * 1800;
if (T0 < 0) {
  serviceDate = addDays(serviceDate, -1);
  T0 = 23 * 3600 + 1800;
}
const { blockId: BLOCK } = fixtureTripAt(T0);
const at = (s: number) => serviceDayStartMs(serviceDate) + (T0 + s) * 1000;

async function post(s: number, metres: number): Promise<void> {
  const [lon, lat] = alongTrip(0, metres);
  const response = await fetch(ingestUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${ingestToken}`, 'content-type': 'application/senml+json' },
    body: JSON.stringify(senmlPack(deviceBaseName(bus).slice(0, -1), at(s) / 1000, { lat, lon, speed: 7 })),
  });
  assert.equal(response.status, 200, await response.text());
}

before(async () => {
  broker = await startTestBroker();
  database = await createTestDatabase();
  pool = new pg.Pool({ connectionString: database.url, max: 2 });
  await installFixtureNetwork(pool);
  telemetry = await startService('telemetry', { db: database, env: broker.env });
  first = await startService('mobility', { db: database, env: broker.env });
  second = await startService('mobility', { db: database, env: broker.env });
  const r = mobilityResourcesFor(first.db);
  await r.directory.caughtUp();
  await vehicleAssignments(r).run(serviceDate);
  const { rows } = await pool.query<{ equipment_id: string }>(`SELECT equipment_id FROM vehicle_assignments WHERE service_date = $1::date AND block_id = $2`, [serviceDate, BLOCK]);
  bus = rows[0].equipment_id;
  const admin = await tokenFor(telemetry.config, ['admin'], ['chalons-agglo']);
  const issued = await telemetry.gql(`mutation { issueIngestKey(collectivityId: "chalons-agglo", label: "bus gateway") { secret { token } } }`, { token: admin });
  ingestToken = (issued.data as { issueIngestKey: { secret: { token: string } } }).issueIngestKey.secret.token;
  ingestUrl = telemetry.url.replace(/\/graphql$/, '/ingest');
});

after(async () => {
  await second?.close();
  await first?.close();
  await telemetry?.close();
  await pool?.end();
  await database?.drop();
  await broker?.stop();
});

describe('two mobility instances', () => {
  it('apply each position once between them, before and after one of them stops', async () => {
    const ROUNDS = 24;
    const times: string[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      if (i === ROUNDS / 2) await first.close();
      const s = 60 + i * 10;
      times.push(new Date(at(s)).toISOString());
      await post(s, 300 + i * 60);
    }
    await mobilityResourcesFor(second.db).readings!.caughtUp();
    const { rows: events } = await pool.query<{ observed: string }>(
      `SELECT payload->'state'->>'observedAt' AS observed FROM events WHERE topic = 'mobility.vehicle' AND payload->'state'->>'equipmentId' = $1 ORDER BY id`,
      [bus],
    );
    assert.deepEqual(events.map((e) => new Date(e.observed).toISOString()), times, 'one event per position, in order');
    const { rows: states } = await pool.query<{ observed_at: Date }>(`SELECT observed_at FROM vehicle_states WHERE equipment_id = $1`, [bus]);
    assert.equal(states[0].observed_at.toISOString(), times[times.length - 1]);
  });
});
