/**
 * The MQTT subscriber alone, against a broker of the test's own (the repository's configuration)
 * and a tap that decodes every packet between the two: a message is acknowledged only after its
 * batch is committed, acknowledgements go in the order the messages came even when batches
 * commit out of order, a failing commit holds them back, an unacknowledged message comes again
 * after a reconnection (a network cut, the broker's restart, a restart of the subscriber) and an
 * acknowledged one does not, a shared subscription gives each message to exactly one member,
 * keep-alive notices a broker that went silent, and stop() acknowledges what it committed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import { createLogger } from '@connecte/shared/log';
import { connectTestBroker, startTestBroker, type TestBroker } from '@connecte/testkit';
import { BrokerRefusal, MqttSubscriber, uniqueClientId, type MqttSubscriberOptions, type ReceivedMessage } from '../src/mqtt-subscriber.js';
import { brokerAccess, clientsOwner, publisherAccount, startTap, until, type MqttTap } from './mqtt-fixtures.js';

const log = createLogger('mqtt-subscriber-test', { LOG_LEVEL: 'silent' });
let broker: TestBroker;
let tap: MqttTap;
let publisher: MqttClient;
const subscribers: MqttSubscriber[] = [];

const clients = clientsOwner();

before(async () => {
  broker = await startTestBroker();
  tap = await startTap(broker.port);
  // mqtt.js resends its unacknowledged publishes after a reconnection: the broker's restart loses none.
  publisher = await connectTestBroker(clients, { url: broker.url, ...(await publisherAccount(broker)), reconnectPeriod: 100, protocolVersion: 4 });
});
after(async () => {
  await Promise.all(subscribers.map((subscriber) => subscriber.stop()));
  await clients.end();
  await tap?.close();
  await broker?.stop();
});

let group = 0;
/** A subscriber through the tap (unless `url` says otherwise), on a group and topics of its own unless told. */
function subscriber(options: Partial<MqttSubscriberOptions> & Pick<MqttSubscriberOptions, 'handle'>): MqttSubscriber {
  const { username, password } = brokerAccess(broker);
  const created = new MqttSubscriber({
    url: tap.url,
    clientId: uniqueClientId('subscriber-test'),
    username,
    password,
    filters: [`$share/g${++group}/connecte/+/+/up`],
    log,
    ...options,
  });
  subscribers.push(created);
  return created;
}

const topic = (device: string) => `connecte/test/${device}/up`;
const publish = (device: string, body: string, qos: 0 | 1 = 1) => publisher.publishAsync(topic(device), body, { qos });
const texts = (messages: ReceivedMessage[]) => messages.map((message) => message.payload.toString());

/** The tap's packets of one link, by what is asked. */
const pubacksOf = (link: number) =>
  tap.packets.filter((p) => p.link === link && p.direction === 'to-broker' && p.packet.cmd === 'puback').map((p) => (p.packet as { messageId: number }).messageId);
const publishesOf = (link: number) =>
  tap.packets.flatMap((p) =>
    p.link === link && p.direction === 'to-client' && p.packet.cmd === 'publish' ? [{ id: p.packet.messageId ?? 0, qos: p.packet.qos, text: p.packet.payload.toString(), dup: p.packet.dup }] : [],
  );
const linksSoFar = () => Math.max(0, ...tap.packets.map((p) => p.link));

describe('MQTT subscriber', { timeout: 60_000 }, () => {
  it('acknowledges each message once its batch is committed, in the order received, though batches commit out of order', async () => {
    const committed = new Set<string>();
    /** Per PUBACK the tap saw: was its message committed at that moment? */
    let firstBatchRelease!: () => void;
    const firstBatchHeld = new Promise<void>((resolve) => (firstBatchRelease = resolve));
    let calls = 0;
    const sub = subscriber({
      batchSize: 5,
      batchDelayMs: 1_000, // batches close by size only
      concurrency: 3,
      handle: async (messages) => {
        const call = ++calls;
        if (call === 1) await firstBatchHeld;
        for (const text of texts(messages)) committed.add(text);
      },
    });
    await sub.start();
    const link = linksSoFar();
    for (let i = 1; i <= 15; i++) await publish('ack-order', `m${i}`);
    await until(() => committed.size === 10, () => `batches 2 and 3 committed (${committed.size})`, 5_000);
    await sleep(200);
    assert.deepEqual(pubacksOf(link), [], 'nothing acknowledged while the first batch is not committed: acks go in order');
    assert.equal(sub.unacknowledged, 15);

    // From here on, check at each PUBACK the tap relays that its message was already committed.
    const received = publishesOf(link);
    assert.equal(received.length, 15);
    const textById = new Map(received.map((p) => [p.id, p.text]));
    firstBatchRelease();
    await until(() => pubacksOf(link).length === 15, () => `15 PUBACKs (got ${pubacksOf(link).length})`, 5_000);
    assert.deepEqual(pubacksOf(link), received.map((p) => p.id), 'PUBACKs in the order the PUBLISHes came');
    for (const id of pubacksOf(link)) assert.ok(committed.has(textById.get(id)!), `message ${id} committed before its PUBACK`);
    assert.equal(sub.unacknowledged, 0);
    await sub.stop();
  });

  it('holds the acknowledgements of a batch whose commit fails, retries it, and acknowledges it once committed', async () => {
    let failing = true;
    const attempts: string[][] = [];
    const sub = subscriber({
      batchDelayMs: 2,
      handle: async (messages) => {
        attempts.push(texts(messages));
        if (failing) throw new Error('the database is down');
      },
    });
    await sub.start();
    const link = linksSoFar();
    await publish('retry', 'r1');
    await until(() => attempts.length >= 3, () => `three attempts (got ${attempts.length})`, 5_000);
    assert.deepEqual(pubacksOf(link), [], 'no PUBACK while the commit fails');
    assert.ok(attempts.every((batch) => batch.join() === 'r1'), 'the same batch each time');
    assert.equal(sub.unacknowledged, 1);
    failing = false;
    await until(() => pubacksOf(link).length === 1, () => 'the PUBACK after the commit', 10_000);
    assert.equal(sub.stats.batches, 1);
    assert.ok(sub.stats.failures >= 3);
    await sub.stop();
  });

  it('after a network cut: the unacknowledged message comes again (DUP), the acknowledged ones do not', async () => {
    const seen: ReceivedMessage[] = [];
    let holding = true;
    const clientId = uniqueClientId('cut');
    const sub = subscriber({
      clientId,
      batchDelayMs: 2,
      handle: async (messages) => {
        if (holding && texts(messages).includes('held')) throw new Error('the database is down');
        seen.push(...messages);
      },
    });
    await sub.start();
    const link = linksSoFar();
    for (const text of ['a1', 'a2', 'a3']) await publish('cut', text);
    await until(() => pubacksOf(link).length === 3, () => 'a1..a3 acknowledged', 5_000);
    await publish('cut', 'held');
    await until(() => sub.stats.failures >= 1, () => 'the held message to fail once', 5_000);
    assert.equal(sub.unacknowledged, 1);

    tap.cut();
    holding = false;
    await until(() => seen.some((m) => m.payload.toString() === 'held'), () => 'the held message again', 10_000);
    await sleep(500); // an acknowledged message coming again would show now
    assert.deepEqual(texts(seen), ['a1', 'a2', 'a3', 'held'], 'each acknowledged message once, the held one after the reconnection');
    assert.equal(seen.at(-1)!.dup, true, 'redelivered with DUP');
    assert.ok(sub.connected);
    assert.equal(sub.unacknowledged, 0);
    const again = linksSoFar();
    assert.ok(again > link, 'a new connection through the tap');
    assert.equal(pubacksOf(again).length, 1, 'the redelivered message acknowledged on the new connection');
    await sub.stop();
  });

  it('across a broker restart: the unacknowledged message comes again from the persisted session, and the subscription is made again', async () => {
    const seen: string[] = [];
    let holding = true;
    const sub = subscriber({
      url: broker.url,
      batchDelayMs: 2,
      handle: async (messages) => {
        if (holding && texts(messages).includes('before-restart-held')) throw new Error('the database is down');
        seen.push(...texts(messages));
      },
    });
    await sub.start();
    await publish('restart', 'before-restart-acked');
    await until(() => seen.includes('before-restart-acked') && sub.unacknowledged === 0, () => 'the first message acknowledged', 5_000);
    await publish('restart', 'before-restart-held');
    await until(() => sub.stats.failures >= 1, () => 'the held message to fail', 5_000);

    await broker.restart();
    holding = false;
    // Mosquitto 2.0 persists sessions and their messages but not shared subscriptions: only once
    // the subscriber has subscribed again does a new message have somewhere to go.
    await until(() => sub.connected, () => 'connected again', 5_000);
    await publish('restart', 'after-restart');
    await until(() => seen.includes('before-restart-held') && seen.includes('after-restart'), () => `both messages after the restart (got ${seen.join()})`, 15_000);
    await sleep(500);
    assert.deepEqual(seen.sort(), ['after-restart', 'before-restart-acked', 'before-restart-held']);
    await sub.stop();
  });

  it('a restarted subscriber with the same client id resumes its session: what it had not acknowledged and what came while it was away', async () => {
    const clientId = uniqueClientId('resume');
    const filters = [`$share/resume/connecte/+/resume/up`];
    const firstSeen: string[] = [];
    const first = subscriber({
      clientId,
      filters,
      batchDelayMs: 2,
      handle: async (messages) => {
        firstSeen.push(...texts(messages));
        // Never commits: a commit hung as its process is stopped.
        if (texts(messages).includes('pending')) await new Promise(() => {});
      },
    });
    await first.start();
    await publish('resume', 'done');
    await until(() => first.unacknowledged === 0 && firstSeen.includes('done'), () => 'the first message acknowledged', 5_000);
    await publish('resume', 'pending');
    await until(() => firstSeen.includes('pending'), () => 'the second message to be handled', 5_000);
    const stopping = Date.now();
    await first.stop();
    assert.ok(Date.now() - stopping < 4_500, 'stop() does not wait for a hung commit beyond its budget');
    await publish('resume', 'while-away');

    const secondSeen: ReceivedMessage[] = [];
    const second = subscriber({
      clientId,
      filters,
      batchDelayMs: 2,
      handle: async (messages) => void secondSeen.push(...messages),
    });
    await second.start();
    await until(() => secondSeen.length >= 2, () => `two messages on resuming (got ${texts(secondSeen).join()})`, 10_000);
    await sleep(500);
    assert.deepEqual(texts(secondSeen).sort(), ['pending', 'while-away'], 'the acknowledged message does not come again');
    assert.equal(secondSeen.find((m) => m.payload.toString() === 'pending')!.dup, true);
    await second.stop();
  });

  it('stores a QoS 0 message without acknowledging it', async () => {
    const seen: ReceivedMessage[] = [];
    const sub = subscriber({ batchDelayMs: 2, handle: async (messages) => void seen.push(...messages) });
    await sub.start();
    const link = linksSoFar();
    await publish('qos0', 'fire-and-forget', 0);
    await until(() => seen.length === 1, () => 'the QoS 0 message', 5_000);
    assert.equal(seen[0].qos, 0);
    await sleep(100);
    assert.deepEqual(pubacksOf(link), []);
    await sub.stop();
  });

  it('a shared subscription gives each message to exactly one of two subscribers of the group', async () => {
    const filters = ['$share/split/connecte/+/+/up'];
    const byMember: string[][] = [[], []];
    const members = byMember.map((seen) =>
      subscriber({ url: broker.url, filters, batchDelayMs: 2, handle: async (messages) => void seen.push(...texts(messages)) }),
    );
    await Promise.all(members.map((member) => member.start()));
    const sent = Array.from({ length: 300 }, (_, i) => `split-${i}`);
    await Promise.all(sent.map((text, i) => publish(`split-${i % 30}`, text)));
    await until(() => byMember[0].length + byMember[1].length >= sent.length, () => `${sent.length} messages (got ${byMember[0].length}+${byMember[1].length})`, 10_000);
    await sleep(300);
    assert.ok(byMember[0].length > 0 && byMember[1].length > 0, `both members receive some (${byMember[0].length} / ${byMember[1].length})`);
    const all = [...byMember[0], ...byMember[1]];
    assert.equal(all.length, sent.length, 'no message twice');
    assert.deepEqual(new Set(all), new Set(sent), 'every message once');
    assert.equal(byMember[0].filter((text) => byMember[1].includes(text)).length, 0, 'no message to both');
    await Promise.all(members.map((member) => member.stop()));
  });

  it('stop() commits what it received, acknowledges it, then disconnects: nothing comes again', async () => {
    const clientId = uniqueClientId('stop');
    const filters = ['$share/stop/connecte/+/stop/up'];
    const committed: string[] = [];
    const sub = subscriber({
      clientId,
      filters,
      batchDelayMs: 2,
      handle: async (messages) => {
        await sleep(300);
        committed.push(...texts(messages));
      },
    });
    await sub.start();
    const link = linksSoFar();
    await Promise.all(Array.from({ length: 10 }, (_, i) => publish('stop', `s${i}`)));
    await until(() => sub.stats.received === 10, () => 'ten messages received', 5_000);
    await sub.stop();
    assert.equal(committed.length, 10, 'the in-flight batches finished');
    assert.equal(pubacksOf(link).length, 10, 'and were acknowledged before disconnecting');
    const disconnect = tap.packets.findIndex((p) => p.link === link && p.direction === 'to-broker' && p.packet.cmd === 'disconnect');
    const lastAck = tap.packets.findLastIndex((p) => p.link === link && p.packet.cmd === 'puback');
    assert.ok(disconnect > lastAck, 'DISCONNECT after the last PUBACK');

    const again: string[] = [];
    const resumed = subscriber({ clientId, filters, batchDelayMs: 2, handle: async (messages) => void again.push(...texts(messages)) });
    await resumed.start();
    await sleep(500);
    assert.deepEqual(again, [], `redelivered: ${again.join()}; acks ${pubacksOf(link).join()}; publishes ${publishesOf(link).map((p) => p.id + ':' + p.text).join()}`);
    await resumed.stop();
  });

  it('keep-alive: pings an idle broker, and reconnects when one goes silent', async () => {
    const seen: string[] = [];
    const sub = subscriber({ keepaliveSeconds: 1, batchDelayMs: 2, handle: async (messages) => void seen.push(...texts(messages)) });
    await sub.start();
    const link = linksSoFar();
    await until(() => tap.packets.some((p) => p.link === link && p.packet.cmd === 'pingresp'), () => 'a PINGREQ answered', 3_000);
    tap.freeze();
    try {
      await until(() => !sub.connected, () => 'the silent broker noticed', 4_000);
    } finally {
      tap.thaw();
    }
    await until(() => sub.connected, () => 'connected again', 5_000);
    await publish('keepalive', 'after-silence');
    await until(() => seen.includes('after-silence'), () => 'a message after reconnecting', 5_000);
    await sub.stop();
  });

  it('start() resolves while the broker is down and connects once it is up; a refused login fails start()', async (t) => {
    // A port nothing listens on, then a tap to the broker on it.
    const down = subscriber({ url: 'mqtt://127.0.0.1:9', reconnectMaxMs: 200, handle: async () => {} });
    await down.start();
    assert.equal(down.connected, false);
    await down.stop();

    const { username } = brokerAccess(broker);
    if (!username) {
      t.diagnostic('the test broker is anonymous: no login to refuse');
      return;
    }
    const refused = subscriber({ url: broker.url, username, password: 'not-the-password', handle: async () => {} });
    await assert.rejects(refused.start(), (error: Error) => error instanceof BrokerRefusal && /bad user name or password|not authorized/.test(error.message));
  });
});
