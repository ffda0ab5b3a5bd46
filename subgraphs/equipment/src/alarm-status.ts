/**
 * An asset's status follows its fault alarms: the equipment domain's reaction to telemetry's
 * `telemetry.alarm` events (telemetry never writes equipment's tables).
 *
 * - An alarm whose rule sets faults (`setsFault`) is RAISED (or RECURRED): the domain records it
 *   as open for the asset (`equipment_alarm_faults`, its own table), and an IN_SERVICE asset goes
 *   to FAULT.
 * - Such an alarm is CLEARED: its record goes; when no other open fault alarm is recorded for
 *   the asset and the asset is in FAULT, it goes back IN_SERVICE.
 * - MAINTENANCE and DECOMMISSIONED assets keep their status (the record is still kept, so that
 *   an asset back from maintenance is not restored while a fault alarm is open).
 *
 * A status change goes through the domain's own write path: the asset is locked and updated by
 * EquipmentStore, and an `equipment.changed` event (actor `telemetry`, no roles) records what
 * changed, as an operator's update does (the log line names the alarm). Exactly once: a durable consumer
 * applies each event in one transaction with its position (packages/shared/src/durable-consumer.ts),
 * and the store runs on that transaction's connection.
 */
import pg from 'pg';
import { Prisma } from '@connecte/shared/db';
import type { EquipmentStatus } from '@connecte/shared/db';
import { durableConsumer } from '@connecte/shared/durable-consumer';
import { publishEvent, type BusEvent } from '@connecte/shared/events';
import type { Logger } from '@connecte/shared/log';
import type { WorkerResources } from '@connecte/shared/server';
import type { Worker } from '@connecte/shared/workers';
import { equipmentResourcesFor } from './context.js';
import { EQUIPMENT_CHANGED, fieldChanges, snapshotOf, type ChangeActor, type EquipmentChangedPayload } from './equipment-changes.js';
import type { EquipmentRow, EquipmentStore } from './equipment-store.js';

/** Telemetry's topic of alarm changes (its types.ts `ALARM_TOPIC`; domains share topics, not code). */
export const TELEMETRY_ALARM_TOPIC = 'telemetry.alarm';
/** The consumer's row in `event_consumers`. */
export const ALARM_STATUS_CONSUMER = 'equipment.alarm-status';
/** Who changes an asset's status on an alarm's account. */
export const TELEMETRY_ACTOR: ChangeActor = { sub: 'telemetry', roles: [] };

/** What this domain reads of a `telemetry.alarm` event (telemetry's `AlarmEventPayload`). */
interface AlarmEvent {
  action: 'RAISED' | 'RECURRED' | 'ACKNOWLEDGED' | 'CLEARED';
  alarm: { id: string; code: string; equipmentId: string; raisedAt: string };
  setsFault: boolean;
}

function alarmEventOf(payload: unknown): AlarmEvent | null {
  const event = payload as Partial<AlarmEvent> | null;
  const alarm = event?.alarm;
  if (!event || !['RAISED', 'RECURRED', 'ACKNOWLEDGED', 'CLEARED'].includes(event.action as string)) return null;
  if (!alarm || (typeof alarm.id !== 'string' && typeof alarm.id !== 'number') || typeof alarm.code !== 'string' || typeof alarm.equipmentId !== 'string') return null;
  const raisedAt = typeof alarm.raisedAt === 'string' && !Number.isNaN(Date.parse(alarm.raisedAt)) ? alarm.raisedAt : new Date(0).toISOString();
  return { action: event.action!, alarm: { id: String(alarm.id), code: alarm.code, equipmentId: alarm.equipmentId, raisedAt }, setsFault: event.setsFault === true };
}

/** `date` columns as Prisma reads them (midnight UTC), not as node-postgres does by default (local midnight). */
const STORE_TYPES = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === pg.types.builtins.DATE && format !== 'binary') return (value: string) => new Date(`${value}T00:00:00Z`);
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

/**
 * The store's queries run on the consumer's connection, inside its transaction: the store writes
 * through `$queryRaw` alone (tagged templates or `Prisma.Sql`), which this provides over `client`.
 */
function storeTransaction(client: pg.ClientBase): Prisma.TransactionClient {
  const $queryRaw = async (query: TemplateStringsArray | Prisma.Sql, ...values: unknown[]) => {
    const sql = query instanceof Prisma.Sql ? query : Prisma.sql(query, ...(values as Prisma.Sql[]));
    const result = await client.query({ text: sql.text, values: sql.values, types: STORE_TYPES });
    return result.rows;
  };
  return { $queryRaw } as unknown as Prisma.TransactionClient;
}

/** Applies one alarm event (in the consumer's transaction). */
export async function applyAlarmEvent(client: pg.ClientBase, store: EquipmentStore, event: BusEvent, log: Pick<Logger, 'warn' | 'info'>): Promise<void> {
  const alarm = alarmEventOf(event.payload);
  if (!alarm) {
    log.warn({ eventId: event.id }, 'alarm-status: telemetry.alarm event without an action or alarm; skipped');
    return;
  }
  if (alarm.action === 'ACKNOWLEDGED') return;
  const tx = storeTransaction(client);
  const { id: alarmId, code, equipmentId } = alarm.alarm;

  if (alarm.action === 'RAISED' || alarm.action === 'RECURRED') {
    if (!alarm.setsFault) return;
    const current = await store.lockById(tx, equipmentId);
    if (!current) {
      log.warn({ eventId: event.id, alarmId, equipmentId }, 'alarm-status: alarm of an unknown asset; skipped');
      return;
    }
    await client.query(
      `INSERT INTO equipment_alarm_faults (equipment_id, alarm_id, code, raised_at, event_id) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (alarm_id) DO NOTHING`,
      [equipmentId, alarmId, code, alarm.alarm.raisedAt, event.id],
    );
    if (current.status === 'IN_SERVICE') await setStatus(client, store, tx, current, 'FAULT', `alarm ${code} (${alarmId}) ${alarm.action.toLowerCase()}`, log);
    return;
  }

  // CLEARED
  const current = await store.lockById(tx, equipmentId);
  const { rowCount } = await client.query('DELETE FROM equipment_alarm_faults WHERE alarm_id = $1', [alarmId]);
  if (!current) return;
  // Only a fault alarm restores the asset: a CO2 alarm clearing says nothing of a lamp.
  if (!rowCount && !alarm.setsFault) return;
  if (current.status !== 'FAULT') return;
  const { rows } = await client.query<{ open: number }>('SELECT count(*)::int AS open FROM equipment_alarm_faults WHERE equipment_id = $1', [equipmentId]);
  if (rows[0].open > 0) return;
  await setStatus(client, store, tx, current, 'IN_SERVICE', `alarm ${code} (${alarmId}) cleared`, log);
}

/** The asset's new status, written and recorded as EquipmentService records an update. */
async function setStatus(
  client: pg.ClientBase,
  store: EquipmentStore,
  tx: Prisma.TransactionClient,
  current: EquipmentRow,
  status: EquipmentStatus,
  reason: string,
  log: Pick<Logger, 'info'>,
): Promise<void> {
  const row = await store.update(tx, current.id, { status });
  const changes = fieldChanges(current, row);
  const payload: EquipmentChangedPayload = {
    equipmentId: row.id,
    change: 'UPDATED',
    kind: row.kind,
    status: row.status,
    // No `reason`: the schema keeps it for decommissioning; the log line names the alarm.
    actor: TELEMETRY_ACTOR,
    changes,
    snapshot: snapshotOf(row),
  };
  const eventId = await publishEvent(client, { topic: EQUIPMENT_CHANGED, collectivityId: row.collectivityId, payload });
  log.info(
    { actor: TELEMETRY_ACTOR, equipmentId: row.id, kind: row.kind, collectivityId: row.collectivityId, change: 'UPDATED', fields: changes.map((c) => c.field), eventId, reason },
    'equipment changed',
  );
}

/** Worker `alarm-status`: the durable consumer of `telemetry.alarm`. */
export function alarmStatusWorker(resources: WorkerResources): Worker {
  const { store } = equipmentResourcesFor(resources.db);
  const log = resources.log.child({ component: 'alarm-status' });
  return durableConsumer({
    name: ALARM_STATUS_CONSUMER,
    workerName: 'alarm-status',
    topics: [TELEMETRY_ALARM_TOPIC],
    db: resources.db,
    events: resources.events,
    log,
    handle: (client, event) => applyAlarmEvent(client, store, event, log),
  });
}
