/**
 * Limits of subscriptions through the gateway (see @connecte/shared/ws-limits): they end when
 * the token expires, at the gateway and at the subgraph, with the cursor to resume from; and a
 * client that stops reading has its events queued up to SUBSCRIPTION_QUEUE_LIMIT, past which its
 * subscription alone ends with SUBSCRIPTION_TOO_SLOW, while the others get every event.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type Client } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { publishEvents } from '@connecte/shared/events';
import { createTestDatabase, type TestDatabase, startHub, tokenFor, type Hub, RawClient } from '@connecte/testkit';

const QUEUE_LIMIT = 20;
const CHANGES = `subscription Changes($after: String) {
  equipmentChanged(after: $after, collectivityIds: ["chalons"]) { cursor change equipment { id reference name } } }`;

describe('subscription limits through the gateway', () => {
  let db: TestDatabase;
  let hub: Hub;
  let pool: pg.Pool;
  let lightPoint: { id: string; kind: string };
  const clients: Client[] = [];

  const subgraphSubscribers = () => [...(hub.subgraphs.equipment.events as unknown as { subscribers: Set<{ topics: Set<string> }> }).subscribers].filter((s) => s.topics.has('equipment.changed')).length;

  /** Commits `count` changes of one light point; returns their cursors in order. */
  const publish = async (count: number): Promise<string[]> => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const payload = { equipmentId: lightPoint.id, change: 'UPDATED', kind: lightPoint.kind, status: 'IN_SERVICE' };
      const ids = await publishEvents(client, Array.from({ length: count }, () => ({ topic: 'equipment.changed', collectivityId: 'chalons', payload })));
      await client.query('COMMIT');
      return ids;
    } finally {
      client.release();
    }
  };

  /** A graphql-ws client that keeps the cursors it receives, and how the stream ended. */
  const reader = (token: string, after?: string) => {
    const client = createClient({ url: hub.gatewayUrl.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    clients.push(client);
    const state = { cursors: [] as string[], errors: [] as unknown[], completed: false };
    client.subscribe<{ equipmentChanged: { cursor: string } }>(
      { query: CHANGES, variables: after ? { after } : {} },
      {
        next: (result) => (result.errors ? state.errors.push(result.errors) : state.cursors.push(result.data!.equipmentChanged.cursor)),
        error: (error) => state.errors.push(error),
        complete: () => (state.completed = true),
      },
    );
    return state;
  };

  const until = async (condition: () => boolean, what: string, timeoutMs = 10_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  };

  before(async () => {
    db = await createTestDatabase({ seed: true });
    hub = await startHub(db.url, { SUBSCRIPTION_QUEUE_LIMIT: String(QUEUE_LIMIT), RATE_LIMIT_PER_TOKEN: '0', RATE_LIMIT_PER_ADDRESS: '0' });
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    ({ rows: [lightPoint] } = await pool.query(`SELECT id, kind::text AS kind FROM equipment WHERE kind = 'LIGHT_POINT' AND collectivity_id = 'chalons' LIMIT 1`));
  });
  after(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await pool?.end();
    await hub?.close();
    await db?.drop();
  });

  it('ends a subscription at exp + 5 s, at the gateway and the subgraph, with the last cursor; a fresh token resumes without loss', async () => {
    const token = await tokenFor(hub.config, ['operator'], ['chalons'], '2s');
    const end = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()).exp * 1000 + 5_000;
    const client = await RawClient.open(hub.gatewayUrl, `Bearer ${token}`);
    client.subscribe('a', CHANGES);
    await until(() => hub.gateway.upstreamSubscriptions() === 1 && subgraphSubscribers() === 1, 'the upstream subscription');

    const published: string[] = [];
    while (Date.now() < end + 1_000) {
      published.push(...(await publish(1)));
      await sleep(100);
    }
    await client.until(() => client.close !== null, 'the socket to close');

    const messages = client.of('a');
    const nexts = messages.filter((m) => m.type === 'next');
    const last = messages.at(-1)!;
    assert.ok(nexts.length >= 10, `changes flowed until the end (${nexts.length})`);
    assert.equal(last.type, 'error', JSON.stringify(last));
    assert.equal(messages.filter((m) => m.type !== 'next').length, 1, 'one error, no complete');
    const [error] = last.payload;
    assert.equal(error.extensions.code, 'UNAUTHENTICATED', JSON.stringify(error));
    assert.equal(error.extensions.reason, 'TOKEN_EXPIRED');
    const cursor = nexts.at(-1)!.payload.data.equipmentChanged.cursor;
    assert.equal(error.extensions.cursor, cursor, 'the last delivered cursor');
    assert.ok(last.at >= end - 20, `not before exp + 5 s (${last.at - end} ms)`);
    assert.ok(last.at <= end + 1_000, `at exp + 5 s (${last.at - end} ms late)`);
    assert.deepEqual([client.close!.code, client.close!.reason], [4403, 'token expired']);
    await until(() => hub.gateway.upstreamSubscriptions() === 0 && subgraphSubscribers() === 0, 'nothing left streaming');

    const expired = await RawClient.open(hub.gatewayUrl, `Bearer ${token}`);
    await expired.until(() => expired.close !== null, 'the refusal');
    assert.equal(expired.close!.code, 4401, 'the expired token cannot reconnect');

    const resumed = reader(await tokenFor(hub.config, ['operator'], ['chalons']), cursor);
    const missed = published.slice(published.indexOf(cursor) + 1);
    assert.ok(missed.length > 0, 'changes were committed after the end');
    await until(() => resumed.cursors.length >= missed.length, 'the changes after the cursor');
    assert.deepEqual(resumed.cursors, missed, 'nothing lost nor repeated');
    assert.deepEqual(resumed.errors, []);
    assert.deepEqual(
      [...nexts.map((m) => m.payload.data.equipmentChanged.cursor), ...resumed.cursors],
      published.slice(published.indexOf(nexts[0].payload.data.equipmentChanged.cursor)),
    );
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
  });

  it(`ends the subscription of a client that stops reading once ${QUEUE_LIMIT} events wait for it; another client gets every event`, async () => {
    const token = await tokenFor(hub.config, ['operator'], ['chalons']);
    const slow = await RawClient.open(hub.gatewayUrl, `Bearer ${token}`);
    slow.subscribe('a', CHANGES);
    const fast = reader(token);
    await until(() => hub.gateway.upstreamSubscriptions() === 2 && subgraphSubscribers() === 2, 'both upstream subscriptions');
    // Big events (a 20 kB name), so that the kernel's socket buffers (some MB) fill quickly, after
    // which events wait at the gateway; and the paused client is done with before graphql-ws'
    // keep-alive (12 s) drops it for not answering pings.
    await pool.query(`UPDATE equipment SET name = repeat('n', 20000) WHERE id = $1`, [lightPoint.id]);
    const [first] = await publish(1);
    await slow.until(() => slow.of('a').length === 1, 'a first change');
    slow.pause();

    const published = [first];
    while (hub.gateway.upstreamSubscriptions() === 2) {
      assert.ok(published.length < 5_000, 'the slow subscription never ended');
      published.push(...(await publish(50)));
      await until(() => fast.cursors.length === published.length, 'the reading client to keep up', 30_000);
    }
    // Its upstream has ended while it still does not read: nothing more is held for it.
    assert.equal(hub.gateway.upstreamSubscriptions(), 1);
    await until(() => subgraphSubscribers() === 1, 'the subgraph to stop streaming to it');
    published.push(...(await publish(500)));
    await until(() => fast.cursors.length === published.length, 'the reading client to get every change', 30_000);
    assert.deepEqual(fast.cursors, published, 'the reading client got every change, in order');
    assert.deepEqual(fast.errors, []);

    slow.resume();
    await slow.until(() => slow.of('a').at(-1)?.type === 'error', 'the error ending the slow subscription', 30_000);
    const nexts = slow.of('a').filter((m) => m.type === 'next').map((m) => m.payload.data.equipmentChanged.cursor as string);
    const [error] = slow.of('a').at(-1)!.payload;
    assert.equal(error.extensions.code, 'SUBSCRIPTION_TOO_SLOW', JSON.stringify(error));
    assert.equal(error.extensions.limit, QUEUE_LIMIT);
    assert.match(error.message, /more than 20 events were waiting/);
    assert.equal(error.extensions.cursor, nexts.at(-1), 'the last delivered cursor');
    assert.deepEqual(nexts, published.slice(0, nexts.length), 'what it got, it got in order');
    assert.ok(nexts.length < published.length);
    assert.equal(slow.close, null, 'the connection stays: only that subscription ended');

    // Subscribing again from the cursor brings the rest.
    slow.subscribe('b', CHANGES, { after: error.extensions.cursor });
    await slow.until(() => slow.of('b').length >= published.length - nexts.length, 'the rest', 30_000);
    assert.deepEqual(
      slow.of('b').map((m) => m.payload.data.equipmentChanged.cursor),
      published.slice(nexts.length),
    );
    slow.terminate();
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
    await until(() => subgraphSubscribers() === 0, 'nothing left streaming');
  });

  it('cuts off a client that floods the gateway with pings and never reads the pongs', async () => {
    const flooder = await RawClient.open(hub.gatewayUrl);
    const beside = reader(await tokenFor(hub.config, ['operator'], ['chalons']));
    await until(() => subgraphSubscribers() >= 1, 'the other subscription');
    flooder.pause();
    const payload = { echo: 'p'.repeat(900_000) };
    for (let i = 0; i < 40; i++) {
      flooder.send({ type: 'ping', payload });
      await sleep(10);
    }
    flooder.resume();
    await flooder.until(() => flooder.close !== null, 'the flooder to be cut off');
    assert.equal(flooder.close!.code, 1006);
    assert.ok(flooder.messages.filter((m) => m.type === 'pong').length < 40);
    const [cursor] = await publish(1);
    await until(() => beside.cursors.includes(cursor), 'the other client to go on');
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
    await until(() => subgraphSubscribers() === 0, 'nothing left streaming');
  });

  it('holds a bounded backlog at the subgraph for its own client that stops reading, and delivers it all once it reads', async () => {
    await pool.query(`UPDATE equipment SET name = 'Lanterne' WHERE id = $1`, [lightPoint.id]);
    type Bus = { subscribers: Set<{ queue: unknown[] }> };
    const bus = hub.subgraphs.equipment.events as unknown as Bus;
    const direct = await RawClient.open(hub.subgraphs.equipment.url, `Bearer ${await tokenFor(hub.config, ['operator'], ['chalons'])}`);
    direct.subscribe('a', CHANGES);
    await until(() => subgraphSubscribers() === 1, 'the subscription at the subgraph');
    const published = await publish(1);
    await direct.until(() => direct.of('a').length === 1, 'a first change');
    direct.pause();
    let deepest = 0;
    for (let batch = 0; batch < 4; batch++) {
      published.push(...(await publish(1_000)));
      await sleep(300);
      for (const subscriber of bus.subscribers) deepest = Math.max(deepest, subscriber.queue.length);
    }
    // The bus stops feeding a subscriber this far behind and reads the table for it later.
    assert.ok(deepest <= 1_500, `${deepest} events queued for a client that does not read`);
    direct.resume();
    await direct.until(() => direct.of('a').length === published.length, 'every change', 60_000);
    assert.deepEqual(direct.of('a').map((m) => m.payload.data.equipmentChanged.cursor), published, 'nothing lost nor repeated');
    direct.terminate();
  });
});
