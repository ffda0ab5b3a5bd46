/**
 * Alarms, end to end on the telemetry service: readings through `POST /ingest` raise and clear
 * them in the ingest transaction (CO2 for 10 minutes in an occupied room, lamp failures that
 * recur, battery, silence found by the sweep, events of other domains), people acknowledge and
 * clear them (every role of every collectivity tried), collectivities tune their rules, and
 * `alarmChanged` streams every change once, resumable from a cursor. Concurrent batches raising
 * one alarm open exactly one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { COLLECTIVITY_IDS, ROLES, type Role } from '@connecte/shared/auth';
import { publishEvent } from '@connecte/shared/events';
import { subscriptions, type GraphQLResponse } from '@connecte/testkit';
import { ALARM_CONSUMER, AlarmEngine } from '../src/alarm-engine.js';
import { startAlarmService, eventually, minutes, type AlarmTestEnv } from './alarm-fixtures.js';
import { countStatements } from './statement-counter.js';

const ALARM_FIELDS = `id code severity state message metric value occurrences raisedAt lastRaisedAt acknowledgedAt acknowledgedBy
  acknowledgementNote clearedAt clearedBy equipment { id } collectivity { id } history { action at actor note value }`;

let env: AlarmTestEnv;

const ok = (response: GraphQLResponse): any => {
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data;
};

const errorOf = (response: { errors?: { extensions?: Record<string, unknown>; message: string }[] }) => {
  assert.ok(response.errors?.length, `expected an error, got ${JSON.stringify(response)}`);
  return { code: response.errors![0].extensions?.code, field: response.errors![0].extensions?.field, message: response.errors![0].message };
};

before(async () => {
  env = await startAlarmService();
});
after(() => env?.close());

describe('CO2 in an occupied classroom', () => {
  it('raises CO2_HIGH only once the level has stayed above 1,500 ppm for 10 minutes, and clears it when it drops', async () => {
    const sensor = await env.pick('AIR_QUALITY_SENSOR', 'chalons');
    const t0 = Date.now() - minutes(60);
    // Occupied, above the threshold for 5 then 9 minutes: not yet (each reading a batch of its own).
    await env.report(sensor, t0, { co2: 1_620, occupancy: 24 });
    await env.report(sensor, t0 + minutes(5), { co2: 1_700, occupancy: 25 });
    await env.report(sensor, t0 + minutes(9), { co2: 1_680 });
    assert.deepEqual(await env.alarmsOf(sensor), []);
    // 10 minutes: raised, with the reading that made it.
    await env.report(sensor, t0 + minutes(10), { co2: 1_630 });
    const raised = await env.firstAlarmOf(sensor);
    assert.equal(raised.code, 'CO2_HIGH');
    assert.equal(raised.state, 'RAISED');
    assert.equal(raised.severity, 'MAJOR');
    assert.equal(raised.value, 1_630);
    assert.equal(raised.raised_at.getTime(), t0 + minutes(10));
    assert.equal(raised.message, 'CO2 1,630 ppm above 1,500 ppm for 10 minutes in an occupied room');
    // Still above: the same alarm, not raised again for the same run.
    await env.report(sensor, t0 + minutes(15), { co2: 1_900 });
    assert.equal((await env.alarmsOf(sensor)).length, 1);
    assert.equal((await env.alarmsOf(sensor))[0].occurrences, 1);
    // Back under: cleared by the system, at the reading's time.
    await env.report(sensor, t0 + minutes(20), { co2: 900 });
    const cleared = await env.firstAlarmOf(sensor);
    assert.equal(cleared.state, 'CLEARED');
    assert.equal(cleared.cleared_by, 'system');
    assert.deepEqual((await env.historyOf(cleared.id)).map((h) => [h.action, h.actor, h.value]), [
      ['RAISED', 'system', 1_630],
      ['CLEARED', 'system', 900],
    ]);
  });

  it('resets the 10 minutes when the level drops in between, and raises nothing in an empty room', async () => {
    const interrupted = await env.pick('AIR_QUALITY_SENSOR', 'chalons');
    const t0 = Date.now() - minutes(60);
    await env.report(interrupted, t0, { co2: 1_800, occupancy: 20 });
    await env.report(interrupted, t0 + minutes(5), { co2: 1_400 });
    await env.report(interrupted, t0 + minutes(10), { co2: 1_800 });
    await env.report(interrupted, t0 + minutes(15), { co2: 1_800 });
    assert.deepEqual(await env.alarmsOf(interrupted), [], 'two runs of 5 minutes are not 10 minutes');

    const empty = await env.pick('AIR_QUALITY_SENSOR', 'chalons');
    for (let m = 0; m <= 30; m += 5) await env.report(empty, t0 + minutes(m), { co2: 2_200, occupancy: 0 });
    assert.deepEqual(await env.alarmsOf(empty), [], 'an unoccupied room raises no CO2 alarm');
    // Pupils come in: the run starts then.
    await env.report(empty, t0 + minutes(35), { co2: 2_200, occupancy: 18 });
    await env.report(empty, t0 + minutes(40), { co2: 2_200 });
    assert.deepEqual(await env.alarmsOf(empty), []);
    await env.report(empty, t0 + minutes(45), { co2: 2_250 });
    assert.deepEqual((await env.alarmsOf(empty)).map((a) => [a.code, a.state]), [['CO2_HIGH', 'RAISED']]);
  });

  it('takes a whole run in one batch, in time order whatever the order of the records', async () => {
    const sensor = await env.pick('AIR_QUALITY_SENSOR', 'fagnieres');
    const t0 = Date.now() - minutes(50);
    const seconds = (ms: number) => ms / 1000;
    const response = await fetch(env.service.url.replace(/\/graphql$/, '/ingest'), {
      method: 'POST',
      headers: { 'content-type': 'application/senml+json', authorization: `Bearer ${await ingestKeyFor('fagnieres')}` },
      body: JSON.stringify([
        { bn: `urn:dev:connecte:${sensor}:`, n: 'co2', u: 'ppm', v: 1_550, t: seconds(t0 + minutes(10)) },
        { n: 'co2', u: 'ppm', v: 1_600, t: seconds(t0) },
        { n: 'co2', u: 'ppm', v: 1_700, t: seconds(t0 + minutes(5)) },
      ]),
    });
    assert.equal(response.status, 200);
    assert.deepEqual((await env.alarmsOf(sensor)).map((a) => [a.code, a.value, a.raised_at.getTime()]), [['CO2_HIGH', 1_550, t0 + minutes(10)]]);
  });
});

/** A fresh ingest key of a collectivity (the fixture keeps its own; this one is for a hand-made pack). */
async function ingestKeyFor(collectivityId: string): Promise<string> {
  const admin = await env.token(['admin'], [collectivityId]);
  return ok(await env.gql(`mutation($c: ID!) { issueIngestKey(collectivityId: $c, label: "hand-made pack") { secret { token } } }`, admin, { c: collectivityId }))
    .issueIngestKey.secret.token;
}

describe('lamp failures', () => {
  it('raises LAMP_FAILURE, updates the open alarm when the failure recurs, and clears it when the lamp reports no fault', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'chalons');
    const t0 = Date.now() - minutes(40);
    await env.report(lamp, t0, { power: 0, fault: false });
    assert.deepEqual(await env.alarmsOf(lamp), []);
    await env.report(lamp, t0 + minutes(10), { power: 0, fault: true });
    await env.report(lamp, t0 + minutes(20), { power: 0, fault: true });
    const alarms = await env.alarmsOf(lamp);
    assert.equal(alarms.length, 1, 'a recurring failure updates the open alarm');
    assert.deepEqual(
      { code: alarms[0].code, state: alarms[0].state, severity: alarms[0].severity, occurrences: alarms[0].occurrences, message: alarms[0].message },
      { code: 'LAMP_FAILURE', state: 'RAISED', severity: 'MAJOR', occurrences: 2, message: 'lamp failure reported' },
    );
    assert.equal(alarms[0].raised_at.getTime(), t0 + minutes(10));
    assert.equal(alarms[0].last_raised_at.getTime(), t0 + minutes(20));

    await env.report(lamp, t0 + minutes(30), { power: 38, fault: false });
    const cleared = await env.firstAlarmOf(lamp);
    assert.equal(cleared.state, 'CLEARED');
    assert.deepEqual((await env.historyOf(cleared.id)).map((h) => h.action), ['RAISED', 'RECURRED', 'CLEARED']);

    // A new failure after the repair is a new alarm.
    await env.report(lamp, t0 + minutes(35), { fault: true });
    assert.deepEqual((await env.alarmsOf(lamp)).map((a) => [a.state, a.occurrences]), [['CLEARED', 2], ['RAISED', 1]]);
  });

  it('puts every change on the bus with the alarm as it was right after it', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'fagnieres');
    const t0 = Date.now() - minutes(30);
    await env.report(lamp, t0, { fault: true });
    await env.report(lamp, t0 + minutes(10), { fault: false });
    const { rows } = await env.service.db.pool.query<{ collectivity_id: string; payload: any }>(
      `SELECT collectivity_id, payload FROM events WHERE topic = 'telemetry.alarm' AND payload->'alarm'->>'equipmentId' = $1 ORDER BY id`,
      [lamp],
    );
    assert.deepEqual(
      rows.map((row) => [row.collectivity_id, row.payload.action, row.payload.alarm.state, row.payload.setsFault, row.payload.alarm.code]),
      [
        ['fagnieres', 'RAISED', 'RAISED', true, 'LAMP_FAILURE'],
        ['fagnieres', 'CLEARED', 'CLEARED', true, 'LAMP_FAILURE'],
      ],
    );
    assert.equal(rows[1].payload.alarm.clearedBy, 'system');
    assert.equal(rows[1].payload.alarm.clearedAt, new Date(t0 + minutes(10)).toISOString());
  });

  it('raises SIGNAL_FAULT, CRITICAL, for a traffic-signal controller', async () => {
    const controller = await env.pick('TRAFFIC_SIGNAL_CONTROLLER', 'chalons');
    await env.report(controller, Date.now() - minutes(1), { signal_state: 2, fault: true });
    assert.deepEqual((await env.alarmsOf(controller)).map((a) => [a.code, a.severity, a.state]), [['SIGNAL_FAULT', 'CRITICAL', 'RAISED']]);
  });

  it('opens exactly one alarm when concurrent batches raise it, and counts every raise', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'chalons');
    const t0 = Date.now() - minutes(30);
    // More batches than the pool has connections, with the rules to reload: each ingest
    // transaction holds a connection, so the reload must not wait for another one.
    env.r.alarms.invalidateRules();
    await Promise.all(Array.from({ length: 12 }, (_, i) => env.report(lamp, t0 + i * 1_000, { fault: true, power: 0 })));
    const alarms = await env.alarmsOf(lamp);
    assert.equal(alarms.length, 1, JSON.stringify(alarms));
    assert.equal(alarms[0].occurrences, 12);
    const history = await env.historyOf(alarms[0].id);
    assert.equal(history.length, 12);
    assert.deepEqual(history.map((h) => h.action).sort(), ['RAISED', ...Array(11).fill('RECURRED')].sort());

    // A duration rule under the same pressure: twelve batches each carrying a whole 10-minute run.
    const sensor = await env.pick('AIR_QUALITY_SENSOR', 'chalons');
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        env.report(sensor, t0 + i * 1_000, { co2: 1_800, occupancy: 10 }).then(() => env.report(sensor, t0 + minutes(10) + i * 1_000, { co2: 1_800 })),
      ),
    );
    const co2 = await env.alarmsOf(sensor);
    assert.deepEqual(co2.map((a) => [a.code, a.state, a.occurrences]), [['CO2_HIGH', 'RAISED', 1]]);
  });

  it('reloads its rules on the ingest transaction’s own connection: no second connection while holding one', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'chalons');
    // Every connection of the pool but one is taken: ingest gets the last, and the alarm engine,
    // whose rules are to be reloaded, must not wait for another (it would until the pool timeout).
    const pool = env.service.db.pool;
    const held = await Promise.all(Array.from({ length: env.service.config.DB_POOL_SIZE - 1 }, () => pool.connect()));
    try {
      env.r.alarms.invalidateRules();
      const started = Date.now();
      await env.report(lamp, Date.now() - minutes(1), { fault: true });
      assert.ok(Date.now() - started < env.service.config.DB_CONNECTION_TIMEOUT_MS, `took ${Date.now() - started} ms`);
    } finally {
      for (const client of held) client.release();
    }
    assert.deepEqual((await env.alarmsOf(lamp)).map((a) => a.code), ['LAMP_FAILURE']);
  });

  it('costs one statement per batch when nothing can change', async () => {
    const lamps = await Promise.all(Array.from({ length: 100 }, () => env.pick('LIGHT_POINT', 'chalons')));
    const t0 = Date.now() - minutes(20);
    const readings = lamps.flatMap((equipmentId, i) =>
      (['power', 'energy', 'dim_level', 'fault'] as const).map((metric) => ({
        equipmentId,
        collectivityId: 'chalons',
        kind: 'LIGHT_POINT' as const,
        metric,
        time: new Date(t0 + i),
        value: metric === 'fault' ? 0 : 20,
      })),
    );
    const client = await env.service.db.pool.connect();
    const counter = countStatements(env.service.db.pool);
    try {
      await env.r.alarms.rules();
      // The least of a few runs: a worker's timer may fire during one.
      const { count, statements } = await counter.measure(async () => {
        await client.query('BEGIN');
        await env.r.alarms.evaluate(client, readings);
        await client.query('ROLLBACK');
      });
      assert.equal(count - 2, 1, statements.join('\n---\n'));
    } finally {
      counter.restore();
      client.release();
    }
  });
});

describe('lifecycle: raised, acknowledged (by whom, with a note), cleared', () => {
  it('records each step with its actor, note and time, and refuses what does not follow', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'chalons');
    await env.report(lamp, Date.now() - minutes(5), { fault: true });
    const alarm = await env.firstAlarmOf(lamp);
    const operator = await env.token(['operator'], ['chalons']);
    const agent = await env.token(['agent'], ['chalons']);

    // Bad notes change nothing.
    const long = await env.gql(`mutation($id: ID!, $note: String) { acknowledgeAlarm(id: $id, note: $note) { id } }`, operator, { id: alarm.id, note: 'x'.repeat(2_001) });
    assert.deepEqual([errorOf(long).code, errorOf(long).field], ['BAD_USER_INPUT', 'note']);
    const nul = await env.gql(`mutation($id: ID!, $note: String) { acknowledgeAlarm(id: $id, note: $note) { id } }`, operator, { id: alarm.id, note: 'on it\u0000' });
    assert.deepEqual([errorOf(nul).code, errorOf(nul).field], ['BAD_USER_INPUT', 'note']);
    // An agent reads but does not handle.
    const byAgent = await env.gql(`mutation($id: ID!) { acknowledgeAlarm(id: $id) { id } }`, agent, { id: alarm.id });
    assert.deepEqual([errorOf(byAgent).code, errorOf(byAgent).field], ['FORBIDDEN', 'id']);
    const unknown = await env.gql(`mutation { acknowledgeAlarm(id: "999999999") { id } }`, operator);
    assert.deepEqual([errorOf(unknown).code, errorOf(unknown).field], ['NOT_FOUND', 'id']);
    const malformed = await env.gql(`mutation { clearAlarm(id: "lamp'; --") { id } }`, operator);
    assert.deepEqual([errorOf(malformed).code, errorOf(malformed).field], ['NOT_FOUND', 'id']);
    assert.equal((await env.alarmsOf(lamp))[0].state, 'RAISED');

    const note = 'Crew sent, ETA 14:00 — rue de la Marne';
    const acknowledged = ok(
      await env.gql(`mutation($id: ID!, $note: String) { acknowledgeAlarm(id: $id, note: $note) { ${ALARM_FIELDS} } }`, operator, { id: alarm.id, note: `  ${note}  ` }),
    ).acknowledgeAlarm;
    assert.equal(acknowledged.state, 'ACKNOWLEDGED');
    assert.equal(acknowledged.acknowledgedBy, 'test-operator-chalons');
    assert.equal(acknowledged.acknowledgementNote, note);
    assert.ok(Date.parse(acknowledged.acknowledgedAt) > Date.now() - 60_000);
    const again = await env.gql(`mutation($id: ID!) { acknowledgeAlarm(id: $id) { id } }`, operator, { id: alarm.id });
    assert.deepEqual([errorOf(again).code, errorOf(again).field], ['BAD_USER_INPUT', 'id']);

    // A recurrence keeps it acknowledged.
    await env.report(lamp, Date.now() - minutes(1), { fault: true });
    const recurred = ok(await env.gql(`query($id: ID!) { alarm(id: $id) { state occurrences } }`, agent, { id: alarm.id })).alarm;
    assert.deepEqual(recurred, { state: 'ACKNOWLEDGED', occurrences: 2 });

    const cleared = ok(
      await env.gql(`mutation($id: ID!) { clearAlarm(id: $id, note: "Lamp replaced") { ${ALARM_FIELDS} } }`, operator, { id: alarm.id }),
    ).clearAlarm;
    assert.equal(cleared.state, 'CLEARED');
    assert.equal(cleared.clearedBy, 'test-operator-chalons');
    assert.deepEqual(
      cleared.history.map((h: any) => [h.action, h.actor, h.note]),
      [
        ['RAISED', 'system', null],
        ['ACKNOWLEDGED', 'test-operator-chalons', note],
        ['RECURRED', 'system', null],
        ['CLEARED', 'test-operator-chalons', 'Lamp replaced'],
      ],
    );
    const ackCleared = await env.gql(`mutation($id: ID!) { acknowledgeAlarm(id: $id) { id } }`, operator, { id: alarm.id });
    assert.deepEqual([errorOf(ackCleared).code, errorOf(ackCleared).field], ['BAD_USER_INPUT', 'id']);
    assert.match(errorOf(ackCleared).message, /cleared/);
    const clearCleared = await env.gql(`mutation($id: ID!) { clearAlarm(id: $id) { id } }`, operator, { id: alarm.id });
    assert.deepEqual([errorOf(clearCleared).code, errorOf(clearCleared).field], ['BAD_USER_INPUT', 'id']);

    // Listed newest first with filters, and paginated with cursors.
    const list = ok(
      await env.gql(
        `{ alarms(filter: { collectivityIds: ["chalons"], codes: ["LAMP_FAILURE"], states: [CLEARED], kinds: [LIGHT_POINT] }, first: 1000) { totalCount edges { node { id } } } }`,
        agent,
      ),
    ).alarms;
    assert.ok(list.edges.some((e: any) => e.node.id === alarm.id));
    assert.equal(list.totalCount, list.edges.length);
  });

  it('pages alarms newest first with cursors, and refuses cursors and page sizes it did not issue', async () => {
    const agent = await env.token(['agent'], ['chalons']);
    const all = ok(await env.gql(`{ alarms(first: 1000) { edges { node { id raisedAt } } } }`, agent)).alarms.edges.map((e: any) => e.node);
    assert.ok(all.length >= 4);
    const sorted = [...all].sort((a: any, b: any) => Date.parse(b.raisedAt) - Date.parse(a.raisedAt) || Number(b.id) - Number(a.id));
    assert.deepEqual(all, sorted);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (;;) {
      const page: any = ok(await env.gql(`query($after: String) { alarms(first: 3, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }`, agent, { after: cursor }))
        .alarms;
      seen.push(...page.edges.map((e: any) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      cursor = page.pageInfo.endCursor;
    }
    assert.deepEqual(seen, all.map((a: any) => a.id));
    for (const [args, field] of [
      ['first: 1001', 'first'],
      ['first: -1', 'first'],
      ['after: "bm90LWEtY3Vyc29y"', 'after'],
    ]) {
      const refused = await env.gql(`{ alarms(${args}) { totalCount } }`, agent);
      assert.deepEqual([errorOf(refused).code, errorOf(refused).field], ['BAD_USER_INPUT', field], args);
    }
  });
});

describe('battery and silence', () => {
  it('raises BATTERY_LOW below 15 % at once and clears it once recharged', async () => {
    const detector = await env.pick('PRESENCE_DETECTOR', 'chalons');
    const t0 = Date.now() - minutes(20);
    await env.report(detector, t0, { battery: 16, presence: 2 });
    assert.deepEqual(await env.alarmsOf(detector), []);
    await env.report(detector, t0 + minutes(1), { battery: 14 });
    await env.report(detector, t0 + minutes(2), { battery: 13 });
    assert.deepEqual((await env.alarmsOf(detector)).map((a) => [a.code, a.severity, a.state, a.occurrences, a.message]), [
      ['BATTERY_LOW', 'MINOR', 'RAISED', 1, 'battery 14 % below 15 %'],
    ]);
    await env.report(detector, t0 + minutes(3), { battery: 100 });
    assert.deepEqual((await env.alarmsOf(detector)).map((a) => a.state), ['CLEARED']);
  });

  it('raises DEVICE_SILENT for a device silent longer than three expected periods, once, and clears it when it reports', async () => {
    // Light points report every 600 s: silent after 30 minutes.
    const silent = await env.pick('LIGHT_POINT', 'saint-martin-sur-le-pre');
    const quiet = await env.pick('LIGHT_POINT', 'saint-martin-sur-le-pre');
    const inMaintenance = await env.pick('LIGHT_POINT', 'saint-martin-sur-le-pre', 'MAINTENANCE');
    const now = Date.now();
    await env.report(silent, now - minutes(41), { power: 30 });
    await env.report(silent, now - minutes(31), { power: 30 });
    await env.report(quiet, now - minutes(29), { power: 30 });
    await env.report(inMaintenance, now - minutes(90), { power: 0 });

    await env.r.alarms.sweep(new Date(now));
    const alarm = await env.firstAlarmOf(silent);
    assert.deepEqual([alarm.code, alarm.state, alarm.severity, alarm.value], ['DEVICE_SILENT', 'RAISED', 'MINOR', 31 * 60]);
    assert.equal(alarm.message, 'no reading for 31 minutes (expected every 10 minutes; raised after 3 periods)');
    assert.deepEqual(await env.alarmsOf(quiet), [], 'silent for less than three periods');
    assert.deepEqual(await env.alarmsOf(inMaintenance), [], 'an asset in maintenance is not expected to report');

    // Later sweeps neither open another nor count it again; the quiet one's turn comes.
    await env.r.alarms.sweep(new Date(now + minutes(2)));
    await env.r.alarms.sweep(new Date(now + minutes(3)));
    assert.deepEqual((await env.alarmsOf(silent)).map((a) => [a.state, a.occurrences]), [['RAISED', 1]]);
    assert.deepEqual((await env.alarmsOf(quiet)).map((a) => [a.code, a.state]), [['DEVICE_SILENT', 'RAISED']]);

    // It reports again: cleared in the ingest transaction.
    await env.report(silent, now, { power: 31 });
    assert.deepEqual((await env.alarmsOf(silent)).map((a) => [a.state, a.cleared_by]), [['CLEARED', 'system']]);
    // And the sweep clears one whose reading arrived in a way it learns only from the stored readings.
    await env.report(quiet, now, { power: 29 });
    assert.deepEqual((await env.alarmsOf(quiet)).map((a) => a.state), ['CLEARED']);
  });

  it('does not raise again a silence an operator cleared, until the device has reported since', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'fagnieres');
    const now = Date.now();
    await env.report(lamp, now - minutes(45), { power: 30 });
    await env.r.alarms.sweep(new Date(now));
    const silence = await env.firstAlarmOf(lamp);
    assert.equal(silence.code, 'DEVICE_SILENT');
    const operator = await env.token(['operator'], ['fagnieres']);
    ok(await env.gql(`mutation($id: ID!) { clearAlarm(id: $id, note: "Pole knocked down, device removed") { state } }`, operator, { id: silence.id }));
    await env.r.alarms.sweep(new Date(now + minutes(1)));
    assert.deepEqual((await env.alarmsOf(lamp)).map((a) => a.state), ['CLEARED']);
    // Back and silent again: a new silence.
    await env.report(lamp, now - minutes(1), { power: 30 });
    await env.r.alarms.sweep(new Date(now + minutes(40)));
    assert.deepEqual((await env.alarmsOf(lamp)).map((a) => [a.code, a.state]), [['DEVICE_SILENT', 'CLEARED'], ['DEVICE_SILENT', 'RAISED']]);
  });
});

describe('events of other domains', () => {
  const publish = async (topic: string, collectivityId: string, payload: unknown) => {
    const client = await env.service.db.pool.connect();
    try {
      return await publishEvent(client, { topic, collectivityId, payload });
    } finally {
      client.release();
    }
  };
  const consumed = async (id: string) =>
    eventually(async () => {
      const { rows } = await env.service.db.pool.query<{ position: string }>('SELECT position::text FROM event_consumers WHERE consumer = $1', [ALARM_CONSUMER]);
      assert.ok(BigInt(rows[0].position) >= BigInt(id), `consumer at ${rows[0].position}, waiting for ${id}`);
    });

  it('raises COMMAND_NOT_ACKNOWLEDGED from device.fault, recurs it, and clears it on device.fault.cleared; ignores what it cannot use', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'chalons');
    await publish('device.fault', 'chalons', { equipmentId: lamp, code: 'COMMAND_NOT_ACKNOWLEDGED', message: 'dim command c0f1 not acknowledged within 60 s' });
    // Unusable events do not stop the consumer: a code without an EVENT rule, an unknown asset, a malformed body.
    await publish('device.fault', 'chalons', { equipmentId: lamp, code: 'LAMP_FAILURE' });
    await publish('device.fault', 'chalons', { equipmentId: 'lp-nowhere', code: 'COMMAND_NOT_ACKNOWLEDGED' });
    await publish('device.fault', 'chalons', 'not an object');
    const last = await publish('device.fault', 'chalons', { equipmentId: lamp, code: 'COMMAND_NOT_ACKNOWLEDGED' });
    await consumed(last);
    const alarm = await env.firstAlarmOf(lamp);
    assert.deepEqual([alarm.code, alarm.state, alarm.severity, alarm.occurrences], ['COMMAND_NOT_ACKNOWLEDGED', 'RAISED', 'MINOR', 2]);
    assert.equal(alarm.message, 'command not acknowledged (device.fault)');
    assert.deepEqual((await env.historyOf(alarm.id)).map((h) => h.action), ['RAISED', 'RECURRED']);
    assert.equal((await env.alarmsOf(lamp)).length, 1, 'LAMP_FAILURE is raised by readings, not by events');

    await consumed(await publish('device.fault.cleared', 'chalons', { equipmentId: lamp, code: 'COMMAND_NOT_ACKNOWLEDGED' }));
    assert.deepEqual((await env.alarmsOf(lamp)).map((a) => [a.state, a.cleared_by]), [['CLEARED', 'system']]);
  });
});

describe('rules', () => {
  it('lists the defaults and a collectivity’s rules in force', async () => {
    const agent = await env.token(['agent'], ['chalons']);
    const rules = ok(
      await env.gql(
        `{ alarmRules { code collectivity { id } type kinds metric comparison threshold forSeconds requiresOccupancy silencePeriods eventTopic clearEventTopic severity setsFault enabled updatedBy } }`,
        agent,
      ),
    ).alarmRules;
    const byCode = Object.fromEntries(rules.map((rule: any) => [rule.code, rule]));
    assert.deepEqual(Object.keys(byCode).sort(), ['BATTERY_LOW', 'CO2_HIGH', 'COMMAND_NOT_ACKNOWLEDGED', 'DEVICE_SILENT', 'LAMP_FAILURE', 'SIGNAL_FAULT', 'SIGNAL_PRIORITY_FAULT', 'TEMPERATURE_LOW']);
    assert.deepEqual(byCode.CO2_HIGH, {
      code: 'CO2_HIGH',
      collectivity: null,
      type: 'THRESHOLD',
      kinds: ['AIR_QUALITY_SENSOR'],
      metric: 'co2',
      comparison: 'ABOVE',
      threshold: 1500,
      forSeconds: 600,
      requiresOccupancy: true,
      silencePeriods: null,
      eventTopic: null,
      clearEventTopic: null,
      severity: 'MAJOR',
      setsFault: false,
      enabled: true,
      updatedBy: 'system',
    });
    assert.deepEqual([byCode.LAMP_FAILURE.type, byCode.LAMP_FAILURE.metric, byCode.LAMP_FAILURE.setsFault], ['FLAG', 'fault', true]);
    assert.deepEqual([byCode.SIGNAL_FAULT.severity, byCode.SIGNAL_FAULT.setsFault], ['CRITICAL', true]);
    assert.deepEqual([byCode.DEVICE_SILENT.type, byCode.DEVICE_SILENT.silencePeriods], ['SILENCE', 3]);
    assert.deepEqual([byCode.BATTERY_LOW.comparison, byCode.BATTERY_LOW.threshold], ['BELOW', 15]);
    assert.deepEqual([byCode.COMMAND_NOT_ACKNOWLEDGED.eventTopic, byCode.COMMAND_NOT_ACKNOWLEDGED.clearEventTopic], ['device.fault', 'device.fault.cleared']);
  });

  it('applies a collectivity’s own version to its assets only, and takes a field back to the default with null', async () => {
    const admin = await env.token(['admin'], ['saint-martin-sur-le-pre']);
    const configured = ok(
      await env.gql(
        `mutation { configureAlarmRule(collectivityId: "saint-martin-sur-le-pre", code: "CO2_HIGH", input: { threshold: 1000, forSeconds: 0, severity: CRITICAL }) {
          code collectivity { id } threshold forSeconds severity requiresOccupancy enabled updatedBy updatedAt } }`,
        admin,
      ),
    ).configureAlarmRule;
    assert.deepEqual({ ...configured, updatedAt: undefined }, {
      code: 'CO2_HIGH',
      collectivity: { id: 'saint-martin-sur-le-pre' },
      threshold: 1000,
      forSeconds: 0,
      severity: 'CRITICAL',
      requiresOccupancy: true,
      enabled: true,
      updatedBy: 'test-admin-saint-martin-sur-le-pre',
      updatedAt: undefined,
    });
    const t = Date.now() - minutes(5);
    const own = await env.pick('AIR_QUALITY_SENSOR', 'saint-martin-sur-le-pre');
    const other = await env.pick('AIR_QUALITY_SENSOR', 'chalons');
    await env.report(own, t, { co2: 1_200, occupancy: 12 });
    await env.report(other, t, { co2: 1_200, occupancy: 12 });
    assert.deepEqual((await env.alarmsOf(own)).map((a) => [a.code, a.severity, a.message]), [['CO2_HIGH', 'CRITICAL', 'CO2 1,200 ppm above 1,000 ppm in an occupied room']]);
    assert.deepEqual(await env.alarmsOf(other), []);

    // Omitted fields keep the version's values; null takes the default's back.
    const reset = ok(
      await env.gql(`mutation { configureAlarmRule(collectivityId: "saint-martin-sur-le-pre", code: "CO2_HIGH", input: { threshold: null }) { threshold forSeconds severity } }`, admin),
    ).configureAlarmRule;
    assert.deepEqual(reset, { threshold: 1500, forSeconds: 0, severity: 'CRITICAL' });
    const agent = await env.token(['agent'], ['saint-martin-sur-le-pre', 'chalons']);
    const inForce = ok(await env.gql(`{ own: alarmRules(collectivityId: "saint-martin-sur-le-pre") { code threshold collectivity { id } } defaults: alarmRules { code threshold } chalons: alarmRules(collectivityId: "chalons") { code collectivity { id } } }`, agent));
    assert.deepEqual(inForce.own.find((rule: any) => rule.code === 'CO2_HIGH'), { code: 'CO2_HIGH', threshold: 1500, collectivity: { id: 'saint-martin-sur-le-pre' } });
    assert.equal(inForce.own.find((rule: any) => rule.code === 'LAMP_FAILURE').collectivity, null);
    assert.equal(inForce.defaults.find((rule: any) => rule.code === 'CO2_HIGH').threshold, 1500);
    assert.ok(inForce.chalons.every((rule: any) => rule.collectivity === null));

    // A disabled rule raises nothing for that collectivity.
    ok(await env.gql(`mutation { configureAlarmRule(collectivityId: "saint-martin-sur-le-pre", code: "LAMP_FAILURE", input: { enabled: false }) { enabled } }`, admin));
    const lamp = await env.pick('LIGHT_POINT', 'saint-martin-sur-le-pre');
    await env.report(lamp, Date.now() - minutes(2), { fault: true });
    assert.deepEqual(await env.alarmsOf(lamp), []);
    ok(await env.gql(`mutation { configureAlarmRule(collectivityId: "saint-martin-sur-le-pre", code: "LAMP_FAILURE", input: { enabled: true }) { enabled } }`, admin));
    await env.report(lamp, Date.now() - minutes(1), { fault: true });
    assert.deepEqual((await env.alarmsOf(lamp)).map((a) => a.code), ['LAMP_FAILURE']);
  });

  it('reaches the engines of other instances: they reload their rules from the bus', async () => {
    // Another instance's engine over the same database and bus, with its worker running.
    const other = new AlarmEngine(env.r);
    const worker = other.worker();
    await worker.start();
    try {
      assert.equal((await other.rules()).effective('chalons-agglo', 'BATTERY_LOW')!.threshold, 15);
      const admin = await env.token(['admin'], ['chalons-agglo']);
      ok(await env.gql(`mutation { configureAlarmRule(collectivityId: "chalons-agglo", code: "BATTERY_LOW", input: { threshold: 25 }) { threshold } }`, admin));
      await eventually(async () => assert.equal((await other.rules()).effective('chalons-agglo', 'BATTERY_LOW')!.threshold, 25));
      assert.equal((await other.rules()).effective('chalons', 'BATTERY_LOW')!.threshold, 15);
    } finally {
      await worker.stop();
    }
  });

  it('refuses what does not fit the rule, naming the field, and writes nothing', async () => {
    const admin = await env.token(['admin'], ['chalons']);
    const cases: [string, string, string][] = [
      ['LAMP_FAILURE', '{ threshold: 3 }', 'input.threshold'],
      ['LAMP_FAILURE', '{ forSeconds: 60 }', 'input.forSeconds'],
      ['CO2_HIGH', '{ silencePeriods: 4 }', 'input.silencePeriods'],
      ['CO2_HIGH', '{ forSeconds: 604801 }', 'input.forSeconds'],
      ['CO2_HIGH', '{ forSeconds: -1 }', 'input.forSeconds'],
      ['DEVICE_SILENT', '{ silencePeriods: 1 }', 'input.silencePeriods'],
      ['DEVICE_SILENT', '{ silencePeriods: 1001 }', 'input.silencePeriods'],
      ['CO2_HIGH', '{}', 'input'],
      ['NO_SUCH_RULE', '{ enabled: false }', 'code'],
      ['CO2_HIGH', '{ threshold: 1e999 }', 'input.threshold'],
    ];
    for (const [code, input, field] of cases) {
      const refused = await env.gql(`mutation { configureAlarmRule(collectivityId: "chalons", code: "${code}", input: ${input}) { code } }`, admin);
      assert.deepEqual([errorOf(refused).code, errorOf(refused).field], ['BAD_USER_INPUT', field], `${code} ${input}: ${JSON.stringify(refused.errors)}`);
    }
    const { rows } = await env.service.db.pool.query(`SELECT code FROM alarm_rules WHERE collectivity_id = 'chalons'`);
    assert.deepEqual(rows, []);
  });
});

describe('who may read, handle and configure', () => {
  const everyone = (): [string, Role | null, string | null][] => [
    ['public', null, null],
    ...ROLES.flatMap((role) => COLLECTIVITY_IDS.map((c): [string, Role, string] => [`${role} of ${c}`, role, c])),
  ];

  it('reads: agent, operator and admin of the asset’s collectivity only', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'fagnieres');
    await env.report(lamp, Date.now() - minutes(3), { fault: true });
    const alarm = await env.firstAlarmOf(lamp);
    for (const [who, role, collectivity] of everyone()) {
      const token = role ? await env.token([role], [collectivity!]) : undefined;
      const allowed = role !== null && ['agent', 'operator', 'admin'].includes(role) && collectivity === 'fagnieres';
      const one = await env.gql(`query($id: ID!) { alarm(id: $id) { id } }`, token, { id: alarm.id });
      assert.deepEqual(ok(one).alarm, allowed ? { id: alarm.id } : null, who);
      const entities = ok(
        await env.gql(`query($r: [_Any!]!) { _entities(representations: $r) { ... on Equipment { alarms { totalCount edges { node { id } } } } } }`, token, {
          r: [{ __typename: 'Equipment', id: lamp }],
        }),
      );
      assert.deepEqual(entities._entities[0].alarms.edges.map((e: any) => e.node.id), allowed ? [alarm.id] : [], who);
      const named = await env.gql(`{ alarms(filter: { collectivityIds: ["fagnieres"] }, first: 1000) { edges { node { id } } } }`, token);
      if (allowed) assert.ok(ok(named).alarms.edges.some((e: any) => e.node.id === alarm.id), who);
      else assert.deepEqual([errorOf(named).code, errorOf(named).field], role === null ? ['UNAUTHENTICATED', undefined] : ['FORBIDDEN', 'filter.collectivityIds.0'], who);
      const mine = await env.gql(`{ alarms(first: 1000) { edges { node { id collectivity { id } } } } }`, token);
      if (role === null) assert.equal(errorOf(mine).code, 'UNAUTHENTICATED');
      else {
        const nodes = ok(mine).alarms.edges.map((e: any) => e.node);
        assert.equal(nodes.some((n: any) => n.id === alarm.id), allowed, who);
        assert.ok(nodes.every((n: any) => n.collectivity.id === collectivity), `${who} sees only its own collectivity`);
      }
    }
  });

  it('acknowledges and clears: operator and admin of the asset’s collectivity only', async () => {
    const lamp = await env.pick('LIGHT_POINT', 'chalons');
    await env.report(lamp, Date.now() - minutes(3), { fault: true });
    const alarm = await env.firstAlarmOf(lamp);
    for (const [who, role, collectivity] of everyone()) {
      if ((role === 'operator' || role === 'admin') && collectivity === 'chalons') continue;
      const token = role ? await env.token([role], [collectivity!]) : undefined;
      for (const mutation of ['acknowledgeAlarm', 'clearAlarm']) {
        const refused = await env.gql(`mutation($id: ID!) { ${mutation}(id: $id) { id } }`, token, { id: alarm.id });
        assert.deepEqual([errorOf(refused).code, errorOf(refused).field], role === null ? ['UNAUTHENTICATED', undefined] : ['FORBIDDEN', 'id'], `${who} ${mutation}`);
      }
    }
    assert.equal((await env.alarmsOf(lamp))[0].state, 'RAISED');
    ok(await env.gql(`mutation($id: ID!) { acknowledgeAlarm(id: $id) { id } }`, await env.token(['operator'], ['chalons']), { id: alarm.id }));
    ok(await env.gql(`mutation($id: ID!) { clearAlarm(id: $id) { id } }`, await env.token(['admin'], ['chalons']), { id: alarm.id }));
    assert.deepEqual((await env.alarmsOf(lamp)).map((a) => [a.state, a.acknowledged_by, a.cleared_by]), [['CLEARED', 'test-operator-chalons', 'test-admin-chalons']]);
  });

  it('configures: admin of that collectivity only', async () => {
    for (const [who, role, collectivity] of everyone()) {
      const token = role ? await env.token([role], [collectivity!]) : undefined;
      for (const target of COLLECTIVITY_IDS) {
        const answer = await env.gql(`mutation($c: ID!) { configureAlarmRule(collectivityId: $c, code: "BATTERY_LOW", input: { severity: MINOR }) { collectivity { id } } }`, token, { c: target });
        if (role === 'admin' && collectivity === target) assert.deepEqual(ok(answer).configureAlarmRule.collectivity, { id: target }, who);
        else assert.deepEqual([errorOf(answer).code, errorOf(answer).field], role === null ? ['UNAUTHENTICATED', undefined] : ['FORBIDDEN', 'collectivityId'], `${who} → ${target}`);
      }
      const rules = await env.gql(`{ alarmRules(collectivityId: "chalons") { code } }`, token);
      if (role !== null && ['agent', 'operator', 'admin'].includes(role) && collectivity === 'chalons') assert.equal(ok(rules).alarmRules.length, 8, who);
      else assert.equal(errorOf(rules).code, role === null ? 'UNAUTHENTICATED' : 'FORBIDDEN', who);
    }
  });

  it('serves Equipment.alarms for a page of assets in a constant number of statements', async () => {
    const lamps = await Promise.all(Array.from({ length: 60 }, () => env.pick('LIGHT_POINT', 'chalons')));
    await Promise.all(lamps.slice(0, 30).map((lamp, i) => env.report(lamp, Date.now() - minutes(10) + i, { fault: true })));
    const agent = await env.token(['agent'], ['chalons']);
    const query = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Equipment { id
      all: alarms(first: 5) { totalCount edges { cursor node { id code history { action } } } }
      open: alarms(active: true, first: 1) { edges { node { id } } pageInfo { hasNextPage } } } } }`;
    const counter = countStatements(env.service.db.pool);
    try {
      const run = (ids: string[]) => env.gql(query, agent, { r: ids.map((id) => ({ __typename: 'Equipment', id })) });
      const small = await counter.measure(async () => ok(await run(lamps.slice(0, 2))));
      const large = await counter.measure(async () => {
        const data = ok(await run(lamps));
        assert.equal(data._entities.filter((e: any) => e.all.totalCount === 1).length, 30);
      });
      assert.equal(large.count, small.count, large.statements.join('\n---\n'));
      assert.ok(large.count <= 5, `${large.count} statements`);
    } finally {
      counter.restore();
    }
  });
});

describe('alarmChanged', () => {
  const SUBSCRIPTION = (filter: string, after?: string) =>
    `subscription { alarmChanged(filter: ${filter}${after ? `, after: "${after}"` : ''}) { cursor action alarm { id code state occurrences equipment { id } collectivity { id } } } }`;

  it('streams every change of the collectivities asked for, and resumes from a cursor losing and repeating nothing', async () => {
    const { rows } = await env.service.db.pool.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM events`);
    const start = rows[0].id;
    const operator = await env.token(['operator'], ['chalons']);
    const subs = subscriptions(env.service.url);
    try {
      const live = subs.subscribe(SUBSCRIPTION('{ collectivityIds: ["chalons"] }', start), operator);
      const majors = subs.subscribe(SUBSCRIPTION('{ collectivityIds: ["chalons"], minimumSeverity: MAJOR }', start), operator);
      const lamps = await Promise.all(Array.from({ length: 8 }, () => env.pick('LIGHT_POINT', 'chalons')));
      const detector = await env.pick('PRESENCE_DETECTOR', 'chalons');
      const elsewhere = await env.pick('LIGHT_POINT', 'fagnieres');
      const t = Date.now() - minutes(10);
      // Concurrent writers: 8 raises, a battery (MINOR) and another collectivity's alarm.
      await Promise.all([
        ...lamps.map((lamp) => env.report(lamp, t, { fault: true })),
        env.report(detector, t, { battery: 5 }),
        env.report(elsewhere, t, { fault: true }),
      ]);
      await live.waitFor(9);
      const first = await env.firstAlarmOf(lamps[0]);
      ok(await env.gql(`mutation($id: ID!) { acknowledgeAlarm(id: $id, note: "seen") { id } }`, operator, { id: first.id }));
      await env.report(lamps[0], t + minutes(1), { fault: true });
      await env.report(lamps[0], t + minutes(2), { fault: false });
      const received = (await live.waitFor(12)).map((m) => m.data.alarmChanged);
      assert.ok(received.every((change) => change.alarm.collectivity.id === 'chalons'));
      assert.equal(new Set(received.map((change) => change.cursor)).size, received.length, 'no change twice');
      assert.deepEqual(received.map((c) => BigInt(c.cursor)), [...received.map((c) => BigInt(c.cursor))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      assert.deepEqual(new Set(received.slice(0, 9).map((c) => c.alarm.equipment.id)), new Set([...lamps, detector]));
      assert.deepEqual(
        received.slice(9).map((c) => [c.action, c.alarm.state, c.alarm.occurrences]),
        [
          ['ACKNOWLEDGED', 'ACKNOWLEDGED', 1],
          ['RECURRED', 'ACKNOWLEDGED', 2],
          ['CLEARED', 'CLEARED', 2],
        ],
      );
      const majorChanges = (await majors.waitFor(11)).map((m) => m.data.alarmChanged);
      assert.ok(majorChanges.every((change) => change.alarm.code === 'LAMP_FAILURE'), 'MINOR left out');

      // Resume after the fifth change: exactly the rest, then what comes next.
      const resumed = subs.subscribe(SUBSCRIPTION('{ collectivityIds: ["chalons"] }', received[4].cursor), operator);
      await env.report(lamps[1], t + minutes(3), { fault: false });
      const replay = (await resumed.waitFor(8)).map((m) => m.data.alarmChanged);
      const all = (await live.waitFor(13)).map((m) => m.data.alarmChanged);
      assert.deepEqual(replay, all.slice(5));
      assert.equal(replay.at(-1).action, 'CLEARED');
    } finally {
      await subs.dispose();
    }
  });

  it('refuses callers without a role in every collectivity asked for, and an empty filter', async () => {
    const subs = subscriptions(env.service.url);
    try {
      const cases: [string | undefined, string, string, string | undefined][] = [
        [undefined, '{ collectivityIds: ["chalons"] }', 'UNAUTHENTICATED', undefined],
        [await env.token(['citizen'], ['chalons']), '{ collectivityIds: ["chalons"] }', 'FORBIDDEN', 'filter.collectivityIds.0'],
        [await env.token(['agent'], ['fagnieres']), '{ collectivityIds: ["fagnieres", "chalons"] }', 'FORBIDDEN', 'filter.collectivityIds.1'],
        [await env.token(['agent'], ['fagnieres']), '{ collectivityIds: [] }', 'BAD_USER_INPUT', 'filter.collectivityIds'],
        [await env.token(['agent'], ['fagnieres']), '{ collectivityIds: ["fagnieres"] }, after: "12abc"', 'BAD_USER_INPUT', 'after'],
      ];
      for (const [token, filter, code, field] of cases) {
        const refused = subs.subscribe(`subscription { alarmChanged(filter: ${filter}) { cursor } }`, token);
        const [message] = await refused.waitFor(1);
        assert.deepEqual([message.errors?.[0]?.extensions?.code, message.errors?.[0]?.extensions?.field], [code, field], `${filter}: ${JSON.stringify(message)}`);
      }
    } finally {
      await subs.dispose();
    }
  });
});
