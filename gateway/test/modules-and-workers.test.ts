/**
 * The gateway mounts its HTTP modules by declaration (gateway/src/modules.ts) and runs their
 * workers and its own like a subgraph does: started before it listens, on /readyz, stopped
 * before the modules release their pools; a worker that cannot start refuses the gateway.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import mqtt from 'mqtt';
import gql from 'graphql-tag';
import { createLogger } from '@connecte/shared/log';
import { readBody } from '@connecte/shared/http';
import { refuseRequest } from '@connecte/shared/problem';
import { startSubgraph } from '@connecte/shared/server';
import { WorkerStartError, type Worker } from '@connecte/shared/workers';
import { createTestDatabase, type TestDatabase, startHub, type Hub } from '@connecte/testkit';
import { checkModules, GATEWAY_MODULES, type GatewayModule } from '../src/modules.js';
import { startGateway } from '../src/server.js';

const silent = createLogger('gateway', { LOG_LEVEL: 'silent' });

/** A poller: a real timer doing work on an interval, stopped by clearing it. */
function poller(trace: string[]): Worker {
  let timer: NodeJS.Timeout | undefined;
  let ticks = 0;
  return {
    name: 'poller',
    start: async () => {
      timer = setInterval(() => ticks++, 10);
    },
    stop: async () => {
      clearInterval(timer);
      timer = undefined;
      trace.push('poller stopped');
    },
    status: () => (timer ? { ready: true, state: `running (${ticks} ticks)` } : { ready: false, state: 'stopped' }),
  };
}

describe('gateway modules and workers', () => {
  let db: TestDatabase;
  let hub: Hub;
  before(async () => {
    db = await createTestDatabase({ seed: false });
    hub = await startHub(db.url);
  });
  after(async () => {
    await hub?.close();
    await db?.drop();
  });
  const subgraphUrls = () => Object.fromEntries(Object.entries(hub.subgraphs).map(([name, service]) => [name, service.url]));

  it('mounts the declared modules only, reports their workers on /readyz, stops them before releasing the modules', async () => {
    const trace: string[] = [];
    const probe: GatewayModule = {
      prefix: '/probe',
      create: () => ({
        handle: (request, response) => void response.writeHead(200, { 'content-type': 'text/plain' }).end(`probe ${request.url}`),
        workers: [poller(trace)],
        close: async () => void trace.push('module closed'),
      }),
    };
    const gateway = await startGateway({ config: hub.config, port: 0, subgraphUrls: subgraphUrls(), modules: [probe], log: silent });
    try {
      const served = await fetch(`${gateway.origin}/probe/x?y=1`);
      assert.equal(await served.text(), 'probe /probe/x?y=1');
      const notDeclared = await fetch(`${gateway.origin}/opendata/catalog.jsonld`);
      assert.equal(notDeclared.status, 404, 'open data is mounted only when declared');
      await notDeclared.arrayBuffer();
      const ready = await fetch(`${gateway.origin}/readyz`);
      const report = (await ready.json()) as { checks: Record<string, string> };
      assert.equal(ready.status, 200, JSON.stringify(report));
      assert.match(report.checks.poller, /^running/);
    } finally {
      await gateway.close();
    }
    assert.deepEqual(trace, ['poller stopped', 'module closed']);
  });

  it('a worker that throws at start refuses the gateway, naming the worker and why', async () => {
    const broker: Worker = {
      name: 'mqtt',
      start: async () => void (await mqtt.connectAsync('mqtt://127.0.0.1:1', { reconnectPeriod: 0, connectTimeout: 2_000 })),
      stop: async () => {},
      status: () => ({ ready: false, state: 'disconnected' }),
    };
    await assert.rejects(
      startGateway({ config: hub.config, port: 0, subgraphUrls: subgraphUrls(), modules: [], workers: [broker], log: silent }),
      (error: unknown) => error instanceof WorkerStartError && error.worker === 'mqtt' && /ECONNREFUSED/.test(error.message),
    );
  });

  it('forwards a route a subgraph declares to that subgraph (method, path, query, body), and answers 502 when it is down', async () => {
    const open311 = await startSubgraph(
      {
        name: 'tickets',
        typeDefs: gql`
          extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
          type Query { ping: String }
        `,
        resolvers: { Query: { ping: () => 'pong' } },
        routes: {
          '/open311/v2': async (request, response) => {
            const body = await readBody(request, 1024);
            response.writeHead(201, { 'content-type': 'application/json', 'x-served-by': 'tickets' });
            response.end(JSON.stringify({ method: request.method, url: request.url, body, forwardedHost: request.headers['x-forwarded-host'] }));
          },
        },
      },
      { config: hub.config, port: 0, log: createLogger('tickets', { LOG_LEVEL: 'silent' }) },
    );
    const gateway = await startGateway({
      config: hub.config,
      port: 0,
      subgraphUrls: { ...subgraphUrls(), equipment: open311.url },
      subgraphRoutes: [{ prefix: '/open311/v2', subgraph: 'equipment' }],
      log: silent,
    });
    try {
      const response = await fetch(`${gateway.origin}/open311/v2/requests.json?service_code=LIGHT`, { method: 'POST', body: 'description=dark+street' });
      assert.equal(response.status, 201);
      assert.equal(response.headers.get('x-served-by'), 'tickets');
      assert.deepEqual(await response.json(), {
        method: 'POST',
        url: '/open311/v2/requests.json?service_code=LIGHT',
        body: 'description=dark+street',
        forwardedHost: new URL(gateway.origin).host,
      });
      const beside = await fetch(`${gateway.origin}/open311/v3`);
      assert.equal(beside.status, 404, 'only the prefix and what is under it');
      await beside.arrayBuffer();

      await open311.close();
      const down = await fetch(`${gateway.origin}/open311/v2/services.json`);
      assert.equal(down.status, 502);
      assert.match(down.headers.get('content-type') ?? '', /^application\/problem\+json/);
      const problem = (await down.json()) as { code: string; detail: string };
      assert.equal(problem.code, 'SUBGRAPH_UNAVAILABLE');
      assert.match(problem.detail, /the equipment subgraph is not reachable \(ECONNREFUSED\)/);
    } finally {
      await gateway.close();
      await open311.close();
    }
  });

  it('passes on a subgraph’s early refusal of a large body (413 and its reason) instead of a 502', async () => {
    const refusing = await startSubgraph(
      {
        name: 'tickets',
        typeDefs: gql`
          extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
          type Query { ping: String }
        `,
        resolvers: { Query: { ping: () => 'pong' } },
        routes: {
          // Refuses on the declared length, before reading anything (the shared lingering close).
          '/tickets': (request, response) =>
            refuseRequest(request, response, 413, { code: 'PAYLOAD_TOO_LARGE', detail: `refused ${request.headers['content-length']} bytes` }),
        },
      },
      { config: hub.config, port: 0, log: createLogger('tickets', { LOG_LEVEL: 'silent' }) },
    );
    const gateway = await startGateway({
      config: hub.config,
      port: 0,
      subgraphUrls: { ...subgraphUrls(), equipment: refusing.url },
      subgraphRoutes: [{ prefix: '/tickets', subgraph: 'equipment' }],
      log: silent,
    });
    try {
      for (const size of [8 * 1024 * 1024, 3 * 1024 * 1024]) {
        const response = await fetch(`${gateway.origin}/tickets/photos`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(size) });
        assert.equal(response.status, 413, `a ${size}-byte body`);
        assert.equal(((await response.json()) as { detail: string }).detail, `refused ${size} bytes`);
      }
      // The gateway still serves after it.
      const after = await fetch(`${gateway.origin}/healthz`);
      assert.equal(after.status, 200);
      await after.arrayBuffer();
    } finally {
      await gateway.close();
      await refusing.close();
    }
  });

  it('declares open data under /opendata by default, and refuses two modules on one prefix or a reserved path', () => {
    assert.deepEqual(GATEWAY_MODULES.map((module) => module.prefix), ['/opendata']);
    const at = (prefix: string): GatewayModule => ({ prefix, create: () => ({ handle: () => {} }) });
    assert.throws(() => checkModules([at('/opendata'), at('/opendata')], []), /module prefix "\/opendata" is already served/);
    assert.throws(() => checkModules([at('/graphql')], ['/graphql']), /module prefix "\/graphql" is already served/);
    assert.throws(() => checkModules([at('open311/')], []), /module prefix "open311\/" must be a path/);
  });
});
