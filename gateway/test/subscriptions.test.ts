/**
 * Subscriptions through the gateway, over graphql-ws on /graphql: the root field comes from the
 * equipment subgraph over graphql-ws, the collectivity's name from territory for each event. A
 * client that goes away ends the upstream subscription; a bad token is refused at connection_init.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import type { RunningService } from '@connecte/shared/server';
import { createTestDatabase, type TestDatabase, gql, startHub, testConfig, tokenFor, type Hub } from '@connecte/testkit';
import { startGateway, type RunningGateway } from '../src/server.js';

const CHANGES = `subscription Changes($kinds: [EquipmentKind!]) {
  equipmentChanged(kinds: $kinds) { change equipment { id reference collectivity { id name } } } }`;

const REGISTER = `mutation Register($input: RegisterEquipmentInput!) { registerEquipment(input: $input) { id } }`;

interface Change {
  change: string;
  equipment: { id: string; reference: string; collectivity: { id: string; name: string } };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('subscriptions through the gateway', () => {
  let db: TestDatabase;
  let config: ReturnType<typeof testConfig>;
  let territory: RunningService;
  let equipment: RunningService;
  let gateway: RunningGateway;
  let hub: Hub;
  let wsUrl: string;
  let operatorToken: string;
  const clients: Client[] = [];
  let registered = 0;

  // What the equipment subgraph itself still streams: proves the upstream subscription really ended
  // there, not only in the gateway's own count; the background consumers of the same bus (alarm-status) follow other topics. (The bus keeps its subscribers private.)
  const subgraphSubscribers = () => [...(equipment.events as unknown as { subscribers: Set<{ topics: Set<string> }> }).subscribers].filter((s) => s.topics.has('equipment.changed')).length;

  const connect = (connectionParams: Record<string, unknown> = {}) => {
    const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams, lazy: true, retryAttempts: 0 });
    clients.push(client);
    return client;
  };

  const registerLightPoint = async () => {
    const reference = `GW-SUB-${++registered}`;
    const response = await gql(gateway.url, REGISTER, {
      token: operatorToken,
      variables: {
        input: {
          kind: 'LIGHT_POINT',
          reference,
          collectivityId: 'chalons',
          location: { lon: 4.365, lat: 48.9566 },
          details: { powerW: 40, lampType: 'LED', dimmable: true },
        },
      },
    });
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    return reference;
  };

  before(async () => {
    db = await createTestDatabase({ seed: true });
    hub = await startHub(db.url);
    ({ config, gateway } = hub);
    ({ territory, equipment } = hub.subgraphs);
    wsUrl = gateway.url.replace(/^http/, 'ws');
    operatorToken = await tokenFor(config, ['operator'], ['chalons']);
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await hub?.close();
    await db?.drop();
  });

  it('delivers a registration made through the gateway, completed with the collectivity name from territory', async () => {
    const client = connect({ authorization: `Bearer ${operatorToken}` });
    const received: Change[] = [];
    const errors: unknown[] = [];
    const unsubscribe = client.subscribe<{ equipmentChanged: Change }>(
      { query: CHANGES, variables: { kinds: ['LIGHT_POINT'] } },
      {
        next: (result) => (result.errors ? errors.push(result.errors) : received.push(result.data!.equipmentChanged)),
        error: (error) => errors.push(error),
        complete: () => {},
      },
    );
    await until(() => gateway.upstreamSubscriptions() === 1, 'the upstream subscription');

    // The subgraph delivers changes committed after its subscription started, which the gateway
    // cannot observe: register until one arrives (the first one almost always does).
    const references: string[] = [];
    for (let attempt = 0; attempt < 10 && received.length === 0; attempt++) {
      references.push(await registerLightPoint());
      await until(() => received.length > 0, 'an event', 1000).catch(() => {});
    }
    assert.deepEqual(errors, []);
    assert.ok(received.length > 0, 'an equipmentChanged event arrived');
    const [event] = received;
    assert.equal(event.change, 'REGISTERED');
    assert.ok(references.includes(event.equipment.reference), event.equipment.reference);
    assert.equal(event.equipment.collectivity.id, 'chalons');
    const { data } = await gql(territory.url, '{ collectivity(id: "chalons") { name } }');
    assert.ok(data.collectivity.name.length > 0);
    assert.equal(event.equipment.collectivity.name, data.collectivity.name, 'the rest of the plan ran against territory');

    // A second subscription keeps the socket open: completing the first must end its upstream alone.
    client.subscribe({ query: CHANGES, variables: { kinds: ['CAMERA'] } }, { next: () => {}, error: () => {}, complete: () => {} });
    await until(() => gateway.upstreamSubscriptions() === 2 && subgraphSubscribers() === 2, 'the second upstream subscription');
    unsubscribe();
    await until(() => gateway.upstreamSubscriptions() === 1, 'the upstream subscription to end after complete');
    await until(() => subgraphSubscribers() === 1, 'the equipment subgraph to stop streaming it');
    await client.dispose();
    await until(() => subgraphSubscribers() === 0, 'the equipment subgraph to stop streaming');
  });

  it('answers a subscription sent over HTTP with 400 saying where subscriptions are served', async () => {
    const response = await gql(gateway.url, CHANGES);
    assert.equal(response.status, 400);
    assert.equal(response.errors?.[0].extensions?.code, 'BAD_REQUEST');
    assert.match(response.errors?.[0].message ?? '', /graphql-ws/);
  });

  it('serves queries over the same socket', async () => {
    const client = connect();
    const result = await new Promise<any>((resolve, reject) => {
      client.subscribe({ query: '{ equipmentSearch(first: 1) { edges { node { collectivity { name } } } } }' }, {
        next: resolve,
        error: reject,
        complete: () => {},
      });
    });
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    assert.ok(result.data.equipmentSearch.edges[0].node.collectivity.name.length > 0);
  });

  it('ends the upstream subscription when the client disconnects', async () => {
    const client = connect({ authorization: `Bearer ${operatorToken}` });
    let closed = false;
    client.on('closed', () => (closed = true));
    client.subscribe({ query: CHANGES }, { next: () => {}, error: () => {}, complete: () => {} });
    await until(() => gateway.upstreamSubscriptions() === 1 && subgraphSubscribers() === 1, 'the upstream subscription');
    await client.dispose();
    await until(() => closed, 'the client socket to close');
    await until(() => gateway.upstreamSubscriptions() === 0, 'the upstream subscription to end after disconnect');
    await until(() => subgraphSubscribers() === 0, 'the equipment subgraph to stop streaming');
  });

  for (const [what, authorization] of [
    ['a malformed token', async () => 'Bearer not-a-jwt'],
    ['an expired token', async () => `Bearer ${await tokenFor(config, ['operator'], ['chalons'], '-1m')}`],
  ] as const) {
    it(`refuses ${what} in connection_init`, async () => {
      const client = connect({ authorization: await authorization() });
      const outcome = await new Promise<unknown>((resolve) => {
        client.subscribe({ query: CHANGES }, { next: () => resolve('next'), error: resolve, complete: () => resolve('complete') });
      });
      assert.equal((outcome as { code?: number }).code, 4401, String(outcome));
      assert.match((outcome as { reason?: string }).reason ?? '', /^Unauthorized: /);
      assert.equal(gateway.upstreamSubscriptions(), 0);
    });
  }

  it('reports an owning subgraph that cannot be reached as an error naming it, and holds nothing open', async () => {
    const orphan = await startGateway({
      config,
      port: 0,
      subgraphUrls: { territory: territory.url, equipment: 'http://127.0.0.1:9/graphql' },
    });
    try {
      const client = createClient({ url: orphan.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
      clients.push(client);
      const results: any[] = [];
      await new Promise<void>((resolve, reject) => {
        client.subscribe({ query: CHANGES }, { next: (result) => results.push(result), error: reject, complete: resolve });
      });
      assert.equal(results.length, 1, JSON.stringify(results));
      assert.equal(results[0].errors[0].extensions.code, 'SUBSCRIPTION_UPSTREAM_CLOSED');
      assert.equal(results[0].errors[0].extensions.serviceName, 'equipment');
      assert.doesNotMatch(results[0].errors[0].message, /127\.0\.0\.1|:9\b/);
      assert.equal(orphan.upstreamSubscriptions(), 0);
    } finally {
      await orphan.close();
    }
  });

  it('reports a subgraph refusal of the subscription as a GraphQL error with its code', async () => {
    const client = connect();
    const result = await new Promise<any>((resolve, reject) => {
      client.subscribe(
        { query: 'subscription { equipmentChanged(after: "not-a-cursor") { change } }' },
        { next: resolve, error: resolve, complete: () => reject(new Error('completed without a result')) },
      );
    });
    const errors = Array.isArray(result) ? result : result.errors;
    assert.ok(Array.isArray(errors) && errors.length > 0, JSON.stringify(result));
    assert.equal(errors[0].extensions?.code, 'BAD_USER_INPUT', JSON.stringify(errors));
    assert.equal(errors[0].extensions?.stacktrace, undefined);
    await until(() => gateway.upstreamSubscriptions() === 0, 'the upstream subscription to end');
  });
});
