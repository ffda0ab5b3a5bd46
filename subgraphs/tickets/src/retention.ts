/**
 * Erasing reporters' personal data (docs/personal-data.md, docs/tickets.md "Personal data"):
 * the one write path every erasure takes (`eraseReporterData`: the retention worker, a
 * reporter's own request, an operator's on a written request), and the `retention` worker.
 *
 * Erasing a ticket's reporter data, in the caller's transaction:
 *   1. the ticket's `reporter_sub`, `reporter_name`, `reporter_email`, `reporter_phone` are set to
 *      null and `reporter_erased_at` to now (the ticket stays: category, status, location,
 *      description, dates, history). Rows are locked and re-checked, so an erasure racing
 *      another (or the worker) erases each ticket once: the second finds nothing left, 0.
 *   2. the reporter's own account id leaves the history: his entries on the ticket (its
 *      creation, a reopening) and the DUPLICATE_ATTACHED entry his duplicate left on its
 *      original get a null actor; and the same in the GRC outbox's payloads, whose `reporter`
 *      part is set to null in every row of the ticket (delivered or not).
 *   3. its photos are deleted (`deletePhotosOfTickets`).
 *   4. a REPORTER_ERASED change is recorded per ticket (`recordTicketChanges`, recordTicketChange's
 *      batch form, in three statements for the lot: history, bus event,
 *      and a GRC row telling the collectivity's system to erase its copy), and one
 *      `personal_data_erasures` row for the lot (reason, ticket ids, photos, who asked).
 *
 * The worker erases the reporter data and photos of tickets closed or rejected more than
 * TICKETS_PERSONAL_DATA_RETENTION_MONTHS ago (a duplicate with its original), in transactions of
 * at most RETENTION_BATCH tickets that skip rows another transaction holds (SKIP LOCKED), so a
 * concurrent report or change never waits for more than one small batch; and deletes uploads no
 * report took within a day (`deleteUnclaimedPhotos`). It runs at start and every
 * TICKETS_RETENTION_INTERVAL_MS; a run is idempotent (what is erased is no longer selected) and
 * logs what it did. Several instances may run it at once: each batch takes rows the others do not.
 */
import type pg from 'pg';
import type { Worker, WorkerStatus } from '@connecte/shared/workers';
import { recordTicketChanges } from './changes.js';
import { deletePhotosOfTickets, deleteUnclaimedPhotos, UNCLAIMED_PHOTO_TTL_MS } from './photo-store.js';
import type { TicketResources } from './resources.js';
import { transitionTicket } from './ticket-lifecycle.js';
import { SYSTEM_ACTOR, TICKET_COLUMNS, type Actor, type TicketRow } from './types.js';

/** Tickets per retention transaction (with their duplicates): small, so that no concurrent writer waits long. */
export const RETENTION_BATCH = 200;

export type ErasureReason = 'RETENTION' | 'REPORTER_REQUEST' | 'OPERATOR_REQUEST';

export interface ErasureOptions {
  reason: ErasureReason;
  /** Who the REPORTER_ERASED history entries name: the system, or the operator acting on a written request. */
  actor: Actor;
  /** The history note (shown to everyone who sees the ticket: no personal data in it). */
  note: string;
  /** `personal_data_erasures.requested_by`: the operator; null for the worker and for a reporter's own request. */
  requestedBy: string | null;
  /** The written request's reference (OPERATOR_REQUEST only). */
  requestReference: string | null;
  /** Publish the REPORTER_ERASED events without NOTIFY (the retention run: see `publishEvents`). */
  quiet?: boolean;
}

export interface Erasure {
  /** The tickets erased now, as they are after it (an already erased ticket is not among them). */
  tickets: TicketRow[];
  photosDeleted: number;
}

/** The notes of the REPORTER_ERASED entries, by reason. */
export const ERASURE_NOTES: Record<ErasureReason, string> = {
  RETENTION: 'Reporter’s personal data erased: the retention period after closing has elapsed',
  REPORTER_REQUEST: 'Reporter’s personal data erased at the reporter’s request',
  OPERATOR_REQUEST: 'Reporter’s personal data erased on a written request',
};

/**
 * Erases the reporter data of `ticketIds` not yet erased (see the header), in the caller's
 * transaction; the caller commits. Tickets another transaction holds are waited for (a change
 * in flight), then re-checked.
 */
export async function eraseReporterData(client: pg.ClientBase, resources: TicketResources, ticketIds: readonly string[], options: ErasureOptions): Promise<Erasure> {
  if (ticketIds.length === 0) return { tickets: [], photosDeleted: 0 };
  const { rows } = await client.query<TicketRow & { erasedSub: string | null }>(
    `WITH target AS (
       SELECT id, reporter_sub FROM tickets WHERE id = ANY($1::bigint[]) AND reporter_erased_at IS NULL ORDER BY id FOR NO KEY UPDATE
     )
     UPDATE tickets AS t
     SET reporter_sub = NULL, reporter_name = NULL, reporter_email = NULL, reporter_phone = NULL,
         reporter_erased_at = now(), updated_at = now(), version = t.version + 1
     FROM target WHERE t.id = target.id
     RETURNING ${TICKET_COLUMNS}, target.reporter_sub AS "erasedSub"`,
    [[...new Set(ticketIds)]],
  );
  if (rows.length === 0) return { tickets: [], photosDeleted: 0 };
  rows.sort((a, b) => Number(a.id) - Number(b.id));
  const ids = rows.map((row) => row.id);

  // The reporter's account id where he acted: on his ticket (any entry), on the original his
  // duplicate was attached to (that entry only).
  const pairs = rows.filter((row) => row.erasedSub !== null).flatMap((row) => [
    { ticketId: row.id, sub: row.erasedSub!, action: null as string | null },
    ...(row.duplicateOf ? [{ ticketId: row.duplicateOf, sub: row.erasedSub!, action: 'DUPLICATE_ATTACHED' }] : []),
  ]);
  if (pairs.length > 0) {
    const params = [pairs.map((p) => p.ticketId), pairs.map((p) => p.sub), pairs.map((p) => p.action)];
    await client.query(
      `UPDATE ticket_history AS h SET actor_sub = NULL
       FROM unnest($1::bigint[], $2::text[], $3::text[]) AS p(ticket_id, sub, action)
       WHERE h.ticket_id = p.ticket_id AND h.actor_sub = p.sub AND (p.action IS NULL OR h.action = p.action)`,
      params,
    );
    await client.query(
      `UPDATE ticket_outbox AS o SET payload = jsonb_set(o.payload, '{actor}', 'null'::jsonb)
       FROM unnest($1::bigint[], $2::text[], $3::text[]) AS p(ticket_id, sub, action)
       WHERE o.ticket_id = p.ticket_id AND o.payload->>'actor' = p.sub AND (p.action IS NULL OR o.payload->>'action' = p.action)`,
      params,
    );
  }
  await client.query(
    `UPDATE ticket_outbox SET payload = jsonb_set(payload, '{ticket,reporter}', 'null'::jsonb)
     WHERE ticket_id = ANY($1::bigint[]) AND jsonb_typeof(payload #> '{ticket,reporter}') = 'object'`,
    [ids],
  );
  const photosDeleted = await deletePhotosOfTickets(client, ids);

  const tickets: TicketRow[] = rows.map(({ erasedSub: _, ...ticket }) => ticket);
  await recordTicketChanges(
    client,
    tickets.map((ticket) => ({ ticket, action: 'REPORTER_ERASED', fromStatus: null, toStatus: null, actor: options.actor, note: options.note })),
    { exportToGrc: resources.exportToGrc, notify: !options.quiet },
  );
  await client.query(
    `INSERT INTO personal_data_erasures (reason, requested_by, ticket_ids, photos_deleted, request_reference) VALUES ($1, $2, $3::bigint[], $4, $5)`,
    [options.reason, options.requestedBy, ids, photosDeleted, options.requestReference],
  );
  return { tickets, photosDeleted };
}

/**
 * `now` minus `months` calendar months, in UTC, the day clamped to the target month's last
 * (31 March − 1 month = 28 or 29 February), as PostgreSQL's `timestamptz - interval` does in UTC.
 */
export function retentionCutoff(now: Date, months: number): Date {
  const year = now.getUTCFullYear();
  const month = now.getUTCMonth() - months;
  const lastDay = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
  return new Date(
    Date.UTC(year, month, Math.min(now.getUTCDate(), lastDay), now.getUTCHours(), now.getUTCMinutes(), now.getUTCSeconds(), now.getUTCMilliseconds()),
  );
}

export interface RetentionOptions {
  /** The instant the retention period is counted back from (tests); now by default. */
  now?: Date;
  /** Tickets per transaction; RETENTION_BATCH by default. */
  batchSize?: number;
  /** Checked between transactions: true stops the run there (shutdown). */
  shouldStop?: () => boolean;
}

export interface RetentionRun {
  /** RESOLVED tickets not reopened within TICKETS_AUTO_CLOSE_DAYS, closed by this run. */
  autoClosed: number;
  /** Tickets closed or rejected before this instant had their reporter data erased. */
  cutoff: Date;
  /** Tickets erased (originals and duplicates). */
  tickets: number;
  /** Photos of those tickets deleted. */
  photos: number;
  /** Uploads no report took, deleted. */
  unclaimedPhotos: number;
  /** Transactions that erased something. */
  batches: number;
  /** False when `shouldStop` ended it before everything due was erased. */
  complete: boolean;
  ms: number;
}

const FINAL = ['CLOSED', 'REJECTED'];

/** The history note of a ticket the retention worker closes. */
export const AUTO_CLOSE_NOTE = (days: number) => `Closed automatically: resolved more than ${days} days ago and not reopened`;

/** One retention pass (see the header): every due ticket, batch by batch, then the unclaimed uploads. */
export async function runRetention(resources: TicketResources, options: RetentionOptions = {}): Promise<RetentionRun> {
  const started = performance.now();
  const now = options.now ?? new Date();
  const cutoff = retentionCutoff(now, resources.config.TICKETS_PERSONAL_DATA_RETENTION_MONTHS);
  const batchSize = options.batchSize ?? RETENTION_BATCH;
  const stop = options.shouldStop ?? (() => false);
  const run: RetentionRun = { autoClosed: 0, cutoff, tickets: 0, photos: 0, unclaimedPhotos: 0, batches: 0, complete: true, ms: 0 };

  // RESOLVED tickets nobody reopened close (by the system), so that their retention starts: a
  // resolved ticket would otherwise keep its reporter's data for ever. Before the erasures, which
  // count from `closed_at` (now, for these): none of them is erased in this run.
  const resolvedBefore = new Date(now.getTime() - resources.config.TICKETS_AUTO_CLOSE_DAYS * 86_400_000);
  for (;;) {
    if (stop()) return finish(resources, run, started, false);
    const closed = await resources.inTransaction(async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `SELECT id::text FROM tickets WHERE status = 'RESOLVED' AND resolved_at < $1 ORDER BY id LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED`,
        [resolvedBefore, batchSize],
      );
      for (const { id } of rows) {
        await transitionTicket(client, resources, { ticketId: id, to: 'CLOSED', actor: SYSTEM_ACTOR, note: AUTO_CLOSE_NOTE(resources.config.TICKETS_AUTO_CLOSE_DAYS) });
      }
      return rows.length;
    });
    run.autoClosed += closed;
    if (closed === 0) break;
  }

  // Hundreds of events per transaction, published without NOTIFY: a notifying commit holds the
  // notification queue's lock, and every report's commit would wait behind the run's.
  const erasure: ErasureOptions = { reason: 'RETENTION', actor: SYSTEM_ACTOR, note: ERASURE_NOTES.RETENTION, requestedBy: null, requestReference: null, quiet: true };

  const batch = (select: (client: pg.PoolClient) => Promise<string[]>) =>
    resources.inTransaction(async (client) => {
      const ids = await select(client);
      const done = await eraseReporterData(client, resources, ids, erasure);
      return { selected: ids.length, erased: done.tickets.length, photos: done.photosDeleted };
    });
  const account = (outcome: { erased: number; photos: number }) => {
    run.tickets += outcome.erased;
    run.photos += outcome.photos;
    if (outcome.erased > 0) run.batches++;
  };

  // Originals closed or rejected before the cutoff (the partial index of closed, unerased
  // tickets), oldest first, with their duplicates.
  for (;;) {
    if (stop()) return finish(resources, run, started, false);
    const outcome = await batch(async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `SELECT id::text FROM tickets
         WHERE closed_at IS NOT NULL AND reporter_erased_at IS NULL AND closed_at < $1 AND status = ANY($2::text[])
         ORDER BY tickets.closed_at, tickets.id LIMIT $3 FOR NO KEY UPDATE SKIP LOCKED`,
        [cutoff, FINAL, batchSize],
      );
      if (rows.length === 0) return [];
      const duplicates = await client.query<{ id: string }>(
        `SELECT id::text FROM tickets WHERE duplicate_of = ANY($1::bigint[]) AND reporter_erased_at IS NULL FOR NO KEY UPDATE SKIP LOCKED`,
        [rows.map((row) => row.id)],
      );
      return [...rows, ...duplicates.rows].map((row) => row.id);
    });
    account(outcome);
    if (outcome.selected === 0) break;
  }
  // Duplicates left behind (another transaction held them when their original was erased).
  for (;;) {
    if (stop()) return finish(resources, run, started, false);
    const outcome = await batch(async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `SELECT d.id::text FROM tickets d JOIN tickets o ON o.id = d.duplicate_of
         WHERE d.duplicate_of IS NOT NULL AND d.reporter_erased_at IS NULL
           AND o.closed_at IS NOT NULL AND o.closed_at < $1 AND o.status = ANY($2::text[])
         ORDER BY d.id LIMIT $3 FOR NO KEY UPDATE OF d SKIP LOCKED`,
        [cutoff, FINAL, batchSize],
      );
      return rows.map((row) => row.id);
    });
    account(outcome);
    if (outcome.selected === 0) break;
  }
  if (stop()) return finish(resources, run, started, false);
  run.unclaimedPhotos = await deleteUnclaimedPhotos(resources.db.pool, new Date(now.getTime() - UNCLAIMED_PHOTO_TTL_MS));
  return finish(resources, run, started, true);
}

function finish(resources: TicketResources, run: RetentionRun, started: number, complete: boolean): RetentionRun {
  run.complete = complete;
  run.ms = Math.round(performance.now() - started);
  const line = {
    autoClosed: run.autoClosed,
    cutoff: run.cutoff.toISOString(),
    retentionMonths: resources.config.TICKETS_PERSONAL_DATA_RETENTION_MONTHS,
    tickets: run.tickets,
    photos: run.photos,
    unclaimedPhotos: run.unclaimedPhotos,
    batches: run.batches,
    complete,
    ms: run.ms,
  };
  if (run.tickets > 0 || run.unclaimedPhotos > 0 || run.autoClosed > 0 || !complete) resources.log.info(line, 'personal data retention: reporters’ data erased');
  else resources.log.debug(line, 'personal data retention: nothing due');
  return run;
}

/**
 * The `retention` worker: a run at start (in the background: the service takes requests
 * meanwhile) and every TICKETS_RETENTION_INTERVAL_MS (0: only at start), never two at once in a
 * process. A failed run is logged and retried at the next tick; stopping ends the run between
 * two transactions.
 */
export function retentionWorker(resources: TicketResources): Worker {
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopped = false;
  let state = 'starting';

  const pass = () =>
    (running ??= (async () => {
      try {
        const run = await runRetention(resources, { shouldStop: () => stopped });
        state = `ran at ${new Date().toISOString()}: ${run.autoClosed} resolved tickets closed, ${run.tickets} tickets erased, ${run.photos + run.unclaimedPhotos} photos deleted${run.complete ? '' : ' (stopped)'}`;
      } catch (error) {
        state = `last run failed: ${(error as Error).message}`;
        if (!stopped) resources.log.warn({ err: (error as Error).message }, 'personal data retention failed; retrying at the next run');
      } finally {
        running = null;
      }
    })());

  return {
    name: 'retention',
    async start() {
      stopped = false;
      void pass();
      const interval = resources.config.TICKETS_RETENTION_INTERVAL_MS;
      if (interval > 0) {
        timer = setInterval(() => void pass(), interval);
        timer.unref();
      }
    },
    async stop() {
      stopped = true;
      if (timer) clearInterval(timer);
      timer = null;
      await running;
    },
    status(): WorkerStatus {
      return { ready: true, state };
    },
  };
}
