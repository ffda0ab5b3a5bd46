/**
 * The SQL of live vehicles: states (`vehicle_states`), outliers (`vehicle_outliers`), the day's
 * assignments (`vehicle_assignments`), and the buses themselves from mobility's asset directory
 * (`mobility_assets`, kind BUS). A round of positions is written with one statement per table,
 * whatever the number of buses (unnest of arrays), and one `publishEvents` for its events.
 */
import type pg from 'pg';
import { publishEvents } from '@connecte/shared/events';
import { VEHICLE_TOPIC, type PredictedStopValue, type VehicleAssignmentRow, type VehicleEventPayload, type VehicleOutlierRow, type VehicleRow, type VehicleState } from './types.js';
import type { Network } from './network.js';
import { storedPredictions, type BlockAssignment } from './vehicle-progress.js';

type Queryable = Pick<pg.Pool, 'query'> | pg.ClientBase;

/**
 * Predictions as stored: `[[stopSequence, predicted arrival (epoch seconds)], …]` — a few hundred
 * bytes per bus rather than kilobytes of objects (a round of 2,000 buses wrote 5 MB of jsonb
 * otherwise, most of the round's time); the stop and the scheduled time come back from the trip's
 * stop_times (`storedPredictions`).
 */
const toStored = (predictions: PredictedStopValue[]): string => {
  let text = '[';
  for (let i = 0; i < predictions.length; i++) {
    const p = predictions[i];
    text += `${i === 0 ? '' : ','}[${p.stopSequence},${Math.round(p.predictedArrival.getTime() / 1000)}]`;
  }
  return `${text}]`;
};

const STATE_COLUMNS = `
  s.equipment_id AS "equipmentId", s.collectivity_id AS "collectivityId", s.observed_at AS "observedAt",
  ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.speed_mps AS "speedMps", s.bearing,
  to_char(s.service_date, 'YYYY-MM-DD') AS "serviceDate", s.trip_id AS "tripId", s.route_id AS "routeId",
  s.shape_dist_m AS "shapeDistM", s.delay_seconds AS "delaySeconds", s.current_status AS "currentStatus",
  s.stop_sequence AS "stopSequence", s.stop_id AS "stopId", s.predictions`;

type StateDbRow = Omit<VehicleState, 'predictions'> & { predictions: unknown };

/** With a network, the stored predictions come back resolved; without, empty (the tracker needs none). */
const stateOf = (row: StateDbRow, network?: Network): VehicleState => ({ ...row, predictions: network ? storedPredictions(network, row.tripId, row.serviceDate, row.predictions) : [] });

/** The states of these buses, by id (absent: no state yet). */
export async function loadStates(db: Queryable, ids: readonly string[]): Promise<Map<string, VehicleState>> {
  if (ids.length === 0) return new Map();
  const { rows } = await db.query<StateDbRow>(`SELECT ${STATE_COLUMNS} FROM vehicle_states s WHERE s.equipment_id = ANY($1::text[])`, [ids]);
  return new Map(rows.map((row) => [row.equipmentId, stateOf(row)]));
}

/** States of buses running trips (service date and trip known). */
export async function loadRunningStates(db: Queryable, tripIds: readonly string[], network: Network): Promise<VehicleState[]> {
  if (tripIds.length === 0) return [];
  const { rows } = await db.query<StateDbRow>(`SELECT ${STATE_COLUMNS} FROM vehicle_states s WHERE s.trip_id = ANY($1::text[])`, [tripIds]);
  return rows.map((row) => stateOf(row, network));
}

/** The blocks of these buses on these service days, by bus. */
export async function loadBlockAssignments(db: Queryable, ids: readonly string[], dates: readonly string[]): Promise<Map<string, BlockAssignment[]>> {
  const byBus = new Map<string, BlockAssignment[]>();
  if (ids.length === 0 || dates.length === 0) return byBus;
  const { rows } = await db.query<{ equipmentId: string; serviceDate: string; blockId: string }>(
    `SELECT equipment_id AS "equipmentId", to_char(service_date, 'YYYY-MM-DD') AS "serviceDate", block_id AS "blockId"
     FROM vehicle_assignments WHERE equipment_id = ANY($1::text[]) AND service_date = ANY($2::date[])
     ORDER BY service_date DESC`,
    [ids, dates],
  );
  for (const row of rows) {
    const list = byBus.get(row.equipmentId);
    if (list) list.push({ serviceDate: row.serviceDate, blockId: row.blockId });
    else byBus.set(row.equipmentId, [{ serviceDate: row.serviceDate, blockId: row.blockId }]);
  }
  return byBus;
}

/*
 * Array parameters in PostgreSQL's binary format (pg sends a Buffer parameter as binary): a round
 * of 2,000 buses has 32,000 values, which pg would otherwise write as text element by element and
 * the server parse back. Layout (array_recv): dimensions, has-nulls flag, element type, then the
 * length and lower bound of the one dimension, then each element's length (−1 for NULL) and bytes.
 */
const OID = { float8: 701, int4: 23, text: 25 } as const;

function binaryArray(values: readonly unknown[], oid: number, size: (value: unknown) => number, write: (buffer: Buffer, offset: number, value: unknown) => void): Buffer {
  let bytes = 20;
  for (const value of values) bytes += 4 + (value === null || value === undefined ? 0 : size(value));
  const buffer = Buffer.allocUnsafe(values.length === 0 ? 12 : bytes);
  buffer.writeInt32BE(values.length === 0 ? 0 : 1, 0);
  buffer.writeInt32BE(values.some((value) => value === null || value === undefined) ? 1 : 0, 4);
  buffer.writeInt32BE(oid, 8);
  if (values.length === 0) return buffer;
  buffer.writeInt32BE(values.length, 12);
  buffer.writeInt32BE(1, 16);
  let offset = 20;
  for (const value of values) {
    if (value === null || value === undefined) {
      buffer.writeInt32BE(-1, offset);
      offset += 4;
      continue;
    }
    const length = size(value);
    buffer.writeInt32BE(length, offset);
    write(buffer, offset + 4, value);
    offset += 4 + length;
  }
  return buffer;
}

export const float8Array = (values: readonly (number | null)[]) => binaryArray(values, OID.float8, () => 8, (b, o, v) => b.writeDoubleBE(v as number, o));
export const int4Array = (values: readonly (number | null)[]) => binaryArray(values, OID.int4, () => 4, (b, o, v) => b.writeInt32BE(v as number, o));
export const textArray = (values: readonly (string | null)[]) => binaryArray(values, OID.text, (v) => Buffer.byteLength(v as string), (b, o, v) => b.write(v as string, o, 'utf8'));

/*
 * The round's states: an UPDATE joined to the arrays for the buses that have a state (a hash join,
 * and HOT updates: the table keeps free room in its pages, fillfactor 50, and the indexed trip and
 * route rarely change), an INSERT for the others — one statement. It measured 3.6 times faster
 * than INSERT … ON CONFLICT DO UPDATE on 2,000 buses (bench/mobility-progress.ts). An older state
 * than the stored one is left out (`observed_at <`); a bus inserted meanwhile by another
 * transaction is left to it (DO NOTHING).
 */
const UPSERT_STATES = `
WITH v AS (
  SELECT u.id, u.coll, to_timestamp(u.ms / 1000) AS at, u.lon, u.lat, u.speed, u.bearing, u.day::date AS day, u.trip, u.route, u.dist, u.delay,
         u.status, u.seq, u.stop, u.predictions::jsonb AS predictions
  FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::text[], $9::text[], $10::text[],
              $11::float8[], $12::int4[], $13::text[], $14::int4[], $15::text[], $16::text[])
       AS u(id, coll, ms, lon, lat, speed, bearing, day, trip, route, dist, delay, status, seq, stop, predictions)
),
updated AS (
  UPDATE vehicle_states s
     SET collectivity_id = v.coll, observed_at = v.at, geom = ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326), speed_mps = v.speed, bearing = v.bearing,
         service_date = v.day, trip_id = v.trip, route_id = v.route, shape_dist_m = v.dist, delay_seconds = v.delay, current_status = v.status,
         stop_sequence = v.seq, stop_id = v.stop, predictions = v.predictions, updated_at = now()
    FROM v WHERE s.equipment_id = v.id AND s.observed_at < v.at
)
INSERT INTO vehicle_states (equipment_id, collectivity_id, observed_at, geom, speed_mps, bearing, service_date, trip_id, route_id,
                            shape_dist_m, delay_seconds, current_status, stop_sequence, stop_id, predictions, updated_at)
SELECT v.id, v.coll, v.at, ST_SetSRID(ST_MakePoint(v.lon, v.lat), 4326), v.speed, v.bearing, v.day, v.trip, v.route,
       v.dist, v.delay, v.status, v.seq, v.stop, v.predictions, now()
FROM v WHERE NOT EXISTS (SELECT 1 FROM vehicle_states s WHERE s.equipment_id = v.id)
ON CONFLICT (equipment_id) DO NOTHING`;

const INSERT_OUTLIERS = `
INSERT INTO vehicle_outliers (equipment_id, observed_at, reason, lon, lat, speed_mps)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::float8[], $5::float8[], $6::float8[])`;

/** The newest state of each bus, in one statement (UPSERT_STATES); an older state than the stored one is ignored. */
export async function upsertStates(client: pg.ClientBase, states: readonly VehicleState[]): Promise<void> {
  if (states.length === 0) return;
  // The newest of each bus (a round may hold several positions of one bus).
  const newest = new Map<string, VehicleState>();
  for (const state of states) {
    const known = newest.get(state.equipmentId);
    if (!known || known.observedAt < state.observedAt) newest.set(state.equipmentId, state);
  }
  const rows = [...newest.values()];
  await client.query({
    name: 'mobility-upsert-vehicle-states',
    text: UPSERT_STATES,
    values: [
      textArray(rows.map((s) => s.equipmentId)),
      textArray(rows.map((s) => s.collectivityId)),
      float8Array(rows.map((s) => s.observedAt.getTime())),
      float8Array(rows.map((s) => s.lon)),
      float8Array(rows.map((s) => s.lat)),
      float8Array(rows.map((s) => s.speedMps)),
      float8Array(rows.map((s) => s.bearing)),
      textArray(rows.map((s) => s.serviceDate)),
      textArray(rows.map((s) => s.tripId)),
      textArray(rows.map((s) => s.routeId)),
      float8Array(rows.map((s) => s.shapeDistM)),
      int4Array(rows.map((s) => s.delaySeconds)),
      textArray(rows.map((s) => s.currentStatus)),
      int4Array(rows.map((s) => s.stopSequence)),
      textArray(rows.map((s) => s.stopId)),
      textArray(rows.map((s) => toStored(s.predictions))),
    ],
  });
}

/** One `mobility.vehicle` event per state, without its predictions (a reader recomputes them: `predictionsOf`). */
export async function publishVehicleEvents(client: pg.ClientBase, states: readonly VehicleState[], blockOf: (state: VehicleState) => string | null = () => null): Promise<void> {
  if (states.length === 0) return;
  await publishEvents(
    client,
    states.map((state) => ({ topic: VEHICLE_TOPIC, collectivityId: state.collectivityId, payload: { state: { ...state, predictions: [] }, blockId: blockOf(state) } satisfies VehicleEventPayload })),
  );
}

/** The outliers, in one insert. */
export async function insertOutliers(client: pg.ClientBase, outliers: readonly (VehicleOutlierRow & { equipmentId: string })[]): Promise<void> {
  if (outliers.length === 0) return;
  await client.query({
    name: 'mobility-insert-vehicle-outliers',
    text: INSERT_OUTLIERS,
    values: [
      outliers.map((o) => o.equipmentId),
      outliers.map((o) => o.observedAt.toISOString()),
      outliers.map((o) => o.reason),
      outliers.map((o) => o.lon),
      outliers.map((o) => o.lat),
      outliers.map((o) => o.speedMps),
    ],
  });
}

/**
 * Writes a round in the caller's transaction: the newest state of each bus (one upsert), one
 * `mobility.vehicle` event per state (one insert), the outliers (one insert).
 */
export async function storeRound(
  client: pg.ClientBase,
  states: readonly VehicleState[],
  outliers: readonly (VehicleOutlierRow & { equipmentId: string })[],
  blockOf: (state: VehicleState) => string | null = () => null,
): Promise<void> {
  await upsertStates(client, states);
  await publishVehicleEvents(client, states, blockOf);
  await insertOutliers(client, outliers);
}

/** The state an event carries (dates revived; predictions empty: `predictionsOf` computes them). */
export function stateOfPayload(payload: unknown): { state: VehicleState; blockId: string | null } | null {
  const value = payload as Partial<VehicleEventPayload> | null;
  const raw = value?.state as (Omit<VehicleState, 'observedAt' | 'predictions'> & { observedAt: string }) | undefined;
  if (!raw || typeof raw.equipmentId !== 'string') return null;
  return {
    state: {
      ...raw,
      observedAt: new Date(raw.observedAt),
      predictions: [],
    },
    blockId: typeof value?.blockId === 'string' ? value.blockId : null,
  };
}

// --- Reads for GraphQL ------------------------------------------------------------------------------

export interface VehicleCriteria {
  vehicleIds?: readonly string[];
  routeIds?: readonly string[];
  inService?: boolean;
}

const VEHICLE_FROM = `
FROM mobility_assets a
LEFT JOIN vehicle_states s ON s.equipment_id = a.equipment_id`;

const VEHICLE_COLUMNS = `
  a.equipment_id AS "id", a.collectivity_id AS "assetCollectivityId", coalesce(a.details->>'fleetNumber', a.name) AS label,
  (SELECT va.block_id FROM vehicle_assignments va WHERE va.equipment_id = a.equipment_id AND va.service_date = coalesce(s.service_date, $1::date)) AS "blockId",
  s.equipment_id IS NOT NULL AS "hasState", ${STATE_COLUMNS}`;

type VehicleDbRow = StateDbRow & { id: string; assetCollectivityId: string; label: string | null; blockId: string | null; hasState: boolean };

const vehicleOf = (row: VehicleDbRow, network: Network): VehicleRow => ({
  equipmentId: row.id,
  collectivityId: row.assetCollectivityId,
  label: row.label,
  blockId: row.blockId,
  state: row.hasState ? stateOf(row, network) : null,
});

function where(criteria: VehicleCriteria, values: unknown[]): string {
  const clauses = [`a.kind = 'BUS'`, `a.status <> 'DECOMMISSIONED'`];
  if (criteria.vehicleIds) {
    values.push(criteria.vehicleIds);
    clauses.push(`a.equipment_id = ANY($${values.length}::text[])`);
  }
  if (criteria.routeIds) {
    values.push(criteria.routeIds);
    clauses.push(`s.route_id = ANY($${values.length}::text[]) AND s.trip_id IS NOT NULL`);
  }
  if (criteria.inService === true) clauses.push(`s.trip_id IS NOT NULL`);
  if (criteria.inService === false) clauses.push(`s.trip_id IS NULL`);
  return clauses.join(' AND ');
}

/** Buses by id (null for an id that is not a bus), `today` the service day of buses without a state. */
export async function loadVehicles(db: Queryable, ids: readonly string[], today: string, network: Network): Promise<(VehicleRow | null)[]> {
  const { rows } = await db.query<VehicleDbRow>(`SELECT ${VEHICLE_COLUMNS} ${VEHICLE_FROM} WHERE a.kind = 'BUS' AND a.equipment_id = ANY($2::text[])`, [today, ids]);
  const byId = new Map(rows.map((row) => [row.id, vehicleOf(row, network)]));
  return ids.map((id) => byId.get(id) ?? null);
}

/** A page of buses ordered by id, after `after` (an id), `limit + 1` rows. */
export async function listVehicles(db: Queryable, criteria: VehicleCriteria, today: string, after: string | null, limit: number, network: Network): Promise<VehicleRow[]> {
  const values: unknown[] = [today];
  let clause = where(criteria, values);
  if (after !== null) {
    values.push(after);
    clause += ` AND a.equipment_id > $${values.length}`;
  }
  values.push(limit + 1);
  const { rows } = await db.query<VehicleDbRow>(`SELECT ${VEHICLE_COLUMNS} ${VEHICLE_FROM} WHERE ${clause} ORDER BY a.equipment_id LIMIT $${values.length}`, values);
  return rows.map((row) => vehicleOf(row, network));
}

export async function countVehicles(db: Queryable, criteria: VehicleCriteria): Promise<number> {
  const values: unknown[] = [];
  const { rows } = await db.query<{ count: number }>(`SELECT count(*)::int AS count ${VEHICLE_FROM} WHERE ${where(criteria, values)}`, values);
  return rows[0].count;
}

/** Bus ids running a trip of each route. */
export async function loadRouteVehicleIds(db: Queryable, routeIds: readonly string[]): Promise<string[][]> {
  const { rows } = await db.query<{ routeId: string; id: string }>(
    `SELECT s.route_id AS "routeId", s.equipment_id AS id FROM vehicle_states s JOIN mobility_assets a ON a.equipment_id = s.equipment_id AND a.status <> 'DECOMMISSIONED'
     WHERE s.route_id = ANY($1::text[]) AND s.trip_id IS NOT NULL ORDER BY s.equipment_id`,
    [routeIds],
  );
  return routeIds.map((routeId) => rows.filter((row) => row.routeId === routeId).map((row) => row.id));
}

/** Each bus's newest outliers (`limit` each). */
export async function loadOutliers(db: Queryable, keys: readonly { id: string; limit: number }[]): Promise<VehicleOutlierRow[][]> {
  const max = Math.max(...keys.map((key) => key.limit));
  const { rows } = await db.query<VehicleOutlierRow & { equipmentId: string; n: number }>(
    `SELECT o.equipment_id AS "equipmentId", o.observed_at AS "observedAt", o.reason, o.lon, o.lat, o.speed_mps AS "speedMps"
     FROM unnest($1::text[]) AS ids(id)
     CROSS JOIN LATERAL (SELECT * FROM vehicle_outliers WHERE equipment_id = ids.id ORDER BY observed_at DESC, id DESC LIMIT $2) o`,
    [[...new Set(keys.map((key) => key.id))], max],
  );
  return keys.map((key) =>
    rows
      .filter((row) => row.equipmentId === key.id)
      .slice(0, key.limit)
      .map(({ observedAt, reason, lon, lat, speedMps }) => ({ observedAt, reason, lon, lat, speedMps })),
  );
}

export async function listAssignments(db: Queryable, serviceDate: string): Promise<VehicleAssignmentRow[]> {
  const { rows } = await db.query<VehicleAssignmentRow>(
    `SELECT to_char(service_date, 'YYYY-MM-DD') AS "serviceDate", block_id AS "blockId", equipment_id AS "equipmentId", assigned_at AS "assignedAt"
     FROM vehicle_assignments WHERE service_date = $1::date ORDER BY block_id`,
    [serviceDate],
  );
  return rows;
}

/** Assigns a bus to a block, replacing the block's bus and the bus's block that day; returns the row. */
export async function assignVehicle(client: pg.ClientBase, serviceDate: string, blockId: string, equipmentId: string, by: string): Promise<VehicleAssignmentRow> {
  await client.query(`DELETE FROM vehicle_assignments WHERE service_date = $1::date AND (block_id = $2 OR equipment_id = $3)`, [serviceDate, blockId, equipmentId]);
  const { rows } = await client.query<VehicleAssignmentRow>(
    `INSERT INTO vehicle_assignments (service_date, block_id, equipment_id, assigned_by, assigned_at) VALUES ($1::date, $2, $3, $4, now())
     RETURNING to_char(service_date, 'YYYY-MM-DD') AS "serviceDate", block_id AS "blockId", equipment_id AS "equipmentId", assigned_at AS "assignedAt"`,
    [serviceDate, blockId, equipmentId, by],
  );
  return rows[0];
}
