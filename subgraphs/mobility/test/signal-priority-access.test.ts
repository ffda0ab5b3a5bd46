/**
 * Who reads priority requests and figures: every role of every collectivity (and the public,
 * and a partner) against `signalPriorityRequests`, `signalPriorityByIntersection`,
 * `signalPriorityByRoute` and `Equipment.signalPriority`, over requests to a Châlons and a
 * Fagnières controller for Châlons Agglo's buses; then pages and bad input.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { COLLECTIVITY_IDS, ROLES, type Role } from '@connecte/shared/auth';
import type { AssetRow } from '../src/types.js';
import { installPriorityLines, spreadControllers, startPriorityService, type PriorityEnv } from './priority-fixture.js';

let env: PriorityEnv;
let chalonsController: AssetRow;
let fagnieresController: AssetRow;
let busA: AssetRow;
let busB: AssetRow;
const ids: Record<string, string> = {};

const REQUEST_FIELDS = `id status controller { id } vehicle { id } trip { id } route { id } requestedAt distanceMeters delaySeconds etaSeconds answeredAt error secondsSaved`;
const STATS = `requests grants denials expired secondsSaved`;

before(async () => {
  env = await startPriorityService();
  [chalonsController] = spreadControllers(env.controllers, 1, 'chalons');
  [fagnieresController] = spreadControllers(env.controllers, 1, 'fagnieres');
  [busA, busB] = env.buses;
  assert.equal(busA.collectivityId, 'chalons-agglo');
  await installPriorityLines(env.r, [chalonsController, fagnieresController]);
  const rows: [string, AssetRow, AssetRow, string, string, number | null, string | null][] = [
    ['c-granted', chalonsController, busA, 'TSP-1', 'GRANTED', 6, null],
    ['c-denied', chalonsController, busB, 'TSP-2', 'DENIED', null, 'busy'],
    ['f-expired', fagnieresController, busA, 'TSP-1', 'EXPIRED', null, null],
    ['f-granted', fagnieresController, busB, 'TSP-2', 'GRANTED', 14.2, null],
  ];
  for (const [i, [name, controller, bus, routeId, status, saved, error]] of rows.entries()) {
    ids[name] = randomUUID();
    await env.r.db.pool.query(
      `INSERT INTO signal_priority_requests (id, controller_id, collectivity_id, vehicle_id, vehicle_collectivity_id, trip_id, route_id, service_date,
         requested_at, expires_at, distance_m, delay_seconds, eta_seconds, status, answered_at, error, seconds_saved, sent_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, CURRENT_DATE, now() - make_interval(mins => $8), now() - make_interval(mins => $8) + interval '20 seconds',
         100, 90, 12.5, $9, CASE WHEN $9 = 'EXPIRED' THEN NULL ELSE now() - make_interval(mins => $8) END, $10, $11, now() - make_interval(mins => $8))`,
      [ids[name], controller.equipmentId, controller.collectivityId, bus.equipmentId, bus.collectivityId, `${routeId}-T1`, routeId, 10 + i, status, error, saved],
    );
  }
});
after(() => env?.close());

const byName = (list: string[]) => Object.entries(ids).filter(([, id]) => list.includes(id)).map(([name]) => name).sort();

/** Each root field in a request of its own: a refused non-null list nulls the whole answer. */
async function ask(token: string | undefined) {
  const one = (query: string, variables?: Record<string, unknown>) => env.service.gql(query, { token, variables });
  const [requests, intersections, routes, entities] = await Promise.all([
    one(`{ signalPriorityRequests { totalCount edges { node { ${REQUEST_FIELDS} } } } }`),
    one(`{ signalPriorityByIntersection { controller { id } stats { ${STATS} } } }`),
    one(`{ signalPriorityByRoute { route { id shortName } stats { ${STATS} } } }`),
    one(`query($reps: [_Any!]!) { _entities(representations: $reps) { ... on Equipment { id signalPriority { ${STATS} } } } }`, {
      reps: [chalonsController, fagnieresController, busA].map((asset) => ({ __typename: 'Equipment', id: asset.equipmentId })),
    }),
  ]);
  assert.equal(entities.errors, undefined, JSON.stringify(entities.errors));
  const errors = [requests, intersections, routes].flatMap((response) => response.errors ?? []);
  return {
    errors: errors.length ? errors : undefined,
    data: { ...requests.data, ...intersections.data, ...routes.data, ...entities.data },
  };
}

type Expect = { requests: string[] | 'UNAUTHENTICATED' | 'FORBIDDEN'; chalons: boolean; fagnieres: boolean };

function expected(roles: Role[], collectivities: string[]): Expect {
  if (roles.includes('partner')) return { requests: Object.keys(ids).sort(), chalons: true, fagnieres: true };
  const reads = ['agent', 'operator', 'admin'].some((role) => roles.includes(role as Role));
  if (!reads) return { requests: 'FORBIDDEN', chalons: false, fagnieres: false };
  const names = new Set<string>();
  if (collectivities.includes('chalons') || collectivities.includes('chalons-agglo')) names.add('c-granted').add('c-denied');
  if (collectivities.includes('fagnieres') || collectivities.includes('chalons-agglo')) names.add('f-expired').add('f-granted');
  return {
    requests: [...names].sort(),
    chalons: collectivities.includes('chalons') || collectivities.includes('chalons-agglo'),
    fagnieres: collectivities.includes('fagnieres') || collectivities.includes('chalons-agglo'),
  };
}

const sum = (rows: { status: string; secondsSaved: number | null }[]) => ({
  requests: rows.length,
  grants: rows.filter((r) => r.status === 'GRANTED').length,
  denials: rows.filter((r) => r.status === 'DENIED').length,
  expired: rows.filter((r) => r.status === 'EXPIRED').length,
  secondsSaved: rows.reduce((total, r) => total + (r.secondsSaved ?? 0), 0),
});

const FIGURES: Record<string, { status: string; secondsSaved: number | null; controller: 'c' | 'f'; route: string }> = {
  'c-granted': { status: 'GRANTED', secondsSaved: 6, controller: 'c', route: 'TSP-1' },
  'c-denied': { status: 'DENIED', secondsSaved: null, controller: 'c', route: 'TSP-2' },
  'f-expired': { status: 'EXPIRED', secondsSaved: null, controller: 'f', route: 'TSP-1' },
  'f-granted': { status: 'GRANTED', secondsSaved: 14.2, controller: 'f', route: 'TSP-2' },
};

describe('every role of every collectivity', () => {
  const cases: { label: string; roles: Role[]; collectivities: string[] }[] = [
    ...ROLES.flatMap((role) => COLLECTIVITY_IDS.map((collectivity) => ({ label: `${role} of ${collectivity}`, roles: [role], collectivities: [collectivity] }))),
    { label: 'partner of none', roles: ['partner'], collectivities: [] },
    { label: 'agent of chalons and fagnieres', roles: ['agent'], collectivities: ['chalons', 'fagnieres'] },
  ];

  it('the public is asked to authenticate, and sees no controller figures', async () => {
    const response = await ask(undefined);
    const codes = [...new Set(response.errors?.map((error) => error.extensions?.code))];
    assert.deepEqual(codes, ['UNAUTHENTICATED']);
    assert.equal(response.errors?.length, 3);
    assert.deepEqual(response.data._entities.map((e: any) => e.signalPriority), [null, null, null]);
  });

  for (const { label, roles, collectivities } of cases) {
    it(label, async () => {
      const response = await ask(await env.service.token(roles, collectivities));
      const want = expected(roles, collectivities);
      const [c, f, bus] = response.data._entities;
      if (typeof want.requests === 'string') {
        assert.equal(response.errors?.length, 3, JSON.stringify(response.errors));
        for (const error of response.errors!) assert.equal(error.extensions?.code, want.requests);
        assert.deepEqual([c.signalPriority, f.signalPriority, bus.signalPriority], [null, null, null]);
        return;
      }
      assert.equal(response.errors, undefined, JSON.stringify(response.errors));
      const nodes = response.data.signalPriorityRequests.edges.map((edge: any) => edge.node);
      assert.deepEqual(byName(nodes.map((node: any) => node.id)), want.requests);
      assert.equal(response.data.signalPriorityRequests.totalCount, want.requests.length);
      const visible = want.requests.map((name) => FIGURES[name]);
      const byController = response.data.signalPriorityByIntersection.map((entry: any) => [entry.controller.id, entry.stats]);
      const expectedControllers = (['c', 'f'] as const)
        .map((key) => [key === 'c' ? chalonsController.equipmentId : fagnieresController.equipmentId, visible.filter((v) => v.controller === key)] as const)
        .filter(([, list]) => list.length > 0)
        .map(([id, list]) => [id, sum(list)])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
      assert.deepEqual(byController, expectedControllers);
      const expectedRoutes = ['TSP-1', 'TSP-2']
        .map((route) => [route, visible.filter((v) => v.route === route)] as const)
        .filter(([, list]) => list.length > 0)
        .map(([route, list]) => [route, sum(list)]);
      assert.deepEqual(response.data.signalPriorityByRoute.map((entry: any) => [entry.route.id, entry.stats]), expectedRoutes);
      assert.ok(response.data.signalPriorityByRoute.every((entry: any) => entry.route.shortName === entry.route.id));
      assert.deepEqual(c.signalPriority, want.chalons ? sum(Object.values(FIGURES).filter((v) => v.controller === 'c')) : null);
      assert.deepEqual(f.signalPriority, want.fagnieres ? sum(Object.values(FIGURES).filter((v) => v.controller === 'f')) : null);
      assert.equal(bus.signalPriority, null, 'a bus has no priority figures');
    });
  }

  it('a request shows what it names', async () => {
    const response = await env.service.gql(`{ signalPriorityRequests(filter: { status: [GRANTED], routeIds: ["TSP-1"] }) { edges { node { ${REQUEST_FIELDS} } } } }`, {
      token: await env.service.token(['partner'], []),
    });
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    const [node] = response.data.signalPriorityRequests.edges.map((edge: any) => edge.node);
    assert.equal(response.data.signalPriorityRequests.edges.length, 1);
    assert.deepEqual(
      { ...node, requestedAt: undefined, answeredAt: undefined },
      {
        id: ids['c-granted'], status: 'GRANTED', controller: { id: chalonsController.equipmentId }, vehicle: { id: busA.equipmentId },
        trip: { id: 'TSP-1-T1' }, route: { id: 'TSP-1' }, requestedAt: undefined, distanceMeters: 100, delaySeconds: 90, etaSeconds: 12.5,
        answeredAt: undefined, error: null, secondsSaved: 6,
      },
    );
  });
});

describe('pages, periods and bad input', () => {
  it('pages newest first', async () => {
    const token = await env.service.token(['partner'], []);
    const first = await env.service.gql(`{ signalPriorityRequests(first: 3) { edges { node { id } } pageInfo { hasNextPage endCursor } } }`, { token });
    assert.deepEqual(first.data.signalPriorityRequests.edges.map((e: any) => e.node.id), [ids['c-granted'], ids['c-denied'], ids['f-expired']]);
    assert.equal(first.data.signalPriorityRequests.pageInfo.hasNextPage, true);
    const next = await env.service.gql(`query($after: String) { signalPriorityRequests(first: 3, after: $after) { edges { node { id } } pageInfo { hasNextPage hasPreviousPage } } }`, {
      token,
      variables: { after: first.data.signalPriorityRequests.pageInfo.endCursor },
    });
    assert.deepEqual(next.data.signalPriorityRequests.edges.map((e: any) => e.node.id), [ids['f-granted']]);
    assert.deepEqual(next.data.signalPriorityRequests.pageInfo, { hasNextPage: false, hasPreviousPage: true });
  });

  it('keeps to the period asked', async () => {
    const token = await env.service.token(['partner'], []);
    const now = Date.now();
    const response = await env.service.gql(
      `query($from: DateTime, $to: DateTime) {
         signalPriorityByRoute(from: $from, to: $to) { route { id } stats { requests } }
         signalPriorityRequests(filter: { from: $from, to: $to }) { totalCount }
         _entities(representations: [{ __typename: "Equipment", id: "${chalonsController.equipmentId}" }]) { ... on Equipment { signalPriority(from: $from, to: $to) { requests } } } }`,
      { token, variables: { from: new Date(now - 10.5 * 60_000).toISOString(), to: new Date(now).toISOString() } },
    );
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    assert.deepEqual(response.data.signalPriorityByRoute, [{ route: { id: 'TSP-1' }, stats: { requests: 1 } }]);
    assert.equal(response.data.signalPriorityRequests.totalCount, 1);
    assert.deepEqual(response.data._entities[0].signalPriority, { requests: 1 });
  });

  it('names the argument at fault', async () => {
    const token = await env.service.token(['partner'], []);
    const cases: [string, string][] = [
      ['{ signalPriorityRequests(first: 1001) { totalCount } }', 'first'],
      ['{ signalPriorityRequests(first: -1) { totalCount } }', 'first'],
      ['{ signalPriorityRequests(after: "bm9wZQ") { totalCount } }', 'after'],
      ['{ signalPriorityRequests(filter: { controllerIds: [" "] }) { totalCount } }', 'filter.controllerIds.0'],
      [`{ signalPriorityRequests(filter: { routeIds: [${Array.from({ length: 101 }, (_, i) => `"r${i}"`).join(',')}] }) { totalCount } }`, 'filter.routeIds'],
      ['{ signalPriorityRequests(filter: { from: "2026-12-02T00:00:00Z", to: "2026-12-01T00:00:00Z" }) { totalCount } }', 'filter.from'],
      ['{ signalPriorityByIntersection(from: "2026-12-02T00:00:00Z", to: "2026-12-01T00:00:00Z") { stats { requests } } }', 'from'],
      ['{ signalPriorityByRoute(from: "2020-01-01T00:00:00Z", to: "2026-12-01T00:00:00Z") { stats { requests } } }', 'from'],
    ];
    for (const [query, field] of cases) {
      const response = await env.service.gql(query, { token });
      assert.equal(response.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', `${query}: ${JSON.stringify(response.errors)}`);
      assert.equal(response.errors?.[0]?.extensions?.field, field, query);
    }
  });
});
