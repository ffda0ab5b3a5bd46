/**
 * /healthz says the process is alive; /readyz says it can serve: the database answers and every
 * subgraph answers `{ __typename }`. A subgraph that is down makes it 503, naming the subgraph.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startSubgraph, type RunningService } from '@connecte/shared/server';
import { SUBGRAPHS } from '@connecte/shared/registry';
import { equipmentSubgraph } from '@connecte/subgraph-equipment';
import { createTestDatabase, type TestDatabase, startHub, testConfig, type Hub } from '@connecte/testkit';
import type { ReadinessReport } from '../src/health.js';
import { startGateway, type RunningGateway } from '../src/server.js';

describe('gateway health and readiness', () => {
  let db: TestDatabase;
  let territory: RunningService;
  let equipment: RunningService;
  let gateway: RunningGateway;
  let hub: Hub;

  before(async () => {
    db = await createTestDatabase({ seed: false });
    hub = await startHub(db.url);
    ({ gateway } = hub);
    ({ territory, equipment } = hub.subgraphs);
  });
  after(async () => {
    await hub?.close();
    await db?.drop();
  });

  it('/healthz answers 200', async () => {
    const response = await fetch(`${gateway.origin}/healthz`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok' });
  });

  it('/readyz answers 200 when the database and every subgraph answer', async () => {
    const response = await fetch(`${gateway.origin}/readyz`);
    const report = await response.json();
    assert.equal(response.status, 200, JSON.stringify(report));
    assert.deepEqual(report, {
      status: 'ready',
      checks: { database: 'ok', ...Object.fromEntries(SUBGRAPHS.map((s) => [`subgraph:${s.name}`, 'ok'])) },
      failed: [],
    });
  });

  it('/metrics exposes Prometheus metrics of the gateway', async () => {
    await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' });
    const response = await fetch(`${gateway.origin}/metrics`);
    assert.equal(response.status, 200);
    const text = await response.text();
    assert.match(text, /graphql_operations_total\{[^}]*type="query"[^}]*\} \d+/);
    assert.match(text, /gateway_upstream_subscriptions\{service="gateway"\} 0/);
  });

  it('/metrics labels a mounted module by its prefix (open data), and unknown paths as other', async () => {
    await (await fetch(`${gateway.origin}/opendata/catalog.jsonld`)).arrayBuffer();
    await (await fetch(`${gateway.origin}/opendata/no-such-dataset`)).arrayBuffer();
    await (await fetch(`${gateway.origin}/no-such-path-${Date.now()}`)).arrayBuffer();
    const text = await (await fetch(`${gateway.origin}/metrics`)).text();
    assert.match(text, /http_request_duration_seconds_count\{[^}]*route="\/opendata"[^}]*status="200"[^}]*\} [1-9]/);
    assert.match(text, /http_request_duration_seconds_count\{[^}]*route="\/opendata"[^}]*status="404"[^}]*\} [1-9]/);
    assert.match(text, /http_request_duration_seconds_count\{[^}]*route="other"[^}]*status="404"[^}]*\} [1-9]/);
    assert.doesNotMatch(text, /route="\/opendata\/|route="\/no-such/);
  });

  it('/readyz answers 503 naming the subgraph that is down, and 200 again when it is back', async () => {
    const port = Number(new URL(equipment.url).port);
    await equipment.close();
    const down = await fetch(`${gateway.origin}/readyz`);
    const report = (await down.json()) as ReadinessReport;
    assert.equal(down.status, 503);
    assert.deepEqual(report.failed, ['subgraph:equipment']);
    assert.equal(report.checks['subgraph:territory'], 'ok');
    assert.match(report.checks['subgraph:equipment'], /ECONNREFUSED/);

    equipment = hub.subgraphs.equipment = await startSubgraph(equipmentSubgraph, { config: hub.config, port });
    const up = await fetch(`${gateway.origin}/readyz`);
    assert.equal(up.status, 200, JSON.stringify(await up.clone().json()));
    await up.arrayBuffer();
  });

  it('/readyz answers 503 naming the database when it cannot be reached', async () => {
    const config = testConfig(db.url.replace(/\/[^/]+$/, '/connecte_no_such_database'));
    const orphan = await startGateway({ config, port: 0, subgraphUrls: Object.fromEntries(Object.entries(hub.subgraphs).map(([name, s]) => [name, s.url])) });
    try {
      const response = await fetch(`${orphan.origin}/readyz`);
      const report = (await response.json()) as ReadinessReport;
      assert.equal(response.status, 503);
      assert.deepEqual(report.failed, ['database']);
    } finally {
      await orphan.close();
    }
  });
});
