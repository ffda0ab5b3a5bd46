/**
 * One anonymous request cannot exhaust the hub (issue #5): end to end through startHub. Query
 * limits refuse before any subgraph is called (counted on the subgraphs' /metrics), over HTTP
 * and graphql-ws; bodies over MAX_BODY_BYTES get 413; rate limits per address and per token
 * answer 429 without touching other callers; CORS; persisted queries and the allow-list.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { sha256Hex } from '@connecte/shared/persisted-operations';
import { createTestDatabase, type TestDatabase, gql, startHub, subgraphRequests, tokenFor, type Hub } from '@connecte/testkit';

const ALLOWED_ORIGIN = 'https://app.example';

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** Fields `levels` deep. */
const nested = (levels: number) => `{ equipment(id: "none") { ${'parent { '.repeat(levels - 2)}id${' }'.repeat(levels - 2)} } }`;
const NOTHING = 'filter: { collectivityIds: ["none"] }';
/** A cheap query of exactly `tokens` lexical tokens: 19 of structure, the rest strings of a list. */
const withTokens = (tokens: number) => `{ equipmentSearch(filter: { collectivityIds: [${'"none" '.repeat(tokens - 19)}] }, first: 1) { totalCount } }`;
/** Cost 16 × 3001 + (1 + 3 × 661) = 50,000 exactly (the default MAX_QUERY_COST), matching no rows. */
const costly = (extra = '') =>
  `{ ${Array.from({ length: 16 }, (_, i) => `a${i}: equipmentSearch(${NOTHING}, first: 1000) { edges { node { id } } }`).join(' ')} z: equipmentSearch(${NOTHING}, first: 661) { edges { node { id } } } ${extra} }`;

describe('request limits', () => {
  let db: TestDatabase;
  let hub: Hub;

  before(async () => {
    db = await createTestDatabase();
    hub = await startHub(db.url, { CORS_ALLOWED_ORIGINS: ALLOWED_ORIGIN });
  });
  after(async () => {
    await hub?.close();
    await db?.drop();
  });

  describe('query limits at the gateway', () => {
    const cases: { limit: string; max: number; atLimit: string; over: string; measured: number }[] = [
      { limit: 'depth', max: 15, atLimit: nested(15), over: nested(16), measured: 16 },
      {
        limit: 'aliases',
        max: 30,
        atLimit: `{ equipmentCountsByKind { ${Array.from({ length: 30 }, (_, i) => `k${i}: kind`).join(' ')} } }`,
        over: `{ equipmentCountsByKind { ${Array.from({ length: 31 }, (_, i) => `k${i}: kind`).join(' ')} } }`,
        measured: 31,
      },
      { limit: 'rootFields', max: 20, atLimit: `{ ${'__typename '.repeat(20)}}`, over: `{ ${'__typename '.repeat(21)}}`, measured: 21 },
      { limit: 'tokens', max: 3000, atLimit: withTokens(3000), over: withTokens(3001), measured: 3001 },
      { limit: 'cost', max: 50_000, atLimit: costly(), over: costly('one: equipment(id: "none") { __typename }'), measured: 50_001 },
    ];
    for (const { limit, max, atLimit, over, measured } of cases) {
      it(`${limit}: accepted at ${max}, refused at ${measured} with 400 QUERY_TOO_COMPLEX before any subgraph call`, async () => {
        // rootFields and tokens are checked on `__typename`s, which the gateway answers alone.
        const accepted = await gql(hub.gatewayUrl, atLimit);
        assert.equal(accepted.status, 200, JSON.stringify(accepted.errors));
        assert.equal(accepted.errors, undefined);
        const before = await subgraphRequests(hub);
        const refused = await gql(hub.gatewayUrl, over);
        assert.equal(refused.status, 400);
        assert.equal(refused.data, undefined);
        assert.equal(refused.errors?.length, 1);
        assert.deepEqual(refused.errors?.[0].extensions, { code: 'QUERY_TOO_COMPLEX', limit, max, measured });
        assert.match(refused.errors![0].message, new RegExp(`${measured}, exceeds the limit of ${max} \\(MAX_QUERY_`));
        assert.equal(await subgraphRequests(hub), before, 'no subgraph was called');
      });
    }

    it('refuses the incident (300 aliases of equipmentSearch(first: 1000)) without calling a subgraph', async () => {
      const query = `{ ${Array.from({ length: 300 }, (_, i) => `a${i}: equipmentSearch(first: 1000) { totalCount edges { node { id kind reference name status location { coordinates } } } }`).join(' ')} }`;
      const before = await subgraphRequests(hub);
      const started = performance.now();
      const refused = await gql(hub.gatewayUrl, query);
      assert.ok(performance.now() - started < 1000);
      assert.equal(refused.status, 400);
      assert.equal(refused.errors?.[0].extensions?.code, 'QUERY_TOO_COMPLEX');
      assert.equal(await subgraphRequests(hub), before);
    });

    it('resolves `first` from variables: the same document is accepted or refused by its page size', async () => {
      const query = `query ($n: Int) { ${Array.from({ length: 17 }, (_, i) => `a${i}: equipmentSearch(${NOTHING}, first: $n) { edges { node { id } } }`).join(' ')} }`;
      assert.equal((await gql(hub.gatewayUrl, query, { variables: { n: 10 } })).status, 200);
      const refused = await gql(hub.gatewayUrl, query, { variables: { n: 1000 } });
      assert.equal(refused.status, 400);
      assert.deepEqual(refused.errors?.[0].extensions, { code: 'QUERY_TOO_COMPLEX', limit: 'cost', max: 50_000, measured: 17 * 3001 });
    });

    it('refuses over graphql-ws too, before opening any subscription to a subgraph', async () => {
      const client = createClient({ url: hub.gatewayUrl.replace(/^http/, 'ws'), webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
      try {
        const before = await subgraphRequests(hub);
        for (const query of [nested(16), `subscription { equipmentChanged { equipment { ${'parent { '.repeat(14)}id${' }'.repeat(14)} } } }`]) {
          const error = await new Promise<unknown>((resolve) => client.subscribe({ query }, { next: () => {}, error: resolve, complete: () => resolve(null) }));
          assert.ok(Array.isArray(error), `refused with GraphQL errors, got ${JSON.stringify(error)}`);
          assert.equal((error as { extensions: { code: string; limit: string } }[])[0].extensions.code, 'QUERY_TOO_COMPLEX');
          assert.equal((error as { extensions: { code: string; limit: string } }[])[0].extensions.limit, 'depth');
        }
        assert.equal(hub.gateway.upstreamSubscriptions(), 0);
        assert.equal(await subgraphRequests(hub), before);
      } finally {
        await client.dispose();
      }
    });
  });

  describe('query limits at a subgraph', () => {
    it('refuses a direct call over a limit, over HTTP and graphql-ws', async () => {
      const refused = await gql(hub.subgraphs.equipment.url, nested(16));
      assert.equal(refused.status, 400);
      assert.deepEqual(refused.errors?.[0].extensions, { code: 'QUERY_TOO_COMPLEX', limit: 'depth', max: 15, measured: 16 });
      const tokens = await gql(hub.subgraphs.territory.url, `{ ${'__typename '.repeat(2999)}}`);
      assert.equal(tokens.status, 400);
      assert.equal(tokens.errors?.[0].extensions?.limit, 'tokens');
      const client = createClient({ url: hub.subgraphs.equipment.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
      try {
        const error = await new Promise<unknown>((resolve) => client.subscribe({ query: nested(16) }, { next: () => {}, error: resolve, complete: () => resolve(null) }));
        assert.equal((error as { extensions: { code: string } }[])[0]?.extensions.code, 'QUERY_TOO_COMPLEX');
      } finally {
        await client.dispose();
      }
    });

    it("lets the gateway's plans through: 1000 equipment, then their collectivities from territory's _entities", async () => {
      const response = await gql(hub.gatewayUrl, '{ equipmentSearch(first: 1000) { edges { node { id collectivity { id name } } } } }');
      assert.equal(response.status, 200, JSON.stringify(response.errors));
      assert.equal(response.errors, undefined);
      assert.equal(response.data.equipmentSearch.edges.length, 1000);
      assert.ok(response.data.equipmentSearch.edges.every((edge: { node: { collectivity: { name: string } } }) => edge.node.collectivity.name));
    });
  });

  describe('body size', () => {
    it('answers 413 over MAX_BODY_BYTES at the gateway and at a subgraph, and accepts a body at it', async () => {
      const limit = hub.config.MAX_BODY_BYTES;
      const body = (size: number) => {
        const shell = JSON.stringify({ query: '{ __typename }', variables: { pad: '' } });
        return shell.replace('"pad":""', `"pad":"${'x'.repeat(size - shell.length)}"`);
      };
      assert.equal(Buffer.byteLength(body(limit)), limit);
      for (const url of [hub.gatewayUrl, hub.subgraphs.equipment.url]) {
        assert.equal((await post(url, body(limit))).status, 200);
        const refused = await post(url, body(limit + 1));
        assert.equal(refused.status, 413);
        const { errors } = (await refused.json()) as any;
        assert.deepEqual(errors[0].extensions, { code: 'PAYLOAD_TOO_LARGE', limit: 'bodyBytes', max: limit, measured: limit + 1 });
      }
    });
  });

  describe('CORS', () => {
    it('answers a preflight from an allowed origin with 204 and the headers a browser needs', async () => {
      for (const url of [hub.gatewayUrl, hub.subgraphs.territory.url]) {
        const response = await fetch(url, {
          method: 'OPTIONS',
          headers: { origin: ALLOWED_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
        });
        assert.equal(response.status, 204);
        assert.equal(response.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
        assert.match(response.headers.get('access-control-allow-methods') ?? '', /POST/);
        for (const header of ['authorization', 'content-type', 'apollo-require-preflight', 'x-request-id']) {
          assert.match(response.headers.get('access-control-allow-headers') ?? '', new RegExp(header));
        }
        assert.ok(Number(response.headers.get('access-control-max-age')) > 0);
        assert.match(response.headers.get('vary') ?? '', /Origin/);
      }
    });

    it('refuses a preflight from another origin with 403 and no Access-Control-Allow-Origin', async () => {
      const response = await fetch(hub.gatewayUrl, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
      assert.equal(response.status, 403);
      assert.equal(response.headers.get('access-control-allow-origin'), null);
      const { errors } = (await response.json()) as any;
      assert.match(errors[0].message, /https:\/\/evil\.example is not allowed.*https:\/\/app\.example/);
    });

    it('marks answers to an allowed origin only, and keeps CSRF prevention for simple requests', async () => {
      const allowed = await post(hub.gatewayUrl, { query: '{ __typename }' }, { origin: ALLOWED_ORIGIN });
      assert.equal(allowed.headers.get('access-control-allow-origin'), ALLOWED_ORIGIN);
      assert.match(allowed.headers.get('access-control-expose-headers') ?? '', /retry-after/);
      const other = await post(hub.gatewayUrl, { query: '{ __typename }' }, { origin: 'https://evil.example' });
      assert.equal(other.headers.get('access-control-allow-origin'), null);
      assert.match(other.headers.get('vary') ?? '', /Origin/);
      // What a page of any origin can send without a preflight is refused by Apollo's CSRF prevention.
      const before = await subgraphRequests(hub);
      const get = await fetch(`${hub.gatewayUrl}?query=${encodeURIComponent('{ equipment(id: "none") { id } }')}`, { headers: { origin: 'https://evil.example' } });
      assert.equal(get.status, 400);
      const text = await fetch(hub.gatewayUrl, { method: 'POST', headers: { 'content-type': 'text/plain', origin: 'https://evil.example' }, body: JSON.stringify({ query: '{ equipment(id: "none") { id } }' }) });
      assert.equal(text.status, 400);
      assert.equal(await subgraphRequests(hub), before);
    });
  });

  describe('automatic persisted queries', () => {
    const query = '{ equipmentCountsByKind { kind count } }';
    const sha256Hash = sha256Hex(query);

    it('registers a query with its hash, then runs it by hash alone', async () => {
      const unknown = await post(hub.gatewayUrl, { extensions: { persistedQuery: { version: 1, sha256Hash } } });
      assert.equal(((await unknown.json()) as any).errors[0].extensions.code, 'PERSISTED_QUERY_NOT_FOUND');
      assert.equal((await post(hub.gatewayUrl, { query, extensions: { persistedQuery: { version: 1, sha256Hash } } })).status, 200);
      const byHash = await post(hub.gatewayUrl, { extensions: { persistedQuery: { version: 1, sha256Hash } } });
      assert.equal(byHash.status, 200);
      assert.equal(((await byHash.json()) as any).data.equipmentCountsByKind.length, 14);
    });

    it('refuses a hash that does not match its query with 400, naming both hashes', async () => {
      const wrong = sha256Hex('{ something else }');
      const before = await subgraphRequests(hub);
      const response = await post(hub.gatewayUrl, { query, extensions: { persistedQuery: { version: 1, sha256Hash: wrong } } });
      assert.equal(response.status, 400);
      const { errors } = (await response.json()) as any;
      assert.equal(errors[0].extensions.code, 'PERSISTED_QUERY_HASH_MISMATCH');
      assert.match(errors[0].message, new RegExp(`${wrong} does not match the query sent with it \\(whose SHA-256 is ${sha256Hash}\\)`));
      assert.equal(await subgraphRequests(hub), before);
      const version = await post(hub.gatewayUrl, { query, extensions: { persistedQuery: { version: 2, sha256Hash } } });
      assert.equal(version.status, 400);
      assert.equal(((await version.json()) as any).errors[0].extensions.field, 'extensions.persistedQuery.version');
    });
  });
});

describe('rate limits, allow-list and introspection (production-like settings)', () => {
  let db: TestDatabase;
  let hub: Hub;
  let registeredFile: string;
  const registered = '{ equipmentCountsByKind { kind count } }';

  before(async () => {
    db = await createTestDatabase({ seed: false });
    registeredFile = path.join(mkdtempSync(path.join(tmpdir(), 'allow-list-')), 'operations.json');
    writeFileSync(registeredFile, JSON.stringify({ [sha256Hex(registered)]: registered, [sha256Hex('{ __schema { queryType { name } } }')]: '{ __schema { queryType { name } } }' }));
    hub = await startHub(db.url, {
      RATE_LIMIT_PER_ADDRESS: '5',
      RATE_LIMIT_PER_TOKEN: '8',
      // The test's requests come from 127.0.0.1, playing the proxy in front of many clients.
      TRUSTED_PROXIES: '127.0.0.0/8',
      PERSISTED_OPERATIONS_FILE: registeredFile,
      PERSISTED_OPERATIONS_ONLY: 'true',
      GRAPHQL_INTROSPECTION: 'false',
    });
  });
  after(async () => {
    await hub?.close();
    await db?.drop();
  });

  const from = (address: string, extra: Record<string, string> = {}) => ({ 'x-forwarded-for': address, ...extra });

  it('limits a flooding address with 429 and Retry-After; another address is unaffected', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) statuses.push((await post(hub.gatewayUrl, { query: registered }, from('198.51.100.1'))).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
    const refused = await post(hub.gatewayUrl, { query: registered }, from('198.51.100.1'));
    assert.equal(refused.status, 429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const { errors } = (await refused.json()) as any;
    assert.equal(errors[0].extensions.code, 'RATE_LIMITED');
    assert.equal(errors[0].extensions.retryAfterSeconds, retryAfter);
    assert.equal((await post(hub.gatewayUrl, { query: registered }, from('198.51.100.2'))).status, 200);
    // The client's own left-most entry is not believed: the proxy's right-most one is.
    assert.equal((await post(hub.gatewayUrl, { query: registered }, from('203.0.113.50, 198.51.100.1'))).status, 429);
  });

  it('holds under a concurrent burst: of 20 requests sent at once from one address, exactly the budget (5) is served', async () => {
    const responses = await Promise.all(Array.from({ length: 20 }, () => post(hub.gatewayUrl, { query: registered }, from('198.51.100.77'))));
    const statuses = responses.map((response) => response.status).sort();
    await Promise.all(responses.map((response) => response.arrayBuffer()));
    assert.deepEqual(statuses, [...Array(5).fill(200), ...Array(15).fill(429)]);
  });

  it('limits a flooding token by its subject; another token and anonymous callers are unaffected', async () => {
    const flooding = await tokenFor(hub.config, ['operator'], ['chalons']);
    const other = await tokenFor(hub.config, ['agent'], ['chalons']);
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await post(hub.gatewayUrl, { query: registered }, from('198.51.100.3', { authorization: `Bearer ${flooding}` }))).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 429, 429]);
    // The same subject from another address is still the same caller.
    assert.equal((await post(hub.gatewayUrl, { query: registered }, from('198.51.100.4', { authorization: `Bearer ${flooding}` }))).status, 429);
    assert.equal((await post(hub.gatewayUrl, { query: registered }, from('198.51.100.3', { authorization: `Bearer ${other}` }))).status, 200);
    assert.equal((await post(hub.gatewayUrl, { query: registered }, from('198.51.100.3'))).status, 200, 'the address has its own budget');
  });

  it('spends the same budget per operation over graphql-ws: past it, RATE_LIMITED errors; another token is unaffected', async () => {
    const flooding = await tokenFor(hub.config, ['admin'], ['fagnieres']);
    const other = await tokenFor(hub.config, ['admin'], ['chalons']);
    const over = (token: string) =>
      createClient({ url: hub.gatewayUrl.replace(/^http/, 'ws'), webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` }, retryAttempts: 0 });
    const run = (client: ReturnType<typeof over>) =>
      new Promise<string>((resolve) => {
        client.subscribe({ query: registered }, {
          next: (result) => resolve(result.errors ? String(result.errors[0].extensions?.code) : 'ok'),
          error: (error) => resolve(Array.isArray(error) ? String(error[0].extensions?.code) : String(error)),
          complete: () => {},
        });
      });
    const flood = over(flooding);
    const spare = over(other);
    try {
      const outcomes: string[] = [];
      for (let i = 0; i < 10; i++) outcomes.push(await run(flood));
      assert.deepEqual(outcomes, ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'RATE_LIMITED', 'RATE_LIMITED']);
      assert.equal(await run(spare), 'ok');
    } finally {
      await Promise.all([flood.dispose(), spare.dispose()]);
    }
  });

  it('runs only registered operations, by hash or in full; anything else is 400 before any subgraph call', async () => {
    const byHash = await post(hub.gatewayUrl, { extensions: { persistedQuery: { version: 1, sha256Hash: sha256Hex(registered) } } }, from('198.51.100.10'));
    assert.equal(byHash.status, 200);
    assert.equal(((await byHash.json()) as any).data.equipmentCountsByKind.length, 14);
    assert.equal((await post(hub.gatewayUrl, { query: registered }, from('198.51.100.10'))).status, 200);
    const before = await subgraphRequests(hub);
    const unregistered = '{ equipmentSearch(first: 1) { totalCount } }';
    for (const body of [{ query: unregistered }, { extensions: { persistedQuery: { version: 1, sha256Hash: sha256Hex(unregistered) } } }]) {
      const response = await post(hub.gatewayUrl, body, from('198.51.100.11'));
      assert.equal(response.status, 400);
      const { errors } = (await response.json()) as any;
      assert.equal(errors[0].extensions.code, 'PERSISTED_QUERY_NOT_ALLOWED');
      assert.equal(errors[0].extensions.sha256Hash, sha256Hex(unregistered));
    }
    const client = createClient({ url: hub.gatewayUrl.replace(/^http/, 'ws'), webSocketImpl: WebSocket, lazy: true, retryAttempts: 0 });
    try {
      const error = await new Promise<unknown>((resolve) => client.subscribe({ query: unregistered }, { next: () => {}, error: resolve, complete: () => resolve(null) }));
      assert.equal((error as { extensions: { code: string } }[])[0]?.extensions.code, 'PERSISTED_QUERY_NOT_ALLOWED');
    } finally {
      await client.dispose();
    }
    assert.equal(await subgraphRequests(hub), before);
  });

  it('refuses introspection when GRAPHQL_INTROSPECTION=false, even for a registered operation, at the gateway and the subgraphs', async () => {
    const query = '{ __schema { queryType { name } } }';
    const response = await post(hub.gatewayUrl, { query }, from('198.51.100.20'));
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as any).errors[0].message, /introspection/i);
    const subgraph = await gql(hub.subgraphs.equipment.url, query);
    assert.equal(subgraph.status, 400);
    assert.match(subgraph.errors?.[0].message ?? '', /introspection/i);
    // No "Did you mean ...?" either: it would spell the schema out.
    const typo = await gql(hub.subgraphs.equipment.url, '{ equipmentSerch { totalCount } }');
    assert.doesNotMatch(typo.errors?.[0].message ?? '', /Did you mean/);
  });
});
