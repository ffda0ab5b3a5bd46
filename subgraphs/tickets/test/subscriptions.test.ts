/**
 * The streams (issue #8, "Federation"): `ticketChanged` for agents, operators and admins, only
 * their collectivities' tickets; `myTicketChanged` for the reporter, his own tickets and the
 * originals his duplicates are attached to; both resumable with `after` (an event id), losing and
 * repeating nothing. Through the gateway's graphql-ws.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { subscriptions } from '@connecte/testkit';
import { startTicketsHub, type TicketsHub } from './fixtures.js';

let t: TicketsHub;

const CHANGED = (args: string) => `subscription { ticketChanged${args} { cursor action ticket { id status collectivity { id } description } } }`;
const MINE = (args = '') => `subscription { myTicketChanged${args} { cursor action ticket { id status duplicateOf { id } description } } }`;

/** The bus's newest event id now: subscribing after it sees exactly what follows. */
const position = async () => (await t.pool.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM events`)).rows[0].id;
const summary = (messages: any[], key: string) => messages.map((m) => (m.errors ? m.errors : [m.data[key].action, m.data[key].ticket.id]));

const MOVE = `mutation($id: ID!, $to: TicketStatus!) { transitionTicket(input: { ticketId: $id, to: $to }) { status } }`;

before(async () => {
  t = await startTicketsHub();
});
after(async () => {
  await t?.close();
});

describe('ticketChanged', () => {
  it('refuses the public, callers without a staff role, collectivities not theirs, and a bad cursor', async () => {
    const subs = subscriptions(t.url);
    try {
      const cases: [string | undefined, string, string, string | undefined][] = [
        [undefined, '', 'UNAUTHENTICATED', undefined],
        [await t.citizen('citizen-alice'), '', 'FORBIDDEN', undefined],
        [await t.token(['partner'], ['chalons']), '', 'FORBIDDEN', undefined],
        [await t.token(['operator'], ['chalons']), '(filter: { collectivityIds: ["fagnieres"] })', 'FORBIDDEN', 'filter.collectivityIds.0'],
        [await t.token(['agent'], ['chalons', 'fagnieres']), '(filter: { collectivityIds: ["fagnieres", "chalons-agglo"] })', 'FORBIDDEN', 'filter.collectivityIds.1'],
        [await t.token(['agent'], ['chalons']), '(filter: { collectivityIds: [] })', 'BAD_USER_INPUT', 'filter.collectivityIds'],
        [await t.token(['agent'], ['chalons']), '(after: "12abc")', 'BAD_USER_INPUT', 'after'],
      ];
      for (const [token, args, code, field] of cases) {
        const [message] = await subs.subscribe(CHANGED(args), token).waitFor(1);
        assert.deepEqual([message.errors?.[0]?.extensions?.code, message.errors?.[0]?.extensions?.field], [code, field], `${args}: ${JSON.stringify(message)}`);
      }
      const [mine] = await subs.subscribe(MINE()).waitFor(1);
      assert.equal(mine.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    } finally {
      await subs.dispose();
    }
  });

  it('delivers each operator his collectivities’ changes only, with the filters, in order', async () => {
    const subs = subscriptions(t.url);
    try {
      const start = await position();
      const chalons = subs.subscribe(CHANGED(`(after: "${start}")`), await t.token(['operator'], ['chalons']));
      const fagnieres = subs.subscribe(CHANGED(`(after: "${start}")`), await t.token(['operator'], ['fagnieres']));
      const both = subs.subscribe(CHANGED(`(after: "${start}", filter: { collectivityIds: ["fagnieres"], categories: ["TAG"] })`), await t.token(['agent'], ['chalons', 'fagnieres']));
      const acknowledged = subs.subscribe(CHANGED(`(after: "${start}", filter: { status: [ACKNOWLEDGED] })`), await t.token(['admin'], ['chalons']));
      const agglo = subs.subscribe(CHANGED(`(after: "${start}")`), await t.token(['operator'], ['chalons-agglo']));

      const citizen = await t.citizen('citizen-alice');
      const a = await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: 'tag A' }, citizen);
      const b = await t.reportOk({ category: 'TAG', location: await t.spot('fagnieres'), description: 'tag B' }, citizen);
      const c = await t.reportOk({ category: 'POTHOLE', location: await t.spot('fagnieres'), description: 'hole C' }, citizen);
      await t.ok(MOVE, { variables: { id: a.ticket.id, to: 'ACKNOWLEDGED' }, token: await t.token(['operator'], ['chalons']) });
      const bin = await t.reportOk({ category: 'FULL_BIN', location: await t.spot('chalons'), description: 'bin' }, citizen);

      const [x, y] = [a.ticket.id, b.ticket.id];
      assert.deepEqual(summary(await chalons.waitFor(2), 'ticketChanged'), [['CREATED', x], ['TRANSITION', x]]);
      assert.deepEqual(summary(await fagnieres.waitFor(2), 'ticketChanged'), [['CREATED', y], ['CREATED', c.ticket.id]]);
      assert.deepEqual(summary(await both.waitFor(1), 'ticketChanged'), [['CREATED', y]]);
      assert.deepEqual(summary(await acknowledged.waitFor(1), 'ticketChanged'), [['TRANSITION', x]]);
      assert.deepEqual(summary(await agglo.waitFor(1), 'ticketChanged'), [['CREATED', bin.ticket.id]]);
      // Staff see the private part of their collectivity's tickets.
      assert.equal(chalons.received[0].data.ticketChanged.ticket.description, 'tag A');
      assert.equal(chalons.received[1].data.ticketChanged.ticket.status, 'ACKNOWLEDGED');
      // Nothing else arrives.
      await sleep(500);
      assert.deepEqual([chalons, fagnieres, both, acknowledged, agglo].map((s) => s.received.length), [2, 2, 1, 1, 1]);
      // Cursors increase.
      const cursors = chalons.received.map((m) => BigInt(m.data.ticketChanged.cursor));
      assert.ok(cursors[0] > BigInt(start) && cursors[1] > cursors[0]);
    } finally {
      await subs.dispose();
    }
  });

  it('resumes after a cursor: the same changes, none lost or repeated', async () => {
    const subs = subscriptions(t.url);
    try {
      const operator = await t.token(['operator'], ['saint-martin-sur-le-pre']);
      const start = await position();
      const live = subs.subscribe(CHANGED(`(after: "${start}")`), operator);
      const citizen = await t.citizen('citizen-resume');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await t.reportOk({ category: 'TAG', location: await t.spot('saintMartin') }, citizen)).ticket.id);
      for (const id of ids) await t.ok(MOVE, { variables: { id, to: 'ACKNOWLEDGED' }, token: operator });
      const all = (await live.waitFor(6)).map((m) => m.data.ticketChanged);
      assert.deepEqual(all.map((c) => [c.action, c.ticket.id]), [...ids.map((id) => ['CREATED', id]), ...ids.map((id) => ['TRANSITION', id])]);
      const resumed = subs.subscribe(CHANGED(`(after: "${all[1].cursor}")`), operator);
      const replay = (await resumed.waitFor(4)).map((m) => m.data.ticketChanged);
      assert.deepEqual(replay.map((c) => c.cursor), all.slice(2).map((c) => c.cursor));
      await sleep(300);
      assert.equal(resumed.received.length, 4);
    } finally {
      await subs.dispose();
    }
  });
});

describe('myTicketChanged', () => {
  it('follows the reporter’s own tickets and the original his duplicate is attached to; resumable', async () => {
    const subs = subscriptions(t.url);
    try {
      const alice = await t.citizen('citizen-ann');
      const bob = await t.citizen('citizen-ben');
      const carol = await t.citizen('citizen-cat');
      const operator = await t.token(['operator'], ['chalons']);
      const start = await position();
      const annStream = subs.subscribe(MINE(`(after: "${start}")`), alice);
      const benStream = subs.subscribe(MINE(`(after: "${start}")`), bob);

      const place = await t.spot('chalons');
      const original = await t.reportOk({ category: 'ILLEGAL_DUMPING', location: place, description: 'sofa on the pavement' }, alice);
      const duplicate = await t.reportOk({ category: 'ILLEGAL_DUMPING', location: place, description: 'a sofa again' }, bob);
      assert.equal(duplicate.ticket.status, 'DUPLICATE');
      await t.reportOk({ category: 'ILLEGAL_DUMPING', location: await t.spot('chalons'), description: 'unrelated' }, carol);
      await t.ok(MOVE, { variables: { id: original.ticket.id, to: 'ACKNOWLEDGED' }, token: operator });

      const [o, d] = [original.ticket.id, duplicate.ticket.id];
      const ann = await annStream.waitFor(3);
      assert.deepEqual(summary(ann, 'myTicketChanged'), [['CREATED', o], ['DUPLICATE_ATTACHED', o], ['TRANSITION', o]]);
      const ben = await benStream.waitFor(3);
      assert.deepEqual(summary(ben, 'myTicketChanged'), [['CREATED', d], ['DUPLICATE_ATTACHED', o], ['TRANSITION', o]]);
      // Ben sees his own ticket's description, not the original's (it is Ann's).
      assert.deepEqual(ben.map((m) => m.data.myTicketChanged.ticket.description), ['a sofa again', null, null]);
      assert.deepEqual(ben[0].data.myTicketChanged.ticket.duplicateOf, { id: o });
      assert.deepEqual(ann.map((m) => m.data.myTicketChanged.ticket.description), ['sofa on the pavement', 'sofa on the pavement', 'sofa on the pavement']);
      await sleep(500);
      assert.deepEqual([annStream.received.length, benStream.received.length], [3, 3], 'nothing of Carol’s');

      // Resume Ben's stream after his first change.
      const resumed = subs.subscribe(MINE(`(after: "${ben[0].data.myTicketChanged.cursor}")`), bob);
      const replay = await resumed.waitFor(2);
      assert.deepEqual(replay.map((m) => m.data.myTicketChanged.cursor), ben.slice(1).map((m) => m.data.myTicketChanged.cursor));
      // And live changes keep coming to the resumed stream.
      await t.ok(MOVE, { variables: { id: o, to: 'ASSIGNED' }, token: operator });
      assert.deepEqual(summary(await resumed.waitFor(3), 'myTicketChanged').at(-1), ['TRANSITION', o]);
    } finally {
      await subs.dispose();
    }
  });
});
