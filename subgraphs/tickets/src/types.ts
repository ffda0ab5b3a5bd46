/**
 * The tickets domain's vocabulary: statuses and their allowed moves, the rows its stores return
 * (columns of prisma/migrations/20261201000600_tickets), and its event topics.
 */

export const TICKET_STATUSES = ['NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS', 'RESOLVED', 'CLOSED', 'REJECTED', 'DUPLICATE'] as const;
export type TicketStatus = (typeof TICKET_STATUSES)[number];

/** Open: what duplicates attach to, and what `Equipment.tickets(open: true)` lists. */
export const OPEN_STATUSES: readonly TicketStatus[] = ['NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS'];

/**
 * The lifecycle: new → acknowledged → assigned → in progress → resolved → closed, plus rejected
 * (from any open status) and a resolved ticket reopened (back to in progress). DUPLICATE is set
 * only at creation; CLOSED and REJECTED are final.
 */
export const TRANSITIONS: Readonly<Record<TicketStatus, readonly TicketStatus[]>> = {
  NEW: ['ACKNOWLEDGED', 'REJECTED'],
  ACKNOWLEDGED: ['ASSIGNED', 'IN_PROGRESS', 'RESOLVED', 'REJECTED'],
  ASSIGNED: ['IN_PROGRESS', 'ACKNOWLEDGED', 'REJECTED'],
  IN_PROGRESS: ['RESOLVED', 'ASSIGNED', 'REJECTED'],
  RESOLVED: ['CLOSED', 'IN_PROGRESS'],
  CLOSED: [],
  REJECTED: [],
  DUPLICATE: [],
};

export const INTERVENTION_STATUSES = ['PLANNED', 'ASSIGNED', 'IN_PROGRESS', 'DONE', 'CANCELLED'] as const;
export type InterventionStatus = (typeof INTERVENTION_STATUSES)[number];

export type TicketSource = 'APP' | 'OPEN311' | 'STAFF';
export type TicketAction = 'CREATED' | 'TRANSITION' | 'DUPLICATE_ATTACHED' | 'NOTE' | 'REPORTER_ERASED';

/** A row of `ticket_categories`, with the competence territory gives its service category. */
export interface CategoryRow {
  code: string;
  label: string;
  description: string;
  serviceCategory: string;
  service: string;
  groupLabel: string;
  keywords: string[];
  equipmentKinds: string[];
  equipmentRadiusM: number;
  ackHours: number;
  resolveHours: number;
  position: number;
}

/** A row of `tickets` (`lon`/`lat` from its point); `duplicateCount` counted with it. */
export interface TicketRow {
  id: string;
  categoryCode: string;
  collectivityId: string;
  service: string;
  status: TicketStatus;
  description: string;
  lon: number;
  lat: number;
  inseeCode: string | null;
  address: string | null;
  equipmentId: string | null;
  knownAlarmId: string | null;
  duplicateOf: string | null;
  source: TicketSource;
  open311ClientId: string | null;
  reporterSub: string | null;
  reporterName: string | null;
  reporterEmail: string | null;
  reporterPhone: string | null;
  reporterErasedAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  acknowledgedAt: Date | null;
  resolvedAt: Date | null;
  closedAt: Date | null;
  ackDueAt: Date;
  resolveDueAt: Date;
  version: number;
}

/** The columns of `tickets` as a SELECT list giving a `TicketRow` (table alias `t`). */
export const TICKET_COLUMNS = `t.id::text AS id, t.category_code AS "categoryCode", t.collectivity_id AS "collectivityId", t.service,
  t.status, t.description, ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, t.insee_code AS "inseeCode", t.address,
  t.equipment_id AS "equipmentId", t.known_alarm_id AS "knownAlarmId", t.duplicate_of::text AS "duplicateOf", t.source,
  t.open311_client_id::text AS "open311ClientId", t.reporter_sub AS "reporterSub", t.reporter_name AS "reporterName",
  t.reporter_email AS "reporterEmail", t.reporter_phone AS "reporterPhone", t.reporter_erased_at AS "reporterErasedAt",
  t.created_at AS "createdAt", t.updated_at AS "updatedAt", t.acknowledged_at AS "acknowledgedAt", t.resolved_at AS "resolvedAt",
  t.closed_at AS "closedAt", t.ack_due_at AS "ackDueAt", t.resolve_due_at AS "resolveDueAt", t.version`;

/** A row of `interventions`. */
export interface InterventionRow {
  id: string;
  collectivityId: string;
  origin: 'TICKET' | 'ALARM' | 'PLANNED';
  ticketId: string | null;
  alarmId: string | null;
  equipmentId: string | null;
  title: string;
  description: string | null;
  lon: number | null;
  lat: number | null;
  status: InterventionStatus;
  assigneeSub: string | null;
  team: string | null;
  scheduledStart: Date | null;
  scheduledEnd: Date | null;
  startedAt: Date | null;
  closedAt: Date | null;
  closeNotes: string | null;
  minutesSpent: number | null;
  affectsCarriageway: boolean;
  stopIds: string[];
  routeIds: string[];
  createdBy: string | null;
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

/** The bus topic of ticket changes: one event per change, in the change's transaction. */
export const TICKET_TOPIC = 'tickets.changed';
/** The bus topic of intervention changes. */
export const INTERVENTION_TOPIC = 'tickets.intervention';

/** Who acts: a token's subject and roles, or the system (null sub, no roles). */
export interface Actor {
  sub: string | null;
  roles: readonly string[];
}
export const SYSTEM_ACTOR: Actor = Object.freeze({ sub: null, roles: [] });

/** A report as the app (GraphQL) or Open311 gives it, before validation. */
export interface ReportRequest {
  category: string;
  lon: number;
  lat: number;
  description: string;
  photoIds?: readonly string[] | null;
  photoSecrets?: readonly string[] | null;
  name?: string | null;
  email?: string | null;
  phone?: string | null;
  source: TicketSource;
  /** The Open311 client application that posted it. */
  open311ClientId?: string | null;
}

/** Who reports: the token's subject and roles (null sub: anonymous), the client address (rate limits), the request id (logs). */
export interface Reporter {
  sub: string | null;
  roles: readonly string[];
  address: string;
  requestId?: string;
}

/** The answer to a report. */
export interface ReportOutcome {
  ticket: TicketRow;
  /** The open ticket it was attached to, when it is a duplicate. */
  duplicateOf: TicketRow | null;
  /** What to tell the reporter. */
  notice: string;
}

/**
 * A report refused: the field at fault (named as in GraphQL's ReportInput: `category`,
 * `location`, `location.lon`, `description`, `email`, `photoIds`...) and why. Open311 maps the
 * same errors onto its own parameters and HTTP statuses (400, 429, 503).
 */
export class ReportError extends Error {
  override name = 'ReportError';
  constructor(
    readonly code: 'BAD_USER_INPUT' | 'RATE_LIMITED' | 'SERVICE_UNAVAILABLE',
    readonly field: string | null,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}
