/**
 * Open311 GeoReport v2 through the gateway (`http://<gateway>/open311/v2/...`): every JSON answer
 * is validated against the GeoReport v2 JSON Schemas copied into open311-schema/ (ajv, draft-04),
 * every XML answer is well-formed (xmllint) and mirrors its JSON; POST creates tickets through
 * core's createReport; reads never show personal data, the exact location or the description;
 * the filters, the 90-day window, the 1,000 cap and paging; every refusal with its status and an
 * `errors` body in the requested format, before anything is written.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import Ajv from 'ajv-draft-04';
import addFormats from 'ajv-formats';
import pg from 'pg';
import { signDevelopmentToken, type Role } from '@connecte/shared/auth';
import { createTestDatabase, gql, startHub, tokenFor, type Hub, type TestDatabase } from '@connecte/testkit';
import { coarsePoint } from '../src/privacy.js';

const SCHEMA_DIR = new URL('../open311-schema/', import.meta.url);
const CHALONS = { lon: 4.365, lat: 48.957 };
const CHALONS_2 = { lon: 4.3712, lat: 48.9523 };
const FAGNIERES = { lon: 4.318, lat: 48.963 };
const PARIS = { lon: 2.35, lat: 48.85 };
/** Exact locations off the public grid of about 100 m (privacy.ts `coarsePoint`). */
const EXACT_CHALONS = { lon: 4.36537, lat: 48.95713 };
const EXACT_FAGNIERES = { lon: 4.31817, lat: 48.96289 };
const MUNICIPAL = ['LIGHT_OUT', 'OPEN_CABINET', 'TAG', 'ILLEGAL_DUMPING', 'DAMAGED_FURNITURE', 'POTHOLE'];
const AGGLOMERATION = ['BUS_STOP_DAMAGED', 'FULL_BIN'];
const ALL_CODES = ['LIGHT_OUT', 'OPEN_CABINET', 'TAG', 'ILLEGAL_DUMPING', 'DAMAGED_FURNITURE', 'POTHOLE', 'BUS_STOP_DAMAGED', 'FULL_BIN'];
/** The hub's per-address budget in this file (RATE_LIMIT_PER_ADDRESS) and its reports per hour (TICKETS_REPORTS_PER_HOUR). */
const PER_MINUTE = 40;
const REPORTS_PER_HOUR = 3;

// --- JSON Schemas (ajv, draft-04) ----------------------------------------------------------

// strictTypes off: these third-party schemas omit `"type": "object"` beside `properties` (open311-schema/README.md).
const ajv = new Ajv({ allErrors: true, strictTypes: false });
addFormats(ajv);
// Swagger 2.0's own formats in swagger.json (`uid`, `uint`) constrain nothing beyond the type.
ajv.addFormat('uid', true);
ajv.addFormat('uint', true);
const readSchema = (name: string) => JSON.parse(readFileSync(new URL(name, SCHEMA_DIR), 'utf8'));
for (const name of ['service.json', 'services.json', 'service-definition.json', 'request.json', 'requests.json']) ajv.addSchema(readSchema(name), name);
const swagger = readSchema('swagger.json');
const requestResponse = ajv.compile({ type: 'array', items: swagger.definitions.RequestResponse });

function validate(schema: 'services.json' | 'service-definition.json' | 'requests.json' | 'RequestResponse', value: unknown): void {
  const check = schema === 'RequestResponse' ? requestResponse : ajv.getSchema(schema)!;
  assert.ok(check(value), `${schema}: ${JSON.stringify(check.errors)} in ${JSON.stringify(value).slice(0, 500)}`);
}

// --- XML: well-formed (xmllint) and the mirror of the JSON ---------------------------------

function wellFormed(xml: string): void {
  const lint = spawnSync('xmllint', ['--noout', '-'], { input: xml, encoding: 'utf8' });
  assert.equal(lint.status, 0, `xmllint: ${lint.stderr} in ${xml.slice(0, 300)}`);
}

interface XmlElement {
  name: string;
  children: XmlElement[];
  text: string;
}

/** A small parser for the answers' XML: elements and text only (no attributes, no mixed content), entities decoded. */
function parseXml(xml: string): XmlElement {
  let at = 0;
  const decl = /^<\?xml[^?]*\?>/.exec(xml);
  assert.ok(decl, 'the XML declaration comes first');
  at = decl[0].length;
  const entity = (text: string) => text.replace(/&(amp|lt|gt|quot|apos);/g, (_, name) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[name as string]!);
  function element(): XmlElement {
    const open = /^<([A-Za-z_][\w.-]*)(\/?)>/.exec(xml.slice(at));
    assert.ok(open, `an element at ${at}: ${xml.slice(at, at + 60)}`);
    at += open[0].length;
    const node: XmlElement = { name: open[1], children: [], text: '' };
    if (open[2] === '/') return node;
    if (xml.startsWith('<', at) && !xml.startsWith('</', at)) {
      while (!xml.startsWith('</', at)) node.children.push(element());
    } else {
      const end = xml.indexOf('<', at);
      node.text = entity(xml.slice(at, end));
      at = end;
    }
    const close = `</${node.name}>`;
    assert.ok(xml.startsWith(close, at), `${close} at ${at}`);
    at += close.length;
    return node;
  }
  const root = element();
  assert.equal(at, xml.length, 'nothing after the root element');
  return root;
}

/** GeoReport v2's list elements and the element of each of their items. */
const ITEMS: Record<string, string> = { services: 'service', service_requests: 'request', attributes: 'attribute', values: 'value', errors: 'error', endpoints: 'endpoint', formats: 'format' };

/** The XML tree a JSON answer must have: the same names, order and values (null and '' as an empty element). */
function expectedTree(name: string, value: unknown): XmlElement {
  if (value === null || value === '') return { name, children: [], text: '' };
  if (Array.isArray(value)) return { name, children: value.map((item) => expectedTree(ITEMS[name], item)), text: '' };
  if (typeof value === 'object') return { name, children: Object.entries(value as object).map(([key, child]) => expectedTree(key, child)), text: '' };
  return { name, children: [], text: String(value) };
}

// --- the hub -------------------------------------------------------------------------------

let db: TestDatabase;
let hub: Hub;
let pool: pg.Pool;
let base: string;
let addressCounter = 0;
/** A client address of its own (the gateway's X-Forwarded-For, trusted in this hub): each test has its own rate-limit budget. */
const newAddress = () => `198.51.${100 + Math.floor(++addressCounter / 250)}.${addressCounter % 250 + 1}`;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function call(method: string, path: string, options: { address?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const response = await fetch(`${base}/open311/v2/${path}`, {
    method,
    headers: { 'x-forwarded-for': options.address ?? newAddress(), ...(options.body !== undefined ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...options.headers },
    body: options.body,
  });
  const text = await response.text();
  const type = response.headers.get('content-type') ?? '';
  let json: any;
  if (type.startsWith('application/json')) json = JSON.parse(text);
  else if (type.startsWith('text/xml')) wellFormed(text);
  return { status: response.status, headers: response.headers, text, json };
}

/** A GET in both formats: the JSON validated against `schema`, the XML well-formed and its mirror. */
async function both(path: string, schema: 'services.json' | 'service-definition.json' | 'requests.json' | null, root: string, address = newAddress()): Promise<any> {
  const [resource, query = ''] = path.split('?');
  const json = await call('GET', `${resource}.json${query ? `?${query}` : ''}`, { address });
  assert.equal(json.status, 200, json.text);
  assert.match(json.headers.get('content-type')!, /^application\/json; charset=utf-8$/);
  if (schema) validate(schema, json.json);
  const xml = await call('GET', `${resource}.xml${query ? `?${query}` : ''}`, { address });
  assert.equal(xml.status, 200, xml.text);
  assert.match(xml.headers.get('content-type')!, /^text\/xml; charset=utf-8$/);
  assert.deepEqual(parseXml(xml.text), expectedTree(root, json.json));
  return json.json;
}

/** An `errors` answer: the status, `[{ code: status, description }]` in JSON, `<errors><error>…` in XML; its description. */
function refused(answer: Answer, status: number, pattern: RegExp, format: 'json' | 'xml' = 'json'): string {
  assert.equal(answer.status, status, answer.text);
  let description: string;
  if (format === 'json') {
    assert.match(answer.headers.get('content-type')!, /^application\/json/);
    assert.ok(Array.isArray(answer.json) && answer.json.length >= 1, answer.text);
    for (const entry of answer.json) {
      assert.deepEqual(Object.keys(entry), ['code', 'description']);
      assert.equal(entry.code, status);
      assert.equal(typeof entry.description, 'string');
    }
    description = answer.json[0].description;
  } else {
    assert.match(answer.headers.get('content-type')!, /^text\/xml/);
    const tree = parseXml(answer.text);
    assert.equal(tree.name, 'errors');
    assert.ok(tree.children.length >= 1);
    const [first] = tree.children;
    assert.deepEqual(first.children.map((c) => c.name), ['code', 'description']);
    assert.equal(first.children[0].text, String(status));
    description = first.children[1].text;
  }
  assert.match(description, pattern);
  return description;
}

const form = (fields: Record<string, string | number>) => new URLSearchParams(Object.entries(fields).map(([k, v]): [string, string] => [k, String(v)])).toString();

let ticketCount = async () => Number((await pool.query('SELECT count(*) FROM tickets')).rows[0].count);

// Admin tokens.
let adminChalons: string;
let adminFagnieres: string;
let chalonsKey: string;
let chalonsClientId: string;
let agglomerationKey: string;
let reporterCounter = 0;
const newEmail = () => `reporter-${++reporterCounter}-${Date.now()}@example.org`;

const ISSUE = `mutation($name: String!, $collectivityId: ID!, $contactEmail: String) {
  issueOpen311Key(name: $name, collectivityId: $collectivityId, contactEmail: $contactEmail) {
    apiKey client { id name collectivity { id } keyPrefix createdAt revokedAt lastUsedAt } } }`;

async function issueKey(token: string, collectivityId: string, name = 'Test app'): Promise<{ apiKey: string; id: string }> {
  const answer = await gql(hub.gatewayUrl, ISSUE, { token, variables: { name, collectivityId } });
  assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
  return { apiKey: answer.data.issueOpen311Key.apiKey, id: answer.data.issueOpen311Key.client.id };
}

before(async () => {
  db = await createTestDatabase();
  hub = await startHub(
    db.url,
    { TRUSTED_PROXIES: '127.0.0.1,::1', RATE_LIMIT_PER_ADDRESS: String(PER_MINUTE), TICKETS_REPORTS_PER_HOUR: String(REPORTS_PER_HOUR) },
    { subgraphs: ['territory', 'equipment', 'telemetry', 'tickets'] },
  );
  base = hub.gatewayUrl.replace(/\/graphql$/, '');
  pool = new pg.Pool({ connectionString: db.url, max: 3 });
  adminChalons = await tokenFor(hub.config, ['admin'], ['chalons']);
  adminFagnieres = await tokenFor(hub.config, ['admin'], ['fagnieres']);
  ({ apiKey: chalonsKey, id: chalonsClientId } = await issueKey(adminChalons, 'chalons', 'Châlons app'));
  const adminAgglo = await signDevelopmentToken({ sub: 'admin-agglo', roles: ['admin'], collectivities: ['chalons-agglo'], expiresIn: '1h' }, hub.config);
  ({ apiKey: agglomerationKey } = await issueKey(adminAgglo, 'chalons-agglo', 'Agglo app'));
});

after(async () => {
  await pool?.end();
  await hub?.close();
  await db?.drop();
});

// --- discovery and services ----------------------------------------------------------------

describe('Open311 discovery and services', () => {
  it('serves discovery in JSON and XML, naming the spec, the endpoint and its formats', async () => {
    const discovery = await both('discovery', null, 'discovery');
    assert.deepEqual(Object.keys(discovery), ['changeset', 'contact', 'key_service', 'endpoints']);
    assert.match(discovery.changeset, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    assert.deepEqual(discovery.endpoints, [
      {
        specification: 'http://wiki.open311.org/GeoReport_v2',
        url: `${hub.config.PUBLIC_BASE_URL.replace(/\/+$/, '')}/open311/v2`,
        changeset: discovery.changeset,
        type: 'test',
        formats: ['text/xml', 'application/json'],
      },
    ]);
    assert.match(discovery.key_service, /api|key/i);
  });

  it('lists every category as a realtime service, and each jurisdiction its own', async () => {
    const all = await both('services', 'services.json', 'services');
    assert.deepEqual(all.map((s: any) => s.service_code), ALL_CODES);
    assert.deepEqual(all[0], {
      service_code: 'LIGHT_OUT',
      service_name: 'Light out',
      description: 'A street light that stays off at night, flickers or stays on by day.',
      metadata: false,
      type: 'realtime',
      keywords: 'lamp,light,éclairage,lampadaire',
      group: 'Éclairage public',
    });
    for (const commune of ['chalons', 'fagnieres', 'saint-martin-sur-le-pre']) {
      const services = await both(`services?jurisdiction_id=${commune}`, 'services.json', 'services');
      assert.deepEqual(services.map((s: any) => s.service_code), MUNICIPAL, commune);
    }
    const agglomeration = await both('services?jurisdiction_id=chalons-agglo', 'services.json', 'services');
    assert.deepEqual(agglomeration.map((s: any) => s.service_code), AGGLOMERATION);
    // An empty optional parameter is the same as an absent one.
    assert.deepEqual((await both('services?jurisdiction_id=', 'services.json', 'services')).map((s: any) => s.service_code), ALL_CODES);
  });

  it('gives a service definition (no attributes), 404 for an unknown service or jurisdiction', async () => {
    const definition = await both('services/LIGHT_OUT', 'service-definition.json', 'service_definition');
    assert.deepEqual(definition, { service_code: 'LIGHT_OUT', attributes: [] });
    assert.deepEqual(await both('services/FULL_BIN?jurisdiction_id=chalons-agglo', 'service-definition.json', 'service_definition'), { service_code: 'FULL_BIN', attributes: [] });
    refused(await call('GET', 'services/NOPE.json'), 404, /^service_code: unknown service 'NOPE'/);
    refused(await call('GET', 'services/NOPE.xml'), 404, /^service_code: unknown service 'NOPE'/, 'xml');
    refused(await call('GET', 'services/FULL_BIN.json?jurisdiction_id=chalons'), 404, /^service_code: 'FULL_BIN' is not a service of jurisdiction chalons/);
    refused(await call('GET', 'services.json?jurisdiction_id=paris'), 404, /^jurisdiction_id: unknown jurisdiction 'paris' \(known: chalons/);
    refused(await call('GET', 'services.xml?jurisdiction_id=paris'), 404, /^jurisdiction_id: unknown jurisdiction 'paris'/, 'xml');
  });
});

// --- paths, methods, formats, parameters ---------------------------------------------------

describe('Open311 paths, methods, formats and parameters', () => {
  it('refuses an unknown format suffix, a missing one and an unknown resource with 404', async () => {
    refused(await call('GET', 'services.csv'), 404, /^unknown format '\.csv': the formats are \.xml and \.json/);
    refused(await call('GET', 'services.csv', { headers: { accept: 'text/xml' } }), 404, /^unknown format '\.csv'/, 'xml');
    refused(await call('GET', 'services'), 404, /every resource takes a format suffix, \.xml or \.json/);
    refused(await call('GET', 'requests/1.yaml'), 404, /^unknown format '\.yaml'/);
    refused(await call('GET', 'tokens/12.json'), 404, /^no resource \/open311\/v2\/tokens\/12\.json/);
    refused(await call('GET', 'services/LIGHT_OUT/extra.json'), 404, /^no resource/);
    refused(await call('GET', ''), 404, /format suffix/);
  });

  it('refuses a wrong method with 405 and Allow', async () => {
    const deleted = await call('DELETE', 'services.json');
    refused(deleted, 405, /^DELETE is not allowed on \/open311\/v2\/services\.json: use GET/);
    assert.equal(deleted.headers.get('allow'), 'GET, HEAD');
    const put = await call('PUT', 'requests.xml', { body: 'a=b' });
    refused(put, 405, /^PUT is not allowed on \/open311\/v2\/requests\.xml: use GET or POST/, 'xml');
    assert.equal(put.headers.get('allow'), 'GET, HEAD, POST');
    const postOne = await call('POST', 'requests/1.json', { body: 'a=b' });
    refused(postOne, 405, /^POST is not allowed/);
    assert.equal(postOne.headers.get('allow'), 'GET, HEAD');
    const head = await fetch(`${base}/open311/v2/services.json`, { method: 'HEAD', headers: { 'x-forwarded-for': newAddress() } });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });

  it('refuses repeated parameters, NUL bytes and malformed escapes, naming the parameter', async () => {
    refused(await call('GET', 'requests.json?status=open&status=closed'), 400, /^status: is given more than once/);
    refused(await call('GET', 'requests.xml?service_code=TAG&service_code=POTHOLE'), 400, /^service_code: is given more than once/, 'xml');
    refused(await call('GET', 'requests.json?service_code=TAG%00'), 400, /^service_code: must not contain NUL bytes/);
    refused(await call('GET', 'services.json?jurisdiction_id=%E0%A4%A'), 400, /^jurisdiction_id: malformed percent-encoding/);
    refused(await call('GET', 'requests.json?x%00y=1'), 400, /a parameter name must not contain NUL bytes/);
  });

  it('holds a flood to RATE_LIMIT_PER_ADDRESS per client address: 429 with Retry-After, other addresses unaffected', async () => {
    const flooder = newAddress();
    const answers = await Promise.all(Array.from({ length: PER_MINUTE }, () => call('GET', 'services.json', { address: flooder })));
    assert.deepEqual(answers.map((a) => a.status), Array(PER_MINUTE).fill(200));
    // The bucket refills at 40 a minute: on a slow machine one more may pass before the refusal.
    let json = await call('GET', 'services.json', { address: flooder });
    for (let extra = 0; json.status === 200 && extra < 3; extra++) json = await call('GET', 'services.json', { address: flooder });
    refused(json, 429, /^too many requests from this client address: at most 40 per minute; retry after \d+ s/);
    assert.ok(Number(json.headers.get('retry-after')) >= 1, `Retry-After: ${json.headers.get('retry-after')}`);
    const xml = await call('GET', 'requests.xml', { address: flooder });
    refused(xml, 429, /^too many requests/, 'xml');
    assert.ok(Number(xml.headers.get('retry-after')) >= 1);
    const before = await ticketCount();
    refused(await call('POST', 'requests.json', { address: flooder, body: form({ api_key: chalonsKey, service_code: 'TAG', lat: CHALONS.lat, long: CHALONS.lon, email: newEmail(), description: 'Flood' }) }), 429, /^too many requests/);
    assert.equal(await ticketCount(), before);
    assert.equal((await call('GET', 'services.json')).status, 200);
  });
});

// --- administration (GraphQL) --------------------------------------------------------------

describe('Open311 administration (GraphQL)', () => {
  const CLIENTS = `{ open311Clients { id name collectivity { id } keyPrefix revokedAt lastUsedAt } }`;
  const REVOKE = `mutation($id: ID!) { revokeOpen311Key(id: $id) { id revokedAt } }`;
  const SET_PUBLIC = `mutation($c: ID!, $e: Boolean!) { setOpen311PublicKey(collectivityId: $c, enabled: $e) { collectivity { id } apiKey enabled } }`;

  it('issues a key shown once: stored hashed, listed by its prefix to the collectivity\'s admins only', async () => {
    const answer = await gql(hub.gatewayUrl, ISSUE, { token: adminChalons, variables: { name: '  Signalement Châlons  ', collectivityId: 'chalons', contactEmail: 'dev@example.org' } });
    assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    const { apiKey, client } = answer.data.issueOpen311Key;
    assert.match(apiKey, /^o311_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    assert.equal(client.name, 'Signalement Châlons');
    assert.deepEqual(client.collectivity, { id: 'chalons' });
    assert.equal(client.keyPrefix, apiKey.slice(0, 17));
    assert.equal(client.revokedAt, null);
    assert.equal(client.lastUsedAt, null);
    const row = (await pool.query(`SELECT to_jsonb(c) AS row FROM open311_clients c WHERE id = $1`, [client.id])).rows[0].row;
    assert.equal(row.key_hash, createHash('sha256').update(apiKey).digest('hex'));
    assert.ok(!JSON.stringify(row).includes(apiKey.slice(18)), 'the secret part of the key is stored nowhere');
    assert.equal(row.created_by, 'test-admin-chalons');

    const listed = await gql(hub.gatewayUrl, CLIENTS, { token: adminChalons });
    assert.ok(listed.data.open311Clients.some((c: any) => c.id === client.id && c.keyPrefix === client.keyPrefix));
    assert.ok(listed.data.open311Clients.every((c: any) => c.collectivity.id === 'chalons'));
    assert.ok(!JSON.stringify(listed).includes(apiKey), 'the list never shows a key');
    const fagnieres = await gql(hub.gatewayUrl, CLIENTS, { token: adminFagnieres });
    assert.deepEqual(fagnieres.data.open311Clients, []);
  });

  it('lets only admins of the collectivity issue, list, revoke and set the public key', async () => {
    const { id } = await issueKey(adminChalons, 'chalons', 'Victim app');
    const outsiders: [string, Role[], string[]][] = [
      ['citizen', ['citizen'], []],
      ['partner', ['partner'], ['chalons']],
      ['agent', ['agent'], ['chalons']],
      ['operator', ['operator'], ['chalons']],
      ['admin of fagnieres', ['admin'], ['fagnieres']],
      ['admin of the agglomeration', ['admin'], ['chalons-agglo']],
    ];
    for (const [who, roles, collectivities] of outsiders) {
      const token = await signDevelopmentToken({ sub: `open311-${who.replace(/ /g, '-')}`, roles, collectivities, expiresIn: '1h' }, hub.config);
      const issued = await gql(hub.gatewayUrl, ISSUE, { token, variables: { name: 'x', collectivityId: 'chalons' } });
      assert.equal(issued.errors?.[0].extensions?.code, 'FORBIDDEN', `${who} issue: ${JSON.stringify(issued.errors)}`);
      assert.equal(issued.errors?.[0].extensions?.field, 'collectivityId');
      const revoked = await gql(hub.gatewayUrl, REVOKE, { token, variables: { id } });
      assert.equal(revoked.errors?.[0].extensions?.code, 'FORBIDDEN', `${who} revoke`);
      const set = await gql(hub.gatewayUrl, SET_PUBLIC, { token, variables: { c: 'chalons', e: true } });
      assert.equal(set.errors?.[0].extensions?.code, 'FORBIDDEN', `${who} setOpen311PublicKey`);
      const listed = await gql(hub.gatewayUrl, CLIENTS, { token });
      if (roles.includes('admin')) assert.ok(listed.data.open311Clients.every((c: any) => c.collectivity.id !== 'chalons'), who);
      else assert.equal(listed.errors?.[0].extensions?.code, 'FORBIDDEN', `${who} list`);
    }
    for (const query of [CLIENTS, `{ open311PublicKeys { apiKey } }`]) {
      const anonymous = await gql(hub.gatewayUrl, query);
      assert.equal(anonymous.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
    }
    const anonymousIssue = await gql(hub.gatewayUrl, ISSUE, { variables: { name: 'x', collectivityId: 'chalons' } });
    assert.equal(anonymousIssue.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
    // Nothing was written by the refusals.
    assert.equal((await pool.query(`SELECT count(*)::int AS n FROM open311_clients WHERE name = 'x'`)).rows[0].n, 0);
    assert.equal((await pool.query(`SELECT revoked_at FROM open311_clients WHERE id = $1`, [id])).rows[0].revoked_at, null);
  });

  it('refuses bad input naming the argument', async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ name: '   ', collectivityId: 'chalons' }, 'name', /must not be empty/],
      [{ name: 'n'.repeat(201), collectivityId: 'chalons' }, 'name', /at most 200 characters \(got 201\)/],
      [{ name: 'a\u0000b', collectivityId: 'chalons' }, 'name', /NUL|control/],
      [{ name: 'a\nb', collectivityId: 'chalons' }, 'name', /control characters/],
      [{ name: 'ok', collectivityId: 'paris' }, 'collectivityId', /unknown collectivity 'paris'/],
      [{ name: 'ok', collectivityId: 'chalons', contactEmail: 'not-an-email' }, 'contactEmail', /e-mail address/],
    ];
    for (const [variables, field, message] of cases) {
      const answer = await gql(hub.gatewayUrl, ISSUE, { token: adminChalons, variables });
      assert.equal(answer.errors?.[0].extensions?.code, 'BAD_USER_INPUT', JSON.stringify([variables, answer.errors]));
      assert.equal(answer.errors?.[0].extensions?.field, field);
      assert.match(answer.errors![0].message, message);
    }
    const unknown = await gql(hub.gatewayUrl, REVOKE, { token: adminChalons, variables: { id: '999999' } });
    assert.equal(unknown.errors?.[0].extensions?.code, 'NOT_FOUND');
    const malformed = await gql(hub.gatewayUrl, REVOKE, { token: adminChalons, variables: { id: 'abc' } });
    assert.equal(malformed.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.equal(malformed.errors?.[0].extensions?.field, 'id');
  });

  it('revokes a key (idempotent): POSTs with it are refused with 403', async () => {
    const { apiKey, id } = await issueKey(adminChalons, 'chalons', 'Soon revoked');
    const first = await gql(hub.gatewayUrl, REVOKE, { token: adminChalons, variables: { id } });
    assert.equal(first.errors, undefined, JSON.stringify(first.errors));
    assert.ok(first.data.revokeOpen311Key.revokedAt);
    const second = await gql(hub.gatewayUrl, REVOKE, { token: adminChalons, variables: { id } });
    assert.equal(second.data.revokeOpen311Key.revokedAt, first.data.revokeOpen311Key.revokedAt);
    const before = await ticketCount();
    const answer = await call('POST', 'requests.json', { body: form({ api_key: apiKey, service_code: 'TAG', lat: CHALONS.lat, long: CHALONS.lon, email: newEmail(), description: 'Tag' }) });
    refused(answer, 403, /^api_key: this key was revoked/);
    refused(await call('POST', 'requests.xml', { body: form({ api_key: apiKey, service_code: 'TAG', lat: CHALONS.lat, long: CHALONS.lon, email: newEmail(), description: 'Tag' }) }), 403, /revoked/, 'xml');
    assert.equal(await ticketCount(), before);
  });

  it('enables and disables a collectivity\'s public key, which keeps its value', async () => {
    const enabled = await gql(hub.gatewayUrl, SET_PUBLIC, { token: adminFagnieres, variables: { c: 'fagnieres', e: true } });
    assert.equal(enabled.errors, undefined, JSON.stringify(enabled.errors));
    const key = enabled.data.setOpen311PublicKey.apiKey;
    assert.match(key, /^o311pub_[A-Za-z0-9_-]{32}$/);
    assert.deepEqual(enabled.data.setOpen311PublicKey, { collectivity: { id: 'fagnieres' }, apiKey: key, enabled: true });

    const post = (address = newAddress()) =>
      call('POST', 'requests.json?jurisdiction_id=fagnieres', { address, body: form({ api_key: key, service_code: 'POTHOLE', lat: FAGNIERES.lat, long: FAGNIERES.lon, phone: '+33 6 12 34 56 78', description: 'Nid de poule' }) });
    const created = await post();
    assert.equal(created.status, 200, created.text);
    validate('RequestResponse', created.json);
    const ticket = (await pool.query(`SELECT collectivity_id, source, open311_client_id, reporter_phone FROM tickets WHERE id = $1`, [created.json[0].service_request_id])).rows[0];
    assert.deepEqual(ticket, { collectivity_id: 'fagnieres', source: 'OPEN311', open311_client_id: null, reporter_phone: '+33 6 12 34 56 78' });

    const disabled = await gql(hub.gatewayUrl, SET_PUBLIC, { token: adminFagnieres, variables: { c: 'fagnieres', e: false } });
    assert.deepEqual(disabled.data.setOpen311PublicKey, { collectivity: { id: 'fagnieres' }, apiKey: key, enabled: false });
    const listed = await gql(hub.gatewayUrl, `{ open311PublicKeys { collectivity { id } apiKey enabled } }`, { token: adminFagnieres });
    assert.deepEqual(listed.data.open311PublicKeys, [{ collectivity: { id: 'fagnieres' }, apiKey: key, enabled: false }]);
    const before = await ticketCount();
    refused(await post(), 403, /^api_key: the jurisdiction's public key is disabled/);
    assert.equal(await ticketCount(), before);
    const again = await gql(hub.gatewayUrl, SET_PUBLIC, { token: adminFagnieres, variables: { c: 'fagnieres', e: true } });
    assert.equal(again.data.setOpen311PublicKey.apiKey, key);
    assert.equal((await post()).status, 200);
  });

  it('gives one public key to a collectivity whose admins enable it concurrently', async () => {
    const adminSaintMartin = await tokenFor(hub.config, ['admin'], ['saint-martin-sur-le-pre']);
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => gql(hub.gatewayUrl, SET_PUBLIC, { token: adminSaintMartin, variables: { c: 'saint-martin-sur-le-pre', e: i % 2 === 0 } })),
    );
    for (const answer of answers) assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    const keys = new Set(answers.map((a) => a.data.setOpen311PublicKey.apiKey));
    assert.equal(keys.size, 1);
    const { rows } = await pool.query(`SELECT api_key FROM open311_public_keys WHERE collectivity_id = 'saint-martin-sur-le-pre'`);
    assert.deepEqual(rows, [{ api_key: [...keys][0] }]);
  });

  it('issues distinct keys to concurrent requests', async () => {
    const issued = await Promise.all(Array.from({ length: 6 }, (_, i) => issueKey(adminChalons, 'chalons', `Concurrent ${i}`)));
    assert.equal(new Set(issued.map((k) => k.apiKey)).size, 6);
    assert.equal(new Set(issued.map((k) => k.id)).size, 6);
  });
});

// --- POST requests -------------------------------------------------------------------------

describe('Open311 POST requests', () => {
  it('creates a ticket through createReport and answers its service_request_id; GET shows only the public part', async () => {
    const email = newEmail();
    const fields = {
      api_key: chalonsKey,
      jurisdiction_id: 'chalons',
      service_code: 'LIGHT_OUT',
      lat: CHALONS_2.lat,
      long: CHALONS_2.lon,
      description: 'Le lampadaire devant le 12 reste éteint la nuit',
      email,
      first_name: 'Aurélienne',
      last_name: 'Zorglubowski',
      phone: '+33 6 98 76 54 32',
      device_id: 'device-4242',
      account_id: 'account-4242',
      address_string: '12 rue de la Marne',
    };
    const created = await call('POST', 'requests.json', { body: form(fields) });
    assert.equal(created.status, 200, created.text);
    validate('RequestResponse', created.json);
    assert.equal(created.json.length, 1);
    const [{ service_request_id: id, service_notice: notice, ...rest }] = created.json;
    assert.deepEqual(rest, {});
    assert.match(id, /^[1-9][0-9]*$/);
    assert.equal(typeof notice, 'string');
    const row = (
      await pool.query(
        `SELECT category_code, collectivity_id, status, source, open311_client_id::text, reporter_sub, reporter_name, reporter_email, reporter_phone, description,
                ST_X(geom) AS lon, ST_Y(geom) AS lat FROM tickets WHERE id = $1`,
        [id],
      )
    ).rows[0];
    assert.deepEqual(row, {
      category_code: 'LIGHT_OUT',
      collectivity_id: 'chalons',
      status: 'NEW',
      source: 'OPEN311',
      open311_client_id: chalonsClientId,
      reporter_sub: null,
      reporter_name: 'Aurélienne Zorglubowski',
      reporter_email: email,
      reporter_phone: '+33 6 98 76 54 32',
      description: fields.description,
      lon: CHALONS_2.lon,
      lat: CHALONS_2.lat,
    });
    const clients = await gql(hub.gatewayUrl, `{ open311Clients { id lastUsedAt } }`, { token: adminChalons });
    assert.ok(clients.data.open311Clients.find((c: any) => c.id === chalonsClientId).lastUsedAt, 'the key records its last use');

    const [one] = await both(`requests/${id}`, 'requests.json', 'service_requests');
    const [lon, lat] = coarsePoint(CHALONS_2.lon, CHALONS_2.lat);
    assert.deepEqual({ ...one, requested_datetime: undefined, updated_datetime: undefined, expected_datetime: undefined }, {
      service_request_id: id,
      status: 'open',
      status_notes: 'Reported; not yet acknowledged by the service.',
      service_name: 'Light out',
      service_code: 'LIGHT_OUT',
      description: null,
      agency_responsible: 'Éclairage public, Châlons-en-Champagne',
      service_notice: null,
      requested_datetime: undefined,
      updated_datetime: undefined,
      expected_datetime: undefined,
      address: null,
      address_id: null,
      zipcode: null,
      lat,
      long: lon,
      media_url: null,
    });
    assert.notDeepEqual([one.long, one.lat], [CHALONS_2.lon, CHALONS_2.lat], 'the exact location is not shown');
    for (const format of ['json', 'xml']) {
      for (const path of [`requests/${id}.${format}`, `requests.${format}?service_request_id=${id}`, `requests.${format}`]) {
        const answer = await call('GET', path);
        assert.equal(answer.status, 200);
        for (const secret of [email, 'Aurélienne', 'Zorglub', '98 76 54 32', 'device-4242', 'account-4242', 'lampadaire devant', 'rue de la Marne', String(CHALONS_2.lat), String(CHALONS_2.lon)]) {
          assert.ok(!answer.text.includes(secret), `${path} shows ${secret}`);
        }
      }
    }
    // The XML answer to POST mirrors the JSON one.
    const xml = await call('POST', 'requests.xml', { body: form({ ...fields, email: newEmail(), service_code: 'TAG', description: 'Un tag' }) });
    assert.equal(xml.status, 200, xml.text);
    const tree = parseXml(xml.text);
    assert.equal(tree.name, 'service_requests');
    assert.deepEqual(tree.children.map((c) => c.name), ['request']);
    assert.deepEqual(tree.children[0].children.map((c) => c.name), ['service_request_id', 'service_notice']);
    assert.match(tree.children[0].children[0].text, /^[1-9][0-9]*$/);
  });

  it('answers a duplicate with its own id and a notice naming the original', async () => {
    const at = { lon: 4.3601, lat: 48.9601 };
    const first = await call('POST', 'requests.json', { body: form({ api_key: chalonsKey, service_code: 'ILLEGAL_DUMPING', lat: at.lat, long: at.lon, email: newEmail(), description: 'Gravats' }) });
    assert.equal(first.status, 200, first.text);
    const second = await call('POST', 'requests.json', { body: form({ api_key: chalonsKey, service_code: 'ILLEGAL_DUMPING', lat: at.lat + 0.0001, long: at.lon, email: newEmail(), description: 'Encore des gravats' }) });
    assert.equal(second.status, 200, second.text);
    validate('RequestResponse', second.json);
    const originalId = first.json[0].service_request_id;
    const duplicateId = second.json[0].service_request_id;
    assert.notEqual(duplicateId, originalId);
    assert.ok(second.json[0].service_notice.includes(originalId), second.json[0].service_notice);
    const [shown] = await both(`requests/${duplicateId}`, 'requests.json', 'service_requests');
    assert.equal(shown.status, 'closed');
    assert.equal(shown.status_notes, `Duplicate of service request ${originalId}: follow that one.`);
  });

  it('refuses a missing, invalid or foreign api_key with 403, and an unknown jurisdiction with 404, writing nothing', async () => {
    const before = await ticketCount();
    const fields = { service_code: 'TAG', lat: CHALONS.lat, long: CHALONS.lon, email: newEmail(), description: 'Tag' };
    refused(await call('POST', 'requests.json', { body: form(fields) }), 403, /^api_key: required to POST requests/);
    refused(await call('POST', 'requests.xml', { body: form({ ...fields, api_key: '' }) }), 403, /^api_key: required/, 'xml');
    refused(await call('POST', 'requests.json', { body: form({ ...fields, api_key: 'nope' }) }), 403, /^api_key: invalid key$/);
    // The right prefix with a wrong secret.
    refused(await call('POST', 'requests.json', { body: form({ ...fields, api_key: `${chalonsKey.slice(0, 18)}${'A'.repeat(43)}` }) }), 403, /^api_key: invalid key$/);
    refused(await call('POST', 'requests.json', { body: form({ ...fields, api_key: `o311pub_${'x'.repeat(32)}` }) }), 403, /^api_key: invalid key$/);
    refused(await call('POST', 'requests.json', { body: form({ ...fields, api_key: chalonsKey, jurisdiction_id: 'fagnieres' }) }), 403, /^api_key: this key is for jurisdiction chalons, not fagnieres/);
    refused(await call('POST', 'requests.json', { body: form({ ...fields, api_key: chalonsKey, jurisdiction_id: 'lyon' }) }), 404, /^jurisdiction_id: unknown jurisdiction 'lyon'/);
    assert.equal(await ticketCount(), before);
  });

  it('refuses bad parameters with 400 (404 for an unknown service) naming the Open311 parameter, writing nothing', async () => {
    const before = await ticketCount();
    const good = { api_key: chalonsKey, service_code: 'TAG', lat: String(CHALONS.lat), long: String(CHALONS.lon), email: newEmail(), description: 'Un tag sur le mur' };
    const without = (name: string) => Object.fromEntries(Object.entries(good).filter(([key]) => key !== name));
    const cases: [string, Record<string, string>, number, RegExp][] = [
      ['no service_code', without('service_code'), 400, /^service_code: required/],
      ['empty service_code', { ...good, service_code: '' }, 400, /^service_code: required/],
      ['unknown service_code', { ...good, service_code: 'UFO' }, 404, /^service_code: unknown service 'UFO'/],
      ['another jurisdiction\'s service', { ...good, service_code: 'FULL_BIN' }, 404, /^service_code: 'FULL_BIN' is not a service of jurisdiction chalons/],
      ['lat 200', { ...good, lat: '200' }, 400, /^lat: must be between -90 and 90 degrees \(WGS84\), got 200/],
      ['long -181', { ...good, long: '-181' }, 400, /^long: must be between -180 and 180/],
      ['lat NaN', { ...good, lat: 'NaN' }, 400, /^lat: must be a decimal number of degrees \(WGS84\), not 'NaN'/],
      ['long 1e309', { ...good, long: '1e309' }, 400, /^long: must be a decimal number of degrees \(WGS84\), not '1e309'/],
      ['lat 0x10', { ...good, lat: '0x10' }, 400, /^lat: must be a decimal number/],
      ['lat only', without('long'), 400, /^long: required/],
      ['empty lat', { ...good, lat: '' }, 400, /^lat: required/],
      ['address only', { ...without('lat'), long: '', address_string: '1 place Foch' }, 400, /^lat\/long: required: this endpoint locates requests by lat and long only/],
      ['outside the territory', { ...good, lat: String(PARIS.lat), long: String(PARIS.lon) }, 400, /^lat\/long: \(lon 2\.35, lat 48\.85\) is outside the territory/],
      ['in another commune', { ...good, lat: String(FAGNIERES.lat), long: String(FAGNIERES.lon) }, 400, /^lat\/long: this location is answered for by Fagnières \(jurisdiction fagnieres\), not by jurisdiction chalons/],
      ['no description', without('description'), 400, /^description: /],
      ['description over 4,000 characters', { ...good, description: 'é'.repeat(4001) }, 400, /^description: .*4[ ,.]?000/],
      ['description with NUL', { ...good, description: 'a\u0000b' }, 400, /^description: must not contain NUL bytes/],
      ['no contact', without('email'), 400, /^email: an anonymous report needs an e-mail address or a telephone number/],
      ['bad email', { ...good, email: 'nobody' }, 400, /^email: is not an e-mail address/],
      ['bad phone', { ...good, phone: 'call me' }, 400, /^phone: is not a telephone number/],
      ['name too long', { ...good, first_name: 'n'.repeat(300) }, 400, /^first_name\/last_name: /],
      ['an attribute', { ...good, 'attribute[colour]': 'red' }, 400, /^attribute\[colour\]: service TAG has no attributes/],
      ['a multi-valued attribute', { ...good, 'attribute[sizes][]': 'big' }, 400, /^attribute\[sizes\]\[\]: service TAG has no attributes/],
      ['media_url not a URL', { ...good, media_url: 'javascript:alert(1)' }, 400, /^media_url: must be an http or https URL/],
    ];
    for (const [label, fields, status, pattern] of cases) {
      const answer = await call('POST', 'requests.json', { body: form(fields) });
      assert.equal(answer.status, status, `${label}: ${answer.text}`);
      refused(answer, status, pattern);
    }
    // The same refusals in XML.
    refused(await call('POST', 'requests.xml', { body: form({ ...good, lat: '200' }) }), 400, /^lat: must be between/, 'xml');
    refused(await call('POST', 'requests.xml', { body: form({ ...good, service_code: 'UFO' }) }), 404, /^service_code: unknown service/, 'xml');
    // Repeated parameters, in the body or between the query string and the body.
    refused(await call('POST', 'requests.json', { body: `${form(good)}&service_code=POTHOLE` }), 400, /^service_code: is given more than once/);
    refused(await call('POST', `requests.json?api_key=${encodeURIComponent(chalonsKey)}`, { body: form(good) }), 400, /^api_key: is given more than once/);
    refused(await call('POST', 'requests.json', { body: `${form(good)}&device_id=%00` }), 400, /^device_id: must not contain NUL bytes/);
    refused(await call('POST', 'requests.json', { body: `${form(good)}&attribute%5Bsizes%5D%5B%5D=a&attribute%5Bsizes%5D%5B%5D=b` }), 400, /^attribute\[sizes\]\[\]: service TAG has no attributes/);
    refused(await call('POST', 'requests.json', { body: `${form(good)}&first_name=%ZZ` }), 400, /^first_name: malformed percent-encoding/);
    refused(await call('POST', 'requests.json', { body: form(good), headers: { 'content-type': 'application/json' } }), 415, /^content-type: POST requests takes application\/x-www-form-urlencoded/);
    assert.equal(await ticketCount(), before);
  });

  it('accepts the key in the query string and a description of exactly 4,000 characters', async () => {
    const answer = await call('POST', `requests.json?api_key=${encodeURIComponent(chalonsKey)}&jurisdiction_id=chalons`, {
      body: form({ service_code: 'DAMAGED_FURNITURE', lat: 48.9555, long: 4.3622, email: newEmail(), description: 'é'.repeat(4000), jurisdiction_id_extra: '' }),
    });
    assert.equal(answer.status, 200, answer.text);
    validate('RequestResponse', answer.json);
    const { rows } = await pool.query(`SELECT char_length(description) AS n FROM tickets WHERE id = $1`, [answer.json[0].service_request_id]);
    assert.equal(rows[0].n, 4000);
  });

  it('refuses a huge body with 413, declared or streamed, writing nothing', async () => {
    const before = await ticketCount();
    const huge = `${form({ api_key: chalonsKey, service_code: 'TAG', lat: CHALONS.lat, long: CHALONS.lon, email: newEmail() })}&description=${'x'.repeat(200_000)}`;
    refused(await call('POST', 'requests.json', { body: huge }), 413, /^body: exceeds the limit of 65536 bytes \(\d+ bytes declared\)/);
    // Chunked: no declared length, counted as it streams.
    const streamed = await new Promise<{ status: number; body: string; type: string }>((resolve, reject) => {
      const url = new URL(`${base}/open311/v2/requests.xml`);
      const request = http.request(
        { hostname: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'transfer-encoding': 'chunked', 'x-forwarded-for': newAddress() } },
        (response) => {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk) => (body += chunk));
          response.on('end', () => resolve({ status: response.statusCode!, body, type: String(response.headers['content-type']) }));
        },
      );
      request.on('error', reject);
      request.write(`api_key=${encodeURIComponent(chalonsKey)}&description=`);
      let sent = 0;
      const pump = () => {
        while (sent < 20) {
          sent++;
          if (!request.write('y'.repeat(8192))) return void request.once('drain', pump);
        }
        request.end();
      };
      pump();
    });
    assert.equal(streamed.status, 413);
    assert.match(streamed.type, /^text\/xml/);
    wellFormed(streamed.body);
    assert.match(parseXml(streamed.body).children[0].children[1].text, /^body: exceeds the limit of 65536 bytes$/);
    assert.equal(await ticketCount(), before);
  });

  it('holds a flood of reports from one reporter to TICKETS_REPORTS_PER_HOUR: 429 with Retry-After', async () => {
    const email = newEmail();
    const post = (i: number, format = 'json') =>
      call('POST', `requests.${format}`, { body: form({ api_key: agglomerationKey, service_code: 'FULL_BIN', lat: 48.95 + i * 0.002, long: 4.36, email, description: `Poubelle pleine ${i}` }) });
    for (let i = 0; i < REPORTS_PER_HOUR; i++) assert.equal((await post(i)).status, 200);
    const before = await ticketCount();
    const json = await post(10);
    refused(json, 429, /^too many reports: .*at most 3 per hour/);
    assert.ok(Number(json.headers.get('retry-after')) >= 1, String(json.headers.get('retry-after')));
    const xml = await post(11, 'xml');
    refused(xml, 429, /^too many reports/, 'xml');
    assert.ok(Number(xml.headers.get('retry-after')) >= 1);
    assert.equal(await ticketCount(), before);
  });
});

// --- GET requests: filters, window, cap, paging, privacy -----------------------------------

describe('Open311 GET requests', () => {
  /** Tickets inserted with chosen dates, in 2024 (before anything the other tests post). */
  const made: Record<string, string> = {};

  async function insert(name: string, fields: { category?: string; collectivity?: string; status?: string; createdAt: string; closedAt?: string; duplicateOf?: string; at?: { lon: number; lat: number } }) {
    const at = fields.at ?? EXACT_CHALONS;
    const { rows } = await pool.query(
      `INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, address, source, reporter_name, reporter_email, reporter_phone, reporter_sub,
                            created_at, updated_at, closed_at, resolved_at, ack_due_at, resolve_due_at, duplicate_of)
       VALUES ($1, $2, 'Service test', $3, 'SECRET DESCRIPTION of the reporter', ST_SetSRID(ST_MakePoint($4, $5), 4326), 'Rue Secrète, Châlons', 'APP',
               'Bob Secret', 'bob.secret@example.org', '+33 1 23 45 67 89', 'citizen-bob-secret',
               $6, $6, $7, $7, $6::timestamptz + interval '1 day', $6::timestamptz + interval '3 days', $8)
       RETURNING id::text`,
      [fields.category ?? 'TAG', fields.collectivity ?? 'chalons', fields.status ?? 'NEW', at.lon, at.lat, fields.createdAt, fields.closedAt ?? null, fields.duplicateOf ?? null],
    );
    made[name] = rows[0].id;
    return rows[0].id;
  }

  before(async () => {
    await insert('tagNew', { createdAt: '2024-03-10T10:00:00Z' });
    await insert('potholeAck', { category: 'POTHOLE', status: 'ACKNOWLEDGED', createdAt: '2024-03-11T10:00:00Z' });
    await insert('lightResolved', { category: 'LIGHT_OUT', status: 'RESOLVED', createdAt: '2024-03-12T10:00:00Z', closedAt: '2024-03-13T08:00:00Z' });
    await insert('tagClosed', { status: 'CLOSED', createdAt: '2024-03-13T10:00:00Z', closedAt: '2024-03-14T09:30:00Z' });
    await insert('tagRejected', { status: 'REJECTED', createdAt: '2024-03-14T10:00:00Z', closedAt: '2024-03-14T11:00:00Z' });
    await insert('tagDuplicate', { status: 'DUPLICATE', createdAt: '2024-03-15T10:00:00Z', duplicateOf: made.tagNew });
    await insert('fagnieresTag', { collectivity: 'fagnieres', createdAt: '2024-03-16T10:00:00Z', at: EXACT_FAGNIERES });
    await insert('binAgglo', { category: 'FULL_BIN', collectivity: 'chalons-agglo', status: 'IN_PROGRESS', createdAt: '2024-03-17T10:00:00Z' });
    await insert('outsideWindow', { createdAt: '2023-06-01T10:00:00Z' });
  });

  const MARCH = 'start_date=2024-03-01T00:00:00Z&end_date=2024-03-31T00:00:00Z';
  const ids = (list: any[]) => list.map((r) => r.service_request_id);

  it('lists the requests of a window newest first, each with only its public part, in JSON and XML', async () => {
    const list = await both(`requests?${MARCH}`, 'requests.json', 'service_requests');
    assert.deepEqual(ids(list), ['binAgglo', 'fagnieresTag', 'tagDuplicate', 'tagRejected', 'tagClosed', 'lightResolved', 'potholeAck', 'tagNew'].map((n) => made[n]));
    const byId = Object.fromEntries(list.map((r: any) => [r.service_request_id, r]));
    const [lon, lat] = coarsePoint(EXACT_CHALONS.lon, EXACT_CHALONS.lat);
    assert.deepEqual([lon, lat], [4.365, 48.957]);
    assert.deepEqual(byId[made.tagClosed], {
      service_request_id: made.tagClosed,
      status: 'closed',
      status_notes: 'Closed.',
      service_name: 'Tag or graffiti',
      service_code: 'TAG',
      description: null,
      agency_responsible: 'Service test, Châlons-en-Champagne',
      service_notice: null,
      requested_datetime: '2024-03-13T10:00:00Z',
      updated_datetime: '2024-03-14T09:30:00Z',
      expected_datetime: '2024-03-16T10:00:00Z',
      address: null,
      address_id: null,
      zipcode: null,
      lat,
      long: lon,
      media_url: null,
    });
    assert.deepEqual(
      list.map((r: any) => [r.service_request_id, r.status]),
      [['binAgglo', 'open'], ['fagnieresTag', 'open'], ['tagDuplicate', 'closed'], ['tagRejected', 'closed'], ['tagClosed', 'closed'], ['lightResolved', 'closed'], ['potholeAck', 'open'], ['tagNew', 'open']].map(([n, s]) => [made[n], s]),
    );
    assert.equal(byId[made.lightResolved].updated_datetime, '2024-03-13T08:00:00Z');
    assert.equal(byId[made.tagDuplicate].status_notes, `Duplicate of service request ${made.tagNew}: follow that one.`);
    assert.equal(byId[made.binAgglo].agency_responsible, 'Service test, Châlons Agglo');
    for (const format of ['json', 'xml']) {
      const text = (await call('GET', `requests.${format}?${MARCH}`)).text;
      for (const secret of ['SECRET', 'Secret', 'secret', '23 45 67 89', String(EXACT_CHALONS.lat), String(EXACT_CHALONS.lon), String(EXACT_FAGNIERES.lon), String(EXACT_FAGNIERES.lat)]) assert.ok(!text.includes(secret), `${format} shows ${secret}`);
    }
  });

  it('filters by service_request_id (overriding the rest), service_code, status and jurisdiction_id', async () => {
    const picked = await both(`requests?service_request_id=${made.tagNew},${made.outsideWindow},999999999&status=closed&service_code=POTHOLE`, 'requests.json', 'service_requests');
    assert.deepEqual(ids(picked), [made.tagNew, made.outsideWindow]);
    assert.deepEqual(ids(await both(`requests?${MARCH}&service_code=POTHOLE,LIGHT_OUT`, 'requests.json', 'service_requests')), [made.lightResolved, made.potholeAck]);
    assert.deepEqual(ids(await both(`requests?${MARCH}&status=open`, 'requests.json', 'service_requests')), [made.binAgglo, made.fagnieresTag, made.potholeAck, made.tagNew]);
    assert.deepEqual(ids(await both(`requests?${MARCH}&status=closed`, 'requests.json', 'service_requests')), [made.tagDuplicate, made.tagRejected, made.tagClosed, made.lightResolved]);
    assert.equal((await both(`requests?${MARCH}&status=open,closed`, 'requests.json', 'service_requests')).length, 8);
    assert.deepEqual(ids(await both(`requests?${MARCH}&jurisdiction_id=fagnieres`, 'requests.json', 'service_requests')), [made.fagnieresTag]);
    assert.deepEqual(ids(await both(`requests?${MARCH}&jurisdiction_id=chalons-agglo`, 'requests.json', 'service_requests')), [made.binAgglo]);
    assert.deepEqual(ids(await both(`requests?service_request_id=${made.fagnieresTag},${made.tagNew}&jurisdiction_id=fagnieres`, 'requests.json', 'service_requests')), [made.fagnieresTag]);
    // Empty optional parameters are absent ones.
    assert.equal((await both(`requests?${MARCH}&service_code=&status=&jurisdiction_id=&service_request_id=&page=&page_size=`, 'requests.json', 'service_requests')).length, 8);
    // Nothing matches: an empty list, valid against the schema.
    assert.deepEqual(await both(`requests?${MARCH}&service_code=OPEN_CABINET`, 'requests.json', 'service_requests'), []);

    refused(await call('GET', 'requests.json?service_request_id=12,abc'), 400, /^service_request_id: 'abc' is not a service request id/);
    refused(await call('GET', 'requests.json?service_code=TAG,UFO'), 404, /^service_code: unknown service 'UFO'/);
    refused(await call('GET', 'requests.json?status=pending'), 400, /^status: must be open, closed or open,closed, not 'pending'/);
    refused(await call('GET', 'requests.xml?jurisdiction_id=nowhere'), 404, /^jurisdiction_id: unknown jurisdiction 'nowhere'/, 'xml');
  });

  it('reads start_date and end_date as W3C date-times with their offsets, inclusive', async () => {
    const only = async (query: string) => ids(await both(`requests?${query}&service_code=TAG&jurisdiction_id=chalons&status=open`, 'requests.json', 'service_requests'));
    // tagNew was created at 2024-03-10T10:00:00Z = 11:00+01:00.
    assert.deepEqual(await only('start_date=2024-03-10T11:00:00%2B01:00&end_date=2024-03-10T11:00:00%2B01:00'), [made.tagNew]);
    assert.deepEqual(await only('start_date=2024-03-10T11:00:01%2B01:00&end_date=2024-03-20T00:00:00Z'), []);
    assert.deepEqual(await only('start_date=2024-03-10T05:00:00-05:00&end_date=2024-03-10T05:00:00-05:00'), [made.tagNew]);
    assert.deepEqual(await only('start_date=2024-03-01T00:00:00Z&end_date=2024-03-10T10:59:59%2B01:00'), []);
    assert.deepEqual(await only('start_date=2024-03-10T10:00:00.000Z&end_date=2024-03-10T10:00:00.000Z'), [made.tagNew]);
    // An unencoded `+` arrives as a space: read as the offset it was.
    assert.deepEqual(await only('start_date=2024-03-10T11:00:00+01:00&end_date=2024-03-10T11:00:00+01:00'), [made.tagNew]);
    // Only start_date: 90 days from it; only end_date: the 90 days before it.
    assert.deepEqual(await only('start_date=2024-03-01T00:00:00Z'), [made.tagNew]);
    assert.deepEqual(await only('start_date=2023-12-10T00:00:00Z'), [], 'tagNew is more than 90 days after start_date');
    assert.deepEqual(await only('end_date=2024-04-30T00:00:00Z'), [made.tagNew]);
    assert.deepEqual(await only('end_date=2024-06-10T00:00:00Z'), [], 'tagNew is more than 90 days before end_date');
    for (const [query, name, pattern] of [
      ['start_date=2024-03-01', 'start_date', /must be a W3C date-time with its offset/],
      ['start_date=2024-03-01T00:00:00', 'start_date', /must be a W3C date-time with its offset/],
      ['start_date=2024-13-01T00:00:00Z', 'start_date', /must be a W3C date-time with its offset, .*not '2024-13-01T00:00:00Z'/],
      ['end_date=2024-02-30T00:00:00Z', 'end_date', /must be a W3C date-time .*not '2024-02-30T00:00:00Z'/],
      ['end_date=2024-02-10T25:00:00Z', 'end_date', /must be a W3C date-time/],
      ['end_date=yesterday', 'end_date', /must be a W3C date-time .*not 'yesterday'/],
      ['start_date=2024-03-10T00:00:00%2B15:00', 'start_date', /must be a W3C date-time/],
      ['start_date=2024-01-01T00:00:00Z&end_date=2024-04-01T00:00:01Z', 'end_date', /the window from start_date to end_date spans more than 90 days/],
      ['start_date=2024-03-10T00:00:00Z&end_date=2024-03-09T00:00:00Z', 'end_date', /is before start_date/],
    ] as const) {
      refused(await call('GET', `requests.json?${query}`), 400, new RegExp(`^${name}: ${pattern.source}`));
    }
    refused(await call('GET', 'requests.xml?start_date=tomorrow'), 400, /^start_date: must be a W3C date-time/, 'xml');
    // Exactly 90 days is allowed.
    assert.equal((await call('GET', 'requests.json?start_date=2024-01-01T00:00:00Z&end_date=2024-03-31T00:00:00Z')).status, 200);
  });

  it('caps an answer at 1,000 requests, newest first, with page and page_size', async () => {
    // 1,005 tickets on 2024-06-20, one a minute back from noon (the seeded tickets are all within the last 9 months).
    const { rows } = await pool.query(
      `INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, source, reporter_email, created_at, updated_at, ack_due_at, resolve_due_at)
       SELECT 'OPEN_CABINET', 'saint-martin-sur-le-pre', 'Éclairage public', 'NEW', 'bulk', ST_SetSRID(ST_MakePoint(4.345, 48.985), 4326), 'APP', 'bulk@example.org',
              '2024-06-20T12:00:00Z'::timestamptz - make_interval(mins => g), '2024-06-20T12:00:00Z'::timestamptz - make_interval(mins => g), now(), now()
       FROM generate_series(1, 1005) AS g ORDER BY g RETURNING id::text`,
    );
    assert.equal(rows.length, 1005);
    const newestFirst = rows.map((r: any) => r.id);
    const query = 'jurisdiction_id=saint-martin-sur-le-pre&start_date=2024-06-01T00:00:00Z&end_date=2024-06-30T00:00:00Z';

    const capped = await both(`requests?${query}`, 'requests.json', 'service_requests');
    assert.equal(capped.length, 1000);
    assert.deepEqual(ids(capped), newestFirst.slice(0, 1000));
    assert.deepEqual(ids(await both(`requests?${query}&page=2`, 'requests.json', 'service_requests')), newestFirst.slice(1000));
    assert.deepEqual(ids(await both(`requests?${query}&page=3`, 'requests.json', 'service_requests')), []);
    assert.deepEqual(ids(await both(`requests?${query}&page_size=10&page=3`, 'requests.json', 'service_requests')), newestFirst.slice(20, 30));
    assert.deepEqual(ids(await both(`requests?${query}&page_size=1`, 'requests.json', 'service_requests')), newestFirst.slice(0, 1));
    assert.deepEqual(ids(await both(`requests?${query}&page_size=1000&page=2`, 'requests.json', 'service_requests')), newestFirst.slice(1000));
    for (const [query2, name, pattern] of [
      ['page_size=1001', 'page_size', /must be a whole number from 1 to 1000, not '1001'/],
      ['page_size=0', 'page_size', /must be a whole number from 1 to 1000, not '0'/],
      ['page=0', 'page', /must be a whole number from 1 to 100000, not '0'/],
      ['page=-1', 'page', /must be a whole number from 1 to 100000, not '-1'/],
      ['page=1.5', 'page', /must be a whole number from 1 to 100000, not '1.5'/],
    ] as const) {
      refused(await call('GET', `requests.json?${query2}`), 400, new RegExp(`^${name}: ${pattern.source}`));
    }
  });

  it('defaults to the last 90 days when no date is given', async () => {
    const now = Date.now();
    await insert('old', { category: 'OPEN_CABINET', collectivity: 'saint-martin-sur-le-pre', createdAt: new Date(now - 91 * 86_400_000).toISOString() });
    await insert('recent', { category: 'OPEN_CABINET', collectivity: 'saint-martin-sur-le-pre', createdAt: new Date(now - 89 * 86_400_000).toISOString() });
    const seen: string[] = [];
    for (let page = 1; ; page++) {
      const list = await both(`requests?jurisdiction_id=saint-martin-sur-le-pre&page=${page}`, 'requests.json', 'service_requests');
      if (list.length === 0) break;
      seen.push(...ids(list));
      assert.ok(list.every((r: any) => Date.parse(r.requested_datetime) >= now - 90 * 86_400_000 - 1000), 'nothing older than 90 days');
    }
    assert.ok(seen.includes(made.recent), '89 days ago is inside the default window');
    assert.ok(!seen.includes(made.old), '91 days ago is outside it');
    assert.ok(!seen.includes(made.tagNew), 'nor anything of 2024');
    assert.deepEqual(ids(await both(`requests?service_request_id=${made.old}`, 'requests.json', 'service_requests')), [made.old], 'an id overrides the window');
  });

  it('gives one request by id, 404 for an unknown or malformed id or another jurisdiction', async () => {
    const [one] = await both(`requests/${made.potholeAck}`, 'requests.json', 'service_requests');
    assert.deepEqual([one.service_request_id, one.status, one.status_notes, one.service_code], [made.potholeAck, 'open', 'Acknowledged by the service.', 'POTHOLE']);
    assert.deepEqual(await both(`requests/${made.potholeAck}?jurisdiction_id=chalons`, 'requests.json', 'service_requests'), [one]);
    refused(await call('GET', `requests/${made.potholeAck}.json?jurisdiction_id=fagnieres`), 404, new RegExp(`^service_request_id: no service request '${made.potholeAck}' in jurisdiction fagnieres`));
    refused(await call('GET', 'requests/999999999.json'), 404, /^service_request_id: no service request '999999999'/);
    refused(await call('GET', 'requests/999999999.xml'), 404, /^service_request_id: no service request/, 'xml');
    refused(await call('GET', 'requests/abc.json'), 404, /^service_request_id: no service request 'abc'/);
    refused(await call('GET', 'requests/99999999999999999999.json'), 404, /no service request/);
    refused(await call('GET', 'requests/0.json'), 404, /no service request/);
  });
});

// --- a dependency down (last: it stops territory) ------------------------------------------

describe('Open311 with a dependency down', () => {
  it('answers POST with 503 and Retry-After when equipment does not answer (core\'s SERVICE_UNAVAILABLE), writing nothing', async () => {
    await hub.subgraphs.equipment.close();
    const before = await ticketCount();
    const answer = await call('POST', 'requests.json', { body: form({ api_key: chalonsKey, service_code: 'LIGHT_OUT', lat: CHALONS.lat, long: CHALONS.lon, email: newEmail(), description: 'Éteint' }) });
    const description = refused(answer, 503, /equipment.*; nothing was written: try again later$/);
    assert.equal(description.match(/try again later/g)!.length, 1, description);
    assert.equal(answer.headers.get('retry-after'), '5');
    assert.equal(await ticketCount(), before);
  });

  it('answers POST with 503 and Retry-After, writing nothing; reads go on from what it knew', async () => {
    await hub.subgraphs.territory.close();
    const before = await ticketCount();
    for (const format of ['json', 'xml'] as const) {
      const answer = await call('POST', `requests.${format}`, { body: form({ api_key: chalonsKey, service_code: 'TAG', lat: CHALONS.lat, long: CHALONS.lon, email: newEmail(), description: 'Tag' }) });
      refused(answer, 503, /^the service cannot answer now \(territory unavailable\); nothing was written: try again later$/, format);
      assert.equal(answer.headers.get('retry-after'), '5');
    }
    assert.equal(await ticketCount(), before);
    assert.deepEqual((await both('services?jurisdiction_id=chalons-agglo', 'services.json', 'services')).map((s: any) => s.service_code), AGGLOMERATION);
    assert.equal((await call('GET', 'requests.json')).status, 200);
  });
});
