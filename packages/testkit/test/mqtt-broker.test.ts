/**
 * A test broker of the kit: Mosquitto with the repository's configuration on a port of its own.
 * It carries messages; a persistent session keeps QoS 1 messages published while it was away,
 * across a restart, beyond Mosquitto's default queue of 1000 (the repository raises it); after
 * stop nothing listens; the machine's broker is never touched.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { BROKER_CONFIG, connectTestBroker, startTestBroker, TEST_MQTT_URL, testBrokerConfig } from '@connecte/testkit';

describe('testBrokerConfig', () => {
  it('keeps the repository settings and replaces the listener, persistence directory, plugin path and state, and log', () => {
    const text = testBrokerConfig(readFileSync(BROKER_CONFIG, 'utf8'), { port: 40123, dir: '/tmp/b', asRoot: false, dynsecPlugin: '/opt/lib/mosquitto_dynamic_security.so' });
    const settings = text.split('\n').filter((line) => line && !line.startsWith('#'));
    assert.deepEqual(settings, [
      'listener 40123 127.0.0.1',
      'allow_anonymous false',
      'persistence true',
      'max_queued_messages 100000',
      'max_inflight_messages 1000',
      'plugin /opt/lib/mosquitto_dynamic_security.so',
      'plugin_opt_config_file /tmp/b/data/dynamic-security.json',
      'persistence_location /tmp/b/data/',
      'log_dest file /tmp/b/mosquitto.log',
    ]);
    assert.match(testBrokerConfig('listener 1883\n', { port: 1, dir: '/d', asRoot: true }), /^user root$/m);
  });

  it('refuses a configuration without exactly one listener to replace', () => {
    assert.throws(() => testBrokerConfig('persistence true\n', { port: 1, dir: '/d', asRoot: false }), /exactly one "listener" line .* found 0/);
    assert.throws(() => testBrokerConfig('listener 1883\nlistener 8883\n', { port: 1, dir: '/d', asRoot: false }), /exactly one "listener" line .* found 2/);
  });
});

describe('startTestBroker', () => {
  it('carries messages on a port of 127.0.0.1 of its own', async (t) => {
    const broker = await startTestBroker();
    t.after(() => broker.stop());
    assert.match(broker.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(broker.port, 1883);
    assert.ok(broker.serviceCredentials, 'the repository configuration has the dynamic-security plugin');
    assert.deepEqual(broker.env, { MQTT_URL: broker.url, MQTT_USERNAME: broker.serviceCredentials.username, MQTT_PASSWORD: broker.serviceCredentials.password });
    const subscriber = await connectTestBroker(t, { url: broker.url });
    const publisher = await connectTestBroker(t, { url: broker.url });
    const received = new Promise<string>((resolve) => subscriber.once('message', (_topic, payload) => resolve(String(payload))));
    await subscriber.subscribeAsync('connecte/test/kit', { qos: 1 });
    await publisher.publishAsync('connecte/test/kit', 'hello', { qos: 1 });
    assert.equal(await received, 'hello');
  });

  it('refuses anonymous clients and wrong passwords, as the repository configuration says; its service account gets in', async (t) => {
    const broker = await startTestBroker();
    t.after(() => broker.stop());
    await assert.rejects(connectTestBroker(t, { url: broker.url, anonymous: true }), /Not authorized/);
    await assert.rejects(connectTestBroker(t, { url: broker.url, username: broker.serviceCredentials!.username, password: 'wrong' }), /Not authorized|Bad user name or password/);
    const service = await connectTestBroker(t, { url: broker.url, ...broker.serviceCredentials! });
    assert.equal(service.connected, true);
    // The tests' own account publishes anywhere but cannot administer the broker.
    const tester = await connectTestBroker(t, { url: broker.url, protocolVersion: 5 });
    await assert.rejects(tester.publishAsync('$CONTROL/dynamic-security/v1', JSON.stringify({ commands: [{ command: 'listClients' }] }), { qos: 1 }), /Not authorized/);
  });

  it('keeps the QoS 1 messages of a persistent session published while it was away, across a restart', async (t) => {
    const broker = await startTestBroker();
    t.after(() => broker.stop());
    const clientId = `connecte-test-durable-${randomBytes(4).toString('hex')}`;
    const topic = 'connecte/test/durable';
    const away = await connectTestBroker(t, { url: broker.url, clientId, clean: false });
    await away.subscribeAsync(topic, { qos: 1 });
    await away.endAsync();

    // More than Mosquitto's default max_queued_messages (1000): only the repository's limit keeps them all.
    const count = 1500;
    const publisher = await connectTestBroker(t, { url: broker.url });
    for (let i = 0; i < count; i++) await publisher.publishAsync(topic, String(i), { qos: 1 });
    await publisher.endAsync();
    await broker.restart();

    const received = new Set<string>();
    let all!: () => void;
    const allReceived = new Promise<void>((resolve) => (all = resolve));
    const back = await connectTestBroker(t, {
      url: broker.url,
      clientId,
      clean: false,
      onMessage: (_topic, payload) => {
        received.add(String(payload));
        if (received.size === count) all();
      },
    });
    assert.equal(back.connected, true);
    const timeout = setTimeout(() => all(), 10_000);
    await allReceived;
    clearTimeout(timeout);
    assert.equal(received.size, count, `${received.size} of ${count} queued messages survived the restart`);
  });

  it('is gone after stop: connections are refused, restart is refused, stop again is a no-op', async (t) => {
    const broker = await startTestBroker();
    await broker.stop();
    await assert.rejects(connectTestBroker(t, { url: broker.url }), /ECONNREFUSED/);
    await assert.rejects(broker.restart(), new RegExp(`the test broker on port ${broker.port} was stopped`));
    await broker.stop();
  });

  it('leaves the machine’s broker alone: a client of it stays connected and served through start, restart and stop', async (t) => {
    const machine = await connectTestBroker(t, { url: TEST_MQTT_URL });
    let closed = false;
    machine.on('close', () => (closed = true));
    const broker = await startTestBroker();
    await broker.restart();
    await broker.stop();
    const topic = `connecte/test/${process.pid}/machine`;
    const received = new Promise<string>((resolve) => machine.once('message', (_topic, payload) => resolve(String(payload))));
    await machine.subscribeAsync(topic, { qos: 1 });
    await machine.publishAsync(topic, 'still here', { qos: 1 });
    assert.equal(await received, 'still here');
    assert.equal(closed, false);
  });
});
