/**
 * A ticket's move along its lifecycle (types.ts `TRANSITIONS`), in the caller's transaction: the
 * row locked, the move checked, the dates it sets (acknowledged, resolved, closed), the version
 * bumped, and the change recorded (history, bus event, GRC outbox) through `recordTicketChange`.
 * TicketService calls it for `transitionTicket` (after checking who may); interventions call it
 * in their own transaction when a work order is created, started or closed out.
 *
 * Also the free-text rules every ticket text follows (descriptions, notes, names): trimmed, no
 * NUL, no control character but tab and line breaks (none at all in a one-line text), bounded.
 */
import type pg from 'pg';
import { badInput, notFound, userError } from '@connecte/shared/errors';
import { recordTicketChange } from './changes.js';
import type { TicketResources } from './resources.js';
import { TICKET_COLUMNS, TRANSITIONS, TICKET_STATUSES, type Actor, type TicketRow, type TicketStatus } from './types.js';

/** Ticket ids are bigserials: anything else names no ticket. */
export const TICKET_ID = /^[1-9]\d{0,17}$/;

export const MAX_NOTE = 4_000;

/** C0 controls but tab, line feed and carriage return, and DEL: refused in multi-line texts. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0001-\u0008\u000b\u000c\u000e-\u001f\u007f]/;
/** Every C0 control and DEL: refused in one-line texts (names). */
// eslint-disable-next-line no-control-regex
const CONTROL_ONE_LINE = /[\u0001-\u001f\u007f]/;

/**
 * Why a free text is refused, or null when it is acceptable (after trimming): NUL, control
 * characters, empty when required, longer than `max` characters.
 */
export function freeTextProblem(value: string, max: number, options: { oneLine?: boolean; required?: boolean } = {}): string | null {
  if (value.includes('\u0000')) return 'must not contain NUL characters (U+0000)';
  if ((options.oneLine ? CONTROL_ONE_LINE : CONTROL).test(value)) {
    return options.oneLine ? 'must not contain control characters (line breaks, tabs...)' : 'must not contain control characters other than tabs and line breaks';
  }
  const trimmed = value.trim();
  if (options.required && trimmed.length === 0) return 'must not be empty';
  if (trimmed.length > max) return `must be at most ${max.toLocaleString('en')} characters (got ${trimmed.length.toLocaleString('en')})`;
  return null;
}

/** A note (history): trimmed, at most 4,000 characters, no NUL or control character; empty is none. */
export function checkNote(note: string | null | undefined, field = 'note', required = false): string | null {
  if (note === null || note === undefined) {
    if (required) throw badInput(field, 'is required');
    return null;
  }
  const problem = freeTextProblem(note, MAX_NOTE, { required });
  if (problem) throw badInput(field, problem);
  return note.trim() || null;
}

export interface TransitionRequest {
  ticketId: string;
  to: TicketStatus;
  actor: Actor;
  note?: string | null;
  /** The version the caller read: a different current version is refused (`expectedVersion`). */
  expectedVersion?: number | null;
  /** Called with the locked row before anything changes (who may move it): throw to refuse. */
  authorize?: (current: TicketRow) => void;
}

/** Whether `from → to` is one of the lifecycle's moves. */
export const canMove = (from: TicketStatus, to: TicketStatus) => TRANSITIONS[from].includes(to);

/**
 * Moves a ticket to `to` in the caller's transaction (`client` has run BEGIN) and returns the row
 * as written. Refusals, before anything is written: NOT_FOUND `ticketId`; BAD_USER_INPUT `to`
 * (a move the lifecycle does not allow, naming from and to), `expectedVersion` (stale), `note`
 * (required to reject; bad text).
 */
export async function transitionTicket(client: pg.ClientBase, resources: TicketResources, request: TransitionRequest): Promise<TicketRow> {
  const { ticketId, to, actor } = request;
  if (!TICKET_ID.test(ticketId)) throw notFound(`no ticket with id ${JSON.stringify(ticketId)}`, 'ticketId');
  if (!(TICKET_STATUSES as readonly string[]).includes(to)) throw badInput('to', `is not a ticket status (known: ${TICKET_STATUSES.join(', ')})`);
  const note = checkNote(request.note, 'note', to === 'REJECTED');
  const { rows } = await client.query<TicketRow>(`SELECT ${TICKET_COLUMNS} FROM tickets t WHERE t.id = $1 FOR UPDATE`, [ticketId]);
  const current = rows[0];
  if (!current) throw notFound(`no ticket with id ${ticketId}`, 'ticketId');
  request.authorize?.(current);
  if (request.expectedVersion !== null && request.expectedVersion !== undefined && request.expectedVersion !== current.version) {
    throw badInput(
      'expectedVersion',
      `is stale: ticket ${ticketId} is at version ${current.version} (last changed at ${current.updatedAt.toISOString()}), not ${request.expectedVersion}; read it again`,
    );
  }
  if (!canMove(current.status, to)) {
    const allowed = TRANSITIONS[current.status];
    throw userError(
      'BAD_USER_INPUT',
      `to: ticket ${ticketId} cannot move from ${current.status} to ${to}; ` +
        (allowed.length ? `from ${current.status} it can move to ${allowed.join(', ')}` : `${current.status} is final`),
      'to',
    );
  }
  // The dates each status sets: acknowledged once it leaves NEW (a rejection is an answer too),
  // resolved when RESOLVED (cleared when reopened), closed when CLOSED or REJECTED.
  const { rows: updated } = await client.query<TicketRow>(
    `UPDATE tickets AS t SET status = $2,
       acknowledged_at = CASE WHEN t.acknowledged_at IS NULL THEN now() ELSE t.acknowledged_at END,
       resolved_at = CASE WHEN $2 = 'RESOLVED' THEN now() WHEN t.status = 'RESOLVED' AND $2 = 'IN_PROGRESS' THEN NULL ELSE t.resolved_at END,
       closed_at = CASE WHEN $2 IN ('CLOSED', 'REJECTED') THEN now() ELSE t.closed_at END,
       updated_at = now(), version = t.version + 1
     WHERE t.id = $1 RETURNING ${TICKET_COLUMNS}`,
    [ticketId, to],
  );
  const ticket = updated[0];
  await recordTicketChange(client, { ticket, action: 'TRANSITION', fromStatus: current.status, toStatus: to, actor, note }, { exportToGrc: resources.exportToGrc });
  resources.log.info({ ticketId, from: current.status, to, actor: actor.sub, version: ticket.version }, 'ticket moved');
  return ticket;
}

/** Adds a note to a ticket's history (no status change, no version bump) in the caller's transaction. */
export async function addNote(client: pg.ClientBase, resources: TicketResources, request: { ticketId: string; note: string; actor: Actor; authorize?: (current: TicketRow) => void }): Promise<TicketRow> {
  if (!TICKET_ID.test(request.ticketId)) throw notFound(`no ticket with id ${JSON.stringify(request.ticketId)}`, 'ticketId');
  const note = checkNote(request.note, 'note', true)!;
  const { rows } = await client.query<TicketRow>(`SELECT ${TICKET_COLUMNS} FROM tickets t WHERE t.id = $1 FOR UPDATE`, [request.ticketId]);
  const current = rows[0];
  if (!current) throw notFound(`no ticket with id ${request.ticketId}`, 'ticketId');
  request.authorize?.(current);
  const { rows: updated } = await client.query<TicketRow>(`UPDATE tickets AS t SET updated_at = now() WHERE t.id = $1 RETURNING ${TICKET_COLUMNS}`, [request.ticketId]);
  await recordTicketChange(client, { ticket: updated[0], action: 'NOTE', fromStatus: null, toStatus: null, actor: request.actor, note }, { exportToGrc: resources.exportToGrc });
  return updated[0];
}
