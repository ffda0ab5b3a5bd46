/**
 * The test hub starts with any set of registered subgraphs: its gateway composes that set's
 * supergraph, reaches, probes and forwards to those subgraphs only, and answers a field of a
 * subgraph it does not serve with a validation error (400), never a failed call (502). Bad
 * selections are refused: an unknown name (with the known ones), a name twice, none at all, a
 * URL for a subgraph not served, a set that does not compose (named).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startGateway } from '@connecte/gateway';
import { CompositionError } from '@connecte/gateway/compose';
import { selectSubgraphs, subgraphRoutes } from '@connecte/gateway/subgraphs';
import { composeSubset } from '@connecte/gateway/compose';
import { defineRegistry, SUBGRAPHS, type SubgraphEntry } from '@connecte/shared/registry';
import { createTestDatabase, gql, startHub, subgraphRequests, testConfig, type Hub, type TestDatabase } from '@connecte/testkit';

const EQUIPMENT_WITH_OWNER_NAME = '{ equipmentSearch(first: 1) { edges { node { id collectivity { id name } } } } }';

async function readyz(hub: Hub) {
  const response = await fetch(`${hub.gateway.origin}/readyz`);
  return { status: response.status, report: (await response.json()) as { status: string; checks: Record<string, string> } };
}
const probedSubgraphs = (checks: Record<string, string>) => Object.keys(checks).filter((name) => name.startsWith('subgraph:'));

describe('startHub with a subset of the registry', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase();
  });
  after(() => db?.drop());

  describe('territory alone', () => {
    let hub: Hub;
    before(async () => {
      hub = await startHub(db.url, {}, { subgraphs: ['territory'] });
    });
    after(() => hub?.close());

    it('starts territory only and answers its queries through the gateway', async () => {
      assert.deepEqual(Object.keys(hub.subgraphs), ['territory']);
      assert.deepEqual(Object.keys(hub.gateway.subgraphUrls), ['territory']);
      const response = await gql(hub.gatewayUrl, '{ collectivities { id } }');
      assert.equal(response.status, 200, JSON.stringify(response));
      assert.equal(response.data.collectivities.length, 4);
    });

    it('/readyz probes territory only', async () => {
      const { status, report } = await readyz(hub);
      assert.equal(status, 200, JSON.stringify(report));
      assert.equal(report.status, 'ready');
      assert.deepEqual(probedSubgraphs(report.checks), ['subgraph:territory']);
    });

    it('answers a field of equipment with a validation error (400) and calls no subgraph', async () => {
      const before = await subgraphRequests(hub);
      for (const query of ['{ equipmentSearch(filter: {}) { totalCount } }', EQUIPMENT_WITH_OWNER_NAME]) {
        const response = await gql(hub.gatewayUrl, query);
        assert.equal(response.status, 400, JSON.stringify(response));
        assert.equal(response.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(response));
      }
      assert.equal(await subgraphRequests(hub), before);
    });
  });

  describe('equipment alone', () => {
    let hub: Hub;
    before(async () => {
      hub = await startHub(db.url, {}, { subgraphs: ['equipment'] });
    });
    after(() => hub?.close());

    it('serves equipment with the collectivity reference it holds, and refuses the fields territory resolves', async () => {
      const own = await gql(hub.gatewayUrl, '{ equipmentSearch(first: 1) { totalCount edges { node { collectivity { id } } } } }');
      assert.equal(own.status, 200, JSON.stringify(own));
      assert.ok(own.data.equipmentSearch.totalCount > 0);
      assert.equal(typeof own.data.equipmentSearch.edges[0].node.collectivity.id, 'string');
      const joined = await gql(hub.gatewayUrl, EQUIPMENT_WITH_OWNER_NAME);
      assert.equal(joined.status, 400, JSON.stringify(joined));
      assert.equal(joined.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
      assert.deepEqual(probedSubgraphs((await readyz(hub)).report.checks), ['subgraph:equipment']);
    });
  });

  describe('every subgraph', () => {
    for (const [label, subgraphs] of [
      ['by default (the committed supergraph)', undefined],
      ['named, in any order (composed at start)', ['equipment', 'territory']],
    ] as const) {
      it(`${label}: federates equipment and territory`, async () => {
        const hub = await startHub(db.url, {}, { subgraphs });
        try {
          const served = SUBGRAPHS.map((s) => s.name).filter((name) => !subgraphs || (subgraphs as readonly string[]).includes(name));
          assert.deepEqual(Object.keys(hub.gateway.subgraphUrls), served);
          const response = await gql(hub.gatewayUrl, EQUIPMENT_WITH_OWNER_NAME);
          assert.equal(response.status, 200, JSON.stringify(response));
          assert.equal(typeof response.data.equipmentSearch.edges[0].node.collectivity.name, 'string');
          const { status, report } = await readyz(hub);
          assert.equal(status, 200, JSON.stringify(report));
          assert.deepEqual(probedSubgraphs(report.checks), served.map((name) => `subgraph:${name}`));
        } finally {
          await hub.close();
        }
      });
    }
  });

  it('refuses an unknown subgraph, naming the registered ones', async () => {
    await assert.rejects(startHub(db.url, {}, { subgraphs: ['territory', 'nosuchdomain'] }), /Unknown subgraph "nosuchdomain" \(known: territory, equipment/);
    await assert.rejects(
      startGateway({ config: testConfig(db.url), port: 0, subgraphs: ['nosuchdomain'] }),
      /Unknown subgraph "nosuchdomain" \(known: territory, equipment/,
    );
  });

  it('refuses a subgraph named twice, and an empty set', async () => {
    await assert.rejects(startHub(db.url, {}, { subgraphs: ['territory', 'territory'] }), /Subgraph "territory" is named twice/);
    await assert.rejects(startHub(db.url, {}, { subgraphs: [] }), /The gateway needs at least one subgraph \(known: territory, equipment/);
  });

  it('refuses a URL for a subgraph the gateway does not serve', async () => {
    const url = 'http://127.0.0.1:9/graphql';
    await assert.rejects(
      startGateway({ config: testConfig(db.url), port: 0, subgraphs: ['territory'], subgraphUrls: { territory: url, equipment: url } }),
      /Subgraph URLs given for "equipment", which the gateway does not serve \(serves: territory\)/,
    );
  });
});

describe('a subset of a registry', () => {
  const entry = (name: string, defaultPort: number, routes: string[] = []): SubgraphEntry => ({
    name,
    defaultPort,
    schema: `subgraphs/${name}/src/schema.graphql`,
    entry: `subgraphs/${name}/src/main.ts`,
    package: `@connecte/subgraph-${name}`,
    workers: [],
    routes,
  });
  const registry = defineRegistry([entry('alpha', 4101, ['/alpha']), entry('beta', 4102, ['/beta/v1', '/beta/v2'])]);

  it('keeps the registry’s order and forwards only the selected subgraphs’ routes', () => {
    assert.deepEqual(selectSubgraphs(['beta', 'alpha'], registry).map(({ name }) => name), ['alpha', 'beta']);
    assert.deepEqual(subgraphRoutes(selectSubgraphs(['beta'], registry)), [
      { prefix: '/beta/v1', subgraph: 'beta' },
      { prefix: '/beta/v2', subgraph: 'beta' },
    ]);
    assert.equal(selectSubgraphs(undefined, registry), registry);
  });

  it('that does not compose fails with a CompositionError naming its subgraphs', (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'subset-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // Both resolve Query.greeting without @shareable: federation refuses the pair.
    const definitions = ['alpha', 'beta'].map((name, index) => {
      const schemaPath = path.join(dir, `${name}.graphql`);
      writeFileSync(schemaPath, 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])\ntype Query { greeting: String }\n');
      return { name, defaultPort: 4101 + index, schemaPath };
    });
    assert.throws(
      () => composeSubset(definitions),
      (error: Error) =>
        error instanceof CompositionError &&
        error.message.includes('the subgraphs alpha, beta do not compose on their own') &&
        error.message.includes('INVALID_FIELD_SHARING'),
    );
  });
});
