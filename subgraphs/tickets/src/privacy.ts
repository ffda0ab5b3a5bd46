/**
 * Who sees what of a ticket (issue #8, "Privacy"): the reporter himself, and the agents,
 * operators and admins of the responsible collectivity, see everything (exact location,
 * description, photos, linked asset, the reporter's identity and contact); everyone else
 * (the public, citizens, partners, staff of other collectivities) sees category, status, coarse
 * location and dates only. Every staff read of a reporter's identity or contact is audited.
 */
import { actsIn, type Viewer } from '@connecte/shared/auth';
import type pg from 'pg';
import type { TicketRow } from './types.js';

/** A pool or a client inside a transaction. */
type Queryable = Pick<pg.Pool, 'query'> | pg.ClientBase;

/** Staff roles that see the private part of their collectivity's tickets. */
export const STAFF_ROLES = ['agent', 'operator', 'admin'] as const;

/** Whether `viewer` reported `ticket` (an authenticated reporter: anonymous reports have no owner). */
export const isReporterOf = (viewer: Viewer, ticket: Pick<TicketRow, 'reporterSub'>) => viewer.sub !== null && ticket.reporterSub === viewer.sub;

/** Whether `viewer` is staff of the ticket's responsible collectivity. */
export const isStaffOf = (viewer: Viewer, ticket: Pick<TicketRow, 'collectivityId'>) => actsIn(viewer, ticket.collectivityId, [...STAFF_ROLES]);

/** Whether `viewer` sees the private part of `ticket` (exact location, description, photos, reporter). */
export const seesPrivate = (viewer: Viewer, ticket: Pick<TicketRow, 'reporterSub' | 'collectivityId'>) => isReporterOf(viewer, ticket) || isStaffOf(viewer, ticket);

/** The public's location of a ticket: its point snapped to a grid of about 100 m (0.001° of latitude, 0.0015° of longitude at 49° N). */
export function coarsePoint(lon: number, lat: number): [number, number] {
  const snap = (value: number, step: number) => Math.round(Math.round(value / step) * step * 1e6) / 1e6;
  return [snap(lon, 0.0015), snap(lat, 0.001)];
}

export interface PersonalDataAccess {
  actor: Viewer;
  ticketIds: readonly string[];
  /** Which fields were read: `reporter.name`, `reporter.email`, `reporter.phone`, `reporter.accountId`, `photos`. */
  fields: readonly string[];
  /** `graphql`, `open311`, `export`, `photo`. */
  channel: string;
  requestId?: string | null;
  /** The written request an operator's export answers (channel `export`; migration 20261201000800). */
  requestReference?: string | null;
}

/** Records staff reads of reporters' personal data (one row per ticket), on the pool or in the caller's transaction. */
export async function recordPersonalDataAccess(db: Queryable, access: PersonalDataAccess): Promise<void> {
  if (access.ticketIds.length === 0 || access.actor.sub === null) return;
  await db.query(
    `INSERT INTO personal_data_access_log (actor_sub, actor_roles, ticket_id, fields, channel, request_id, request_reference)
     SELECT $1, $2, t, $3, $4, $5, $7 FROM unnest($6::bigint[]) AS t`,
    [access.actor.sub, [...access.actor.roles], [...access.fields], access.channel, access.requestId ?? null, [...access.ticketIds], access.requestReference ?? null],
  );
}
