/**
 * The three DATEX II v3.7 publications, rendered from the seeded database plus live counts,
 * works and faults: each validates against the official XSD set with xmllint (and xmllint does
 * refuse the broken samples, so a pass means something), the status refers to the table's places
 * and version, the figures are what the counts say, and nothing internal of an intervention or an
 * alarm is published.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { QueryParameterError } from '../parameters.js';
import type { Feed } from '../feed.js';
import { datex2ParkingStatus } from './datex2-parking-status.js';
import { datex2ParkingTable } from './datex2-parking-table.js';
import { datex2Situations } from './datex2-situations.js';

const run = promisify(execFile);
const SCHEMA = fileURLToPath(new URL('../../reference/datex2/v3.7/DATEXII_3_D2Payload.xsd', import.meta.url));

/** xmllint's verdict on one document: ok, or its messages. */
async function validate(xml: string, dir: string): Promise<{ ok: boolean; messages: string }> {
  const file = join(dir, `doc-${Math.random().toString(36).slice(2)}.xml`);
  await writeFile(file, xml);
  try {
    const { stderr } = await run('xmllint', ['--noout', '--nonet', '--schema', SCHEMA, file]);
    return { ok: true, messages: stderr };
  } catch (error) {
    return { ok: false, messages: String((error as { stderr?: string }).stderr ?? error) };
  }
}

describe('open-data feeds: DATEX II v3.7', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let dir: string;

  /** version then render in one REPEATABLE READ snapshot, as the router does. */
  async function publish(feed: Feed<null>): Promise<{ tag: string; body: string }> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const version = await feed.version(client, null);
      const body = await feed.render(client, null, version);
      await client.query('COMMIT');
      return { tag: version.tag, body: body as string };
    } finally {
      client.release();
    }
  }

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 3 });
    dir = await mkdtemp(join(tmpdir(), 'datex2-'));
    // Live counts: one fresh, one above capacity, one too old to be believed.
    await pool.query(
      `INSERT INTO parking_occupancy (equipment_id, collectivity_id, capacity, occupied, reported, source, status, observed_at) VALUES
         ('pf-chalons-00001', 'chalons', 320, 300, 300, 'COUNTER', 'OK', now() - interval '1 minute'),
         ('pf-chalons-00002', 'chalons', 210, 210, 250, 'COUNTER', 'OVER_CAPACITY', now() - interval '2 minutes'),
         ('pf-chalons-00003', 'chalons', 180, 100, 100, 'COUNTER', 'OK', now() - interval '2 hours')`,
    );
  });
  after(async () => {
    await pool?.end();
    await db?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('xmllint refuses a broken publication (the validation is real)', async () => {
    const broken = (await publish(datex2ParkingStatus)).body.replace('modelBaseVersion="3"', 'modelBaseVersion="2"').replace('<fac:openingStatus>open', '<fac:openingStatus>ouvert');
    const verdict = await validate(broken, dir);
    assert.equal(verdict.ok, false);
    assert.match(verdict.messages, /modelBaseVersion|openingStatus/);
  });

  it('takes no parameter', () => {
    for (const feed of [datex2ParkingTable, datex2ParkingStatus, datex2Situations]) {
      assert.equal(feed.parse(new URLSearchParams()), null);
      assert.throws(() => feed.parse(new URLSearchParams('bbox=1,2,3,4')), (e: unknown) => e instanceof QueryParameterError && e.field === 'bbox');
    }
  });

  it('publishes a valid ParkingTablePublication of every live facility, hours and prices included', async () => {
    const { body } = await publish(datex2ParkingTable);
    const verdict = await validate(body, dir);
    assert.ok(verdict.ok, verdict.messages);
    const { rows } = await pool.query<{ id: string; capacity: number }>('SELECT id, capacity FROM opendata_parking_facilities ORDER BY id');
    assert.equal(rows.length, 8);
    const places = [...body.matchAll(/<prk:hierarchyElementGeneral xsi:type="prk:Place" id="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(places, rows.map((r) => r.id));
    assert.match(body, /<prk:quantity>320<\/prk:quantity>/);
    assert.match(body, /Parking Hôtel de Ville/);
    // Hôtel de Ville: 06:30–24:00 Monday to Saturday, first 30 minutes free, 1.70 € the first hour.
    assert.match(body, /<com:startTimeOfPeriod>06:30:00<\/com:startTimeOfPeriod><com:endTimeOfPeriod>24:00:00<\/com:endTimeOfPeriod>/);
    assert.match(body, /30 premières minutes gratuites.*?<fac:durationEnd>00:30:00<\/fac:durationEnd><fac:value>0\.00<\/fac:value>/);
    assert.match(body, /<fac:durationStart>00:30:00<\/fac:durationStart><fac:durationEnd>01:00:00<\/fac:durationEnd><fac:value>1\.70<\/fac:value>/);
    // Always-open facilities say so.
    assert.match(body, /<fac:operatingHours xsi:type="fac:OpenAllHours"\/>/);
    assert.match(body, /<loc:latitude>48\.9566<\/loc:latitude><loc:longitude>4\.365<\/loc:longitude>/);
  });

  it('publishes a valid ParkingStatusPublication that refers to the table, with believable counts only', async () => {
    const table = (await publish(datex2ParkingTable)).body;
    const { body } = await publish(datex2ParkingStatus);
    const verdict = await validate(body, dir);
    assert.ok(verdict.ok, verdict.messages);
    const tableVersion = /<prk:parkingTable id="([^"]+)" version="([^"]+)"/.exec(table)!;
    assert.match(body, new RegExp(`<prk:parkingTableReference targetClass="prk:ParkingTable" id="${tableVersion[1]}" version="${tableVersion[2]}"/>`));
    const placeVersions = new Map([...table.matchAll(/xsi:type="prk:Place" id="([^"]+)" version="([^"]+)"/g)].map((m) => [m[1], m[2]]));
    const references = [...body.matchAll(/<fac:reference targetClass="fac:FacilityObject" id="([^"]+)" version="([^"]+)"\/>/g)];
    assert.equal(references.length, placeVersions.size);
    for (const [, id, version] of references) assert.equal(placeVersions.get(id), version, `${id} refers to its place's version`);

    const info = (id: string) => new RegExp(`id="${id}"[^>]*/>(.*?)</prk:parkingStatusInformation>`).exec(body)![1];
    assert.match(info('pf-chalons-00001'), /<prk:numberOfVacantSpaces>20<\/prk:numberOfVacantSpaces><prk:numberOfOccupiedSpaces>300<\/prk:numberOfOccupiedSpaces><prk:occupancy>93\.8<\/prk:occupancy>/);
    // Above capacity: capped, never negative free spaces.
    assert.match(info('pf-chalons-00002'), /<prk:numberOfVacantSpaces>0<\/prk:numberOfVacantSpaces><prk:numberOfOccupiedSpaces>210<\/prk:numberOfOccupiedSpaces><prk:occupancy>100<\/prk:occupancy>/);
    // Two hours old: its time is given, not its figures. Never counted: neither.
    assert.match(info('pf-chalons-00003'), /<fac:lastUpdated>/);
    assert.doesNotMatch(info('pf-chalons-00003'), /numberOfVacantSpaces/);
    assert.doesNotMatch(info('pf-chalons-00004'), /lastUpdated|numberOfVacantSpaces/);
    assert.match(info('pf-chalons-00004'), /<fac:openingStatus>open<\/fac:openingStatus>/, 'always open');
  });

  it('moves the status version with a new count, and the table version only with a description', async () => {
    const table = (await publish(datex2ParkingTable)).tag;
    const status = (await publish(datex2ParkingStatus)).tag;
    await pool.query(`UPDATE parking_occupancy SET occupied = 299, reported = 299, observed_at = now(), updated_at = now() WHERE equipment_id = 'pf-chalons-00001'`);
    assert.notEqual((await publish(datex2ParkingStatus)).tag, status);
    assert.equal((await publish(datex2ParkingTable)).tag, table, 'a count is not a description');
    await pool.query(`UPDATE parking_facility_info SET free_minutes = 45, updated_at = now() WHERE equipment_id = 'pf-chalons-00001'`);
    assert.notEqual((await publish(datex2ParkingTable)).tag, table);
    // Going stale is a matter of time: the version moves without any write to the count.
    const before = (await publish(datex2ParkingStatus)).tag;
    await pool.query(`UPDATE parking_occupancy SET observed_at = now() - interval '1 hour' WHERE equipment_id = 'pf-chalons-00001'`);
    assert.notEqual((await publish(datex2ParkingStatus)).tag, before);
  });

  it('publishes a valid SituationPublication of works on the carriageway and signal faults, nothing internal', async () => {
    const empty = await publish(datex2Situations);
    const { rows: signals } = await pool.query<{ id: string; collectivity_id: string; lon: number; lat: number; name: string | null }>(
      `SELECT id, collectivity_id, ST_X(location) AS lon, ST_Y(location) AS lat, attributes->>'intersectionName' AS name
       FROM opendata_equipment WHERE kind = 'TRAFFIC_SIGNAL_CONTROLLER' ORDER BY id LIMIT 2`,
    );
    const { rows: lights } = await pool.query<{ id: string; lon: number; lat: number }>(
      `SELECT id, ST_X(location) AS lon, ST_Y(location) AS lat FROM opendata_equipment WHERE kind = 'LIGHT_POINT' ORDER BY id LIMIT 1`,
    );
    const { rows: alarms } = await pool.query<{ id: string }>(
      `INSERT INTO alarms (code, severity, message, equipment_id, collectivity_id, kind, raised_at, last_raised_at, acknowledged_by, state, acknowledged_at) VALUES
         ('SIGNAL_FAULT', 'CRITICAL', 'ALARM-SECRET-MESSAGE', $1, $2, 'TRAFFIC_SIGNAL_CONTROLLER', now(), now(), 'agent-sub-secret', 'ACKNOWLEDGED', now()),
         ('SIGNAL_PRIORITY_FAULT', 'MAJOR', 'ALARM-SECRET-MESSAGE', $3, $4, 'TRAFFIC_SIGNAL_CONTROLLER', now(), now(), NULL, 'RAISED', NULL)
       RETURNING id`,
      [signals[0].id, signals[0].collectivity_id, signals[1].id, signals[1].collectivity_id],
    );
    await pool.query(
      `INSERT INTO alarms (code, severity, message, equipment_id, collectivity_id, kind, raised_at, last_raised_at, state, cleared_at)
       VALUES ('SIGNAL_FAULT', 'CRITICAL', 'cleared', $1, $2, 'TRAFFIC_SIGNAL_CONTROLLER', now(), now(), 'CLEARED', now())`,
      [signals[1].id, signals[1].collectivity_id],
    );
    // Works without a position of their own take their equipment's; works on nothing public are left out.
    const { rows: works } = await pool.query<{ id: string }>(
      `INSERT INTO interventions (collectivity_id, origin, title, description, equipment_id, affects_carriageway, status, scheduled_start, scheduled_end, created_by, assignee_sub, team)
       VALUES ('chalons', 'PLANNED', 'WORKS-SECRET-TITLE', 'WORKS-SECRET-DESCRIPTION', $1, true, 'PLANNED', now() + interval '1 day', now() + interval '3 days', 'creator-sub-secret', 'assignee-sub-secret', 'TEAM-SECRET'),
              ('chalons', 'PLANNED', 'WORKS-SECRET-TITLE', NULL, 'cam-that-does-not-exist', true, 'PLANNED', NULL, NULL, NULL, NULL, NULL)
       RETURNING id`,
      [lights[0].id],
    );
    // Those with a public position: their own (planned or from an alarm) or their asset's.
    const { rows: published } = await pool.query<{ id: string }>(
      `SELECT r.id::text FROM opendata_roadworks r WHERE r.location IS NOT NULL OR EXISTS (SELECT 1 FROM opendata_equipment e WHERE e.id = r.equipment_id)`,
    );

    const { body, tag } = await publish(datex2Situations);
    assert.notEqual(tag, empty.tag);
    const verdict = await validate(body, dir);
    assert.ok(verdict.ok, verdict.messages);
    assert.match(body, /xsi:type="sit:SituationPublication"/);
    assert.match(body, new RegExp(`<sit:situation id="roadworks-${works[0].id}">`));
    assert.doesNotMatch(body, new RegExp(`roadworks-${works[1].id}"`), 'no position, no situation');
    const situations = [...body.matchAll(/<sit:situation id="roadworks-(\d+)">/g)].map((m) => m[1]);
    assert.equal(situations.length, published.length);
    const mine = new RegExp(`<sit:situation id="roadworks-${works[0].id}">(.*?)</sit:situation>`).exec(body)![1];
    assert.match(mine, /xsi:type="sit:MaintenanceWorks"/);
    assert.match(mine, /<sit:roadMaintenanceType>roadworks<\/sit:roadMaintenanceType>/);
    assert.match(mine, /<sit:probabilityOfOccurrence>probable<\/sit:probabilityOfOccurrence>/);
    assert.match(mine, new RegExp(`<loc:latitude>${Number(lights[0].lat.toFixed(6))}</loc:latitude><loc:longitude>${Number(lights[0].lon.toFixed(6))}</loc:longitude>`));
    assert.match(mine, /<com:overallEndTime>/);

    const fault = new RegExp(`<sit:situation id="signal-fault-${alarms[0].id}">(.*?)</sit:situation>`).exec(body)![1];
    assert.match(fault, /<sit:overallSeverity>highest<\/sit:overallSeverity>/);
    assert.match(fault, /<sit:equipmentOrSystemFaultType>notWorking<\/sit:equipmentOrSystemFaultType><sit:faultyEquipmentOrSystemType>trafficSignals<\/sit:faultyEquipmentOrSystemType>/);
    assert.match(fault, new RegExp(`<loc:latitude>${Number(signals[0].lat.toFixed(6))}</loc:latitude>`));
    const priority = new RegExp(`<sit:situation id="signal-fault-${alarms[1].id}">(.*?)</sit:situation>`).exec(body)![1];
    assert.match(priority, /workingIncorrectly/);
    assert.equal([...body.matchAll(/<sit:situation id="signal-fault-/g)].length, 2, 'the cleared alarm is not published');

    for (const secret of ['SECRET', 'agent-sub', 'creator-sub', 'assignee-sub']) assert.ok(!body.includes(secret), `${secret} is not published`);

    // Works done leave the publication; so does a cleared fault.
    await pool.query(`UPDATE interventions SET status = 'DONE', closed_at = now(), updated_at = now() WHERE id = $1`, [works[0].id]);
    await pool.query(`UPDATE alarms SET state = 'CLEARED', cleared_at = now(), updated_at = now() WHERE id = $1`, [alarms[1].id]);
    const later = await publish(datex2Situations);
    assert.notEqual(later.tag, tag);
    assert.doesNotMatch(later.body, new RegExp(`roadworks-${works[0].id}"|signal-fault-${alarms[1].id}"`));
    assert.ok((await validate(later.body, dir)).ok);
  });
});
