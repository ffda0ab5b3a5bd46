/**
 * The event bus (docs/event-bus.md): an append-only `events` table written in the same
 * transaction as the change it reports, NOTIFY at commit, and readers that LISTEN and then
 * catch up from a cursor (the bigserial id).
 *
 * Ordering. Ids are taken from the sequence when a row is inserted, but transactions commit
 * in any order, so a reader that has seen id 12 may later see id 11 appear. A reader only
 * moves its cursor past ids that are FINAL: committed and visible to every later read, or
 * never to exist. Without serialising writers and without an extra column, from these facts
 * about PostgreSQL (xid8 values: 64 bits, no wraparound to reason about):
 *
 *  F1. Transaction ids are handed out in increasing order under one lock, and a transaction is
 *      in the shared list of running transactions from before the next xid is handed out
 *      until it ends; once it has left, every later snapshot sees its outcome.
 *  F2. A snapshot's xmax is one past the highest COMPLETED xid, not past the highest assigned
 *      one: a transaction running with an xid ≥ xmax is neither in the snapshot's running list
 *      nor below xmax, so xmin = xmax does not mean "nothing is running" (the previous bound
 *      assumed it, and skipped events). What does hold: xmin ≤ xmax, and xmin ≤ every running
 *      xid below xmax; so a transaction running with xid x always gives xmin ≤ x. Hence
 *      xmin(S) ≥ R implies that no transaction with an xid below R is running at S.
 *  F3. The sequence has CACHE 1, so nextval hands out ids in increasing order in real time.
 *  F4. In a multi-statement query at READ COMMITTED, each statement takes a fresh snapshot when
 *      it starts, and the statements run in order in one implicit transaction.
 *
 *  1. `publishEvent` makes its transaction take a transaction id (`pg_current_xact_id()`)
 *     BEFORE it draws an id from the sequence.
 *  2. A checkpoint is one round trip of three statements: (a) M, the highest id visible in
 *     that statement's snapshot S; (b) R = `pg_current_xact_id()`, an xid assigned after S;
 *     (c) the xmin of a fresh snapshot (F4).
 *     Claim: every id ≤ M is final as soon as a snapshot has xmin ≥ R.
 *     Proof: take an id d ≤ M not visible in S (a visible one is final already). M's
 *     transaction drew M and committed before S; by F3, d was drawn before M, so before S; by
 *     1 its writer had its xid w before that, hence before R was assigned: w < R (F1). A
 *     snapshot with xmin ≥ R finds nothing below R running (F2), so that writer has ended and
 *     every later read sees d if it committed (F1); if it rolled back, d never appears.
 *     Statement (c) counts R itself as running, so its xmin is ≤ R, and = R exactly when
 *     nothing below R is running: then M is final at once (the common case). Otherwise the
 *     checkpoint waits; later reads of xmin alone (no xid) settle it.
 *  3. Shortcut: if every id ≤ P is final and P+1 is visible, P+1 is committed, hence final.
 *     So ids that follow the delivered position without a gap are delivered on the NOTIFY
 *     that announces them with no checkpoint at all. (This needs a sound bound for P: with
 *     the previous bound, P itself could be wrong.)
 *  4. A subscriber without a cursor starts at the bus's position P, never at the highest
 *     visible id: ids ≤ P were final before the call, so every event committed after it has
 *     a greater id and is delivered (a few committed just before it may be delivered too).
 *
 * Cost: a checkpoint consumes one xid, bringing the next anti-wraparound vacuum closer. It is
 * taken only when a visible event waits behind a gap (a rollback or an insert still in
 * flight) and the highest visible id has grown since the last checkpoint: at most one per
 * committed writing transaction per bus (one bus per process), plus one at start, at most
 * MAX_CHECKPOINTS pending; none while ids arrive without gaps or nothing is written.
 *
 * Consequences, documented for operators: events are only written through publishEvent;
 * the sequence keeps CACHE 1 (the bigserial default); xmin is cluster-wide, so a long-running
 * transaction holding an xid in ANY database of the cluster delays events that follow a gap,
 * and `start()`, until it ends; the bus logs a warning when that lasts.
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

// The same without NOTIFY (`quiet`): the same xid-first insert, so the readers' bound holds alike.
const PUBLISH_QUIET_SQL = PUBLISH_SQL.replace(/,\n\s*CASE WHEN row_number\(\)[^\n]*AS notified/, '');
if (PUBLISH_QUIET_SQL.includes('pg_notify')) throw new Error('events.ts: the quiet publish statement still notifies');

function checkEvent(event: NewEvent): void {
  if (typeof event.topic !== 'string' || event.topic === '' || event.topic.length > 200) {
    throw new Error('publishEvent: topic must be a non-empty string of at most 200 characters');
  }
  if (event.collectivityId !== null && typeof event.collectivityId !== 'string') {
    throw new Error('publishEvent: collectivityId must be a string or null');
  }
  if (event.payload === undefined) throw new Error('publishEvent: payload is required');
}

export interface PublishOptions {
  /**
   * False: no NOTIFY at commit. For bulk maintenance (a retention run publishing hundreds of
   * events per transaction): a committing transaction that notified holds PostgreSQL's
   * notification-queue lock through its commit, so every other notifying commit of the cluster
   * waits behind it. Readers still deliver the events, in order, at their next wake: another
   * notification or the safety poll (SAFETY_POLL_MS, 5 s).
   */
  notify?: boolean;
}

/**
 * Appends events in the caller's transaction (they exist only if it commits) and returns
 * their ids in order. Call it once the change itself is written.
 */
export async function publishEvents(tx: EventWriter, events: NewEvent[], options: PublishOptions = {}): Promise<string[]> {
  if (events.length === 0) return [];
  const sql = options.notify === false ? PUBLISH_QUIET_SQL : PUBLISH_SQL;
  events.forEach(checkEvent);
  const params = [
    events.map((e) => e.topic),
    events.map((e) => e.collectivityId),
    events.map((e) => JSON.stringify(e.payload)),
  ];
  const rows = (
    '$queryRawUnsafe' in tx
      ? await tx.$queryRawUnsafe(sql, ...params)
      : (await (tx as pg.ClientBase).query(sql, params)).rows
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
  /**
   * Replays every event with a greater id, then goes live. Without it: every event committed
   * after the call (the stream starts at the bus's position, see 4 in the header).
   */
  after?: bigint | string | null;
  /** Only events of these collectivities (events without a collectivity are then excluded). */
  collectivityIds?: string[] | null;
  /** Ends the stream when aborted. */
  signal?: AbortSignal;
}

/** What one checkpoint read returns (see 2 in the header). */
export interface Checkpoint {
  /** Every id ≤ maxId is final once a snapshot has xmin ≥ mark. */
  mark: bigint;
  maxId: bigint;
  /** The xmin of a snapshot taken after `mark` was determined. */
  xmin: bigint;
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
/** Each pending checkpoint cost an xid: beyond this many, none is taken until one settles. */
const MAX_CHECKPOINTS = 64;
/**
 * How long `start()` waits for the transactions running when it began to end. A stuck one
 * (say an idle session in another database) must not keep a server from starting; the bus
 * then keeps waiting in the background.
 */
const START_WAIT_MS = 5_000;

// Three statements, one round trip (see 2 in the header): M under its own snapshot, then R,
// then a fresh snapshot's xmin. No parameters, so pg sends it as one simple query.
const CHECKPOINT_SQL = `
SELECT coalesce(max(id), 0)::text AS max_id FROM events;
SELECT pg_current_xact_id()::text AS mark;
SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`;

const XMIN_SQL = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`;

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
  /** Last id handed to (or skipped for) this subscriber; null: the bus's position, once it has one. */
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
  /** Oldest first; marks and maxIds both increase. */
  private checkpoints: { mark: bigint; maxId: bigint; since: number; warned: boolean }[] = [];
  /** `start()` callers waiting for the first position. */
  private positionWaiters: (() => void)[] = [];

  private listener: pg.Client | null = null;
  private reconnectDelay = 100;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private safetyTimer: NodeJS.Timeout | null = null;
  private pumpTimer: NodeJS.Timeout | null = null;
  private pumpTimerDue = Infinity;
  private pumping: Promise<void> | null = null;
  private pumpAgain = false;
  private lastPumpFailed = false;
  /** Index into PENDING_RETRY_MS while events wait behind running transactions. */
  private pendingRetry = 0;
  private started: Promise<void> | null = null;
  private closed = false;

  constructor(
    protected readonly pool: pg.Pool,
    private readonly log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>,
    private readonly options: { /** Default START_WAIT_MS. */ startWaitMs?: number } = {},
  ) {}

  /**
   * Connects the LISTEN connection and establishes the bus's position, so that a subscriber
   * without a cursor gets exactly the events committed after it subscribes. Idempotent;
   * `subscribe` calls it, but a server awaits it first. A database that is down is not an
   * error here: the bus keeps retrying in the background (as it does when older transactions
   * outlast `startWaitMs`); until it has a position, a subscriber without a cursor starts at
   * the first one it gets.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      this.safetyTimer = setInterval(() => this.schedule(0), SAFETY_POLL_MS);
      this.safetyTimer.unref();
      await this.connectListener();
      await this.kick();
      if (this.position !== null || this.lastPumpFailed || this.closed) return;
      const waitMs = this.options.startWaitMs ?? START_WAIT_MS;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.log.warn(`event bus: still waiting after ${waitMs} ms for transactions older than its start to end`);
          done();
        }, waitMs);
        const done = () => {
          clearTimeout(timer);
          this.positionWaiters = this.positionWaiters.filter((waiter) => waiter !== done);
          resolve();
        };
        this.positionWaiters.push(done);
      });
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
      cursor: cursor ?? this.position,
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

  /** Whether the LISTEN connection is up: without it events still arrive, but only at the safety poll. */
  get listening(): boolean {
    return this.listener !== null;
  }

  /** Ends the LISTEN connection and completes every open iterator. The pool is the caller's. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of [this.safetyTimer, this.pumpTimer]) if (timer) clearInterval(timer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    for (const sub of [...this.subscribers]) sub.finish();
    for (const done of [...this.positionWaiters]) done();
    await this.started?.catch(() => {});
    await this.pumping;
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => {});
  }

  /**
   * Reads one checkpoint (2 in the header). Protected for one reason: the benchmark
   * (bench/event-bus.ts) overrides it with the previous, unsound bound to measure both under
   * the same load in the same run, without that bound living on in production code.
   */
  protected async readCheckpoint(): Promise<Checkpoint> {
    const results = (await this.pool.query(CHECKPOINT_SQL)) as unknown as pg.QueryResult[];
    return {
      maxId: BigInt(results[0].rows[0].max_id),
      mark: BigInt(results[1].rows[0].mark),
      xmin: BigInt(results[2].rows[0].xmin),
    };
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
      this.lastPumpFailed = failed;
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
    if (this.position !== null || failed || this.closed) for (const done of [...this.positionWaiters]) done();
    if (this.closed) return;
    if (failed) return this.schedule(PENDING_RETRY_MS.at(-1)!);
    if (this.pumpAgain) return this.schedule(0);
    // Events wait behind a running transaction: look again soon, backing off to 1 s. Without
    // subscribers too, so that the position a new one starts at stays recent.
    if (this.checkpoints.length === 0 && this.position !== null) {
      this.pendingRetry = 0;
      return;
    }
    this.schedule(PENDING_RETRY_MS[this.pendingRetry]);
    this.pendingRetry = Math.min(this.pendingRetry + 1, PENDING_RETRY_MS.length - 1);
  }

  private async pump(): Promise<void> {
    if (this.position === null) {
      await this.advanceHorizon(null);
      if (this.horizon === null) return;
      this.position = this.horizon;
      for (const sub of this.subscribers) sub.cursor ??= this.position;
    }
    // The live read advances the position even without live subscribers: a new subscriber
    // without a cursor starts there, so it must stay recent.
    while (!this.closed) {
      const waiting = await this.readLive();
      if (!(await this.advanceHorizon(waiting))) break;
    }
    await this.catchUp();
  }

  /**
   * Settles what it can; `waiting` is the highest visible id the live read could not yet
   * deliver. Takes a checkpoint (one xid) only if that id is beyond every pending one, or to
   * get the first position; otherwise only reads xmin. True when ids beyond the position became final.
   */
  private async advanceHorizon(waiting: bigint | null): Promise<boolean> {
    if (this.position !== null) this.checkpoints = this.checkpoints.filter((c) => c.maxId > this.position!);
    const newest = this.checkpoints.at(-1);
    const wanted =
      this.horizon === null ? newest === undefined : waiting !== null && waiting > (newest?.maxId ?? this.horizon);
    let xmin: bigint;
    if (wanted && this.checkpoints.length < MAX_CHECKPOINTS) {
      // Its maxId is at least `waiting`, visible earlier: beyond every pending one.
      const checkpoint = await this.readCheckpoint();
      xmin = checkpoint.xmin;
      this.checkpoints.push({ mark: checkpoint.mark, maxId: checkpoint.maxId, since: Date.now(), warned: false });
    } else if (this.checkpoints.length > 0) {
      const { rows } = await this.pool.query<{ xmin: string }>(XMIN_SQL);
      xmin = BigInt(rows[0].xmin);
    } else {
      return false;
    }

    let settled: bigint | null = null;
    while (this.checkpoints.length > 0 && this.checkpoints[0].mark <= xmin) {
      const { maxId } = this.checkpoints.shift()!;
      settled = settled === null ? maxId : max(settled, maxId);
    }
    if (settled !== null && (this.horizon === null || settled > this.horizon)) {
      this.horizon = settled;
      this.pendingRetry = 0;
    }

    const oldest = this.checkpoints[0];
    if (oldest && !oldest.warned && Date.now() - oldest.since > SLOW_HORIZON_WARN_MS) {
      oldest.warned = true;
      this.log.warn(
        { oldestRunningXid: xmin.toString() },
        'event bus: events after a gap have waited over 30 s for a long-running transaction to end',
      );
    }
    return this.position !== null && this.horizon !== null && this.horizon > this.position;
  }

  /**
   * Offers the rows after `position` to live subscribers, as far as they are final; returns
   * the highest id it saw but could not offer yet, or null.
   */
  private async readLive(): Promise<bigint | null> {
    const live = [...this.subscribers].filter((sub) => {
      if (!sub.live && sub.cursor !== null && sub.cursor >= this.position!) sub.live = true;
      return sub.live;
    });
    const topics = [...new Set(live.flatMap((sub) => [...sub.topics]))];
    let waiting: bigint | null = null;
    for (;;) {
      const { rows } = await this.pool.query<EventRow>(LIVE_SQL, [this.position!.toString(), topics]);
      for (const row of rows) {
        const id = BigInt(row.id);
        if (!(id <= this.horizon! || id === this.position! + 1n)) {
          waiting = BigInt(rows.at(-1)!.id);
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
      if (waiting !== null || rows.length < BATCH || this.closed) break;
    }
    // Every final id up to the horizon was visible to this read, so it has been offered.
    if (this.horizon! > this.position!) this.position = this.horizon;
    return waiting;
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

/**
 * A subscription's stream: the bus's events of `options`, each turned into what the client
 * receives by `map` (null skips the event), ended upstream when the client leaves. `map` gets the
 * stream's signal, aborted then, for work that waits (a read retried while the database is away).
 */
export function mapEvents<V>(
  events: Pick<EventBus, 'subscribe'>,
  options: Omit<SubscribeOptions, 'signal'>,
  map: (event: BusEvent, signal: AbortSignal) => V | null | Promise<V | null>,
): AsyncIterableIterator<V> {
  const abort = new AbortController();
  const source = events.subscribe({ ...options, signal: abort.signal });
  const iterator: AsyncIterableIterator<V> = {
    async next() {
      for (;;) {
        const next = await source.next();
        if (next.done) return { done: true, value: undefined };
        const value = await map(next.value, abort.signal);
        if (value !== null) return { done: false, value };
      }
    },
    async return() {
      abort.abort();
      await source.return?.();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
