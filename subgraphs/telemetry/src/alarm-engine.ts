/**
 * The alarm engine: raises and clears alarms from readings (inside the ingest transaction), from
 * silence (a periodic sweep) and from other domains' events (a durable consumer).
 *
 * Rules (alarm-rules.ts):
 * - THRESHOLD: the condition holds from the first reading on the alarm's side of the threshold
 *   (and, for `requiresOccupancy`, taken while the room is occupied) to the last one; once it has
 *   held `forSeconds` (reading times) the alarm is raised, once per run of readings; the first
 *   reading off that side ends the run (`alarm_conditions` keeps it between batches) and clears
 *   the alarm.
 * - FLAG: each report of the flag (true, 1) raises the alarm, or, when it is open, makes it recur
 *   (`occurrences`); a report of false clears it. Reports are taken by their time, not by their
 *   arrival: a report older than one another batch has already stored is late, and a late report
 *   neither opens nor clears the alarm (a late true still recurs an open one). So, whatever the
 *   order in which batches arrive and commit, the alarm is open if and only if the metric's latest
 *   report by time is true (its rule enabled, and no operator having cleared it since).
 * - SILENCE: a device that has reported at least once and has been silent longer than
 *   `silencePeriods` × its expected period (`expectedPeriodSeconds`) is raised by the sweep;
 *   any reading of it clears the alarm (here, at once; the sweep also clears what it finds
 *   reporting again). A silence an operator cleared by hand is not raised again until the
 *   device has reported since.
 * - EVENT: each event of the rule's topic naming the rule's code raises (or recurs) the alarm;
 *   an event of its clearing topic clears it.
 * A disabled rule raises nothing but still clears.
 *
 * Cost at ingest: one statement per batch when nothing can change (the open alarms and duration
 * conditions of the batch's assets, and their rooms' occupancy, read at once); when something
 * may, the assets concerned are locked (transaction advisory locks, in one sorted order, so
 * batches that share assets serialise instead of deadlocking), read again (with, for the flags
 * that may change, the time of the latest report of another batch since the batch's first), and
 * the changes written in a few set-based statements: conditions, raises, clears (each with its
 * history), then the events. Rules are cached in memory and reloaded when a `telemetry.alarm_rule`
 * event says one changed (and at most a minute after, whatever happens).
 *
 * Why the one-statement path needs no lock of its own, for flags. The Ingestor writes the latest
 * values (`latest_readings`, an upsert of every (asset, metric) of the inserted rows) before it
 * calls `evaluate`, and an upsert locks its row until the transaction ends, whether it moved the
 * value or not. So two batches that both carry readings of one device's flag are serialised from
 * that write to their commit: the second reads the state (a fresh snapshot, READ COMMITTED) only
 * after the first has committed its readings and alarm changes, or rolled them all back. Every
 * decision on a flag is therefore taken on the committed outcome of every earlier one, which by
 * induction agrees with the latest report stored so far; the time check above makes a late
 * batch leave that agreement as it is. A batch with only false reports, no open alarm and no
 * condition under way has nothing to change whatever the order: it returns after one statement.
 */
import type pg from 'pg';
import { COLLECTIVITY_IDS } from '@connecte/shared/auth';
import type { EquipmentKind } from '@connecte/shared/db';
import { durableConsumer, type DurableConsumer } from '@connecte/shared/durable-consumer';
import type { BusEvent } from '@connecte/shared/events';
import { expectedPeriodSeconds, METRICS_BY_KIND } from '@connecte/shared/senml';
import type { Worker, WorkerStatus } from '@connecte/shared/workers';
import {
  ALARM_RULE_TOPIC,
  crosses,
  duration,
  loadRules,
  thresholdMessage,
  type AlarmRuleRow,
  type RuleSet,
} from './alarm-rules.js';
import {
  clearAlarms,
  inTransaction,
  publishChanges,
  raiseAlarms,
  SYSTEM_ACTOR,
  type AlarmChange,
  type Clear,
  type Raise,
} from './alarm-store.js';
import type { TelemetryResources } from './resources.js';
import type { StoredReading } from './types.js';

/** Advisory lock class of alarm writes per asset: (class, hash of the equipment id), two-int form. */
const ASSET_LOCK_CLASS = 72707380;
/** One sweep at a time across instances (one-bigint form). */
const SWEEP_LOCK = 72707381;
/** The durable consumer's row in `event_consumers`. */
export const ALARM_CONSUMER = 'telemetry.alarms';
/** Rules are reloaded at least this often, even if a change notice were lost. */
const RULES_TTL_MS = 60_000;
const RETRY_MS = [100, 500, 2_000, 5_000];

/** A 32-bit FNV-1a hash: the second half of an asset's advisory lock key. */
function lockKey(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}

/**
 * Locks the assets' alarm state for the rest of the transaction, always in increasing key order
 * (the function scan yields the sorted array in order): two transactions that share assets wait
 * for each other instead of deadlocking.
 */
async function lockAssets(client: pg.ClientBase, equipmentIds: Iterable<string>): Promise<void> {
  const keys = [...new Set([...equipmentIds].map(lockKey))].sort((a, b) => a - b);
  if (keys.length === 0) return;
  await client.query('SELECT pg_advisory_xact_lock($1::int, k) FROM unnest($2::int[]) AS k', [ASSET_LOCK_CLASS, keys]);
}

const keyOf = (equipmentId: string, code: string) => `${equipmentId}\u0000${code}`;

/** Readings of one asset that one rule watches. */
interface Watch {
  rule: AlarmRuleRow;
  equipmentId: string;
  collectivityId: string;
  kind: EquipmentKind;
  readings: StoredReading[];
}

interface Condition {
  since: Date;
  last: Date;
  raised: boolean;
}

/**
 * What the database holds for a batch: open alarms by key (their last raise), conditions,
 * occupancy, and, per (asset, metric) of a flag asked for, the time of the latest reading another
 * batch stored after the batch's first reading of it (none: no reading of the batch is late).
 */
interface BatchState {
  open: Map<string, Date>;
  conditions: Map<string, Condition>;
  occupancy: Map<string, number>;
  newer: Map<string, Date>;
}

/** What is left to do, per key, in order: consecutive raises are folded into one (with a count). */
type Step = { type: 'raise'; raise: Raise } | { type: 'clear'; clear: Clear };

const STATE_SQL = `
SELECT 'alarm' AS what, a.equipment_id, a.code, a.last_raised_at AS time, NULL::timestamptz AS since, NULL::boolean AS raised, NULL::float8 AS value
  FROM alarms a WHERE a.equipment_id = ANY($1::text[]) AND a.code = ANY($2::text[]) AND a.state <> 'CLEARED'
UNION ALL
SELECT 'condition', c.equipment_id, c.code, c.last_time, c.since, c.raised, NULL
  FROM alarm_conditions c JOIN unnest($3::text[], $4::text[]) AS k(equipment_id, code) ON c.equipment_id = k.equipment_id AND c.code = k.code
UNION ALL
SELECT 'occupancy', l.equipment_id, NULL, l.time, NULL, NULL, l.value
  FROM latest_readings l WHERE l.equipment_id = ANY($5::text[]) AND l.metric = 'occupancy'
UNION ALL
SELECT 'newer', k.equipment_id, k.metric, p.time, NULL, NULL, NULL
  FROM unnest($6::text[], $7::text[], $8::timestamptz[]) AS k(equipment_id, metric, since)
  JOIN latest_readings l ON l.equipment_id = k.equipment_id AND l.metric = k.metric
  CROSS JOIN LATERAL (
    SELECT max(r.time) AS time FROM readings r
    WHERE r.equipment_id = k.equipment_id AND r.metric = k.metric AND r.time > k.since AND r.time <= l.time
      AND NOT EXISTS (
        SELECT 1 FROM unnest($9::text[], $10::text[], $11::timestamptz[]) AS o(equipment_id, metric, time)
        WHERE o.equipment_id = r.equipment_id AND o.metric = r.metric AND o.time = r.time)
  ) p
  WHERE p.time IS NOT NULL`;

const CONDITIONS_SQL = `
WITH gone AS (
  DELETE FROM alarm_conditions c USING unnest($1::text[], $2::text[]) AS d(equipment_id, code)
  WHERE c.equipment_id = d.equipment_id AND c.code = d.code
)
INSERT INTO alarm_conditions (equipment_id, code, since, last_time, raised, updated_at)
SELECT equipment_id, code, since, last_time, raised, now()
FROM unnest($3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::boolean[]) AS u(equipment_id, code, since, last_time, raised)
ON CONFLICT (equipment_id, code) DO UPDATE
  SET since = excluded.since, last_time = excluded.last_time, raised = excluded.raised, updated_at = now()`;

/**
 * Devices silent for longer than their rule allows (`due`, not yet alarmed, not cleared by hand
 * since their last reading arrived: the hub's clock, not the device's) and open silence alarms of devices that are not any more. Devices in
 * MAINTENANCE or DECOMMISSIONED are not expected to report. `$6`, when not null, restricts it to
 * those assets (planned with the value bound, so the null test folds away).
 */
const SILENCE_SQL = `
WITH spec AS (
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS s(collectivity_id, kind, code, seconds)
),
last AS (
  SELECT equipment_id, max(time) AS last_time, max(received_at) AS last_received FROM latest_readings
  WHERE $6::text[] IS NULL OR equipment_id = ANY($6::text[]) GROUP BY equipment_id
),
due AS (
  SELECT d.equipment_id, d.collectivity_id, d.kind, s.code, s.seconds, l.last_time, l.last_received
  FROM last l
  JOIN telemetry_devices d ON d.equipment_id = l.equipment_id
  JOIN spec s ON s.collectivity_id = d.collectivity_id AND s.kind = d.kind
  WHERE d.status NOT IN ('MAINTENANCE', 'DECOMMISSIONED') AND l.last_time < $5::timestamptz - make_interval(secs => s.seconds)
),
open AS (
  SELECT a.equipment_id, a.code FROM alarms a
  WHERE a.state <> 'CLEARED' AND a.code = ANY($7::text[]) AND ($6::text[] IS NULL OR a.equipment_id = ANY($6::text[]))
)
SELECT 'raise' AS op, due.equipment_id, due.collectivity_id, due.kind, due.code, due.seconds, due.last_time
FROM due
WHERE NOT EXISTS (SELECT 1 FROM open o WHERE o.equipment_id = due.equipment_id AND o.code = due.code)
  AND NOT EXISTS (
    SELECT 1 FROM alarms a
    WHERE a.equipment_id = due.equipment_id AND a.code = due.code AND a.state = 'CLEARED'
      AND a.cleared_by <> '${SYSTEM_ACTOR}' AND a.cleared_at >= due.last_received)
UNION ALL
SELECT 'clear', o.equipment_id, NULL, NULL, o.code, NULL, NULL
FROM open o
WHERE NOT EXISTS (SELECT 1 FROM due WHERE due.equipment_id = o.equipment_id AND due.code = o.code)`;

interface SilenceCandidate {
  op: 'raise' | 'clear';
  equipment_id: string;
  collectivity_id: string | null;
  kind: EquipmentKind | null;
  code: string;
  seconds: number | null;
  last_time: Date | null;
}

/** `device.fault` and its like: another domain's report of a fault of an asset. */
interface DeviceFaultPayload {
  equipmentId: string;
  code: string;
  message?: string;
}

export class AlarmEngine {
  private ruleSet: RuleSet | null = null;
  private ruleSetAt = 0;
  private generation = 0;
  private loading: Promise<RuleSet> | null = null;

  constructor(private readonly r: TelemetryResources) {}

  /**
   * The rules in force, from memory (loaded on first use, reloaded when they change). A caller
   * that holds a connection passes it: waiting for another one from the pool while holding one
   * would starve the pool when every connection is an ingest transaction doing the same.
   */
  async rules(db: Pick<pg.ClientBase, 'query'> = this.r.db.pool): Promise<RuleSet> {
    if (this.ruleSet && Date.now() - this.ruleSetAt < RULES_TTL_MS) return this.ruleSet;
    this.loading ??= this.reload(db).finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  /** Forgets the cached rules: the next use reads them again (a rule was configured). */
  invalidateRules(): void {
    this.generation++;
    this.ruleSetAt = 0;
  }

  private async reload(db: Pick<pg.ClientBase, 'query'>): Promise<RuleSet> {
    const generation = this.generation;
    const set = await loadRules(db);
    // A change noticed while this read ran may not be in it: it stays stale, the next use reads again.
    if (generation === this.generation) {
      this.ruleSet = set;
      this.ruleSetAt = Date.now();
    }
    return set;
  }

  /**
   * Raises and clears what these readings (just stored, in the caller's transaction) imply. Writes
   * happen in `client`'s transaction, so they commit with the readings or not at all.
   */
  async evaluate(client: pg.ClientBase, readings: StoredReading[]): Promise<void> {
    if (readings.length === 0) return;
    const rules = await this.rules(client);
    const now = new Date();

    const watches = new Map<string, Watch>();
    const assets = new Set<string>();
    const occupancyReadings = new Map<string, StoredReading[]>();
    const needsOccupancy = new Set<string>();
    let mayRaise = false;
    for (const reading of readings) {
      assets.add(reading.equipmentId);
      if (reading.metric === 'occupancy') {
        const list = occupancyReadings.get(reading.equipmentId) ?? [];
        list.push(reading);
        occupancyReadings.set(reading.equipmentId, list);
      }
      for (const rule of rules.watching(reading.collectivityId, reading.kind, reading.metric)) {
        const key = keyOf(reading.equipmentId, rule.code);
        let watch = watches.get(key);
        if (!watch) {
          watch = { rule, equipmentId: reading.equipmentId, collectivityId: reading.collectivityId, kind: reading.kind, readings: [] };
          watches.set(key, watch);
        }
        watch.readings.push(reading);
        if (rule.requiresOccupancy) needsOccupancy.add(reading.equipmentId);
        if (rule.enabled && (rule.type === 'FLAG' ? reading.value !== 0 : crosses(rule, reading.value))) mayRaise = true;
      }
    }
    const silenceCodes = rules.codesOf('SILENCE');
    const codes = [...new Set([...silenceCodes, ...[...watches.values()].map((w) => w.rule.code)])];
    const thresholdKeys = [...watches.values()].filter((w) => w.rule.type === 'THRESHOLD');

    const read = (flags: Watch[]) => this.readState(client, [...assets], codes, thresholdKeys, [...needsOccupancy], flags);
    let state = await read([]);
    // Open alarms these readings may end: those of the rules watching them, and silences.
    const silences = new Set(silenceCodes);
    const endable = [...state.open.keys()].filter((key) => watches.has(key) || silences.has(key.slice(key.indexOf('\u0000') + 1)));
    // The common case: nothing is open, nothing is under way, nothing crosses: one statement.
    if (!mayRaise && endable.length === 0 && state.conditions.size === 0) return;

    // Lock the assets that may change, then decide on what the database holds once they are ours.
    const touched = new Set<string>([...watches.values()].map((w) => w.equipmentId));
    for (const key of endable) touched.add(key.slice(0, key.indexOf('\u0000')));
    await lockAssets(client, touched);
    // The flags that may change: an enabled rule seeing a true report, or an alarm open.
    const flags = [...watches]
      .filter(([key, w]) => w.rule.type === 'FLAG' && ((w.rule.enabled && w.readings.some((x) => x.value !== 0)) || state.open.has(key)))
      .map(([, w]) => w);
    state = await read(flags);

    const steps = new Map<string, Step[]>();
    const conditionWrites: { equipmentId: string; code: string; condition: Condition | null }[] = [];
    for (const [key, watch] of watches) {
      const sorted = [...watch.readings].sort((a, b) => a.time.getTime() - b.time.getTime());
      if (watch.rule.type === 'FLAG') {
        const newer = state.newer.get(keyOf(watch.equipmentId, watch.rule.metric!));
        this.flag(watch, sorted, state.open.has(key), newer, (step) => push(steps, key, step));
      } else {
        const before = state.conditions.get(key) ?? null;
        const after = this.threshold(watch, sorted, before, state.open.has(key), state, occupancyReadings, (step) => push(steps, key, step));
        if (!sameCondition(before, after)) conditionWrites.push({ equipmentId: watch.equipmentId, code: watch.rule.code, condition: after });
      }
    }
    // A silent device that reports again (an alarm the sweep raised after the first read, on an
    // asset not locked here, is left to the sweep: it clears what it finds reporting again).
    for (const equipmentId of assets) {
      if (!touched.has(equipmentId)) continue;
      for (const code of silenceCodes) {
        const key = keyOf(equipmentId, code);
        if (state.open.has(key)) push(steps, key, { type: 'clear', clear: { equipmentId, code, at: now, value: null, strict: false } });
      }
    }

    if (conditionWrites.length > 0) await this.writeConditions(client, conditionWrites);
    await publishChanges(client, await applySteps(client, steps));
  }

  /**
   * Open alarms of the assets for these codes, conditions of these keys, occupancy of these rooms,
   * and for these flags the latest time another batch reported them since this one's first report.
   */
  private async readState(
    client: pg.ClientBase,
    assets: string[],
    codes: string[],
    thresholdWatches: Watch[],
    rooms: string[],
    flags: Watch[],
  ): Promise<BatchState> {
    const own = flags.flatMap((w) => w.readings);
    const { rows } = await client.query<{
      what: 'alarm' | 'condition' | 'occupancy' | 'newer';
      equipment_id: string;
      code: string | null;
      time: Date;
      since: Date | null;
      raised: boolean | null;
      value: number | null;
    }>({
      // Named: prepared once per connection, so the batch pays for no planning.
      name: 'telemetry-alarm-state',
      text: STATE_SQL,
      values: [
        assets,
        codes,
        thresholdWatches.map((w) => w.equipmentId),
        thresholdWatches.map((w) => w.rule.code),
        rooms,
        flags.map((w) => w.equipmentId),
        flags.map((w) => w.rule.metric),
        flags.map((w) => new Date(Math.min(...w.readings.map((x) => x.time.getTime())))),
        own.map((x) => x.equipmentId),
        own.map((x) => x.metric),
        own.map((x) => x.time),
      ],
    });
    const state: BatchState = { open: new Map(), conditions: new Map(), occupancy: new Map(), newer: new Map() };
    for (const row of rows) {
      if (row.what === 'alarm') state.open.set(keyOf(row.equipment_id, row.code!), row.time);
      else if (row.what === 'condition') state.conditions.set(keyOf(row.equipment_id, row.code!), { since: row.since!, last: row.time, raised: row.raised! });
      else if (row.what === 'newer') state.newer.set(keyOf(row.equipment_id, row.code!), row.time);
      else state.occupancy.set(row.equipment_id, row.value!);
    }
    return state;
  }

  /**
   * FLAG, readings in time order: each true report raises (or recurs); a false one clears. A report
   * older than `newer` (another batch's latest, already stored) is late: it was overtaken by that
   * one, whose batch decided on it, so a late true only recurs an open alarm and a late false is
   * passed over. The alarm is left as the batch's newest report says, or, if every report is late,
   * as the newer one said.
   */
  private flag(watch: Watch, readings: StoredReading[], open: boolean, newer: Date | undefined, emit: (step: Step) => void): void {
    const { rule } = watch;
    for (const reading of readings) {
      const late = newer !== undefined && reading.time < newer;
      if (reading.value !== 0) {
        if (!rule.enabled || (late && !open)) continue;
        emit({ type: 'raise', raise: this.raiseOf(watch, reading, `${rule.label} reported`) });
        open = true;
      } else if (late) {
        continue;
      } else if (open) {
        emit({ type: 'clear', clear: { equipmentId: watch.equipmentId, code: rule.code, at: reading.time, value: reading.value, strict: true } });
        open = false;
      }
    }
  }

  /** THRESHOLD: the run of readings past the threshold, raised once it has lasted `forSeconds`; returns the condition left. */
  private threshold(
    watch: Watch,
    readings: StoredReading[],
    before: Condition | null,
    open: boolean,
    state: BatchState,
    occupancyReadings: Map<string, StoredReading[]>,
    emit: (step: Step) => void,
  ): Condition | null {
    const { rule } = watch;
    let condition = before ? { ...before } : null;
    for (const reading of readings) {
      const occupied = !rule.requiresOccupancy || occupiedAt(watch.equipmentId, reading.time, state, occupancyReadings);
      if (crosses(rule, reading.value) && occupied) {
        // A disabled rule keeps no run and raises nothing.
        if (!rule.enabled) continue;
        if (!condition) condition = { since: reading.time, last: reading.time, raised: false };
        else if (reading.time < condition.since) condition.since = reading.time;
        else if (reading.time > condition.last) condition.last = reading.time;
        if (!condition.raised && condition.last.getTime() - condition.since.getTime() >= (rule.forSeconds ?? 0) * 1000) {
          emit({ type: 'raise', raise: this.raiseOf(watch, reading, thresholdMessage(rule, reading.value)) });
          condition.raised = true;
          open = true;
        }
      } else {
        // A late reading from before the run does not end it.
        if (condition && reading.time < condition.since) continue;
        condition = null;
        if (open) {
          emit({ type: 'clear', clear: { equipmentId: watch.equipmentId, code: rule.code, at: reading.time, value: reading.value, strict: true } });
          open = false;
        }
      }
    }
    return condition;
  }

  private raiseOf(watch: Watch, reading: StoredReading, message: string): Raise {
    const { rule } = watch;
    return {
      equipmentId: watch.equipmentId,
      collectivityId: watch.collectivityId,
      kind: watch.kind,
      code: rule.code,
      severity: rule.severity,
      message,
      metric: reading.metric,
      value: reading.value,
      at: reading.time,
      setsFault: rule.setsFault,
      count: 1,
    };
  }

  private async writeConditions(client: pg.ClientBase, writes: { equipmentId: string; code: string; condition: Condition | null }[]) {
    const gone = writes.filter((w) => w.condition === null);
    const kept = writes.filter((w) => w.condition !== null);
    await client.query(CONDITIONS_SQL, [
      gone.map((w) => w.equipmentId),
      gone.map((w) => w.code),
      kept.map((w) => w.equipmentId),
      kept.map((w) => w.code),
      kept.map((w) => w.condition!.since),
      kept.map((w) => w.condition!.last),
      kept.map((w) => w.condition!.raised),
    ]);
  }

  // --- Silence -----------------------------------------------------------------------

  /**
   * One sweep at `now`: raises DEVICE_SILENT (and any other SILENCE rule) for devices silent too
   * long, clears it for those reporting again. One instance sweeps at a time (the others skip).
   */
  async sweep(now: Date = new Date()): Promise<{ raised: number; cleared: number }> {
    const rules = await this.rules();
    const spec = silenceSpec(rules);
    const codes = rules.codesOf('SILENCE');
    if (codes.length === 0) return { raised: 0, cleared: 0 };
    return inTransaction(this.r.db.pool, async (client) => {
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [SWEEP_LOCK]);
      if (!rows[0].locked) return { raised: 0, cleared: 0 };
      const params = [spec.map((s) => s.collectivityId), spec.map((s) => s.kind), spec.map((s) => s.code), spec.map((s) => s.seconds), now];
      const first = await client.query<SilenceCandidate>(SILENCE_SQL, [...params, null, codes]);
      if (first.rows.length === 0) return { raised: 0, cleared: 0 };
      const ids = [...new Set(first.rows.map((row) => row.equipment_id))];
      // Ingest may be writing these assets' alarms: take them, then decide on what is committed.
      await lockAssets(client, ids);
      const { rows: candidates } = await client.query<SilenceCandidate>(SILENCE_SQL, [...params, ids, codes]);
      const raises: Raise[] = [];
      const clears: Clear[] = [];
      for (const row of candidates) {
        if (row.op === 'clear') {
          clears.push({ equipmentId: row.equipment_id, code: row.code, at: now, value: null, strict: false });
          continue;
        }
        const rule = rules.effective(row.collectivity_id!, row.code)!;
        const silentSeconds = (now.getTime() - row.last_time!.getTime()) / 1000;
        const period = expectedPeriodSeconds(row.kind!) ?? 0;
        raises.push({
          equipmentId: row.equipment_id,
          collectivityId: row.collectivity_id!,
          kind: row.kind!,
          code: row.code,
          severity: rule.severity,
          message: `${rule.label} for ${duration(silentSeconds)} (expected every ${duration(period)}; raised after ${rule.silencePeriods} periods)`,
          metric: null,
          value: Math.round(silentSeconds),
          at: now,
          setsFault: rule.setsFault,
          count: 1,
        });
      }
      const changes = [...(await raiseAlarms(client, raises)), ...(await clearAlarms(client, clears))];
      await publishChanges(client, changes);
      return {
        raised: changes.filter((c) => c.action === 'RAISED').length,
        cleared: changes.filter((c) => c.action === 'CLEARED').length,
      };
    });
  }

  // --- Other domains' events ---------------------------------------------------------

  /** An EVENT rule's raising or clearing event, in the durable consumer's transaction. */
  private async onEvent(client: pg.PoolClient, event: BusEvent): Promise<void> {
    const payload = event.payload as Partial<DeviceFaultPayload> | null;
    if (typeof payload?.equipmentId !== 'string' || typeof payload.code !== 'string') {
      this.r.log.warn({ eventId: event.id, topic: event.topic }, 'alarms: event without equipmentId or code; skipped');
      return;
    }
    const rules = await this.rules(client);
    const device = (await this.r.directory.lookup([payload.equipmentId])).get(payload.equipmentId);
    if (!device) {
      this.r.log.warn({ eventId: event.id, topic: event.topic, equipmentId: payload.equipmentId }, 'alarms: event about an unknown asset; skipped');
      return;
    }
    const rule = rules.effective(device.collectivityId, payload.code);
    if (!rule || rule.type !== 'EVENT' || !rule.kinds.includes(device.kind)) return;
    await lockAssets(client, [device.equipmentId]);
    let changes: AlarmChange[] = [];
    if (event.topic === rule.eventTopic) {
      if (!rule.enabled) return;
      const message = typeof payload.message === 'string' && payload.message.trim() ? payload.message.trim().slice(0, 500) : `${rule.label} (${event.topic})`;
      changes = await raiseAlarms(client, [
        {
          equipmentId: device.equipmentId,
          collectivityId: device.collectivityId,
          kind: device.kind,
          code: rule.code,
          severity: rule.severity,
          message,
          metric: null,
          value: null,
          at: event.createdAt,
          setsFault: rule.setsFault,
          count: 1,
        },
      ]);
    } else if (event.topic === rule.clearEventTopic) {
      changes = await clearAlarms(client, [{ equipmentId: device.equipmentId, code: rule.code, at: event.createdAt, value: null, strict: false }]);
    }
    await publishChanges(client, changes);
  }

  /** Reloads the rules whenever any instance configures one. */
  private async followRuleChanges(signal: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!signal.aborted) {
      try {
        for await (const _ of this.r.events.subscribe({ topics: [ALARM_RULE_TOPIC], signal })) {
          this.invalidateRules();
          attempt = 0;
        }
      } catch (error) {
        if (signal.aborted) return;
        const delay = RETRY_MS[Math.min(attempt++, RETRY_MS.length - 1)];
        this.r.log.warn(`alarms: following rule changes failed (${(error as Error).message}); retrying in ${delay} ms`);
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }

  /**
   * Worker `alarms`: the silence sweep every ALARM_SWEEP_INTERVAL_MS (0: none), the durable
   * consumer of EVENT rules' topics, and the rule-change follower.
   */
  worker(): Worker {
    let consumer: DurableConsumer | null = null;
    let controller: AbortController | null = null;
    let following: Promise<void> | null = null;
    let timer: NodeJS.Timeout | null = null;
    let sweeping: Promise<void> | null = null;
    let sweepError: string | null = null;
    let running = false;

    const sweepNow = () => {
      if (sweeping) return;
      sweeping = this.sweep()
        .then(
          () => {
            sweepError = null;
          },
          (error: Error) => {
            sweepError = error.message;
            this.r.log.warn(`alarms: silence sweep failed: ${error.message}`);
          },
        )
        .finally(() => {
          sweeping = null;
        });
    };

    return {
      name: 'alarms',
      start: async () => {
        this.invalidateRules();
        const rules = await this.rules();
        controller = new AbortController();
        following = this.followRuleChanges(controller.signal);
        const topics = rules.eventTopics();
        if (topics.length > 0) {
          consumer = durableConsumer({
            name: ALARM_CONSUMER,
            workerName: 'alarms',
            topics,
            db: this.r.db,
            events: this.r.events,
            log: this.r.log,
            handle: (client, event) => this.onEvent(client, event),
          });
          await consumer.start();
        }
        const interval = this.r.config.ALARM_SWEEP_INTERVAL_MS;
        if (interval > 0) {
          timer = setInterval(sweepNow, interval);
          timer.unref();
        }
        running = true;
      },
      stop: async () => {
        running = false;
        if (timer) clearInterval(timer);
        timer = null;
        controller?.abort();
        await following;
        await sweeping;
        await consumer?.stop();
      },
      status: (): WorkerStatus => {
        const events = consumer?.status();
        if (events && !events.ready) return events;
        if (!running) return { ready: false, state: 'stopped' };
        const parts = [events ? `events ${events.state}` : 'no event rules', sweepError ? `last sweep failed: ${sweepError}` : null];
        return { ready: true, state: parts.filter(Boolean).join('; ') };
      },
    };
  }
}

/** Appends a step; consecutive raises fold into one (counted, with the latest reading's time, value and message). */
function push(steps: Map<string, Step[]>, key: string, step: Step): void {
  const list = steps.get(key) ?? [];
  const last = list.at(-1);
  if (step.type === 'raise' && last?.type === 'raise') {
    const latest = step.raise.at >= last.raise.at ? step.raise : last.raise;
    last.raise = { ...latest, count: last.raise.count + step.raise.count };
  } else list.push(step);
  steps.set(key, list);
}

/**
 * Writes the steps round by round (the n-th step of every key together): a key raised then
 * cleared then raised again in one batch gets its three changes in order, one statement per kind
 * of step and round (one or two statements in practice).
 */
async function applySteps(client: pg.ClientBase, steps: Map<string, Step[]>): Promise<AlarmChange[]> {
  const changes: AlarmChange[] = [];
  for (let round = 0; ; round++) {
    const raises: Raise[] = [];
    const clears: Clear[] = [];
    for (const list of steps.values()) {
      const step = list[round];
      if (!step) continue;
      if (step.type === 'raise') raises.push(step.raise);
      else clears.push(step.clear);
    }
    if (raises.length === 0 && clears.length === 0) return changes;
    changes.push(...(await raiseAlarms(client, raises)), ...(await clearAlarms(client, clears)));
  }
}

function sameCondition(a: Condition | null, b: Condition | null): boolean {
  if (a === null || b === null) return a === b;
  return a.since.getTime() === b.since.getTime() && a.last.getTime() === b.last.getTime() && a.raised === b.raised;
}

/**
 * Whether the room was occupied at `time`: its occupancy reported in this batch at or before that
 * time, else its latest stored occupancy; a sensor that reports no occupancy counts as occupied.
 */
function occupiedAt(equipmentId: string, time: Date, state: BatchState, batch: Map<string, StoredReading[]>): boolean {
  let value: number | undefined;
  let at = -Infinity;
  for (const reading of batch.get(equipmentId) ?? []) {
    const t = reading.time.getTime();
    if (t <= time.getTime() && t >= at) {
      at = t;
      value = reading.value;
    }
  }
  value ??= state.occupancy.get(equipmentId);
  return value === undefined || value > 0;
}

/** Per collectivity and reporting kind, the enabled SILENCE rules in force and their silence in seconds. */
function silenceSpec(rules: RuleSet): { collectivityId: string; kind: string; code: string; seconds: number }[] {
  const spec: { collectivityId: string; kind: string; code: string; seconds: number }[] = [];
  for (const collectivityId of COLLECTIVITY_IDS) {
    for (const kind of Object.keys(METRICS_BY_KIND) as EquipmentKind[]) {
      const period = expectedPeriodSeconds(kind);
      if (period === null) continue;
      for (const rule of rules.silence(collectivityId, kind)) {
        if (rule.enabled && rule.silencePeriods) spec.push({ collectivityId, kind, code: rule.code, seconds: rule.silencePeriods * period });
      }
    }
  }
  return spec;
}
