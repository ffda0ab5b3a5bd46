/**
 * Client errors are client errors (issue #5): a value no resolver can use (NUL in a string, a
 * number that is not finite), an operation that cannot be determined, a malformed body and a
 * custom scalar refused by its subgraph are request errors: 400, errors naming the argument, no
 * `data`, nothing executed, nothing written — through the gateway and directly against each
 * subgraph, literal or variable, over HTTP (both response media types) and graphql-ws. Field
 * errors stay 200 with their data. A 5xx at the gateway logs why.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import WebSocket from 'ws';
import { createLogger } from '@connecte/shared/log';
import { startGateway, type RunningGateway } from '@connecte/gateway';
import { createTestDatabase, type TestDatabase, startHub, tokenFor, type Hub } from '@connecte/testkit';

type Target = 'gateway' | 'territory' | 'equipment';
interface Answer {
  status: number;
  contentType: string;
  body: { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] };
}

/** `1e309` cannot go through JSON.stringify (it becomes null): bodies are written as text. */
const bodyOf = (query: string, variables?: Record<string, unknown> | string, operationName?: string) =>
  `{"query":${JSON.stringify(query)}${variables === undefined ? '' : `,"variables":${typeof variables === 'string' ? variables : JSON.stringify(variables)}`}${operationName ? `,"operationName":${JSON.stringify(operationName)}` : ''}}`;

describe('client errors are client errors', () => {
  let db: TestDatabase;
  let hub: Hub;
  let pool: pg.Pool;
  let operator: string;
  const url = (target: Target) => (target === 'gateway' ? hub.gatewayUrl : hub.subgraphs[target].url);

  before(async () => {
    db = await createTestDatabase({ seed: true });
    hub = await startHub(db.url);
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    operator = await tokenFor(hub.config, ['operator'], ['chalons']);
  });
  after(async () => {
    await pool?.end();
    await hub?.close();
    await db?.drop();
  });

  const post = async (target: Target, body: string, headers: Record<string, string> = {}): Promise<Answer> => {
    const response = await fetch(url(target), { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: (await response.json()) as Answer['body'] };
  };

  const snapshot = async () =>
    (
      await pool.query(
        `SELECT (SELECT count(*)::int FROM equipment) AS equipment, (SELECT count(*)::int FROM events) AS events,
                (SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM equipment e) AS digest`,
      )
    ).rows[0];

  /** A request error: the status, one error with the code (and field), and no `data` entry. */
  const expectRequestError = (answer: Answer, code: string, field?: string, status = 400) => {
    const context = JSON.stringify(answer);
    assert.equal(answer.status, status, context);
    assert.ok(!('data' in answer.body), `no data entry: ${context}`);
    const [error] = answer.body.errors ?? [];
    assert.equal(error?.extensions?.code, code, context);
    if (field) {
      assert.equal(error.extensions?.field, field, context);
      assert.ok(error.message.startsWith(`${field}: `), `the message names ${field}: ${context}`);
    }
  };

  describe('unusable argument values: BAD_USER_INPUT naming the argument, 400', () => {
    const cases: { name: string; targets: Target[]; query: string; variables?: Record<string, unknown> | string; field: string }[] = [
      { name: 'lat 1e309 (literal)', targets: ['gateway', 'territory'], query: '{ locate(lon: 4.36, lat: 1e309) { inTerritory } }', field: 'lat' },
      {
        name: 'lat 1e309 (variable)',
        targets: ['gateway', 'territory'],
        query: 'query($lat: Float!) { locate(lon: 4.36, lat: $lat) { inTerritory } }',
        variables: '{"lat":1e309}',
        field: 'lat',
      },
      {
        name: 'an integer literal of 400 digits for a Float',
        targets: ['gateway', 'territory'],
        query: `{ locate(lon: 4.36, lat: 1${'0'.repeat(400)}) { inTerritory } }`,
        field: 'lat',
      },
      {
        name: 'near.lat -1e309 (literal, in an input object)',
        targets: ['gateway', 'equipment'],
        query: '{ equipmentSearch(filter: { near: { lon: 4.36, lat: -1e309, radiusMeters: 300 } }) { totalCount } }',
        field: 'filter.near.lat',
      },
      {
        name: 'a bbox number 1e309 (variable, in a list)',
        targets: ['gateway', 'equipment'],
        query: 'query($f: EquipmentFilter) { equipmentSearch(filter: $f) { totalCount } }',
        variables: '{"f":{"bbox":[4.3,48.9,1e309,49]}}',
        field: 'filter.bbox.2',
      },
      { name: 'NUL in an ID (literal)', targets: ['gateway', 'equipment'], query: '{ equipment(id: "lp\\u0000x") { id } }', field: 'id' },
      {
        name: 'NUL in an ID (variable)',
        targets: ['gateway', 'equipment'],
        query: 'query($id: ID!) { equipment(id: $id) { id } }',
        variables: { id: 'lp\u0000x' },
        field: 'id',
      },
      {
        name: 'NUL in streets nameContains (literal)',
        targets: ['gateway', 'territory'],
        query: '{ streets(filter: { nameContains: "a\\u0000" }) { totalCount } }',
        field: 'filter.nameContains',
      },
      {
        name: 'NUL in streets nameContains (variable holding the input object)',
        targets: ['gateway', 'territory'],
        query: 'query($f: StreetFilter) { streets(filter: $f) { totalCount } }',
        variables: { f: { nameContains: 'a\u0000' } },
        field: 'filter.nameContains',
      },
      {
        name: 'NUL in an argument of a nested field',
        targets: ['gateway', 'territory'],
        query: '{ commune(inseeCode: "51108") { streets(nameContains: "rue\\u0000") { totalCount } } }',
        field: 'nameContains',
      },
      {
        name: 'NUL in an argument inside a fragment',
        targets: ['gateway', 'territory'],
        query: '{ ...Where } fragment Where on Query { commune(inseeCode: "511\\u000008") { name } }',
        field: 'inseeCode',
      },
      {
        name: "NUL in a variable's default value",
        targets: ['gateway', 'territory'],
        query: 'query($code: ID! = "5\\u00001108") { commune(inseeCode: $code) { name } }',
        field: 'inseeCode',
      },
      {
        name: 'NUL in a cursor (variable)',
        targets: ['gateway', 'equipment'],
        query: 'query($after: String) { equipmentSearch(after: $after) { totalCount } }',
        variables: { after: '\u0000' },
        field: 'after',
      },
      {
        name: 'values nested deeper than any input needs',
        targets: ['gateway', 'equipment'],
        query: 'query($f: EquipmentFilter) { equipmentSearch(filter: $f) { totalCount } }',
        variables: `{"f":{"within":${'['.repeat(5000)}${']'.repeat(5000)}}}`,
        field: 'filter.within',
      },
    ];
    for (const { name, targets, query, variables, field } of cases) {
      for (const target of targets) {
        it(`${name} → ${target}: 400 BAD_USER_INPUT naming ${field}`, async () => {
          const answer = await post(target, bodyOf(query, variables));
          expectRequestError(answer, 'BAD_USER_INPUT', field);
        });
      }
    }

    it('a raw NUL character inside a string or block string literal → 400 naming the argument', async () => {
      for (const target of ['gateway', 'territory'] as const) {
        for (const literal of ['"a\u0000"', '"""a\u0000"""']) {
          const answer = await post(target, bodyOf(`{ streets(filter: { nameContains: ${literal} }) { totalCount } }`));
          expectRequestError(answer, 'BAD_USER_INPUT', 'filter.nameContains');
        }
      }
    });

    it('an out-of-range but finite latitude stays a field error: 200 with data, like every resolver error', async () => {
      for (const target of ['gateway', 'territory'] as const) {
        const answer = await post(target, bodyOf('{ locate(lon: 4.36, lat: 95) { inTerritory } }'));
        assert.equal(answer.status, 200, JSON.stringify(answer));
        assert.ok('data' in answer.body);
        assert.equal(answer.body.errors?.[0].extensions?.field, 'lat');
      }
    });

    it('a forged cursor that decodes to a NUL is refused as a foreign cursor, naming `after` (never a database error)', async () => {
      const keyset = Buffer.from('k:\u0000', 'utf8').toString('base64url');
      const territoryJson = Buffer.from(`k:${JSON.stringify(['Street', '\u0000', 'x'])}`, 'utf8').toString('base64url');
      for (const [query, field] of [
        [`{ equipmentSearch(after: "${keyset}") { totalCount } }`, 'after'],
        [`{ streets(after: "${territoryJson}") { totalCount } }`, 'after'],
      ] as const) {
        const answer = await post('gateway', bodyOf(query));
        const context = JSON.stringify(answer);
        assert.equal(answer.body.errors?.[0].extensions?.code, 'BAD_USER_INPUT', context);
        assert.equal(answer.body.errors?.[0].extensions?.field, field, context);
        assert.match(answer.body.errors![0].message, /is not a cursor/, context);
      }
    });

    it('ordinary strings and numbers still work (the guards refuse only what no resolver can use)', async () => {
      const answer = await post('gateway', bodyOf('query($lat: Float!) { locate(lon: 4.365, lat: $lat) { inTerritory } streets(filter: { nameContains: "rue" }, first: 1) { totalCount } }', '{"lat":48.9566}'));
      assert.equal(answer.status, 200, JSON.stringify(answer));
      assert.equal(answer.body.errors, undefined, JSON.stringify(answer));
      assert.deepEqual((answer.body.data as { locate: unknown }).locate, { inTerritory: true });
    });
  });

  describe('writes with NUL: refused before execution, nothing written', () => {
    const register = (input: Record<string, unknown>) =>
      bodyOf('mutation($input: RegisterEquipmentInput!) { registerEquipment(input: $input) { id } }', {
        input: { kind: 'WIFI_HOTSPOT', reference: 'WIFI-NUL-1', collectivityId: 'chalons', location: { lon: 4.365, lat: 48.957 }, ...input },
      });
    const cases: [string, string, string][] = [
      ['register: NUL in reference (variable)', register({ reference: 'WIFI\u0000-1' }), 'input.reference'],
      ['register: NUL in name (variable)', register({ name: 'Borne\u0000' }), 'input.name'],
      ['register: NUL in a details string (JSON scalar)', register({ details: { ssid: 'x\u0000' } }), 'input.details.ssid'],
      ['register: NUL in a details key (JSON scalar)', register({ details: { 'ss\u0000id': 'x' } }), 'input.details'],
      ['register: lat 1e309 (variable)', register({ location: '__LOC__' }).replace('"__LOC__"', '{"lon":4.365,"lat":1e309}'), 'input.location.lat'],
      [
        'register: NUL in reference (literal)',
        bodyOf('mutation { registerEquipment(input: { kind: WIFI_HOTSPOT, reference: "W\\u0000", collectivityId: "chalons", location: { lon: 4.365, lat: 48.957 } }) { id } }'),
        'input.reference',
      ],
      ['update: NUL in name (literal)', bodyOf('mutation { updateEquipment(id: "lp-0001", input: { name: "x\\u0000" }) { id } }'), 'input.name'],
      [
        'update: NUL in details (variable)',
        bodyOf('mutation($input: UpdateEquipmentInput!) { updateEquipment(id: "lp-0001", input: $input) { id } }', { input: { details: { lampType: 'LED\u0000' } } }),
        'input.details.lampType',
      ],
      ['decommission: NUL in reason (literal)', bodyOf('mutation { decommissionEquipment(id: "lp-0001", reason: "gone\\u0000") { id } }'), 'reason'],
    ];
    for (const [name, body, field] of cases) {
      for (const target of ['gateway', 'equipment'] as const) {
        it(`${name} → ${target}: 400 naming ${field}, no row changed`, async () => {
          const before = await snapshot();
          expectRequestError(await post(target, body, { authorization: `Bearer ${operator}` }), 'BAD_USER_INPUT', field);
          assert.deepEqual(await snapshot(), before, 'nothing was written');
        });
      }
    }
  });

  describe('operations that cannot be determined, malformed bodies: 400', () => {
    const two = 'query A { territory { communeCount } } query B { collectivities { id } }';
    for (const target of ['gateway', 'territory'] as const) {
      it(`${target}: an operationName naming no operation → 400 OPERATION_RESOLUTION_FAILURE`, async () => {
        const answer = await post(target, bodyOf(two, undefined, 'C'));
        expectRequestError(answer, 'OPERATION_RESOLUTION_FAILURE');
        assert.match(answer.body.errors![0].message, /"C"/);
      });
      it(`${target}: several operations and no operationName → 400 OPERATION_RESOLUTION_FAILURE`, async () => {
        expectRequestError(await post(target, bodyOf(two)), 'OPERATION_RESOLUTION_FAILURE');
      });
      it(`${target}: two operations of one name → 400 GRAPHQL_VALIDATION_FAILED`, async () => {
        expectRequestError(await post(target, bodyOf('query A { territory { communeCount } } query A { collectivities { id } }', undefined, 'A')), 'GRAPHQL_VALIDATION_FAILED');
      });
      it(`${target}: operationName repeated in a GET → 400 BAD_REQUEST`, async () => {
        const response = await fetch(`${url(target)}?query=${encodeURIComponent(two)}&operationName=A&operationName=B`, {
          headers: { 'apollo-require-preflight': 'true' },
        });
        expectRequestError({ status: response.status, contentType: '', body: (await response.json()) as Answer['body'] }, 'BAD_REQUEST');
      });
      it(`${target}: operationName picks one of several → 200`, async () => {
        const answer = await post(target, bodyOf(two, undefined, 'B'));
        assert.equal(answer.status, 200, JSON.stringify(answer));
        assert.equal((answer.body.data as { collectivities: unknown[] }).collectivities.length, 4);
      });
      for (const [name, body] of [
        ['{"query": 5}', '{"query":5}'],
        ['{"variables": "x"}', '{"query":"{ territory { communeCount } }","variables":"x"}'],
        ['{"operationName": 5}', '{"query":"{ territory { communeCount } }","operationName":5}'],
        ['a batch (array body)', '[{"query":"{ territory { communeCount } }"}]'],
      ]) {
        it(`${target}: ${name} → 400 BAD_REQUEST`, async () => expectRequestError(await post(target, body), 'BAD_REQUEST'));
      }
    }
  });

  describe("custom scalars refused by their subgraph: the gateway answers the subgraph's 400", () => {
    // The fourth member: the argument the error names (for a variable: where it is given, and the place within its value).
    const cases: [string, string, string, string][] = [
      ['a string for within (literal)', bodyOf('{ equipmentSearch(filter: { within: "POLYGON((0 0))" }) { totalCount } }'), 'GRAPHQL_VALIDATION_FAILED', 'filter.within'],
      ['a string for within (variable)', bodyOf('query($w: GeoJSONGeometry) { equipmentSearch(filter: { within: $w }) { totalCount } }', { w: 'x' }), 'BAD_USER_INPUT', 'filter.within'],
      ['a word for a Float inside a filter variable', bodyOf('query($f: EquipmentFilter) { equipmentSearch(filter: $f) { totalCount } }', { f: { bbox: [4.3, 48.9, 'east', 49] } }), 'BAD_USER_INPUT', 'filter.bbox.2'],
      [
        'an impossible Date (literal)',
        bodyOf('mutation { registerEquipment(input: { kind: WIFI_HOTSPOT, reference: "W-D-1", collectivityId: "chalons", installedOn: "2021-02-30" }) { id } }'),
        'GRAPHQL_VALIDATION_FAILED',
        'input.installedOn',
      ],
      [
        'a number for a Date (literal)',
        bodyOf('mutation { registerEquipment(input: { kind: WIFI_HOTSPOT, reference: "W-D-1", collectivityId: "chalons", installedOn: 20210101 }) { id } }'),
        'GRAPHQL_VALIDATION_FAILED',
        'input.installedOn',
      ],
      ['a word for a Float in a list (literal)', bodyOf('{ equipmentSearch(filter: { bbox: [4.3, 48.9, "east", 49] }) { totalCount } }'), 'GRAPHQL_VALIDATION_FAILED', 'filter.bbox.2'],
      ['an unknown enum value in a list (literal)', bodyOf('{ equipmentSearch(filter: { kinds: [LIGHT_POINT, NOPE] }) { totalCount } }'), 'GRAPHQL_VALIDATION_FAILED', 'filter.kinds.1'],
      [
        'an impossible Date (variable)',
        bodyOf('mutation($d: Date) { registerEquipment(input: { kind: WIFI_HOTSPOT, reference: "W-D-1", collectivityId: "chalons", installedOn: $d }) { id } }', { d: '2021-02-30' }),
        'BAD_USER_INPUT',
        'input.installedOn',
      ],
    ];
    for (const [name, body, code, field] of cases) {
      for (const target of ['gateway', 'equipment'] as const) {
        it(`${name} → ${target}: 400 ${code} naming ${field}, no data, nothing written`, async () => {
          const before = await snapshot();
          const answer = await post(target, body, { authorization: `Bearer ${operator}` });
          expectRequestError(answer, code, field);
          assert.match(answer.body.errors![0].message, /GeoJSONGeometry|Date|nope|Float|NOPE/);
          assert.deepEqual(await snapshot(), before);
        });
      }
    }

    for (const target of ['gateway', 'equipment'] as const) {
      it(`an unknown field (validated by the gateway itself) → ${target}: 400 GRAPHQL_VALIDATION_FAILED`, async () => {
        const answer = await post(target, bodyOf('{ equipmentSearch { nope } }'));
        expectRequestError(answer, 'GRAPHQL_VALIDATION_FAILED');
        assert.match(answer.body.errors![0].message, /nope/);
      });
    }

    it('a refusal alongside data of another subgraph is still a request error: no partial data', async () => {
      const answer = await post('gateway', bodyOf('{ collectivities { id } equipmentSearch(filter: { within: "x" }) { totalCount } }'));
      expectRequestError(answer, 'GRAPHQL_VALIDATION_FAILED');
    });
  });

  describe('the same status for both response media types', () => {
    const requests: [string, string, number][] = [
      ['parse failure', bodyOf('{'), 400],
      ['validation failure', bodyOf('{ nope }'), 400],
      ['operation not determined', bodyOf('query A { territory { communeCount } } query B { territory { communeCount } }'), 400],
      ['variable coercion failure', bodyOf('query($lat: Float!) { locate(lon: 4.36, lat: $lat) { inTerritory } }', { lat: 'north' }), 400],
      ['unusable argument', bodyOf('{ locate(lon: 4.36, lat: 1e309) { inTerritory } }'), 400],
      ['field error', bodyOf('{ locate(lon: 4.36, lat: 95) { inTerritory } }'), 200],
    ];
    for (const [name, body, status] of requests) {
      for (const accept of ['application/graphql-response+json', 'application/json']) {
        for (const target of ['gateway', 'territory'] as const) {
          it(`${name}, accept ${accept} → ${target}: ${status} ${accept}`, async () => {
            const answer = await post(target, body, { accept });
            assert.equal(answer.status, status, JSON.stringify(answer));
            assert.match(answer.contentType, new RegExp(`^${accept.replace('+', '\\+')}`));
            assert.equal('data' in answer.body, status === 200, JSON.stringify(answer));
          });
        }
      }
    }
  });

  describe('the same status at the gateway as at the subgraph', () => {
    const DECOMMISSION = 'mutation { decommissionEquipment(id: "lp-chalons-00001", reason: "test") { id } }';
    for (const target of ['gateway', 'equipment'] as const) {
      it(`a write by the public is a field error UNAUTHENTICATED → ${target}: 200, nothing written`, async () => {
        const before = await snapshot();
        const answer = await post(target, bodyOf(DECOMMISSION));
        assert.equal(answer.status, 200, JSON.stringify(answer));
        assert.equal(answer.body.errors?.[0].extensions?.code, 'UNAUTHENTICATED', JSON.stringify(answer));
        assert.deepEqual(await snapshot(), before);
      });
      it(`a token that does not verify → ${target}: 401 before anything runs`, async () => {
        const answer = await post(target, bodyOf('{ __typename }'), { authorization: 'Bearer not-a-token' });
        assert.equal(answer.status, 401, JSON.stringify(answer));
        assert.equal(answer.body.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
      });
    }
  });

  describe('graphql-ws: request errors are `error` messages with their code', () => {
    /** One operation over a raw graphql-transport-ws socket (raw, so that `1e309` can be sent). */
    const overSocket = (target: Target, payloadText: string, token?: string) =>
      new Promise<{ type: string; payload?: any }[]>((resolve, reject) => {
        const socket = new WebSocket(url(target).replace(/^http/, 'ws'), 'graphql-transport-ws');
        const received: { type: string; payload?: any }[] = [];
        const timer = setTimeout(() => (socket.terminate(), reject(new Error(`no answer: ${JSON.stringify(received)}`))), 5_000);
        socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: token ? { authorization: `Bearer ${token}` } : {} })));
        socket.on('message', (data) => {
          const message = JSON.parse(String(data));
          if (message.type === 'connection_ack') return socket.send(`{"id":"1","type":"subscribe","payload":${payloadText}}`);
          received.push(message);
          if (message.type === 'error' || message.type === 'complete') {
            clearTimeout(timer);
            socket.close();
            resolve(received);
          }
        });
        socket.on('error', reject);
      });

    const cases: { name: string; targets: Target[]; payload: string; code: string; field?: string }[] = [
      { name: 'NUL in a subscription argument (literal)', targets: ['gateway', 'equipment'], payload: bodyOf('subscription { equipmentChanged(after: "x\\u0000") { cursor } }'), code: 'BAD_USER_INPUT', field: 'after' },
      {
        name: 'NUL in a subscription argument (variable)',
        targets: ['gateway', 'equipment'],
        payload: bodyOf('subscription($a: String) { equipmentChanged(after: $a) { cursor } }', { a: 'x\u0000' }),
        code: 'BAD_USER_INPUT',
        field: 'after',
      },
      { name: 'NUL in a query argument', targets: ['gateway', 'territory'], payload: bodyOf('{ streets(filter: { nameContains: "a\\u0000" }) { totalCount } }'), code: 'BAD_USER_INPUT', field: 'filter.nameContains' },
      {
        name: 'lat 1e309 (variable)',
        targets: ['gateway', 'territory'],
        payload: bodyOf('query($lat: Float!) { locate(lon: 4.36, lat: $lat) { inTerritory } }', '{"lat":1e309}'),
        code: 'BAD_USER_INPUT',
        field: 'lat',
      },
      { name: 'lat 1e309 (literal)', targets: ['gateway', 'territory'], payload: bodyOf('{ locate(lon: 4.36, lat: 1e309) { inTerritory } }'), code: 'BAD_USER_INPUT', field: 'lat' },
      {
        name: 'a variable failing coercion',
        targets: ['gateway', 'territory'],
        payload: bodyOf('query($lat: Float!) { locate(lon: 4.36, lat: $lat) { inTerritory } }', { lat: 'north' }),
        code: 'BAD_USER_INPUT',
      },
      { name: 'a parse failure', targets: ['gateway', 'territory'], payload: bodyOf('{'), code: 'GRAPHQL_PARSE_FAILED' },
      { name: 'a validation failure', targets: ['gateway', 'territory'], payload: bodyOf('{ nope }'), code: 'GRAPHQL_VALIDATION_FAILED' },
      {
        name: 'an operationName naming no operation',
        targets: ['gateway', 'territory'],
        payload: bodyOf('query A { territory { communeCount } }', undefined, 'B'),
        code: 'OPERATION_RESOLUTION_FAILURE',
      },
    ];
    for (const { name, targets, payload, code, field } of cases) {
      for (const target of targets) {
        it(`${name} → ${target}: error message ${code}${field ? ` naming ${field}` : ''}`, async () => {
          const messages = await overSocket(target, payload);
          assert.equal(messages.length, 1, JSON.stringify(messages));
          const [message] = messages;
          assert.equal(message.type, 'error', JSON.stringify(messages));
          assert.equal(message.payload[0].extensions?.code, code, JSON.stringify(messages));
          if (field) assert.equal(message.payload[0].extensions?.field, field, JSON.stringify(messages));
          assert.equal(message.payload[0].extensions?.http, undefined, 'no HTTP detail over a socket');
        });
      }
    }

    it('a mutation with NUL over the gateway socket writes nothing', async () => {
      const before = await snapshot();
      const messages = await overSocket('gateway', bodyOf('mutation { updateEquipment(id: "lp-0001", input: { name: "x\\u0000" }) { id } }'), operator);
      assert.equal(messages[0].type, 'error', JSON.stringify(messages));
      assert.equal(messages[0].payload[0].extensions?.field, 'input.name');
      assert.deepEqual(await snapshot(), before);
    });

    it('a valid query over the gateway socket still answers', async () => {
      const messages = await overSocket('gateway', bodyOf('{ territory { communeCount } }'));
      assert.deepEqual(messages[0], { id: '1', type: 'next', payload: { data: { territory: { communeCount: 30 } } } });
    });
  });

  describe("the gateway's log line for a 5xx says why", () => {
    let gateway: RunningGateway;
    const lines: Record<string, unknown>[] = [];

    before(async () => {
      const sink = new Writable({
        write: (chunk, _encoding, done) => {
          for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
          done();
        },
      });
      gateway = await startGateway({
        config: hub.config,
        port: 0,
        subgraphUrls: { territory: hub.subgraphs.territory.url, equipment: hub.subgraphs.equipment.url },
        log: createLogger('gateway', { LOG_LEVEL: 'info' }, sink),
        routes: {
          '/broken': () => {
            throw new Error('the broken module failed on purpose');
          },
        },
      });
    });
    after(() => gateway?.close());

    it('a route that throws: 500, and the request line carries the reason', async () => {
      const response = await fetch(`${gateway.origin}/broken`);
      assert.equal(response.status, 500);
      await response.text();
      const line = lines.find((l) => l.msg === 'request' && l.status === 500);
      assert.ok(line, JSON.stringify(lines));
      assert.equal(line.level, 'error');
      assert.match(String(line.reason), /the broken module failed on purpose/);
    });

    it('the requests that used to be 500s are 400s and log no error', async () => {
      lines.length = 0;
      for (const body of [
        bodyOf('{ locate(lon: 4.36, lat: 1e309) { inTerritory } }'),
        bodyOf('query A { territory { communeCount } }', undefined, 'B'),
        bodyOf('query A { territory { communeCount } } query B { territory { communeCount } }'),
        bodyOf('{ equipment(id: "lp\\u0000x") { id } }'),
      ]) {
        const response = await fetch(gateway.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        assert.equal(response.status, 400, await response.text());
      }
      const requestLines = lines.filter((l) => l.msg === 'request');
      assert.equal(requestLines.length, 4, JSON.stringify(lines));
      assert.ok(requestLines.every((l) => l.status === 400 && l.level === 'info' && !('reason' in l)), JSON.stringify(requestLines));
      assert.ok(!lines.some((l) => l.level === 'error'), JSON.stringify(lines));
    });
  });
});
