/**
 * Device credentials and ingest keys, end to end: the real telemetry service (every worker) on a
 * test broker with the repository's configuration (no anonymous clients, the dynamic-security
 * plugin), real MQTT clients as devices and gateways, real HTTP ingest, the real database.
 *
 * What is attacked: the broker refuses anonymous clients, wrong passwords, and every topic a
 * device or a gateway does not own (nothing is delivered — a subscriber as the service account
 * would see it); revoking disconnects at once and for good; rotation kills the old token on MQTT
 * and HTTP; who may issue, revoke and read, for every role in every collectivity; concurrent
 * rotations; secrets are never readable again (queries, database, logs).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import { COLLECTIVITY_IDS, ROLES, type Role } from '@connecte/shared/auth';
import { publishEvent } from '@connecte/shared/events';
import { createLogger } from '@connecte/shared/log';
import { connectTestBroker, startService, startTestBroker, type Owner, type TestBroker, type TestService } from '@connecte/testkit';
import { telemetryResourcesFor } from '../src/context.js';
import { LAST_USED_EVERY_MS } from '../src/credentials.js';

const ISSUE = `mutation Issue($id: ID!) { issueDeviceCredential(equipmentId: $id) {
  credential { id username createdAt createdBy lastUsedAt revokedAt }
  secret { token mqttUsername publishTopics subscribeTopics } } }`;
const REVOKE = `mutation Revoke($id: ID!) { revokeDeviceCredential(equipmentId: $id) { id username revokedAt } }`;
const ISSUE_KEY = `mutation IssueKey($c: ID!, $label: String!) { issueIngestKey(collectivityId: $c, label: $label) {
  key { id label createdBy collectivity { id } revokedAt } secret { token mqttUsername publishTopics subscribeTopics } } }`;
const REVOKE_KEY = `mutation RevokeKey($id: ID!) { revokeIngestKey(id: $id) { id revokedAt } }`;
const KEYS = `query Keys($c: ID!) { ingestKeys(collectivityId: $c) { id label createdAt createdBy lastUsedAt revokedAt collectivity { id } } }`;
const CREDENTIAL_OF = `query Of($reps: [_Any!]!) { _entities(representations: $reps) { ... on Equipment { id deviceCredential { id username createdAt createdBy lastUsedAt revokedAt } } } }`;

let broker: TestBroker;
let service: TestService;
const logLines: string[] = [];
/** Every token issued in this file: none may ever show up again. */
const issuedTokens: string[] = [];
/** A subscriber to everything, as the hub's service account: what the broker delivered. */
let delivered: { topic: string; payload: string }[] = [];
/** Light points by collectivity, each test taking its own. */
const assets = new Map<string, string[]>();

/** The file's own clients, ended by the file's `after` (an `after` registered inside `before` would run as soon as it ends). */
const fileCleanUps: (() => unknown)[] = [];
const fileOwner: Owner = { after: (fn) => void fileCleanUps.push(fn) };

const take = (collectivityId: string): string => {
  const id = assets.get(collectivityId)?.shift();
  assert.ok(id, `an unused asset of ${collectivityId}`);
  return id;
};

async function as(roles: Role[], collectivities: string[], query: string, variables: Record<string, unknown>) {
  const token = await service.token(roles, collectivities);
  return service.gql(query, { token, variables });
}
const operator = (query: string, variables: Record<string, unknown>, collectivityId = 'chalons') => as(['operator'], [collectivityId], query, variables);
const admin = (query: string, variables: Record<string, unknown>, collectivityId = 'chalons') => as(['admin'], [collectivityId], query, variables);

async function issue(equipmentId: string, collectivityId = 'chalons') {
  const response = await operator(ISSUE, { id: equipmentId }, collectivityId);
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  const issued = response.data.issueDeviceCredential;
  issuedTokens.push(issued.secret.token);
  return issued as { credential: { id: string; username: string }; secret: { token: string; mqttUsername: string; publishTopics: string[]; subscribeTopics: string[] } };
}

async function issueKey(collectivityId: string, label = 'LoRaWAN network server') {
  const response = await admin(ISSUE_KEY, { c: collectivityId, label }, collectivityId);
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  const issued = response.data.issueIngestKey;
  issuedTokens.push(issued.secret.token);
  return issued as { key: { id: string }; secret: { token: string; mqttUsername: string; publishTopics: string[]; subscribeTopics: string[] } };
}

/** An MQTT 5 client (a refused publish or subscription is an error with its reason) of the test broker. */
const device = (owner: Owner, username: string, password: string, options: { protocolVersion?: 4 | 5; clientId?: string } = {}) =>
  connectTestBroker(owner, { url: broker.url, username, password, protocolVersion: options.protocolVersion ?? 5, ...(options.clientId ? { clientId: options.clientId } : {}) });

async function waitFor(what: string, predicate: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const deliveredOn = (topic: string, payload: string) => delivered.some((m) => m.topic === topic && m.payload === payload);

/** Publishes what must be refused, then a marker on a topic the client owns: once the marker arrives, the refused one never will (one connection's messages keep their order). */
async function assertNotDelivered(client: MqttClient, forbidden: string, payload: string, ownTopic: string): Promise<void> {
  const marker = `marker-${payload}`;
  await client.publishAsync(forbidden, payload, { qos: 1 }).catch(() => {});
  await client.publishAsync(ownTopic, marker, { qos: 1 });
  await waitFor(`marker on ${ownTopic}`, () => deliveredOn(ownTopic, marker));
  assert.equal(deliveredOn(forbidden, payload), false, `${forbidden} must not be delivered`);
}

const closes = (client: MqttClient) => new Promise<void>((resolve) => (client.connected ? client.once('close', () => resolve()) : resolve()));

/** HTTP ingest's answer to a token alone: 401 when it is refused; a valid one gets past authentication to 415 (no body type). */
async function httpStatus(token: string): Promise<number> {
  const response = await fetch(service.url.replace(/\/graphql$/, '/ingest'), { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: 'x' });
  await response.arrayBuffer();
  return response.status;
}

before(async () => {
  broker = await startTestBroker();
  const log = createLogger('telemetry', { LOG_LEVEL: 'debug' }, { write: (line: string) => void logLines.push(line) });
  service = await startService('telemetry', { env: broker.env, log });
  const { rows } = await service.db.pool.query<{ equipment_id: string; collectivity_id: string }>(
    `SELECT equipment_id, collectivity_id FROM (
       SELECT equipment_id, collectivity_id, row_number() OVER (PARTITION BY collectivity_id ORDER BY equipment_id) AS n
       FROM telemetry_devices WHERE status <> 'DECOMMISSIONED') t WHERE n <= 40`,
  );
  for (const row of rows) assets.set(row.collectivity_id, [...(assets.get(row.collectivity_id) ?? []), row.equipment_id]);
  for (const collectivityId of COLLECTIVITY_IDS) assert.ok((assets.get(collectivityId)?.length ?? 0) >= 5, `assets of ${collectivityId} in the directory`);
  const watcher = await connectTestBroker(fileOwner, { url: broker.url, ...broker.serviceCredentials!, onMessage: (topic, payload) => delivered.push({ topic, payload: String(payload) }) });
  await watcher.subscribeAsync('connecte/#', { qos: 1 });
});

after(async () => {
  for (const cleanUp of fileCleanUps) await cleanUp();
  await service?.close();
  await broker?.stop();
});

describe('the broker authenticates every client', () => {
  it('refuses an anonymous client, and a device user name with a wrong password', async (t) => {
    await assert.rejects(connectTestBroker(t, { url: broker.url, anonymous: true }), /Not authorized/);
    const equipmentId = take('chalons');
    const { secret } = await issue(equipmentId);
    await assert.rejects(device(t, equipmentId, `${secret.token.slice(0, -1)}x`), /Not authorized|Bad user name or password/);
    await assert.rejects(device(t, equipmentId, ''), /Not authorized|Bad user name or password/);
    // Another device's user name with this device's token.
    await assert.rejects(device(t, take('chalons'), secret.token), /Not authorized|Bad user name or password/);
    const ok = await device(t, equipmentId, secret.token);
    assert.equal(ok.connected, true);
  });
});

describe('a device with its credential', () => {
  it('publishes on its own uplink and acknowledgement topics, and nowhere else: not another device’s, not another collectivity’s, not its downlink', async (t) => {
    const equipmentId = take('chalons');
    const neighbour = take('chalons');
    const { secret } = await issue(equipmentId);
    assert.equal(secret.mqttUsername, equipmentId);
    assert.deepEqual(secret.publishTopics, [`connecte/chalons/${equipmentId}/up`, `connecte/chalons/${equipmentId}/ack`]);
    assert.deepEqual(secret.subscribeTopics, [`connecte/chalons/${equipmentId}/down`]);
    const own = `connecte/chalons/${equipmentId}/up`;
    const client = await device(t, equipmentId, secret.token);

    await client.publishAsync(own, 'mine', { qos: 1 });
    await client.publishAsync(`connecte/chalons/${equipmentId}/ack`, 'ack', { qos: 1 });
    await waitFor('own uplink and ack', () => deliveredOn(own, 'mine') && deliveredOn(`connecte/chalons/${equipmentId}/ack`, 'ack'));

    for (const forbidden of [
      `connecte/chalons/${neighbour}/up`,
      `connecte/fagnieres/${equipmentId}/up`,
      `connecte/fagnieres/${take('fagnieres')}/up`,
      `connecte/chalons/${equipmentId}/down`,
      `connecte/chalons/${neighbour}/ack`,
      'connecte/chalons/up',
      'elsewhere',
    ]) {
      // MQTT 5: the broker says no (135 Not authorized) and delivers nothing.
      await assert.rejects(client.publishAsync(forbidden, 'intruder', { qos: 1 }), (error: { code?: number }) => error.code === 135, forbidden);
      await assertNotDelivered(client, forbidden, `intruder-${forbidden}`, own);
    }
    assert.equal(client.connected, true, 'a refused publish does not cost the device its connection');
  });

  it('over MQTT 3.1.1 too, a publish on another device’s topic is dropped, never delivered', async (t) => {
    const equipmentId = take('chalons');
    const { secret } = await issue(equipmentId);
    const client = await device(t, equipmentId, secret.token, { protocolVersion: 4 });
    await assertNotDelivered(client, `connecte/chalons/${take('chalons')}/up`, 'v311-intruder', `connecte/chalons/${equipmentId}/up`);
  });

  it('subscribes to its own downlink only, and receives the hub’s commands there', async (t) => {
    const equipmentId = take('chalons');
    const neighbour = take('chalons');
    const { secret } = await issue(equipmentId);
    const received: string[] = [];
    const client = await connectTestBroker(t, { url: broker.url, username: equipmentId, password: secret.token, protocolVersion: 5, onMessage: (topic, payload) => received.push(`${topic} ${payload}`) });
    await client.subscribeAsync(`connecte/chalons/${equipmentId}/down`, { qos: 1 });
    for (const filter of [`connecte/chalons/${neighbour}/down`, 'connecte/chalons/+/down', 'connecte/#', '#', `connecte/chalons/${equipmentId}/up`, `connecte/chalons/${equipmentId}/+`, `$share/g/connecte/chalons/${equipmentId}/down`]) {
      await assert.rejects(client.subscribeAsync(filter, { qos: 1 }), /Not authorized/, filter);
    }
    // The hub (its service account) publishes downlinks: the device gets its own only.
    const hub = await connectTestBroker(t, { url: broker.url, ...broker.serviceCredentials!, protocolVersion: 5 });
    await hub.publishAsync(`connecte/chalons/${neighbour}/down`, 'not yours', { qos: 1 });
    await hub.publishAsync(`connecte/chalons/${equipmentId}/down`, '{"cid":"1","op":"dim","level":40}', { qos: 1 });
    await waitFor('the downlink', () => received.length > 0);
    await sleep(100);
    assert.deepEqual(received, [`connecte/chalons/${equipmentId}/down {"cid":"1","op":"dim","level":40}`]);
  });

  it('revoked: disconnected at once, cannot reconnect, and HTTP ingest refuses it (401)', async (t) => {
    const equipmentId = take('chalons');
    const { secret, credential } = await issue(equipmentId);
    assert.equal(await httpStatus(secret.token), 415, 'a valid token gets past authentication');
    const client = await device(t, equipmentId, secret.token);
    const closed = closes(client);
    const started = Date.now();
    const revoked = await operator(REVOKE, { id: equipmentId });
    assert.equal(revoked.errors, undefined, JSON.stringify(revoked.errors));
    assert.equal(revoked.data.revokeDeviceCredential.id, credential.id);
    assert.ok(revoked.data.revokeDeviceCredential.revokedAt);
    await Promise.race([closed, sleep(2_000).then(() => assert.fail('the broker did not disconnect the revoked device'))]);
    assert.ok(Date.now() - started < 2_000);
    await assert.rejects(device(t, equipmentId, secret.token), /Not authorized|Bad user name or password/);
    assert.equal(await httpStatus(secret.token), 401);
    assert.equal(await telemetryResourcesFor(service.db).credentials.authenticate(secret.token), null);
    // Revoking again is idempotent: the same credential, still revoked.
    const again = await operator(REVOKE, { id: equipmentId });
    assert.equal(again.errors, undefined, JSON.stringify(again.errors));
    assert.equal(again.data.revokeDeviceCredential.id, credential.id);
  });

  it('decommissioned: the asset’s credential is revoked, the device disconnected and refused on MQTT and HTTP; the event applied again changes nothing', async (t) => {
    const equipmentId = take('fagnieres');
    const { secret, credential } = await issue(equipmentId, 'fagnieres');
    const client = await device(t, equipmentId, secret.token);
    const closed = closes(client);
    // What the equipment domain publishes when an operator decommissions the asset.
    const decommissioned = () =>
      publishEvent(service.db.pool as never, {
        topic: 'equipment.changed',
        collectivityId: 'fagnieres',
        payload: { equipmentId, change: 'DECOMMISSIONED', kind: 'LIGHT_POINT', status: 'DECOMMISSIONED', snapshot: { collectivityId: 'fagnieres', parentId: null } },
      });
    await decommissioned();
    await Promise.race([closed, sleep(5_000).then(() => assert.fail('the broker did not disconnect the decommissioned device'))]);
    // The broker account goes inside the revoking transaction; HTTP refuses once it commits, when the directory has applied the event.
    await telemetryResourcesFor(service.db).directory.caughtUp(3_000);
    await assert.rejects(device(t, equipmentId, secret.token), /Not authorized|Bad user name or password/);
    assert.equal(await httpStatus(secret.token), 401);
    const { rows } = await service.db.pool.query('SELECT id, revoked_by FROM device_credentials WHERE equipment_id = $1', [equipmentId]);
    assert.deepEqual(rows, [{ id: credential.id, revoked_by: 'equipment.decommissioned' }]);
    const reissue = await operator(ISSUE, { id: equipmentId }, 'fagnieres');
    assert.equal(reissue.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', 'a decommissioned asset gets no new credential');
    await decommissioned();
    await telemetryResourcesFor(service.db).directory.caughtUp(3_000);
    const again = await service.db.pool.query('SELECT id, revoked_at FROM device_credentials WHERE equipment_id = $1', [equipmentId]);
    assert.equal(again.rows.length, 1);
  });

  it('rotated: the old token is refused on MQTT (its connection dropped) and HTTP, the new one works', async (t) => {
    const equipmentId = take('chalons');
    const first = await issue(equipmentId);
    const store = telemetryResourcesFor(service.db).credentials;
    assert.equal((await store.authenticate(first.secret.token))?.kind, 'device', 'cached as valid before the rotation');
    const old = await device(t, equipmentId, first.secret.token);
    const closed = closes(old);
    const second = await issue(equipmentId);
    assert.notEqual(second.credential.id, first.credential.id);
    assert.notEqual(second.secret.token, first.secret.token);
    await Promise.race([closed, sleep(2_000).then(() => assert.fail('the rotated-out connection was not dropped'))]);
    await assert.rejects(device(t, equipmentId, first.secret.token), /Not authorized|Bad user name or password/);
    assert.equal(await store.authenticate(first.secret.token), null, 'the cache forgot the rotated-out token at once');
    assert.equal(await httpStatus(first.secret.token), 401);
    assert.equal(await httpStatus(second.secret.token), 415);
    const fresh = await device(t, equipmentId, second.secret.token);
    await fresh.publishAsync(`connecte/chalons/${equipmentId}/up`, 'after rotation', { qos: 1 });
    await waitFor('the rotated device’s uplink', () => deliveredOn(`connecte/chalons/${equipmentId}/up`, 'after rotation'));
    const { rows } = await service.db.pool.query<{ id: string; active: boolean }>('SELECT id, revoked_at IS NULL AS active FROM device_credentials WHERE equipment_id = $1 ORDER BY created_at', [equipmentId]);
    assert.deepEqual(rows, [{ id: first.credential.id, active: false }, { id: second.credential.id, active: true }]);
  });

  it('concurrent rotations leave exactly one active credential, and the broker accepts that one only', async (t) => {
    const equipmentId = take('chalons');
    const results = await Promise.all(Array.from({ length: 6 }, () => operator(ISSUE, { id: equipmentId })));
    for (const result of results) assert.equal(result.errors, undefined, JSON.stringify(result.errors));
    const tokens = results.map((result) => result.data.issueDeviceCredential.secret.token as string);
    issuedTokens.push(...tokens);
    const { rows } = await service.db.pool.query<{ id: string }>('SELECT id FROM device_credentials WHERE equipment_id = $1 AND revoked_at IS NULL', [equipmentId]);
    assert.equal(rows.length, 1);
    const winner = tokens.find((token) => token.startsWith(`${rows[0].id}_`));
    assert.ok(winner, 'the active credential is one of those issued');
    for (const token of tokens) {
      if (token === winner) assert.equal((await device(t, equipmentId, token)).connected, true);
      else await assert.rejects(device(t, equipmentId, token), /Not authorized|Bad user name or password/);
    }
  });

  it('records its last use over HTTP, at most once a minute', async () => {
    const equipmentId = take('chalons');
    const { secret, credential } = await issue(equipmentId);
    const lastUsed = async () =>
      (await service.db.pool.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM device_credentials WHERE id = $1', [credential.id])).rows[0].last_used_at;
    assert.equal(await lastUsed(), null);
    assert.equal(await httpStatus(secret.token), 415);
    let first: Date | null = null;
    const deadline = Date.now() + 3_000;
    while (!first && Date.now() < deadline) {
      first = await lastUsed();
      if (!first) await sleep(20);
    }
    assert.ok(first, 'last_used_at written after a use');
    await sleep(50);
    for (let i = 0; i < 5; i++) assert.equal(await httpStatus(secret.token), 415);
    await sleep(200);
    assert.deepEqual(await lastUsed(), first, `not rewritten within ${LAST_USED_EVERY_MS} ms`);
    const seen = await operator(CREDENTIAL_OF, { reps: [{ __typename: 'Equipment', id: equipmentId }] });
    assert.equal(seen.data._entities[0].deviceCredential.lastUsedAt, first.toISOString());
  });
});

describe('an ingest key', () => {
  it('publishes for any device of its collectivity, never another collectivity’s, and reads its collectivity’s downlinks', async (t) => {
    const { key, secret } = await issueKey('chalons');
    assert.equal(secret.mqttUsername, key.id);
    assert.deepEqual(secret.publishTopics, ['connecte/chalons/+/up', 'connecte/chalons/+/ack']);
    assert.deepEqual(secret.subscribeTopics, ['connecte/chalons/+/down']);
    const received: string[] = [];
    const gateway = await connectTestBroker(t, { url: broker.url, username: key.id, password: secret.token, protocolVersion: 5, onMessage: (topic) => received.push(topic) });
    const [a, b] = [take('chalons'), take('chalons')];
    for (const id of [a, b]) {
      await gateway.publishAsync(`connecte/chalons/${id}/up`, `via gateway ${id}`, { qos: 1 });
      await gateway.publishAsync(`connecte/chalons/${id}/ack`, `ack ${id}`, { qos: 1 });
    }
    await waitFor('the gateway’s uplinks', () => [a, b].every((id) => deliveredOn(`connecte/chalons/${id}/up`, `via gateway ${id}`) && deliveredOn(`connecte/chalons/${id}/ack`, `ack ${id}`)));
    const own = `connecte/chalons/${a}/up`;
    for (const other of COLLECTIVITY_IDS.filter((id) => id !== 'chalons')) {
      const forbidden = `connecte/${other}/${take(other)}/up`;
      await assert.rejects(gateway.publishAsync(forbidden, 'intruder', { qos: 1 }), (error: { code?: number }) => error.code === 135, forbidden);
      await assertNotDelivered(gateway, forbidden, `gw-intruder-${other}`, own);
    }
    await assert.rejects(gateway.publishAsync(`connecte/chalons/${a}/down`, 'x', { qos: 1 }), (error: { code?: number }) => error.code === 135);
    await gateway.subscribeAsync('connecte/chalons/+/down', { qos: 1 });
    for (const filter of ['connecte/fagnieres/+/down', 'connecte/+/+/down', 'connecte/#', 'connecte/chalons/+/up']) {
      await assert.rejects(gateway.subscribeAsync(filter, { qos: 1 }), /Not authorized/, filter);
    }
    const hub = await connectTestBroker(t, { url: broker.url, ...broker.serviceCredentials!, protocolVersion: 5 });
    await hub.publishAsync(`connecte/fagnieres/${take('fagnieres')}/down`, 'not yours', { qos: 1 });
    await hub.publishAsync(`connecte/chalons/${b}/down`, 'yours', { qos: 1 });
    await waitFor('the downlink', () => received.length > 0);
    await sleep(100);
    assert.deepEqual(received, [`connecte/chalons/${b}/down`]);
  });

  it('over HTTP stands for its collectivity; revoked, it is disconnected and refused everywhere; listed with revoked ones', async (t) => {
    const { key, secret } = await issueKey('fagnieres', 'Gateway of the town hall');
    const store = telemetryResourcesFor(service.db).credentials;
    assert.deepEqual(await store.authenticate(secret.token), { kind: 'ingest-key', keyId: key.id, collectivityId: 'fagnieres' });
    const gateway = await device(t, key.id, secret.token);
    const closed = closes(gateway);
    const revoked = await admin(REVOKE_KEY, { id: key.id }, 'fagnieres');
    assert.equal(revoked.errors, undefined, JSON.stringify(revoked.errors));
    assert.ok(revoked.data.revokeIngestKey.revokedAt);
    await Promise.race([closed, sleep(2_000).then(() => assert.fail('the revoked key’s connection was not dropped'))]);
    await assert.rejects(device(t, key.id, secret.token), /Not authorized|Bad user name or password/);
    assert.equal(await store.authenticate(secret.token), null);
    assert.equal(await httpStatus(secret.token), 401);
    const listed = await admin(KEYS, { c: 'fagnieres' }, 'fagnieres');
    assert.equal(listed.errors, undefined, JSON.stringify(listed.errors));
    const entry = listed.data.ingestKeys.find((k: { id: string }) => k.id === key.id);
    assert.equal(entry.label, 'Gateway of the town hall');
    assert.equal(entry.collectivity.id, 'fagnieres');
    assert.ok(entry.revokedAt);
  });
});

describe('who may issue, revoke and read credentials', () => {
  it('device credentials: only operator and admin of the asset’s collectivity, for every role in every collectivity; the public is asked to authenticate', async () => {
    const targets = Object.fromEntries(COLLECTIVITY_IDS.map((id) => [id, take(id)]));
    for (const [owner, equipmentId] of Object.entries(targets)) {
      const anonymous = await service.gql(ISSUE, { variables: { id: equipmentId } });
      assert.equal(anonymous.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
      assert.equal((await service.gql(REVOKE, { variables: { id: equipmentId } })).errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
      const publicView = await service.gql(CREDENTIAL_OF, { variables: { reps: [{ __typename: 'Equipment', id: equipmentId }] } });
      assert.equal(publicView.data._entities[0].deviceCredential, null);
      for (const role of ROLES) {
        for (const acting of COLLECTIVITY_IDS) {
          const allowed = (role === 'operator' || role === 'admin') && acting === owner;
          const label = `${role} of ${acting} on an asset of ${owner}`;
          const issued = await as([role], [acting], ISSUE, { id: equipmentId });
          const read = await as([role], [acting], CREDENTIAL_OF, { reps: [{ __typename: 'Equipment', id: equipmentId }] });
          const revoked = await as([role], [acting], REVOKE, { id: equipmentId });
          if (allowed) {
            assert.equal(issued.errors, undefined, `${label}: ${JSON.stringify(issued.errors)}`);
            issuedTokens.push(issued.data.issueDeviceCredential.secret.token);
            assert.equal(read.data._entities[0].deviceCredential.id, issued.data.issueDeviceCredential.credential.id, label);
            assert.equal(revoked.errors, undefined, `${label}: ${JSON.stringify(revoked.errors)}`);
            assert.equal(revoked.data.revokeDeviceCredential.id, issued.data.issueDeviceCredential.credential.id);
          } else {
            assert.equal(issued.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${label}: issue`);
            assert.equal(issued.data, null);
            assert.equal(read.errors, undefined);
            assert.equal(read.data._entities[0].deviceCredential, null, `${label}: read`);
            assert.equal(revoked.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${label}: revoke`);
          }
        }
      }
    }
  });

  it('ingest keys: only admin of the collectivity, for every role in every collectivity; the public is asked to authenticate', async () => {
    const existing = Object.fromEntries(await Promise.all(COLLECTIVITY_IDS.map(async (id) => [id, (await issueKey(id, `matrix ${id}`)).key.id] as const)));
    for (const owner of COLLECTIVITY_IDS) {
      assert.equal((await service.gql(ISSUE_KEY, { variables: { c: owner, label: 'x' } })).errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
      assert.equal((await service.gql(KEYS, { variables: { c: owner } })).errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
      assert.equal((await service.gql(REVOKE_KEY, { variables: { id: existing[owner] } })).errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
      for (const role of ROLES) {
        for (const acting of COLLECTIVITY_IDS) {
          const allowed = role === 'admin' && acting === owner;
          const label = `${role} of ${acting} on ${owner}'s keys`;
          const issued = await as([role], [acting], ISSUE_KEY, { c: owner, label: `by ${role}` });
          const listed = await as([role], [acting], KEYS, { c: owner });
          if (allowed) {
            assert.equal(issued.errors, undefined, `${label}: ${JSON.stringify(issued.errors)}`);
            issuedTokens.push(issued.data.issueIngestKey.secret.token);
            assert.equal(issued.data.issueIngestKey.key.collectivity.id, owner);
            assert.ok(listed.data.ingestKeys.some((k: { id: string }) => k.id === existing[owner]), label);
            assert.ok(listed.data.ingestKeys.every((k: { collectivity: { id: string } }) => k.collectivity.id === owner), 'only that collectivity’s keys');
            const revoked = await as([role], [acting], REVOKE_KEY, { id: issued.data.issueIngestKey.key.id });
            assert.equal(revoked.errors, undefined, `${label}: ${JSON.stringify(revoked.errors)}`);
          } else {
            assert.equal(issued.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${label}: issue`);
            assert.equal(listed.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${label}: list`);
            const revoked = await as([role], [acting], REVOKE_KEY, { id: existing[owner] });
            assert.equal(revoked.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${label}: revoke`);
          }
        }
      }
      const still = await service.db.pool.query('SELECT 1 FROM ingest_keys WHERE id = $1 AND revoked_at IS NULL', [existing[owner]]);
      assert.equal(still.rowCount, 1, 'no refused revocation touched the key');
    }
  });
});

describe('bad input', () => {
  it('is refused with the field and the reason, and changes nothing', async () => {
    const count = async () => Number((await service.db.pool.query('SELECT (SELECT count(*) FROM device_credentials) + (SELECT count(*) FROM ingest_keys) AS n')).rows[0].n);
    const before = await count();
    const cases: [Promise<{ errors?: { message: string; extensions?: Record<string, unknown> }[] }>, string, string, RegExp][] = [
      [operator(ISSUE, { id: 'lp-nowhere-99999' }), 'NOT_FOUND', 'equipmentId', /no equipment with id 'lp-nowhere-99999'/],
      [operator(REVOKE, { id: 'lp-nowhere-99999' }), 'NOT_FOUND', 'equipmentId', /no equipment/],
      [operator(REVOKE, { id: take('chalons') }), 'NOT_FOUND', 'equipmentId', /has no device credential/],
      [admin(ISSUE_KEY, { c: 'chalons', label: '   ' }), 'BAD_USER_INPUT', 'label', /must not be empty/],
      [admin(ISSUE_KEY, { c: 'chalons', label: 'x'.repeat(201) }), 'BAD_USER_INPUT', 'label', /at most 200 characters/],
      [admin(ISSUE_KEY, { c: 'chalons', label: 'bad\u0007label' }), 'BAD_USER_INPUT', 'label', /control characters/],
      [admin(ISSUE_KEY, { c: 'atlantis', label: 'x' }), 'NOT_FOUND', 'collectivityId', /no collectivity 'atlantis'/],
      [admin(KEYS, { c: 'atlantis' }), 'NOT_FOUND', 'collectivityId', /no collectivity/],
      [admin(REVOKE_KEY, { id: 'cik_0000000000000000' }), 'NOT_FOUND', 'id', /no ingest key/],
      [admin(REVOKE_KEY, { id: "'; DROP TABLE ingest_keys; --" }), 'NOT_FOUND', 'id', /no ingest key/],
    ];
    for (const [pending, code, field, message] of cases) {
      const response = await pending;
      const error = response.errors?.[0];
      assert.equal(error?.extensions?.code, code, JSON.stringify(response.errors));
      assert.equal(error?.extensions?.field, field);
      assert.match(error!.message, message);
    }
    assert.equal(await count(), before);
    // Tokens that are not ours, or ours mangled, authenticate nobody (and never throw).
    const store = telemetryResourcesFor(service.db).credentials;
    for (const token of ['', 'x', 'cdt_', `cdt_${'0'.repeat(16)}_${'A'.repeat(43)}`, `cik_${'z'.repeat(16)}_${'A'.repeat(43)}`, 'a'.repeat(10_000), 'cdt_0000000000000000_\u0000']) {
      assert.equal(await store.authenticate(token), null, JSON.stringify(token.slice(0, 40)));
    }
  });
});

describe('secrets', () => {
  it('are shown once: never in a later query, never in the database, never in the logs', async () => {
    const equipmentId = take('chalons');
    const { secret, credential } = await issue(equipmentId);
    const key = await issueKey('chalons', 'secrets test');
    const later = JSON.stringify([
      await operator(CREDENTIAL_OF, { reps: [{ __typename: 'Equipment', id: equipmentId }] }),
      await admin(KEYS, { c: 'chalons' }),
    ]);
    assert.ok(later.includes(credential.id) && later.includes(key.key.id), 'the query did answer');
    const { rows } = await service.db.pool.query<{ row: string; hash: Buffer; id: string }>(
      `SELECT row_to_json(d)::text AS row, secret_hash AS hash, id FROM device_credentials d
       UNION ALL SELECT row_to_json(k)::text, secret_hash, id FROM ingest_keys k`,
    );
    assert.ok(issuedTokens.length >= 20, `${issuedTokens.length} tokens issued in this file`);
    const hashes = new Map(rows.map((row) => [row.id, row.hash]));
    for (const token of issuedTokens) {
      // `cdt_<16 hex>_<secret>`: the id is the first 20 characters.
      const secretPart = token.slice(21);
      assert.equal(secretPart.length, 43);
      assert.ok(!later.includes(token) && !later.includes(secretPart), 'not in a query');
      for (const row of rows) assert.ok(!row.row.includes(secretPart) && !row.row.includes(token), 'not in a stored row');
      const id = token.slice(0, 20);
      assert.deepEqual(hashes.get(id), createHash('sha256').update(token).digest(), `the stored hash of ${id} is its token's SHA-256`);
      assert.notDeepEqual(hashes.get(id), Buffer.from(token));
    }
    const logs = logLines.join('');
    assert.match(logs, /device credential issued/, 'the service’s log lines were captured');
    assert.match(logs, /ingest key issued/);
    for (const token of issuedTokens) assert.ok(!logs.includes(token) && !logs.includes(token.slice(-43)), 'not in the logs');
    assert.ok(!logs.includes(broker.serviceCredentials!.password), 'nor the service account’s password');
  });
});
