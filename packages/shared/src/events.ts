/**
 * The event bus (DESIGN.md, "Events"): an append-only `events` table written in the same
 * transaction as the change it reports, NOTIFY at commit, and readers that LISTEN and then
 * catch up from a cursor (the bigserial id).
 *
 * Ordering. Ids are taken from the sequence when a row is inserted, but transactions commit
 * in any order, so a reader that has seen id 12 may later see id 11 appear. A reader must
 * therefore only move its cursor past ids that no running transaction can still fill.
 * We do it without serialising writers and without an extra column:
 *
 *  1. `publishEvent` makes its transaction take a transaction id (`pg_current_xact_id()`)
 *     BEFORE it draws an id from the sequence.
 *  2. The bus reads, in one statement (one snapshot S), the highest visible id M and the
 *     snapshot bounds xmin(S)/xmax(S) (64-bit xid8 values: no wraparound to reason about).
 *     Any id below M that is not visible in S was drawn before M's transaction committed,
 *     hence (by 1) by a transaction that already had an xid and was still running at S:
 *     an xid below xmax(S).
 *  3. So every id ≤ M is final (committed and visible from then on, or never to exist)
 *     as soon as a later snapshot has xmin ≥ xmax(S): all those transactions have ended.
 *     With no transaction running at S (xmin = xmax) that holds at once.
 *  4. Shortcut: ids that follow the delivered position without a gap (position+1, +2, ...)
 *     are final too: nothing is missing below them. That is the common case, so most
 *     events are delivered on the NOTIFY that announces them.
 * Consequences, documented for operators: events are only written through publishEvent;
 * the sequence keeps CACHE 1 (the bigserial default); a long-running writing transaction
 * anywhere in the database delays events that follow a gap (a rollback or an in-flight
 * insert) until it ends, and the bus logs a warning when that lasts.
 */
import pg from 'pg';
import { badInput } from './errors.js';
import type { Logger } from './log.js';

export const EVENTS_CHANNEL = 'connecte_events';

export interface NewEvent {
  /** Dotted name, e.g. `equipment.status_changed`: subscriptions filter on it. */
  topic: string;
  /** The collectivity the event belongs to (subscriptions filter on it), null if none. */
  collectivityId: string | null;
  /** JSON-serialisable body. */
  payload: unknown;
}

export interface BusEvent<P = unknown> {
  /** The event id (a bigint, as a string): the resume cursor. */
  id: string;
  topic: string;
  collectivityId: string | null;
  payload: P;
  createdAt: Date;
}

/** Something that runs SQL inside the caller's transaction: a Prisma interactive
 * transaction client, or a pg client on which the caller ran BEGIN. */
export type EventWriter =
  | pg.ClientBase
  | { $queryRawUnsafe(query: string, ...values: unknown[]): PromiseLike<unknown> };

// xid first (see 1 above), then the row; NOTIFY is queued and delivered at commit, not at all
// on rollback. The payload is the topic, so many events of one topic in one transaction
// coalesce into one notification. (`::text`: Prisma cannot read a `void` column.)
const PUBLISH_SQL = `
WITH tx AS MATERIALIZED (SELECT pg_current_xact_id()),
inserted AS (
  INSERT INTO events (topic, collectivity_id, payload)
  SELECT e.topic, e.collectivity_id, e.payload
  FROM tx, unnest($1::text[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS e(topic, collectivity_id, payload, n)
  ORDER BY e.n
  RETURNING id, topic
)
SELECT i.id::text AS id,
       CASE WHEN row_number() OVER (PARTITION BY i.topic ORDER BY i.id) = 1 THEN pg_notify('${EVENTS_CHANNEL}', i.topic)::text END AS notified
FROM inserted AS i ORDER BY i.id`;

function checkEvent(event: NewEvent): void {
  if (typeof event.topic !== 'string' || event.topic === '' || event.topic.length > 200) {
    throw new Error('publishEvent: topic must be a non-empty string of at most 200 characters');
  }
  if (event.collectivityId !== null && typeof event.collectivityId !== 'string') {
    throw new Error('publishEvent: collectivityId must be a string or null');
  }
  if (event.payload === undefined) throw new Error('publishEvent: payload is required');
}

/**
 * Appends events in the caller's transaction (they exist only if it commits) and returns
 * their ids in order. Call it once the change itself is written.
 */
export async function publishEvents(tx: EventWriter, events: NewEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  events.forEach(checkEvent);
  const params = [
    events.map((e) => e.topic),
    events.map((e) => e.collectivityId),
    events.map((e) => JSON.stringify(e.payload)),
  ];
  const rows = (
    '$queryRawUnsafe' in tx
      ? await tx.$queryRawUnsafe(PUBLISH_SQL, ...params)
      : (await (tx as pg.ClientBase).query(PUBLISH_SQL, params)).rows
  ) as { id: string }[];
  return rows.map((row) => row.id);
}

/** Appends one event in the caller's transaction; returns its id. */
export async function publishEvent(tx: EventWriter, event: NewEvent): Promise<string> {
  const [id] = await publishEvents(tx, [event]);
  return id;
}

export interface SubscribeOptions {
  topics: string[];
  /** Replays every event with a greater id, then goes live. Without it: starts at the current head. */
  after?: bigint | string | null;
  /** Only events of these collectivities (events without a collectivity are then excluded). */
  collectivityIds?: string[] | null;
  /** Ends the stream when aborted. */
  signal?: AbortSignal;
}

const BATCH = 500;
/** A live subscriber whose consumer falls this far behind goes back to reading the table. */
const HIGH_WATER = 2 * BATCH;
/** A catching-up subscriber reads its next batch once its queue is this short. */
const LOW_WATER = BATCH / 5;
const SAFETY_POLL_MS = 5_000;
const PENDING_RETRY_MS = [10, 20, 50, 100, 200, 500, 1_000];
const RECONNECT_MAX_MS = 5_000;
const SLOW_HORIZON_WARN_MS = 30_000;
const MAX_CHECKPOINTS = 64;

const HORIZON_SQL = `
SELECT pg_snapshot_xmin(s)::text AS xmin, pg_snapshot_xmax(s)::text AS xmax,
       (SELECT coalesce(max(id), 0) FROM events)::text AS max_id
FROM pg_current_snapshot() AS s`;

// Payloads of topics nobody here listens to are not transferred.
const LIVE_SQL = `
SELECT id::text AS id, topic, collectivity_id,
       CASE WHEN topic = ANY($2::text[]) THEN payload END AS payload, created_at
FROM events WHERE id > $1 ORDER BY events.id LIMIT ${BATCH}`;

const CATCH_UP_SQL = `
SELECT id::text AS id, topic, collectivity_id, payload, created_at
FROM events
WHERE id > $1 AND id <= $2 AND topic = ANY($3::text[])
  AND ($4::text[] IS NULL OR collectivity_id = ANY($4::text[]))
ORDER BY events.id LIMIT ${BATCH}`;

interface EventRow {
  id: string;
  topic: string;
  collectivity_id: string | null;
  payload: unknown;
  created_at: Date;
}

const toEvent = (row: EventRow): BusEvent => ({
  id: row.id,
  topic: row.topic,
  collectivityId: row.collectivity_id,
  payload: row.payload,
  createdAt: row.created_at,
});

interface Subscriber {
  topics: Set<string>;
  collectivities: Set<string> | null;
  /** Last id handed to (or skipped for) this subscriber; null: "the head", fixed once known. */
  cursor: bigint | null;
  /** Fed by the bus's shared read; otherwise it reads its own filtered batches from the table. */
  live: boolean;
  queue: BusEvent[];
  waiters: ((result: IteratorResult<BusEvent>) => void)[];
  finished: boolean;
  finish(): void;
}

const max = (a: bigint, b: bigint) => (a > b ? a : b);

function parseCursor(after: SubscribeOptions['after']): bigint | null {
  if (after === undefined || after === null) return null;
  if (typeof after === 'bigint') {
    if (after < 0n) throw badInput('after', 'must be an event id (a whole number ≥ 0)');
    return after;
  }
  if (typeof after !== 'string' || !/^\d{1,19}$/.test(after)) {
    throw badInput('after', 'must be an event id (a whole number ≥ 0)');
  }
  return BigInt(after);
}

/**
 * One per process: one LISTEN connection, one reader of the table shared by every live
 * subscriber, and per-subscriber catch-up reads for those replaying from an older cursor.
 */
export class EventBus {
  private readonly subscribers = new Set<Subscriber>();
  /** Every id ≤ horizon is final (see the header). */
  private horizon: bigint | null = null;
  /** Every id ≤ position is final and has been offered to live subscribers. */
  private position: bigint | null = null;
  /** Highest id visible at the last horizon read: where "head" subscribers start. */
  private head: bigint | null = null;
  private checkpoints: { xmax: bigint; maxId: bigint; since: number; warned: boolean }[] = [];

  private listener: pg.Client | null = null;
  private reconnectDelay = 100;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private safetyTimer: NodeJS.Timeout | null = null;
  private pumpTimer: NodeJS.Timeout | null = null;
  private pumpTimerDue = Infinity;
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  /** Index into PENDING_RETRY_MS while events wait behind running transactions. */
  private pendingRetry = 0;
  private started: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>,
  ) {}

  /**
   * Connects the LISTEN connection and reads the current head. Idempotent; `subscribe`
   * calls it, but a server awaits it first so that "the current head" is exact. A database
   * that is down is not an error here: the bus keeps retrying in the background.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      this.safetyTimer = setInterval(() => this.schedule(0), SAFETY_POLL_MS);
      this.safetyTimer.unref();
      await this.connectListener();
      await this.kick();
    })();
    return this.started;
  }

  subscribe(options: SubscribeOptions): AsyncIterableIterator<BusEvent> {
    if (!Array.isArray(options.topics) || options.topics.length === 0 || !options.topics.every((t) => typeof t === 'string')) {
      throw new Error('subscribe: topics must be a non-empty array of strings');
    }
    const cursor = parseCursor(options.after);
    const sub: Subscriber = {
      topics: new Set(options.topics),
      collectivities: options.collectivityIds ? new Set(options.collectivityIds) : null,
      cursor: cursor ?? this.head,
      live: false,
      queue: [],
      waiters: [],
      finished: false,
      finish: () => {
        if (sub.finished) return;
        sub.finished = true;
        this.subscribers.delete(sub);
        options.signal?.removeEventListener('abort', sub.finish);
        sub.queue.length = 0;
        for (const resolve of sub.waiters.splice(0)) resolve({ value: undefined, done: true });
      },
    };
    const done = (): Promise<IteratorResult<BusEvent>> => Promise.resolve({ value: undefined, done: true });
    if (this.closed || options.signal?.aborted) {
      sub.finished = true;
    } else {
      this.subscribers.add(sub);
      options.signal?.addEventListener('abort', sub.finish, { once: true });
      void this.start();
      this.schedule(0);
    }
    const iterator: AsyncIterableIterator<BusEvent> = {
      next: () => {
        const value = sub.queue.shift();
        if (value) {
          if (!sub.live && sub.queue.length < LOW_WATER) this.schedule(0);
          return Promise.resolve({ value, done: false });
        }
        if (sub.finished) return done();
        return new Promise((resolve) => {
          sub.waiters.push(resolve);
          if (!sub.live) this.schedule(0);
        });
      },
      return: () => {
        sub.finish();
        return done();
      },
      throw: (error) => {
        sub.finish();
        return Promise.reject(error);
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Ends the LISTEN connection and completes every open iterator. The pool is the caller's. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of [this.safetyTimer, this.pumpTimer]) if (timer) clearInterval(timer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const sub of [...this.subscribers]) sub.finish();
    await this.started?.catch(() => {});
    await this.pumping;
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => {});
  }

  // --- LISTEN connection -------------------------------------------------------------

  private async connectListener(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ ...this.pool.options, application_name: 'connecte-event-bus' });
    const lost = (error?: Error) => this.listenerLost(client, error);
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', () => this.schedule(0));
    try {
      await client.connect();
      await client.query(`LISTEN ${EVENTS_CHANNEL}`);
    } catch (error) {
      lost(error as Error);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => {});
      return;
    }
    this.listener = client;
    this.reconnectDelay = 100;
    // Whatever was committed while we were not listening is read now.
    this.schedule(0);
  }

  private listenerLost(client: pg.Client, error?: Error): void {
    if (client.listenerCount('end') === 0) return; // already handled
    client.removeAllListeners();
    client.on('error', () => {}); // a late socket error must not crash the process
    client.end().catch(() => {});
    if (this.listener === client) this.listener = null;
    if (this.closed) return;
    this.log.warn({ err: error?.message }, `event bus: LISTEN connection lost, reconnecting in ${this.reconnectDelay} ms`);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connectListener();
    }, this.reconnectDelay);
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
  }

  // --- reading -----------------------------------------------------------------------

  /** Runs a pump after `delayMs` unless one is due sooner; pumps never overlap. */
  private schedule(delayMs: number): void {
    if (this.closed) return;
    if (this.pumping) {
      // The running pump loops once more; delayed requests are re-evaluated when it ends.
      if (delayMs === 0) this.pumpAgain = true;
      return;
    }
    if (this.pumpTimer && this.pumpTimerDue <= Date.now() + delayMs) return;
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpTimerDue = Date.now() + delayMs;
    this.pumpTimer = setTimeout(() => void this.kick(), delayMs);
  }

  /** Pumps now (or once more after the running pump) and resolves when done. */
  private kick(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true;
      return this.pumping;
    }
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    this.pumpTimerDue = Infinity;
    this.pumping = this.runPumps().then((failed) => {
      this.pumping = null;
      this.afterPumps(failed);
    });
    return this.pumping;
  }

  private async runPumps(): Promise<boolean> {
    try {
      do {
        this.pumpAgain = false;
        await this.pump();
      } while (this.pumpAgain && !this.closed);
      return false;
    } catch (error) {
      if (!this.closed) this.log.warn({ err: (error as Error).message }, 'event bus: read failed, retrying');
      return true;
    }
  }

  private afterPumps(failed: boolean): void {
    if (this.closed) return;
    if (failed) return this.schedule(PENDING_RETRY_MS.at(-1)!);
    if (this.pumpAgain) return this.schedule(0);
    // Events wait behind a running transaction: look again soon, backing off to 1 s.
    const waiting = this.subscribers.size > 0 && (this.checkpoints.length > 0 || this.position === null);
    if (!waiting) {
      this.pendingRetry = 0;
      return;
    }
    this.schedule(PENDING_RETRY_MS[this.pendingRetry]);
    this.pendingRetry = Math.min(this.pendingRetry + 1, PENDING_RETRY_MS.length - 1);
  }

  private async pump(): Promise<void> {
    await this.advanceHorizon();
    if (this.position === null) {
      if (this.horizon === null) return;
      this.position = this.horizon;
    }
    await this.readLive();
    await this.catchUp();
  }

  private async advanceHorizon(): Promise<void> {
    const { rows } = await this.pool.query<{ xmin: string; xmax: string; max_id: string }>(HORIZON_SQL);
    const xmin = BigInt(rows[0].xmin);
    const xmax = BigInt(rows[0].xmax);
    const maxId = BigInt(rows[0].max_id);
    this.head = this.head === null ? maxId : max(this.head, maxId);
    for (const sub of this.subscribers) sub.cursor ??= this.head;

    let settled: bigint | null = null;
    while (this.checkpoints.length > 0 && this.checkpoints[0].xmax <= xmin) {
      const { maxId: id } = this.checkpoints.shift()!;
      settled = settled === null ? id : max(settled, id);
    }
    if (xmin === xmax) {
      settled = settled === null ? maxId : max(settled, maxId);
      this.checkpoints = [];
    } else if (this.horizon === null || maxId > this.horizon) {
      const last = this.checkpoints.at(-1);
      if (!last || maxId > last.maxId) {
        // Replacing the newest one when full only delays it: a later xmax settles a larger id.
        if (this.checkpoints.length >= MAX_CHECKPOINTS) this.checkpoints.pop();
        this.checkpoints.push({ xmax, maxId, since: Date.now(), warned: false });
      }
    }
    if (settled !== null) this.horizon = this.horizon === null ? settled : max(this.horizon, settled);

    const oldest = this.checkpoints[0];
    if (oldest && !oldest.warned && Date.now() - oldest.since > SLOW_HORIZON_WARN_MS) {
      oldest.warned = true;
      this.log.warn(
        { oldestRunningXid: xmin.toString() },
        'event bus: events after a gap have waited over 30 s for a long-running transaction to end',
      );
    }
  }

  /** Offers the rows after `position` to live subscribers, as far as they are final. */
  private async readLive(): Promise<void> {
    const live = [...this.subscribers].filter((sub) => {
      if (!sub.live && sub.cursor !== null && sub.cursor >= this.position!) sub.live = true;
      return sub.live;
    });
    if (live.length > 0) {
      const topics = [...new Set(live.flatMap((sub) => [...sub.topics]))];
      for (;;) {
        const { rows } = await this.pool.query<EventRow>(LIVE_SQL, [this.position!.toString(), topics]);
        let blocked = false;
        for (const row of rows) {
          const id = BigInt(row.id);
          if (!(id <= this.horizon! || id === this.position! + 1n)) {
            blocked = true;
            break;
          }
          this.position = id;
          let event: BusEvent | null = null;
          for (const sub of live) {
            if (!sub.live || sub.finished || id <= sub.cursor!) continue;
            sub.cursor = id;
            if (!sub.topics.has(row.topic) || (sub.collectivities && !sub.collectivities.has(row.collectivity_id!))) continue;
            this.deliver(sub, (event ??= toEvent(row)));
            if (sub.queue.length > HIGH_WATER) sub.live = false;
          }
        }
        if (blocked || rows.length < BATCH || this.closed) break;
      }
    }
    if (this.horizon! > this.position!) this.position = this.horizon;
  }

  /** Subscribers behind `position` read their own filtered batches, one batch per pump. */
  private async catchUp(): Promise<void> {
    for (const sub of [...this.subscribers]) {
      if (this.closed) return;
      if (sub.live || sub.cursor === null || sub.queue.length >= LOW_WATER) continue;
      if (sub.cursor >= this.position!) {
        sub.live = true;
        continue;
      }
      const until = this.position!;
      const { rows } = await this.pool.query<EventRow>(CATCH_UP_SQL, [
        sub.cursor.toString(),
        until.toString(),
        [...sub.topics],
        sub.collectivities ? [...sub.collectivities] : null,
      ]);
      if (sub.finished) continue;
      for (const row of rows) this.deliver(sub, toEvent(row));
      if (rows.length < BATCH) {
        // Caught up to `until`; position has not moved during this phase, so no gap.
        sub.cursor = until;
        sub.live = true;
      } else {
        sub.cursor = BigInt(rows.at(-1)!.id);
        if (sub.queue.length < LOW_WATER) this.pumpAgain = true;
      }
    }
  }

  private deliver(sub: Subscriber, event: BusEvent): void {
    const waiter = sub.waiters.shift();
    if (waiter) waiter({ value: event, done: false });
    else sub.queue.push(event);
  }
}
