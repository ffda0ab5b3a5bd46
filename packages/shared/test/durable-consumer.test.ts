/**
 * The durable consumer applies each event exactly once, in order, with concurrent writers that
 * commit out of id order or roll back, two instances of the same consumer competing, a handler
 * that fails now and then (its writes must roll back with the position), and one instance stopped
 * and started again in the middle.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import type { Database } from '../src/db.js';
import { durableConsumer } from '../src/durable-consumer.js';
import { EventBus, publishEvents } from '../src/events.js';
import { createLogger } from '../src/log.js';

const log = createLogger('durable-consumer-test', { LOG_LEVEL: 'silent' });
let db: TestDatabase;
let pool: pg.Pool;

before(async () => {
  db = await createTestDatabase({ seed: false });
  pool = new pg.Pool({ connectionString: db.url, max: 12 });
  pool.on('error', () => {});
  await pool.query('CREATE TABLE applied (event_id bigint NOT NULL, instance text NOT NULL)');
});
after(async () => {
  await pool.end();
  await db.drop();
});

/** A Database for the consumer: only its pool is used. */
const asDatabase = (p: pg.Pool) => ({ pool: p }) as unknown as Database;

describe('durable consumer', () => {
  it('applies every committed event exactly once, in id order, across two instances, handler failures and a restart', async () => {
    const TOTAL = 600;
    const committed: bigint[] = [];
    let drawn = 0;
    const writer = async () => {
      const client = await pool.connect();
      try {
        while (drawn < TOTAL) {
          drawn++;
          await client.query('BEGIN');
          await client.query('SELECT pg_current_xact_id()');
          await sleep(Math.random() * 4);
          const [id] = await publishEvents(client, [{ topic: 'dc.test', collectivityId: null, payload: { n: drawn } }]);
          await sleep(Math.random() * 4);
          if (Math.random() < 0.1) await client.query('ROLLBACK');
          else {
            await client.query('COMMIT');
            committed.push(BigInt(id));
          }
        }
      } finally {
        client.release();
      }
    };
    const start = (instance: string) => {
      const bus = new EventBus(pool, log);
      const consumer = durableConsumer({
        name: 'test.consumer',
        topics: ['dc.test'],
        db: asDatabase(pool),
        events: bus,
        log,
        async handle(client, event) {
          await client.query('INSERT INTO applied (event_id, instance) VALUES ($1, $2)', [event.id, instance]);
          // A handler failing after its write: the write must roll back with the position.
          if (Math.random() < 0.05) throw new Error('handler failed');
        },
      });
      return { bus, consumer };
    };
    const a = start('a');
    const b = start('b');
    await Promise.all([a.bus.start(), b.bus.start()]);
    await Promise.all([a.consumer.start(), b.consumer.start()]);
    const writing = Promise.all([writer(), writer(), writer(), writer()]);
    await sleep(150);
    await a.consumer.stop();
    await sleep(100);
    await a.consumer.start();
    await writing;
    const newest = committed.reduce((max, id) => (id > max ? id : max), 0n);
    await Promise.all([a.consumer.caughtUp(newest), b.consumer.caughtUp(newest)]);
    await Promise.all([a.consumer.stop(), b.consumer.stop()]);
    await Promise.all([a.bus.close(), b.bus.close()]);

    const { rows } = await pool.query<{ event_id: string }>('SELECT event_id::text AS event_id FROM applied ORDER BY applied.event_id');
    const applied = rows.map((row) => BigInt(row.event_id));
    assert.deepEqual(applied, [...committed].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)), 'each committed event once, no rolled-back one');
    const position = await pool.query<{ position: string }>("SELECT position::text FROM event_consumers WHERE consumer = 'test.consumer'");
    assert.equal(BigInt(position.rows[0].position), newest);
  });
});
