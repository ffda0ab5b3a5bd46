/**
 * The one write path of every ticket change: in the change's own transaction, after the ticket's
 * row is written, it appends
 *   1. the history entry (who, when, from → to, note),
 *   2. one `tickets.changed` bus event (subscriptions; no personal data in it: ids and statuses),
 *   3. one row of the GRC webhook's outbox (the `grc-outbox` worker delivers it, in order per
 *      ticket), when the hub exports to a GRC system at all (GRC_WEBHOOK_URL set).
 * So a change exists with all three or, rolled back, with none.
 * Interventions have their own history and `tickets.intervention` events (recordInterventionChange).
 */
import type pg from 'pg';
import { publishEvent, publishEvents } from '@connecte/shared/events';
import {
  INTERVENTION_TOPIC,
  TICKET_TOPIC,
  type Actor,
  type InterventionRow,
  type InterventionStatus,
  type TicketAction,
  type TicketRow,
  type TicketStatus,
} from './types.js';

/** What a `tickets.changed` event carries. */
export interface TicketChangedPayload {
  ticketId: string;
  historyId: string;
  action: TicketAction;
  fromStatus: TicketStatus | null;
  toStatus: TicketStatus | null;
  /** The ticket's status after the change. */
  status: TicketStatus;
  categoryCode: string;
  /** The original it is attached to, for a DUPLICATE (its reporter follows that one). */
  duplicateOf: string | null;
  at: string;
}

/** What the GRC system receives for each change (the webhook's JSON body; docs/tickets.md). */
export interface GrcChangePayload {
  /** The outbox row's id: the receiver's idempotency key (a retried delivery repeats it). */
  deliveryId?: string;
  ticketId: string;
  collectivityId: string;
  /** Per-ticket sequence: the history entry's id, increasing in the order the changes committed for that ticket. */
  historyId: string;
  action: TicketAction;
  fromStatus: TicketStatus | null;
  toStatus: TicketStatus | null;
  at: string;
  actor: string | null;
  note: string | null;
  ticket: {
    status: TicketStatus;
    category: string;
    service: string;
    description: string;
    location: { lon: number; lat: number };
    address: string | null;
    equipmentId: string | null;
    duplicateOf: string | null;
    createdAt: string;
    /** The reporter's identity and contact, for the collectivity's own citizen relations; null once erased. */
    reporter: { accountId: string | null; name: string | null; email: string | null; phone: string | null } | null;
  };
}

export interface TicketChange {
  /** The ticket as it is after the change (already written). */
  ticket: TicketRow;
  action: TicketAction;
  fromStatus: TicketStatus | null;
  toStatus: TicketStatus | null;
  actor: Actor;
  note?: string | null;
}

export interface RecordOptions {
  /** Whether to queue the change for the GRC webhook (the service knows: GRC_WEBHOOK_URL is set). */
  exportToGrc: boolean;
  /** False: the events go without NOTIFY (bulk maintenance: see `publishEvents`); subscribers get them at their next wake. */
  notify?: boolean;
}

/** Appends a ticket change's history entry, event and outbox row in the caller's transaction; returns the history id. */
export async function recordTicketChange(client: pg.ClientBase, change: TicketChange, options: RecordOptions): Promise<{ historyId: string; eventId: string }> {
  const [recorded] = await recordTicketChanges(client, [change], options);
  return recorded;
}

/** The `tickets.changed` event of a change (no personal data: ids and statuses). */
function changedPayload(change: TicketChange, historyId: string, at: Date): TicketChangedPayload {
  const { ticket, action, fromStatus, toStatus } = change;
  return {
    ticketId: ticket.id,
    historyId,
    action,
    fromStatus,
    toStatus,
    status: ticket.status,
    categoryCode: ticket.categoryCode,
    duplicateOf: ticket.duplicateOf,
    at: at.toISOString(),
  };
}

/** What the GRC system receives for a change. */
function grcPayload(change: TicketChange, historyId: string, at: Date): GrcChangePayload {
  const { ticket, action, fromStatus, toStatus, actor } = change;
  return {
    ticketId: ticket.id,
    collectivityId: ticket.collectivityId,
    historyId,
    action,
    fromStatus,
    toStatus,
    at: at.toISOString(),
    actor: actor.sub,
    note: change.note ?? null,
    ticket: {
      status: ticket.status,
      category: ticket.categoryCode,
      service: ticket.service,
      description: ticket.description,
      location: { lon: ticket.lon, lat: ticket.lat },
      address: ticket.address,
      equipmentId: ticket.equipmentId,
      duplicateOf: ticket.duplicateOf,
      createdAt: ticket.createdAt.toISOString(),
      reporter: ticket.reporterErasedAt
        ? null
        : { accountId: ticket.reporterSub, name: ticket.reporterName, email: ticket.reporterEmail, phone: ticket.reporterPhone },
    },
  };
}

/**
 * `recordTicketChange` for many changes at once, in three statements whatever their number (the
 * retention worker erases hundreds of tickets per transaction): history entries, events and
 * outbox rows are appended in the order of `changes`. Returns each change's ids, in that order.
 */
export async function recordTicketChanges(client: pg.ClientBase, changes: readonly TicketChange[], options: RecordOptions): Promise<{ historyId: string; eventId: string }[]> {
  if (changes.length === 0) return [];
  if (options.exportToGrc) {
    // The GRC webhook delivers a ticket's changes in outbox-id order, each once the earlier ones
    // are delivered: so the changes of one ticket must draw their ids in the order they commit.
    // The ticket's row lock (a no-op when the caller already holds it, e.g. transitionTicket)
    // serialises them until commit, whichever path records them (a duplicate attached to an
    // original, the retention's erasure, a transition). In id order: two batches never deadlock.
    await client.query('SELECT 1 FROM tickets WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [[...new Set(changes.map((c) => c.ticket.id))]]);
  }
  const { rows } = await client.query<{ id: string; at: Date }>(
    `INSERT INTO ticket_history (ticket_id, action, from_status, to_status, actor_sub, actor_roles, note)
     SELECT c.ticket_id, c.action, c.from_status, c.to_status, c.actor_sub, ARRAY(SELECT jsonb_array_elements_text(c.actor_roles)), c.note
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[]) WITH ORDINALITY
          AS c(ticket_id, action, from_status, to_status, actor_sub, actor_roles, note, n)
     ORDER BY c.n
     RETURNING id::text, at`,
    [
      changes.map((c) => c.ticket.id),
      changes.map((c) => c.action),
      changes.map((c) => c.fromStatus),
      changes.map((c) => c.toStatus),
      changes.map((c) => c.actor.sub),
      changes.map((c) => JSON.stringify([...c.actor.roles])),
      changes.map((c) => c.note ?? null),
    ],
  );
  // Ids are drawn in insertion order, which is the order of `changes`.
  const history = rows.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  const eventIds = await publishEvents(
    client,
    changes.map((change, k) => ({ topic: TICKET_TOPIC, collectivityId: change.ticket.collectivityId, payload: changedPayload(change, history[k].id, history[k].at) })),
    { notify: options.notify },
  );
  if (options.exportToGrc) {
    await client.query(
      `INSERT INTO ticket_outbox (ticket_id, collectivity_id, payload)
       SELECT o.ticket_id, o.collectivity_id, o.payload FROM unnest($1::bigint[], $2::text[], $3::jsonb[]) WITH ORDINALITY AS o(ticket_id, collectivity_id, payload, n)
       ORDER BY o.n`,
      [changes.map((c) => c.ticket.id), changes.map((c) => c.ticket.collectivityId), changes.map((c, k) => JSON.stringify(grcPayload(c, history[k].id, history[k].at)))],
    );
  }
  return changes.map((_, k) => ({ historyId: history[k].id, eventId: eventIds[k] }));
}

/** What a `tickets.intervention` event carries. */
export interface InterventionChangedPayload {
  interventionId: string;
  action: string;
  fromStatus: InterventionStatus | null;
  toStatus: InterventionStatus | null;
  status: InterventionStatus;
  assignee: string | null;
  ticketId: string | null;
  equipmentId: string | null;
  at: string;
}

export interface InterventionChange {
  intervention: InterventionRow;
  /** `CREATED`, `ASSIGNED`, `SCHEDULED`, `STARTED`, `CLOSED`, `CANCELLED` or `UPDATED`. */
  action: string;
  fromStatus: InterventionStatus | null;
  toStatus: InterventionStatus | null;
  actor: Actor;
  note?: string | null;
}

/** Appends an intervention change's history entry and event in the caller's transaction. */
export async function recordInterventionChange(client: pg.ClientBase, change: InterventionChange): Promise<{ eventId: string }> {
  const { intervention, action, fromStatus, toStatus, actor } = change;
  const { rows } = await client.query<{ at: Date }>(
    `INSERT INTO intervention_history (intervention_id, action, from_status, to_status, actor_sub, actor_roles, note)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING at`,
    [intervention.id, action, fromStatus, toStatus, actor.sub, [...actor.roles], change.note ?? null],
  );
  const payload: InterventionChangedPayload = {
    interventionId: intervention.id,
    action,
    fromStatus,
    toStatus,
    status: intervention.status,
    assignee: intervention.assigneeSub,
    ticketId: intervention.ticketId,
    equipmentId: intervention.equipmentId,
    at: rows[0].at.toISOString(),
  };
  const eventId = await publishEvent(client, { topic: INTERVENTION_TOPIC, collectivityId: intervention.collectivityId, payload });
  return { eventId };
}
