/**
 * Interventions (work orders) as people see and handle them. One instance per request: it holds
 * the caller and the DataLoaders of every intervention read (by id, histories, per ticket, per
 * asset page and count).
 *
 * Where they come from: a ticket (`ticketId`: its collectivity, location and asset; the ticket
 * moves to ASSIGNED, acknowledged first when it was NEW), a telemetry alarm still active
 * (`alarmId`, a `ticket_known_alarms` row: its asset and collectivity, the asset's location from
 * equipment), or planned maintenance and works (`collectivityId` required; an asset of that
 * collectivity and a location inside the territory optional).
 *
 * Who does what (see `MOVES`): the collectivity's operators and admins create, assign, schedule
 * and cancel, and may also start and close out (a team's work order, entered from the control
 * room); the assigned agent starts and closes out his own and nothing else. An agent sees only
 * the work orders assigned to him: another's is absent from lists, `intervention(id)` is null and
 * changing it is FORBIDDEN. Every change is one transaction: the row locked, its history entry and
 * `tickets.intervention` event (recordInterventionChange), and the ticket's move (transitionTicket)
 * — starting moves the ticket to IN_PROGRESS, closing out the last open work order to RESOLVED,
 * cancelling the last one of an ASSIGNED ticket back to ACKNOWLEDGED.
 */
import DataLoader from 'dataloader';
import { GraphQLError } from 'graphql';
import type pg from 'pg';
import { actsIn, COLLECTIVITY_IDS, isPublic, requireRoleIn, type Role, type Viewer } from '@connecte/shared/auth';
import { badInput, forbidden, notFound, unauthenticated } from '@connecte/shared/errors';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import { PeerUnavailableError } from '@connecte/shared/peers';
import { recordInterventionChange } from './changes.js';
import type { TicketsContext } from './context.js';
import type {
  CreateInterventionInput,
  EquipmentInterventionsArgs,
  QueryInterventionsArgs,
  UpdateInterventionInput,
} from './generated/graphql.js';
import {
  countEquipmentInterventions,
  insertIntervention,
  INTERVENTION_COLUMNS,
  interventionCursorKey,
  loadEquipmentInterventionPages,
  loadInterventionHistories,
  loadInterventions,
  loadTicketInterventions,
  lockIntervention,
  otherOpenInterventions,
  updateIntervention,
  type InterventionChanges,
  type InterventionHistoryRow,
  type InterventionKey,
  visibleCondition,
  type VisibilityScope,
} from './intervention-store.js';
import { transitionTicket } from './ticket-lifecycle.js';
import { TICKET_COLUMNS, TRANSITIONS, type Actor, type InterventionRow, type InterventionStatus, type TicketRow, type TicketStatus } from './types.js';

/** Who creates, assigns, schedules and cancels work orders in a collectivity (and sees them all). */
export const DISPATCHERS: Role[] = ['operator', 'admin'];
/** Who does the work: sees and changes only the work orders assigned to him. */
export const FIELD_AGENTS: Role[] = ['agent'];

/** The allowed status moves of a work order. DONE and CANCELLED are final. */
export const MOVES: Readonly<Record<InterventionStatus, readonly InterventionStatus[]>> = {
  PLANNED: ['ASSIGNED', 'CANCELLED'],
  ASSIGNED: ['IN_PROGRESS', 'CANCELLED'],
  IN_PROGRESS: ['DONE', 'CANCELLED'],
  DONE: [],
  CANCELLED: [],
};

/** The moves the assigned agent may make himself (the others are the dispatchers'). */
const AGENT_MOVES: readonly InterventionStatus[] = ['IN_PROGRESS', 'DONE'];

const MAX_TITLE = 200;
const MAX_TEXT = 4_000;
const MAX_NAME = 200;
const MAX_GTFS_IDS = 100;
const MAX_GTFS_ID = 100;
const MAX_MINUTES = 100_000;
/** bigserial ids: anything else names no row. */
const ROW_ID = /^[1-9]\d{0,17}$/;
/** C0 controls but tab, LF and CR, DEL and C1 controls: refused in multi-line text. */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
/** Every control character: refused in one-line values (title, team, ids). */
const ANY_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** A one-line value: trimmed, 1 to `max` characters, no control character. */
function line(field: string, value: string, max: number): string {
  if (ANY_CONTROL.test(value)) {
    throw badInput(field, value.includes('\u0000') ? 'must not contain NUL characters (U+0000)' : 'must not contain control characters (line breaks, tabs...)');
  }
  const trimmed = value.trim();
  if (!trimmed) throw badInput(field, 'must not be empty');
  if (trimmed.length > max) throw badInput(field, `must be at most ${max.toLocaleString('en')} characters (got ${trimmed.length.toLocaleString('en')})`);
  return trimmed;
}

/** Free text: trimmed, at most `max` characters, no NUL or control character but line breaks and tabs; empty is none. */
function text(field: string, value: string | null | undefined, max = MAX_TEXT): string | null {
  if (value === null || value === undefined) return null;
  if (CONTROL.test(value)) throw badInput(field, value.includes('\u0000') ? 'must not contain NUL characters (U+0000)' : 'must not contain control characters other than line breaks and tabs');
  const trimmed = value.trim();
  if (trimmed.length > max) throw badInput(field, `must be at most ${max.toLocaleString('en')} characters (got ${trimmed.length.toLocaleString('en')})`);
  return trimmed || null;
}

/** GTFS stop or route ids: each a one-line id, at most 100, duplicates dropped (first kept). */
function gtfsIds(field: string, values: readonly string[] | null | undefined): string[] {
  if (values === null || values === undefined) return [];
  if (values.length > MAX_GTFS_IDS) throw badInput(field, `must list at most ${MAX_GTFS_IDS} ids (got ${values.length})`);
  return [...new Set(values.map((value, i) => line(`${field}.${i}`, value, MAX_GTFS_ID)))];
}

function minutes(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_MINUTES) {
    throw badInput(field, `must be a whole number of minutes from 0 to ${MAX_MINUTES.toLocaleString('en')} (got ${value})`);
  }
  return value;
}

function schedule(start: Date | null, end: Date | null, field = 'input.scheduledEnd'): void {
  if (start && end && !(end.getTime() > start.getTime())) {
    throw badInput(field, `must be after the scheduled start (${end.toISOString()} is not after ${start.toISOString()})`);
  }
}

const unavailable = (peer: string, error: unknown, field: string) =>
  new GraphQLError(`the ${peer} service did not answer: ${(error as Error).message}; nothing was written, try again`, {
    extensions: { code: 'SERVICE_UNAVAILABLE', field },
  });

function decodeInterventionCursor(after: string | null | undefined): InterventionKey | null {
  const key = decodeCursor(after);
  if (key === null) return null;
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|([1-9]\d{0,17})$/.exec(key);
  const createdAt = match ? new Date(match[1]) : null;
  if (!match || !createdAt || Number.isNaN(createdAt.getTime())) throw badInput('after', 'is not a cursor returned by this API');
  return { createdAt, id: match[2] };
}

/** An asset as the equipment service tells it. */
interface PeerEquipment {
  id: string;
  collectivity: { id: string };
  location: { coordinates: [number, number] } | null;
}

/** One step of a change, as its history entry records it. */
interface Step {
  action: 'ASSIGNED' | 'SCHEDULED' | 'STARTED' | 'CLOSED' | 'CANCELLED' | 'UPDATED';
  toStatus: InterventionStatus;
}

interface EquipmentPageKey {
  equipmentId: string;
  status: readonly InterventionStatus[] | null;
  limit: number;
  after: InterventionKey | null;
}

export class InterventionService {
  private readonly viewer: Viewer;
  private readonly actor: Actor;
  /** Collectivities whose every work order the caller sees (operator, admin). */
  private readonly dispatches: ReadonlySet<string>;
  /** Collectivities where the caller sees the work orders assigned to him (agent only). */
  private readonly works: ReadonlySet<string>;
  private readonly scope: VisibilityScope;

  readonly byId = new DataLoader<string, InterventionRow | null>((ids) => loadInterventions(this.pool, ids));
  private readonly histories = new DataLoader<string, InterventionHistoryRow[]>((ids) => loadInterventionHistories(this.pool, ids));
  private readonly ofTickets = new DataLoader<string, InterventionRow[]>(async (ids) => {
    const lists = await loadTicketInterventions(this.pool, ids, this.scope);
    for (const list of lists) for (const row of list) this.byId.prime(row.id, row);
    return lists;
  });
  private readonly equipmentPages = new DataLoader<EquipmentPageKey, InterventionRow[], string>((keys) => this.loadEquipmentPages(keys), {
    cacheKeyFn: (k) => JSON.stringify([k.equipmentId, k.status, k.limit, k.after?.createdAt.toISOString() ?? null, k.after?.id ?? null]),
  });
  private readonly equipmentCounts = new DataLoader<{ equipmentId: string; status: readonly InterventionStatus[] | null }, number, string>(
    (keys) => this.loadEquipmentCounts(keys),
    { cacheKeyFn: (k) => JSON.stringify([k.equipmentId, k.status]) },
  );

  constructor(readonly context: TicketsContext) {
    this.viewer = context.viewer;
    this.actor = { sub: context.viewer.sub, roles: [...context.viewer.roles] };
    const dispatches = context.viewer.collectivities.filter((id) => actsIn(context.viewer, id, DISPATCHERS));
    this.dispatches = new Set(dispatches);
    this.works = new Set(context.viewer.collectivities.filter((id) => !this.dispatches.has(id) && actsIn(context.viewer, id, FIELD_AGENTS)));
    this.scope = { allOf: dispatches, ownIn: [...this.works], sub: context.viewer.sub };
  }

  private get pool() {
    return this.context.resources.db.pool;
  }

  /** Whether the caller sees this work order. */
  sees(row: Pick<InterventionRow, 'collectivityId' | 'assigneeSub'>): boolean {
    return this.dispatches.has(row.collectivityId) || (this.works.has(row.collectivityId) && row.assigneeSub !== null && row.assigneeSub === this.viewer.sub);
  }

  // --- Reads -------------------------------------------------------------------------

  /** `Query.intervention` and entity references: null when there is none or the caller may not see it. */
  async intervention(id: string): Promise<InterventionRow | null> {
    if (!ROW_ID.test(id)) return null;
    const row = await this.byId.load(id);
    return row && this.sees(row) ? row : null;
  }

  /** `Query.interventions`: newest first, what the caller sees (of the collectivities he names, each of which he must act in as staff). */
  async interventions(args: QueryInterventionsArgs): Promise<Connection<InterventionRow>> {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: interventions are read by ${[...FIELD_AGENTS, ...DISPATCHERS].join(', ')} of their collectivity`);
    if (this.dispatches.size === 0 && this.works.size === 0) throw forbidden(`needs role ${[...FIELD_AGENTS, ...DISPATCHERS].join(' or ')} in some collectivity`);
    const limit = pageSize(args.first);
    const after = decodeInterventionCursor(args.after);
    const filter = args.filter ?? {};
    let scope = this.scope;
    if (filter.collectivityIds) {
      filter.collectivityIds.forEach((id, i) => {
        if (!this.dispatches.has(id) && !this.works.has(id)) {
          throw forbidden(`filter.collectivityIds.${i}: needs role ${[...FIELD_AGENTS, ...DISPATCHERS].join(' or ')} in collectivity '${id}'`, `filter.collectivityIds.${i}`);
        }
      });
      const named = new Set(filter.collectivityIds);
      scope = { allOf: scope.allOf.filter((id) => named.has(id)), ownIn: scope.ownIn.filter((id) => named.has(id)), sub: scope.sub };
    }
    if (filter.scheduledFrom && filter.scheduledTo && !(filter.scheduledTo > filter.scheduledFrom)) {
      throw badInput('filter.scheduledTo', 'must be after filter.scheduledFrom');
    }
    const params: unknown[] = [];
    const where = [visibleCondition(scope, params)];
    const add = (sql: (n: number) => string, value: unknown) => {
      params.push(value);
      where.push(sql(params.length));
    };
    if (filter.status) add((n) => `i.status = ANY($${n}::text[])`, filter.status);
    if (filter.origins) add((n) => `i.origin = ANY($${n}::text[])`, filter.origins);
    if (filter.assignee !== undefined && filter.assignee !== null) add((n) => `i.assignee_sub = $${n}`, line('filter.assignee', filter.assignee, MAX_NAME));
    if (filter.scheduledFrom) add((n) => `i.scheduled_start >= $${n}`, filter.scheduledFrom);
    if (filter.scheduledTo) add((n) => `i.scheduled_start < $${n}`, filter.scheduledTo);
    const count = async () => {
      const { rows } = await this.pool.query<{ count: number }>(`SELECT count(*)::int AS count FROM interventions i WHERE ${where.join(' AND ')}`, params);
      return rows[0].count;
    };
    if (limit === 0) return connection<InterventionRow>([], limit, interventionCursorKey, after !== null, count);
    const pageWhere = [...where];
    const pageParams = [...params];
    if (after) {
      pageParams.push(after.createdAt, after.id);
      pageWhere.push(`(i.created_at, i.id) < ($${pageParams.length - 1}::timestamptz, $${pageParams.length}::bigint)`);
    }
    pageParams.push(limit + 1);
    const { rows } = await this.pool.query<InterventionRow>(
      `SELECT ${INTERVENTION_COLUMNS} FROM interventions i WHERE ${pageWhere.join(' AND ')} ORDER BY i.created_at DESC, i.id DESC LIMIT $${pageParams.length}`,
      pageParams,
    );
    for (const row of rows) this.byId.prime(row.id, row);
    return connection(rows, limit, interventionCursorKey, after !== null, count);
  }

  /** `Intervention.history`, oldest first. */
  historyOf(row: InterventionRow): Promise<InterventionHistoryRow[]> {
    return this.histories.load(row.id);
  }

  /** `Ticket.interventions`: the work orders created from it that the caller sees, oldest first. */
  async ofTicket(ticketId: string): Promise<InterventionRow[]> {
    if (this.dispatches.size === 0 && this.works.size === 0) return [];
    return this.ofTickets.load(ticketId);
  }

  /** `Equipment.interventions`: newest first; empty (not an error) for a caller who sees none of them. */
  async ofEquipment(equipmentId: string, args: EquipmentInterventionsArgs): Promise<Connection<InterventionRow>> {
    const limit = pageSize(args.first);
    const after = decodeInterventionCursor(args.after);
    const status = args.status ? [...new Set(args.status)] : null;
    if (this.dispatches.size === 0 && this.works.size === 0) return connection<InterventionRow>([], limit, interventionCursorKey, after !== null, async () => 0);
    const total = () => this.equipmentCounts.load({ equipmentId, status });
    if (limit === 0) return connection<InterventionRow>([], limit, interventionCursorKey, after !== null, total);
    const rows = await this.equipmentPages.load({ equipmentId, status, limit, after });
    return connection(rows, limit, interventionCursorKey, after !== null, total);
  }

  // --- Creation ----------------------------------------------------------------------

  /** `Mutation.createIntervention`. */
  async create(input: CreateInterventionInput): Promise<InterventionRow> {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: work orders are created by ${DISPATCHERS.join(', ')} of their collectivity`);
    const title = line('input.title', input.title, MAX_TITLE);
    const description = text('input.description', input.description);
    const assigneeSub = input.assignee === null || input.assignee === undefined ? null : line('input.assignee', input.assignee, MAX_NAME);
    const team = input.team === null || input.team === undefined ? null : line('input.team', input.team, MAX_NAME);
    const scheduledStart = input.scheduledStart ?? null;
    const scheduledEnd = input.scheduledEnd ?? null;
    schedule(scheduledStart, scheduledEnd);
    const stopIds = gtfsIds('input.stopIds', input.stopIds);
    const routeIds = gtfsIds('input.routeIds', input.routeIds);
    const hasTicket = input.ticketId !== null && input.ticketId !== undefined;
    const hasAlarm = input.alarmId !== null && input.alarmId !== undefined;
    if (hasTicket && hasAlarm) throw badInput('input.alarmId', 'give either ticketId or alarmId, not both');
    if (hasTicket || hasAlarm) {
      const from = hasTicket ? 'ticket' : 'alarm';
      for (const field of ['collectivityId', 'equipmentId', 'location'] as const) {
        if (input[field] !== null && input[field] !== undefined) throw badInput(`input.${field}`, `is taken from the ${from}: give it only for a planned intervention`);
      }
    }
    const common = {
      title,
      description,
      status: (assigneeSub || team ? 'ASSIGNED' : 'PLANNED') as InterventionStatus,
      assigneeSub,
      team,
      scheduledStart,
      scheduledEnd,
      affectsCarriageway: input.affectsCarriageway ?? false,
      stopIds,
      routeIds,
      createdBy: this.viewer.sub,
    };

    let row: InterventionRow;
    if (hasTicket) {
      row = await this.fromTicket(input.ticketId!, common);
    } else if (hasAlarm) {
      row = await this.fromAlarm(line('input.alarmId', input.alarmId!, MAX_NAME), common);
    } else {
      row = await this.planned(input, common);
    }
    this.byId.clear(row.id).prime(row.id, row);
    this.context.log.info({ actor: this.viewer.sub, interventionId: row.id, origin: row.origin, ticketId: row.ticketId, alarmId: row.alarmId, status: row.status }, 'intervention created');
    return row;
  }

  private async fromTicket(ticketId: string, common: CommonValues): Promise<InterventionRow> {
    if (!ROW_ID.test(ticketId)) throw badInput('input.ticketId', `no ticket with id ${JSON.stringify(ticketId)}`);
    return this.context.resources.inTransaction(async (client) => {
      const { rows } = await client.query<TicketRow>(`SELECT ${TICKET_COLUMNS} FROM tickets t WHERE t.id = $1 FOR UPDATE`, [ticketId]);
      const ticket = rows[0];
      if (!ticket) throw badInput('input.ticketId', `no ticket with id ${ticketId}`);
      requireRoleIn(this.viewer, ticket.collectivityId, DISPATCHERS, 'input.ticketId');
      if (ticket.status === 'DUPLICATE') {
        throw badInput('input.ticketId', `ticket ${ticketId} is a duplicate of ticket ${ticket.duplicateOf}: create the work order from that one`);
      }
      if (!['NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS'].includes(ticket.status)) {
        throw badInput('input.ticketId', `ticket ${ticketId} is ${ticket.status}: a work order is created only from an open ticket`);
      }
      const row = await insertIntervention(client, {
        ...common,
        collectivityId: ticket.collectivityId,
        origin: 'TICKET',
        ticketId,
        alarmId: null,
        equipmentId: ticket.equipmentId,
        location: [ticket.lon, ticket.lat],
      });
      await recordInterventionChange(client, { intervention: row, action: 'CREATED', fromStatus: null, toStatus: row.status, actor: this.actor, note: `from ticket ${ticketId}` });
      const note = `work order ${row.id} created`;
      let status: TicketStatus = ticket.status;
      if (status === 'NEW') status = (await this.moveTicket(client, ticketId, 'ACKNOWLEDGED', note)).status;
      if (status === 'ACKNOWLEDGED') await this.moveTicket(client, ticketId, 'ASSIGNED', note);
      return row;
    });
  }

  private async fromAlarm(alarmId: string, common: CommonValues): Promise<InterventionRow> {
    const { rows } = await this.pool.query<{ equipmentId: string; collectivityId: string; code: string; message: string | null }>(
      `SELECT equipment_id AS "equipmentId", collectivity_id AS "collectivityId", code, message FROM ticket_known_alarms WHERE alarm_id = $1`,
      [alarmId],
    );
    const alarm = rows[0];
    if (!alarm) throw badInput('input.alarmId', `no active alarm with id ${JSON.stringify(alarmId)} (unknown, or already cleared)`);
    requireRoleIn(this.viewer, alarm.collectivityId, DISPATCHERS, 'input.alarmId');
    const equipment = await this.equipment(alarm.equipmentId, 'input.alarmId');
    return this.context.resources.inTransaction(async (client) => {
      // Cleared meanwhile (the known-alarms consumer deleted it): refused as if it had been cleared before.
      const { rowCount } = await client.query('SELECT 1 FROM ticket_known_alarms WHERE alarm_id = $1 FOR SHARE', [alarmId]);
      if (!rowCount) throw badInput('input.alarmId', `no active alarm with id ${JSON.stringify(alarmId)} (unknown, or already cleared)`);
      const row = await insertIntervention(client, {
        ...common,
        collectivityId: alarm.collectivityId,
        origin: 'ALARM',
        ticketId: null,
        alarmId,
        equipmentId: alarm.equipmentId,
        location: equipment?.location?.coordinates ?? null,
      });
      await recordInterventionChange(client, { intervention: row, action: 'CREATED', fromStatus: null, toStatus: row.status, actor: this.actor, note: `from alarm ${alarmId} (${alarm.code})` });
      return row;
    });
  }

  private async planned(input: CreateInterventionInput, common: CommonValues): Promise<InterventionRow> {
    const collectivityId = input.collectivityId;
    if (collectivityId === null || collectivityId === undefined) {
      throw badInput('input.collectivityId', 'is required for a planned intervention (one given neither ticketId nor alarmId)');
    }
    if (!(COLLECTIVITY_IDS as readonly string[]).includes(collectivityId)) {
      throw badInput('input.collectivityId', `is not a known collectivity (known: ${COLLECTIVITY_IDS.join(', ')})`);
    }
    requireRoleIn(this.viewer, collectivityId, DISPATCHERS, 'input.collectivityId');
    let equipmentId: string | null = null;
    let location: [number, number] | null = null;
    if (input.location) {
      const { lon, lat } = input.location;
      if (!(lon >= -180 && lon <= 180)) throw badInput('input.location.lon', `must be in [-180, 180] (got ${lon})`);
      if (!(lat >= -90 && lat <= 90)) throw badInput('input.location.lat', `must be in [-90, 90] (got ${lat})`);
      await this.insideTerritory(lon, lat);
      location = [lon, lat];
    }
    if (input.equipmentId !== null && input.equipmentId !== undefined) {
      equipmentId = line('input.equipmentId', input.equipmentId, MAX_NAME);
      const equipment = await this.equipment(equipmentId, 'input.equipmentId');
      if (!equipment) throw badInput('input.equipmentId', `no asset with id ${JSON.stringify(equipmentId)}`);
      if (equipment.collectivity.id !== collectivityId) {
        throw badInput('input.equipmentId', `asset ${equipmentId} belongs to ${equipment.collectivity.id}, not to ${collectivityId}`);
      }
      location ??= equipment.location?.coordinates ?? null;
    }
    return this.context.resources.inTransaction(async (client) => {
      const row = await insertIntervention(client, { ...common, collectivityId, origin: 'PLANNED', ticketId: null, alarmId: null, equipmentId, location });
      await recordInterventionChange(client, { intervention: row, action: 'CREATED', fromStatus: null, toStatus: row.status, actor: this.actor, note: 'planned' });
      return row;
    });
  }

  /** The asset as equipment tells the caller (his token forwarded: a camera's location is staff's). */
  private async equipment(id: string, field: string): Promise<PeerEquipment | null> {
    let answer;
    try {
      answer = await this.context.resources.peers.query<{ equipment: PeerEquipment | null }>(
        'equipment',
        'query InterventionAsset($id: ID!) { equipment(id: $id) { id collectivity { id } location { coordinates } } }',
        { id },
        { authorization: this.viewer.token ? `Bearer ${this.viewer.token}` : undefined, requestId: this.context.requestId },
      );
    } catch (error) {
      if (error instanceof PeerUnavailableError) throw unavailable('equipment', error, field);
      throw error;
    }
    if (answer.errors?.length || answer.data === undefined || answer.data === null) {
      throw unavailable('equipment', new Error(answer.errors?.[0]?.message ?? 'no data'), field);
    }
    return answer.data.equipment;
  }

  private async insideTerritory(lon: number, lat: number): Promise<void> {
    let answer;
    try {
      answer = await this.context.resources.peers.query<{ locate: { inTerritory: boolean } }>(
        'territory',
        'query InterventionPlace($lon: Float!, $lat: Float!) { locate(lon: $lon, lat: $lat) { inTerritory } }',
        { lon, lat },
        { requestId: this.context.requestId },
      );
    } catch (error) {
      if (error instanceof PeerUnavailableError) throw unavailable('territory', error, 'input.location');
      throw error;
    }
    if (!answer.data?.locate) throw unavailable('territory', new Error(answer.errors?.[0]?.message ?? 'no data'), 'input.location');
    if (!answer.data.locate.inTerritory) throw badInput('input.location', `[${lon}, ${lat}] is outside the territory`);
  }

  // --- Changes -----------------------------------------------------------------------

  /** `Mutation.updateIntervention`: assign, schedule, start, close out or cancel, in one transaction. */
  async update(input: UpdateInterventionInput): Promise<InterventionRow> {
    if (isPublic(this.viewer)) throw unauthenticated('authentication required: work orders are changed by their collectivity’s operators and their agent');
    const id = input.id;
    const given = (value: unknown) => value !== undefined;
    const changesSomething = ['assignee', 'team', 'scheduledStart', 'scheduledEnd', 'status', 'closeNotes', 'minutesSpent', 'note'].some((f) =>
      given((input as Record<string, unknown>)[f]),
    );
    if (!changesSomething) throw badInput('input', 'must change at least one field');
    if (input.status === null) throw badInput('input.status', 'must not be null');
    if (input.status === 'PLANNED') throw badInput('input.status', 'a work order does not move back to PLANNED (allowed targets: ASSIGNED, IN_PROGRESS, DONE, CANCELLED)');
    const assigneeSub = input.assignee === null || input.assignee === undefined ? input.assignee : line('input.assignee', input.assignee, MAX_NAME);
    const team = input.team === null || input.team === undefined ? input.team : line('input.team', input.team, MAX_NAME);
    const closeNotes = text('input.closeNotes', input.closeNotes);
    if (input.minutesSpent !== null && input.minutesSpent !== undefined) minutes('input.minutesSpent', input.minutesSpent);
    const note = text('input.note', input.note);
    if (input.status !== 'DONE') {
      if (given(input.closeNotes)) throw badInput('input.closeNotes', 'is given at close-out (status DONE)');
      if (given(input.minutesSpent)) throw badInput('input.minutesSpent', 'is given at close-out (status DONE)');
    } else {
      if (!closeNotes) throw badInput('input.closeNotes', 'is required to close out (what was done)');
      if (input.minutesSpent === null || input.minutesSpent === undefined) throw badInput('input.minutesSpent', 'is required to close out (the time spent, in minutes)');
    }
    if (!ROW_ID.test(id)) throw notFound(`no intervention with id ${JSON.stringify(id)}`, 'input.id');

    const row = await this.context.resources.inTransaction(async (client) => {
      const current = await lockIntervention(client, id);
      if (!current) throw notFound(`no intervention with id ${id}`, 'input.id');
      const dispatcher = this.dispatches.has(current.collectivityId);
      if (!dispatcher) {
        if (!this.works.has(current.collectivityId)) {
          throw forbidden(`input.id: needs role ${[...FIELD_AGENTS, ...DISPATCHERS].join(' or ')} in collectivity '${current.collectivityId}'`, 'input.id');
        }
        if (current.assigneeSub !== this.viewer.sub) throw forbidden(`input.id: intervention ${id} is not assigned to you: an agent changes only his own work orders`, 'input.id');
        const dispatchOnly = (['assignee', 'team', 'scheduledStart', 'scheduledEnd'] as const).find((f) => given(input[f]));
        if (dispatchOnly) throw forbidden(`input.${dispatchOnly}: only ${DISPATCHERS.join(' and ')} of '${current.collectivityId}' assign and schedule work orders`, `input.${dispatchOnly}`);
        if (input.status && !AGENT_MOVES.includes(input.status)) {
          throw forbidden(`input.status: only ${DISPATCHERS.join(' and ')} of '${current.collectivityId}' move a work order to ${input.status}`, 'input.status');
        }
      }

      const steps: Step[] = [];
      const changes: InterventionChanges = {};
      let status = current.status;
      const final = status === 'DONE' || status === 'CANCELLED';
      const reassigns = (given(assigneeSub) && assigneeSub !== current.assigneeSub) || (given(team) && team !== current.team);
      if (given(assigneeSub) || given(team)) {
        const field = given(assigneeSub) ? 'input.assignee' : 'input.team';
        if (final) throw badInput(field, `intervention ${id} is ${status}: it is not assigned any more`);
        const nextAssignee = given(assigneeSub) ? assigneeSub : current.assigneeSub;
        const nextTeam = given(team) ? team : current.team;
        if (!nextAssignee && !nextTeam && status !== 'PLANNED') throw badInput(field, `intervention ${id} is ${status}: it stays assigned to an agent or a team (give the new one)`);
        if (reassigns) {
          if (given(assigneeSub)) changes.assigneeSub = assigneeSub;
          if (given(team)) changes.team = team;
          if (status === 'PLANNED') status = changes.status = 'ASSIGNED';
          steps.push({ action: 'ASSIGNED', toStatus: status });
        }
      }
      if (given(input.scheduledStart) || given(input.scheduledEnd)) {
        const field = given(input.scheduledStart) ? 'input.scheduledStart' : 'input.scheduledEnd';
        if (final) throw badInput(field, `intervention ${id} is ${current.status}: it is not scheduled any more`);
        const start = given(input.scheduledStart) ? (input.scheduledStart ?? null) : current.scheduledStart;
        const end = given(input.scheduledEnd) ? (input.scheduledEnd ?? null) : current.scheduledEnd;
        schedule(start, end, given(input.scheduledEnd) ? 'input.scheduledEnd' : 'input.scheduledStart');
        if (given(input.scheduledStart)) changes.scheduledStart = start;
        if (given(input.scheduledEnd)) changes.scheduledEnd = end;
        steps.push({ action: 'SCHEDULED', toStatus: status });
      }
      if (input.status && !(input.status === status && input.status === 'ASSIGNED' && reassigns)) {
        const to = input.status;
        if (to === 'ASSIGNED' && status === 'PLANNED' && !current.assigneeSub && !current.team) {
          throw badInput('input.status', 'a work order is assigned to an agent or a team: give assignee or team');
        }
        if (!MOVES[status].includes(to)) {
          const allowed = MOVES[status];
          throw badInput('input.status', `cannot move intervention ${id} from ${status} to ${to} (allowed from ${status}: ${allowed.length ? allowed.join(', ') : 'none, it is final'})`);
        }
        changes.status = to;
        if (to === 'IN_PROGRESS') changes.startedAt = 'now';
        if (to === 'DONE') {
          changes.closedAt = 'now';
          changes.closeNotes = closeNotes!;
          changes.minutesSpent = input.minutesSpent!;
        }
        if (to === 'CANCELLED') changes.closedAt = 'now';
        steps.push({ action: to === 'ASSIGNED' ? 'ASSIGNED' : to === 'IN_PROGRESS' ? 'STARTED' : to === 'DONE' ? 'CLOSED' : 'CANCELLED', toStatus: to });
        status = to;
      }
      if (steps.length === 0) steps.push({ action: 'UPDATED', toStatus: status });

      // The ticket first (locked in the order every change takes: work order, then ticket), so that two
      // work orders of one ticket closed at once see each other's outcome.
      let ticket: TicketRow | null = null;
      if (current.ticketId && changes.status && changes.status !== 'ASSIGNED') {
        const { rows } = await client.query<TicketRow>(`SELECT ${TICKET_COLUMNS} FROM tickets t WHERE t.id = $1 FOR UPDATE`, [current.ticketId]);
        ticket = rows[0] ?? null;
      }
      const written = await updateIntervention(client, id, changes);
      let from = current.status;
      for (const step of steps) {
        await recordInterventionChange(client, {
          intervention: { ...written, status: step.toStatus },
          action: step.action,
          fromStatus: from,
          toStatus: step.toStatus,
          actor: this.actor,
          note,
        });
        from = step.toStatus;
      }
      if (ticket && changes.status) await this.followTicket(client, ticket, written);
      return written;
    });
    this.byId.clear(id).prime(id, row);
    this.histories.clear(id);
    this.context.log.info({ actor: this.viewer.sub, interventionId: id, status: row.status, assignee: row.assigneeSub }, 'intervention changed');
    return row;
  }

  /** The ticket's move that follows a work order's: started → IN_PROGRESS; the last one closed out → RESOLVED; the last one of an ASSIGNED ticket cancelled → ACKNOWLEDGED. */
  private async followTicket(client: pg.PoolClient, ticket: TicketRow, row: InterventionRow): Promise<void> {
    const allows = (to: TicketStatus) => TRANSITIONS[ticket.status].includes(to);
    if (row.status === 'IN_PROGRESS') {
      if ((ticket.status === 'ASSIGNED' || ticket.status === 'ACKNOWLEDGED') && allows('IN_PROGRESS')) {
        await this.moveTicket(client, ticket.id, 'IN_PROGRESS', `work order ${row.id} started`);
      }
      return;
    }
    const others = await otherOpenInterventions(client, ticket.id, row.id);
    if (others > 0) return;
    if (row.status === 'DONE' && allows('RESOLVED')) {
      await this.moveTicket(client, ticket.id, 'RESOLVED', `work order ${row.id} done`);
    } else if (row.status === 'CANCELLED' && ticket.status === 'ASSIGNED' && allows('ACKNOWLEDGED')) {
      await this.moveTicket(client, ticket.id, 'ACKNOWLEDGED', `work order ${row.id} cancelled`);
    }
  }

  private async moveTicket(client: pg.PoolClient, ticketId: string, to: TicketStatus, note: string): Promise<TicketRow> {
    const moved = await transitionTicket(client, this.context.resources, { ticketId, to, actor: this.actor, note });
    this.context.tickets.byId.clear(ticketId);
    return moved;
  }

  // --- Batches -----------------------------------------------------------------------

  /** One statement per group of keys sharing their page arguments. */
  private async loadEquipmentPages(keys: readonly EquipmentPageKey[]): Promise<InterventionRow[][]> {
    const results: InterventionRow[][] = keys.map(() => []);
    const groups = new Map<string, number[]>();
    keys.forEach((key, i) => {
      const signature = JSON.stringify([key.status, key.limit, key.after?.createdAt.toISOString() ?? null, key.after?.id ?? null]);
      groups.set(signature, [...(groups.get(signature) ?? []), i]);
    });
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        const { status, limit, after } = keys[indexes[0]];
        const pages = await loadEquipmentInterventionPages(this.pool, [...new Set(indexes.map((i) => keys[i].equipmentId))], this.scope, { status, limit, after });
        for (const i of indexes) {
          results[i] = pages.get(keys[i].equipmentId) ?? [];
          for (const row of results[i]) this.byId.prime(row.id, row);
        }
      }),
    );
    return results;
  }

  private async loadEquipmentCounts(keys: readonly { equipmentId: string; status: readonly InterventionStatus[] | null }[]): Promise<number[]> {
    const results = keys.map(() => 0);
    const groups = new Map<string, number[]>();
    keys.forEach((key, i) => groups.set(JSON.stringify(key.status), [...(groups.get(JSON.stringify(key.status)) ?? []), i]));
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        const counts = await countEquipmentInterventions(this.pool, [...new Set(indexes.map((i) => keys[i].equipmentId))], this.scope, keys[indexes[0]].status);
        for (const i of indexes) results[i] = counts.get(keys[i].equipmentId) ?? 0;
      }),
    );
    return results;
  }
}

/** What every origin shares of a new work order. */
type CommonValues = Pick<
  Parameters<typeof insertIntervention>[1],
  'title' | 'description' | 'status' | 'assigneeSub' | 'team' | 'scheduledStart' | 'scheduledEnd' | 'affectsCarriageway' | 'stopIds' | 'routeIds' | 'createdBy'
>;
