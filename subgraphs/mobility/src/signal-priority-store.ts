/**
 * SQL of transit-signal priority (`signal_priority_requests`): the requests the tracker's
 * transaction inserts (one per pass: bus, service day, trip, controller), the outbox the
 * `signal-priority` worker reads (claim, sent), the answers (acks), expiry, the controllers'
 * fault state (an open fault = a row with `fault_raised_at` and no `fault_cleared_at`), and the
 * reads of the API (pages, figures), each with the caller's visibility as a SQL condition.
 */
import type pg from 'pg';
import type { RouteRow, SignalPriorityRequestRow, SignalPriorityStatsValue, SignalPriorityStatus, TripRow } from './types.js';

type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

export const REQUEST_COLUMNS = `
  r.id::text AS id, r.controller_id AS "controllerId", r.collectivity_id AS "collectivityId", r.vehicle_id AS "vehicleId",
  r.trip_id AS "tripId", r.route_id AS "routeId", to_char(r.service_date, 'YYYY-MM-DD') AS "serviceDate",
  r.requested_at AS "requestedAt", r.expires_at AS "expiresAt", r.distance_m AS "distanceM", r.delay_seconds AS "delaySeconds",
  r.eta_seconds AS "etaSeconds", r.status, r.answered_at AS "answeredAt", r.error, r.seconds_saved AS "secondsSaved"`;

/** A request as the worker handles it: the row, plus where it goes. */
export interface OutboxRow extends SignalPriorityRequestRow {
  vehicleCollectivityId: string;
  sentAt: Date | null;
}

const OUTBOX_COLUMNS = `${REQUEST_COLUMNS}, r.vehicle_collectivity_id AS "vehicleCollectivityId", r.sent_at AS "sentAt"`;

export interface NewRequest {
  id: string;
  controllerId: string;
  collectivityId: string;
  vehicleId: string;
  vehicleCollectivityId: string;
  tripId: string;
  routeId: string;
  serviceDate: string;
  ttlSeconds: number;
  distanceM: number;
  delaySeconds: number;
  etaSeconds: number;
}

/** Inserts the requests of passes not requested yet (the pass key makes a repeat a no-op); returns those inserted. */
export async function insertRequests(client: pg.PoolClient, requests: NewRequest[]): Promise<OutboxRow[]> {
  if (requests.length === 0) return [];
  const column = <K extends keyof NewRequest>(key: K) => requests.map((request) => request[key]);
  const { rows } = await client.query<OutboxRow>(
    `WITH inserted AS (
       INSERT INTO signal_priority_requests AS r
         (id, controller_id, collectivity_id, vehicle_id, vehicle_collectivity_id, trip_id, route_id, service_date,
          requested_at, expires_at, distance_m, delay_seconds, eta_seconds)
       SELECT n.id, n.controller_id, n.collectivity_id, n.vehicle_id, n.vehicle_collectivity_id, n.trip_id, n.route_id, n.service_date,
              clock_timestamp(), clock_timestamp() + make_interval(secs => n.ttl), n.distance_m, n.delay_seconds, n.eta_seconds
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::date[],
                   $9::int[], $10::float8[], $11::int[], $12::float8[])
            AS n(id, controller_id, collectivity_id, vehicle_id, vehicle_collectivity_id, trip_id, route_id, service_date,
                 ttl, distance_m, delay_seconds, eta_seconds)
       ORDER BY n.controller_id, n.vehicle_id
       ON CONFLICT (vehicle_id, service_date, trip_id, controller_id) DO NOTHING
       RETURNING r.*
     )
     SELECT ${OUTBOX_COLUMNS} FROM inserted AS r`,
    [
      column('id'),
      column('controllerId'),
      column('collectivityId'),
      column('vehicleId'),
      column('vehicleCollectivityId'),
      column('tripId'),
      column('routeId'),
      column('serviceDate'),
      column('ttlSeconds'),
      column('distanceM'),
      column('delaySeconds'),
      column('etaSeconds'),
    ],
  );
  return rows;
}

/**
 * Takes up to `limit` committed, unsent, unexpired requests for sending (not those in `skip`,
 * already in this instance's hands): leased until `leaseMs` from now (at most their expiry) so
 * that no other instance sends them meanwhile. One short statement, no transaction held.
 */
export async function claimUnsent(db: Queryable, skip: readonly string[], limit: number, leaseMs: number): Promise<OutboxRow[]> {
  const { rows } = await db.query<OutboxRow>(
    `UPDATE signal_priority_requests AS r
        SET send_lease_until = LEAST(r.expires_at, now() + make_interval(secs => $3::float8 / 1000))
      WHERE r.id IN (
        SELECT id FROM signal_priority_requests
         WHERE status = 'REQUESTED' AND sent_at IS NULL AND expires_at > now()
           AND (send_lease_until IS NULL OR send_lease_until <= now())
           AND NOT (id = ANY($1::uuid[]))
         ORDER BY requested_at, id
         LIMIT $2
         FOR UPDATE SKIP LOCKED)
      RETURNING ${OUTBOX_COLUMNS}`,
    [skip, limit, leaseMs],
  );
  return rows.sort((a, b) => a.requestedAt.getTime() - b.requestedAt.getTime() || a.id.localeCompare(b.id));
}

/** The broker took the downlink (PUBACK). */
export async function markSent(db: Queryable, id: string): Promise<void> {
  await db.query(`UPDATE signal_priority_requests SET sent_at = now(), send_lease_until = NULL WHERE id = $1 AND sent_at IS NULL`, [id]);
}

/** The broker refused it, or it could not be published: another attempt once the lease is released. */
export async function releaseLease(db: Queryable, id: string): Promise<void> {
  await db.query(`UPDATE signal_priority_requests SET send_lease_until = NULL WHERE id = $1 AND sent_at IS NULL`, [id]);
}

/** Locks the row of an open request for its answer; null when unknown or answered already. */
export async function requestById(client: pg.PoolClient, id: string): Promise<(OutboxRow & { open: boolean }) | null> {
  const { rows } = await client.query<OutboxRow & { open: boolean }>(
    `SELECT ${OUTBOX_COLUMNS}, (r.status = 'REQUESTED') AS open FROM signal_priority_requests AS r WHERE r.id = $1 FOR UPDATE`,
    [id],
  );
  return rows[0] ?? null;
}

/** Records the controller's answer on a request still REQUESTED; null when it was not (a duplicate ack). */
export async function answerRequest(
  client: pg.PoolClient,
  id: string,
  status: Extract<SignalPriorityStatus, 'GRANTED' | 'DENIED'>,
  error: string | null,
  secondsSaved: number | null,
): Promise<OutboxRow | null> {
  const { rows } = await client.query<OutboxRow>(
    `UPDATE signal_priority_requests AS r
        SET status = $2, answered_at = now(), error = $3, seconds_saved = $4,
            sent_at = COALESCE(r.sent_at, now()), send_lease_until = NULL
      WHERE r.id = $1 AND r.status = 'REQUESTED'
      RETURNING ${OUTBOX_COLUMNS}`,
    [id, status, error, secondsSaved],
  );
  return rows[0] ?? null;
}

/**
 * Marks EXPIRED the requests left unanswered: sent ones once `graceMs` past their expiry (an ack
 * may still be on its way) when `sentToo`, unsent ones at their expiry.
 */
export async function expireRequests(client: pg.PoolClient, graceMs: number, sentToo: boolean, limit = 500): Promise<OutboxRow[]> {
  const { rows } = await client.query<OutboxRow>(
    `UPDATE signal_priority_requests AS r SET status = 'EXPIRED', send_lease_until = NULL
      WHERE r.id IN (
        SELECT id FROM signal_priority_requests
         WHERE status = 'REQUESTED'
           AND ((sent_at IS NULL AND expires_at <= now())
                OR ($2 AND sent_at IS NOT NULL AND expires_at + make_interval(secs => $1::float8 / 1000) <= now()))
         ORDER BY expires_at, id
         LIMIT $3
         FOR UPDATE SKIP LOCKED)
      RETURNING ${OUTBOX_COLUMNS}`,
    [graceMs, sentToo, limit],
  );
  return rows.sort((a, b) => a.requestedAt.getTime() - b.requestedAt.getTime() || a.id.localeCompare(b.id));
}

/** Serialises the fault bookkeeping of one controller (its answers and expiries, across instances). */
export async function lockController(client: pg.PoolClient, controllerId: string): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(hashtextextended('mobility.signal-priority:' || $1, 0))`, [controllerId]);
}

/** Whether the controller's `count` latest finished requests that were sent all went unanswered. */
export async function lastUnanswered(client: pg.PoolClient, controllerId: string, count: number): Promise<boolean> {
  const { rows } = await client.query<{ expired: number; total: number }>(
    `SELECT count(*) FILTER (WHERE status = 'EXPIRED')::int AS expired, count(*)::int AS total
       FROM (SELECT status FROM signal_priority_requests
              WHERE controller_id = $1 AND sent_at IS NOT NULL AND status <> 'REQUESTED'
              ORDER BY requested_at DESC, id DESC LIMIT $2) AS latest`,
    [controllerId, count],
  );
  return rows[0].total >= count && rows[0].expired === rows[0].total;
}

export async function hasOpenFault(client: pg.PoolClient, controllerId: string): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT 1 FROM signal_priority_requests WHERE controller_id = $1 AND fault_raised_at IS NOT NULL AND fault_cleared_at IS NULL LIMIT 1`,
    [controllerId],
  );
  return rows.length > 0;
}

export async function markFaultRaised(client: pg.PoolClient, requestId: string): Promise<void> {
  await client.query(`UPDATE signal_priority_requests SET fault_raised_at = now() WHERE id = $1`, [requestId]);
}

/** Closes the controller's open fault; whether there was one. */
export async function clearFault(client: pg.PoolClient, controllerId: string): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE signal_priority_requests SET fault_cleared_at = now()
      WHERE controller_id = $1 AND fault_raised_at IS NOT NULL AND fault_cleared_at IS NULL`,
    [controllerId],
  );
  return (rowCount ?? 0) > 0;
}

// --- Reads (the API) -----------------------------------------------------------------------------

/** Who sees what: everything (partner), or the requests to these collectivities' controllers or for their buses. */
export type PriorityScope = { all: true } | { all: false; collectivities: readonly string[] };

export interface RequestFilterValue {
  controllerIds: string[] | null;
  routeIds: string[] | null;
  status: SignalPriorityStatus[] | null;
  from: Date | null;
  to: Date | null;
}

/** Appends the scope's and the filter's conditions; returns the WHERE clause. */
function where(scope: PriorityScope, filter: RequestFilterValue, params: unknown[]): string {
  const conditions: string[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (!scope.all) {
    const p = param(scope.collectivities);
    conditions.push(`(r.collectivity_id = ANY(${p}::text[]) OR r.vehicle_collectivity_id = ANY(${p}::text[]))`);
  }
  if (filter.controllerIds) conditions.push(`r.controller_id = ANY(${param(filter.controllerIds)}::text[])`);
  if (filter.routeIds) conditions.push(`r.route_id = ANY(${param(filter.routeIds)}::text[])`);
  if (filter.status) conditions.push(`r.status = ANY(${param(filter.status)}::text[])`);
  if (filter.from) conditions.push(`r.requested_at >= ${param(filter.from)}`);
  if (filter.to) conditions.push(`r.requested_at < ${param(filter.to)}`);
  return conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';
}

export interface RequestCursor {
  requestedAt: Date;
  id: string;
}

/** A page, newest first (requested_at, then id, descending), `limit + 1` rows. */
export async function requestPage(
  db: Queryable,
  scope: PriorityScope,
  filter: RequestFilterValue,
  limit: number,
  after: RequestCursor | null,
): Promise<SignalPriorityRequestRow[]> {
  const params: unknown[] = [];
  let clause = where(scope, filter, params);
  if (after) {
    params.push(after.requestedAt, after.id);
    clause += `${clause ? ' AND' : 'WHERE'} (r.requested_at, r.id) < ($${params.length - 1}, $${params.length}::uuid)`;
  }
  params.push(limit + 1);
  const { rows } = await db.query<SignalPriorityRequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM signal_priority_requests AS r ${clause} ORDER BY r.requested_at DESC, r.id DESC LIMIT $${params.length}`,
    params,
  );
  return rows;
}

export async function countRequests(db: Queryable, scope: PriorityScope, filter: RequestFilterValue): Promise<number> {
  const params: unknown[] = [];
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM signal_priority_requests AS r ${where(scope, filter, params)}`, params);
  return rows[0].n;
}

const STATS = `count(*)::int AS requests,
  count(*) FILTER (WHERE r.status = 'GRANTED')::int AS grants,
  count(*) FILTER (WHERE r.status = 'DENIED')::int AS denials,
  count(*) FILTER (WHERE r.status = 'EXPIRED')::int AS expired,
  COALESCE(sum(r.seconds_saved) FILTER (WHERE r.status = 'GRANTED'), 0)::float8 AS "secondsSaved"`;

/** Figures per controller or per route over [from, to), in the scope; ordered by the key. */
export async function statsBy(
  db: Queryable,
  key: 'controller_id' | 'route_id',
  scope: PriorityScope,
  from: Date,
  to: Date,
  only: readonly string[] | null = null,
): Promise<{ key: string; stats: SignalPriorityStatsValue }[]> {
  const params: unknown[] = [];
  const clause = where(scope, { controllerIds: null, routeIds: null, status: null, from, to }, params);
  let extra = '';
  if (only) {
    params.push(only);
    extra = `${clause ? ' AND' : 'WHERE'} r.${key} = ANY($${params.length}::text[])`;
  }
  const { rows } = await db.query<SignalPriorityStatsValue & { key: string }>(
    `SELECT r.${key} AS key, ${STATS} FROM signal_priority_requests AS r ${clause}${extra} GROUP BY r.${key} ORDER BY r.${key}`,
    params,
  );
  return rows.map(({ key: k, ...stats }) => ({ key: k, stats }));
}

/** Figures of one controller over [from, to) for the requests of buses of these collectivities (null: all its requests). */
export async function controllerStats(
  db: Queryable,
  controllerIds: readonly string[],
  vehicleCollectivities: readonly string[] | null,
  from: Date,
  to: Date,
): Promise<Map<string, SignalPriorityStatsValue>> {
  const { rows } = await db.query<SignalPriorityStatsValue & { key: string }>(
    `SELECT r.controller_id AS key, ${STATS} FROM signal_priority_requests AS r
      WHERE r.controller_id = ANY($1::text[]) AND r.requested_at >= $2 AND r.requested_at < $3
        AND ($4::text[] IS NULL OR r.vehicle_collectivity_id = ANY($4::text[]))
      GROUP BY r.controller_id`,
    [controllerIds, from, to, vehicleCollectivities],
  );
  return new Map(rows.map(({ key, ...stats }) => [key, stats]));
}

export const EMPTY_STATS: SignalPriorityStatsValue = Object.freeze({ requests: 0, grants: 0, denials: 0, expired: 0, secondsSaved: 0 });

// --- What a request names (the network may have been replaced since) ----------------------------

export async function loadTrips(db: Queryable, ids: readonly string[]): Promise<Map<string, TripRow>> {
  const { rows } = await db.query<TripRow>(
    `SELECT trip_id AS "tripId", route_id AS "routeId", service_id AS "serviceId", shape_id AS "shapeId", headsign,
            short_name AS "shortName", direction_id AS "directionId", block_id AS "blockId"
       FROM gtfs_trips WHERE trip_id = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((row) => [row.tripId, row]));
}

export async function loadRoutes(db: Queryable, ids: readonly string[]): Promise<Map<string, RouteRow>> {
  const { rows } = await db.query<RouteRow>(
    `SELECT r.route_id AS "routeId", r.agency_id AS "agencyId", a.name AS "agencyName", r.short_name AS "shortName",
            r.long_name AS "longName", r.description, r.route_type AS "routeType", r.color, r.text_color AS "textColor",
            r.sort_order AS "sortOrder"
       FROM gtfs_routes r JOIN gtfs_agencies a ON a.agency_id = r.agency_id WHERE r.route_id = ANY($1::text[])`,
    [ids],
  );
  return new Map(rows.map((row) => [row.routeId, row]));
}
