/**
 * A durable consumer of the event bus: a domain that reacts to another domain's events (the
 * device directory to `equipment.changed`, equipment to `telemetry.alarm`) applies each event
 * exactly once, across restarts and across several instances of the service.
 *
 * How: the consumer's position lives in `event_consumers(consumer, position)`. Each event is
 * applied in one transaction that first locks the consumer's row (FOR UPDATE), skips the event
 * if the position is already at or past it (another instance, or an earlier run, applied it),
 * runs the handler, and moves the position to the event's id. The handler's writes and the new
 * position commit together or not at all, so a crash between the two cannot apply an event twice
 * or skip it. The bus delivers events in id order and never skips a final id (docs/event-bus.md),
 * and a restart resumes from the stored position. A handler that throws stops the consumer's
 * progress: it is retried with backoff (the event is neither skipped nor applied partially).
 */
import type pg from 'pg';
import type { Database } from './db.js';
import type { BusEvent, EventBus } from './events.js';
import type { Logger } from './log.js';
import type { Worker, WorkerStatus } from './workers.js';

export interface DurableConsumerOptions {
  /** Unique across the hub: the row of `event_consumers`, e.g. `telemetry.device-directory`. */
  name: string;
  /** Its worker's name (`/readyz`); default `name`. */
  workerName?: string;
  topics: string[];
  db: Database;
  events: EventBus;
  log: Pick<Logger, 'info' | 'warn' | 'error'>;
  /**
   * Where a consumer that has never run starts: `first` (default) applies every event its topics
   * hold; `latest` only those after the newest at its first start (a live view, such as buses'
   * positions, has no use for years of history).
   */
  initialPosition?: 'first' | 'latest';
  /** Applies one event inside the consumer's transaction (use `client` for every write). */
  handle(client: pg.PoolClient, event: BusEvent): Promise<void>;
}

export interface DurableConsumer extends Worker {
  /** The position applied so far (ids ≤ it are applied), or null before the first read. */
  position(): bigint | null;
  /** Resolves once every event with an id ≤ `id` (default: the newest of its topics at the call) is applied, or the consumer stops. */
  caughtUp(id?: bigint): Promise<void>;
}

const RETRY_MS = [100, 500, 2_000, 5_000];

export function durableConsumer(options: DurableConsumerOptions): DurableConsumer {
  const { name, topics, db, events, log, handle } = options;
  let controller: AbortController | null = null;
  let loop: Promise<void> | null = null;
  let applied: bigint | null = null;
  let lastError: string | null = null;
  let waiters: { id: bigint; resolve: () => void }[] = [];

  const settle = () => {
    if (applied === null) return;
    const ready = waiters.filter((w) => w.id <= applied!);
    waiters = waiters.filter((w) => w.id > applied!);
    for (const waiter of ready) waiter.resolve();
  };

  async function storedPosition(): Promise<bigint> {
    if (options.initialPosition === 'latest') {
      await db.pool.query(
        `INSERT INTO event_consumers (consumer, position)
         VALUES ($1, coalesce((SELECT max(id) FROM events WHERE topic = ANY($2::text[])), 0)) ON CONFLICT (consumer) DO NOTHING`,
        [name, topics],
      );
    } else {
      await db.pool.query('INSERT INTO event_consumers (consumer, position) VALUES ($1, 0) ON CONFLICT (consumer) DO NOTHING', [name]);
    }
    const { rows } = await db.pool.query<{ position: string }>('SELECT position::text FROM event_consumers WHERE consumer = $1', [name]);
    return BigInt(rows[0].position);
  }

  async function apply(event: BusEvent): Promise<void> {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ position: string }>('SELECT position::text FROM event_consumers WHERE consumer = $1 FOR UPDATE', [name]);
      if (BigInt(rows[0].position) < BigInt(event.id)) {
        await handle(client, event);
        await client.query('UPDATE event_consumers SET position = $2, updated_at = now() WHERE consumer = $1', [name, event.id]);
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  async function run(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      try {
        const from = await storedPosition();
        applied = applied === null || from > applied ? from : applied;
        settle();
        for await (const event of events.subscribe({ topics, after: applied, signal })) {
          await apply(event);
          applied = BigInt(event.id);
          lastError = null;
          attempt = 0;
          settle();
        }
      } catch (error) {
        if (signal.aborted) return;
        lastError = (error as Error).message;
        const delay = RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)];
        log.warn(`event consumer ${name}: ${lastError}; retrying in ${delay} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }

  return {
    name: options.workerName ?? name,
    async start() {
      controller = new AbortController();
      // The stored position is read once here so that a missing table or database fails the start.
      applied = await storedPosition();
      loop = run(controller.signal);
    },
    async stop() {
      controller?.abort();
      await loop;
      loop = null;
      for (const waiter of waiters) waiter.resolve();
      waiters = [];
    },
    status(): WorkerStatus {
      if (lastError) return { ready: false, state: `retrying: ${lastError}` };
      return { ready: loop !== null, state: loop ? `at event ${applied}` : 'stopped' };
    },
    position: () => applied,
    async caughtUp(id?: bigint) {
      const target =
        id ?? BigInt((await db.pool.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM events WHERE topic = ANY($1)', [topics])).rows[0].id);
      if (applied !== null && applied >= target) return;
      await new Promise<void>((resolve) => waiters.push({ id: target, resolve }));
    },
  };
}
