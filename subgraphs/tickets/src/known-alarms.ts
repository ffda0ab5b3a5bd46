/**
 * The tickets domain's knowledge of telemetry's active alarms (`ticket_known_alarms`), kept from
 * `telemetry.alarm` events by a durable consumer (`tickets.known-alarms`: each event applied
 * exactly once, across restarts and instances; packages/shared/src/durable-consumer.ts):
 * RAISED, RECURRED and ACKNOWLEDGED upsert the alarm (it is still active), CLEARED deletes it.
 * A report about an asset with an active alarm says the problem is already known; an
 * intervention can be created from one (`activeAlarmOf`).
 */
import type pg from 'pg';
import type { Database } from '@connecte/shared/db';
import { durableConsumer } from '@connecte/shared/durable-consumer';
import type { BusEvent } from '@connecte/shared/events';
import type { Logger } from '@connecte/shared/log';
import type { Worker } from '@connecte/shared/workers';
import type { TicketResources } from './resources.js';

/** Telemetry's topic of alarm changes (its types.ts `ALARM_TOPIC`: domains share topics, not code). */
export const TELEMETRY_ALARM_TOPIC = 'telemetry.alarm';
/** The consumer's row in `event_consumers`. */
export const KNOWN_ALARMS_CONSUMER = 'tickets.known-alarms';

/** An active alarm as this domain knows it. */
export interface KnownAlarm {
  alarmId: string;
  equipmentId: string;
  collectivityId: string;
  code: string;
  severity: string | null;
  message: string | null;
  raisedAt: Date;
  eventId: string;
}

const KNOWN_ALARM_COLUMNS = `alarm_id AS "alarmId", equipment_id AS "equipmentId", collectivity_id AS "collectivityId", code, severity, message,
  raised_at AS "raisedAt", event_id::text AS "eventId"`;

interface AlarmEvent {
  action: 'RAISED' | 'RECURRED' | 'ACKNOWLEDGED' | 'CLEARED';
  alarm: { id: string; code: string; equipmentId: string; collectivityId: string; severity: string | null; message: string | null; raisedAt: string };
}

/** What this domain reads of a `telemetry.alarm` payload, or null when it is not one. */
function alarmEventOf(payload: unknown): AlarmEvent | null {
  const event = payload as { action?: unknown; alarm?: Record<string, unknown> } | null;
  const alarm = event?.alarm;
  if (!event || !['RAISED', 'RECURRED', 'ACKNOWLEDGED', 'CLEARED'].includes(event.action as string)) return null;
  if (!alarm || (typeof alarm.id !== 'string' && typeof alarm.id !== 'number') || typeof alarm.equipmentId !== 'string' || typeof alarm.code !== 'string') return null;
  const raisedAt = typeof alarm.raisedAt === 'string' && !Number.isNaN(Date.parse(alarm.raisedAt)) ? alarm.raisedAt : null;
  return {
    action: event.action as AlarmEvent['action'],
    alarm: {
      id: String(alarm.id),
      code: alarm.code,
      equipmentId: alarm.equipmentId,
      collectivityId: typeof alarm.collectivityId === 'string' ? alarm.collectivityId : '',
      severity: typeof alarm.severity === 'string' ? alarm.severity : null,
      message: typeof alarm.message === 'string' ? alarm.message.slice(0, 2_000) : null,
      raisedAt: raisedAt ?? new Date().toISOString(),
    },
  };
}

/** Applies one `telemetry.alarm` event in the consumer's transaction. */
export async function applyAlarmEvent(client: pg.ClientBase, event: BusEvent, log: Pick<Logger, 'warn'>): Promise<void> {
  const change = alarmEventOf(event.payload);
  if (!change) {
    log.warn({ eventId: event.id }, 'known-alarms: telemetry.alarm event without an action or alarm; skipped');
    return;
  }
  const { alarm } = change;
  if (change.action === 'CLEARED') {
    await client.query('DELETE FROM ticket_known_alarms WHERE alarm_id = $1', [alarm.id]);
    return;
  }
  await client.query(
    `INSERT INTO ticket_known_alarms (alarm_id, equipment_id, collectivity_id, code, severity, message, raised_at, event_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (alarm_id) DO UPDATE SET equipment_id = excluded.equipment_id, collectivity_id = excluded.collectivity_id, code = excluded.code,
       severity = excluded.severity, message = excluded.message, event_id = excluded.event_id`,
    [alarm.id, alarm.equipmentId, alarm.collectivityId || event.collectivityId || '', alarm.code, alarm.severity, alarm.message, alarm.raisedAt, event.id],
  );
}

/** The active alarm of an asset (the oldest when several are), or null. */
export async function activeAlarmOf(db: Database | Pick<pg.Pool, 'query'> | pg.ClientBase, equipmentId: string): Promise<KnownAlarm | null> {
  const runner = 'pool' in db ? db.pool : db;
  const { rows } = await runner.query<KnownAlarm>(
    `SELECT ${KNOWN_ALARM_COLUMNS} FROM ticket_known_alarms WHERE equipment_id = $1 ORDER BY raised_at, alarm_id LIMIT 1`,
    [equipmentId],
  );
  return rows[0] ?? null;
}

/** An active alarm by its id (telemetry's), or null when it is unknown or cleared. */
export async function knownAlarm(db: Database | Pick<pg.Pool, 'query'> | pg.ClientBase, alarmId: string): Promise<KnownAlarm | null> {
  const runner = 'pool' in db ? db.pool : db;
  const { rows } = await runner.query<KnownAlarm>(`SELECT ${KNOWN_ALARM_COLUMNS} FROM ticket_known_alarms WHERE alarm_id = $1`, [alarmId]);
  return rows[0] ?? null;
}

/** Worker `known-alarms`: the durable consumer of `telemetry.alarm`. */
export function knownAlarmsWorker(resources: TicketResources): Worker {
  const log = resources.log.child({ component: 'known-alarms' });
  return durableConsumer({
    name: KNOWN_ALARMS_CONSUMER,
    workerName: 'known-alarms',
    topics: [TELEMETRY_ALARM_TOPIC],
    db: resources.db,
    events: resources.events,
    log,
    handle: (client, event) => applyAlarmEvent(client, event, log),
  });
}
