/**
 * Already known (issue #8, "Duplicates"): the `known-alarms` durable consumer keeps the active
 * telemetry alarms of each asset from `telemetry.alarm` events (raised, recurred, acknowledged:
 * active; cleared: gone), and a report about an asset with an active alarm says the problem is
 * already known. Events published on the bus, and a real lamp failure sent to telemetry's ingest.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { publishEvent } from '@connecte/shared/events';
import { senmlPack } from '@connecte/shared/senml';
import { activeAlarmOf, KNOWN_ALARMS_CONSUMER } from '../src/known-alarms.js';
import { startTicketsHub, type TicketsHub } from './fixtures.js';

let t: TicketsHub;

async function eventually<T>(check: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

/** A lamp of a commune with no other lamp within 2 m (so a report at its position links to it), not handed out before. */
const used = new Set<string>();
async function lamp(insee: string): Promise<{ id: string; collectivityId: string; lon: number; lat: number }> {
  const { rows } = await t.pool.query(
    `SELECT id, collectivity_id AS "collectivityId", ST_X(location) AS lon, ST_Y(location) AS lat FROM equipment e
     WHERE kind = 'LIGHT_POINT' AND status = 'IN_SERVICE' AND insee_code = $1
       AND NOT EXISTS (SELECT 1 FROM equipment o WHERE o.kind = 'LIGHT_POINT' AND o.id <> e.id AND ST_DWithin(o.location::geography, e.location::geography, 2))
     ORDER BY id LIMIT 50`,
    [insee],
  );
  const found = rows.find((row) => !used.has(row.id));
  assert.ok(found);
  used.add(found.id);
  return found;
}

/** Publishes a `telemetry.alarm` event as telemetry does; returns its id. */
async function publishAlarm(action: string, alarm: { id: string; equipmentId: string; collectivityId: string; code?: string }, raisedAt = new Date()): Promise<string> {
  const client = await t.pool.connect();
  try {
    await client.query('BEGIN');
    const id = await publishEvent(client, {
      topic: 'telemetry.alarm',
      collectivityId: alarm.collectivityId,
      payload: {
        action,
        alarm: { code: 'LAMP_FAILURE', severity: 'MAJOR', state: action === 'CLEARED' ? 'CLEARED' : 'OPEN', message: 'lamp failure', kind: 'LIGHT_POINT', raisedAt: raisedAt.toISOString(), ...alarm },
        setsFault: true,
      },
    });
    await client.query('COMMIT');
    return id;
  } finally {
    client.release();
  }
}

/** Resolves once the consumer has applied every event up to `id`. */
async function applied(id: string): Promise<void> {
  await eventually(async () => {
    const { rows } = await t.pool.query(`SELECT position::text FROM event_consumers WHERE consumer = $1`, [KNOWN_ALARMS_CONSUMER]);
    assert.ok(rows[0] && BigInt(rows[0].position) >= BigInt(id), `consumer at ${rows[0]?.position}, waiting for ${id}`);
  });
}

before(async () => {
  t = await startTicketsHub();
});
after(async () => {
  await t?.close();
});

describe('known alarms from telemetry.alarm events', () => {
  it('records raised, recurred and acknowledged alarms, forgets cleared ones, skips malformed events', async () => {
    const a = await lamp('51108');
    const raisedAt = new Date(Date.now() - 60_000);
    await applied(await publishAlarm('RAISED', { id: '9001', equipmentId: a.id, collectivityId: a.collectivityId }, raisedAt));
    const known = await activeAlarmOf(t.resources.db, a.id);
    assert.deepEqual({ ...known, eventId: undefined }, {
      alarmId: '9001',
      equipmentId: a.id,
      collectivityId: 'chalons',
      code: 'LAMP_FAILURE',
      severity: 'MAJOR',
      message: 'lamp failure',
      raisedAt,
      eventId: undefined,
    });
    // Malformed events do not stop the consumer.
    const client = await t.pool.connect();
    try {
      await client.query('BEGIN');
      await publishEvent(client, { topic: 'telemetry.alarm', collectivityId: 'chalons', payload: { nonsense: true } });
      await publishEvent(client, { topic: 'telemetry.alarm', collectivityId: 'chalons', payload: { action: 'RAISED', alarm: { id: 5 } } });
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await applied(await publishAlarm('ACKNOWLEDGED', { id: '9001', equipmentId: a.id, collectivityId: a.collectivityId }, raisedAt));
    assert.equal((await activeAlarmOf(t.resources.db, a.id))?.alarmId, '9001', 'an acknowledged alarm is still active');
    await applied(await publishAlarm('RECURRED', { id: '9001', equipmentId: a.id, collectivityId: a.collectivityId }, raisedAt));
    assert.equal((await t.pool.query(`SELECT count(*)::int AS n FROM ticket_known_alarms`)).rows[0].n, 1, 'one row per alarm');
    await applied(await publishAlarm('CLEARED', { id: '9001', equipmentId: a.id, collectivityId: a.collectivityId }, raisedAt));
    assert.equal(await activeAlarmOf(t.resources.db, a.id), null);
  });

  it('says a report about an asset with an active alarm is already known, and not once it is cleared', async () => {
    const a = await lamp('51108');
    const b = await lamp('51108');
    await publishAlarm('RAISED', { id: '9101', equipmentId: a.id, collectivityId: a.collectivityId });
    await applied(await publishAlarm('RAISED', { id: '9102', equipmentId: b.id, collectivityId: b.collectivityId }));
    const operator = await t.token(['operator'], ['chalons']);
    const known = await t.reportOk({ category: 'LIGHT_OUT', location: { lon: a.lon, lat: a.lat } }, await t.citizen('citizen-k1'));
    assert.deepEqual([known.ticket.alreadyKnown, known.ticket.equipment?.id], [true, a.id]);
    assert.match(known.notice, /The fault of the asset concerned is already known from its own monitoring \(alarm LAMP_FAILURE\)\./);
    const { rows } = await t.pool.query(`SELECT known_alarm_id FROM tickets WHERE id = $1`, [known.ticket.id]);
    assert.equal(rows[0].known_alarm_id, '9101');
    // The public sees that it is known too (not which asset).
    const publicView = await t.ok(`query($id: ID!) { ticket(id: $id) { alreadyKnown equipment { id } } }`, { variables: { id: known.ticket.id } });
    assert.deepEqual(publicView.ticket, { alreadyKnown: true, equipment: null });
    assert.ok(operator);

    await applied(await publishAlarm('CLEARED', { id: '9102', equipmentId: b.id, collectivityId: b.collectivityId }));
    const unknown = await t.reportOk({ category: 'LIGHT_OUT', location: { lon: b.lon, lat: b.lat } }, await t.citizen('citizen-k2'));
    assert.deepEqual([unknown.ticket.alreadyKnown, unknown.ticket.equipment?.id], [false, b.id]);
    assert.doesNotMatch(unknown.notice, /already known/);
  });

  it('learns of a real lamp failure sent to telemetry’s ingest, and forgets it when an operator clears the alarm', async () => {
    const a = await lamp('51242');
    const admin = await t.token(['admin'], ['fagnieres']);
    const issued = await t.ok(`mutation { issueIngestKey(collectivityId: "fagnieres", label: "known alarms test") { secret { token } } }`, { token: admin });
    const ingest = t.url.replace(/\/graphql$/, '/ingest');
    const response = await fetch(ingest, {
      method: 'POST',
      headers: { 'content-type': 'application/senml+json', authorization: `Bearer ${issued.issueIngestKey.secret.token}` },
      body: JSON.stringify(senmlPack(`urn:dev:connecte:${a.id}`, Date.now() / 1000, { fault: true })),
    });
    assert.equal(response.status, 200, await response.clone().text());
    const alarm = await eventually(async () => {
      const found = await activeAlarmOf(t.resources.db, a.id);
      assert.ok(found, 'the alarm reached the tickets domain');
      return found;
    });
    assert.deepEqual([alarm.code, alarm.collectivityId], ['LAMP_FAILURE', 'fagnieres']);
    const reported = await t.reportOk({ category: 'LIGHT_OUT', location: { lon: a.lon, lat: a.lat } }, await t.citizen('citizen-k3'));
    assert.equal(reported.ticket.alreadyKnown, true);

    await t.ok(`mutation($id: ID!) { clearAlarm(id: $id, note: "lamp replaced") { state } }`, { variables: { id: alarm.alarmId }, token: await t.token(['operator'], ['fagnieres']) });
    await eventually(async () => assert.equal(await activeAlarmOf(t.resources.db, a.id), null));
  });

  it('applies each event once with a second instance of the consumer started and stopped beside the service’s', async () => {
    const worker = t.resources.workers()[0];
    assert.equal(worker.name, 'known-alarms');
    const a = await lamp('51504');
    // A second instance of the consumer (as another process would run), started and stopped around events.
    await worker.start();
    try {
      await applied(await publishAlarm('RAISED', { id: '9201', equipmentId: a.id, collectivityId: a.collectivityId }));
    } finally {
      await worker.stop();
    }
    const last = await publishAlarm('CLEARED', { id: '9201', equipmentId: a.id, collectivityId: a.collectivityId });
    await applied(last);
    assert.equal(await activeAlarmOf(t.resources.db, a.id), null);
    const { rows } = await t.pool.query(`SELECT position::text FROM event_consumers WHERE consumer = $1`, [KNOWN_ALARMS_CONSUMER]);
    assert.equal(rows[0].position, last);
  });
});
