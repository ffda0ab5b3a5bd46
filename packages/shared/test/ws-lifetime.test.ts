/**
 * The limits of a subgraph's graphql-ws connections (ws-limits.ts): subscriptions end when the
 * token does, with the cursor to resume from; a client that stops reading holds back its own
 * stream instead of making the server buffer it; one that floods the server with messages whose
 * answers it never reads is cut off.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import gql from 'graphql-tag';
import { createTestDatabase, type TestDatabase, RawClient } from '@connecte/testkit';
import { signDevelopmentToken, type Role } from '../src/auth.js';
import { loadConfig, type Config } from '../src/config.js';
import { startSubgraph, type RequestContext, type RunningService, type SubgraphService } from '../src/server.js';
import { SEND_BUFFER_LIMIT_BYTES } from '../src/ws-limits.js';

/** Per label: ticks the server took from its source, and sources still open. */
const pulled = new Map<string, number>();
const open = new Map<string, number>();
const bump = (counts: Map<string, number>, label: string, by = 1) => counts.set(label, (counts.get(label) ?? 0) + by);

interface Tick {
  cursor: string;
  n: number;
  padding: string;
}

function ticks(label: string, after: number, everyMs: number, padding: number): AsyncIterableIterator<Tick> {
  let n = after;
  let done = false;
  bump(open, label);
  const iterator: AsyncIterableIterator<Tick> = {
    async next() {
      // Even "as fast as it goes" yields to the event loop, as any real source (a database) does.
      await (everyMs > 0 ? sleep(everyMs) : new Promise((resolve) => setImmediate(resolve)));
      if (done) return { value: undefined, done: true };
      bump(pulled, label);
      n += 1;
      return { value: { cursor: String(n), n, padding: 'x'.repeat(padding) }, done: false };
    },
    async return() {
      if (!done) bump(open, label, -1);
      done = true;
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

const service: SubgraphService<RequestContext> = {
  name: 'ticking',
  typeDefs: gql`
    type Tick {
      cursor: String!
      n: Int!
      padding: String!
    }
    type Query {
      ok: Boolean
    }
    type Subscription {
      ticks(label: String!, after: String, everyMs: Int!, padding: Int! = 0): Tick!
    }
  `,
  resolvers: {
    Query: { ok: () => true },
    Subscription: {
      ticks: {
        subscribe: (_: unknown, args: { label: string; after?: string; everyMs: number; padding: number }) =>
          ticks(args.label, Number(args.after ?? 0), args.everyMs, args.padding),
        resolve: (tick: Tick) => tick,
      },
    },
  },
};

const TICKS = 'subscription($label: String!, $after: String, $everyMs: Int!, $padding: Int!) { ticks(label: $label, after: $after, everyMs: $everyMs, padding: $padding) { cursor n padding } }';

let db: TestDatabase;
let config: Config;
let running: RunningService;

before(async () => {
  db = await createTestDatabase({ seed: false });
  // A year of lifetime allowed, for the long-lived token below.
  config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: db.url, PORT: '0', JWT_MAX_LIFETIME_SECONDS: String(365 * 86_400) });
  running = await startSubgraph(service, { config, port: 0 });
});
after(async () => {
  await running?.close();
  await db?.drop();
});

const bearer = async (expiresIn: string | number, roles: Role[] = ['operator']) =>
  `Bearer ${await signDevelopmentToken({ sub: 'alice', roles, collectivities: ['chalons'], expiresIn }, config)}`;
/** When the hub stops honouring a token: its exp (whole seconds) plus the 5 s of tolerated skew. */
const refusedAt = (authorization: string) =>
  JSON.parse(Buffer.from(authorization.split('.')[1], 'base64url').toString()).exp * 1000 + 5_000;

describe('subgraph subscriptions and the token lifetime', () => {
  it('end at exp + 5 s with UNAUTHENTICATED and the last cursor, then the socket closes with 4403; a fresh token resumes', async () => {
    const authorization = await bearer(2);
    const end = refusedAt(authorization);
    const client = await RawClient.open(running.url, authorization);
    client.subscribe('a', TICKS, { label: 'expiring-a', everyMs: 100, padding: 0 });
    client.subscribe('b', TICKS, { label: 'expiring-b', everyMs: 100, padding: 0 });
    client.subscribe('no-cursor', 'subscription { ticks(label: "expiring-c", everyMs: 100) { n } }');
    await client.until(() => client.close !== null, 'the socket to close', 12_000);
    const withoutCursor = client.of('no-cursor').at(-1)!;
    assert.equal(withoutCursor.payload[0].extensions.reason, 'TOKEN_EXPIRED');
    assert.equal(withoutCursor.payload[0].extensions.cursor, null, 'no cursor to give when none is selected');

    for (const id of ['a', 'b']) {
      const messages = client.of(id);
      const nexts = messages.filter((m) => m.type === 'next');
      const last = messages.at(-1)!;
      assert.ok(nexts.length >= 20, `ticks flowed until the end (${nexts.length})`);
      assert.equal(last.type, 'error', JSON.stringify(last));
      assert.equal(messages.filter((m) => m.type !== 'next').length, 1, 'one error, no complete');
      assert.equal(last.payload[0].extensions.code, 'UNAUTHENTICATED');
      assert.equal(last.payload[0].extensions.reason, 'TOKEN_EXPIRED');
      assert.equal(last.payload[0].extensions.cursor, nexts.at(-1)!.payload.data.ticks.cursor, 'the last delivered cursor');
      assert.match(last.payload[0].message, /^token expired: connect again with a fresh token/);
      assert.ok(last.at >= end - 20, `not before exp + 5 s (${last.at - end} ms)`);
      assert.ok(last.at <= end + 1_000, `at exp + 5 s (${last.at - end} ms late)`);
      assert.ok(nexts.at(-1)!.at <= last.at);
    }
    assert.deepEqual(client.close && { code: client.close.code, reason: client.close.reason }, { code: 4403, reason: 'token expired' });
    assert.ok(client.close!.at <= end + 1_000);
    await client.until(() => (open.get('expiring-a') ?? 0) === 0 && (open.get('expiring-b') ?? 0) === 0, 'the sources to be returned');

    // The same token is refused now, as it would be over HTTP.
    const again = await RawClient.open(running.url, authorization);
    await again.until(() => again.close !== null, 'the refusal');
    assert.equal(again.close!.code, 4401);
    assert.match(again.close!.reason, /token expired/);

    const cursor = client.of('a').at(-1)!.payload[0].extensions.cursor as string;
    const fresh = await RawClient.open(running.url, await bearer('1h'));
    fresh.subscribe('a', TICKS, { label: 'resumed', after: cursor, everyMs: 0, padding: 0 });
    await fresh.until(() => fresh.of('a').length > 0, 'the resumed stream');
    assert.equal(fresh.of('a')[0].payload.data.ticks.n, Number(cursor) + 1, 'resumes right after the cursor');
    fresh.terminate();
  });

  it('refuses an operation sent once the token has expired, while the errors ending the others wait for the client', async () => {
    const authorization = await bearer(1);
    const end = refusedAt(authorization);
    const client = await RawClient.open(running.url, authorization);
    // Big ticks as fast as they go: once the client stops reading, the server's send waits.
    client.subscribe('a', TICKS, { label: 'paused-at-expiry', everyMs: 0, padding: 65_536 });
    await client.until(() => client.of('a').length > 0, 'a first tick');
    client.pause();
    await sleep(end - Date.now() + 300);
    client.subscribe('late', TICKS, { label: 'late', everyMs: 0, padding: 0 });
    await sleep(200);
    client.resume();
    await client.until(() => client.close !== null, 'the socket to close');
    assert.equal(client.of('a').at(-1)!.payload[0].extensions.reason, 'TOKEN_EXPIRED');
    assert.deepEqual(
      client.of('late').map((m) => [m.type, m.payload[0].extensions.code, m.payload[0].extensions.reason]),
      [['error', 'UNAUTHENTICATED', 'TOKEN_EXPIRED']],
    );
    assert.equal(pulled.get('late'), undefined, 'the refused operation never ran');
    assert.equal(client.close!.code, 4403);
  });

  it('closes an idle connection with 4403 when its token expires', async () => {
    const authorization = await bearer(1);
    const client = await RawClient.open(running.url, authorization);
    await client.until(() => client.close !== null, 'the socket to close', 10_000);
    assert.equal(client.close!.code, 4403);
    assert.ok(Math.abs(client.close!.at - refusedAt(authorization)) < 1_000, `${client.close!.at - refusedAt(authorization)} ms`);
  });

  it('keeps a connection whose token lives longer than a timer can wait (40 days)', async () => {
    const client = await RawClient.open(running.url, await bearer('40d'));
    client.subscribe('a', TICKS, { label: 'long-lived', everyMs: 20, padding: 0 });
    await sleep(500);
    assert.ok(client.of('a').length >= 5);
    assert.ok(client.of('a').every((m) => m.type === 'next'), JSON.stringify(client.of('a').find((m) => m.type !== 'next')));
    assert.equal(client.close, null);
    client.terminate();
  });

  it('lets public connections live on', async () => {
    const client = await RawClient.open(running.url);
    client.subscribe('a', TICKS, { label: 'public', everyMs: 20, padding: 0 });
    await sleep(300);
    assert.ok(client.of('a').length >= 5 && client.of('a').every((m) => m.type === 'next'));
    client.terminate();
  });
});

describe('subgraph subscriptions and slow clients', () => {
  it('take no more events from the source than the socket holds while the client does not read; others are unaffected', async () => {
    const slow = await RawClient.open(running.url, await bearer('1h'));
    const reader = await RawClient.open(running.url, await bearer('1h'));
    slow.subscribe('a', TICKS, { label: 'slow', everyMs: 0, padding: 16_384 });
    await slow.until(() => slow.of('a').length > 0, 'a first tick');
    slow.pause();
    reader.subscribe('a', TICKS, { label: 'reader', everyMs: 5, padding: 0 });
    await sleep(1_500);
    const held = pulled.get('slow')!;
    const readBefore = reader.of('a').length;
    await sleep(1_000);
    assert.equal(pulled.get('slow'), held, 'the stream waits for the client instead of buffering');
    // What the kernel buffers (a few MB on loopback), not what the process would.
    assert.ok(held * 16_384 < 64 * 1024 * 1024, `${held} ticks of 16 KiB taken`);
    assert.ok(reader.of('a').length > readBefore + 50, 'the reading client kept receiving');
    slow.resume();
    await slow.until(() => (pulled.get('slow') ?? 0) > held + 100, 'the stream to go on once the client reads');
    const ns = slow.of('a').map((m) => m.payload.data.ticks.n);
    assert.deepEqual(ns, ns.map((_, i) => i + 1), 'nothing lost nor repeated');
    slow.terminate();
    reader.terminate();
  });

  it('cut off a client that sends messages and never reads the answers, once they pass the send buffer limit', async () => {
    const flooder = await RawClient.open(running.url);
    const reader = await RawClient.open(running.url);
    reader.subscribe('a', TICKS, { label: 'beside-the-flood', everyMs: 5, padding: 0 });
    flooder.pause();
    // graphql-ws echoes a ping's payload in its pong: 40 × 900 kB of answers never read.
    const payload = { echo: 'p'.repeat(900_000) };
    for (let i = 0; i < 40 && flooder.close === null; i++) {
      flooder.send({ type: 'ping', payload });
      await sleep(10);
    }
    assert.ok(40 * 900_000 > SEND_BUFFER_LIMIT_BYTES + 8 * 1024 * 1024, 'the flood outgrows the limit and the kernel buffers');
    flooder.resume();
    await flooder.until(() => flooder.close !== null, 'the flooder to be cut off');
    assert.equal(flooder.close!.code, 1006, 'terminated: a close frame could not have reached it');
    assert.ok(flooder.messages.filter((m) => m.type === 'pong').length < 40, 'not every pong was kept for it');
    assert.ok(reader.of('a').length > 10 && reader.close === null, 'the other client is unaffected');
    reader.terminate();
  });
});
