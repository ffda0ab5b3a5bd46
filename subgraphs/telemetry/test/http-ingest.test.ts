/**
 * `POST /ingest` over real HTTP, on the telemetry service and through the gateway's `/ingest`:
 * the answer's counts and reasons, every refusal (400, 401, 404, 405, 413, 415) before anything is
 * written, credentials that are wrong or revoked, a device reporting for another, hostile bodies
 * (huge, streamed, NUL bytes, repeated headers), and a database that is down (503, never 500).
 * Credentials are issued the real way (GraphQL, the broker of the repository's configuration).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { deviceBaseName, senmlPack, type MetricName } from '@connecte/shared/senml';
import { ADMIN_URL, createTestDatabase, gql, startHub, startService, startTestBroker, tokenFor, type Hub, type TestBroker, type TestDatabase, type TestService } from '@connecte/testkit';

const MAX_BYTES = 64 * 1024;
const MAX_RECORDS = 600;
const ENV = { INGEST_MAX_BYTES: String(MAX_BYTES), INGEST_MAX_RECORDS: String(MAX_RECORDS) };

const ISSUE = `mutation Issue($id: ID!) { issueDeviceCredential(equipmentId: $id) { secret { token } } }`;
const REVOKE = `mutation Revoke($id: ID!) { revokeDeviceCredential(equipmentId: $id) { revokedAt } }`;
const ISSUE_KEY = `mutation Key($c: ID!) { issueIngestKey(collectivityId: $c, label: "test gateway") { key { id } secret { token } } }`;
const REVOKE_KEY = `mutation Revoke($id: ID!) { revokeIngestKey(id: $id) { revokedAt } }`;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

/** One request on a connection of its own; `headers` may repeat a name (a flat [name, value, ...] list). */
function request(url: string, options: { method?: string; headers?: Record<string, string> | string[]; body?: string | Buffer | AsyncIterable<Buffer> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = http.request({ hostname: target.hostname, port: target.port, path: target.pathname, method: options.method ?? 'POST', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try {
          json = JSON.parse(text);
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    // A server that answers before the whole body is sent may close: the answer still counts.
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    const body = options.body;
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else
      void (async () => {
        for await (const chunk of body) if (!req.write(chunk)) await new Promise((resolve) => req.once('drain', resolve));
        req.end();
      })().catch(() => undefined);
  });
}

const senml = (token: string) => ({ authorization: `Bearer ${token}`, 'content-type': 'application/senml+json' });
const pack = (equipmentId: string, ms: number, values: Partial<Record<MetricName, number | boolean>>) => senmlPack(deviceBaseName(equipmentId).slice(0, -1), ms / 1000, values);

let broker: TestBroker;
let database: TestDatabase;
let hub: Hub;
let ingestUrl: string;
let gatewayIngestUrl: string;
let lights: { id: string; collectivityId: string }[];
let operatorToken: string;
let adminToken: string;
const at = Date.now() - 10 * 60_000;

const ok = <T>(response: { data?: T; errors?: unknown }): T => {
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data!;
};
async function deviceToken(equipmentId: string): Promise<string> {
  return ok(await gql<{ issueDeviceCredential: { secret: { token: string } } }>(hub.gatewayUrl, ISSUE, { token: operatorToken, variables: { id: equipmentId } })).issueDeviceCredential.secret.token;
}
const take = () => {
  const light = lights.shift();
  assert.ok(light, 'an unused light point');
  return light.id;
};
const stored = async (equipmentId: string) =>
  (await hub.subgraphs.telemetry.db.pool.query<{ metric: string; value: number }>('SELECT metric, value FROM readings WHERE equipment_id = $1 ORDER BY metric', [equipmentId])).rows.map((r) => [r.metric, r.value]);

before(async () => {
  broker = await startTestBroker();
  database = await createTestDatabase();
  hub = await startHub(database.url, { ...broker.env, ...ENV });
  const telemetry = hub.subgraphs.telemetry;
  ingestUrl = telemetry.url.replace(/\/graphql$/, '/ingest');
  gatewayIngestUrl = hub.gatewayUrl.replace(/\/graphql$/, '/ingest');
  const { rows } = await telemetry.db.pool.query<{ equipment_id: string; collectivity_id: string }>(
    `SELECT equipment_id, collectivity_id FROM telemetry_devices WHERE kind = 'LIGHT_POINT' AND status = 'IN_SERVICE' AND collectivity_id = 'chalons' ORDER BY equipment_id LIMIT 40`,
  );
  lights = rows.map((r) => ({ id: r.equipment_id, collectivityId: r.collectivity_id }));
  operatorToken = await tokenFor(hub.config, ['operator'], ['chalons']);
  adminToken = await tokenFor(hub.config, ['admin'], ['chalons']);
});

after(async () => {
  await hub?.close();
  await database?.drop();
  await broker?.stop();
});

describe('POST /ingest', () => {
  it('answers 200 with the accepted, duplicate and rejected records, each rejection with its index, field and reason', async () => {
    const lamp = take();
    const token = await deviceToken(lamp);
    const body = [
      ...pack(lamp, at, { power: 16, energy: 1043.2 }),
      { n: 'dim_level', u: 'kW', v: 40 },
      { n: 'illuminance', u: 'lx', v: 1e309 },
      { n: 'fault', vb: false, t: 20 * 60 },
      { n: 'power', u: 'W', v: 17, t: -86_400 * 500 },
    ];
    const text = JSON.stringify(body).replace('"v":null', '"v":1e309');
    const first = await request(ingestUrl, { headers: senml(token), body: text });
    assert.equal(first.status, 200, first.text);
    assert.match(String(first.headers['content-type']), /^application\/json/);
    assert.deepEqual(first.json.accepted, 2);
    assert.deepEqual(first.json.duplicate, 0);
    assert.deepEqual(first.json.rejected, [
      { index: 2, field: 'u', reason: 'unit "kW" does not match metric dim_level (%)' },
      { index: 3, field: 'v', reason: 'value Infinity is not a finite number' },
      { index: 4, field: 't', reason: first.json.rejected[2].reason },
      { index: 5, field: 't', reason: first.json.rejected[3].reason },
    ]);
    assert.match(first.json.rejected[2].reason, /more than 5 minutes in the future/);
    assert.match(first.json.rejected[3].reason, /older than the retention of power \(400 days\)/);
    const again = await request(ingestUrl, { headers: { ...senml(token), 'content-type': 'application/json; charset=utf-8' }, body: text });
    assert.equal(again.status, 200);
    assert.deepEqual([again.json.accepted, again.json.duplicate, again.json.rejected.length], [0, 2, 4], 'sent again: duplicates, stored once');
    assert.deepEqual(await stored(lamp), [['energy', 1043.2], ['power', 16]]);
  });

  it('rejects a device credential’s records for another device, and stores its own records of the same pack', async () => {
    const [mine, other] = [take(), take()];
    const token = await deviceToken(mine);
    const answer = await request(ingestUrl, { headers: senml(token), body: JSON.stringify([...pack(other, at, { power: 99 }), ...pack(mine, at, { power: 5 })]) });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json, {
      accepted: 1,
      duplicate: 0,
      rejected: [{ index: 0, field: 'bn', reason: `this device credential reports only for equipment "${mine}", not "${other}"` }],
    });
    assert.deepEqual(await stored(other), []);
    assert.deepEqual(await stored(mine), [['power', 5]]);
  });

  it('takes an ingest key’s records for any asset of its collectivity, not another’s', async () => {
    const issued = ok(await gql<{ issueIngestKey: { key: { id: string }; secret: { token: string } } }>(hub.gatewayUrl, ISSUE_KEY, { token: adminToken, variables: { c: 'chalons' } })).issueIngestKey;
    const { rows } = await hub.subgraphs.telemetry.db.pool.query<{ equipment_id: string }>(`SELECT equipment_id FROM telemetry_devices WHERE collectivity_id = 'fagnieres' AND status = 'IN_SERVICE' LIMIT 1`);
    const [a, b] = [take(), take()];
    const answer = await request(ingestUrl, {
      headers: senml(issued.secret.token),
      body: JSON.stringify([...pack(a, at, { power: 1 }), ...pack(b, at, { power: 2 }), ...pack(rows[0].equipment_id, at, { power: 3 })]),
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.json.accepted, 2);
    assert.deepEqual(answer.json.rejected, [{ index: 2, field: 'bn', reason: `unknown equipment "${rows[0].equipment_id}" in collectivity "chalons"` }]);
    ok(await gql(hub.gatewayUrl, REVOKE_KEY, { token: adminToken, variables: { id: issued.key.id } }));
    const revoked = await request(ingestUrl, { headers: senml(issued.secret.token), body: JSON.stringify(pack(a, at + 1000, { power: 1 })) });
    assert.equal(revoked.status, 401, 'a revoked ingest key');
  });

  it('answers 200 with the counts when every record is rejected', async () => {
    const lamp = take();
    const token = await deviceToken(lamp);
    const answer = await request(ingestUrl, { headers: senml(token), body: JSON.stringify([{ bn: deviceBaseName(lamp), n: 'voltage', u: 'V', v: 230, bt: at / 1000 }]) });
    assert.equal(answer.status, 200);
    assert.deepEqual([answer.json.accepted, answer.json.duplicate, answer.json.rejected[0].field], [0, 0, 'n']);
  });

  describe('401 for a missing, malformed, wrong or revoked credential, with WWW-Authenticate', () => {
    it('missing, not Bearer, unknown, forged', async () => {
      const body = JSON.stringify(pack(lights[0].id, at, { power: 1 }));
      for (const authorization of [undefined, '', 'Basic dXNlcjpwYXNz', 'Bearer', 'Bearer cdt_0123456789abcdef_' + 'A'.repeat(43), 'Bearer not-a-token', `Bearer ${'x'.repeat(10_000)}`]) {
        const headers: Record<string, string> = { 'content-type': 'application/senml+json' };
        if (authorization !== undefined) headers.authorization = authorization;
        const answer = await request(ingestUrl, { headers, body });
        assert.equal(answer.status, 401, String(authorization).slice(0, 40));
        assert.match(String(answer.headers['www-authenticate']), /^Bearer realm="connecte-ingest"/);
        assert.match(String(answer.headers['content-type']), /^application\/problem\+json/);
        assert.equal(answer.json.code, 'UNAUTHENTICATED');
        assert.equal(answer.json.field, 'authorization');
      }
    });
    it('revoked: refused at once, and a rotated credential’s old token too', async () => {
      const lamp = take();
      const token = await deviceToken(lamp);
      const body = JSON.stringify(pack(lamp, at, { power: 1 }));
      assert.equal((await request(ingestUrl, { headers: senml(token), body })).status, 200);
      const rotated = await deviceToken(lamp);
      const old = await request(ingestUrl, { headers: senml(token), body });
      assert.equal(old.status, 401, 'the rotated-out token');
      assert.equal((await request(ingestUrl, { headers: senml(rotated), body })).status, 200);
      ok(await gql(hub.gatewayUrl, REVOKE, { token: operatorToken, variables: { id: lamp } }));
      const answer = await request(ingestUrl, { headers: senml(rotated), body });
      assert.equal(answer.status, 401);
      assert.match(String(answer.headers['www-authenticate']), /error="invalid_token"/);
    });
  });

  describe('refusals before anything is read or written', () => {
    let token: string;
    let lamp: string;
    before(async () => {
      lamp = take();
      token = await deviceToken(lamp);
    });

    it('405 with Allow: POST for any other method; 404 below /ingest', async () => {
      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']) {
        const answer = await request(ingestUrl, { method, headers: senml(token) });
        assert.equal(answer.status, 405, method);
        assert.equal(answer.headers.allow, 'POST');
        if (method !== 'HEAD') assert.equal(answer.json.code, 'METHOD_NOT_ALLOWED');
      }
      const below = await request(`${ingestUrl}/more`, { headers: senml(token), body: '[]' });
      assert.equal(below.status, 404);
    });

    it('415 for another content type, another charset, or a compressed body', async () => {
      for (const headers of [
        { authorization: `Bearer ${token}` } as Record<string, string>,
        { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
        { authorization: `Bearer ${token}`, 'content-type': 'application/cbor' },
        { authorization: `Bearer ${token}`, 'content-type': 'application/senml+json; charset=iso-8859-1' },
        { ...senml(token), 'content-encoding': 'gzip' },
      ]) {
        const answer = await request(ingestUrl, { headers, body: JSON.stringify(pack(lamp, at, { power: 1 })) });
        assert.equal(answer.status, 415, JSON.stringify(headers));
        assert.equal(answer.json.code, 'UNSUPPORTED_MEDIA_TYPE');
      }
    });

    it('400 for a body that is not a SenML pack: malformed JSON, NUL bytes, not an array, empty', async () => {
      for (const body of ['[{"n":', Buffer.from([0x5b, 0x00, 0x5d]), '{"bn":"x"}', '[]', '', 'NaN']) {
        const answer = await request(ingestUrl, { headers: senml(token), body });
        assert.equal(answer.status, 400, String(body));
        assert.equal(answer.json.code, 'BAD_USER_INPUT');
        assert.equal(answer.json.field, 'body');
        assert.doesNotMatch(answer.text, /\u0000/);
      }
    });

    it('NUL bytes inside strings: the record is rejected with a reason that holds no NUL, the others stored', async () => {
      const body = JSON.stringify([{ bn: deviceBaseName(lamp), bt: at / 1000 + 1, n: 'power\u0000', u: 'W', v: 1 }, { n: 'energy', u: 'Wh', v: 2 }]);
      const answer = await request(ingestUrl, { headers: senml(token), body });
      assert.equal(answer.status, 200);
      assert.equal(answer.json.accepted, 1);
      assert.match(answer.json.rejected[0].reason, /power\\u0000/);
    });

    it('400 for a repeated Authorization or Content-Type header (node would keep the first)', async () => {
      for (const name of ['authorization', 'content-type']) {
        const body = JSON.stringify(pack(lamp, at, { power: 1 }));
        // A raw header list: node's client then adds neither Host nor the length.
        const headers = ['host', new URL(ingestUrl).host, 'authorization', `Bearer ${token}`, 'content-type', 'application/senml+json', 'content-length', String(Buffer.byteLength(body))];
        headers.push(name, name === 'authorization' ? 'Bearer other' : 'text/plain');
        const answer = await request(ingestUrl, { headers, body });
        assert.equal(answer.status, 400, name);
        assert.equal(answer.json.field, name);
      }
    });

    it('413 for a body over INGEST_MAX_BYTES, declared or streamed, and a pack over INGEST_MAX_RECORDS', async () => {
      const declared = await request(ingestUrl, { headers: { ...senml(token), 'content-length': String(MAX_BYTES + 1) }, body: Buffer.alloc(MAX_BYTES + 1, 0x20) });
      assert.equal(declared.status, 413);
      assert.equal(declared.json.code, 'PAYLOAD_TOO_LARGE');
      assert.match(declared.json.detail, /exceeds the limit of 65536 bytes \(INGEST_MAX_BYTES\)/);
      // 64 MiB announced by nothing (chunked): refused once the limit is passed, without reading it all.
      let sent = 0;
      const started = Date.now();
      async function* endless() {
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        while (sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          yield chunk;
        }
      }
      const streamed = await request(ingestUrl, { headers: senml(token), body: endless() });
      assert.equal(streamed.status, 413);
      assert.ok(Date.now() - started < 10_000);
      assert.ok(sent < 16 * 1024 * 1024, `the server stopped reading (${sent} bytes sent)`);
      assert.equal(streamed.headers.connection, 'close');
      const many = Array.from({ length: MAX_RECORDS + 1 }, (_, i) => ({ bn: deviceBaseName(lamp), bt: at / 1000 - i, n: 'power', u: 'W', v: 1 }));
      assert.ok(Buffer.byteLength(JSON.stringify(many)) < MAX_BYTES, 'within the byte limit');
      const records = await request(ingestUrl, { headers: senml(token), body: JSON.stringify(many) });
      assert.equal(records.status, 413);
      assert.match(records.json.detail, /601 records, more than the limit of 600 \(INGEST_MAX_RECORDS\)/);
      assert.deepEqual(await stored(lamp), [['energy', 2]], 'nothing of the refused bodies was stored');
    });
  });

  it('is mounted at the gateway’s /ingest: same answers, same refusals', async () => {
    const lamp = take();
    const token = await deviceToken(lamp);
    const body = JSON.stringify(pack(lamp, at, { power: 3, energy: 4 }));
    const answer = await request(gatewayIngestUrl, { headers: senml(token), body });
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(answer.json, { accepted: 2, duplicate: 0, rejected: [] });
    assert.deepEqual((await request(gatewayIngestUrl, { headers: senml(token), body })).json, { accepted: 0, duplicate: 2, rejected: [] });
    assert.equal((await request(gatewayIngestUrl, { headers: { 'content-type': 'application/senml+json' }, body })).status, 401);
    assert.equal((await request(gatewayIngestUrl, { method: 'GET', headers: senml(token) })).status, 405);
    assert.equal((await request(gatewayIngestUrl, { headers: { ...senml(token), 'content-length': String(MAX_BYTES + 1) }, body: Buffer.alloc(MAX_BYTES + 1, 0x20) })).status, 413);
  });

  it('counts HTTP records in the service’s /metrics', async () => {
    const text = (await request(ingestUrl.replace(/\/ingest$/, '/metrics'), { method: 'GET' })).text;
    assert.match(text, /telemetry_ingest_records_total\{[^}]*transport="http"[^}]*outcome="accepted"[^}]*\} [1-9]/);
    assert.match(text, /telemetry_ingest_records_total\{[^}]*outcome="rejected"[^}]*reason="unit_mismatch"[^}]*\} [1-9]/);
    assert.match(text, /http_request_duration_seconds_count\{[^}]*route="\/ingest"[^}]*\} [1-9]/);
  });
});

describe('Query.deadLetters', () => {
  const QUERY = `query Dead($c: ID, $first: Int, $after: String) { deadLetters(collectivityId: $c, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id receivedAt transport topic collectivity { id } equipmentId payload reasons { index field reason } } } } }`;
  let sent: string[];

  before(async () => {
    const { telemetryResourcesFor } = await import('../src/context.js');
    const r = telemetryResourcesFor(hub.subgraphs.telemetry.db);
    const lamp = take();
    const topic = (collectivityId: string) => ({ kind: 'topic' as const, collectivityId, equipmentId: lamp });
    sent = ['[{"n":', '[]', JSON.stringify([{ bn: deviceBaseName(lamp), bt: at / 1000, n: 'power', u: 'kW', v: 1 }])];
    for (const payload of sent) {
      await r.ingestor.ingest([{ transport: 'mqtt', topic: `connecte/chalons/${lamp}/up`, payload: Buffer.from(payload), principal: topic('chalons') }]);
    }
    await r.ingestor.ingest([{ transport: 'mqtt', topic: `connecte/fagnieres/${lamp}/up`, payload: Buffer.from('[]'), principal: topic('fagnieres') }]);
  });

  it('lists a collectivity’s dead letters to its operators, newest first, page by page, with their reasons', async () => {
    const first = ok(await gql<any>(hub.gatewayUrl, QUERY, { token: operatorToken, variables: { c: 'chalons', first: 2 } })).deadLetters;
    assert.equal(first.totalCount, 3);
    assert.equal(first.pageInfo.hasNextPage, true);
    assert.deepEqual(first.edges.map((e: any) => e.node.payload), [sent[2], sent[1]]);
    const newest = first.edges[0].node;
    assert.equal(newest.transport, 'mqtt');
    assert.deepEqual(newest.collectivity, { id: 'chalons' });
    assert.deepEqual(newest.reasons, [{ index: 0, field: 'u', reason: 'unit "kW" does not match metric power (W)' }]);
    const second = ok(await gql<any>(hub.gatewayUrl, QUERY, { token: operatorToken, variables: { c: 'chalons', first: 2, after: first.pageInfo.endCursor } })).deadLetters;
    assert.deepEqual(second.edges.map((e: any) => e.node.payload), [sent[0]]);
    assert.deepEqual(second.edges[0].node.reasons[0].index, null, 'a message refused whole');
    assert.equal(second.pageInfo.hasNextPage, false);
    const mine = ok(await gql<any>(hub.gatewayUrl, QUERY, { token: operatorToken, variables: {} })).deadLetters;
    assert.equal(mine.totalCount, 3, 'without collectivityId: those of the caller’s collectivities only');
  });

  it('refuses other roles and collectivities, the public, and pages over 1,000', async () => {
    const agent = await tokenFor(hub.config, ['agent'], ['chalons']);
    const codeOf = async (token: string | undefined, variables: Record<string, unknown>) => (await gql<any>(hub.gatewayUrl, QUERY, { token, variables })).errors?.[0]?.extensions;
    assert.equal((await codeOf(agent, { c: 'chalons' }))?.code, 'FORBIDDEN');
    assert.equal((await codeOf(operatorToken, { c: 'fagnieres' }))?.code, 'FORBIDDEN');
    assert.equal((await codeOf(undefined, { c: 'chalons' }))?.code, 'UNAUTHENTICATED');
    assert.equal((await codeOf(undefined, {}))?.code, 'UNAUTHENTICATED');
    assert.deepEqual(await codeOf(operatorToken, { c: 'chalons', first: 1001 }), { code: 'BAD_USER_INPUT', field: 'first', serviceName: 'telemetry' });
    assert.deepEqual(await codeOf(operatorToken, { c: 'chalons', after: 'bm9wZQ' }), { code: 'BAD_USER_INPUT', field: 'after', serviceName: 'telemetry' });
    const empty = ok(await gql<any>(hub.gatewayUrl, QUERY, { token: agent, variables: {} })).deadLetters;
    assert.equal(empty.totalCount, 0, 'an agent reads none');
  });
});

describe('POST /ingest while the database is down', () => {
  let service: TestService;
  let admin: pg.Client;

  before(async () => {
    service = await startService('telemetry', { env: { ...broker.env, ...ENV } });
    admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
  });
  after(async () => {
    await admin?.query(`ALTER DATABASE "${service.database.name}" ALLOW_CONNECTIONS true`).catch(() => undefined);
    await admin?.end();
    await service?.close();
  });

  it('answers 503 problem+json with Retry-After, stores nothing, and takes the same pack once it is back', async () => {
    const { rows } = await service.db.pool.query<{ equipment_id: string }>(`SELECT equipment_id FROM telemetry_devices WHERE kind = 'LIGHT_POINT' AND status = 'IN_SERVICE' LIMIT 1`);
    const lamp = rows[0].equipment_id;
    const operator = await service.token(['operator'], ['chalons']);
    const token = ok(await service.gql<{ issueDeviceCredential: { secret: { token: string } } }>(ISSUE, { token: operator, variables: { id: lamp } })).issueDeviceCredential.secret.token;
    const url = service.url.replace(/\/graphql$/, '/ingest');
    const body = JSON.stringify(pack(lamp, at, { power: 8 }));
    // Down: nobody may connect, and the service's connections are cut.
    await admin.query(`ALTER DATABASE "${service.database.name}" ALLOW_CONNECTIONS false`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [service.database.name]);
    for (let attempt = 0; attempt < 3; attempt++) {
      const answer = await request(url, { headers: senml(token), body });
      assert.equal(answer.status, 503, answer.text);
      assert.equal(answer.json.code, 'SERVICE_UNAVAILABLE');
      assert.equal(answer.headers['retry-after'], '5');
    }
    await admin.query(`ALTER DATABASE "${service.database.name}" ALLOW_CONNECTIONS true`);
    let answer: Answer | null = null;
    for (let attempt = 0; attempt < 50; attempt++) {
      answer = await request(url, { headers: senml(token), body });
      if (answer.status === 200) break;
      await sleep(200);
    }
    assert.deepEqual(answer?.json, { accepted: 1, duplicate: 0, rejected: [] });
    const count = await service.db.pool.query('SELECT count(*)::int AS n FROM readings WHERE equipment_id = $1', [lamp]);
    assert.equal(count.rows[0].n, 1);
  });
});
