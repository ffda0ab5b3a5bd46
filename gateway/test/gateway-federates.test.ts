/**
 * The gateway over the real territory and equipment subgraphs on a seeded database: a query
 * spanning both, SUBGRAPH_<NAME>_URL honoured, the caller's token verified then forwarded, the
 * subgraphs' error codes kept, a bad token refused before any subgraph is called.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { RunningService } from '@connecte/shared/server';
import { createTestDatabase, type TestDatabase, gql, startHub, testConfig, tokenFor, type Hub } from '@connecte/testkit';
import { startGateway, type RunningGateway } from '../src/server.js';

const SPANNING = `{ equipmentSearch(filter: { kinds: [LIGHT_POINT] }, first: 3) {
  totalCount edges { node { id reference collectivity { id name } } } } }`;

const CAMERAS_NEAR_TOWN_HALL = `{ equipmentSearch(filter: { kinds: [CAMERA], near: { lon: 4.3650, lat: 48.9566, radiusMeters: 300 } }) {
  totalCount edges { node { id location { coordinates } } } } }`;

const REGISTER = `mutation Register($input: RegisterEquipmentInput!) {
  registerEquipment(input: $input) { id reference collectivity { id name } } }`;

const lightPoint = (reference: string) => ({
  kind: 'LIGHT_POINT',
  reference,
  collectivityId: 'chalons',
  location: { lon: 4.365, lat: 48.9566 },
  details: { powerW: 40, lampType: 'LED', dimmable: true },
});

describe('gateway federating territory and equipment', () => {
  let db: TestDatabase;
  let config: ReturnType<typeof testConfig>;
  let territory: RunningService;
  let equipment: RunningService;
  let gateway: RunningGateway;
  let hub: Hub;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    hub = await startHub(db.url);
    ({ config, gateway } = hub);
    ({ territory, equipment } = hub.subgraphs);
  });
  after(async () => {
    await hub?.close();
    await db?.drop();
  });

  it('answers a query spanning both subgraphs: equipment, then its collectivity name from territory', async () => {
    const response = await gql(gateway.url, SPANNING);
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    assert.equal(response.data.equipmentSearch.totalCount, 7290);
    const edges = response.data.equipmentSearch.edges;
    assert.equal(edges.length, 3);
    for (const { node } of edges) {
      assert.ok(node.collectivity.id.length > 0);
      assert.ok(node.collectivity.name.length > 0, 'the name comes from the territory subgraph');
    }
    const direct = await gql(territory.url, '{ collectivities { id name } }');
    const names = new Map(direct.data.collectivities.map((c: { id: string; name: string }) => [c.id, c.name]));
    for (const { node } of edges) assert.equal(node.collectivity.name, names.get(node.collectivity.id));
  });

  it('takes subgraph URLs from SUBGRAPH_<NAME>_URL when none are given', async () => {
    const saved = { territory: process.env.SUBGRAPH_TERRITORY_URL, equipment: process.env.SUBGRAPH_EQUIPMENT_URL };
    process.env.SUBGRAPH_TERRITORY_URL = territory.url;
    process.env.SUBGRAPH_EQUIPMENT_URL = equipment.url;
    let fromEnv: RunningGateway | undefined;
    try {
      fromEnv = await startGateway({ config, port: 0 });
      // The two set here; any other registered subgraph keeps its default URL.
      assert.equal(fromEnv.subgraphUrls.territory, territory.url);
      assert.equal(fromEnv.subgraphUrls.equipment, equipment.url);
      const response = await gql(fromEnv.url, SPANNING);
      assert.equal(response.errors, undefined, JSON.stringify(response.errors));
      assert.equal(response.data.equipmentSearch.edges.length, 3);
    } finally {
      await fromEnv?.close();
      for (const [name, value] of Object.entries(saved)) {
        const variable = `SUBGRAPH_${name.toUpperCase()}_URL`;
        if (value === undefined) delete process.env[variable];
        else process.env[variable] = value;
      }
    }
  });

  it('forwards the caller token: an operator of Châlons sees the cameras near the town hall, the public does not', async () => {
    const token = await tokenFor(config, ['operator'], ['chalons']);
    const withToken = await gql(gateway.url, CAMERAS_NEAR_TOWN_HALL, { token });
    assert.equal(withToken.errors, undefined, JSON.stringify(withToken.errors));
    assert.ok(withToken.data.equipmentSearch.totalCount > 0);
    assert.ok(withToken.data.equipmentSearch.edges.every((e: any) => e.node.location.coordinates.length === 2));

    const anonymous = await gql(gateway.url, CAMERAS_NEAR_TOWN_HALL);
    assert.equal(anonymous.errors, undefined, JSON.stringify(anonymous.errors));
    assert.equal(anonymous.data.equipmentSearch.totalCount, 0);
  });

  it('forwards the token to mutations and keeps the subgraph error code when it refuses', async () => {
    const anonymous = await gql(gateway.url, REGISTER, { variables: { input: lightPoint('GW-FWD-1') } });
    assert.equal(anonymous.data, null);
    assert.equal(anonymous.errors?.[0].extensions?.code, 'UNAUTHENTICATED', JSON.stringify(anonymous.errors));
    assert.equal(anonymous.errors?.[0].extensions?.stacktrace, undefined);

    const citizen = await gql(gateway.url, REGISTER, {
      variables: { input: lightPoint('GW-FWD-1') },
      token: await tokenFor(config, ['citizen'], []),
    });
    assert.equal(citizen.errors?.[0].extensions?.code, 'FORBIDDEN', JSON.stringify(citizen.errors));

    const operator = await gql(gateway.url, REGISTER, {
      variables: { input: lightPoint('GW-FWD-1') },
      token: await tokenFor(config, ['operator'], ['chalons']),
    });
    assert.equal(operator.errors, undefined, JSON.stringify(operator.errors));
    assert.equal(operator.data.registerEquipment.reference, 'GW-FWD-1');
    assert.equal(operator.data.registerEquipment.collectivity.id, 'chalons');
    assert.ok(operator.data.registerEquipment.collectivity.name.length > 0);
  });

  it('keeps the code and field of a subgraph BAD_USER_INPUT error, without a stack trace', async () => {
    const response = await gql(gateway.url, '{ equipmentSearch(first: 5000) { totalCount } }');
    const [error] = response.errors ?? [];
    assert.equal(error?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(response.errors));
    assert.equal(error.extensions?.field, 'first');
    assert.equal(error.extensions?.stacktrace, undefined);
  });

  it('gives the caller the request id it sent, and a fresh one otherwise', async () => {
    const sent = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'gateway-test-42' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    assert.equal(sent.headers.get('x-request-id'), 'gateway-test-42');
    const fresh = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    assert.match(fresh.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
  });

  it('answers 400 for a body that is not JSON, 413 for a body over 1 MiB, and 404 for an unknown path', async () => {
    const bad = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": ' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as any).errors[0].extensions.code, 'BAD_REQUEST');
    const huge = await fetch(gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ __typename } # ${'x'.repeat(1024 * 1024)}` }),
    });
    assert.equal(huge.status, 413);
    await huge.arrayBuffer();
    const missing = await fetch(`${gateway.origin}/nowhere`);
    assert.equal(missing.status, 404);
    await missing.arrayBuffer();
  });

  it('serves a module mounted under a prefix, and nothing else under it', async () => {
    gateway.mount('/opendata/', (request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' }).end(`open data: ${request.url}`);
    });
    const mounted = await fetch(`${gateway.origin}/opendata/equipment.geojson?x=1`);
    assert.equal(mounted.status, 200);
    assert.equal(await mounted.text(), 'open data: /opendata/equipment.geojson?x=1');
    const prefixOnly = await fetch(`${gateway.origin}/opendatax`);
    assert.equal(prefixOnly.status, 404);
    await prefixOnly.arrayBuffer();
  });
});

describe('gateway refusing a bad token', () => {
  let tripwire: Server;
  let calls = 0;
  let gateway: RunningGateway;
  let db: TestDatabase;
  let config: ReturnType<typeof testConfig>;

  before(async () => {
    db = await createTestDatabase({ seed: false });
    config = testConfig(db.url);
    // Stands in for both subgraphs: any call reaching it is a request the gateway should not have made.
    tripwire = createServer((_request, response) => {
      calls++;
      response.writeHead(500).end();
    });
    await new Promise<void>((resolve) => tripwire.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(tripwire.address() as AddressInfo).port}/graphql`;
    gateway = await startGateway({ config, port: 0, subgraphUrls: { territory: url, equipment: url } });
  });
  after(async () => {
    await gateway?.close();
    await new Promise((resolve) => tripwire?.close(resolve));
    await db?.drop();
  });

  for (const [what, token] of [
    ['a malformed token', async () => 'not-a-jwt'],
    ['an expired token', async () => tokenFor(config, ['operator'], ['chalons'], '-1m')],
    ['a token signed with another secret', async () => tokenFor({ ...config, JWT_SECRET: 'x'.repeat(40) }, ['admin'], ['chalons'])],
  ] as const) {
    it(`answers 401 UNAUTHENTICATED to ${what} without calling any subgraph`, async () => {
      const response = await gql(gateway.url, '{ equipmentSearch(first: 1) { totalCount } }', { token: await token() });
      assert.equal(response.status, 401);
      assert.equal(response.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
      assert.equal(response.data, undefined);
      assert.equal(calls, 0);
    });
  }

  it('answers 401 to an Authorization header that is not a bearer token', async () => {
    const response = await gql(gateway.url, '{ __typename }', { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
    assert.equal(response.status, 401);
    assert.equal(response.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
    assert.equal(calls, 0);
  });
});
