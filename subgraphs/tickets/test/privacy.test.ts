/**
 * Privacy (issue #8, "Privacy"): the reporter's identity and contact, the exact location, the
 * description and the linked asset are visible only to the reporter and to the agents,
 * operators and admins of the responsible collectivity; everyone else (the public, other
 * citizens, partners, staff of other collectivities) sees category, status, coarse location and
 * dates. Every staff read of reporter data is audited (who, when, which ticket, which fields),
 * in one insert per request. Also `myTickets`, `Equipment.tickets` through federation, and the
 * `near` filter on the coarse location for those who see only that.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Role } from '@connecte/shared/auth';
import { coarsePoint } from '../src/privacy.js';
import { east, north, startTicketsHub, type Place, type TicketsHub } from './fixtures.js';

let t: TicketsHub;
let alice: string;
let exact: Place;
let lampId: string;
let ticketId: string;
let anonymousId: string;
let fagnieresId: string;

const FULL = `query($id: ID!) { ticket(id: $id) {
  id status category { code } collectivity { id } service inseeCode source coarseLocation { type coordinates } location { type coordinates }
  address description reporter { accountId name email phone } equipment { id } alreadyKnown duplicateCount duplicateOf { id }
  serviceLevel { acknowledgeBreached } history { action actor note } createdAt updatedAt acknowledgedAt resolvedAt closedAt version
} }`;

/** Who reads, and whether they see the private part (and are audited as staff). */
const VIEWERS: [string, Role[] | 'alice' | 'bob' | null, string[], 'reporter' | 'staff' | 'none'][] = [
  ['the public', null, [], 'none'],
  ['the reporter', 'alice', [], 'reporter'],
  ['another citizen', 'bob', [], 'none'],
  ['a partner of the collectivity', ['partner'], ['chalons'], 'none'],
  ['an agent of the collectivity', ['agent'], ['chalons'], 'staff'],
  ['an operator of the collectivity', ['operator'], ['chalons'], 'staff'],
  ['an admin of the collectivity', ['admin'], ['chalons'], 'staff'],
  ['an agent of another collectivity', ['agent'], ['fagnieres'], 'none'],
  ['an operator of another collectivity', ['operator'], ['fagnieres'], 'none'],
  ['an admin of another collectivity', ['admin'], ['chalons-agglo'], 'none'],
  ['a citizen who also is a partner elsewhere', ['citizen', 'partner'], ['fagnieres'], 'none'],
];

async function tokenOf(who: Role[] | 'alice' | 'bob' | null, collectivities: string[]): Promise<string | undefined> {
  if (who === null) return undefined;
  if (who === 'alice') return alice;
  if (who === 'bob') return t.citizen('citizen-bob');
  return t.token(who, collectivities);
}

const auditRows = async () =>
  (await t.pool.query(`SELECT actor_sub, actor_roles, ticket_id::text, fields, channel, request_id, at FROM personal_data_access_log ORDER BY id`)).rows;

before(async () => {
  t = await startTicketsHub();
  alice = await t.citizen('citizen-alice');
  // A lamp in Châlons, and a report 20 m east and 20 m north of the grid point nearest it (so
  // that the coarse location, that grid point, is 28 m from the exact one).
  const { rows } = await t.pool.query<{ id: string; lon: number; lat: number }>(
    `SELECT id, ST_X(location) AS lon, ST_Y(location) AS lat FROM equipment WHERE kind = 'LIGHT_POINT' AND status = 'IN_SERVICE' AND insee_code = '51108' ORDER BY id LIMIT 1 OFFSET 100`,
  );
  const [gridLon, gridLat] = coarsePoint(rows[0].lon, rows[0].lat);
  exact = north(east({ lon: gridLon, lat: gridLat }, 20), 20);
  const reported = await t.reportOk(
    { category: 'LIGHT_OUT', location: exact, description: 'The lamp in front of number 12 is off', name: 'Alice Martin', email: 'alice@example.org', phone: '+33 6 12 34 56 78' },
    alice,
  );
  ticketId = reported.ticket.id;
  lampId = reported.ticket.equipment?.id;
  assert.ok(lampId, 'linked to a lamp');
  const anonymous = await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: 'tag on the school wall', email: 'anon@example.org' });
  anonymousId = anonymous.ticket.id;
  const other = await t.reportOk({ category: 'TAG', location: await t.spot('fagnieres'), description: 'tag in Fagnières', name: 'Bob' }, await t.citizen('citizen-bob'));
  fagnieresId = other.ticket.id;
  await t.ok(`mutation($id: ID!) { transitionTicket(input: { ticketId: $id, to: ACKNOWLEDGED, note: "on it" }) { status } }`, {
    variables: { id: ticketId },
    token: await t.tokenAs('operator-claire', ['operator'], ['chalons']),
  });
  await t.pool.query('TRUNCATE personal_data_access_log');
});
after(async () => {
  await t?.close();
});

describe('who sees what of a ticket', () => {
  for (const [who, roles, collectivities, sees] of VIEWERS) {
    it(`${who}: ${sees === 'none' ? 'category, status, coarse location and dates only' : 'everything'}${sees === 'staff' ? ', audited' : ''}`, async () => {
      await t.pool.query('TRUNCATE personal_data_access_log');
      const token = await tokenOf(roles, collectivities);
      const { ticket } = await t.ok(FULL, { variables: { id: ticketId }, token });
      const [cLon, cLat] = coarsePoint(exact.lon, exact.lat);
      // What everyone sees.
      assert.deepEqual(
        {
          id: ticket.id,
          status: ticket.status,
          category: ticket.category.code,
          collectivity: ticket.collectivity.id,
          service: ticket.service,
          inseeCode: ticket.inseeCode,
          source: ticket.source,
          coarseLocation: ticket.coarseLocation,
          alreadyKnown: ticket.alreadyKnown,
          duplicateCount: ticket.duplicateCount,
          duplicateOf: ticket.duplicateOf,
          version: ticket.version,
          dates: [typeof ticket.createdAt, typeof ticket.updatedAt, typeof ticket.acknowledgedAt, ticket.resolvedAt, ticket.closedAt],
          history: ticket.history.map((h: any) => [h.action, h.note]),
        },
        {
          id: ticketId,
          status: 'ACKNOWLEDGED',
          category: 'LIGHT_OUT',
          collectivity: 'chalons',
          service: 'Éclairage public',
          inseeCode: '51108',
          source: 'APP',
          coarseLocation: { type: 'Point', coordinates: [cLon, cLat] },
          alreadyKnown: false,
          duplicateCount: 0,
          duplicateOf: null,
          version: 2,
          dates: ['string', 'string', 'string', null, null],
          history: [['CREATED', null], ['TRANSITION', 'on it']],
        },
      );
      const hidden = { location: null, address: null, description: null, reporter: null, equipment: null };
      const shown = {
        location: { type: 'Point', coordinates: [exact.lon, exact.lat] },
        address: ticket.address,
        description: 'The lamp in front of number 12 is off',
        reporter: { accountId: 'citizen-alice', name: 'Alice Martin', email: 'alice@example.org', phone: '+33 6 12 34 56 78' },
        equipment: { id: lampId },
      };
      const got = { location: ticket.location, address: ticket.address, description: ticket.description, reporter: ticket.reporter, equipment: ticket.equipment };
      assert.deepEqual(got, sees === 'none' ? hidden : shown);
      if (sees !== 'none') assert.match(ticket.address, /, Châlons-en-Champagne$/);
      // History actors: staff of the collectivity only.
      assert.deepEqual(ticket.history.map((h: any) => h.actor), sees === 'staff' ? ['citizen-alice', 'operator-claire'] : [null, null]);
      // The audit: staff reads only.
      const rows = await auditRows();
      if (sees === 'staff') {
        assert.equal(rows.length, 1);
        assert.deepEqual(
          { ...rows[0], at: undefined, request_id: undefined },
          {
            actor_sub: `test-${(roles as Role[]).join('-')}-chalons`,
            actor_roles: roles,
            ticket_id: ticketId,
            fields: ['reporter.accountId', 'reporter.name', 'reporter.email', 'reporter.phone'],
            channel: 'graphql',
            at: undefined,
            request_id: undefined,
          },
        );
        assert.ok(rows[0].request_id, 'the request id');
        assert.ok(Math.abs(rows[0].at.getTime() - Date.now()) < 10_000, 'when');
      } else {
        assert.deepEqual(rows, [], 'no audit for the reporter himself or for those who see nothing');
      }
    });
  }

  it('shows an anonymous reporter’s contact to staff only (the public reporter has no account to see it with)', async () => {
    const staff = await t.ok(`query($id: ID!) { ticket(id: $id) { reporter { accountId email } description } }`, { variables: { id: anonymousId }, token: await t.token(['agent'], ['chalons']) });
    assert.deepEqual(staff.ticket, { reporter: { accountId: null, email: 'anon@example.org' }, description: 'tag on the school wall' });
    const publicView = await t.ok(`query($id: ID!) { ticket(id: $id) { reporter { email } description } }`, { variables: { id: anonymousId } });
    assert.deepEqual(publicView.ticket, { reporter: null, description: null });
  });

  it('shows nothing of an erased reporter, and audits nothing then', async () => {
    const erased = await t.reportOk({ category: 'POTHOLE', location: await t.spot('chalons'), email: 'gone@example.org' }, await t.citizen('citizen-gone'));
    await t.pool.query(`UPDATE tickets SET reporter_sub = NULL, reporter_name = NULL, reporter_email = NULL, reporter_phone = NULL, reporter_erased_at = now() WHERE id = $1`, [erased.ticket.id]);
    await t.pool.query('TRUNCATE personal_data_access_log');
    const staff = await t.ok(`query($id: ID!) { ticket(id: $id) { reporter { email } } }`, { variables: { id: erased.ticket.id }, token: await t.token(['operator'], ['chalons']) });
    assert.equal(staff.ticket.reporter, null);
    assert.deepEqual(await auditRows(), []);
  });
});

describe('the audit of staff reads', () => {
  it('logs exactly the fields read, through fragments too, and nothing when the reporter is not read', async () => {
    const operator = await t.token(['operator'], ['chalons']);
    await t.pool.query('TRUNCATE personal_data_access_log');
    await t.ok(`query($id: ID!) { ticket(id: $id) { id description location { coordinates } } }`, { variables: { id: ticketId }, token: operator });
    assert.deepEqual(await auditRows(), [], 'no reporter field read');
    await t.ok(`query($id: ID!) { ticket(id: $id) { reporter { ...Contact } } } fragment Contact on Reporter { email ... on Reporter { phone } }`, { variables: { id: ticketId }, token: operator });
    assert.deepEqual((await auditRows()).map((r) => r.fields), [['reporter.email', 'reporter.phone']]);
  });

  it('logs one row per ticket read in a list, in one insert, only for the collectivity’s tickets', async () => {
    const operator = await t.token(['operator'], ['chalons']);
    await t.pool.query('TRUNCATE personal_data_access_log');
    const { tickets } = await t.ok(`{ tickets(first: 100) { edges { node { id collectivity { id } reporter { name } } } } }`, { token: operator });
    // The erased reporter's ticket (above) has nothing left to read: not logged.
    const mine = tickets.edges.filter((e: any) => e.node.collectivity.id === 'chalons' && e.node.reporter !== null).map((e: any) => e.node.id).sort();
    assert.equal(tickets.edges.filter((e: any) => e.node.collectivity.id === 'chalons').length, 3);
    assert.ok(mine.includes(ticketId) && mine.includes(anonymousId));
    assert.equal(tickets.edges.find((e: any) => e.node.id === fagnieresId).node.reporter, null, 'another collectivity’s reporter stays hidden');
    const rows = await auditRows();
    assert.deepEqual(rows.map((r) => r.ticket_id).sort(), mine);
    assert.ok(rows.every((r) => r.actor_sub === 'test-operator-chalons' && r.channel === 'graphql' && r.fields.join() === 'reporter.name'));
    assert.equal(new Set(rows.map((r) => `${r.at.toISOString()}|${r.request_id}`)).size, 1, 'one statement, one request');
    // The same ticket reached twice in one request is logged once.
    await t.pool.query('TRUNCATE personal_data_access_log');
    await t.ok(`query($id: ID!) { a: ticket(id: $id) { reporter { name } } b: ticket(id: $id) { reporter { name } } }`, { variables: { id: ticketId }, token: operator });
    assert.equal((await auditRows()).length, 1);
  });
});

describe('lists and references', () => {
  it('myTickets lists the caller’s own reports; the public is refused', async () => {
    const mine = await t.ok(`{ myTickets { totalCount edges { node { id description reporter { email } } } } }`, { token: alice });
    assert.deepEqual(mine.myTickets.edges.map((e: any) => [e.node.id, e.node.description, e.node.reporter.email]), [[ticketId, 'The lamp in front of number 12 is off', 'alice@example.org']]);
    assert.equal(mine.myTickets.totalCount, 1);
    const bob = await t.ok(`{ myTickets { totalCount edges { node { id } } } }`, { token: await t.citizen('citizen-bob') });
    assert.deepEqual(bob.myTickets.edges.map((e: any) => e.node.id), [fagnieresId]);
    const refused = await t.gql(`{ myTickets { totalCount } }`);
    assert.equal(refused.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  });

  it('Equipment.tickets, through federation, with the same privacy', async () => {
    const Q = `query($id: ID!) { equipment(id: $id) { id kind tickets { totalCount edges { node { id status description reporter { name } } } } open: tickets(open: false) { totalCount } } }`;
    const publicView = await t.ok(Q, { variables: { id: lampId } });
    assert.deepEqual(publicView.equipment.tickets, { totalCount: 1, edges: [{ node: { id: ticketId, status: 'ACKNOWLEDGED', description: null, reporter: null } }] });
    assert.equal(publicView.equipment.open.totalCount, 0);
    const staff = await t.ok(Q, { variables: { id: lampId }, token: await t.token(['agent'], ['chalons']) });
    assert.deepEqual(staff.equipment.tickets.edges[0].node, { id: ticketId, status: 'ACKNOWLEDGED', description: 'The lamp in front of number 12 is off', reporter: { name: 'Alice Martin' } });
  });

  it('matches `near` on the coarse location for those who see only that, on the exact one for the others', async () => {
    const [cLon, cLat] = coarsePoint(exact.lon, exact.lat);
    const NEAR = `query($lon: Float!, $lat: Float!) { tickets(filter: { near: { lon: $lon, lat: $lat, radiusMeters: 5 } }) { edges { node { id } } } }`;
    const ids = async (place: { lon: number; lat: number }, token?: string) => (await t.ok(NEAR, { variables: place, token })).tickets.edges.map((e: any) => e.node.id);
    const operator = await t.token(['operator'], ['chalons']);
    assert.deepEqual(await ids({ lon: cLon, lat: cLat }), [ticketId], 'public: at the coarse point');
    assert.deepEqual(await ids(exact), [], 'public: not at the exact point');
    assert.deepEqual(await ids(exact, operator), [ticketId], 'staff: at the exact point');
    assert.deepEqual(await ids({ lon: cLon, lat: cLat }, operator), [], 'staff: not at the coarse point');
    assert.deepEqual(await ids(exact, alice), [ticketId], 'the reporter: at the exact point');
    const bad = await t.gql(`{ tickets(filter: { near: { lon: 4.3, lat: 48.9, radiusMeters: 60000 } }) { totalCount } }`);
    assert.deepEqual([bad.errors?.[0]?.extensions?.code, bad.errors?.[0]?.extensions?.field], ['BAD_USER_INPUT', 'filter.near.radiusMeters']);
  });

  it('filters and pages lists newest first with cursors', async () => {
    const all = await t.ok(`{ tickets(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }`);
    assert.equal(all.tickets.totalCount, 4);
    assert.equal(all.tickets.pageInfo.hasNextPage, true);
    const next = await t.ok(`query($after: String) { tickets(first: 2, after: $after) { pageInfo { hasNextPage hasPreviousPage } edges { node { id } } } }`, { variables: { after: all.tickets.pageInfo.endCursor } });
    const ids = [...all.tickets.edges, ...next.tickets.edges].map((e: any) => Number(e.node.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a), 'newest first');
    assert.equal(new Set(ids).size, 4);
    const filtered = await t.ok(`{ tickets(filter: { collectivityIds: ["fagnieres"], categories: ["TAG"], status: [NEW] }) { edges { node { id } } } }`);
    assert.deepEqual(filtered.tickets.edges.map((e: any) => e.node.id), [fagnieresId]);
    const bad = await t.gql(`{ tickets(after: "nope") { totalCount } }`);
    assert.deepEqual([bad.errors?.[0]?.extensions?.code, bad.errors?.[0]?.extensions?.field], ['BAD_USER_INPUT', 'after']);
    const unknown = await t.ok(`{ ticket(id: "424242") { id } bad: ticket(id: "x") { id } }`);
    assert.deepEqual(unknown, { ticket: null, bad: null });
  });
});
