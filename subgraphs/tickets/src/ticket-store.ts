/**
 * The SQL of ticket reads: by ids (the DataLoader of every ticket reference: `context.tickets.byId`,
 * `Intervention.ticket`, personal data exports), lists with their criteria and keyset pages
 * (newest first: `created_at DESC, id DESC`), histories, duplicate counts, categories.
 */
import type pg from 'pg';
import type { Database } from '@connecte/shared/db';
import { CATEGORY_COLUMNS } from './report-service.js';
import { OPEN_STATUSES, TICKET_COLUMNS, type CategoryRow, type TicketAction, type TicketRow, type TicketStatus } from './types.js';

type Queryable = Pick<pg.Pool, 'query'> | pg.ClientBase;
const queryable = (db: Database | Queryable): Queryable => ('pool' in db ? db.pool : db);

/** Tickets by id, in the order asked (null for an id that names none). */
export async function loadTickets(db: Database | Queryable, ids: readonly string[]): Promise<(TicketRow | null)[]> {
  const wanted = ids.filter((id) => /^[1-9]\d{0,17}$/.test(id));
  if (wanted.length === 0) return ids.map(() => null);
  const { rows } = await queryable(db).query<TicketRow>(`SELECT ${TICKET_COLUMNS} FROM tickets t WHERE t.id = ANY($1::bigint[])`, [wanted]);
  const byId = new Map(rows.map((row) => [row.id, row]));
  return ids.map((id) => byId.get(id) ?? null);
}

/** Every category, in display order. */
export async function loadCategories(db: Queryable): Promise<CategoryRow[]> {
  const { rows } = await db.query<CategoryRow>(`SELECT ${CATEGORY_COLUMNS} FROM ticket_categories ORDER BY position, code`);
  return rows;
}

export interface HistoryRow {
  id: string;
  ticketId: string;
  at: Date;
  action: TicketAction;
  fromStatus: TicketStatus | null;
  toStatus: TicketStatus | null;
  actorSub: string | null;
  actorRoles: string[];
  note: string | null;
}

/** Each ticket's history, oldest first. */
export async function loadHistories(db: Queryable, ticketIds: readonly string[]): Promise<HistoryRow[][]> {
  const { rows } = await db.query<HistoryRow>(
    `SELECT id::text, ticket_id::text AS "ticketId", at, action, from_status AS "fromStatus", to_status AS "toStatus",
            actor_sub AS "actorSub", actor_roles AS "actorRoles", note
     FROM ticket_history h WHERE h.ticket_id = ANY($1::bigint[]) ORDER BY h.ticket_id, h.id`,
    [ticketIds],
  );
  const byTicket = new Map<string, HistoryRow[]>();
  for (const row of rows) byTicket.set(row.ticketId, [...(byTicket.get(row.ticketId) ?? []), row]);
  return ticketIds.map((id) => byTicket.get(id) ?? []);
}

/** How many duplicates are attached to each ticket. */
export async function loadDuplicateCounts(db: Queryable, ticketIds: readonly string[]): Promise<number[]> {
  const { rows } = await db.query<{ id: string; count: number }>(
    `SELECT duplicate_of::text AS id, count(*)::int AS count FROM tickets WHERE duplicate_of = ANY($1::bigint[]) GROUP BY duplicate_of`,
    [ticketIds],
  );
  const byId = new Map(rows.map((row) => [row.id, row.count]));
  return ticketIds.map((id) => byId.get(id) ?? 0);
}

/** The sort key of ticket lists, newest first. */
export interface TicketKey {
  createdAt: Date;
  id: string;
}

export const ticketCursorKey = (row: Pick<TicketRow, 'createdAt' | 'id'>) => `${row.createdAt.toISOString()}|${row.id}`;

/** Who sees which tickets' exact location (for `near`): the reporter's own, staff's collectivities'. */
export interface PrivateScope {
  sub: string | null;
  staffCollectivities: readonly string[];
}

/** What a list asks for (every member optional; AND between them). */
export interface TicketCriteria {
  collectivityIds?: readonly string[] | null;
  categories?: readonly string[] | null;
  status?: readonly TicketStatus[] | null;
  near?: { lon: number; lat: number; radiusMeters: number } | null;
  createdFrom?: Date | null;
  createdTo?: Date | null;
  breached?: boolean | null;
  reporterSub?: string | null;
  equipmentId?: string | null;
  /** True: open statuses only; false: the others. */
  open?: boolean | null;
}

/** Whether a ticket's acknowledge or resolve service level is breached now (DUPLICATE: never, its original counts). */
export const BREACHED_SQL = `(t.status <> 'DUPLICATE' AND (coalesce(t.acknowledged_at, now()) > t.ack_due_at
  OR coalesce(t.resolved_at, CASE WHEN t.status = 'REJECTED' THEN t.closed_at END, now()) > t.resolve_due_at))`;

/** The WHERE clause of `criteria` (ANDed), its parameters appended to `params`. */
export function whereOf(criteria: TicketCriteria, scope: PrivateScope, params: unknown[]): string[] {
  const where: string[] = [];
  const add = (sql: (n: number) => string, value: unknown) => {
    params.push(value);
    where.push(sql(params.length));
  };
  if (criteria.collectivityIds) add((n) => `t.collectivity_id = ANY($${n}::text[])`, [...criteria.collectivityIds]);
  if (criteria.categories) add((n) => `t.category_code = ANY($${n}::text[])`, [...criteria.categories]);
  if (criteria.status) add((n) => `t.status = ANY($${n}::text[])`, [...criteria.status]);
  if (criteria.createdFrom) add((n) => `t.created_at >= $${n}`, criteria.createdFrom);
  if (criteria.createdTo) add((n) => `t.created_at < $${n}`, criteria.createdTo);
  if (criteria.reporterSub !== undefined && criteria.reporterSub !== null) add((n) => `t.reporter_sub = $${n}`, criteria.reporterSub);
  if (criteria.equipmentId !== undefined && criteria.equipmentId !== null) add((n) => `t.equipment_id = $${n}`, criteria.equipmentId);
  if (criteria.open === true) add((n) => `t.status = ANY($${n}::text[])`, OPEN_STATUSES);
  if (criteria.open === false) add((n) => `NOT (t.status = ANY($${n}::text[]))`, OPEN_STATUSES);
  if (criteria.breached === true) where.push(BREACHED_SQL);
  if (criteria.breached === false) where.push(`NOT ${BREACHED_SQL}`);
  if (criteria.near) {
    const { lon: x, lat: y, radiusMeters } = criteria.near;
    // A box around the circle, widened by more than the coarse grid's half diagonal (about 80 m):
    // it holds every ticket whose exact or coarse location can match, and uses the GiST index.
    const margin = radiusMeters + 150;
    const dLat = (margin / 110_574) * 1.01;
    const dLon = Math.min((margin / (111_320 * Math.max(Math.cos((y * Math.PI) / 180), 0.01))) * 1.01, 360);
    params.push(x - dLon, y - dLat, x + dLon, y + dLat);
    where.push(`t.geom && ST_MakeEnvelope($${params.length - 3}, $${params.length - 2}, $${params.length - 1}, $${params.length}, 4326)`);
    params.push(x, y, radiusMeters, scope.sub, [...scope.staffCollectivities]);
    const [lon, lat, radius, sub, staff] = [params.length - 4, params.length - 3, params.length - 2, params.length - 1, params.length];
    // Who sees only the coarse location is matched on it (the grid of privacy.ts coarsePoint).
    where.push(`ST_DWithin(
      CASE WHEN (t.reporter_sub IS NOT NULL AND t.reporter_sub = $${sub}::text) OR t.collectivity_id = ANY($${staff}::text[]) THEN t.geom
           ELSE ST_SetSRID(ST_MakePoint(round(ST_X(t.geom) / 0.0015) * 0.0015, round(ST_Y(t.geom) / 0.001) * 0.001), 4326) END::geography,
      ST_SetSRID(ST_MakePoint($${lon}, $${lat}), 4326)::geography, $${radius}, true)`);
  }
  return where;
}

/** One page (`limit + 1` rows: the extra one tells whether another page follows), newest first. */
export async function listTickets(db: Queryable, criteria: TicketCriteria, scope: PrivateScope, after: TicketKey | null, limit: number): Promise<TicketRow[]> {
  const params: unknown[] = [];
  const where = whereOf(criteria, scope, params);
  if (after) {
    params.push(after.createdAt, after.id);
    where.push(`(t.created_at, t.id) < ($${params.length - 1}::timestamptz, $${params.length}::bigint)`);
  }
  params.push(limit + 1);
  const { rows } = await db.query<TicketRow>(
    `SELECT ${TICKET_COLUMNS} FROM tickets t ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
     ORDER BY t.created_at DESC, t.id DESC LIMIT $${params.length}`,
    params,
  );
  return rows;
}

/** How many tickets match, all pages. */
export async function countTickets(db: Queryable, criteria: TicketCriteria, scope: PrivateScope): Promise<number> {
  const params: unknown[] = [];
  const where = whereOf(criteria, scope, params);
  const { rows } = await db.query<{ count: number }>(`SELECT count(*)::int AS count FROM tickets t ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`, params);
  return rows[0].count;
}

/** One page per asset (`Equipment.tickets`), in one statement for a batch of assets. */
export async function listEquipmentTickets(
  db: Queryable,
  keys: readonly { equipmentId: string; open: boolean | null; limit: number; after: TicketKey | null }[],
): Promise<TicketRow[][]> {
  const { rows } = await db.query<TicketRow & { n: number }>(
    `SELECT k.n, x.* FROM unnest($1::text[], $2::boolean[], $3::int[], $4::timestamptz[], $5::bigint[]) WITH ORDINALITY AS k(equipment_id, open, lim, after_at, after_id, n)
     CROSS JOIN LATERAL (
       SELECT ${TICKET_COLUMNS} FROM tickets t
       WHERE t.equipment_id = k.equipment_id
         AND (k.open IS NULL OR (t.status = ANY($6::text[])) = k.open)
         AND (k.after_at IS NULL OR (t.created_at, t.id) < (k.after_at, k.after_id))
       ORDER BY t.created_at DESC, t.id DESC LIMIT k.lim + 1) AS x
     ORDER BY k.n`,
    [
      keys.map((k) => k.equipmentId),
      keys.map((k) => k.open),
      keys.map((k) => k.limit),
      keys.map((k) => k.after?.createdAt ?? null),
      keys.map((k) => k.after?.id ?? null),
      OPEN_STATUSES,
    ],
  );
  const pages: TicketRow[][] = keys.map(() => []);
  for (const { n, ...row } of rows) pages[Number(n) - 1].push(row);
  return pages;
}

/** How many tickets each (asset, open) pair has. */
export async function countEquipmentTickets(db: Queryable, keys: readonly { equipmentId: string; open: boolean | null }[]): Promise<number[]> {
  const { rows } = await db.query<{ n: number; count: number }>(
    `SELECT k.n, (SELECT count(*)::int FROM tickets t WHERE t.equipment_id = k.equipment_id AND (k.open IS NULL OR (t.status = ANY($3::text[])) = k.open)) AS count
     FROM unnest($1::text[], $2::boolean[]) WITH ORDINALITY AS k(equipment_id, open, n) ORDER BY k.n`,
    [keys.map((k) => k.equipmentId), keys.map((k) => k.open), OPEN_STATUSES],
  );
  return rows.map((row) => row.count);
}
