import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { loadConfig } from '../src/config.js';
import { createDatabase } from '../src/db.js';
import { EventBus, EVENTS_CHANNEL, publishEvent, publishEvents, type BusEvent } from '../src/events.js';
import { createLogger } from '../src/log.js';

const log = createLogger('events-test', { LOG_LEVEL: 'silent' });
let db: TestDatabase;
let pool: pg.Pool;

before(async () => {
  db = await createTestDatabase({ seed: false });
  pool = new pg.Pool({ connectionString: db.url, max: 6 });
  pool.on('error', () => {});
});
after(async () => {
  await pool.end();
  await db.drop();
});

/** Resolves with the next event, or rejects after `ms`; the pending read is kept for the next call. */
function reader(iterator: AsyncIterator<BusEvent>) {
  let pending: Promise<IteratorResult<BusEvent>> | null = null;
  return {
    async next(ms = 5_000): Promise<BusEvent> {
      pending ??= iterator.next();
      const timeout = new Promise<never>((_, reject) => {
        const timer = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), ms);
        void pending!.finally(() => clearTimeout(timer));
      });
      const result = await Promise.race([pending, timeout]);
      pending = null;
      assert.equal(result.done, false, 'stream ended');
      return result.value;
    },
    /** True when nothing arrives within `ms`. */
    async nothingWithin(ms: number): Promise<boolean> {
      pending ??= iterator.next();
      const arrived = await Promise.race([pending.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
      return !arrived;
    },
  };
}

async function inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

const publish = (topic: string, payload: unknown, collectivityId: string | null = 'chalons') =>
  inTransaction((client) => publishEvent(client, { topic, collectivityId, payload }));

describe('event bus', () => {
  it('starts at the head, and never delivers an event whose transaction rolled back', async () => {
    await publish('t1', { n: 'before subscribing' });
    const bus = new EventBus(pool, log);
    await bus.start();
    try {
      const events = reader(bus.subscribe({ topics: ['t1'] }));
      const client = await pool.connect();
      await client.query('BEGIN');
      await publishEvent(client, { topic: 't1', collectivityId: 'chalons', payload: { n: 'rolled back' } });
      await client.query('ROLLBACK');
      client.release();
      const id = await publish('t1', { n: 'committed' });
      const event = await events.next();
      assert.equal(event.id, id);
      assert.deepEqual(event.payload, { n: 'committed' });
      assert.equal(event.topic, 't1');
      assert.equal(event.collectivityId, 'chalons');
      assert.ok(event.createdAt instanceof Date);
      assert.ok(await events.nothingWithin(200));
    } finally {
      await bus.close();
    }
  });

  it('delivers events published without NOTIFY (quiet), in order with the others: at the next notification, or by the safety poll', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    const notified: string[] = [];
    listener.on('notification', (message) => void notified.push(message.payload ?? ''));
    await listener.query(`LISTEN ${EVENTS_CHANNEL}`);
    try {
      const events = reader(bus.subscribe({ topics: ['quiet'] }));
      const quiet = await inTransaction((client) =>
        publishEvents(client, [{ topic: 'quiet', collectivityId: null, payload: { n: 1 } }, { topic: 'quiet', collectivityId: null, payload: { n: 2 } }], { notify: false }),
      );
      // Nothing announces them: they come with the safety poll (5 s) at the latest.
      const first = await events.next(7_000);
      const second = await events.next(1_000);
      assert.deepEqual([first.id, second.id], quiet);
      assert.deepEqual([first.payload, second.payload], [{ n: 1 }, { n: 2 }]);
      assert.deepEqual(notified, [], 'a quiet publish sends no notification');
      // A quiet event followed by a notified one: both, in id order, as soon as the second is announced.
      const [later] = await inTransaction((client) => publishEvents(client, [{ topic: 'quiet', collectivityId: null, payload: { n: 3 } }], { notify: false }));
      const started = Date.now();
      const announced = await publish('quiet', { n: 4 }, null);
      const third = await events.next(2_000);
      const fourth = await events.next(2_000);
      assert.deepEqual([third.id, fourth.id], [later, announced]);
      assert.ok(Date.now() - started < 2_000, 'delivered on the notification, not by the poll');
      assert.deepEqual(notified, ['quiet'], 'only the second publish notified');
    } finally {
      await listener.end();
      await bus.close();
    }
  });

  it('resumes from a cursor, in batches, then goes live; also publishes through a Prisma transaction', async () => {
    const ids = await inTransaction((client) =>
      publishEvents(client, Array.from({ length: 1_201 }, (_, n) => ({ topic: 't2', collectivityId: null, payload: { n } }))),
    );
    assert.equal(ids.length, 1_201);
    const bus = new EventBus(pool, log);
    try {
      const events = reader(bus.subscribe({ topics: ['t2'], after: ids[0] }));
      for (let n = 1; n < ids.length; n++) {
        const event = await events.next();
        assert.equal(event.id, ids[n]);
        assert.deepEqual(event.payload, { n });
      }
      const database = createDatabase(loadConfig({ DATABASE_URL: db.url, DB_POOL_SIZE: '2' }));
      try {
        const id = await database.prisma.$transaction((tx) => publishEvent(tx, { topic: 't2', collectivityId: 'fagnieres', payload: { live: true } }));
        const event = await events.next();
        assert.equal(event.id, id);
        assert.deepEqual(event.payload, { live: true });
        assert.equal(event.collectivityId, 'fagnieres');
      } finally {
        await database.close();
      }
      // A cursor given as bigint works too.
      const again = reader(bus.subscribe({ topics: ['t2'], after: BigInt(ids.at(-2)!) }));
      assert.equal((await again.next()).id, ids.at(-1));
    } finally {
      await bus.close();
    }
  });

  it('delivers an event committed late with a lower id before the higher one, skipping none', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    try {
      const events = reader(bus.subscribe({ topics: ['t3'] }));
      const slow = await pool.connect();
      const fast = await pool.connect();
      try {
        await slow.query('BEGIN');
        await fast.query('BEGIN');
        const low = await publishEvent(slow, { topic: 't3', collectivityId: null, payload: 'low' });
        const high = await publishEvent(fast, { topic: 't3', collectivityId: null, payload: 'high' });
        assert.ok(BigInt(low) < BigInt(high));
        await fast.query('COMMIT');
        // `high` is committed and visible, but `low` may still commit: nothing may be delivered yet.
        assert.ok(await events.nothingWithin(400), 'the higher id was delivered while a lower one was in flight');
        await slow.query('COMMIT');
        assert.equal((await events.next()).id, low);
        assert.equal((await events.next()).id, high);
      } finally {
        slow.release();
        fast.release();
      }
    } finally {
      await bus.close();
    }
  });

  it('waits for a writer that took its xid before a later one but draws the higher id (xmin = xmax while it runs)', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    const a = await pool.connect();
    const b = await pool.connect();
    try {
      const events = reader(bus.subscribe({ topics: ['t9'] }));
      await a.query('BEGIN');
      await b.query('BEGIN');
      const xidA = BigInt((await a.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x);
      const xidB = BigInt((await b.query('SELECT pg_current_xact_id()::text AS x')).rows[0].x);
      assert.ok(xidA < xidB);
      const low = await publishEvent(b, { topic: 't9', collectivityId: null, payload: 'B: later xid, lower id' });
      const high = await publishEvent(a, { topic: 't9', collectivityId: null, payload: 'A: earlier xid, higher id' });
      assert.ok(BigInt(low) < BigInt(high));
      await a.query('COMMIT');
      // Now A's xid is the highest completed one, so B (xid above it) is running at or above
      // every snapshot's xmax: a bound read from xmin/xmax alone takes `high` as final here.
      assert.ok(await events.nothingWithin(400), 'the higher id was delivered while B, which holds a lower one, was running');
      await b.query('COMMIT');
      assert.equal((await events.next()).id, low);
      assert.equal((await events.next()).id, high);
    } finally {
      a.release();
      b.release();
      await bus.close();
    }
  });

  it('a subscriber without a cursor starts at the final position: it gets a write that was in flight below the highest visible id', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    const slow = await pool.connect();
    try {
      const first = reader(bus.subscribe({ topics: ['t10'] }));
      await slow.query('BEGIN');
      const inFlight = await publishEvent(slow, { topic: 't10', collectivityId: null, payload: 'in flight' });
      const visible = await publish('t10', 'committed above it', null);
      assert.ok(BigInt(inFlight) < BigInt(visible));
      assert.ok(await first.nothingWithin(200));
      // Subscribes while `visible` is the highest visible id and `inFlight` may still commit.
      const late = reader(bus.subscribe({ topics: ['t10'] }));
      await slow.query('COMMIT');
      for (const events of [first, late]) {
        assert.equal((await events.next()).id, inFlight, 'the write committed after subscribing was skipped');
        assert.equal((await events.next()).id, visible);
      }
    } finally {
      slow.release();
      await bus.close();
    }
  });

  it('start() resolves once its position is final: not while a write below the highest visible id is in flight', async () => {
    const slow = await pool.connect();
    const bus = new EventBus(pool, log);
    try {
      await slow.query('BEGIN');
      const inFlight = await publishEvent(slow, { topic: 't11', collectivityId: null, payload: 'in flight' });
      await publish('t11', 'committed above it', null);
      let startedAt = 0;
      const started = bus.start().then(() => (startedAt = Date.now()));
      await new Promise((resolve) => setTimeout(resolve, 400));
      assert.equal(startedAt, 0, 'start() resolved while an earlier write could still appear below its position');
      const committedAt = Date.now();
      await slow.query('COMMIT');
      await started;
      assert.ok(startedAt >= committedAt);
      // Everything up to there is behind the position: only later commits reach a new subscriber.
      const events = reader(bus.subscribe({ topics: ['t11'] }));
      const next = await publish('t11', 'after start', null);
      assert.ok(BigInt(next) > BigInt(inFlight));
      assert.equal((await events.next()).id, next);
    } finally {
      slow.release();
      await bus.close();
    }
  });

  it('start() does not wait forever for a stuck transaction: it gives up after its bound, and the bus settles once it ends', async () => {
    // Short: while it is open, every bus on the cluster waits for it.
    const stuck = await pool.connect();
    const bus = new EventBus(pool, log, { startWaitMs: 500 });
    try {
      await stuck.query('BEGIN');
      await stuck.query('SELECT pg_current_xact_id()');
      const started = Date.now();
      await bus.start();
      const waited = Date.now() - started;
      assert.ok(waited >= 450 && waited < 3_000, `start() resolved after ${waited} ms`);
      const events = reader(bus.subscribe({ topics: ['t13'] }));
      await stuck.query('COMMIT');
      const id = await publish('t13', 'after the stuck transaction', null);
      assert.equal((await events.next()).id, id);
    } finally {
      stuck.release();
      await bus.close();
    }
  });

  it('takes no checkpoint (which costs an xid) while events arrive without gaps, nor when idle', async () => {
    class CountingBus extends EventBus {
      checkpointReads = 0;
      protected override readCheckpoint() {
        this.checkpointReads++;
        return super.readCheckpoint();
      }
    }
    const bus = new CountingBus(pool, log);
    await bus.start();
    try {
      assert.equal(bus.checkpointReads, 1, 'one to find its position');
      const events = reader(bus.subscribe({ topics: ['t12'] }));
      // A rolled-back id left at the head by an earlier test may cost one more.
      const before = bus.checkpointReads;
      for (let n = 0; n < 40; n++) {
        const id = await publish('t12', n, null);
        assert.equal((await events.next()).id, id);
      }
      assert.ok(bus.checkpointReads - before <= 1, `${bus.checkpointReads - before} checkpoints for 40 contiguous events`);
      const settled = bus.checkpointReads;
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(bus.checkpointReads, settled);
      // A gap (a rolled-back id) costs one.
      const client = await pool.connect();
      await client.query('BEGIN');
      await publishEvent(client, { topic: 't12', collectivityId: null, payload: 'rolled back' });
      await client.query('ROLLBACK');
      client.release();
      const after = await publish('t12', 'after the gap', null);
      assert.equal((await events.next()).id, after);
      assert.equal(bus.checkpointReads, settled + 1);
    } finally {
      await bus.close();
    }
  });

  it('under concurrent writers that commit or roll back in any order, delivers exactly the committed events, in id order', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    try {
      const iterator = bus.subscribe({ topics: ['t7'] });
      const committed: string[] = [];
      const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
      await Promise.all(
        [0, 1, 2, 3].map(async (writer) => {
          const client = await pool.connect();
          try {
            for (let n = 0; n < 20; n++) {
              await client.query('BEGIN');
              const id = await publishEvent(client, { topic: 't7', collectivityId: null, payload: { writer, n } });
              await sleep(Math.random() * 8);
              if ((writer + n) % 5 === 0) {
                await client.query('ROLLBACK');
              } else {
                await client.query('COMMIT');
                committed.push(id);
              }
            }
          } finally {
            client.release();
          }
        }),
      );
      committed.sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
      const events = reader(iterator);
      const received: string[] = [];
      for (let n = 0; n < committed.length; n++) received.push((await events.next()).id);
      assert.deepEqual(received, committed);
      assert.ok(await events.nothingWithin(200));
    } finally {
      await bus.close();
    }
  });

  it('a slow live consumer falls back to reading the table, and still gets everything in order', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    try {
      const iterator = bus.subscribe({ topics: ['t8'] });
      const ids = await inTransaction((client) =>
        publishEvents(client, Array.from({ length: 2_600 }, (_, n) => ({ topic: 't8', collectivityId: null, payload: n }))),
      );
      await new Promise((resolve) => setTimeout(resolve, 300)); // let the bus run ahead of the consumer
      const queued = [...(bus as unknown as { subscribers: Set<{ queue: unknown[] }> }).subscribers][0].queue.length;
      assert.ok(queued <= 1_500, `queue grew to ${queued}`);
      const events = reader(iterator);
      for (const id of ids) assert.equal((await events.next()).id, id);
    } finally {
      await bus.close();
    }
  });

  it('filters by topic and collectivity', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    try {
      const chalons = reader(bus.subscribe({ topics: ['t4.a', 't4.b'], collectivityIds: ['chalons'] }));
      const all = reader(bus.subscribe({ topics: ['t4.b'] }));
      const a1 = await publish('t4.a', 1, 'chalons');
      await publish('t4.a', 2, 'fagnieres');
      const b3 = await publish('t4.b', 3, null);
      const b4 = await publish('t4.b', 4, 'chalons');
      await publish('t4.c', 5, 'chalons');
      assert.deepEqual([(await chalons.next()).id, (await chalons.next()).id], [a1, b4]);
      assert.deepEqual([(await all.next()).id, (await all.next()).id], [b3, b4]);
      assert.ok(await chalons.nothingWithin(200));
      // Replay applies the same filters.
      const replay = reader(bus.subscribe({ topics: ['t4.a', 't4.b'], collectivityIds: ['chalons'], after: (BigInt(a1) - 1n).toString() }));
      assert.deepEqual([(await replay.next()).id, (await replay.next()).id], [a1, b4]);
    } finally {
      await bus.close();
    }
  });

  it('keeps delivering after its LISTEN connection is terminated', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    try {
      const events = reader(bus.subscribe({ topics: ['t5'] }));
      const first = await publish('t5', 'first');
      assert.equal((await events.next()).id, first);
      const { rows } = await pool.query(
        `SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = 'connecte-event-bus'`,
      );
      assert.equal(rows.length, 1);
      const second = await publish('t5', 'second');
      assert.equal((await events.next(8_000)).id, second);
      // Once reconnected, NOTIFY wakes it again (well before the 5 s safety poll).
      await new Promise((resolve) => setTimeout(resolve, 500));
      const third = await publish('t5', 'third');
      const started = Date.now();
      assert.equal((await events.next()).id, third);
      assert.ok(Date.now() - started < 2_000, 'not woken by NOTIFY after reconnecting');
      // As after a database restart: every connection of the bus (LISTEN and pooled) is cut.
      await pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
      const fourth = await publish('t5', 'fourth');
      assert.equal((await events.next(8_000)).id, fourth);
    } finally {
      await bus.close();
    }
  });

  it('cleans up: return() unsubscribes, an abort signal ends the stream, close() completes open iterators', async () => {
    const bus = new EventBus(pool, log);
    await bus.start();
    const subscribers = () => (bus as unknown as { subscribers: Set<unknown> }).subscribers.size;
    const one = bus.subscribe({ topics: ['t6'] });
    assert.equal(subscribers(), 1);
    assert.deepEqual(await one.return!(), { value: undefined, done: true });
    assert.equal(subscribers(), 0);
    assert.equal((await one.next()).done, true);

    const controller = new AbortController();
    const two = bus.subscribe({ topics: ['t6'], signal: controller.signal });
    const pendingTwo = two.next();
    controller.abort();
    assert.equal((await pendingTwo).done, true);
    assert.equal(subscribers(), 0);

    const three = bus.subscribe({ topics: ['t6'] });
    const pendingThree = three.next();
    await bus.close();
    assert.equal((await pendingThree).done, true);
    assert.equal((await bus.subscribe({ topics: ['t6'] }).next()).done, true, 'a closed bus gives ended streams');
    assert.throws(() => bus.subscribe({ topics: ['t6'], after: 'abc' }), /after/);
  });
});
