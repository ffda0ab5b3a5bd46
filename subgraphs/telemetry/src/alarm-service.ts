/**
 * Alarms as people see and handle them: lists and one alarm, the rules in force, acknowledging
 * and clearing by hand, configuring a collectivity's rules, the `alarmChanged` stream, and
 * `Equipment.alarms`. One instance per request (it holds the caller and its DataLoaders).
 *
 * Who does what. `agent`, `operator` and `admin` of an asset's collectivity read its alarms (and
 * the rules in force there); `operator` and `admin` acknowledge and clear them; `admin` configures
 * the collectivity's rules. On `Equipment.alarms` an alarm the caller may not read is left out (no
 * error, as the other telemetry fields on `Equipment`); `Query.alarms` naming a collectivity the
 * caller may not read, a write, and the stream refuse instead (UNAUTHENTICATED for the public,
 * FORBIDDEN naming the argument otherwise).
 */
import DataLoader from 'dataloader';
import type pg from 'pg';
import { actsIn, isPublic, requireRoleIn, type Role, type Viewer } from '@connecte/shared/auth';
import { badInput, forbidden, notFound, unauthenticated } from '@connecte/shared/errors';
import { mapEvents, publishEvent, type BusEvent, type EventBus } from '@connecte/shared/events';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import type { RequestContext } from '@connecte/shared/server';
import {
  ALARM_RULE_TOPIC,
  configuredVersion,
  loadRules,
  RULE_COLUMNS,
  severityRank,
  type AlarmRuleChanges,
  type AlarmRuleRow,
} from './alarm-rules.js';
import {
  ALARM_COLUMNS,
  inTransaction,
  publishChanges,
  rowOfSnapshot,
  type AlarmAction,
  type AlarmChangeValue,
  type AlarmEventPayload,
  type AlarmHistoryRow,
  type AlarmRow,
} from './alarm-store.js';
import type {
  EquipmentAlarmsArgs,
  MutationConfigureAlarmRuleArgs,
  QueryAlarmsArgs,
  SubscriptionAlarmChangedArgs,
} from './generated/graphql.js';
import type { TelemetryResources } from './resources.js';
import { ALARM_TOPIC } from './types.js';

/** Who reads alarms in a collectivity. */
const READERS: Role[] = ['agent', 'operator', 'admin'];
/** Who acknowledges and clears them. */
const HANDLERS: Role[] = ['operator', 'admin'];
/** Who configures its rules. */
const CONFIGURERS: Role[] = ['admin'];
const MAX_NOTE = 2_000;
/** Alarm ids are bigserials: anything else names no alarm. */
const ALARM_ID = /^[1-9]\d{0,17}$/;

/** The sort key of alarm lists, most recently raised first: (raised_at, id) descending. */
interface AlarmKey {
  raisedAt: Date;
  id: string;
}

const cursorKey = (row: Pick<AlarmRow, 'raisedAt' | 'id'>) => `${row.raisedAt.toISOString()}|${row.id}`;

function decodeAlarmCursor(after: string | null | undefined, field = 'after'): AlarmKey | null {
  const key = decodeCursor(after, field);
  if (key === null) return null;
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)\|([1-9]\d{0,17})$/.exec(key);
  const raisedAt = match ? new Date(match[1]) : null;
  if (!match || !raisedAt || Number.isNaN(raisedAt.getTime())) throw badInput(field, 'is not a cursor returned by this API');
  return { raisedAt, id: match[2] };
}

/** A note: trimmed, at most 2,000 characters, no NUL; empty is none. */
function checkNote(note: string | null | undefined, field = 'note'): string | null {
  if (note === null || note === undefined) return null;
  if (note.includes('\u0000')) throw badInput(field, 'must not contain NUL characters (U+0000)');
  const trimmed = note.trim();
  if (trimmed.length > MAX_NOTE) throw badInput(field, `must be at most ${MAX_NOTE.toLocaleString('en')} characters (got ${trimmed.length.toLocaleString('en')})`);
  return trimmed || null;
}

interface EquipmentAlarmsKey {
  equipmentId: string;
  active: boolean | null;
  limit: number;
  after: AlarmKey | null;
}

export class AlarmService {
  private readonly viewer: Viewer;
  /** The service's event bus (the request's `events`), under `alarmChanged`. */
  private readonly events: EventBus;
  /** Collectivities whose alarms the caller reads. */
  readonly readable: ReadonlySet<string>;

  private readonly history = new DataLoader<string, AlarmHistoryRow[]>((ids) => this.loadHistory(ids));
  private readonly byId = new DataLoader<string, AlarmRow | null>((ids) => this.loadByIds(ids));
  private readonly equipmentAlarmPages = new DataLoader<EquipmentAlarmsKey, AlarmRow[], string>((keys) => this.loadEquipmentAlarms(keys), {
    cacheKeyFn: (k) => JSON.stringify([k.equipmentId, k.active, k.limit, k.after?.raisedAt.toISOString() ?? null, k.after?.id ?? null]),
  });
  private readonly equipmentAlarmCounts = new DataLoader<{ equipmentId: string; active: boolean | null }, number, string>(
    (keys) => this.loadEquipmentAlarmCounts(keys),
    { cacheKeyFn: (k) => JSON.stringify([k.equipmentId, k.active]) },
  );

  constructor(
    base: RequestContext,
    private readonly r: TelemetryResources,
  ) {
    this.viewer = base.viewer;
    this.events = base.events;
    this.readable = new Set(base.viewer.collectivities.filter((id) => actsIn(base.viewer, id, READERS)));
  }

  private get pool() {
    return this.r.db.pool;
  }

  // --- Reads -------------------------------------------------------------------------

  /** `Query.alarms`: the caller's collectivities (or those it names, each of which it must read). */
  async alarms(args: QueryAlarmsArgs): Promise<Connection<AlarmRow>> {
    const limit = pageSize(args.first);
    const after = decodeAlarmCursor(args.after);
    const filter = args.filter ?? {};
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: alarms are read by ${READERS.join(', ')} of the assets’ collectivity`);
    let collectivities = [...this.readable];
    if (filter.collectivityIds) {
      filter.collectivityIds.forEach((id, i) => {
        if (!this.readable.has(id)) throw forbidden(`filter.collectivityIds.${i}: needs role ${READERS.join(' or ')} in collectivity '${id}'`, `filter.collectivityIds.${i}`);
      });
      collectivities = [...new Set(filter.collectivityIds)];
    }
    const where: string[] = ['a.collectivity_id = ANY($1::text[])'];
    const params: unknown[] = [collectivities];
    const add = (sql: (n: number) => string, value: unknown) => {
      params.push(value);
      where.push(sql(params.length));
    };
    if (filter.states) add((n) => `a.state = ANY($${n}::text[])`, filter.states);
    if (filter.severities) add((n) => `a.severity = ANY($${n}::text[])`, filter.severities);
    if (filter.codes) add((n) => `a.code = ANY($${n}::text[])`, filter.codes);
    if (filter.kinds) add((n) => `a.kind = ANY($${n}::text[])`, filter.kinds);
    const count = async () => {
      const { rows } = await this.pool.query<{ count: number }>(`SELECT count(*)::int AS count FROM alarms a WHERE ${where.join(' AND ')}`, params);
      return rows[0].count;
    };
    if (collectivities.length === 0 || limit === 0) return connection<AlarmRow>([], limit, cursorKey, after !== null, collectivities.length === 0 ? async () => 0 : count);
    const page = [...where];
    const pageParams = [...params];
    if (after) {
      pageParams.push(after.raisedAt, after.id);
      page.push(`(a.raised_at, a.id) < ($${pageParams.length - 1}::timestamptz, $${pageParams.length}::bigint)`);
    }
    pageParams.push(limit + 1);
    const { rows } = await this.pool.query<AlarmRow>(
      `SELECT ${ALARM_COLUMNS} FROM alarms a WHERE ${page.join(' AND ')} ORDER BY a.raised_at DESC, a.id DESC LIMIT $${pageParams.length}`,
      pageParams,
    );
    for (const row of rows) this.byId.prime(row.id, row);
    return connection(rows, limit, cursorKey, after !== null, count);
  }

  /** `Query.alarm`: null when it does not exist or the caller may not read it. */
  async alarm(id: string): Promise<AlarmRow | null> {
    if (!ALARM_ID.test(id)) return null;
    const row = await this.byId.load(id);
    return row && this.readable.has(row.collectivityId) ? row : null;
  }

  /** `Alarm.history`, oldest first. */
  historyOf(alarm: AlarmRow): Promise<AlarmHistoryRow[]> {
    return this.history.load(alarm.id);
  }

  /** `Equipment.alarms`: most recently raised first; only the alarms the caller may read. */
  async equipmentAlarms(equipmentId: string, args: EquipmentAlarmsArgs): Promise<Connection<AlarmRow>> {
    const limit = pageSize(args.first);
    const after = decodeAlarmCursor(args.after);
    const active = args.active ?? null;
    if (this.readable.size === 0 || limit === 0) {
      const total = this.readable.size === 0 ? async () => 0 : () => this.equipmentAlarmCounts.load({ equipmentId, active });
      return connection<AlarmRow>([], limit, cursorKey, after !== null, total);
    }
    const rows = await this.equipmentAlarmPages.load({ equipmentId, active, limit, after });
    return connection(rows, limit, cursorKey, after !== null, () => this.equipmentAlarmCounts.load({ equipmentId, active }));
  }

  /** `Query.alarmRules`: a collectivity's rules in force (its versions, else the defaults), or the defaults. */
  async alarmRules(collectivityId: string | null | undefined): Promise<AlarmRuleRow[]> {
    if (collectivityId === null || collectivityId === undefined) {
      if (isPublic(this.viewer)) throw unauthenticated(`authentication required: alarm rules are read by ${READERS.join(', ')}`);
      if (this.readable.size === 0) throw forbidden(`needs role ${READERS.join(' or ')} in some collectivity`);
    } else {
      requireRoleIn(this.viewer, collectivityId, READERS, 'collectivityId');
    }
    const rules = await loadRules(this.pool);
    return rules.inForce(collectivityId ?? null);
  }

  // --- Writes ------------------------------------------------------------------------

  /** Acknowledges an open alarm: who, when, with a note. */
  acknowledge(id: string, noteInput: string | null | undefined): Promise<AlarmRow> {
    const note = checkNote(noteInput);
    return this.change(id, async (client, current) => {
      if (current.state === 'CLEARED') throw badInput('id', `alarm ${id} is cleared: only an open alarm can be acknowledged`);
      if (current.state === 'ACKNOWLEDGED') {
        throw badInput('id', `alarm ${id} is already acknowledged (by ${current.acknowledgedBy} at ${current.acknowledgedAt!.toISOString()})`);
      }
      const { rows } = await client.query<AlarmRow>(
        `UPDATE alarms AS a SET state = 'ACKNOWLEDGED', acknowledged_at = now(), acknowledged_by = $2, acknowledgement_note = $3, updated_at = now()
         WHERE a.id = $1 RETURNING ${ALARM_COLUMNS}`,
        [id, this.viewer.sub, note],
      );
      return { action: 'ACKNOWLEDGED', row: rows[0], note };
    });
  }

  /** Clears an open alarm by hand (e.g. after a repair its device cannot report). */
  clear(id: string, noteInput: string | null | undefined): Promise<AlarmRow> {
    const note = checkNote(noteInput);
    return this.change(id, async (client, current) => {
      if (current.state === 'CLEARED') throw badInput('id', `alarm ${id} is already cleared (by ${current.clearedBy} at ${current.clearedAt!.toISOString()})`);
      const { rows } = await client.query<AlarmRow>(
        `UPDATE alarms AS a SET state = 'CLEARED', cleared_at = now(), cleared_by = $2, updated_at = now()
         WHERE a.id = $1 RETURNING ${ALARM_COLUMNS}`,
        [id, this.viewer.sub],
      );
      return { action: 'CLEARED', row: rows[0], note };
    });
  }

  /**
   * One operator's change of one alarm, in one transaction: the alarm locked, the caller checked
   * against its collectivity, the change, its history row and its event.
   */
  private async change(
    id: string,
    work: (client: pg.PoolClient, current: AlarmRow) => Promise<{ action: AlarmAction; row: AlarmRow; note: string | null }>,
  ): Promise<AlarmRow> {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: alarms are handled by ${HANDLERS.join(', ')} of the assets’ collectivity`);
    if (!ALARM_ID.test(id)) throw notFound(`no alarm with id ${JSON.stringify(id)}`, 'id');
    const row = await inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<AlarmRow>(`SELECT ${ALARM_COLUMNS} FROM alarms a WHERE a.id = $1 FOR UPDATE`, [id]);
      const current = rows[0];
      if (!current) throw notFound(`no alarm with id ${id}`, 'id');
      requireRoleIn(this.viewer, current.collectivityId, HANDLERS, 'id');
      const done = await work(client, current);
      await client.query(`INSERT INTO alarm_history (alarm_id, action, at, actor, note, value) VALUES ($1, $2, now(), $3, $4, NULL)`, [
        id,
        done.action,
        this.viewer.sub,
        done.note,
      ]);
      await publishChanges(client, [{ action: done.action, row: done.row }]);
      return done.row;
    });
    this.byId.clear(id).prime(id, row);
    this.history.clear(id);
    this.r.log.info({ actor: this.viewer.sub, alarmId: id, code: row.code, equipmentId: row.equipmentId, state: row.state }, 'alarm changed by hand');
    return row;
  }

  /** Sets a collectivity's version of a default rule (`admin` of it). */
  async configure(args: MutationConfigureAlarmRuleArgs): Promise<AlarmRuleRow> {
    requireRoleIn(this.viewer, args.collectivityId, CONFIGURERS, 'collectivityId');
    const changes: AlarmRuleChanges = {};
    for (const [field, value] of Object.entries(args.input) as [keyof AlarmRuleChanges, unknown][]) {
      if (value !== undefined) (changes as Record<string, unknown>)[field] = value;
    }
    const row = await inTransaction(this.pool, async (client) => {
      const { rows } = await client.query<AlarmRuleRow>(
        `SELECT ${RULE_COLUMNS} FROM alarm_rules WHERE code = $1 AND (collectivity_id IS NULL OR collectivity_id = $2)
         ORDER BY collectivity_id NULLS FIRST FOR UPDATE`,
        [args.code, args.collectivityId],
      );
      const base = rows.find((rule) => rule.collectivityId === null);
      if (!base) {
        const { rows: known } = await client.query<{ code: string }>('SELECT code FROM alarm_rules WHERE collectivity_id IS NULL ORDER BY id');
        throw badInput('code', `is not a rule code (known: ${known.map((k) => k.code).join(', ')})`);
      }
      const current = rows.find((rule) => rule.collectivityId === args.collectivityId) ?? null;
      const tuned = configuredVersion(base, current, changes);
      const { rows: saved } = await client.query<AlarmRuleRow>(
        `INSERT INTO alarm_rules (code, collectivity_id, type, kinds, metric, comparison, threshold, for_seconds, requires_occupancy,
                                  silence_periods, event_topic, clear_event_topic, severity, sets_fault, enabled, label, updated_at, updated_by)
         SELECT code, $2, type, kinds, metric, comparison, $3, $4, requires_occupancy, $5, event_topic, clear_event_topic, $6, $7, $8, label, now(), $9
         FROM alarm_rules WHERE code = $1 AND collectivity_id IS NULL
         ON CONFLICT (code, collectivity_id) DO UPDATE SET
           threshold = excluded.threshold, for_seconds = excluded.for_seconds, silence_periods = excluded.silence_periods,
           severity = excluded.severity, sets_fault = excluded.sets_fault, enabled = excluded.enabled,
           updated_at = excluded.updated_at, updated_by = excluded.updated_by
         RETURNING ${RULE_COLUMNS}`,
        [args.code, args.collectivityId, tuned.threshold, tuned.forSeconds, tuned.silencePeriods, tuned.severity, tuned.setsFault, tuned.enabled, this.viewer.sub],
      );
      // Every instance's engine reloads its rules (this one at once, below).
      await publishEvent(client, { topic: ALARM_RULE_TOPIC, collectivityId: args.collectivityId, payload: { code: args.code, collectivityId: args.collectivityId } });
      return saved[0];
    });
    this.r.alarms.invalidateRules();
    this.r.log.info({ actor: this.viewer.sub, code: row.code, collectivityId: row.collectivityId, fields: Object.keys(changes) }, 'alarm rule configured');
    return row;
  }

  // --- The stream --------------------------------------------------------------------

  /**
   * `alarmChanged`: every change of the collectivities' alarms as committed, resumable with `after`
   * (an event id: the bus replays what follows it). Each change carries the alarm as it was right
   * after it (from the event); its history is read when selected.
   */
  changes(args: SubscriptionAlarmChangedArgs): AsyncIterableIterator<{ alarmChanged: AlarmChangeValue }> {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: alarms are streamed to ${READERS.join(', ')} of the assets’ collectivity`);
    const ids = args.filter.collectivityIds;
    if (ids.length === 0) throw badInput('filter.collectivityIds', 'must name at least one collectivity');
    ids.forEach((id, i) => {
      if (!this.readable.has(id)) throw forbidden(`filter.collectivityIds.${i}: needs role ${READERS.join(' or ')} in collectivity '${id}'`, `filter.collectivityIds.${i}`);
    });
    const minimum = args.filter.minimumSeverity ? severityRank(args.filter.minimumSeverity) : 0;
    return mapEvents(this.events, { topics: [ALARM_TOPIC], after: args.after ?? undefined, collectivityIds: [...new Set(ids)] }, (event) => {
      const value = this.changeOf(event, minimum);
      return value ? { alarmChanged: value } : null;
    });
  }

  private changeOf(event: BusEvent, minimum: number): AlarmChangeValue | null {
    const payload = event.payload as Partial<AlarmEventPayload> | null;
    if (!payload?.alarm || !payload.action) return null;
    const alarm = rowOfSnapshot(payload.alarm, payload.setsFault ?? false);
    if (severityRank(alarm.severity) < minimum) return null;
    // A stream lives long: the alarm's history is read afresh for each change.
    this.history.clear(alarm.id);
    return { cursor: event.id, action: payload.action, alarm };
  }

  // --- Batches -----------------------------------------------------------------------

  private async loadByIds(ids: readonly string[]): Promise<(AlarmRow | null)[]> {
    const { rows } = await this.pool.query<AlarmRow>(`SELECT ${ALARM_COLUMNS} FROM alarms a WHERE a.id = ANY($1::bigint[])`, [ids]);
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id) ?? null);
  }

  private async loadHistory(ids: readonly string[]): Promise<AlarmHistoryRow[][]> {
    const { rows } = await this.pool.query<AlarmHistoryRow>(
      `SELECT alarm_id::text AS "alarmId", action, at, actor, note, value FROM alarm_history WHERE alarm_id = ANY($1::bigint[]) ORDER BY alarm_id, id`,
      [ids],
    );
    const byAlarm = new Map<string, AlarmHistoryRow[]>();
    for (const row of rows) byAlarm.set(row.alarmId, [...(byAlarm.get(row.alarmId) ?? []), row]);
    return ids.map((id) => byAlarm.get(id) ?? []);
  }

  /** One statement per group of keys sharing their page arguments: a LATERAL page per asset. */
  private async loadEquipmentAlarms(keys: readonly EquipmentAlarmsKey[]): Promise<AlarmRow[][]> {
    const results: AlarmRow[][] = keys.map(() => []);
    const groups = new Map<string, number[]>();
    keys.forEach((key, i) => {
      const signature = JSON.stringify([key.active, key.limit, key.after?.raisedAt.toISOString() ?? null, key.after?.id ?? null]);
      groups.set(signature, [...(groups.get(signature) ?? []), i]);
    });
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        const { active, limit, after } = keys[indexes[0]];
        const params: unknown[] = [indexes.map((i) => keys[i].equipmentId), [...this.readable], limit + 1];
        const where = ['a.equipment_id = e.id', 'a.collectivity_id = ANY($2::text[])', ...stateCondition(active)];
        if (after) {
          params.push(after.raisedAt, after.id);
          where.push(`(a.raised_at, a.id) < ($4::timestamptz, $5::bigint)`);
        }
        const { rows } = await this.pool.query<AlarmRow>(
          `SELECT page.* FROM unnest($1::text[]) AS e(id)
           CROSS JOIN LATERAL (SELECT ${ALARM_COLUMNS} FROM alarms a WHERE ${where.join(' AND ')} ORDER BY a.raised_at DESC, a.id DESC LIMIT $3) page`,
          params,
        );
        const byEquipment = new Map<string, AlarmRow[]>();
        for (const row of rows) {
          byEquipment.set(row.equipmentId, [...(byEquipment.get(row.equipmentId) ?? []), row]);
          this.byId.prime(row.id, row);
        }
        for (const i of indexes) results[i] = byEquipment.get(keys[i].equipmentId) ?? [];
      }),
    );
    return results;
  }

  private async loadEquipmentAlarmCounts(keys: readonly { equipmentId: string; active: boolean | null }[]): Promise<number[]> {
    const results = keys.map(() => 0);
    const groups = new Map<string, number[]>();
    keys.forEach((key, i) => groups.set(String(key.active), [...(groups.get(String(key.active)) ?? []), i]));
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        const where = ['a.equipment_id = ANY($1::text[])', 'a.collectivity_id = ANY($2::text[])', ...stateCondition(keys[indexes[0]].active)];
        const { rows } = await this.pool.query<{ equipmentId: string; count: number }>(
          `SELECT a.equipment_id AS "equipmentId", count(*)::int AS count FROM alarms a WHERE ${where.join(' AND ')} GROUP BY a.equipment_id`,
          [indexes.map((i) => keys[i].equipmentId), [...this.readable]],
        );
        const byEquipment = new Map(rows.map((row) => [row.equipmentId, row.count]));
        for (const i of indexes) results[i] = byEquipment.get(keys[i].equipmentId) ?? 0;
      }),
    );
    return results;
  }
}

/** `active`: true for open alarms, false for cleared ones, null for both. */
function stateCondition(active: boolean | null): string[] {
  if (active === null) return [];
  return [active ? `a.state <> 'CLEARED'` : `a.state = 'CLEARED'`];
}
