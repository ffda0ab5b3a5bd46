/**
 * The lifecycle (issue #8, "Lifecycle"): every allowed and every forbidden transition from every
 * status, the history of each change (who, when, note), the dates and version each move sets,
 * who may move a ticket, stale `expectedVersion` (and two operators racing on one version),
 * notes, and the service-level breach flags (and the `breached` filter).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { transitionTicket } from '../src/ticket-lifecycle.js';
import { TICKET_STATUSES, TRANSITIONS, type TicketStatus } from '../src/types.js';
import { startTicketsHub, type TicketsHub } from './fixtures.js';

let t: TicketsHub;
let operator: string;
let alice: string;
let n = 0;

const MOVE = `mutation Move($id: ID!, $to: TicketStatus!, $note: String, $v: Int) {
  transitionTicket(input: { ticketId: $id, to: $to, note: $note, expectedVersion: $v }) {
    id status version acknowledgedAt resolvedAt closedAt updatedAt
    history { at action fromStatus toStatus actor note }
  }
}`;

/** The path from NEW to each status (DUPLICATE is reached by reporting twice). */
const PATH: Record<TicketStatus, TicketStatus[]> = {
  NEW: [],
  ACKNOWLEDGED: ['ACKNOWLEDGED'],
  ASSIGNED: ['ACKNOWLEDGED', 'ASSIGNED'],
  IN_PROGRESS: ['ACKNOWLEDGED', 'IN_PROGRESS'],
  RESOLVED: ['ACKNOWLEDGED', 'RESOLVED'],
  CLOSED: ['ACKNOWLEDGED', 'RESOLVED', 'CLOSED'],
  REJECTED: ['REJECTED'],
  DUPLICATE: [],
};

async function move(id: string, to: TicketStatus, options: { note?: string; v?: number; token?: string } = {}) {
  return t.gql(MOVE, { variables: { id, to, note: options.note ?? (to === 'REJECTED' ? 'not ours' : null), v: options.v ?? null }, token: options.token ?? operator });
}

/** A ticket of Châlons (reported by alice) brought to `status`. */
async function ticketIn(status: TicketStatus): Promise<string> {
  const place = await t.spot('chalons');
  const reported = await t.reportOk({ category: 'TAG', location: place, description: `ticket ${++n}` }, alice);
  if (status === 'DUPLICATE') {
    const duplicate = await t.reportOk({ category: 'TAG', location: place, description: `duplicate ${n}` }, await t.citizen('citizen-dup'));
    assert.equal(duplicate.ticket.status, 'DUPLICATE');
    return duplicate.ticket.id;
  }
  for (const to of PATH[status]) {
    const answer = await move(reported.ticket.id, to);
    assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
  }
  return reported.ticket.id;
}

before(async () => {
  t = await startTicketsHub();
  operator = await t.token(['operator'], ['chalons']);
  alice = await t.citizen('citizen-alice');
});
after(async () => {
  await t?.close();
});

describe('transitions', () => {
  for (const from of TICKET_STATUSES) {
    it(`from ${from}: allows exactly ${TRANSITIONS[from].join(', ') || 'nothing'}`, async () => {
      // Every forbidden move on one ticket: refused naming `to`, from and to, nothing written.
      const id = await ticketIn(from);
      const before = await t.counts();
      for (const to of TICKET_STATUSES.filter((s) => !TRANSITIONS[from].includes(s))) {
        const answer = await move(id, to);
        const error = answer.errors?.[0];
        assert.deepEqual([error?.extensions?.code, error?.extensions?.field], ['BAD_USER_INPUT', 'to'], `${from} → ${to}: ${JSON.stringify(answer)}`);
        assert.match(error!.message, new RegExp(`^to: ticket ${id} cannot move from ${from} to ${to}; `));
        assert.match(error!.message, TRANSITIONS[from].length ? new RegExp(`it can move to ${TRANSITIONS[from].join(', ')}$`) : new RegExp(`${from} is final$`));
      }
      assert.deepEqual(await t.counts(), before, 'nothing written by forbidden moves');

      // Each allowed move, on a ticket of its own: status, version, history, dates.
      for (const to of TRANSITIONS[from]) {
        const ticketId = await ticketIn(from);
        const current = await t.ok(`query($id: ID!) { ticket(id: $id) { version acknowledgedAt resolvedAt closedAt history { action } } }`, { variables: { id: ticketId }, token: operator });
        const startedAt = Date.now();
        const answer = await move(ticketId, to, { note: `moving to ${to}`, v: current.ticket.version });
        assert.equal(answer.errors, undefined, `${from} → ${to}: ${JSON.stringify(answer.errors)}`);
        const moved = answer.data.transitionTicket;
        assert.equal(moved.status, to);
        assert.equal(moved.version, current.ticket.version + 1);
        const last = moved.history.at(-1);
        assert.deepEqual(
          { action: last.action, fromStatus: last.fromStatus, toStatus: last.toStatus, actor: last.actor, note: last.note },
          { action: 'TRANSITION', fromStatus: from, toStatus: to, actor: 'test-operator-chalons', note: `moving to ${to}` },
        );
        assert.ok(Math.abs(Date.parse(last.at) - startedAt) < 5_000, 'when');
        assert.equal(moved.history.length, current.ticket.history.length + 1);
        assert.ok(moved.acknowledgedAt, 'acknowledged once it leaves NEW');
        if (to === 'RESOLVED') assert.ok(moved.resolvedAt);
        if (from === 'RESOLVED' && to === 'IN_PROGRESS') assert.equal(moved.resolvedAt, null, 'reopened: no longer resolved');
        if (to === 'CLOSED') assert.ok(moved.resolvedAt && moved.closedAt);
        if (to === 'REJECTED') assert.ok(moved.closedAt);
        if (!['CLOSED', 'REJECTED'].includes(to)) assert.equal(moved.closedAt, null);
        if (from !== 'NEW') assert.equal(moved.acknowledgedAt, current.ticket.acknowledgedAt, 'acknowledged keeps its first date');
      }
    });
  }

  it('walks the whole life new → acknowledged → assigned → in progress → resolved → closed, with the history of every change', async () => {
    const id = await ticketIn('NEW');
    const agent = await t.tokenAs('agent-jo', ['agent'], ['chalons']);
    for (const [to, token] of [['ACKNOWLEDGED', operator], ['ASSIGNED', operator], ['IN_PROGRESS', agent], ['RESOLVED', agent], ['CLOSED', operator]] as const) {
      const answer = await move(id, to, { token, note: `${to.toLowerCase()} by hand` });
      assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    }
    const { ticket } = await t.ok(`query($id: ID!) { ticket(id: $id) { status version history { action fromStatus toStatus actor note } } }`, { variables: { id }, token: operator });
    assert.equal(ticket.status, 'CLOSED');
    assert.equal(ticket.version, 6);
    assert.deepEqual(
      ticket.history.map((h: any) => [h.action, h.fromStatus, h.toStatus, h.actor, h.note]),
      [
        ['CREATED', null, 'NEW', 'citizen-alice', null],
        ['TRANSITION', 'NEW', 'ACKNOWLEDGED', 'test-operator-chalons', 'acknowledged by hand'],
        ['TRANSITION', 'ACKNOWLEDGED', 'ASSIGNED', 'test-operator-chalons', 'assigned by hand'],
        ['TRANSITION', 'ASSIGNED', 'IN_PROGRESS', 'agent-jo', 'in_progress by hand'],
        ['TRANSITION', 'IN_PROGRESS', 'RESOLVED', 'agent-jo', 'resolved by hand'],
        ['TRANSITION', 'RESOLVED', 'CLOSED', 'test-operator-chalons', 'closed by hand'],
      ],
    );
    const { rows } = await t.pool.query(`SELECT actor_roles FROM ticket_history WHERE ticket_id = $1 ORDER BY id`, [id]);
    assert.deepEqual(rows.map((r) => r.actor_roles), [['citizen'], ['operator'], ['operator'], ['agent'], ['agent'], ['operator']]);
  });
});

describe('refusals', () => {
  it('requires a note to reject, and refuses bad notes, unknown tickets, and writes nothing', async () => {
    const id = await ticketIn('NEW');
    const before = await t.counts();
    const cases: [Record<string, unknown>, string, string, RegExp][] = [
      [{ id, to: 'REJECTED', note: null }, 'BAD_USER_INPUT', 'note', /^note: is required/],
      [{ id, to: 'REJECTED', note: '   ' }, 'BAD_USER_INPUT', 'note', /^note: must not be empty/],
      [{ id, to: 'ACKNOWLEDGED', note: 'n'.repeat(4001) }, 'BAD_USER_INPUT', 'note', /^note: must be at most 4,000 characters/],
      [{ id, to: 'ACKNOWLEDGED', note: 'esc\u001b[0m' }, 'BAD_USER_INPUT', 'note', /control characters/],
      [{ id: '999999', to: 'ACKNOWLEDGED', note: null }, 'NOT_FOUND', 'ticketId', /no ticket with id 999999/],
      [{ id: 'abc', to: 'ACKNOWLEDGED', note: null }, 'NOT_FOUND', 'ticketId', /no ticket with id "abc"/],
    ];
    for (const [variables, code, field, message] of cases) {
      const answer = await t.gql(MOVE, { variables: { v: null, ...variables }, token: operator });
      const error = answer.errors?.[0];
      assert.deepEqual([error?.extensions?.code, error?.extensions?.field], [code, field], JSON.stringify(answer));
      assert.match(error!.message, message);
    }
    const nul = await t.gql(MOVE, { variables: { id, to: 'ACKNOWLEDGED', note: 'a\u0000b', v: null }, token: operator });
    assert.equal(nul.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    assert.match(nul.errors![0].message, /note/);
    assert.deepEqual(await t.counts(), before);
  });

  it('refuses a stale expectedVersion, naming the current one; two operators racing on one version: one wins', async () => {
    const id = await ticketIn('ACKNOWLEDGED');
    const stale = await move(id, 'ASSIGNED', { v: 1 });
    assert.equal(stale.errors?.[0]?.extensions?.field, 'expectedVersion');
    assert.match(stale.errors![0].message, new RegExp(`^expectedVersion: is stale: ticket ${id} is at version 2 \\(last changed at .+\\), not 1; read it again$`));
    const other = await t.tokenAs('operator-two', ['operator'], ['chalons']);
    const results = await Promise.all([
      (async () => {
        await sleep(Math.random() * 10);
        return move(id, 'ASSIGNED', { v: 2 });
      })(),
      (async () => {
        await sleep(Math.random() * 10);
        return move(id, 'IN_PROGRESS', { v: 2, token: other });
      })(),
    ]);
    const won = results.filter((r) => !r.errors);
    const lost = results.filter((r) => r.errors);
    assert.equal(won.length, 1, JSON.stringify(results));
    assert.equal(lost[0].errors![0].extensions!.field, 'expectedVersion');
    const { rows } = await t.pool.query(`SELECT count(*)::int AS n FROM ticket_history WHERE ticket_id = $1 AND action = 'TRANSITION'`, [id]);
    assert.equal(rows[0].n, 2, 'acknowledged, then exactly one of the racing moves');
  });

  it('lets staff of the collectivity move it, the reporter only reopen it; refuses everyone else', async () => {
    const id = await ticketIn('RESOLVED');
    const cases: [string | undefined, TicketStatus, string, string | undefined][] = [
      [undefined, 'CLOSED', 'UNAUTHENTICATED', undefined],
      [await t.citizen('citizen-bob'), 'IN_PROGRESS', 'FORBIDDEN', 'ticketId'],
      [await t.token(['partner'], ['chalons']), 'CLOSED', 'FORBIDDEN', 'ticketId'],
      [await t.token(['operator'], ['fagnieres']), 'CLOSED', 'FORBIDDEN', 'ticketId'],
      [await t.token(['admin'], ['chalons-agglo']), 'CLOSED', 'FORBIDDEN', 'ticketId'],
      [alice, 'CLOSED', 'FORBIDDEN', 'to'],
    ];
    const before = await t.counts();
    for (const [token, to, code, field] of cases) {
      const answer = await t.gql(MOVE, { variables: { id, to, note: null, v: null }, token });
      assert.deepEqual([answer.errors?.[0]?.extensions?.code, answer.errors?.[0]?.extensions?.field], [code, field], JSON.stringify(answer));
    }
    assert.deepEqual(await t.counts(), before);
    // The reporter reopens; an agent, an admin of the collectivity move it on.
    const reopened = await move(id, 'IN_PROGRESS', { token: alice, note: 'still broken' });
    assert.equal(reopened.data?.transitionTicket.status, 'IN_PROGRESS', JSON.stringify(reopened.errors));
    assert.equal(reopened.data.transitionTicket.history.at(-1).actor, null, 'actors are shown to staff only');
    const agent = await t.token(['agent'], ['chalons']);
    assert.equal((await move(id, 'RESOLVED', { token: agent })).data?.transitionTicket.status, 'RESOLVED');
    assert.equal((await move(id, 'CLOSED', { token: await t.token(['admin'], ['chalons']) })).data?.transitionTicket.status, 'CLOSED');
    // Once CLOSED even the reporter cannot reopen.
    const late = await move(id, 'IN_PROGRESS', { token: alice });
    assert.equal(late.errors?.[0]?.extensions?.field, 'to');
  });

  it('transitionTicket (as interventions call it) refuses in its transaction, which the caller rolls back', async () => {
    const id = await ticketIn('NEW');
    const before = await t.counts();
    await assert.rejects(
      t.resources.inTransaction((client) => transitionTicket(client, t.resources, { ticketId: id, to: 'ASSIGNED', actor: { sub: 'interventions', roles: [] } })),
      /to: ticket \d+ cannot move from NEW to ASSIGNED; from NEW it can move to ACKNOWLEDGED, REJECTED/,
    );
    assert.deepEqual(await t.counts(), before);
    const row = await t.resources.inTransaction(async (client) => {
      await transitionTicket(client, t.resources, { ticketId: id, to: 'ACKNOWLEDGED', actor: { sub: 'system', roles: [] } });
      return transitionTicket(client, t.resources, { ticketId: id, to: 'ASSIGNED', actor: { sub: 'system', roles: [] }, note: 'intervention 1' });
    });
    assert.deepEqual([row.status, row.version], ['ASSIGNED', 3]);
  });
});

describe('notes', () => {
  it('adds a note to the history (staff of the collectivity only), without a version bump', async () => {
    const id = await ticketIn('ACKNOWLEDGED');
    const NOTE = `mutation($id: ID!, $note: String!) { addTicketNote(ticketId: $id, note: $note) { version history { action fromStatus toStatus actor note } } }`;
    const added = await t.ok(NOTE, { variables: { id, note: '  called the reporter  ' }, token: operator });
    assert.equal(added.addTicketNote.version, 2);
    assert.deepEqual(added.addTicketNote.history.at(-1), { action: 'NOTE', fromStatus: null, toStatus: null, actor: 'test-operator-chalons', note: 'called the reporter' });
    for (const [token, code] of [[alice, 'FORBIDDEN'], [await t.token(['operator'], ['fagnieres']), 'FORBIDDEN'], [undefined, 'UNAUTHENTICATED']] as const) {
      const answer = await t.gql(NOTE, { variables: { id, note: 'x' }, token });
      assert.equal(answer.errors?.[0]?.extensions?.code, code);
    }
    const empty = await t.gql(NOTE, { variables: { id, note: '' }, token: operator });
    assert.deepEqual([empty.errors?.[0]?.extensions?.field, empty.errors?.[0]?.message], ['note', 'note: must not be empty']);
  });
});

describe('service levels', () => {
  const LEVEL = `query($id: ID!) { ticket(id: $id) { status serviceLevel { acknowledgeDueAt resolveDueAt acknowledgeBreached resolveBreached } } }`;
  const level = async (id: string) => (await t.ok(LEVEL, { variables: { id } })).ticket.serviceLevel;

  it('flags an unacknowledged ticket past its deadline, a late acknowledgement, a late resolution, and not an on-time one', async () => {
    // Past its acknowledge deadline, still NEW.
    const late = await ticketIn('NEW');
    await t.pool.query(`UPDATE tickets SET ack_due_at = now() - interval '1 minute' WHERE id = $1`, [late]);
    assert.deepEqual([(await level(late)).acknowledgeBreached, (await level(late)).resolveBreached], [true, false]);
    // Acknowledged after the deadline: stays breached.
    await move(late, 'ACKNOWLEDGED');
    assert.equal((await level(late)).acknowledgeBreached, true);

    // Acknowledged in time, then the deadline passes: not breached.
    const onTime = await ticketIn('ACKNOWLEDGED');
    await t.pool.query(`UPDATE tickets SET ack_due_at = now() - interval '1 minute', acknowledged_at = now() - interval '61 seconds' WHERE id = $1`, [onTime]);
    assert.deepEqual(await level(onTime).then((l) => [l.acknowledgeBreached, l.resolveBreached]), [false, false]);

    // Unresolved past its resolve deadline; resolved late stays breached; resolved in time is not.
    const slow = await ticketIn('IN_PROGRESS');
    await t.pool.query(`UPDATE tickets SET resolve_due_at = now() - interval '1 minute' WHERE id = $1`, [slow]);
    assert.equal((await level(slow)).resolveBreached, true);
    await move(slow, 'RESOLVED');
    assert.equal((await level(slow)).resolveBreached, true);
    const fast = await ticketIn('RESOLVED');
    await t.pool.query(`UPDATE tickets SET resolve_due_at = resolved_at + interval '1 second' WHERE id = $1`, [fast]);
    assert.equal((await level(fast)).resolveBreached, false);

    // A rejection ends the clock at its date; a duplicate has no service level of its own.
    const rejected = await ticketIn('REJECTED');
    await t.pool.query(`UPDATE tickets SET resolve_due_at = closed_at + interval '1 second' WHERE id = $1`, [rejected]);
    assert.equal((await level(rejected)).resolveBreached, false);
    const duplicate = await ticketIn('DUPLICATE');
    await t.pool.query(`UPDATE tickets SET ack_due_at = now() - interval '1 day', resolve_due_at = now() - interval '1 day' WHERE id = $1`, [duplicate]);
    assert.deepEqual(await level(duplicate).then((l) => [l.acknowledgeBreached, l.resolveBreached]), [false, false]);

    // The filter lists exactly the breached ones.
    const listed = await t.ok(`{ breached: tickets(filter: { breached: true }, first: 1000) { edges { node { id } } } all: tickets(first: 1000) { edges { node { id serviceLevel { acknowledgeBreached resolveBreached } } } } }`);
    const expected = listed.all.edges.filter((e: any) => e.node.serviceLevel.acknowledgeBreached || e.node.serviceLevel.resolveBreached).map((e: any) => e.node.id);
    assert.deepEqual(listed.breached.edges.map((e: any) => e.node.id), expected);
    assert.ok(expected.includes(late) && expected.includes(slow) && !expected.includes(fast) && !expected.includes(duplicate) && !expected.includes(onTime));
    const notBreached = await t.ok(`{ tickets(filter: { breached: false }, first: 1000) { totalCount } }`);
    assert.equal(notBreached.tickets.totalCount, listed.all.edges.length - expected.length);
  });
});
