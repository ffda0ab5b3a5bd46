/**
 * The SQL of interventions (work orders): the SELECT list giving an `InterventionRow`, batched
 * reads by id, by ticket, by asset (a LATERAL page per asset) and their histories, the row lock
 * of a change, the insert and the update. Visibility is a condition the service passes in
 * (`VisibilityScope`): operators and admins see their collectivities' work orders, an agent those
 * assigned to him; nothing here decides who may see what.
 */
import type pg from 'pg';
import type { InterventionRow, InterventionStatus } from './types.js';

/** A pool or a client inside a transaction. */
type Queryable = Pick<pg.Pool, 'query'> | pg.ClientBase;

/** The columns of `interventions` as a SELECT list giving an `InterventionRow` (table alias `i`). */
export const INTERVENTION_COLUMNS = `i.id::text AS id, i.collectivity_id AS "collectivityId", i.origin, i.ticket_id::text AS "ticketId",
  i.alarm_id AS "alarmId", i.equipment_id AS "equipmentId", i.title, i.description,
  CASE WHEN i.geom IS NULL THEN NULL ELSE ST_X(i.geom) END AS lon, CASE WHEN i.geom IS NULL THEN NULL ELSE ST_Y(i.geom) END AS lat,
  i.status, i.assignee_sub AS "assigneeSub", i.team, i.scheduled_start AS "scheduledStart", i.scheduled_end AS "scheduledEnd",
  i.started_at AS "startedAt", i.closed_at AS "closedAt", i.close_notes AS "closeNotes", i.minutes_spent AS "minutesSpent",
  i.affects_carriageway AS "affectsCarriageway", i.stop_ids AS "stopIds", i.route_ids AS "routeIds", i.created_by AS "createdBy",
  i.created_at AS "createdAt", i.updated_at AS "updatedAt", i.version`;

/** One entry of `intervention_history`. */
export interface InterventionHistoryRow {
  interventionId: string;
  at: Date;
  action: string;
  fromStatus: InterventionStatus | null;
  toStatus: InterventionStatus | null;
  actor: string | null;
  note: string | null;
}

/** Open work orders: what keeps a ticket from being resolved by another one's close-out. */
export const OPEN_INTERVENTION_STATUSES: readonly InterventionStatus[] = ['PLANNED', 'ASSIGNED', 'IN_PROGRESS'];

/**
 * Who sees which work orders: every one of `allOf` (the caller's collectivities as operator or
 * admin), and those of `ownIn` (as agent) assigned to `sub`.
 */
export interface VisibilityScope {
  allOf: readonly string[];
  ownIn: readonly string[];
  sub: string | null;
}

/** The scope as a SQL condition on alias `i`, its parameters appended to `params`. */
export function visibleCondition(scope: VisibilityScope, params: unknown[]): string {
  params.push([...scope.allOf], [...scope.ownIn], scope.sub);
  const n = params.length;
  return `(i.collectivity_id = ANY($${n - 2}::text[]) OR (i.collectivity_id = ANY($${n - 1}::text[]) AND i.assignee_sub = $${n}::text))`;
}

/** The sort key of lists, newest first: (created_at, id) descending. */
export interface InterventionKey {
  createdAt: Date;
  id: string;
}

export const interventionCursorKey = (row: Pick<InterventionRow, 'createdAt' | 'id'>) => `${row.createdAt.toISOString()}|${row.id}`;

export async function loadInterventions(db: Queryable, ids: readonly string[]): Promise<(InterventionRow | null)[]> {
  const { rows } = await db.query<InterventionRow>(`SELECT ${INTERVENTION_COLUMNS} FROM interventions i WHERE i.id = ANY($1::bigint[])`, [ids]);
  const byId = new Map(rows.map((row) => [row.id, row]));
  return ids.map((id) => byId.get(id) ?? null);
}

export async function loadInterventionHistories(db: Queryable, ids: readonly string[]): Promise<InterventionHistoryRow[][]> {
  const { rows } = await db.query<InterventionHistoryRow>(
    `SELECT intervention_id::text AS "interventionId", at, action, from_status AS "fromStatus", to_status AS "toStatus", actor_sub AS actor, note
     FROM intervention_history WHERE intervention_id = ANY($1::bigint[]) ORDER BY intervention_id, id`,
    [ids],
  );
  const byIntervention = new Map<string, InterventionHistoryRow[]>();
  for (const row of rows) {
    const list = byIntervention.get(row.interventionId);
    if (list) list.push(row);
    else byIntervention.set(row.interventionId, [row]);
  }
  return ids.map((id) => byIntervention.get(id) ?? []);
}

/** The visible work orders of each ticket, oldest first. */
export async function loadTicketInterventions(db: Queryable, ticketIds: readonly string[], scope: VisibilityScope): Promise<InterventionRow[][]> {
  const params: unknown[] = [ticketIds];
  const visible = visibleCondition(scope, params);
  const { rows } = await db.query<InterventionRow>(
    `SELECT ${INTERVENTION_COLUMNS} FROM interventions i WHERE i.ticket_id = ANY($1::bigint[]) AND ${visible} ORDER BY i.created_at, i.id`,
    params,
  );
  const byTicket = new Map<string, InterventionRow[]>();
  for (const row of rows) {
    const list = byTicket.get(row.ticketId!);
    if (list) list.push(row);
    else byTicket.set(row.ticketId!, [row]);
  }
  return ticketIds.map((id) => byTicket.get(id) ?? []);
}

/** One page (`limit` rows, plus one to tell whether more follow) of visible work orders per asset, newest first. */
export async function loadEquipmentInterventionPages(
  db: Queryable,
  equipmentIds: readonly string[],
  scope: VisibilityScope,
  page: { status: readonly InterventionStatus[] | null; limit: number; after: InterventionKey | null },
): Promise<Map<string, InterventionRow[]>> {
  const params: unknown[] = [equipmentIds, page.limit + 1];
  const where = ['i.equipment_id = e.id', visibleCondition(scope, params)];
  if (page.status) {
    params.push(page.status);
    where.push(`i.status = ANY($${params.length}::text[])`);
  }
  if (page.after) {
    params.push(page.after.createdAt, page.after.id);
    where.push(`(i.created_at, i.id) < ($${params.length - 1}::timestamptz, $${params.length}::bigint)`);
  }
  const { rows } = await db.query<InterventionRow & { forEquipment: string }>(
    `SELECT p.* FROM unnest($1::text[]) AS e(id)
     CROSS JOIN LATERAL (SELECT ${INTERVENTION_COLUMNS}, e.id AS "forEquipment" FROM interventions i
                         WHERE ${where.join(' AND ')} ORDER BY i.created_at DESC, i.id DESC LIMIT $2) p`,
    params,
  );
  const byEquipment = new Map<string, InterventionRow[]>();
  for (const { forEquipment, ...row } of rows) {
    const list = byEquipment.get(forEquipment);
    if (list) list.push(row);
    else byEquipment.set(forEquipment, [row]);
  }
  return byEquipment;
}

/** How many visible work orders each asset has (with the status filter). */
export async function countEquipmentInterventions(
  db: Queryable,
  equipmentIds: readonly string[],
  scope: VisibilityScope,
  status: readonly InterventionStatus[] | null,
): Promise<Map<string, number>> {
  const params: unknown[] = [equipmentIds];
  const where = ['i.equipment_id = ANY($1::text[])', visibleCondition(scope, params)];
  if (status) {
    params.push(status);
    where.push(`i.status = ANY($${params.length}::text[])`);
  }
  const { rows } = await db.query<{ equipmentId: string; count: number }>(
    `SELECT i.equipment_id AS "equipmentId", count(*)::int AS count FROM interventions i WHERE ${where.join(' AND ')} GROUP BY i.equipment_id`,
    params,
  );
  return new Map(rows.map((row) => [row.equipmentId, row.count]));
}

/** The row, locked for the rest of the caller's transaction; null when there is none. */
export async function lockIntervention(client: pg.ClientBase, id: string): Promise<InterventionRow | null> {
  const { rows } = await client.query<InterventionRow>(`SELECT ${INTERVENTION_COLUMNS} FROM interventions i WHERE i.id = $1 FOR UPDATE`, [id]);
  return rows[0] ?? null;
}

/** Whether the ticket has open work orders other than `exceptId`. */
export async function otherOpenInterventions(client: pg.ClientBase, ticketId: string, exceptId: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM interventions WHERE ticket_id = $1 AND id <> $2 AND status = ANY($3::text[])`,
    [ticketId, exceptId, OPEN_INTERVENTION_STATUSES],
  );
  return rows[0].n;
}

export interface NewIntervention {
  collectivityId: string;
  origin: InterventionRow['origin'];
  ticketId: string | null;
  alarmId: string | null;
  equipmentId: string | null;
  title: string;
  description: string | null;
  location: [number, number] | null;
  status: InterventionStatus;
  assigneeSub: string | null;
  team: string | null;
  scheduledStart: Date | null;
  scheduledEnd: Date | null;
  affectsCarriageway: boolean;
  stopIds: string[];
  routeIds: string[];
  createdBy: string | null;
}

export async function insertIntervention(client: pg.ClientBase, values: NewIntervention): Promise<InterventionRow> {
  const { rows } = await client.query<InterventionRow>(
    `INSERT INTO interventions AS i (collectivity_id, origin, ticket_id, alarm_id, equipment_id, title, description, geom, status,
                                     assignee_sub, team, scheduled_start, scheduled_end, affects_carriageway, stop_ids, route_ids, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7,
             CASE WHEN $8::float8 IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint($8::float8, $9::float8), 4326) END,
             $10, $11, $12, $13, $14, $15, $16, $17, $18)
     RETURNING ${INTERVENTION_COLUMNS}`,
    [
      values.collectivityId,
      values.origin,
      values.ticketId,
      values.alarmId,
      values.equipmentId,
      values.title,
      values.description,
      values.location?.[0] ?? null,
      values.location?.[1] ?? null,
      values.status,
      values.assigneeSub,
      values.team,
      values.scheduledStart,
      values.scheduledEnd,
      values.affectsCarriageway,
      values.stopIds,
      values.routeIds,
      values.createdBy,
    ],
  );
  return rows[0];
}

/** The columns a change may set. */
export interface InterventionChanges {
  status?: InterventionStatus;
  assigneeSub?: string | null;
  team?: string | null;
  scheduledStart?: Date | null;
  scheduledEnd?: Date | null;
  /** `now`: the transaction's time. */
  startedAt?: 'now';
  closedAt?: 'now';
  closeNotes?: string;
  minutesSpent?: number;
}

const COLUMN_OF: Record<keyof InterventionChanges, string> = {
  status: 'status',
  assigneeSub: 'assignee_sub',
  team: 'team',
  scheduledStart: 'scheduled_start',
  scheduledEnd: 'scheduled_end',
  startedAt: 'started_at',
  closedAt: 'closed_at',
  closeNotes: 'close_notes',
  minutesSpent: 'minutes_spent',
};

/** Writes the changes (and bumps `version`, `updated_at`) on the locked row; returns it as it is now. */
export async function updateIntervention(client: pg.ClientBase, id: string, changes: InterventionChanges): Promise<InterventionRow> {
  const params: unknown[] = [id];
  const sets = ['version = i.version + 1', 'updated_at = now()'];
  for (const [field, value] of Object.entries(changes) as [keyof InterventionChanges, unknown][]) {
    if (value === undefined) continue;
    if (value === 'now' && (field === 'startedAt' || field === 'closedAt')) {
      sets.push(`${COLUMN_OF[field]} = now()`);
      continue;
    }
    params.push(value);
    sets.push(`${COLUMN_OF[field]} = $${params.length}`);
  }
  const { rows } = await client.query<InterventionRow>(
    `UPDATE interventions AS i SET ${sets.join(', ')} WHERE i.id = $1 RETURNING ${INTERVENTION_COLUMNS}`,
    params,
  );
  return rows[0];
}
