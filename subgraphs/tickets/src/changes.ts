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
import { publishEvent } from '@connecte/shared/events';
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
}

/** Appends a ticket change's history entry, event and outbox row in the caller's transaction; returns the history id. */
export async function recordTicketChange(client: pg.ClientBase, change: TicketChange, options: RecordOptions): Promise<{ historyId: string; eventId: string }> {
  const { ticket, action, fromStatus, toStatus, actor } = change;
  const note = change.note ?? null;
  if (options.exportToGrc) {
    // The GRC webhook delivers a ticket's changes in outbox-id order, each once the earlier ones
    // are delivered: so the changes of one ticket must draw their ids in the order they commit.
    // The ticket's row lock (a no-op when the caller already holds it, e.g. transitionTicket)
    // serialises them until commit, whichever path records them (a duplicate attached to an
    // original, the retention's erasure, a transition).
    await client.query('SELECT 1 FROM tickets WHERE id = $1 FOR NO KEY UPDATE', [ticket.id]);
  }
  const { rows } = await client.query<{ id: string; at: Date }>(
    `INSERT INTO ticket_history (ticket_id, action, from_status, to_status, actor_sub, actor_roles, note)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id::text, at`,
    [ticket.id, action, fromStatus, toStatus, actor.sub, [...actor.roles], note],
  );
  const { id: historyId, at } = rows[0];
  const payload: TicketChangedPayload = {
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
  const eventId = await publishEvent(client, { topic: TICKET_TOPIC, collectivityId: ticket.collectivityId, payload });
  if (options.exportToGrc) {
    const grc: GrcChangePayload = {
      ticketId: ticket.id,
      collectivityId: ticket.collectivityId,
      historyId,
      action,
      fromStatus,
      toStatus,
      at: at.toISOString(),
      actor: actor.sub,
      note,
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
    await client.query('INSERT INTO ticket_outbox (ticket_id, collectivity_id, payload) VALUES ($1, $2, $3)', [ticket.id, ticket.collectivityId, JSON.stringify(grc)]);
  }
  return { historyId, eventId };
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
