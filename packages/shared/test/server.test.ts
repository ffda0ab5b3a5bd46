import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import gql from 'graphql-tag';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { requireRoleIn, signDevelopmentToken } from '../src/auth.js';
import { loadConfig, type Config } from '../src/config.js';
import { createDatabase } from '../src/db.js';
import { publishEvent, type BusEvent } from '../src/events.js';
import { createLogger } from '../src/log.js';
import { startSubgraph, type RequestContext, type RunningService, type SubgraphService } from '../src/server.js';

interface TestContext extends RequestContext {
  greeting: string;
}

const service: SubgraphService<TestContext> = {
  name: 'testing',
  typeDefs: gql`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    enum Color {
      RED
      GREEN
    }
    type Thing @key(fields: "id") {
      id: ID!
      name: String!
    }
    type Me {
      sub: String
      roles: [String!]!
    }
    type Query {
      hello: String!
      me: Me!
      boom: String
      color(c: Color!): Color!
      double(n: Int!): Int!
      adminOnly: String
    }
    type Subscription {
      thingChanged(after: String): Thing!
    }
  `,
  resolvers: {
    Query: {
      hello: (_: unknown, __: unknown, ctx: TestContext) => ctx.greeting,
      me: (_: unknown, __: unknown, ctx: TestContext) => ctx.viewer,
      boom: () => {
        throw new Error('connection to 10.0.0.7 refused: password authentication failed');
      },
      color: (_: unknown, args: { c: string }) => args.c,
      double: (_: unknown, args: { n: number }) => args.n * 2,
      adminOnly: (_: unknown, __: unknown, ctx: TestContext) => {
        requireRoleIn(ctx.viewer, 'chalons', ['admin'], 'adminOnly');
        return 'secret';
      },
    },
    Thing: {
      __resolveReference: (ref: { id: string }) => ({ id: ref.id, name: `thing ${ref.id}` }),
    } as never,
    Subscription: {
      thingChanged: {
        subscribe: (_: unknown, args: { after?: string }, ctx: TestContext) =>
          ctx.events.subscribe({ topics: ['thing.changed'], after: args.after ?? null }),
        resolve: (event: BusEvent<{ name: string }>) => ({ id: event.id, name: event.payload.name }),
      },
    },
  },
  extendContext: (base) => ({ ...base, greeting: 'bonjour' }),
};

let db: TestDatabase;
let config: Config;
let running: RunningService;
const logLines: Record<string, unknown>[] = [];
const resourcesBefore = new Map<string, number>();

const countResources = () => {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
};

before(async () => {
  db = await createTestDatabase({ seed: false });
  config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info', DATABASE_URL: db.url, PORT: '0' });
  for (const [type, n] of countResources()) resourcesBefore.set(type, n);
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  running = await startSubgraph(service, { config, port: 0, log: createLogger('testing', config, sink) });
});
after(async () => {
  await running.close();
  await db.drop();
});

async function post(body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(running.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: JSON.parse(text) };
}

const bearer = async (roles: ('citizen' | 'admin' | 'operator')[], expiresIn: string | number = '1h') => ({
  authorization: `Bearer ${await signDevelopmentToken({ sub: 'alice', roles, collectivities: ['chalons'], expiresIn }, config)}`,
});

describe('startSubgraph', () => {
  it('serves queries over HTTP with the extended context, and federation fields', async () => {
    const { status, body } = await post({ query: '{ hello me { sub roles } }' });
    assert.equal(status, 200);
    assert.deepEqual(body.data, { hello: 'bonjour', me: { sub: null, roles: [] } });
    const sdl = await post({ query: '{ _service { sdl } }' });
    assert.match(sdl.body.data._service.sdl, /type Thing/);
    const entities = await post({
      query: 'query($r: [_Any!]!) { _entities(representations: $r) { ... on Thing { id name } } }',
      variables: { r: [{ __typename: 'Thing', id: '7' }] },
    });
    assert.deepEqual(entities.body.data._entities, [{ id: '7', name: 'thing 7' }]);
    // GET needs a header a browser form cannot send (Apollo's CSRF prevention).
    const get = await fetch(`${running.url}?query=${encodeURIComponent('{ hello }')}`, { headers: { 'apollo-require-preflight': 'true' } });
    assert.deepEqual(await get.json(), { data: { hello: 'bonjour' } });
  });

  it('verifies tokens: a valid one sets the viewer, a bad one is 401 UNAUTHENTICATED with the reason', async () => {
    const ok = await post({ query: '{ me { sub roles } }' }, await bearer(['operator']));
    assert.deepEqual(ok.body.data.me, { sub: 'alice', roles: ['operator'] });

    const expired = await post({ query: '{ hello }' }, await bearer(['operator'], -120));
    assert.equal(expired.status, 401);
    assert.equal(expired.body.errors[0].extensions.code, 'UNAUTHENTICATED');
    assert.match(expired.body.errors[0].message, /token expired/);

    const garbage = await post({ query: '{ hello }' }, { authorization: 'Bearer not.a.jwt' });
    assert.equal(garbage.status, 401);
    assert.equal(garbage.body.errors[0].extensions.code, 'UNAUTHENTICATED');

    const publicCall = await post({ query: '{ adminOnly }' });
    assert.equal(publicCall.body.errors[0].extensions.code, 'UNAUTHENTICATED');
    const citizen = await post({ query: '{ adminOnly }' }, await bearer(['citizen']));
    assert.equal(citizen.body.errors[0].extensions.code, 'FORBIDDEN');
    assert.equal(citizen.body.errors[0].extensions.field, 'adminOnly');
    assert.match(citizen.body.errors[0].message, /admin in collectivity 'chalons'/);
  });

  it('masks unexpected errors, but keeps validation and input errors as Apollo codes them (never a 500)', async () => {
    const boom = await post({ query: '{ boom }' });
    assert.equal(boom.status, 200);
    assert.deepEqual(boom.body.errors, [
      { message: 'Internal server error', locations: [{ line: 1, column: 3 }], path: ['boom'], extensions: { code: 'INTERNAL_SERVER_ERROR' } },
    ]);
    assert.ok(logLines.some((line) => line.msg === 'unexpected error' && JSON.stringify(line.err).includes('password authentication failed')));

    const enumValue = await post({ query: '{ color(c: BLUE) }' });
    assert.equal(enumValue.status, 400);
    assert.equal(enumValue.body.errors[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED');

    const variable = await post({ query: 'query($n: Int!) { double(n: $n) }', variables: { n: 'two' } });
    assert.equal(variable.status, 400);
    assert.equal(variable.body.errors[0].extensions.code, 'BAD_USER_INPUT');

    const syntax = await post({ query: '{ hello' });
    assert.equal(syntax.status, 400);
    assert.equal(syntax.body.errors[0].extensions.code, 'GRAPHQL_PARSE_FAILED');

    const badJson = await post('{"query": ');
    assert.equal(badJson.status, 400);
    const wrongType = await fetch(running.url, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{ hello }' });
    assert.equal(wrongType.status, 415);
  });

  it('echoes a sane x-request-id, replaces an unsafe one, and logs one line per request with it', async () => {
    const kept = await post({ query: 'query Greeting { hello }' }, { 'x-request-id': 'gw-abc.123' });
    assert.equal(kept.headers.get('x-request-id'), 'gw-abc.123');
    const replaced = await post({ query: '{ hello }' }, { 'x-request-id': 'bad id\twith spaces' });
    assert.match(replaced.headers.get('x-request-id')!, /^[0-9a-f-]{36}$/);
    const line = logLines.find((l) => l.requestId === 'gw-abc.123' && l.msg === 'request');
    assert.ok(line, 'no request log line');
    assert.equal(line.service, 'testing');
    assert.equal(line.operationName, 'Greeting');
    assert.equal(line.operationType, 'query');
    assert.equal(line.outcome, 'ok');
    assert.equal(line.status, 200);
    assert.equal(typeof line.durationMs, 'number');
    assert.equal(logLines.filter((l) => l.requestId === 'gw-abc.123').length, 1);
  });

  it('serves /healthz, /readyz and /metrics', async () => {
    const health = await fetch(running.url.replace('/graphql', '/healthz'));
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
    const ready = await fetch(running.url.replace('/graphql', '/readyz'));
    assert.equal(ready.status, 200);
    const metrics = await (await fetch(running.url.replace('/graphql', '/metrics'))).text();
    assert.match(metrics, /http_request_duration_seconds_count\{[^}]*route="\/graphql"/);
    assert.match(metrics, /graphql_operations_total\{[^}]*type="query",outcome="ok"/);
    assert.match(metrics, /service="testing"/);
    assert.match(metrics, /process_cpu_user_seconds_total/);
    assert.equal((await fetch(running.url.replace('/graphql', '/nope'))).status, 404);
  });

  it('answers /readyz 503 with the reason when the database is unreachable', async () => {
    const missing = createDatabase(loadConfig({ DATABASE_URL: db.url.replace(/\/[^/]+$/, '/connecte_t_does_not_exist') }));
    const broken = await startSubgraph(service, { config, port: 0, db: missing, log: createLogger('testing', { LOG_LEVEL: 'silent' }) });
    try {
      const ready = await fetch(broken.url.replace('/graphql', '/readyz'));
      assert.equal(ready.status, 503);
      const body = (await ready.json()) as { reason: string };
      assert.match(body.reason, /database: .*does not exist/);
    } finally {
      await broken.close();
      await missing.close();
    }
  });

  describe('graphql-ws on the same port and path', () => {
    const clients: Client[] = [];
    const connect = (connectionParams?: Record<string, unknown>, onClose?: (event: unknown) => void) => {
      const client = createClient({
        url: running.url.replace('http:', 'ws:'),
        webSocketImpl: WebSocket,
        connectionParams,
        retryAttempts: 0,
        lazy: false,
        onNonLazyError: () => {}, // the close is what the tests look at
        on: onClose ? { closed: onClose } : {},
      });
      clients.push(client);
      return client;
    };
    after(async () => {
      for (const client of clients) await client.dispose();
    });

    it('streams events from the bus to a subscription, replaying from a cursor then live', async () => {
      const publish = (name: string) =>
        running.db.prisma.$transaction((tx) => publishEvent(tx, { topic: 'thing.changed', collectivityId: 'chalons', payload: { name } }));
      const first = await publish('first');
      const client = connect({ authorization: (await bearer(['operator'])).authorization });
      const iterator = client.iterate<{ thingChanged: { id: string; name: string } }>({
        query: 'subscription($after: String) { thingChanged(after: $after) { id name } }',
        variables: { after: (BigInt(first) - 1n).toString() },
      });
      const one = await iterator.next();
      assert.deepEqual(one.value?.data?.thingChanged, { id: first, name: 'first' });
      const second = await publish('second');
      const two = await iterator.next();
      assert.deepEqual(two.value?.data?.thingChanged, { id: second, name: 'second' });
      // Completing the operation on the client ends the bus subscription on the server.
      const subscribers = () => (running.events as unknown as { subscribers: Set<unknown> }).subscribers.size;
      assert.equal(subscribers(), 1);
      await iterator.return?.();
      for (let n = 0; n < 50 && subscribers() > 0; n++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(subscribers(), 0);
    });

    it('reports validation errors on the operation without closing the socket', async () => {
      const client = connect();
      const errors = await new Promise<unknown>((resolve) => {
        client.subscribe({ query: 'subscription { nope }' }, { next: () => {}, error: resolve, complete: () => {} });
      });
      assert.equal((errors as { extensions: { code: string } }[])[0].extensions.code, 'GRAPHQL_VALIDATION_FAILED');
      const result = await new Promise<unknown>((resolve, reject) => {
        client.subscribe({ query: '{ hello }' }, { next: resolve, error: reject, complete: () => {} });
      });
      assert.deepEqual(result, { data: { hello: 'bonjour' } });
    });

    it('rejects a connection with a bad token with 4401 and the reason', async () => {
      const closed = new Promise<{ code: number; reason: string }>((resolve) => {
        connect({ authorization: 'Bearer not.a.jwt' }, (event) => resolve(event as { code: number; reason: string }));
      });
      const event = await closed;
      assert.equal(event.code, 4401);
      assert.match(event.reason, /Unauthorized: malformed token/);
    });
  });

  it('close() stops everything and leaves no handle open', async () => {
    const second = await startSubgraph(service, { config, port: 0, log: createLogger('testing', { LOG_LEVEL: 'silent' }) });
    const ws = createClient({ url: second.url.replace('http:', 'ws:'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, onNonLazyError: () => {} });
    const sub = ws.iterate({ query: 'subscription { thingChanged { id } }' });
    const pending = sub.next().catch(() => {}); // an open subscription must not hold the shutdown
    await fetch(second.url.replace('/graphql', '/healthz')); // and a keep-alive connection neither
    await second.close();
    await pending;
    await ws.dispose();
    await assert.rejects(fetch(second.url.replace('/graphql', '/healthz')));
  });
});

after(async () => {
  // Runs after the suite's own `after` hooks: every service started here is closed.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const leaked = [...countResources()].filter(([type, n]) => n > (resourcesBefore.get(type) ?? 0) && type !== 'PerformanceObserver');
  assert.deepEqual(leaked, [], `handles left open: ${JSON.stringify(leaked)}`);
});
