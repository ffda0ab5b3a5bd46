/**
 * Interventions (work orders), end to end through the gateway: created from a ticket (which moves
 * to ASSIGNED, then IN_PROGRESS when the work starts and RESOLVED when the last work order is
 * closed out), from an active telemetry alarm, or planned; every role of every collectivity
 * reading, creating and changing them (an agent only his own); the allowed moves and who makes
 * them; close-out requiring notes and minutes; bad inputs refused naming the field with nothing
 * written; concurrent changes of one work order and of two work orders of one ticket.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { COLLECTIVITY_IDS, ROLES, signDevelopmentToken, type Role } from '@connecte/shared/auth';
import { createTestDatabase, gql, startHub, tokenFor, type GraphQLResponse, type Hub, type TestDatabase } from '@connecte/testkit';

const FIELDS = `id collectivity { id } origin alarmId equipment { id } title description location { type coordinates } status assignee team
  scheduledStart scheduledEnd startedAt closedAt closeNotes minutesSpent affectsCarriageway stopIds routeIds
  history { action fromStatus toStatus actor note } createdAt updatedAt`;

const CREATE = `mutation ($input: CreateInterventionInput!) { createIntervention(input: $input) { ${FIELDS} } }`;
const UPDATE = `mutation ($input: UpdateInterventionInput!) { updateIntervention(input: $input) { ${FIELDS} } }`;
const ONE = `query ($id: ID!) { intervention(id: $id) { ${FIELDS} } }`;

let db: TestDatabase;
let hub: Hub;
let pool: pg.Pool;
const tokens: Record<string, string> = {};

const ok = (response: GraphQLResponse): any => {
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data;
};

const errorOf = (response: GraphQLResponse) => {
  assert.ok(response.errors?.length, `expected an error, got ${JSON.stringify(response.data)}`);
  const [error] = response.errors!;
  return { code: error.extensions?.code, field: error.extensions?.field, message: error.message };
};

const call = (query: string, token: string | undefined, variables: Record<string, unknown> = {}) => gql(hub.gatewayUrl, query, { token, variables });
const create = (token: string | undefined, input: Record<string, unknown>) => call(CREATE, token, { input });
const update = (token: string | undefined, input: Record<string, unknown>) => call(UPDATE, token, { input });

async function token(sub: string, roles: Role[], collectivities: string[]): Promise<string> {
  return signDevelopmentToken({ sub, roles, collectivities, expiresIn: '1h' }, hub.config);
}

/** Assets of the seed in service with no ticket or work order of the seed, each handed out once in this file. */
const used = new Set<string>();
async function asset(collectivityId: string, kind = 'LIGHT_POINT'): Promise<{ id: string; lon: number; lat: number }> {
  const { rows } = await pool.query<{ id: string; lon: number; lat: number }>(
    `SELECT id, ST_X(location) AS lon, ST_Y(location) AS lat FROM equipment
     WHERE collectivity_id = $1 AND kind = $2 AND location IS NOT NULL AND status = 'IN_SERVICE' AND NOT (id = ANY($3::text[]))
       AND NOT EXISTS (SELECT 1 FROM interventions i WHERE i.equipment_id = equipment.id) AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.equipment_id = equipment.id)
     ORDER BY id LIMIT 1`,
    [collectivityId, kind, [...used]],
  );
  assert.ok(rows[0], `no more ${kind} in ${collectivityId}`);
  used.add(rows[0].id);
  return rows[0];
}

/** A ticket written as the reporting path would have (its own tests cover that path). */
async function ticket(collectivityId: string, options: { status?: string; equipment?: { id: string; lon: number; lat: number }; duplicateOf?: string } = {}) {
  const place = options.equipment ?? (await asset(collectivityId));
  const { rows } = await pool.query<{ id: string }>(
    `INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, equipment_id, duplicate_of, source,
                          reporter_sub, ack_due_at, resolve_due_at, acknowledged_at)
     VALUES ('LIGHT_OUT', $1, 'Éclairage public', $2, 'The light stays off at night', ST_SetSRID(ST_MakePoint($3, $4), 4326), $5, $6, 'APP',
             'citizen-reporter', now() + interval '24 hours', now() + interval '72 hours',
             CASE WHEN $2 IN ('NEW', 'DUPLICATE') THEN NULL ELSE now() END)
     RETURNING id::text`,
    [collectivityId, options.status ?? 'NEW', place.lon, place.lat, place.id, options.duplicateOf ?? null],
  );
  return { id: rows[0].id, equipment: place };
}

async function ticketStatus(id: string): Promise<string> {
  const { rows } = await pool.query<{ status: string }>('SELECT status FROM tickets WHERE id = $1', [id]);
  return rows[0].status;
}

async function ticketMoves(id: string): Promise<string[][]> {
  const { rows } = await pool.query<{ from_status: string; to_status: string; actor_sub: string; note: string }>(
    `SELECT from_status, to_status, actor_sub, note FROM ticket_history WHERE ticket_id = $1 AND action = 'TRANSITION' ORDER BY id`,
    [id],
  );
  return rows.map((r) => [r.from_status, r.to_status, r.actor_sub, r.note]);
}

async function counts(): Promise<{ interventions: number; history: number; events: number; ticketHistory: number }> {
  const { rows } = await pool.query(
    `SELECT (SELECT count(*)::int FROM interventions) AS interventions, (SELECT count(*)::int FROM intervention_history) AS history,
            (SELECT count(*)::int FROM events WHERE topic = 'tickets.intervention') AS events, (SELECT count(*)::int FROM ticket_history) AS "ticketHistory"`,
  );
  return rows[0];
}

const iso = (offsetHours: number) => new Date(Date.now() + offsetHours * 3_600_000).toISOString();

before(async () => {
  db = await createTestDatabase();
  hub = await startHub(db.url, {}, { subgraphs: ['territory', 'equipment', 'tickets'] });
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  tokens.operator = await tokenFor(hub.config, ['operator'], ['chalons']);
  tokens.admin = await tokenFor(hub.config, ['admin'], ['chalons']);
  tokens.operatorFagnieres = await tokenFor(hub.config, ['operator'], ['fagnieres']);
  tokens.alice = await token('agent-alice', ['agent'], ['chalons']);
  tokens.bob = await token('agent-bob', ['agent'], ['chalons']);
  tokens.citizen = await token('citizen-reporter', ['citizen'], []);
});
after(async () => {
  await pool?.end();
  await hub?.close();
  await db?.drop();
});

describe('a work order from a ticket', () => {
  it('takes the ticket’s collectivity, place and asset, moves the ticket along as the work is assigned, started and closed out', async () => {
    const { id: ticketId, equipment } = await ticket('chalons');
    const created = ok(await create(tokens.operator, { ticketId, title: '  Replace the lamp  ', description: 'Lamp out since Monday', assignee: 'agent-alice' }));
    const order = created.createIntervention;
    assert.equal(order.origin, 'TICKET');
    assert.equal(order.collectivity.id, 'chalons');
    assert.equal(order.equipment.id, equipment.id);
    assert.deepEqual(order.location, { type: 'Point', coordinates: [equipment.lon, equipment.lat] });
    assert.equal(order.title, 'Replace the lamp');
    assert.equal(order.description, 'Lamp out since Monday');
    assert.equal(order.status, 'ASSIGNED');
    assert.equal(order.assignee, 'agent-alice');
    assert.equal(order.alarmId, null);
    assert.equal(order.startedAt, null);
    assert.deepEqual(order.history, [{ action: 'CREATED', fromStatus: null, toStatus: 'ASSIGNED', actor: 'test-operator-chalons', note: `from ticket ${ticketId}` }]);
    // NEW is acknowledged first (NEW → ASSIGNED is not a move of the lifecycle), then assigned.
    assert.equal(await ticketStatus(ticketId), 'ASSIGNED');
    assert.deepEqual(await ticketMoves(ticketId), [
      ['NEW', 'ACKNOWLEDGED', 'test-operator-chalons', `work order ${order.id} created`],
      ['ACKNOWLEDGED', 'ASSIGNED', 'test-operator-chalons', `work order ${order.id} created`],
    ]);

    const started = ok(await update(tokens.alice, { id: order.id, status: 'IN_PROGRESS', note: 'on site' })).updateIntervention;
    assert.equal(started.status, 'IN_PROGRESS');
    assert.ok(Date.parse(started.startedAt) > Date.parse(order.createdAt) - 1000);
    assert.equal(await ticketStatus(ticketId), 'IN_PROGRESS');

    // Close-out needs the notes and the minutes: refused without either, nothing written.
    const before = await counts();
    const noNotes = errorOf(await update(tokens.alice, { id: order.id, status: 'DONE', minutesSpent: 40 }));
    assert.deepEqual([noNotes.code, noNotes.field], ['BAD_USER_INPUT', 'input.closeNotes']);
    assert.match(noNotes.message, /required to close out/);
    const blankNotes = errorOf(await update(tokens.alice, { id: order.id, status: 'DONE', closeNotes: '   ', minutesSpent: 40 }));
    assert.deepEqual([blankNotes.code, blankNotes.field], ['BAD_USER_INPUT', 'input.closeNotes']);
    const noMinutes = errorOf(await update(tokens.alice, { id: order.id, status: 'DONE', closeNotes: 'Lamp replaced' }));
    assert.deepEqual([noMinutes.code, noMinutes.field], ['BAD_USER_INPUT', 'input.minutesSpent']);
    assert.deepEqual(await counts(), before);
    assert.equal(ok(await call(ONE, tokens.operator, { id: order.id })).intervention.status, 'IN_PROGRESS');

    const done = ok(await update(tokens.alice, { id: order.id, status: 'DONE', closeNotes: 'Lamp replaced, driver too', minutesSpent: 40 })).updateIntervention;
    assert.equal(done.status, 'DONE');
    assert.equal(done.closeNotes, 'Lamp replaced, driver too');
    assert.equal(done.minutesSpent, 40);
    assert.ok(done.closedAt);
    assert.deepEqual(done.history, [
      { action: 'CREATED', fromStatus: null, toStatus: 'ASSIGNED', actor: 'test-operator-chalons', note: `from ticket ${ticketId}` },
      { action: 'STARTED', fromStatus: 'ASSIGNED', toStatus: 'IN_PROGRESS', actor: 'agent-alice', note: 'on site' },
      { action: 'CLOSED', fromStatus: 'IN_PROGRESS', toStatus: 'DONE', actor: 'agent-alice', note: null },
    ]);
    assert.equal(await ticketStatus(ticketId), 'RESOLVED');
    assert.deepEqual((await ticketMoves(ticketId)).slice(2), [
      ['ASSIGNED', 'IN_PROGRESS', 'agent-alice', `work order ${order.id} started`],
      ['IN_PROGRESS', 'RESOLVED', 'agent-alice', `work order ${order.id} done`],
    ]);
    // One bus event per history entry, each naming the work order and its ticket.
    const { rows: events } = await pool.query(
      `SELECT payload->>'action' AS action, payload->>'status' AS status, payload->>'ticketId' AS ticket, collectivity_id
       FROM events WHERE topic = 'tickets.intervention' AND payload->>'interventionId' = $1 ORDER BY id`,
      [order.id],
    );
    assert.deepEqual(events.map((e) => [e.action, e.status, e.ticket, e.collectivity_id]), [
      ['CREATED', 'ASSIGNED', ticketId, 'chalons'],
      ['STARTED', 'IN_PROGRESS', ticketId, 'chalons'],
      ['CLOSED', 'DONE', ticketId, 'chalons'],
    ]);
  });

  it('leaves a ticket that is already assigned where it is, and resolves it only when its last open work order is closed out', async () => {
    const { id: ticketId } = await ticket('chalons', { status: 'ACKNOWLEDGED' });
    const first = ok(await create(tokens.operator, { ticketId, title: 'Lamp', assignee: 'agent-alice' })).createIntervention;
    const second = ok(await create(tokens.admin, { ticketId, title: 'Cabinet fuse', team: 'Équipe réseau' })).createIntervention;
    assert.equal(second.status, 'ASSIGNED');
    assert.equal(second.team, 'Équipe réseau');
    assert.deepEqual((await ticketMoves(ticketId)).map((m) => m.slice(0, 2)), [['ACKNOWLEDGED', 'ASSIGNED']]);
    ok(await update(tokens.alice, { id: first.id, status: 'IN_PROGRESS' }));
    // The team's work order is started and closed from the control room.
    ok(await update(tokens.operator, { id: second.id, status: 'IN_PROGRESS' }));
    ok(await update(tokens.alice, { id: first.id, status: 'DONE', closeNotes: 'Lamp replaced', minutesSpent: 30 }));
    assert.equal(await ticketStatus(ticketId), 'IN_PROGRESS', 'another work order of the ticket is still open');
    ok(await update(tokens.operator, { id: second.id, status: 'DONE', closeNotes: 'Fuse replaced', minutesSpent: 0 }));
    assert.equal(await ticketStatus(ticketId), 'RESOLVED');
  });

  it('resolves the ticket exactly once when its two work orders are closed out at the same moment', async () => {
    for (let round = 0; round < 4; round++) {
      const { id: ticketId } = await ticket('chalons', { status: 'ACKNOWLEDGED' });
      const a = ok(await create(tokens.operator, { ticketId, title: 'A', assignee: 'agent-alice' })).createIntervention;
      const b = ok(await create(tokens.operator, { ticketId, title: 'B', assignee: 'agent-bob' })).createIntervention;
      ok(await update(tokens.alice, { id: a.id, status: 'IN_PROGRESS' }));
      ok(await update(tokens.bob, { id: b.id, status: 'IN_PROGRESS' }));
      await Promise.all([
        sleep(Math.random() * 5).then(async () => ok(await update(tokens.alice, { id: a.id, status: 'DONE', closeNotes: 'a', minutesSpent: 5 }))),
        sleep(Math.random() * 5).then(async () => ok(await update(tokens.bob, { id: b.id, status: 'DONE', closeNotes: 'b', minutesSpent: 5 }))),
      ]);
      assert.equal(await ticketStatus(ticketId), 'RESOLVED', `round ${round}`);
      assert.equal((await ticketMoves(ticketId)).filter((m) => m[1] === 'RESOLVED').length, 1, `round ${round}`);
    }
  });

  it('cancelling the only work order of an assigned ticket gives the ticket back to the service (ACKNOWLEDGED)', async () => {
    const { id: ticketId } = await ticket('chalons', { status: 'ACKNOWLEDGED' });
    const order = ok(await create(tokens.operator, { ticketId, title: 'Lamp', assignee: 'agent-alice' })).createIntervention;
    const cancelled = ok(await update(tokens.operator, { id: order.id, status: 'CANCELLED', note: 'lamp came back on' })).updateIntervention;
    assert.equal(cancelled.status, 'CANCELLED');
    assert.ok(cancelled.closedAt);
    assert.deepEqual(cancelled.history.at(-1), { action: 'CANCELLED', fromStatus: 'ASSIGNED', toStatus: 'CANCELLED', actor: 'test-operator-chalons', note: 'lamp came back on' });
    assert.equal(await ticketStatus(ticketId), 'ACKNOWLEDGED');
  });

  it('refuses an unknown ticket, a closed, rejected or duplicate one, another collectivity’s, and the place given beside a ticket; nothing written', async () => {
    const before = await counts();
    const closed = await ticket('chalons', { status: 'CLOSED' });
    const rejected = await ticket('chalons', { status: 'REJECTED' });
    const original = await ticket('chalons', { status: 'ACKNOWLEDGED' });
    const duplicate = await ticket('chalons', { status: 'DUPLICATE', duplicateOf: original.id, equipment: original.equipment });
    const cases: [Record<string, unknown>, string, string, RegExp][] = [
      [{ ticketId: '999999999' }, 'BAD_USER_INPUT', 'input.ticketId', /no ticket with id 999999999/],
      [{ ticketId: 'abc' }, 'BAD_USER_INPUT', 'input.ticketId', /no ticket with id "abc"/],
      [{ ticketId: closed.id }, 'BAD_USER_INPUT', 'input.ticketId', /is CLOSED: a work order is created only from an open ticket/],
      [{ ticketId: rejected.id }, 'BAD_USER_INPUT', 'input.ticketId', /is REJECTED/],
      [{ ticketId: duplicate.id }, 'BAD_USER_INPUT', 'input.ticketId', new RegExp(`duplicate of ticket ${original.id}`)],
      [{ ticketId: original.id, collectivityId: 'chalons' }, 'BAD_USER_INPUT', 'input.collectivityId', /taken from the ticket/],
      [{ ticketId: original.id, location: { lon: 4.36, lat: 48.95 } }, 'BAD_USER_INPUT', 'input.location', /taken from the ticket/],
      [{ ticketId: original.id, alarmId: 'x' }, 'BAD_USER_INPUT', 'input.alarmId', /either ticketId or alarmId/],
    ];
    for (const [input, code, field, message] of cases) {
      const refused = errorOf(await create(tokens.operator, { title: 'Lamp', ...input }));
      assert.deepEqual([refused.code, refused.field], [code, field], JSON.stringify(input));
      assert.match(refused.message, message);
    }
    const foreign = errorOf(await create(tokens.operatorFagnieres, { ticketId: original.id, title: 'Lamp' }));
    assert.deepEqual([foreign.code, foreign.field], ['FORBIDDEN', 'input.ticketId']);
    const agent = errorOf(await create(tokens.alice, { ticketId: original.id, title: 'Lamp' }));
    assert.equal(agent.code, 'FORBIDDEN');
    const after = await counts();
    assert.equal(after.interventions, before.interventions);
    assert.equal(after.history, before.history);
    assert.equal(after.ticketHistory, before.ticketHistory);
    assert.equal(await ticketStatus(original.id), 'ACKNOWLEDGED');
  });
});

describe('federation', () => {
  it('resolves Intervention.ticket and Ticket.interventions (what the caller sees of them), batched for many tickets', async () => {
    const tickets = await Promise.all([ticket('chalons', { status: 'ACKNOWLEDGED' }), ticket('chalons', { status: 'ACKNOWLEDGED' })]);
    const orders: string[][] = [];
    for (const t of tickets) {
      orders.push([
        ok(await create(tokens.operator, { ticketId: t.id, title: 'Alice', assignee: 'agent-alice' })).createIntervention.id,
        ok(await create(tokens.operator, { ticketId: t.id, title: 'Bob', assignee: 'agent-bob' })).createIntervention.id,
      ]);
    }
    const one = ok(await call(`query ($id: ID!) { intervention(id: $id) { ticket { id status } } }`, tokens.operator, { id: orders[0][0] }));
    assert.deepEqual(one.intervention.ticket, { id: tickets[0].id, status: 'ASSIGNED' });
    const query = `{ ${tickets.map((t, i) => `t${i}: ticket(id: "${t.id}") { id interventions { id title assignee } }`).join(' ')} }`;
    const asOperator = ok(await call(query, tokens.operator));
    assert.deepEqual(Object.values(asOperator).map((t: any) => t.interventions.map((i: any) => i.id)), orders);
    const asAlice = ok(await call(query, tokens.alice));
    assert.deepEqual(Object.values(asAlice).map((t: any) => t.interventions.map((i: any) => [i.id, i.assignee])), orders.map((o) => [[o[0], 'agent-alice']]));
    for (const nobody of [undefined, tokens.citizen, tokens.operatorFagnieres]) {
      const seen = ok(await call(query, nobody));
      assert.deepEqual(Object.values(seen).map((t: any) => t.interventions), [[], []]);
    }
    // The gateway reaches a work order as an entity: only for whoever may see it.
    const entity = await gql(hub.subgraphs.tickets.url, `query ($r: [_Any!]!) { _entities(representations: $r) { ... on Intervention { id status } } }`, {
      token: tokens.bob,
      variables: { r: orders.flat().map((id) => ({ __typename: 'Intervention', id })) },
    });
    assert.deepEqual(ok(entity)._entities, [null, { id: orders[0][1], status: 'ASSIGNED' }, null, { id: orders[1][1], status: 'ASSIGNED' }]);
  });
});

describe('a work order from an alarm', () => {
  it('takes the active alarm’s asset, its collectivity and the asset’s location; an unknown or cleared alarm is refused', async () => {
    const lamp = await asset('chalons');
    await pool.query(
      `INSERT INTO ticket_known_alarms (alarm_id, equipment_id, collectivity_id, code, severity, message, raised_at, event_id)
       VALUES ('9001', $1, 'chalons', 'LAMP_FAILURE', 'MAJOR', 'lamp failure reported 3 times', now() - interval '2 hours', 0)`,
      [lamp.id],
    );
    const order = ok(await create(tokens.operator, { alarmId: '9001', title: 'Lamp failure', scheduledStart: iso(2), scheduledEnd: iso(3) })).createIntervention;
    assert.equal(order.origin, 'ALARM');
    assert.equal(order.alarmId, '9001');
    assert.equal(order.collectivity.id, 'chalons');
    assert.equal(order.equipment.id, lamp.id);
    assert.deepEqual(order.location.coordinates, [lamp.lon, lamp.lat]);
    assert.equal(order.status, 'PLANNED');
    assert.deepEqual(order.history.map((h: any) => [h.action, h.note]), [['CREATED', 'from alarm 9001 (LAMP_FAILURE)']]);

    const foreign = errorOf(await create(tokens.operatorFagnieres, { alarmId: '9001', title: 'Lamp failure' }));
    assert.deepEqual([foreign.code, foreign.field], ['FORBIDDEN', 'input.alarmId']);
    const before = await counts();
    const unknown = errorOf(await create(tokens.operator, { alarmId: 'no-such-alarm', title: 'Lamp failure' }));
    assert.deepEqual([unknown.code, unknown.field], ['BAD_USER_INPUT', 'input.alarmId']);
    assert.match(unknown.message, /no active alarm with id "no-such-alarm" \(unknown, or already cleared\)/);
    // Cleared: the known-alarms consumer deletes the row.
    await pool.query(`DELETE FROM ticket_known_alarms WHERE alarm_id = '9001'`);
    const cleared = errorOf(await create(tokens.operator, { alarmId: '9001', title: 'Lamp failure' }));
    assert.deepEqual([cleared.code, cleared.field], ['BAD_USER_INPUT', 'input.alarmId']);
    const withPlace = errorOf(await create(tokens.operator, { alarmId: '9001', equipmentId: lamp.id, title: 'x' }));
    assert.deepEqual([withPlace.code, withPlace.field], ['BAD_USER_INPUT', 'input.equipmentId']);
    assert.deepEqual(await counts(), before);
  });
});

describe('planned works', () => {
  it('are created for a collectivity, with an asset of it, the carriageway and the bus stops and routes they affect', async () => {
    const cabinet = await asset('chalons', 'ELECTRICAL_CABINET');
    const start = iso(24);
    const end = iso(30);
    const order = ok(
      await create(tokens.operator, {
        collectivityId: 'chalons',
        equipmentId: cabinet.id,
        title: 'Replace the cabinet’s door',
        scheduledStart: start,
        scheduledEnd: end,
        affectsCarriageway: true,
        stopIds: ['STOP-REP-1', 'STOP-REP-2', 'STOP-REP-1'],
        routeIds: ['L1'],
      }),
    ).createIntervention;
    assert.equal(order.origin, 'PLANNED');
    assert.equal(order.equipment.id, cabinet.id);
    assert.deepEqual(order.location.coordinates, [cabinet.lon, cabinet.lat]);
    assert.equal(order.scheduledStart, start);
    assert.equal(order.scheduledEnd, end);
    assert.equal(order.affectsCarriageway, true);
    assert.deepEqual(order.stopIds, ['STOP-REP-1', 'STOP-REP-2']);
    assert.deepEqual(order.routeIds, ['L1']);
    assert.equal(order.status, 'PLANNED');

    const road = ok(await create(tokens.operator, { collectivityId: 'chalons', title: 'Resurface rue de la Marne', location: { lon: 4.365, lat: 48.957 } })).createIntervention;
    assert.deepEqual(road.location, { type: 'Point', coordinates: [4.365, 48.957] });
    assert.equal(road.equipment, null);
    assert.equal(road.affectsCarriageway, false);
    assert.deepEqual(road.stopIds, []);

    // Assigned and scheduled later, then rescheduled: one history entry each.
    const assigned = ok(await update(tokens.operator, { id: road.id, assignee: 'agent-bob', scheduledStart: iso(48), scheduledEnd: iso(50) })).updateIntervention;
    assert.equal(assigned.status, 'ASSIGNED');
    assert.deepEqual(assigned.history.map((h: any) => [h.action, h.fromStatus, h.toStatus]), [
      ['CREATED', null, 'PLANNED'],
      ['ASSIGNED', 'PLANNED', 'ASSIGNED'],
      ['SCHEDULED', 'ASSIGNED', 'ASSIGNED'],
    ]);
    const moved = ok(await update(tokens.operator, { id: road.id, scheduledEnd: iso(52) })).updateIntervention;
    assert.equal(Date.parse(moved.scheduledEnd) > Date.parse(assigned.scheduledEnd), true);
  });

  it('refuses a missing or unknown collectivity, an asset of another one, a place outside the territory', async () => {
    const before = await counts();
    const fagnieresLamp = await asset('fagnieres');
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{}, 'input.collectivityId', /required for a planned intervention/],
      [{ collectivityId: 'paris' }, 'input.collectivityId', /not a known collectivity/],
      [{ collectivityId: 'chalons', equipmentId: fagnieresLamp.id }, 'input.equipmentId', /belongs to fagnieres, not to chalons/],
      [{ collectivityId: 'chalons', equipmentId: 'LP-NOPE' }, 'input.equipmentId', /no asset with id "LP-NOPE"/],
      [{ collectivityId: 'chalons', location: { lon: 2.35, lat: 48.85 } }, 'input.location', /outside the territory/],
      [{ collectivityId: 'chalons', location: { lon: 200, lat: 48.85 } }, 'input.location.lon', /\[-180, 180\]/],
    ];
    for (const [input, field, message] of cases) {
      const refused = errorOf(await create(tokens.operator, { title: 'Works', ...input }));
      assert.deepEqual([refused.code, refused.field], ['BAD_USER_INPUT', field], JSON.stringify(input));
      assert.match(refused.message, message);
    }
    const foreign = errorOf(await create(tokens.operatorFagnieres, { collectivityId: 'chalons', title: 'Works' }));
    assert.deepEqual([foreign.code, foreign.field], ['FORBIDDEN', 'input.collectivityId']);
    const anonymous = errorOf(await create(undefined, { collectivityId: 'chalons', title: 'Works' }));
    assert.equal(anonymous.code, 'UNAUTHENTICATED');
    assert.deepEqual(await counts(), before);
  });
});

describe('bad input', () => {
  it('refuses each bad value naming the field, with nothing written', async () => {
    const order = ok(await create(tokens.operator, { collectivityId: 'chalons', title: 'Bench', assignee: 'agent-alice', scheduledStart: iso(5), scheduledEnd: iso(6) })).createIntervention;
    const before = await counts();
    const creations: [Record<string, unknown>, string, RegExp][] = [
      [{ title: 'x'.repeat(201) }, 'input.title', /at most 200 characters \(got 201\)/],
      [{ title: '   ' }, 'input.title', /must not be empty/],
      [{ title: 'two\nlines' }, 'input.title', /control characters/],
      [{ title: 'nul\u0000byte' }, 'input.title', /NUL/],
      [{ title: 'ok', description: 'd'.repeat(4001) }, 'input.description', /at most 4,000 characters/],
      [{ title: 'ok', description: 'bell\u0007' }, 'input.description', /control characters/],
      [{ title: 'ok', scheduledStart: iso(10), scheduledEnd: iso(9) }, 'input.scheduledEnd', /must be after the scheduled start/],
      [{ title: 'ok', scheduledStart: iso(10), scheduledEnd: iso(10) }, 'input.scheduledEnd', /must be after the scheduled start/],
      [{ title: 'ok', stopIds: Array.from({ length: 101 }, (_, i) => `S${i}`) }, 'input.stopIds', /at most 100 ids/],
      [{ title: 'ok', routeIds: [''] }, 'input.routeIds.0', /must not be empty/],
      [{ title: 'ok', team: 'x'.repeat(201) }, 'input.team', /at most 200/],
      [{ title: 'ok', scheduledStart: 'tomorrow' }, 'input.scheduledStart', /.*/],
    ];
    for (const [input, field, message] of creations) {
      const refused = errorOf(await create(tokens.operator, { collectivityId: 'chalons', ...input }));
      assert.equal(refused.code, 'BAD_USER_INPUT', `${JSON.stringify(input).slice(0, 80)}: ${refused.message}`);
      assert.ok(refused.field === field || refused.message.includes(field.replace('input.', '')), `${field}: ${JSON.stringify(refused)}`);
      assert.match(refused.message, message);
    }
    const changes: [Record<string, unknown>, string, RegExp][] = [
      [{ status: 'IN_PROGRESS' }, 'input', /.*/],
      [{ scheduledEnd: iso(4) }, 'input.scheduledEnd', /must be after the scheduled start/],
      [{ scheduledStart: iso(7) }, 'input.scheduledStart', /must be after the scheduled start/],
      [{ status: 'DONE', closeNotes: 'ok', minutesSpent: -1 }, 'input.minutesSpent', /0 to 100,000 \(got -1\)/],
      [{ status: 'DONE', closeNotes: 'ok', minutesSpent: 100_001 }, 'input.minutesSpent', /0 to 100,000/],
      [{ status: 'DONE', closeNotes: 'c'.repeat(4001), minutesSpent: 1 }, 'input.closeNotes', /at most 4,000/],
      [{ closeNotes: 'early' }, 'input.closeNotes', /at close-out/],
      [{ minutesSpent: 3 }, 'input.minutesSpent', /at close-out/],
      [{ note: 'n\u0000' }, 'input.note', /NUL/],
      [{}, 'input', /must change at least one field/],
      [{ status: 'PLANNED' }, 'input.status', /does not move back to PLANNED/],
    ];
    for (const [input, field, message] of changes) {
      if (field === 'input') continue;
      const refused = errorOf(await update(tokens.operator, { id: order.id, ...input }));
      assert.deepEqual([refused.code, refused.field], ['BAD_USER_INPUT', field], `${JSON.stringify(input).slice(0, 80)}: ${refused.message}`);
      assert.match(refused.message, message);
    }
    const nothing = errorOf(await update(tokens.operator, { id: order.id }));
    assert.deepEqual([nothing.code, nothing.field], ['BAD_USER_INPUT', 'input']);
    // 1e309 is Infinity, 1.5 is not an Int: refused before any resolver runs.
    const literal = await gql(hub.gatewayUrl, `mutation { updateIntervention(input: { id: "${order.id}", status: DONE, closeNotes: "x", minutesSpent: 1e309 }) { id } }`, { token: tokens.operator });
    assert.deepEqual([errorOf(literal).code, errorOf(literal).field], ['GRAPHQL_VALIDATION_FAILED', 'input.minutesSpent'], JSON.stringify(literal.errors));
    // The same in a variable, as raw JSON (JSON.stringify would turn Infinity into null).
    const raw = await fetch(hub.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.operator}` },
      body: `{"query":"mutation ($m: Int) { updateIntervention(input: { id: \\"${order.id}\\", status: DONE, closeNotes: \\"x\\", minutesSpent: $m }) { id } }","variables":{"m":1e309}}`,
    });
    const variable = (await raw.json()) as GraphQLResponse;
    assert.equal(variable.data?.updateIntervention ?? null, null);
    assert.match(errorOf(variable).message, /1e309|Infinity|minutesSpent|\bm\b/, JSON.stringify(variable.errors));
    assert.equal(errorOf(variable).code, 'BAD_USER_INPUT', JSON.stringify(variable.errors));
    const fractional = await update(tokens.operator, { id: order.id, status: 'DONE', closeNotes: 'x', minutesSpent: 1.5 });
    assert.match(errorOf(fractional).message, /minutesSpent/);
    const unknown = errorOf(await update(tokens.operator, { id: '999999999', status: 'CANCELLED' }));
    assert.deepEqual([unknown.code, unknown.field], ['NOT_FOUND', 'input.id']);
    const garbage = errorOf(await update(tokens.operator, { id: 'drop table', status: 'CANCELLED' }));
    assert.deepEqual([garbage.code, garbage.field], ['NOT_FOUND', 'input.id']);
    assert.deepEqual(await counts(), before);
    const unchanged = ok(await call(ONE, tokens.operator, { id: order.id })).intervention;
    assert.deepEqual([unchanged.status, unchanged.closeNotes, unchanged.minutesSpent, unchanged.scheduledEnd], ['ASSIGNED', null, null, order.scheduledEnd]);
  });
});

describe('the allowed moves and who makes them', () => {
  it('refuses the moves the lifecycle does not have, naming from and to', async () => {
    const planned = ok(await create(tokens.operator, { collectivityId: 'chalons', title: 'Bench' })).createIntervention;
    const refusals: [string, Record<string, unknown>, RegExp][] = [
      [planned.id, { status: 'IN_PROGRESS' }, /from PLANNED to IN_PROGRESS \(allowed from PLANNED: ASSIGNED, CANCELLED\)/],
      [planned.id, { status: 'DONE', closeNotes: 'x', minutesSpent: 1 }, /from PLANNED to DONE/],
      [planned.id, { status: 'ASSIGNED' }, /assigned to an agent or a team: give assignee or team/],
    ];
    for (const [id, input, message] of refusals) {
      const refused = errorOf(await update(tokens.operator, { id, ...input }));
      assert.deepEqual([refused.code, refused.field], ['BAD_USER_INPUT', 'input.status']);
      assert.match(refused.message, message);
    }
    ok(await update(tokens.operator, { id: planned.id, assignee: 'agent-alice', status: 'ASSIGNED' }));
    const backwards = errorOf(await update(tokens.operator, { id: planned.id, status: 'ASSIGNED' }));
    assert.match(backwards.message, /from ASSIGNED to ASSIGNED/);
    ok(await update(tokens.alice, { id: planned.id, status: 'IN_PROGRESS' }));
    ok(await update(tokens.alice, { id: planned.id, status: 'DONE', closeNotes: 'Bench fixed', minutesSpent: 25 }));
    for (const status of ['IN_PROGRESS', 'ASSIGNED', 'CANCELLED']) {
      const refused = errorOf(await update(tokens.operator, { id: planned.id, status }));
      assert.deepEqual([refused.code, refused.field], ['BAD_USER_INPUT', 'input.status']);
      assert.match(refused.message, new RegExp(`from DONE to ${status} \\(allowed from DONE: none, it is final\\)`));
    }
    const reassignDone = errorOf(await update(tokens.operator, { id: planned.id, assignee: 'agent-bob' }));
    assert.deepEqual([reassignDone.code, reassignDone.field], ['BAD_USER_INPUT', 'input.assignee']);
    const cancelled = ok(await create(tokens.operator, { collectivityId: 'chalons', title: 'Sign' })).createIntervention;
    ok(await update(tokens.operator, { id: cancelled.id, status: 'CANCELLED' }));
    assert.match(errorOf(await update(tokens.operator, { id: cancelled.id, status: 'ASSIGNED', assignee: 'agent-bob' })).message, /CANCELLED/);
  });

  it('lets the assigned agent only start and close out, and refuses another agent', async () => {
    const order = ok(await create(tokens.operator, { collectivityId: 'chalons', title: 'Bollard', assignee: 'agent-alice' })).createIntervention;
    const before = await counts();
    const forbiddenCases: [string, Record<string, unknown>, string][] = [
      [tokens.alice, { status: 'CANCELLED' }, 'input.status'],
      [tokens.alice, { assignee: 'agent-bob' }, 'input.assignee'],
      [tokens.alice, { team: 'Équipe nord' }, 'input.team'],
      [tokens.alice, { scheduledStart: iso(1) }, 'input.scheduledStart'],
      [tokens.bob, { status: 'IN_PROGRESS' }, 'input.id'],
      [tokens.bob, { note: 'hello' }, 'input.id'],
      [tokens.operatorFagnieres, { status: 'CANCELLED' }, 'input.id'],
      [tokens.citizen, { status: 'IN_PROGRESS' }, 'input.id'],
    ];
    for (const [who, input, field] of forbiddenCases) {
      const refused = errorOf(await update(who, { id: order.id, ...input }));
      assert.deepEqual([refused.code, refused.field], ['FORBIDDEN', field], JSON.stringify(input));
    }
    assert.match(errorOf(await update(tokens.bob, { id: order.id, status: 'IN_PROGRESS' })).message, /not assigned to you/);
    assert.equal(errorOf(await update(undefined, { id: order.id, status: 'IN_PROGRESS' })).code, 'UNAUTHENTICATED');
    assert.deepEqual(await counts(), before);

    // Reassigned to Bob: Alice loses it, Bob may now start it.
    ok(await update(tokens.operator, { id: order.id, assignee: 'agent-bob', note: 'Alice is on leave' }));
    assert.equal(ok(await call(ONE, tokens.alice, { id: order.id })).intervention, null);
    assert.equal(errorOf(await update(tokens.alice, { id: order.id, status: 'IN_PROGRESS' })).code, 'FORBIDDEN');
    const started = ok(await update(tokens.bob, { id: order.id, status: 'IN_PROGRESS' })).updateIntervention;
    assert.deepEqual(started.history.map((h: any) => [h.action, h.actor, h.note]), [
      ['CREATED', 'test-operator-chalons', 'planned'],
      ['ASSIGNED', 'test-operator-chalons', 'Alice is on leave'],
      ['STARTED', 'agent-bob', null],
    ]);
  });

  it('serialises an agent’s close-out against an operator’s cancellation: exactly one wins', async () => {
    for (let round = 0; round < 5; round++) {
      const order = ok(await create(tokens.operator, { collectivityId: 'chalons', title: `Race ${round}`, assignee: 'agent-alice' })).createIntervention;
      ok(await update(tokens.alice, { id: order.id, status: 'IN_PROGRESS' }));
      const [closing, cancelling] = await Promise.all([
        sleep(Math.random() * 4).then(() => update(tokens.alice, { id: order.id, status: 'DONE', closeNotes: 'done', minutesSpent: 10 })),
        sleep(Math.random() * 4).then(() => update(tokens.operator, { id: order.id, status: 'CANCELLED' })),
      ]);
      const winners = [closing, cancelling].filter((r) => !r.errors);
      assert.equal(winners.length, 1, `round ${round}: ${JSON.stringify([closing.errors, cancelling.errors])}`);
      const loser = [closing, cancelling].find((r) => r.errors)!;
      assert.deepEqual([errorOf(loser).code, errorOf(loser).field], ['BAD_USER_INPUT', 'input.status']);
      const final = ok(await call(ONE, tokens.operator, { id: order.id })).intervention;
      assert.equal(final.status, winners[0] === closing ? 'DONE' : 'CANCELLED');
      assert.deepEqual(final.history.map((h: any) => h.action), ['CREATED', 'STARTED', winners[0] === closing ? 'CLOSED' : 'CANCELLED']);
    }
  });
});

describe('who sees and creates what: every role in every collectivity', () => {
  const matrix: { id: string; collectivityId: string; assignee: string | null; equipmentId: string }[] = [];
  const subOf = (role: Role, collectivityId: string) => `m-${role}-${collectivityId}`;

  before(async () => {
    // In each collectivity: one work order of the matrix's agent there, one of another agent, one of a team.
    for (const collectivityId of COLLECTIVITY_IDS) {
      const dispatcher = await tokenFor(hub.config, ['operator'], [collectivityId]);
      for (const assignment of [{ assignee: subOf('agent', collectivityId) }, { assignee: 'someone-else' }, { team: 'Équipe' }]) {
        const place = await asset(collectivityId, collectivityId === 'chalons-agglo' ? 'BUS_STOP' : 'LIGHT_POINT');
        const order = ok(await create(dispatcher, { collectivityId, equipmentId: place.id, title: 'Matrix', ...assignment })).createIntervention;
        matrix.push({ id: order.id, collectivityId, assignee: ('assignee' in assignment ? assignment.assignee : null) ?? null, equipmentId: place.id });
      }
    }
  });

  const expectedFor = (role: Role, collectivityId: string) =>
    matrix
      .filter((m) => m.collectivityId === collectivityId && (role === 'operator' || role === 'admin' || (role === 'agent' && m.assignee === subOf(role, collectivityId))))
      .map((m) => m.id);

  it('lists, finds by id and under the asset exactly the work orders of the caller’s collectivities (an agent his own)', async () => {
    const ids = matrix.map((m) => m.id);
    const equipmentIds = matrix.map((m) => m.equipmentId);
    for (const role of ROLES) {
      for (const collectivityId of COLLECTIVITY_IDS) {
        const who = await token(subOf(role, collectivityId), [role], [collectivityId]);
        const expected = expectedFor(role, collectivityId).sort();
        const listed = await call(`{ interventions(first: 1000) { totalCount edges { node { id collectivity { id } assignee } } } }`, who);
        if (role === 'agent' || role === 'operator' || role === 'admin') {
          const data = ok(listed).interventions;
          for (const { node } of data.edges) {
            assert.equal(node.collectivity.id, collectivityId, `${role}@${collectivityId} sees ${node.id}`);
            if (role === 'agent') assert.equal(node.assignee, subOf(role, collectivityId));
          }
          assert.deepEqual(data.edges.map((e: any) => e.node.id).filter((id: string) => ids.includes(id)).sort(), expected, `${role}@${collectivityId}`);
          assert.equal(data.totalCount, data.edges.length);
        } else {
          assert.equal(errorOf(listed).code, 'FORBIDDEN', `${role}@${collectivityId}`);
        }
        const byId = ok(await call(`{ ${ids.map((id, i) => `i${i}: intervention(id: "${id}") { id }`).join(' ')} }`, who));
        assert.deepEqual(Object.values(byId).filter(Boolean).map((v: any) => v.id).sort(), expected, `intervention(id) for ${role}@${collectivityId}`);
        const underAssets = ok(
          await call(`{ ${equipmentIds.map((id, i) => `e${i}: equipment(id: "${id}") { interventions { totalCount edges { node { id } } } }`).join(' ')} }`, who),
        );
        const seen = Object.values(underAssets).flatMap((e: any) => e.interventions.edges.map((edge: any) => edge.node.id)).sort();
        assert.deepEqual(seen, expected, `Equipment.interventions for ${role}@${collectivityId}`);
        assert.equal(Object.values(underAssets).reduce((n: number, e: any) => n + e.interventions.totalCount, 0), expected.length);
      }
    }
    const anonymous = await call(`{ interventions { totalCount } }`, undefined);
    assert.equal(errorOf(anonymous).code, 'UNAUTHENTICATED');
    assert.equal(ok(await call(ONE, undefined, { id: matrix[0].id })).intervention, null);
  });

  it('filters: a collectivity the caller does not act in is FORBIDDEN naming it; status, origin, assignee', async () => {
    const operator = await tokenFor(hub.config, ['operator'], ['fagnieres']);
    const refused = errorOf(await call(`{ interventions(filter: { collectivityIds: ["fagnieres", "chalons"] }) { totalCount } }`, operator));
    assert.deepEqual([refused.code, refused.field], ['FORBIDDEN', 'filter.collectivityIds.1']);
    const mine = ok(await call(`{ interventions(filter: { collectivityIds: ["fagnieres"], assignee: "someone-else", origins: [PLANNED], status: [ASSIGNED] }) { edges { node { id } } } }`, operator));
    assert.deepEqual(mine.interventions.edges.map((e: any) => e.node.id), matrix.filter((m) => m.collectivityId === 'fagnieres' && m.assignee === 'someone-else').map((m) => m.id));
    // Pages: newest first, each once, as many as the total (the seed's work orders included).
    const all: string[] = [];
    let cursor: string | null = null;
    let total = 0;
    for (;;) {
      const page: any = ok(
        await call(`query ($after: String) { interventions(first: 7, after: $after, filter: { collectivityIds: ["fagnieres"] }) { totalCount pageInfo { hasNextPage endCursor } edges { node { id createdAt } } } }`, operator, { after: cursor }),
      ).interventions;
      total = page.totalCount;
      all.push(...page.edges.map((e: any) => e.node.id));
      if (!page.pageInfo.hasNextPage) break;
      cursor = page.pageInfo.endCursor;
    }
    assert.equal(all.length, total);
    assert.equal(new Set(all).size, total);
    assert.deepEqual(all.filter((id) => matrix.some((m) => m.id === id)), matrix.filter((m) => m.collectivityId === 'fagnieres').map((m) => m.id).reverse());
    assert.equal(errorOf(await call(`{ interventions(after: "bm9wZQ") { totalCount } }`, operator)).field, 'after');
  });

  it('creates planned works only as an operator or admin of that very collectivity', async () => {
    for (const role of ROLES) {
      for (const collectivityId of COLLECTIVITY_IDS) {
        const who = await token(subOf(role, collectivityId), [role], [collectivityId]);
        for (const target of COLLECTIVITY_IDS) {
          const answer = await create(who, { collectivityId: target, title: `by ${role}@${collectivityId}` });
          if ((role === 'operator' || role === 'admin') && collectivityId === target) {
            assert.equal(ok(answer).createIntervention.collectivity.id, target);
          } else {
            assert.deepEqual([errorOf(answer).code, errorOf(answer).field], ['FORBIDDEN', 'input.collectivityId'], `${role}@${collectivityId} → ${target}`);
          }
        }
      }
    }
  });

  it('lets only the assigned agent of the collectivity and its dispatchers start a work order', async () => {
    const targets: Record<string, string> = {};
    const freshOf = async (target: (typeof matrix)[number]) =>
      ok(
        await create(await tokenFor(hub.config, ['operator'], [target.collectivityId]), {
          collectivityId: target.collectivityId,
          title: 'Start',
          ...(target.assignee ? { assignee: target.assignee } : { team: 'Équipe' }),
        }),
      ).createIntervention.id as string;
    for (const role of ROLES) {
      for (const collectivityId of COLLECTIVITY_IDS) {
        const who = await token(subOf(role, collectivityId), [role], [collectivityId]);
        // Its own collectivity's three work orders and one of the next collectivity, at once (each its own row).
        const next = COLLECTIVITY_IDS[(COLLECTIVITY_IDS.indexOf(collectivityId) + 1) % COLLECTIVITY_IDS.length];
        const targetsOf = [...matrix.filter((m) => m.collectivityId === collectivityId), matrix.find((m) => m.collectivityId === next)!];
        await Promise.all(
          targetsOf.map(async (target) => {
            // A refused change writes nothing: the same work order serves until one is allowed.
            const fresh = (targets[target.id] ??= await freshOf(target));
            const answer = await update(who, { id: fresh, status: 'IN_PROGRESS' });
            const allowed =
              collectivityId === target.collectivityId && (role === 'operator' || role === 'admin' || (role === 'agent' && target.assignee === subOf(role, collectivityId)));
            const what = `${role}@${collectivityId} on ${target.collectivityId}/${target.assignee}`;
            if (allowed) {
              assert.equal(ok(answer).updateIntervention.status, 'IN_PROGRESS', what);
              delete targets[target.id];
            } else {
              assert.deepEqual([errorOf(answer).code, errorOf(answer).field], ['FORBIDDEN', 'input.id'], what);
            }
          }),
        );
      }
    }
  });
});
