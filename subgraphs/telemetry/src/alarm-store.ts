/**
 * The alarms' SQL, shared by the engine (raised and cleared by readings, silence and other
 * domains' events) and the service (acknowledged and cleared by operators, read by everyone who
 * may). Every change of an alarm writes its `alarm_history` row in the same statement and a
 * `telemetry.alarm` event in the same transaction (`publishChanges`).
 */
import type pg from 'pg';
import type { EquipmentKind } from '@connecte/shared/db';
import { publishEvents } from '@connecte/shared/events';
import type { AlarmSeverity } from './alarm-rules.js';
import { ALARM_TOPIC } from './types.js';

export type AlarmState = 'RAISED' | 'ACKNOWLEDGED' | 'CLEARED';
export type AlarmAction = 'RAISED' | 'RECURRED' | 'ACKNOWLEDGED' | 'CLEARED';

/** An alarm as stored (and as the `Alarm` resolvers receive it). */
export interface AlarmRow {
  id: string;
  code: string;
  severity: AlarmSeverity;
  state: AlarmState;
  message: string;
  equipmentId: string;
  collectivityId: string;
  kind: EquipmentKind;
  metric: string | null;
  value: number | null;
  setsFault: boolean;
  raisedAt: Date;
  lastRaisedAt: Date;
  occurrences: number;
  acknowledgedAt: Date | null;
  acknowledgedBy: string | null;
  acknowledgementNote: string | null;
  clearedAt: Date | null;
  clearedBy: string | null;
}

/** The alarm in a `telemetry.alarm` event: JSON, dates as ISO strings. */
export interface AlarmSnapshot {
  id: string;
  code: string;
  severity: AlarmSeverity;
  state: AlarmState;
  message: string;
  equipmentId: string;
  collectivityId: string;
  kind: EquipmentKind;
  metric: string | null;
  value: number | null;
  raisedAt: string;
  lastRaisedAt: string;
  occurrences: number;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  acknowledgementNote: string | null;
  clearedAt: string | null;
  clearedBy: string | null;
}

/** The body of a `telemetry.alarm` event (docs: interfaces, Events). */
export interface AlarmEventPayload {
  action: AlarmAction;
  alarm: AlarmSnapshot;
  setsFault: boolean;
}

/** `AlarmChange`, as `alarmChanged` streams it. */
export interface AlarmChangeValue {
  cursor: string;
  action: AlarmAction;
  alarm: AlarmRow;
}

export interface AlarmHistoryRow {
  alarmId: string;
  action: AlarmAction;
  at: Date;
  actor: string;
  note: string | null;
  value: number | null;
}

/** Who clears an alarm whose condition ended, and raises every alarm. */
export const SYSTEM_ACTOR = 'system';

export const ALARM_COLUMNS = `
  a.id::text AS id, a.code, a.severity, a.state, a.message, a.equipment_id AS "equipmentId",
  a.collectivity_id AS "collectivityId", a.kind, a.metric, a.value, a.sets_fault AS "setsFault",
  a.raised_at AS "raisedAt", a.last_raised_at AS "lastRaisedAt", a.occurrences,
  a.acknowledged_at AS "acknowledgedAt", a.acknowledged_by AS "acknowledgedBy",
  a.acknowledgement_note AS "acknowledgementNote", a.cleared_at AS "clearedAt", a.cleared_by AS "clearedBy"`;

type Queryable = Pick<pg.ClientBase, 'query'>;

const iso = (date: Date | null) => (date ? date.toISOString() : null);

export function snapshotOf(row: AlarmRow): AlarmSnapshot {
  return {
    id: row.id,
    code: row.code,
    severity: row.severity,
    state: row.state,
    message: row.message,
    equipmentId: row.equipmentId,
    collectivityId: row.collectivityId,
    kind: row.kind,
    metric: row.metric,
    value: row.value,
    raisedAt: row.raisedAt.toISOString(),
    lastRaisedAt: row.lastRaisedAt.toISOString(),
    occurrences: row.occurrences,
    acknowledgedAt: iso(row.acknowledgedAt),
    acknowledgedBy: row.acknowledgedBy,
    acknowledgementNote: row.acknowledgementNote,
    clearedAt: iso(row.clearedAt),
    clearedBy: row.clearedBy,
  };
}

const date = (value: string | null | undefined) => (value ? new Date(value) : null);

/** An event's snapshot back into a row (what `alarmChanged` serves: the alarm right after the change). */
export function rowOfSnapshot(snapshot: AlarmSnapshot, setsFault: boolean): AlarmRow {
  return {
    id: String(snapshot.id),
    code: snapshot.code,
    severity: snapshot.severity,
    state: snapshot.state,
    message: snapshot.message,
    equipmentId: snapshot.equipmentId,
    collectivityId: snapshot.collectivityId,
    kind: snapshot.kind,
    metric: snapshot.metric ?? null,
    value: snapshot.value ?? null,
    setsFault,
    raisedAt: new Date(snapshot.raisedAt),
    lastRaisedAt: new Date(snapshot.lastRaisedAt ?? snapshot.raisedAt),
    occurrences: snapshot.occurrences ?? 1,
    acknowledgedAt: date(snapshot.acknowledgedAt),
    acknowledgedBy: snapshot.acknowledgedBy ?? null,
    acknowledgementNote: snapshot.acknowledgementNote ?? null,
    clearedAt: date(snapshot.clearedAt),
    clearedBy: snapshot.clearedBy ?? null,
  };
}

/** One raise of an alarm (possibly `count` of them folded together, from one batch). */
export interface Raise {
  equipmentId: string;
  collectivityId: string;
  kind: EquipmentKind;
  code: string;
  severity: AlarmSeverity;
  message: string;
  metric: string | null;
  value: number | null;
  at: Date;
  setsFault: boolean;
  count: number;
}

/** The end of an open alarm's condition. */
export interface Clear {
  equipmentId: string;
  code: string;
  at: Date;
  value: number | null;
  /** Only if the alarm was last raised no later than `at` (a late reading does not clear a newer raise). */
  strict: boolean;
}

export interface AlarmChange {
  action: AlarmAction;
  row: AlarmRow;
}

/**
 * Raises alarms: a new one per (asset, code) without an open alarm, else the open one recurs
 * (`occurrences` + count, `last_raised_at`, value, severity and message of the latest raise). The
 * partial unique index makes concurrent raises of one alarm meet on one row. Keys must be distinct.
 */
const RAISE_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[],
                       $9::timestamptz[], $10::bool[], $11::int[])
    AS i(equipment_id, collectivity_id, kind, code, severity, message, metric, value, at, sets_fault, n)
),
up AS (
  INSERT INTO alarms AS a (code, severity, state, message, equipment_id, collectivity_id, kind, metric, value, sets_fault,
                           raised_at, last_raised_at, occurrences)
  SELECT code, severity, 'RAISED', message, equipment_id, collectivity_id, kind, metric, value, sets_fault, at, at, n FROM input
  ON CONFLICT (equipment_id, code) WHERE state <> 'CLEARED' DO UPDATE SET
    occurrences = a.occurrences + excluded.occurrences,
    last_raised_at = greatest(a.last_raised_at, excluded.last_raised_at),
    value = CASE WHEN excluded.last_raised_at >= a.last_raised_at THEN excluded.value ELSE a.value END,
    message = CASE WHEN excluded.last_raised_at >= a.last_raised_at THEN excluded.message ELSE a.message END,
    severity = excluded.severity,
    sets_fault = excluded.sets_fault,
    updated_at = now()
  RETURNING ${ALARM_COLUMNS}, (a.xmax = 0) AS inserted
),
history AS (
  INSERT INTO alarm_history (alarm_id, action, at, actor, value)
  SELECT up.id::bigint, CASE WHEN up.inserted THEN 'RAISED' ELSE 'RECURRED' END, i.at, '${SYSTEM_ACTOR}', i.value
  FROM up JOIN input i ON i.equipment_id = up."equipmentId" AND i.code = up.code
)
SELECT * FROM up`;

export async function raiseAlarms(client: Queryable, raises: readonly Raise[]): Promise<AlarmChange[]> {
  if (raises.length === 0) return [];
  const { rows } = await client.query<AlarmRow & { inserted: boolean }>(RAISE_SQL, [
    raises.map((r) => r.equipmentId),
    raises.map((r) => r.collectivityId),
    raises.map((r) => r.kind),
    raises.map((r) => r.code),
    raises.map((r) => r.severity),
    raises.map((r) => r.message),
    raises.map((r) => r.metric),
    raises.map((r) => r.value),
    raises.map((r) => r.at),
    raises.map((r) => r.setsFault),
    raises.map((r) => r.count),
  ]);
  return rows.map(({ inserted, ...row }) => ({ action: inserted ? 'RAISED' : 'RECURRED', row }));
}

/** Clears the open alarms of these (asset, code) pairs, by the system; pairs without one are ignored. */
const CLEAR_SQL = `
WITH input AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], $5::bool[]) AS i(equipment_id, code, at, value, strict)
),
up AS (
  UPDATE alarms AS a SET state = 'CLEARED', cleared_at = greatest(i.at, a.last_raised_at), cleared_by = '${SYSTEM_ACTOR}', updated_at = now()
  FROM input i
  WHERE a.equipment_id = i.equipment_id AND a.code = i.code AND a.state <> 'CLEARED' AND (NOT i.strict OR i.at >= a.last_raised_at)
  RETURNING ${ALARM_COLUMNS}, i.value AS "clearValue"
),
history AS (
  INSERT INTO alarm_history (alarm_id, action, at, actor, value)
  SELECT up.id::bigint, 'CLEARED', up."clearedAt", '${SYSTEM_ACTOR}', up."clearValue" FROM up
)
SELECT * FROM up`;

export async function clearAlarms(client: Queryable, clears: readonly Clear[]): Promise<AlarmChange[]> {
  if (clears.length === 0) return [];
  const { rows } = await client.query<AlarmRow & { clearValue: number | null }>(CLEAR_SQL, [
    clears.map((c) => c.equipmentId),
    clears.map((c) => c.code),
    clears.map((c) => c.at),
    clears.map((c) => c.value),
    clears.map((c) => c.strict),
  ]);
  return rows.map(({ clearValue: _, ...row }) => ({ action: 'CLEARED', row }));
}

/** One `telemetry.alarm` event per change, in order, in the caller's transaction. */
export async function publishChanges(client: pg.ClientBase, changes: readonly AlarmChange[]): Promise<string[]> {
  return publishEvents(
    client,
    changes.map(({ action, row }) => ({
      topic: ALARM_TOPIC,
      collectivityId: row.collectivityId,
      payload: { action, alarm: snapshotOf(row), setsFault: row.setsFault } satisfies AlarmEventPayload,
    })),
  );
}

/** Runs `work` in a transaction on a connection of its own (the shared one, re-exported for the alarm modules). */
export { inTransaction } from '@connecte/shared/db';
