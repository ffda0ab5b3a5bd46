/**
 * The pure pieces of "one request cannot exhaust the hub": query measures and limits, token
 * buckets, client addresses behind trusted proxies, persisted operations. End to end (HTTP,
 * graphql-ws, CORS, no subgraph reached): gateway/test/request-limits.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { Supergraph } from '@apollo/federation-internals';
import { getIntrospectionQuery, getOperationAST, parse, validate, type GraphQLSchema } from 'graphql';
import gql from 'graphql-tag';
import { readCommittedSupergraph } from '../../../gateway/src/compose.js';
import { addressBucketKey, clientAddressResolver } from '../src/client-address.js';
import { countTokens, limitRefusal, measureOperation, QUERY_TOO_COMPLEX, tokensRefusal, UNPAGINATED_LIST_SIZE, type QueryLimits } from '../src/limits.js';
import { createPersistedOperations, loadPersistedOperations, sha256Hex } from '../src/persisted-operations.js';
import { createRateLimiter } from '../src/rate-limit.js';

const api = Supergraph.build(readCommittedSupergraph()).apiSchema().toGraphQLJSSchema();
const DEFAULTS: QueryLimits = { maxTokens: 3000, maxDepth: 15, maxAliases: 30, maxRootFields: 20, maxCost: 50_000 };

function measure(query: string, variables: Record<string, unknown> = {}, schema: GraphQLSchema = api) {
  const document = parse(query);
  assert.deepEqual(validate(schema, document).map((e) => e.message), [], 'the test query is valid');
  return measureOperation(schema, document, getOperationAST(document)!, variables);
}

/** Fields `levels` deep: equipment, then parents, then id. */
const nested = (levels: number) => `{ equipment(id: "x") { ${'parent { '.repeat(levels - 2)}id${' }'.repeat(levels - 2)} } }`;
const aliased = (count: number, field = 'equipmentSearch(first: 1000) { edges { node { id } } }') =>
  `{ ${Array.from({ length: count }, (_, i) => `a${i}: ${field}`).join(' ')} }`;

describe('query measures', () => {
  it('counts depth from 1 at the root, through fragments', () => {
    assert.equal(measure('{ __typename }').depth, 1);
    assert.equal(measure(nested(15)).depth, 15);
    assert.equal(measure(nested(3)).depth, 3);
    assert.equal(measure('fragment P on Equipment { parent { parent { id } } } { equipment(id: "x") { ...P } }').depth, 4);
  });

  it('counts aliases and root fields, fragments expanded', () => {
    const m = measure('fragment T on Query { x: __typename y: __typename } { ...T ...T equipmentCountsByKind { kind } }');
    assert.equal(m.aliases, 4);
    assert.equal(m.rootFields, 5);
  });

  it('costs a connection by its `first`, with the default 50 and the maximum 1000', () => {
    const page = (first: string) => measure(`{ equipmentSearch${first} { edges { node { id } } } }`).cost;
    assert.equal(page('(first: 10)'), 1 + 10 * 3);
    assert.equal(page(''), 1 + 50 * 3);
    assert.equal(page('(first: 5000)'), 1 + 1000 * 3, 'the resolver refuses more than 1000: it never costs more');
    // totalCount and pageInfo are on the connection, once per page; __typename is free.
    assert.equal(measure('{ equipmentSearch(first: 2) { __typename totalCount edges { cursor } } }').cost, 1 + 2 * (1 + 2));
  });

  it('resolves `first` from variables and their defaults; a value the resolver would refuse counts as 1000', () => {
    const query = 'query ($n: Int = 7) { equipmentSearch(first: $n) { edges { node { id } } } }';
    assert.equal(measure(query).cost, 1 + 7 * 3);
    assert.equal(measure(query, { n: 20 }).cost, 1 + 20 * 3);
    assert.equal(measure(query, { n: null }).cost, 1 + 50 * 3);
    for (const hostile of [-1, 2.5, Number.NaN, Infinity, '1000', { n: 1 }]) {
      assert.equal(measure(query, { n: hostile }).cost, 1 + 1000 * 3, `first = ${String(hostile)}`);
    }
  });

  it('multiplies nested pages, and counts lists without `first` as short enumerations', () => {
    const m = measure('{ equipmentSearch(first: 100) { edges { node { children(first: 100) { edges { node { id } } } } } } }');
    assert.equal(m.cost, 1 + 100 * (1 + (1 + (1 + 100 * (1 + (1 + 1))))));
    assert.equal(measure('{ collectivities { id } }').cost, 1 + UNPAGINATED_LIST_SIZE * 1);
    // The control room's territory overview stays well within the default cost…
    const overview = measure(`{ collectivities { id communes { name districts { totalCount edges { node { name } } }
      streets(first: 5) { edges { node { name } } } } } }`);
    assert.ok(overview.cost < DEFAULTS.maxCost, `overview costs ${overview.cost}`);
    // …while a cycle through the unpaginated lists multiplies at every turn and is refused.
    const cycle = measure(`{ collectivities { communes { collectivity { communes { collectivity { communes { collectivity { communes { collectivity { communes { name } } } } } } } } } } }`);
    assert.ok(cycle.cost > DEFAULTS.maxCost, `cycle costs ${cycle.cost}`);
  });

  it('the incident query: 300 aliases of equipmentSearch(first: 1000) measure far over every limit', () => {
    const query = aliased(300);
    const m = measure(query);
    assert.equal(m.aliases, 300);
    assert.equal(m.rootFields, 300);
    assert.equal(m.cost, 300 * 3001);
    assert.ok(countTokens(query) > DEFAULTS.maxTokens);
  });

  it('stays linear on a fragment bomb (each fragment spreads the next twice)', () => {
    const levels = 40;
    const fragments = Array.from({ length: levels }, (_, i) =>
      i === levels - 1 ? `fragment F${i} on Query { __typename }` : `fragment F${i} on Query { ...F${i + 1} a${i}: __typename ...F${i + 1} }`,
    );
    const started = performance.now();
    const m = measure(`{ ...F0 } ${fragments.join(' ')}`);
    assert.ok(performance.now() - started < 200, 'memoised per fragment');
    assert.ok(m.aliases > 1e11 && m.rootFields > 1e11, 'measured as expanded');
    assert.match(limitRefusal(m, DEFAULTS)!.message, /alias count, 549755813887, exceeds the limit of 30 \(MAX_QUERY_ALIASES\)/);
  });

  it('lets the standard introspection query through (costless; graphql-js validation refuses nested introspection)', () => {
    for (const query of [getIntrospectionQuery(), getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, inputValueDeprecation: true })]) {
      assert.ok(countTokens(query) <= DEFAULTS.maxTokens);
      assert.equal(measure(query).cost, 0);
      assert.equal(limitRefusal(measure(query), DEFAULTS), null);
    }
    const bomb = parse('{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }');
    assert.match(validate(api, bomb)[0]?.message ?? '', /introspection depth/);
  });

  it("counts a subgraph's _entities by its representations", () => {
    const schema = buildSubgraphSchema([
      { typeDefs: gql`extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"]) type Thing @key(fields: "id") { id: ID! name: String } type Query { thing: Thing }` },
    ]);
    const query = 'query ($representations: [_Any!]!) { _entities(representations: $representations) { ... on Thing { __typename id name } } }';
    const representations = Array.from({ length: 1000 }, (_, i) => ({ __typename: 'Thing', id: String(i) }));
    assert.equal(measure(query, { representations }, schema).cost, 1 + 1000 * 2);
    assert.equal(measure(query, { representations: [] }, schema).cost, 1);
  });
});

describe('query limits', () => {
  const refusal = (query: string, limits: Partial<QueryLimits> = {}) => limitRefusal(measure(query), { ...DEFAULTS, ...limits });

  it('accepts each limit at its value and refuses it one over, naming limit, max and measure', () => {
    const cases: [keyof QueryLimits, string, string, string, number][] = [
      ['maxDepth', nested(15), nested(16), 'depth', 16],
      ['maxAliases', `{ equipmentCountsByKind { ${aliased(30, 'kind').slice(2, -2)} } }`, `{ equipmentCountsByKind { ${aliased(31, 'kind').slice(2, -2)} } }`, 'aliases', 31],
      ['maxRootFields', `{ ${'__typename '.repeat(20)}}`, `{ ${'__typename '.repeat(21)}}`, 'rootFields', 21],
      ['maxCost', '{ equipmentSearch(first: 1000) { edges { node { id } } } }', '{ equipmentSearch(first: 1000) { edges { node { id kind } } } }', 'cost', 4001],
    ];
    for (const [key, atLimit, over, name, measured] of cases) {
      const limits = key === 'maxCost' ? { maxCost: 3001 } : {};
      assert.equal(refusal(atLimit, limits), null, `${name} at its limit`);
      const error = refusal(over, limits);
      assert.ok(error, `${name} over its limit`);
      assert.equal(error.extensions.code, QUERY_TOO_COMPLEX);
      assert.equal(error.extensions.limit, name);
      assert.equal(error.extensions.max, key === 'maxCost' ? 3001 : DEFAULTS[key]);
      assert.equal(error.extensions.measured, measured);
      assert.deepEqual(error.extensions.http, { status: 400 });
      assert.match(error.message, new RegExp(`, ${measured}, exceeds the limit of ${error.extensions.max} \\(MAX_QUERY_`));
    }
  });

  it('counts tokens as graphql-js does (comments excluded), before parsing', () => {
    assert.equal(countTokens('{ a # comment\n b }'), 4);
    const atLimit = `{ ${'a '.repeat(2998)}}`;
    assert.equal(countTokens(atLimit), 3000);
    assert.equal(tokensRefusal(atLimit, DEFAULTS), null);
    const error = tokensRefusal(`{ ${'a '.repeat(2999)}}`, DEFAULTS)!;
    assert.deepEqual([error.extensions.limit, error.extensions.max, error.extensions.measured], ['tokens', 3000, 3001]);
    assert.match(error.message, /MAX_QUERY_TOKENS/);
    // A syntax error is the parser's to report, with its position.
    assert.equal(tokensRefusal('{ "unterminated', DEFAULTS), null);
  });

  it('counts a megabyte of tokens without keeping them', () => {
    const source = `{ ${'a '.repeat(500_000)}}`;
    const before = process.memoryUsage().heapUsed;
    assert.equal(countTokens(source), 500_002);
    assert.ok(process.memoryUsage().heapUsed - before < 40 * 1024 * 1024);
  });
});

describe('token buckets', () => {
  it('allows a burst of perMinute, then one per 60/perMinute seconds, with Retry-After', () => {
    const limiter = createRateLimiter({ perMinute: 60 });
    const t0 = 1_000_000;
    for (let i = 0; i < 60; i++) assert.equal(limiter.take('a', t0).allowed, true);
    assert.deepEqual(limiter.take('a', t0), { allowed: false, retryAfterSeconds: 1 });
    assert.equal(limiter.take('b', t0).allowed, true, 'another caller is unaffected');
    assert.equal(limiter.take('a', t0 + 1000).allowed, true, 'one token back after a second');
    assert.equal(limiter.take('a', t0 + 1000).allowed, false);
  });

  it('says how long to wait at a slow rate', () => {
    const limiter = createRateLimiter({ perMinute: 2 });
    limiter.take('a', 0);
    limiter.take('a', 0);
    assert.deepEqual(limiter.take('a', 0), { allowed: false, retryAfterSeconds: 30 });
    assert.deepEqual(limiter.take('a', 29_500), { allowed: false, retryAfterSeconds: 1 });
  });

  it('remembers at most maxKeys callers, forgetting the least recently seen', () => {
    const limiter = createRateLimiter({ perMinute: 1, maxKeys: 100 });
    limiter.take('kept', 0);
    for (let i = 0; i < 1000; i++) {
      limiter.take(`flood-${i}`, 0);
      if (i % 50 === 0) assert.equal(limiter.take('kept', 0).allowed, false, 'a caller in use stays limited');
    }
    assert.equal(limiter.size(), 100);
  });

  it('refuses a rate that is not a whole number ≥ 1', () => {
    for (const perMinute of [0, -1, 1.5, Number.NaN]) assert.throws(() => createRateLimiter({ perMinute }), /whole number/);
  });
});

describe('client address', () => {
  const request = (remoteAddress: string, forwarded?: string | string[]) =>
    ({ socket: { remoteAddress }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } }) as never;

  it('is the socket peer when no proxy is trusted, whatever X-Forwarded-For says', () => {
    assert.equal(clientAddressResolver([])(request('203.0.113.9', '1.2.3.4')), '203.0.113.9');
    assert.equal(clientAddressResolver(['10.0.0.0/8'])(request('203.0.113.9', '1.2.3.4')), '203.0.113.9');
  });

  it('reads X-Forwarded-For from the right behind trusted proxies (exact IPs and CIDR ranges)', () => {
    const resolve = clientAddressResolver(['10.0.0.0/8', '192.0.2.7', '::1']);
    assert.equal(resolve(request('10.1.2.3', '198.51.100.1')), '198.51.100.1');
    assert.equal(resolve(request('::ffff:10.1.2.3', 'spoofed, 198.51.100.1, 192.0.2.7')), '198.51.100.1');
    assert.equal(resolve(request('::1', ['198.51.100.1', '10.9.9.9'])), '198.51.100.1', 'repeated headers');
    assert.equal(resolve(request('10.1.2.3', 'not-an-ip')), '10.1.2.3', 'a malformed hop counts against the proxy');
    assert.equal(resolve(request('10.1.2.3')), '10.1.2.3');
    assert.equal(resolve(request('10.1.2.3', '10.4.4.4')), '10.4.4.4', 'only proxies: the first one');
  });

  it('refuses a TRUSTED_PROXIES entry that is not an address or range, naming it', () => {
    for (const entry of ['proxy.local', '10.0.0.0/33', '10.0.0.0/8/8', '10.0.0.0/x', '::1/129']) {
      assert.throws(() => clientAddressResolver([entry]), new RegExp(`TRUSTED_PROXIES: '${entry.replace(/[.*/]/g, '\\$&')}'`));
    }
  });

  it('buckets IPv6 clients per /64 and IPv4 per address', () => {
    assert.equal(addressBucketKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(addressBucketKey('2001:DB8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(addressBucketKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressBucketKey('::1'), '0:0:0:0::/64');
    assert.equal(addressBucketKey('203.0.113.9'), '203.0.113.9');
  });
});

describe('persisted operations', () => {
  const query = '{ __typename }';
  const hash = sha256Hex(query);
  const other = sha256Hex('{ other }');

  it('refuses a hash that does not match its query, and a malformed hash or version', () => {
    const persisted = createPersistedOperations(new Map(), false);
    const mismatch = persisted.screen({ query, extensions: { persistedQuery: { version: 1, sha256Hash: other } } });
    assert.equal(mismatch.refusal?.status, 400);
    assert.equal(mismatch.refusal?.body.errors[0].extensions.code, 'PERSISTED_QUERY_HASH_MISMATCH');
    assert.match(mismatch.refusal!.body.errors[0].message, new RegExp(`${other} does not match the query.*${hash}`));
    assert.equal(persisted.screen({ query, extensions: { persistedQuery: { version: 2, sha256Hash: hash } } }).refusal?.body.errors[0].extensions.field, 'extensions.persistedQuery.version');
    for (const sha256Hash of [hash.toUpperCase(), 'abc', 42, null]) {
      assert.equal(persisted.screen({ extensions: { persistedQuery: { version: 1, sha256Hash } } }).refusal?.body.errors[0].extensions.field, 'extensions.persistedQuery.sha256Hash');
    }
    assert.deepEqual(persisted.screen({ query, extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }), {});
    assert.deepEqual(persisted.screen({ extensions: { persistedQuery: { version: 1, sha256Hash: other } } }), {}, 'unknown: left to Apollo (NOT_FOUND)');
  });

  it('runs a registered operation by its hash, and in allow-list mode only registered operations', () => {
    const open = createPersistedOperations(new Map([[hash, query]]), false);
    assert.deepEqual(open.screen({ extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }), { query });
    assert.deepEqual(open.screen({ query: '{ other }' }), {});
    const only = createPersistedOperations(new Map([[hash, query]]), true);
    assert.deepEqual(only.screen({ query }), {});
    assert.deepEqual(only.screen({ extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }), { query });
    for (const request of [{ query: '{ other }' }, { extensions: { persistedQuery: { version: 1, sha256Hash: other } } }]) {
      const { refusal } = only.screen(request);
      assert.equal(refusal?.status, 400);
      assert.equal(refusal?.body.errors[0].extensions.code, 'PERSISTED_QUERY_NOT_ALLOWED');
    }
  });

  it('loads PERSISTED_OPERATIONS_FILE, refusing a bad file with the entry at fault', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'persisted-'));
    const file = (name: string, content: string) => {
      const at = path.join(dir, name);
      writeFileSync(at, content);
      return at;
    };
    const good = file('good.json', JSON.stringify({ [hash]: query }));
    assert.equal(loadPersistedOperations({ PERSISTED_OPERATIONS_FILE: good, PERSISTED_OPERATIONS_ONLY: true }).registered.get(hash), query);
    const bad: [string, RegExp][] = [
      ['{', /bad\.json: .*JSON/],
      ['[]', /must be a JSON object/],
      [JSON.stringify({ nothex: query }), /key 'nothex' is not a lowercase SHA-256/],
      [JSON.stringify({ [hash]: 42 }), /must be a string/],
      [JSON.stringify({ [other]: query }), new RegExp(`${other} is not the SHA-256 of its operation \\(that is ${hash}\\)`)],
    ];
    for (const [content, message] of bad) {
      assert.throws(() => loadPersistedOperations({ PERSISTED_OPERATIONS_FILE: file('bad.json', content), PERSISTED_OPERATIONS_ONLY: false }), message);
    }
    assert.throws(() => loadPersistedOperations({ PERSISTED_OPERATIONS_FILE: path.join(dir, 'missing.json'), PERSISTED_OPERATIONS_ONLY: false }), /missing\.json: ENOENT/);
  });
});
