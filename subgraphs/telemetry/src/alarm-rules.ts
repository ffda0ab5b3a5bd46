/**
 * Alarm rules: the territory's defaults (seeded by the migration, `collectivity_id` null) and each
 * collectivity's own version of a default (a full copy that replaces it for that collectivity's
 * assets). What a rule watches is fixed by its default (type, kinds, metric, topics); what a
 * collectivity may tune is the threshold, the duration, the silence periods, the severity,
 * setsFault and whether it is enabled (`configuredVersion` checks it).
 */
import type pg from 'pg';
import type { EquipmentKind } from '@connecte/shared/db';
import { badInput } from '@connecte/shared/errors';
import { METRICS, type MetricName } from '@connecte/shared/senml';

export const SEVERITIES = ['INFO', 'MINOR', 'MAJOR', 'CRITICAL'] as const;
export type AlarmSeverity = (typeof SEVERITIES)[number];
export const severityRank = (severity: AlarmSeverity) => SEVERITIES.indexOf(severity);

export type AlarmRuleType = 'THRESHOLD' | 'FLAG' | 'SILENCE' | 'EVENT';

/**
 * The bus topic of rule changes (payload `{ code, collectivityId }`): every instance's engine
 * reloads its rules when one arrives.
 */
export const ALARM_RULE_TOPIC = 'telemetry.alarm_rule';

/** Upper bounds of what a collectivity may configure (docs: AlarmRuleInput). */
export const MAX_FOR_SECONDS = 604_800;
export const MIN_SILENCE_PERIODS = 2;
export const MAX_SILENCE_PERIODS = 1_000;

export interface AlarmRuleRow {
  code: string;
  collectivityId: string | null;
  type: AlarmRuleType;
  kinds: EquipmentKind[];
  metric: MetricName | null;
  comparison: 'ABOVE' | 'BELOW' | null;
  threshold: number | null;
  forSeconds: number | null;
  requiresOccupancy: boolean;
  silencePeriods: number | null;
  eventTopic: string | null;
  clearEventTopic: string | null;
  severity: AlarmSeverity;
  setsFault: boolean;
  enabled: boolean;
  /** What its alarms' messages call the condition (`CO2`, `lamp failure`). */
  label: string;
  updatedAt: Date;
  updatedBy: string;
}

export const RULE_COLUMNS = `
  code, collectivity_id AS "collectivityId", type, kinds, metric, comparison, threshold,
  for_seconds AS "forSeconds", requires_occupancy AS "requiresOccupancy", silence_periods AS "silencePeriods",
  event_topic AS "eventTopic", clear_event_topic AS "clearEventTopic", severity, sets_fault AS "setsFault",
  enabled, label, updated_at AS "updatedAt", updated_by AS "updatedBy"`;

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Every rule: the defaults and every collectivity's versions (a few dozen rows). */
export async function loadRules(db: Queryable): Promise<RuleSet> {
  const { rows } = await db.query<AlarmRuleRow>(`SELECT ${RULE_COLUMNS} FROM alarm_rules ORDER BY id`);
  return new RuleSet(rows);
}

/**
 * The rules, indexed the way the engine asks for them: by (collectivity, kind, metric) for
 * readings, by (collectivity, kind) for silence, by code for events. A collectivity's version
 * replaces the default of the same code. Immutable: a change builds a new set.
 */
export class RuleSet {
  /** Default rules by code, in the migration's order. */
  readonly defaults = new Map<string, AlarmRuleRow>();
  private readonly versions = new Map<string, Map<string, AlarmRuleRow>>();
  private readonly byMetric = new Map<string, AlarmRuleRow[]>();
  private readonly bySilence = new Map<string, AlarmRuleRow[]>();

  constructor(rows: readonly AlarmRuleRow[]) {
    for (const row of rows) {
      if (row.collectivityId === null) this.defaults.set(row.code, row);
      else {
        const own = this.versions.get(row.collectivityId) ?? new Map<string, AlarmRuleRow>();
        own.set(row.code, row);
        this.versions.set(row.collectivityId, own);
      }
    }
  }

  /** The rule in force for a collectivity's assets: its version, else the default (null for an unknown code). */
  effective(collectivityId: string, code: string): AlarmRuleRow | null {
    return this.versions.get(collectivityId)?.get(code) ?? this.defaults.get(code) ?? null;
  }

  /** Every rule in force for a collectivity, in the defaults' order; the defaults themselves for null. */
  inForce(collectivityId: string | null): AlarmRuleRow[] {
    return [...this.defaults.keys()].map((code) => (collectivityId === null ? this.defaults.get(code)! : this.effective(collectivityId, code)!));
  }

  /** THRESHOLD and FLAG rules in force that watch this metric of this kind of asset (enabled or not: a disabled rule still clears). */
  watching(collectivityId: string, kind: EquipmentKind, metric: string): AlarmRuleRow[] {
    const key = `${collectivityId}\u0000${kind}\u0000${metric}`;
    let rules = this.byMetric.get(key);
    if (!rules) {
      rules = this.inForce(collectivityId).filter(
        (rule) => (rule.type === 'THRESHOLD' || rule.type === 'FLAG') && rule.metric === metric && rule.kinds.includes(kind),
      );
      this.byMetric.set(key, rules);
    }
    return rules;
  }

  /** SILENCE rules in force for this kind of asset. */
  silence(collectivityId: string, kind: EquipmentKind): AlarmRuleRow[] {
    const key = `${collectivityId}\u0000${kind}`;
    let rules = this.bySilence.get(key);
    if (!rules) {
      rules = this.inForce(collectivityId).filter((rule) => rule.type === 'SILENCE' && rule.kinds.includes(kind));
      this.bySilence.set(key, rules);
    }
    return rules;
  }

  /** Codes of the defaults of a type. */
  codesOf(type: AlarmRuleType): string[] {
    return [...this.defaults.values()].filter((rule) => rule.type === type).map((rule) => rule.code);
  }

  /** Every topic an EVENT rule is raised or cleared by. */
  eventTopics(): string[] {
    const topics = new Set<string>();
    for (const rule of this.defaults.values()) {
      if (rule.eventTopic) topics.add(rule.eventTopic);
      if (rule.clearEventTopic) topics.add(rule.clearEventTopic);
    }
    return [...topics];
  }
}

/** What `configureAlarmRule` may change (the GraphQL `AlarmRuleInput`); null means "back to the default's value". */
export interface AlarmRuleChanges {
  enabled?: boolean | null;
  severity?: AlarmSeverity | null;
  threshold?: number | null;
  forSeconds?: number | null;
  silencePeriods?: number | null;
  setsFault?: boolean | null;
}

/** The tunable values of a collectivity's version. */
export type TunedValues = Pick<AlarmRuleRow, 'enabled' | 'severity' | 'threshold' | 'forSeconds' | 'silencePeriods' | 'setsFault'>;

/**
 * A collectivity's version once `changes` are applied to it (or to the default when it has none
 * yet): an omitted field keeps the version's value, a null one takes the default's. Each field
 * that does not apply to the rule's type, or is out of range, is refused naming it.
 */
export function configuredVersion(base: AlarmRuleRow, current: AlarmRuleRow | null, changes: AlarmRuleChanges, prefix = 'input'): TunedValues {
  const fields = Object.entries(changes).filter(([, value]) => value !== undefined);
  if (fields.length === 0) throw badInput(prefix, 'must change at least one field');
  const onlyFor = (field: keyof AlarmRuleChanges, type: AlarmRuleType) => {
    if (changes[field] !== undefined && base.type !== type) {
      throw badInput(`${prefix}.${field}`, `applies only to ${type} rules; ${base.code} is a ${base.type} rule`);
    }
  };
  onlyFor('threshold', 'THRESHOLD');
  onlyFor('forSeconds', 'THRESHOLD');
  onlyFor('silencePeriods', 'SILENCE');

  if (typeof changes.threshold === 'number' && !Number.isFinite(changes.threshold)) {
    throw badInput(`${prefix}.threshold`, 'must be a finite number');
  }
  if (typeof changes.forSeconds === 'number' && (!Number.isInteger(changes.forSeconds) || changes.forSeconds < 0 || changes.forSeconds > MAX_FOR_SECONDS)) {
    throw badInput(`${prefix}.forSeconds`, `must be a whole number of seconds from 0 to ${MAX_FOR_SECONDS}`);
  }
  if (
    typeof changes.silencePeriods === 'number' &&
    (!Number.isInteger(changes.silencePeriods) || changes.silencePeriods < MIN_SILENCE_PERIODS || changes.silencePeriods > MAX_SILENCE_PERIODS)
  ) {
    throw badInput(`${prefix}.silencePeriods`, `must be a whole number from ${MIN_SILENCE_PERIODS} to ${MAX_SILENCE_PERIODS}`);
  }
  if (changes.severity !== undefined && changes.severity !== null && !SEVERITIES.includes(changes.severity)) {
    throw badInput(`${prefix}.severity`, `must be one of ${SEVERITIES.join(', ')}`);
  }
  const from = current ?? base;
  const pick = <K extends keyof TunedValues>(field: K): TunedValues[K] => {
    const given = changes[field as keyof AlarmRuleChanges];
    if (given === undefined) return from[field];
    if (given === null) return base[field];
    return given as TunedValues[K];
  };
  return {
    enabled: pick('enabled'),
    severity: pick('severity'),
    threshold: pick('threshold'),
    forSeconds: pick('forSeconds'),
    silencePeriods: pick('silencePeriods'),
    setsFault: pick('setsFault'),
  };
}

// --- Messages --------------------------------------------------------------------------

const DISPLAY_UNITS: Record<string, string> = { Cel: '°C', '%RH': '% RH', 'ug/m3': 'µg/m³', count: '' };
const number = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 1 });

/** `1,630 ppm`, `14.5 °C`, `12 %`. */
export function quantity(metric: MetricName | null, value: number): string {
  const unit = metric ? METRICS[metric].unit : null;
  const shown = unit === null ? '' : (DISPLAY_UNITS[unit] ?? unit);
  return `${number.format(value)}${shown ? ` ${shown}` : ''}`;
}

/** `45 seconds`, `10 minutes`, `1 hour 30 minutes`, `2 days 3 hours`. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  if (s < 60) return plural(s, 'second');
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return plural(minutes, 'minute');
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return minutes % 60 ? `${plural(hours, 'hour')} ${plural(minutes % 60, 'minute')}` : plural(hours, 'hour');
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${plural(days, 'day')} ${plural(hours % 24, 'hour')}` : plural(days, 'day');
}

/** `CO2 1,630 ppm above 1,500 ppm for 10 minutes in an occupied room`. */
export function thresholdMessage(rule: AlarmRuleRow, value: number): string {
  const direction = rule.comparison === 'BELOW' ? 'below' : 'above';
  const held = rule.forSeconds ? ` for ${duration(rule.forSeconds)}` : '';
  const occupied = rule.requiresOccupancy ? ' in an occupied room' : '';
  return `${rule.label} ${quantity(rule.metric, value)} ${direction} ${quantity(rule.metric, rule.threshold!)}${held}${occupied}`;
}

/** Whether a value is on the alarm's side of a THRESHOLD rule. */
export function crosses(rule: AlarmRuleRow, value: number): boolean {
  return rule.comparison === 'BELOW' ? value < rule.threshold! : value > rule.threshold!;
}
