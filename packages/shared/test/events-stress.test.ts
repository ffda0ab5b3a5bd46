/**
 * The event bus under the load that made the previous bound skip events: concurrent writers
 * that take their transaction id first, then draw event ids after random sleeps (so a writer
 * with a later xid often holds a lower id), commit after random delays or roll back, while
 * the LISTEN connection is killed and subscribers come and go. Every subscriber must receive
 * every committed event from its start point exactly once, in cursor order, and no rolled-back one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { EventBus, publishEvents, type SubscribeOptions } from '../src/events.js';
import { createLogger } from '../src/log.js';

const WRITERS = 8;
const EVENTS = 5_000;
const ROLLBACK_RATE = 0.05;
const TOPIC = 'stress';
const log = createLogger('events-stress-test', { LOG_LEVEL: 'silent' });

let db: TestDatabase;
let writerPool: pg.Pool;
let busPool: pg.Pool;

before(async () => {
  db = await createTestDatabase({ seed: false });
  writerPool = new pg.Pool({ connectionString: db.url, max: WRITERS });
  busPool = new pg.Pool({ connectionString: db.url, max: 6 });
  for (const pool of [writerPool, busPool]) pool.on('error', () => {});
});
after(async () => {
  await Promise.all([writerPool.end(), busPool.end()]);
  await db.drop();
});

interface Written {
  id: bigint;
  collectivityId: string;
  /** When its COMMIT was sent: anything sent after a subscription started is a change it must get. */
  commitSentAt: number;
}

/** A subscriber's view: the ids it received, in order, across any number of (re)subscriptions. */
interface Consumer {
  name: string;
  received: bigint[];
  /** Set for the subscriber without a cursor: when its subscribe() was called. */
  subscribedAt?: number;
  filter?: (event: Written) => boolean;
  running: Promise<void>;
}

function consume(bus: EventBus, name: string, options: Omit<SubscribeOptions, 'topics'>, pace?: (n: number) => Promise<void>): Consumer {
  const consumer: Consumer = { name, received: [], running: Promise.resolve() };
  consumer.running = (async () => {
    for await (const event of bus.subscribe({ topics: [TOPIC], ...options })) {
      consumer.received.push(BigInt(event.id));
      await pace?.(consumer.received.length);
    }
  })();
  return consumer;
}

describe('event bus under stress', () => {
  it(`${WRITERS} writers, ${EVENTS} events, ${ROLLBACK_RATE * 100} % rolled back, LISTEN killed: every subscriber gets every committed event once, in order`, async () => {
    const bus = new EventBus(busPool, log);
    await bus.start();
    const committed: Written[] = [];
    const rolledBack = new Set<bigint>();
    let drawn = 0;

    const writer = async () => {
      const client = await writerPool.connect();
      try {
        while (drawn < EVENTS) {
          const count = Math.min(1 + Math.floor(Math.random() * 3), EVENTS - drawn);
          drawn += count;
          await client.query('BEGIN');
          // The xid first, as the real write path does (its SELECT … FOR UPDATE), then a pause
          // during which writers that started later draw lower ids.
          await client.query('SELECT pg_current_xact_id()');
          await sleep(Math.random() * 10);
          const collectivities = Array.from({ length: count }, () => (Math.random() < 0.5 ? 'chalons' : 'fagnieres'));
          const ids = await publishEvents(
            client,
            collectivities.map((collectivityId, n) => ({ topic: TOPIC, collectivityId, payload: { n } })),
          );
          await sleep(Math.random() * 10);
          if (Math.random() < ROLLBACK_RATE) {
            await client.query('ROLLBACK');
            for (const id of ids) rolledBack.add(BigInt(id));
          } else {
            const commitSentAt = performance.now();
            await client.query('COMMIT');
            ids.forEach((id, n) => committed.push({ id: BigInt(id), collectivityId: collectivities[n], commitSentAt }));
          }
        }
      } finally {
        client.release();
      }
    };

    const consumers: Consumer[] = [
      consume(bus, 'live from the start', {}),
      consume(bus, 'live from the start, chalons only', { collectivityIds: ['chalons'] }),
      // Stops reading for a while: its queue overflows, it falls back to the table, then catches up.
      consume(bus, 'slow, from the start', {}, async (n) => {
        if (n === 800) await sleep(1_500);
      }),
    ];
    consumers[1].filter = (event) => event.collectivityId === 'chalons';

    // Stops and resumes from its last cursor, three times.
    const resumed: Consumer = { name: 'stopped and resumed from its cursor', received: [], running: Promise.resolve() };
    resumed.running = (async () => {
      for (let round = 0; ; round++) {
        const stopAfter = round < 3 ? 300 + Math.floor(Math.random() * 500) : Infinity;
        let n = 0;
        for await (const event of bus.subscribe({ topics: [TOPIC], after: resumed.received.at(-1) ?? null })) {
          resumed.received.push(BigInt(event.id));
          if (++n >= stopAfter) break;
        }
        if (n < stopAfter) return; // the stream ended: the bus was closed
        await sleep(100 + Math.random() * 200);
      }
    })();
    consumers.push(resumed);

    const writing = Promise.all(Array.from({ length: WRITERS }, writer));
    const midRun = (async () => {
      const waitFor = async (share: number) => {
        while (drawn < EVENTS * share) await sleep(5);
      };
      await waitFor(0.25);
      consumers.push(consume(bus, 'late, from cursor 0', { after: '0' }));
      await waitFor(0.4);
      const { rows } = await busPool.query(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'connecte-event-bus'`,
      );
      assert.equal(rows.length, 1, 'the LISTEN connection was found');
      await waitFor(0.5);
      const subscribedAt = performance.now();
      const noCursor = consume(bus, 'without a cursor, started mid-run', {});
      noCursor.subscribedAt = subscribedAt;
      consumers.push(noCursor);
      await waitFor(0.7);
      await busPool.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'connecte-event-bus'`,
      );
    })();
    await Promise.all([writing, midRun]);
    committed.sort((a, b) => (a.id < b.id ? -1 : 1));

    const expected = (consumer: Consumer): bigint[] => {
      let events = consumer.filter ? committed.filter(consumer.filter) : committed;
      if (consumer.subscribedAt !== undefined) {
        // Its start is the bus's position: it may get a few committed just before it
        // subscribed, but from its first event on, everything.
        const first = consumer.received[0];
        assert.ok(first !== undefined, `${consumer.name}: received nothing`);
        events = events.filter((event) => event.id >= first);
        const mustHave = committed.filter((event) => event.commitSentAt > consumer.subscribedAt!);
        assert.ok(mustHave.length > 0 && mustHave[0].id >= first, `${consumer.name}: started after a change committed after it subscribed`);
      }
      return events.map((event) => event.id);
    };
    // Each one is done once it has the last committed event it should get.
    const lastFor = (consumer: Consumer) => (consumer.filter ? committed.filter(consumer.filter) : committed).at(-1)!.id;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && consumers.some((c) => c.received.at(-1) !== lastFor(c))) await sleep(50);
    await sleep(500); // anything extra or duplicated would arrive now
    await bus.close();
    await Promise.all(consumers.map((c) => c.running));

    assert.ok(rolledBack.size > 0 && committed.length > EVENTS * 0.8, `${committed.length} committed, ${rolledBack.size} rolled back`);
    for (const consumer of consumers) {
      const received = consumer.received;
      const rolledBackReceived = received.filter((id) => rolledBack.has(id));
      assert.deepEqual(rolledBackReceived, [], `${consumer.name}: received rolled-back events`);
      for (let n = 1; n < received.length; n++) {
        assert.ok(received[n] > received[n - 1], `${consumer.name}: ${received[n]} after ${received[n - 1]} (duplicate or out of order)`);
      }
      const want = expected(consumer);
      const got = new Set(received);
      const missed = want.filter((id) => !got.has(id));
      assert.deepEqual(missed, [], `${consumer.name}: missed ${missed.length} of ${want.length} committed events`);
      assert.equal(received.length, want.length, `${consumer.name}: received events that were not expected`);
    }
  });
});
