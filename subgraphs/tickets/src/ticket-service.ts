/**
 * Tickets as people read and change them: reporting (`reportProblem`, through report-service.ts),
 * one ticket, lists, the caller's own, `Equipment.tickets`, the lifecycle moves and notes, the
 * `ticketChanged` and `myTicketChanged` streams. One instance per request: it holds the caller
 * and its DataLoaders (tickets, categories, histories, duplicate counts, asset pages, audit).
 *
 * Privacy (privacy.ts): the reporter and the responsible collectivity's agents, operators and
 * admins see everything; everyone else category, status, coarse location and dates (and the
 * other non-personal fields). Every staff read of a reporter's identity or contact is written
 * to `personal_data_access_log` (channel `graphql`) before the value is returned, one insert per
 * request batch. History actors are shown to staff of the collectivity only.
 */
import DataLoader from 'dataloader';
import { GraphQLError, Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';
import { actsIn, isPublic, type Viewer } from '@connecte/shared/auth';
import { badInput, forbidden, unauthenticated } from '@connecte/shared/errors';
import { mapEvents, type BusEvent } from '@connecte/shared/events';
import { checkNear } from '@connecte/shared/geo';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import { PeerUnavailableError } from '@connecte/shared/peers';
import type { TicketChangedPayload } from './changes.js';
import type { TicketsContext } from './context.js';
import type {
  EquipmentTicketsArgs,
  MutationReportProblemArgs,
  MutationTransitionTicketArgs,
  QueryMyTicketsArgs,
  QueryTicketsArgs,
  SubscriptionMyTicketChangedArgs,
  SubscriptionTicketChangedArgs,
} from './generated/graphql.js';
import { isReporterOf, isStaffOf, recordPersonalDataAccess, seesPrivate, STAFF_ROLES } from './privacy.js';
import { createReport } from './report-service.js';
import type { TicketResources } from './resources.js';
import { addNote, TICKET_ID, transitionTicket } from './ticket-lifecycle.js';
import {
  countEquipmentTickets,
  countTickets,
  listEquipmentTickets,
  listTickets,
  loadCategories,
  loadDuplicateCounts,
  loadHistories,
  loadTickets,
  ticketCursorKey,
  type HistoryRow,
  type PrivateScope,
  type TicketCriteria,
  type TicketKey,
} from './ticket-store.js';
import { ReportError, TICKET_STATUSES, TICKET_TOPIC, type Actor, type CategoryRow, type ReportOutcome, type TicketRow, type TicketStatus } from './types.js';

/** The Reporter fields, as `personal_data_access_log.fields` names them. */
const REPORTER_FIELDS = ['accountId', 'name', 'email', 'phone'] as const;

/** A ticket change as the streams deliver it. */
export interface TicketChangeValue {
  cursor: string;
  action: string;
  ticket: TicketRow;
}

export interface ReporterValue {
  accountId: string | null;
  name: string | null;
  email: string | null;
  phone: string | null;
}

export interface ServiceLevelValue {
  acknowledgeDueAt: Date;
  resolveDueAt: Date;
  acknowledgeBreached: boolean;
  resolveBreached: boolean;
}

export interface HistoryEntryValue {
  at: Date;
  action: string;
  fromStatus: TicketStatus | null;
  toStatus: TicketStatus | null;
  actor: string | null;
  note: string | null;
}

/** Service levels now: late when acknowledged (resolved) after the due date, or still not by then. A DUPLICATE has none of its own. */
export function serviceLevelOf(ticket: TicketRow, now = new Date()): ServiceLevelValue {
  const duplicate = ticket.status === 'DUPLICATE';
  const acknowledged = ticket.acknowledgedAt ?? now;
  const resolved = ticket.resolvedAt ?? (ticket.status === 'REJECTED' ? ticket.closedAt : null) ?? now;
  return {
    acknowledgeDueAt: ticket.ackDueAt,
    resolveDueAt: ticket.resolveDueAt,
    acknowledgeBreached: !duplicate && acknowledged.getTime() > ticket.ackDueAt.getTime(),
    resolveBreached: !duplicate && resolved.getTime() > ticket.resolveDueAt.getTime(),
  };
}

/** GeoJSON of a point. */
export const pointOf = (lon: number, lat: number) => ({ type: 'Point', coordinates: [lon, lat] });

function decodeTicketCursor(after: string | null | undefined, field = 'after'): TicketKey | null {
  const key = decodeCursor(after, field);
  if (key === null) return null;
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|([1-9]\d{0,17})$/.exec(key);
  const createdAt = match ? new Date(match[1]) : null;
  if (!match || !createdAt || Number.isNaN(createdAt.getTime())) throw badInput(field, 'is not a cursor returned by this API');
  return { createdAt, id: match[2] };
}

/** The names of the fields selected under the resolved field (fragments followed). */
function selectedFields(info: GraphQLResolveInfo): Set<string> {
  const names = new Set<string>();
  const visit = (set: SelectionSetNode | undefined) => {
    for (const selection of set?.selections ?? []) {
      if (selection.kind === Kind.FIELD) names.add(selection.name.value);
      else if (selection.kind === Kind.INLINE_FRAGMENT) visit(selection.selectionSet);
      else if (selection.kind === Kind.FRAGMENT_SPREAD) visit(info.fragments[selection.name.value]?.selectionSet);
    }
  };
  for (const node of info.fieldNodes as readonly FieldNode[]) visit(node.selectionSet);
  return names;
}

/** A report refused, as GraphQL gives it: the code, the field, and for RATE_LIMITED the seconds to wait. */
export function reportErrorToGraphQL(error: ReportError): GraphQLError {
  return new GraphQLError(error.message, {
    extensions: {
      code: error.code,
      ...(error.field ? { field: error.field } : {}),
      ...(error.retryAfterSeconds !== undefined ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
    },
  });
}

// --- Competences of service categories (territory), cached per process ------------------------

const COMPETENCE_TTL_MS = 10 * 60_000;
const competences = new WeakMap<TicketResources, { at: number; byCode: Promise<Map<string, string>> }>();

function competencesOf(resources: TicketResources, requestId: string): Promise<Map<string, string>> {
  const cached = competences.get(resources);
  if (cached && cached.at > Date.now() - COMPETENCE_TTL_MS) return cached.byCode;
  const byCode = resources.peers
    .query<{ serviceCategories: { code: string; competence: string }[] }>('territory', '{ serviceCategories { code competence } }', {}, { requestId })
    .then((answer) => {
      if (!answer.data?.serviceCategories) throw new Error(`territory did not list its service categories: ${JSON.stringify(answer.errors)}`);
      return new Map(answer.data.serviceCategories.map((c) => [c.code, c.competence]));
    });
  competences.set(resources, { at: Date.now(), byCode });
  byCode.catch(() => {
    if (competences.get(resources)?.byCode === byCode) competences.delete(resources);
  });
  return byCode;
}

export class TicketService {
  private readonly viewer: Viewer;
  private readonly resources: TicketResources;
  /** Collectivities in which the caller is staff (agent, operator, admin). */
  readonly staffOf: ReadonlySet<string>;
  private readonly scope: PrivateScope;

  /** Every ticket reference of the request (interventions and personal data use it too). */
  readonly byId = new DataLoader<string, TicketRow | null>((ids) => loadTickets(this.resources.db, ids));
  private readonly categories = new DataLoader<string, CategoryRow | null>(async (codes) => {
    const all = await this.allCategories();
    return codes.map((code) => all.find((c) => c.code === code) ?? null);
  });
  private categoryList: Promise<CategoryRow[]> | null = null;
  private readonly histories = new DataLoader<string, HistoryRow[]>((ids) => loadHistories(this.resources.db.pool, ids));
  private readonly duplicateCounts = new DataLoader<string, number>((ids) => loadDuplicateCounts(this.resources.db.pool, ids));
  private readonly equipmentPages = new DataLoader<{ equipmentId: string; open: boolean | null; limit: number; after: TicketKey | null }, TicketRow[], string>(
    (keys) => listEquipmentTickets(this.resources.db.pool, keys),
    { cacheKeyFn: (k) => JSON.stringify([k.equipmentId, k.open, k.limit, k.after?.createdAt.toISOString() ?? null, k.after?.id ?? null]) },
  );
  private readonly equipmentCounts = new DataLoader<{ equipmentId: string; open: boolean | null }, number, string>(
    (keys) => countEquipmentTickets(this.resources.db.pool, keys),
    { cacheKeyFn: (k) => JSON.stringify([k.equipmentId, k.open]) },
  );
  /** Staff reads of reporter data, written in one insert per batch (per set of fields) before they are answered. */
  private readonly audits = new DataLoader<{ ticketId: string; fields: string[] }, true, string>(
    async (keys) => {
      const byFields = new Map<string, string[]>();
      for (const key of keys) {
        const fields = key.fields.join(',');
        byFields.set(fields, [...(byFields.get(fields) ?? []), key.ticketId]);
      }
      for (const [fields, ticketIds] of byFields) {
        await recordPersonalDataAccess(this.resources.db.pool, { actor: this.viewer, ticketIds: [...new Set(ticketIds)], fields: fields.split(','), channel: 'graphql', requestId: this.context.requestId });
      }
      return keys.map(() => true as const);
    },
    // A ticket read twice in one request (a list and a reference) is logged once.
    { cacheKeyFn: (k) => `${k.ticketId}|${k.fields.join(',')}` },
  );

  constructor(readonly context: TicketsContext) {
    this.viewer = context.viewer;
    this.resources = context.resources;
    this.staffOf = new Set(context.viewer.collectivities.filter((id) => actsIn(context.viewer, id, [...STAFF_ROLES])));
    this.scope = { sub: context.viewer.sub, staffCollectivities: [...this.staffOf] };
  }

  private get actor(): Actor {
    return { sub: this.viewer.sub, roles: [...this.viewer.roles] };
  }

  // --- Privacy -------------------------------------------------------------------------------

  /** Whether the caller sees the ticket's private part (exact location, description, photos, asset, reporter). */
  seesPrivate(ticket: TicketRow): boolean {
    return seesPrivate(this.viewer, ticket);
  }

  /** `Ticket.reporter`: for the reporter himself, or audited for staff of the collectivity; null for anyone else and once erased. */
  async reporterOf(ticket: TicketRow, info: GraphQLResolveInfo): Promise<ReporterValue | null> {
    if (ticket.reporterErasedAt !== null) return null;
    const own = isReporterOf(this.viewer, ticket);
    if (!own && !isStaffOf(this.viewer, ticket)) return null;
    const value = { accountId: ticket.reporterSub, name: ticket.reporterName, email: ticket.reporterEmail, phone: ticket.reporterPhone };
    if (!own) {
      const selected = selectedFields(info);
      const fields = REPORTER_FIELDS.filter((field) => selected.has(field)).map((field) => `reporter.${field}`);
      if (fields.length > 0) await this.audits.load({ ticketId: ticket.id, fields });
    }
    return value;
  }

  /** `Ticket.history`, oldest first; the actor only for staff of the collectivity. */
  async historyOf(ticket: TicketRow): Promise<HistoryEntryValue[]> {
    const rows = await this.histories.load(ticket.id);
    const staff = isStaffOf(this.viewer, ticket);
    return rows.map((row) => ({ at: row.at, action: row.action, fromStatus: row.fromStatus, toStatus: row.toStatus, actor: staff ? row.actorSub : null, note: row.note }));
  }

  duplicateCountOf(ticket: TicketRow): Promise<number> {
    return this.duplicateCounts.load(ticket.id);
  }

  // --- Categories ------------------------------------------------------------------------------

  allCategories(): Promise<CategoryRow[]> {
    this.categoryList ??= loadCategories(this.resources.db.pool);
    return this.categoryList;
  }

  async category(code: string): Promise<CategoryRow> {
    const row = await this.categories.load(code);
    if (!row) throw new Error(`ticket category ${code} is missing`);
    return row;
  }

  categoryReference(code: string): Promise<CategoryRow | null> {
    return this.categories.load(code);
  }

  /** `TicketCategory.competence`, from territory's service categories. */
  async competenceOf(category: CategoryRow): Promise<string> {
    let byCode: Map<string, string>;
    try {
      byCode = await competencesOf(this.resources, this.context.requestId);
    } catch (error) {
      if (error instanceof PeerUnavailableError) throw new GraphQLError(`competence unavailable: ${error.message}`, { extensions: { code: 'SERVICE_UNAVAILABLE' } });
      throw error;
    }
    const competence = byCode.get(category.serviceCategory);
    if (!competence) throw new Error(`territory knows no service category ${category.serviceCategory} (ticket category ${category.code})`);
    return competence;
  }

  // --- Reads -----------------------------------------------------------------------------------

  /** `Query.ticket`: null when it does not exist (tickets are public, with their privacy). */
  async ticket(id: string): Promise<TicketRow | null> {
    if (!TICKET_ID.test(id)) return null;
    return this.byId.load(id);
  }

  private criteriaOf(filter: QueryTicketsArgs['filter']): TicketCriteria {
    const criteria: TicketCriteria = {};
    if (!filter) return criteria;
    if (filter.collectivityIds) criteria.collectivityIds = filter.collectivityIds;
    if (filter.categories) criteria.categories = filter.categories;
    if (filter.status) criteria.status = filter.status;
    if (filter.near) criteria.near = checkNear(filter.near, 'filter.near.');
    const instant = (value: Date | null | undefined, field: string) => {
      if (value === null || value === undefined) return null;
      if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw badInput(field, 'must be an ISO 8601 instant');
      return value;
    };
    criteria.createdFrom = instant(filter.createdFrom, 'filter.createdFrom');
    criteria.createdTo = instant(filter.createdTo, 'filter.createdTo');
    if (criteria.createdFrom && criteria.createdTo && criteria.createdTo <= criteria.createdFrom) throw badInput('filter.createdTo', 'must be after filter.createdFrom');
    if (filter.breached !== null && filter.breached !== undefined) criteria.breached = filter.breached;
    return criteria;
  }

  private async page(criteria: TicketCriteria, first: number | null | undefined, afterCursor: string | null | undefined): Promise<Connection<TicketRow>> {
    const limit = pageSize(first);
    const after = decodeTicketCursor(afterCursor);
    const total = () => countTickets(this.resources.db.pool, criteria, this.scope);
    if (limit === 0) return connection<TicketRow>([], 0, ticketCursorKey, after !== null, total);
    const rows = await listTickets(this.resources.db.pool, criteria, this.scope, after, limit);
    for (const row of rows) this.byId.prime(row.id, row);
    return connection(rows, limit, ticketCursorKey, after !== null, total);
  }

  /** `Query.tickets`: everyone, every ticket, with the privacy of each. */
  tickets(args: QueryTicketsArgs): Promise<Connection<TicketRow>> {
    return this.page(this.criteriaOf(args.filter), args.first, args.after);
  }

  /** `Query.myTickets`: the caller's own reports. */
  myTickets(args: QueryMyTicketsArgs): Promise<Connection<TicketRow>> {
    if (isPublic(this.viewer)) throw unauthenticated('authentication required: myTickets lists the reports made with your account');
    return this.page({ reporterSub: this.viewer.sub }, args.first, args.after);
  }

  /** `Equipment.tickets`, batched across the assets of the request. */
  async equipmentTickets(equipmentId: string, args: EquipmentTicketsArgs): Promise<Connection<TicketRow>> {
    const limit = pageSize(args.first);
    const after = decodeTicketCursor(args.after);
    const open = args.open ?? null;
    const total = () => this.equipmentCounts.load({ equipmentId, open });
    if (limit === 0) return connection<TicketRow>([], 0, ticketCursorKey, after !== null, total);
    const rows = await this.equipmentPages.load({ equipmentId, open, limit, after });
    for (const row of rows) this.byId.prime(row.id, row);
    return connection(rows, limit, ticketCursorKey, after !== null, total);
  }

  // --- Writes ----------------------------------------------------------------------------------

  /** `Mutation.reportProblem`. */
  async report(args: MutationReportProblemArgs): Promise<ReportOutcome> {
    const { input } = args;
    try {
      const outcome = await createReport(
        this.resources,
        {
          category: input.category,
          lon: input.location.lon,
          lat: input.location.lat,
          description: input.description,
          photoIds: input.photoIds ?? null,
          photoSecrets: input.photoSecrets ?? null,
          name: input.name ?? null,
          email: input.email ?? null,
          phone: input.phone ?? null,
          source: 'APP',
        },
        // Behind the gateway, believed only when the gateway is among TRUSTED_PROXIES (else no per-address limit here).
        { sub: this.viewer.sub, roles: this.viewer.roles, address: this.context.clientAddress ?? '', requestId: this.context.requestId },
      );
      this.byId.prime(outcome.ticket.id, outcome.ticket);
      if (outcome.duplicateOf) this.byId.clear(outcome.duplicateOf.id).prime(outcome.duplicateOf.id, outcome.duplicateOf);
      return outcome;
    } catch (error) {
      if (error instanceof ReportError) throw reportErrorToGraphQL(error);
      throw error;
    }
  }

  /** Who may move a ticket: staff of its collectivity; its reporter only to reopen it (RESOLVED → IN_PROGRESS). */
  private authorizeMove(current: TicketRow, to: TicketStatus): void {
    if (isStaffOf(this.viewer, current)) return;
    if (isReporterOf(this.viewer, current)) {
      if (current.status === 'RESOLVED' && to === 'IN_PROGRESS') return;
      throw forbidden(`to: as its reporter you may only reopen ticket ${current.id} once it is RESOLVED (to IN_PROGRESS); other moves are for the staff of '${current.collectivityId}'`, 'to');
    }
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: tickets are moved by ${STAFF_ROLES.join(', ')} of their collectivity`);
    throw forbidden(`ticketId: needs role ${STAFF_ROLES.join(' or ')} in collectivity '${current.collectivityId}'`, 'ticketId');
  }

  /** `Mutation.transitionTicket`. */
  async transition(args: MutationTransitionTicketArgs): Promise<TicketRow> {
    const { ticketId, to, note, expectedVersion } = args.input;
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: tickets are moved by ${STAFF_ROLES.join(', ')} of their collectivity`);
    if (!(TICKET_STATUSES as readonly string[]).includes(to)) throw badInput('to', 'is not a ticket status');
    const row = await this.resources.inTransaction((client) =>
      transitionTicket(client, this.resources, { ticketId, to, actor: this.actor, note, expectedVersion, authorize: (current) => this.authorizeMove(current, to) }),
    );
    this.refresh(row);
    return row;
  }

  /** `Mutation.addTicketNote`: staff of the collectivity. */
  async note(ticketId: string, note: string): Promise<TicketRow> {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: notes are added by ${STAFF_ROLES.join(', ')} of the ticket's collectivity`);
    const row = await this.resources.inTransaction((client) =>
      addNote(client, this.resources, {
        ticketId,
        note,
        actor: this.actor,
        authorize: (current) => {
          if (!isStaffOf(this.viewer, current)) throw forbidden(`ticketId: needs role ${STAFF_ROLES.join(' or ')} in collectivity '${current.collectivityId}'`, 'ticketId');
        },
      }),
    );
    this.refresh(row);
    return row;
  }

  private refresh(row: TicketRow): void {
    this.byId.clear(row.id).prime(row.id, row);
    this.histories.clear(row.id);
  }

  // --- Streams ---------------------------------------------------------------------------------

  /** `Subscription.ticketChanged`: staff, their collectivities only. */
  ticketChanged(args: SubscriptionTicketChangedArgs): AsyncIterableIterator<{ ticketChanged: TicketChangeValue }> {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: ticket changes are streamed to ${STAFF_ROLES.join(', ')} of the tickets' collectivity`);
    if (this.staffOf.size === 0) throw forbidden(`needs role ${STAFF_ROLES.join(' or ')} in some collectivity`);
    const filter = args.filter ?? {};
    let collectivities = [...this.staffOf];
    if (filter.collectivityIds) {
      if (filter.collectivityIds.length === 0) throw badInput('filter.collectivityIds', 'must name at least one collectivity (or be omitted)');
      filter.collectivityIds.forEach((id, i) => {
        if (!this.staffOf.has(id)) throw forbidden(`filter.collectivityIds.${i}: needs role ${STAFF_ROLES.join(' or ')} in collectivity '${id}'`, `filter.collectivityIds.${i}`);
      });
      collectivities = [...new Set(filter.collectivityIds)];
    }
    const categories = filter.categories ? new Set(filter.categories) : null;
    const statuses = filter.status ? new Set<string>(filter.status) : null;
    return this.stream('ticketChanged', args.after, collectivities, async (payload) => {
      if (categories && !categories.has(payload.categoryCode)) return false;
      if (statuses && !statuses.has(payload.status)) return false;
      return true;
    });
  }

  /** `Subscription.myTicketChanged`: the caller's reports and the originals his duplicates are attached to. */
  myTicketChanged(args: SubscriptionMyTicketChangedArgs): AsyncIterableIterator<{ myTicketChanged: TicketChangeValue }> {
    if (isPublic(this.viewer)) throw unauthenticated('authentication required: myTicketChanged streams the changes of the reports made with your account');
    const sub = this.viewer.sub!;
    const pool = this.resources.db.pool;
    // The tickets followed: his own, and the originals of his duplicates; new ones join as they are reported.
    let followed: Promise<Set<string>> | null = null;
    const load = async () => {
      const { rows } = await pool.query<{ id: string; duplicateOf: string | null }>(
        `SELECT id::text, duplicate_of::text AS "duplicateOf" FROM tickets WHERE reporter_sub = $1`,
        [sub],
      );
      return new Set(rows.flatMap((row) => (row.duplicateOf ? [row.id, row.duplicateOf] : [row.id])));
    };
    return this.stream('myTicketChanged', args.after, null, async (payload) => {
      followed ??= load();
      const set = await followed;
      if (set.has(payload.ticketId)) return true;
      if (payload.action !== 'CREATED') return false;
      const { rows } = await pool.query<{ mine: boolean }>(`SELECT reporter_sub = $2 AS mine FROM tickets WHERE id = $1`, [payload.ticketId, sub]);
      if (!rows[0]?.mine) return false;
      set.add(payload.ticketId);
      if (payload.duplicateOf) set.add(payload.duplicateOf);
      return true;
    });
  }

  /**
   * A stream of `tickets.changed` events (resumable with `after`: an event id), each passed
   * through `accept`, delivering the ticket as it is now (its history read afresh).
   */
  private stream<K extends string>(
    key: K,
    after: string | null | undefined,
    collectivityIds: string[] | null,
    accept: (payload: TicketChangedPayload) => Promise<boolean>,
  ): AsyncIterableIterator<Record<K, TicketChangeValue>> {
    return mapEvents(this.context.events, { topics: [TICKET_TOPIC], after: after ?? undefined, collectivityIds }, async (event) => {
      const value = await this.changeOf(event, accept);
      return value ? ({ [key]: value } as Record<K, TicketChangeValue>) : null;
    });
  }

  private async changeOf(event: BusEvent, accept: (payload: TicketChangedPayload) => Promise<boolean>): Promise<TicketChangeValue | null> {
    const payload = event.payload as Partial<TicketChangedPayload> | null;
    if (!payload?.ticketId || !payload.action) return null;
    if (!(await accept(payload as TicketChangedPayload))) return null;
    // A stream lives long: the ticket and its history are read afresh for each change.
    this.byId.clear(payload.ticketId);
    this.histories.clear(payload.ticketId);
    this.duplicateCounts.clear(payload.ticketId);
    this.audits.clearAll();
    const ticket = await this.byId.load(payload.ticketId);
    if (!ticket) return null;
    return { cursor: event.id, action: payload.action, ticket };
  }
}

