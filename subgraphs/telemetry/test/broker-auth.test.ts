/**
 * The broker-auth worker: how the telemetry service sets the broker up (its own role, the
 * collectivities' ingest roles, nothing allowed by default), what it reports, how a second
 * instance joins without disturbing the first, what a mutation does while the broker cannot be
 * reached (issuing fails and changes nothing; revoking still revokes) and how it reconciles the
 * broker with the database once it is back; a wrong or unfit service account refuses the start,
 * and the machine's anonymous broker is reported as such.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import { COLLECTIVITY_IDS } from '@connecte/shared/auth';
import { loadConfig } from '@connecte/shared/config';
import { connectTestBroker, freePort, startService, startTestBroker, type Owner, type TestBroker, type TestService } from '@connecte/testkit';
import { ANONYMOUS_STATE, HUB_ROLE, ingestorCredentials, ingestRole } from '../src/broker-auth.js';
import { telemetryResourcesFor } from '../src/context.js';

const ISSUE = `mutation Issue($id: ID!) { issueDeviceCredential(equipmentId: $id) { credential { id } secret { token } } }`;
const REVOKE = `mutation Revoke($id: ID!) { revokeDeviceCredential(equipmentId: $id) { id revokedAt } }`;

const readyz = async (service: TestService) => {
  const response = await fetch(service.url.replace(/\/graphql$/, '/readyz'));
  return { status: response.status, body: (await response.json()) as { checks: Record<string, string> } };
};

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The dynamic-security control API, as the service account (what `mosquitto_ctrl` does). */
async function control(owner: Owner, broker: TestBroker) {
  const responses = new Map<string, { resolve: (value: { error?: string; data?: any }) => void }>();
  const client = await connectTestBroker(owner, {
    url: broker.url,
    ...broker.serviceCredentials!,
    protocolVersion: 5,
    onMessage: (_topic, payload) => {
      for (const response of JSON.parse(String(payload)).responses) responses.get(response.correlationData)?.resolve(response);
    },
  });
  await client.subscribeAsync('$CONTROL/dynamic-security/v1/response', { qos: 1 });
  return async (command: Record<string, unknown>) => {
    const correlationData = randomBytes(6).toString('hex');
    const answer = new Promise<{ error?: string; data?: any }>((resolve) => responses.set(correlationData, { resolve }));
    await client.publishAsync('$CONTROL/dynamic-security/v1', JSON.stringify({ commands: [{ ...command, correlationData }] }), { qos: 1 });
    return Promise.race([answer, sleep(5_000).then(() => assert.fail(`no answer to ${String(command.command)}`))]);
  };
}

/** A TCP relay to the broker that can be taken down and brought back on the same port: the broker as the hub sees it. */
async function startRelay(brokerPort: number) {
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  let server: net.Server | null = null;
  const up = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((client) => {
        const upstream = net.connect({ host: '127.0.0.1', port: brokerPort });
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('error', () => {});
          socket.on('close', () => sockets.delete(socket));
        }
        client.pipe(upstream).pipe(client);
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      server.listen(port, '127.0.0.1', () => resolve());
    });
  const down = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      if (!server) return resolve();
      server.close(() => resolve());
      server = null;
    });
  await up();
  return { url: `mqtt://127.0.0.1:${port}`, up, down };
}

const closes = (client: MqttClient) => new Promise<void>((resolve) => (client.connected ? client.once('close', () => resolve()) : resolve()));

describe('ingestorCredentials', () => {
  it('is the service account when both variables are set, nothing otherwise', () => {
    assert.deepEqual(ingestorCredentials(loadConfig({ MQTT_USERNAME: 'hub', MQTT_PASSWORD: 'secret' })), { username: 'hub', password: 'secret' });
    assert.deepEqual(ingestorCredentials(loadConfig({})), {});
    assert.throws(() => loadConfig({ MQTT_USERNAME: 'hub' }), /MQTT_PASSWORD: is required when MQTT_USERNAME is set/);
    assert.throws(() => loadConfig({ MQTT_PASSWORD: 'secret' }), /MQTT_USERNAME: is required when MQTT_PASSWORD is set/);
    assert.throws(() => loadConfig({ MQTT_USERNAME: 'a/b', MQTT_PASSWORD: 'x' }), /MQTT_USERNAME: must be a name without/);
  });
});

describe('on a broker with the dynamic-security plugin', () => {
  let broker: TestBroker;
  let relay: Awaited<ReturnType<typeof startRelay>>;
  let service: TestService;
  const cleanUps: (() => unknown)[] = [];
  const fileOwner: Owner = { after: (fn) => void cleanUps.push(fn) };
  let command: Awaited<ReturnType<typeof control>>;
  let equipment: string[];
  const operatorToken = () => service.token(['operator'], ['chalons']);

  before(async () => {
    broker = await startTestBroker();
    relay = await startRelay(broker.port);
    service = await startService('telemetry', { env: { ...broker.env, MQTT_URL: relay.url } });
    command = await control(fileOwner, broker);
    const { rows } = await service.db.pool.query<{ equipment_id: string }>(
      "SELECT equipment_id FROM telemetry_devices WHERE collectivity_id = 'chalons' AND status <> 'DECOMMISSIONED' ORDER BY equipment_id LIMIT 10",
    );
    equipment = rows.map((row) => row.equipment_id);
  });
  after(async () => {
    for (const cleanUp of cleanUps) await cleanUp();
    await service?.close();
    await relay?.down();
    await broker?.stop();
  });

  it('is connected, gives the service account the hub’s role, creates each collectivity’s ingest role, and allows nothing by default', async () => {
    const { status, body } = await readyz(service);
    assert.equal(status, 200);
    assert.equal(body.checks['broker-auth'], 'connected');
    const self = await command({ command: 'getClient', username: broker.serviceCredentials!.username });
    assert.deepEqual(self.data.client.roles.map((role: { rolename: string }) => role.rolename).sort(), ['admin', HUB_ROLE].sort());
    const hub = await command({ command: 'getRole', rolename: HUB_ROLE });
    const acls = hub.data.role.acls.map((acl: { acltype: string; topic: string }) => `${acl.acltype} ${acl.topic}`).sort();
    assert.deepEqual(acls, [
      'publishClientReceive connecte/#',
      'publishClientSend connecte/+/+/down',
      'subscribePattern $share/+/connecte/+/+/ack',
      'subscribePattern $share/+/connecte/+/+/up',
      'subscribePattern connecte/#',
    ]);
    const roles = (await command({ command: 'listRoles' })).data.roles as string[];
    for (const id of COLLECTIVITY_IDS) assert.ok(roles.includes(ingestRole(id)), ingestRole(id));
    const defaults = (await command({ command: 'getDefaultACLAccess' })).data.acls as { acltype: string; allow: boolean }[];
    assert.deepEqual(Object.fromEntries(defaults.map((acl) => [acl.acltype, acl.allow])), { publishClientSend: false, publishClientReceive: false, subscribe: false, unsubscribe: true });
  });

  it('the hub’s account takes shared subscriptions of every uplink and publishes downlinks, but no uplink', async (t) => {
    const hub = await connectTestBroker(t, { url: broker.url, ...broker.serviceCredentials!, protocolVersion: 5 });
    await hub.subscribeAsync('$share/telemetry-test/connecte/+/+/up', { qos: 1 });
    await hub.publishAsync(`connecte/chalons/${equipment[0]}/down`, '{}', { qos: 1 });
    await assert.rejects(hub.publishAsync(`connecte/chalons/${equipment[0]}/up`, '[]', { qos: 1 }), (error: { code?: number }) => error.code === 135);
  });

  it('a second instance joins without dropping the first’s connections (nothing to change on the broker)', async (t) => {
    const ingestor = await connectTestBroker(t, { url: broker.url, ...broker.serviceCredentials!, protocolVersion: 5 });
    let dropped = false;
    ingestor.on('close', () => (dropped = true));
    const second = await startService('telemetry', { db: service.database, env: broker.env });
    try {
      assert.equal((await readyz(second)).body.checks['broker-auth'], 'connected');
      await sleep(300);
      assert.equal(dropped, false, 'the service account’s connection stayed up');
      assert.equal((await readyz(service)).body.checks['broker-auth'], 'connected');
    } finally {
      await second.close();
    }
  });

  it('while the broker cannot be reached: issuing fails and changes nothing; revoking revokes, and the broker follows once it is back', async (t) => {
    const [rotated, revoked] = [equipment[1], equipment[2]];
    const token = await operatorToken();
    const first = (await service.gql(ISSUE, { token, variables: { id: rotated } })).data.issueDeviceCredential;
    const doomed = (await service.gql(ISSUE, { token, variables: { id: revoked } })).data.issueDeviceCredential;
    // Devices reach the broker directly: only the hub's link is cut.
    const doomedDevice = await connectTestBroker(t, { url: broker.url, username: revoked, password: doomed.secret.token, protocolVersion: 5 });
    const gone = closes(doomedDevice);
    const store = telemetryResourcesFor(service.db).credentials;

    await relay.down();
    await waitFor('broker-auth disconnected', async () => (await readyz(service)).body.checks['broker-auth'] === 'disconnected');
    assert.equal((await readyz(service)).status, 503);
    const rows = async () => (await service.db.pool.query('SELECT id, revoked_at FROM device_credentials WHERE equipment_id = ANY($1) ORDER BY id', [[rotated, revoked]])).rows;
    const before = await rows();

    const refused = await service.gql(ISSUE, { token, variables: { id: rotated } });
    assert.equal(refused.errors?.[0]?.extensions?.code, 'SERVICE_UNAVAILABLE', JSON.stringify(refused.errors));
    assert.equal(refused.errors?.[0]?.extensions?.field, 'equipmentId');
    assert.match(refused.errors![0].message, /the broker could not be updated \(the broker is not reachable.*\); no credential was issued, and the current one is still active/);
    assert.deepEqual(await rows(), before, 'nothing changed in the database');
    assert.equal((await store.authenticate(first.secret.token))?.kind, 'device', 'the current credential still works over HTTP');

    const revoking = await service.gql(REVOKE, { token, variables: { id: revoked } });
    assert.equal(revoking.errors?.[0]?.extensions?.code, 'SERVICE_UNAVAILABLE');
    assert.match(revoking.errors![0].message, /revoked \(HTTP ingest refuses it from now on\), but the broker could not be updated/);
    assert.equal(await store.authenticate(doomed.secret.token), null, 'refused over HTTP at once');
    assert.equal(doomedDevice.connected, true, 'the broker has not heard of it yet');

    await relay.up();
    // broker-auth reconnects and removes the account of the revoked credential: the device is dropped for good.
    await Promise.race([gone, sleep(10_000).then(() => assert.fail('the revoked device was not disconnected after the broker came back'))]);
    await assert.rejects(connectTestBroker(t, { url: broker.url, username: revoked, password: doomed.secret.token }), /Not authorized|Bad user name or password/);
    await waitFor('broker-auth connected', async () => (await readyz(service)).body.checks['broker-auth'] === 'connected');
    const device = await connectTestBroker(t, { url: broker.url, username: rotated, password: first.secret.token });
    assert.equal(device.connected, true, 'the credential that was not rotated still works on MQTT');
  });

  it('on reconnection, removes accounts the database does not back and reports active credentials the broker does not know', async (t) => {
    const [orphan, lost] = [equipment[3], equipment[4]];
    // An account left behind (a credential revoked while nothing could update the broker).
    await command({ command: 'createRole', rolename: `connecte-device-${orphan}`, acls: [{ acltype: 'publishClientSend', topic: `connecte/chalons/${orphan}/up`, allow: true }] });
    await command({ command: 'createClient', username: orphan, password: 'left-behind', roles: [{ rolename: `connecte-device-${orphan}` }] });
    const orphanClient = await connectTestBroker(t, { url: broker.url, username: orphan, password: 'left-behind' });
    const orphanGone = closes(orphanClient);
    // A credential whose broker account was lost.
    const token = await operatorToken();
    const issued = await service.gql(ISSUE, { token, variables: { id: lost } });
    assert.equal(issued.errors, undefined);
    assert.equal((await command({ command: 'deleteClient', username: lost })).error, undefined);

    await broker.restart();
    await Promise.race([orphanGone, sleep(10_000).then(() => assert.fail('not disconnected'))]);
    await waitFor('broker-auth reconciled', async () => /^connected; 1 active credential\(s\) unknown to the broker: reissue them$/.test((await readyz(service)).body.checks['broker-auth']));
    await assert.rejects(connectTestBroker(t, { url: broker.url, username: orphan, password: 'left-behind' }), /Not authorized|Bad user name or password/);
    const roles = (await (await control(t, broker))({ command: 'listRoles' })).data.roles as string[];
    assert.ok(!roles.includes(`connecte-device-${orphan}`), 'its role is gone too');
    // Reissuing fixes it.
    const again = await service.gql(ISSUE, { token, variables: { id: lost } });
    assert.equal(again.errors, undefined);
    await connectTestBroker(t, { url: broker.url, username: lost, password: again.data.issueDeviceCredential.secret.token });
    await telemetryResourcesFor(service.db).brokerAuth.reconcile();
    assert.equal((await readyz(service)).body.checks['broker-auth'], 'connected');
  });
});

describe('a service account that cannot do its job refuses the start', () => {
  let broker: TestBroker;
  before(async () => {
    broker = await startTestBroker();
  });
  after(() => broker?.stop());

  it('a wrong password, or none on a broker that refuses anonymous clients, names the variables', async () => {
    await assert.rejects(
      startService('telemetry', { env: { ...broker.env, MQTT_PASSWORD: 'wrong' } }),
      /worker "broker-auth" failed to start: the broker refused the service account \(.*\): check MQTT_USERNAME and MQTT_PASSWORD/,
    );
    await assert.rejects(startService('telemetry', { env: { MQTT_URL: broker.url, MQTT_USERNAME: '', MQTT_PASSWORD: '' } }), /broker-auth" failed to start: the broker refused .*set them if the broker refuses anonymous clients/);
  });

  it('an account that is not the plugin’s admin is refused at once, saying so', async (t) => {
    const command = await control(t, broker);
    assert.equal((await command({ command: 'createClient', username: 'plain', password: 'plain-password' })).error, undefined);
    const started = Date.now();
    await assert.rejects(
      startService('telemetry', { env: { MQTT_URL: broker.url, MQTT_USERNAME: 'plain', MQTT_PASSWORD: 'plain-password' } }),
      /broker-auth" failed to start: MQTT_USERNAME 'plain' may not administer the broker's dynamic-security plugin/,
    );
    assert.ok(Date.now() - started < 8_000, 'without waiting for the start timeout');
  });
});

describe('on the machine’s anonymous development broker', () => {
  it('says the broker authenticates nobody, stays ready, and credentials still work for HTTP', async () => {
    const service = await startService('telemetry', { env: { MQTT_USERNAME: '', MQTT_PASSWORD: '' } });
    try {
      const { status, body } = await readyz(service);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.checks['broker-auth'], ANONYMOUS_STATE);
      assert.equal(ANONYMOUS_STATE, 'anonymous broker: devices not authenticated by the broker');
      const { rows } = await service.db.pool.query<{ equipment_id: string }>("SELECT equipment_id FROM telemetry_devices WHERE collectivity_id = 'chalons' LIMIT 1");
      const token = await service.token(['operator'], ['chalons']);
      const issued = await service.gql(ISSUE, { token, variables: { id: rows[0].equipment_id } });
      assert.equal(issued.errors, undefined, JSON.stringify(issued.errors));
      const store = telemetryResourcesFor(service.db).credentials;
      assert.equal((await store.authenticate(issued.data.issueDeviceCredential.secret.token))?.kind, 'device');
      const revoked = await service.gql(REVOKE, { token, variables: { id: rows[0].equipment_id } });
      assert.equal(revoked.errors, undefined, JSON.stringify(revoked.errors));
      assert.equal(await store.authenticate(issued.data.issueDeviceCredential.secret.token), null);
    } finally {
      await service.close();
    }
  });
});
