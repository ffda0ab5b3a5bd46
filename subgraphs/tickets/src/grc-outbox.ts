/**
 * The `grc-outbox` worker: delivers the rows of `ticket_outbox` (one per ticket change, written by
 * `recordTicketChange` in the change's transaction) to GRC_WEBHOOK_URL, signed (grc-signature.ts).
 * docs/tickets.md, "Export to the GRC system (webhook)", is the receiver's side of this.
 *
 * Order per ticket. A row is claimable only when no earlier row (smaller id) of its ticket is still
 * undelivered: the head of each ticket's queue. `recordTicketChange` locks the ticket's row before
 * it draws the history and outbox ids, so the changes of one ticket draw their ids in the order
 * they commit, and a row never becomes visible before an earlier row of its ticket. Different
 * tickets are delivered in parallel, at most `concurrency` at a time per instance.
 *
 * Several instances. A claim is one short transaction: `FOR UPDATE SKIP LOCKED` on the due heads,
 * then a lease (`next_attempt_at` moved past the request's timeout) and `attempts + 1`, committed
 * before the HTTP request, so no transaction (and no xid, which would hold back the event bus's
 * horizon) stays open while a receiver is slow. Another instance sees a leased head as not due and
 * its later rows as blocked behind it. The outcome is written only if the row is still this
 * claim's (`attempts` unchanged): a claim that outlived its lease cannot overwrite a newer one.
 *
 * Delivery. 2xx = delivered (`delivered_at`). Anything else (another status, a redirect, a
 * timeout, a refused or dropped connection) = failed: `last_error`, and the next attempt after an
 * exponential backoff with jitter (1 s doubling to 5 min). Nothing is ever dropped: a change waits
 * until the receiver takes it. Delivery is at least once (an answer lost after the receiver acted
 * means a second delivery), so every body carries `deliveryId` (also `X-Connecte-Delivery`), the
 * same on every attempt: a receiver that ignores ids it has already processed gets each change
 * exactly once, in order per ticket.
 *
 * Waking. On each `tickets.changed` event of the bus (committed with the outbox row), at the next
 * retry due, and every `pollIntervalMs` as a safety net (rows of other instances' leases).
 * Delivered rows hold personal data (the reporter's contact): they are deleted 7 days after
 * delivery, at start and every hour, even when the export is off.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Worker, WorkerStatus } from '@connecte/shared/workers';
import { grcHeaders } from './grc-signature.js';
import type { TicketResources } from './resources.js';
import { TICKET_TOPIC } from './types.js';

export interface GrcOutboxOptions {
  /** Deliveries in flight at once, per instance (different tickets). Default 4. */
  concurrency?: number;
  /** First retry delay; doubled after each failure of a row. Default 1 s. */
  retryBaseMs?: number;
  /** Cap of the retry delay. Default 5 min. */
  retryMaxMs?: number;
  /** The safety-net poll. Default 5 s. */
  pollIntervalMs?: number;
  /** How long a claim keeps a row from other instances. Default GRC_WEBHOOK_TIMEOUT_MS + 5 s. */
  leaseMs?: number;
  /** Delivered rows are deleted this long after delivery. Default 7 days. */
  keepDeliveredMs?: number;
  /** How often delivered rows are purged. Default 1 hour. */
  purgeIntervalMs?: number;
  /** How long `stop()` lets deliveries in flight finish before aborting them. Default 2 s. */
  stopGraceMs?: number;
  /** In [0, 1): the jitter's source. */
  random?: () => number;
}

export const GRC_RETRY_BASE_MS = 1_000;
export const GRC_RETRY_MAX_MS = 300_000;
export const GRC_KEEP_DELIVERED_MS = 7 * 86_400_000;
const PURGE_BATCH = 1_000;
const ERROR_MAX_CHARS = 500;
const DB_RETRY_MS = 1_000;

/**
 * The wait after a row's `attempts`-th failure: base·2^(attempts−1), capped, with "equal jitter"
 * (half of it fixed, half random) so that many rows failing together do not retry in lockstep.
 */
export function retryDelayMs(attempts: number, baseMs = GRC_RETRY_BASE_MS, maxMs = GRC_RETRY_MAX_MS, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30);
  const delay = Math.min(maxMs, baseMs * 2 ** exponent);
  return Math.round(delay / 2 + random() * (delay / 2));
}

/** The worker's counters, once per registry. */
export class GrcMetrics {
  readonly deliveries: Counter<'outcome'>;
  readonly duration: Histogram<'outcome'>;
  readonly pending: Gauge;
  readonly purged: Counter;

  constructor(registry: Registry) {
    this.deliveries = new Counter({
      name: 'tickets_grc_deliveries_total',
      help: 'GRC webhook delivery attempts, by outcome (delivered: a 2xx answer; failed: anything else, retried later)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'tickets_grc_delivery_seconds',
      help: 'Duration of one GRC webhook delivery attempt, by outcome',
      labelNames: ['outcome'] as const,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    this.pending = new Gauge({
      name: 'tickets_grc_outbox_pending',
      help: 'Ticket changes not yet delivered to the GRC webhook (all instances), as of the last look',
      registers: [registry],
    });
    this.purged = new Counter({
      name: 'tickets_grc_outbox_purged_total',
      help: 'Delivered GRC outbox rows deleted once older than the retention of delivered rows (7 days)',
      registers: [registry],
    });
  }
}

const metricsByRegistry = new WeakMap<Registry, GrcMetrics>();

export function grcMetricsFor(registry: Registry): GrcMetrics {
  let metrics = metricsByRegistry.get(registry);
  if (!metrics) metricsByRegistry.set(registry, (metrics = new GrcMetrics(registry)));
  return metrics;
}

/** One claimed row. `attempts` (this claim's number) identifies the claim. */
interface Claimed {
  id: string;
  ticketId: string;
  attempts: number;
  payload: Record<string, unknown>;
}

// The heads of the tickets' queues that are due, oldest due first, skipping rows another
// instance is claiming right now; leased for the request and counted as an attempt.
const CLAIM_SQL = `
WITH due AS (
  SELECT o.id FROM ticket_outbox o
  WHERE o.delivered_at IS NULL AND o.next_attempt_at <= now()
    AND NOT EXISTS (SELECT 1 FROM ticket_outbox e WHERE e.ticket_id = o.ticket_id AND e.delivered_at IS NULL AND e.id < o.id)
  ORDER BY o.next_attempt_at, o.id
  LIMIT $1
  FOR UPDATE OF o SKIP LOCKED
)
UPDATE ticket_outbox o SET attempts = o.attempts + 1, next_attempt_at = now() + $2 * interval '1 millisecond'
FROM due WHERE o.id = due.id
RETURNING o.id::text AS id, o.ticket_id::text AS "ticketId", o.attempts, o.payload`;

const DELIVERED_SQL = `UPDATE ticket_outbox SET delivered_at = now() WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL`;
const FAILED_SQL = `UPDATE ticket_outbox SET next_attempt_at = now() + $3 * interval '1 millisecond', last_error = $4
  WHERE id = $1 AND attempts = $2 AND delivered_at IS NULL`;

// What is pending, how old the oldest is, and in how long the next head is due (negative: now).
const LOOK_SQL = `
SELECT count(*)::int AS pending,
       (extract(epoch FROM now() - min(created_at)) * 1000)::float8 AS "oldestMs",
       (SELECT (extract(epoch FROM min(o.next_attempt_at) - now()) * 1000)::float8 FROM ticket_outbox o
        WHERE o.delivered_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM ticket_outbox e WHERE e.ticket_id = o.ticket_id AND e.delivered_at IS NULL AND e.id < o.id)) AS "nextDueMs"
FROM ticket_outbox WHERE delivered_at IS NULL`;

const PURGE_SQL = `
DELETE FROM ticket_outbox WHERE id IN (
  SELECT id FROM ticket_outbox WHERE delivered_at < now() - $1 * interval '1 millisecond' ORDER BY delivered_at LIMIT ${PURGE_BATCH})`;

/** Deletes the rows delivered more than `keepMs` ago, in batches; returns how many. */
export async function purgeDeliveredGrcRows(r: Pick<TicketResources, 'db'>, keepMs = GRC_KEEP_DELIVERED_MS): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await r.db.pool.query(PURGE_SQL, [keepMs]);
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < PURGE_BATCH) return total;
  }
}

/** A failure in the receiver's or the network's words, one line, bounded. */
function describeFailure(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms (GRC_WEBHOOK_TIMEOUT_MS)`;
  const cause = e?.cause;
  let detail = cause?.message ?? '';
  if (cause?.code && !detail.includes(cause.code)) detail = detail ? `${cause.code}: ${detail}` : cause.code;
  return `${e?.message ?? String(error)}${detail ? ` (${detail})` : ''}`;
}

const oneLine = (text: string) => text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, ERROR_MAX_CHARS);

/** Up to ~200 characters of an error answer's body, then the rest is discarded. */
async function bodyExcerpt(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < 200) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      length += value.length;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return oneLine(Buffer.concat(chunks).toString('utf8').slice(0, 200));
}

export function grcOutboxWorker(resources: TicketResources, options: GrcOutboxOptions = {}): Worker {
  const r = resources;
  const url = r.config.GRC_WEBHOOK_URL;
  const secret = r.config.GRC_WEBHOOK_SECRET;
  const timeoutMs = r.config.GRC_WEBHOOK_TIMEOUT_MS;
  const concurrency = options.concurrency ?? 4;
  const retryBaseMs = options.retryBaseMs ?? GRC_RETRY_BASE_MS;
  const retryMaxMs = options.retryMaxMs ?? GRC_RETRY_MAX_MS;
  const pollIntervalMs = options.pollIntervalMs ?? 5_000;
  const leaseMs = options.leaseMs ?? timeoutMs + 5_000;
  const keepDeliveredMs = options.keepDeliveredMs ?? GRC_KEEP_DELIVERED_MS;
  const purgeIntervalMs = options.purgeIntervalMs ?? 3_600_000;
  const stopGraceMs = options.stopGraceMs ?? 2_000;
  const random = options.random ?? Math.random;
  const metrics = r.metrics ? grcMetricsFor(r.metrics.registry) : null;
  const enabled = url !== undefined && secret !== undefined;

  let running = false;
  let subscription: AbortController | null = null;
  let following: Promise<void> | null = null;
  let wakeTimer: NodeJS.Timeout | null = null;
  let purgeTimer: NodeJS.Timeout | null = null;
  let purging: Promise<void> | null = null;
  let filling: Promise<void> | null = null;
  let wanted = false;
  const inflight = new Map<string, { abort: AbortController; done: Promise<void> }>();
  let pending = 0;
  let oldestMs: number | null = null;
  let lastFailure: string | null = null;
  let databaseError: string | null = null;

  const wakeIn = (ms: number) => {
    if (!running) return;
    if (wakeTimer) clearTimeout(wakeTimer);
    wakeTimer = setTimeout(() => {
      wakeTimer = null;
      kick();
    }, Math.max(10, Math.min(ms, pollIntervalMs)));
    wakeTimer.unref();
  };

  function kick(): void {
    wanted = true;
    if (!running || filling) return;
    filling = fill().finally(() => {
      filling = null;
      if (wanted && running) kick();
    });
  }

  /** Claims due heads while there are free slots, then sets the timer for the next one due. */
  async function fill(): Promise<void> {
    while (running && wanted) {
      wanted = false;
      const free = concurrency - inflight.size;
      if (free <= 0) return; // a delivery that ends kicks again
      let rows: Claimed[];
      try {
        rows = (await r.db.pool.query<Claimed>(CLAIM_SQL, [free, leaseMs])).rows;
        databaseError = null;
      } catch (error) {
        databaseError = (error as Error).message;
        r.log.warn({ err: databaseError }, `grc-outbox: claiming deliveries failed; retrying in ${DB_RETRY_MS} ms`);
        wakeIn(DB_RETRY_MS);
        return;
      }
      for (const row of rows) begin(row);
      if (rows.length === free) wanted = true;
    }
    if (!running) return;
    try {
      const { rows } = await r.db.pool.query<{ pending: number; oldestMs: number | null; nextDueMs: number | null }>(LOOK_SQL);
      pending = rows[0].pending;
      oldestMs = rows[0].oldestMs;
      metrics?.pending.set(pending);
      wakeIn(rows[0].nextDueMs ?? pollIntervalMs);
    } catch (error) {
      databaseError = (error as Error).message;
      wakeIn(DB_RETRY_MS);
    }
  }

  function begin(row: Claimed): void {
    const abort = new AbortController();
    const done = deliver(row, abort.signal)
      .catch((error: Error) => r.log.error({ err: error.message, deliveryId: row.id }, 'grc-outbox: recording a delivery failed'))
      .finally(() => {
        inflight.delete(row.id);
        kick();
      });
    inflight.set(row.id, { abort, done });
  }

  async function deliver(row: Claimed, stopping: AbortSignal): Promise<void> {
    const body = JSON.stringify({ deliveryId: row.id, ...row.payload });
    const headers = { ...grcHeaders(secret!, row.id, body), 'user-agent': 'connecte-hub-grc-webhook/1', 'x-connecte-attempt': String(row.attempts) };
    const started = performance.now();
    let failure: string | null = null;
    try {
      const response = await fetch(url!, {
        method: 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.any([stopping, AbortSignal.timeout(timeoutMs)]),
      });
      if (response.status >= 200 && response.status < 300) {
        await response.body?.cancel().catch(() => {});
      } else {
        const excerpt = await bodyExcerpt(response).catch(() => '');
        const location = response.status >= 300 && response.status < 400 ? ' (redirects are not followed)' : '';
        failure = `HTTP ${response.status}${location}${excerpt ? `: ${excerpt}` : ''}`;
      }
    } catch (error) {
      failure = stopping.aborted ? 'interrupted: the service stopped during the request' : oneLine(describeFailure(error, timeoutMs));
    }
    const outcome = failure === null ? 'delivered' : 'failed';
    metrics?.deliveries.inc({ outcome });
    metrics?.duration.observe({ outcome }, (performance.now() - started) / 1000);
    if (failure === null) {
      await r.db.pool.query(DELIVERED_SQL, [row.id, row.attempts]);
      return;
    }
    lastFailure = failure;
    // Interrupted by a stop: due again at once (for the next instance or the next start).
    const delay = stopping.aborted ? 0 : retryDelayMs(row.attempts, retryBaseMs, retryMaxMs, random);
    r.log.warn({ deliveryId: row.id, ticketId: row.ticketId, attempts: row.attempts, retryInMs: delay, err: failure }, 'grc-outbox: delivery failed');
    await r.db.pool.query(FAILED_SQL, [row.id, row.attempts, delay, failure]);
  }

  async function follow(signal: AbortSignal): Promise<void> {
    let delay = 100;
    while (!signal.aborted) {
      try {
        for await (const _event of r.events.subscribe({ topics: [TICKET_TOPIC], signal })) {
          delay = 100;
          kick();
        }
      } catch (error) {
        if (signal.aborted) return;
        r.log.warn({ err: (error as Error).message }, `grc-outbox: following ${TICKET_TOPIC} failed; polling meanwhile`);
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
        delay = Math.min(delay * 2, pollIntervalMs);
      }
    }
  }

  const purge = () =>
    (purging ??= (async () => {
      try {
        const deleted = await purgeDeliveredGrcRows(r, keepDeliveredMs);
        if (deleted > 0) {
          metrics?.purged.inc(deleted);
          r.log.info({ deleted }, 'grc-outbox: deleted delivered rows past their retention');
        }
      } catch (error) {
        r.log.warn({ err: (error as Error).message }, 'grc-outbox: purging delivered rows failed; retrying at the next pass');
      } finally {
        purging = null;
      }
    })());

  return {
    name: 'grc-outbox',
    async start() {
      // A missing table (or database) refuses the start, as the durable consumers do.
      const { rows } = await r.db.pool.query<{ pending: number }>('SELECT count(*)::int AS pending FROM ticket_outbox WHERE delivered_at IS NULL');
      pending = rows[0].pending;
      metrics?.pending.set(pending);
      void purge();
      purgeTimer = setInterval(() => void purge(), purgeIntervalMs);
      purgeTimer.unref();
      if (!enabled) return;
      running = true;
      subscription = new AbortController();
      following = follow(subscription.signal);
      kick();
    },
    async stop() {
      running = false;
      subscription?.abort();
      if (wakeTimer) clearTimeout(wakeTimer);
      if (purgeTimer) clearInterval(purgeTimer);
      wakeTimer = purgeTimer = null;
      await following;
      await filling;
      const inFlight = [...inflight.values()];
      if (inFlight.length > 0) {
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise((resolve) => (timer = setTimeout(resolve, stopGraceMs)));
        await Promise.race([Promise.all(inFlight.map((d) => d.done)), grace]);
        clearTimeout(timer);
        for (const delivery of inflight.values()) delivery.abort.abort();
        await Promise.all(inFlight.map((d) => d.done));
      }
      await purging;
    },
    status(): WorkerStatus {
      if (!enabled) {
        const kept = pending > 0 ? ` (${pending} undelivered kept until it is)` : '';
        return { ready: true, state: `idle: GRC_WEBHOOK_URL not set${kept}` };
      }
      if (!running) return { ready: false, state: 'stopped' };
      const parts = [`${pending} pending`];
      if (pending > 0 && oldestMs !== null) parts[0] += `, oldest ${Math.round(oldestMs / 1000)} s`;
      if (inflight.size > 0) parts.push(`${inflight.size} in flight`);
      if (lastFailure && pending > 0) parts.push(`last failure: ${lastFailure}`);
      if (databaseError) parts.push(`database: ${databaseError}`);
      // The receiver being down does not stop this service from serving: it stays ready, and says so.
      return { ready: true, state: parts.join('; ') };
    },
  };
}
