/**
 * Energy, savings and CO2 per collectivity (`Query.energy`): the figures the contract is paid by.
 *
 * Everything comes from the daily roll-ups of the `energy` metric (a cumulative Wh counter) of
 * light points and buildings' energy meters, and from the recorded pre-renovation baselines
 * (`energy_baselines`, seeded by prisma/seed/energy.ts), in one SQL statement for all the
 * collectivities asked for. How a day's consumption is read from a counter:
 *
 * - a day consumed its last value minus the counter's value at the end of the previous day it
 *   reported (however long ago: a reading day after a silence carries the silent days, and their
 *   baseline with them), or its last minus its first value on the first day the asset ever reported;
 * - a counter that went backwards (reset, meter replaced) does not count the drop: before the day's
 *   first reading, the day counts last − first; during the day (its minimum below its first value),
 *   what it rose before the drop plus what it rose after it, (max − previous) + (last − min).
 *
 * The baseline is compared like with like: only the assets whose counters reported in the period
 * count, each for the days its counter's readings cover (annual baseline ÷ days of that year, per
 * covered day). An asset without a baseline counts in consumption, not in savings.
 */
import { COLLECTIVITY_IDS } from '@connecte/shared/auth';
import { badInput } from '@connecte/shared/errors';
import type { RequestContext } from '@connecte/shared/server';
import type { EnergyGranularity, QueryEnergyArgs } from './generated/graphql.js';
import type { TelemetryResources } from './resources.js';

/** The longest range of days one query may cover. */
export const MAX_ENERGY_DAYS = 3_660;

export interface EnergyFiguresValue {
  consumedKwh: number;
  lightingKwh: number;
  buildingsKwh: number;
  baselineKwh: number;
  savedKwh: number;
  savedEuros: number;
  co2AvoidedKg: number;
  reportingAssets: number;
}

export interface EnergyPeriodValue {
  /** YYYY-MM-DD */
  start: string;
  /** YYYY-MM-DD, included. */
  end: string;
  figures: EnergyFiguresValue;
}

export interface SavingsTargetValue {
  contractEuros: number;
  proRataEuros: number;
  achievedEuros: number;
  ratio: number | null;
}

export interface CollectivityEnergyValue {
  collectivity: { id: string };
  periods: EnergyPeriodValue[];
  total: EnergyFiguresValue;
  target: SavingsTargetValue;
}

const DAY_MS = 86_400_000;
const dayNumber = (isoDate: string) => Date.parse(`${isoDate}T00:00:00Z`) / DAY_MS;

/**
 * One row per collectivity and period (every day or month of the range, zeros where nothing
 * reported), plus one total row per collectivity (`period IS NULL`), in the order asked for.
 * $1 from, $2 to (dates, included), $3 collectivity ids, $4 'DAY' | 'MONTH', $5 € per kWh,
 * $6 kg CO2 per kWh, $7 the contract's savings target (€), $8 its first day, $9 its years.
 */
const ENERGY_SQL = `
WITH counters AS (
  SELECT r.equipment_id, r.collectivity_id, r.kind, r.day, r.first_value, r.last_value, r.min, r.max,
         lag(r.day) OVER w AS prev_day, lag(r.last_value) OVER w AS prev_last
    FROM reading_rollups_daily r
   WHERE r.collectivity_id = ANY($3::text[]) AND r.metric = 'energy' AND r.day BETWEEN $1::date AND $2::date
     AND r.kind IN ('LIGHT_POINT', 'ENERGY_METER')
  WINDOW w AS (PARTITION BY r.equipment_id ORDER BY r.day)
),
assets AS (
  -- Per light point and meter of the directory: its baseline, and its last reading day before the
  -- range, which its first day in the range continues from (one primary-key probe each).
  SELECT d.equipment_id, e.baseline_kwh_per_year AS baseline, b.day AS before_day, b.last_value AS before_value
    FROM telemetry_devices d
    LEFT JOIN energy_baselines e ON e.equipment_id = d.equipment_id
    LEFT JOIN LATERAL (
      SELECT b.day, b.last_value FROM reading_rollups_daily b
       WHERE b.equipment_id = d.equipment_id AND b.metric = 'energy' AND b.day < $1::date
       ORDER BY b.day DESC LIMIT 1) b ON true
   WHERE d.collectivity_id = ANY($3::text[]) AND d.kind IN ('LIGHT_POINT', 'ENERGY_METER')
),
consumption AS (
  SELECT c.equipment_id, c.collectivity_id, c.kind, p.period,
         -- The asset's first day in this period, and in the range: what reportingAssets counts.
         c.prev_day IS NULL OR p.period <> (CASE WHEN $4::text = 'DAY' THEN c.prev_day ELSE date_trunc('month', c.prev_day::timestamp)::date END) AS first_in_period,
         c.prev_day IS NULL AS first_in_range,
         (CASE WHEN c.min < c.first_value THEN (c.max - base.wh) + (c.last_value - c.min) ELSE c.last_value - base.wh END) / 1000.0 AS kwh,
         -- The baseline of the days since the previous reading day (1 on the first day ever), each
         -- day's share of its year being 1/365 or 1/366.
         a.baseline * (c.day - coalesce(c.prev_day, a.before_day, c.day - 1))
           / (CASE WHEN p.year % 4 = 0 AND (p.year % 100 <> 0 OR p.year % 400 = 0) THEN 366 ELSE 365 END) AS baseline_kwh
    FROM counters c
    LEFT JOIN assets a ON a.equipment_id = c.equipment_id
    CROSS JOIN LATERAL (
      SELECT CASE WHEN $4::text = 'DAY' THEN c.day ELSE date_trunc('month', c.day::timestamp)::date END AS period,
             date_part('year', c.day)::int AS year) p
    -- What the counter stood at when the day began: the previous reading day's last value, unless
    -- the counter went backwards in between (then the day's own first value).
    CROSS JOIN LATERAL (SELECT coalesce(c.prev_last, a.before_value) AS since) s
    CROSS JOIN LATERAL (SELECT CASE WHEN s.since IS NULL OR c.first_value < s.since THEN c.first_value ELSE s.since END AS wh) base
),
figures AS (
  SELECT collectivity_id, period, GROUPING(period) = 1 AS is_total,
         sum(kwh) AS consumed,
         coalesce(sum(kwh) FILTER (WHERE kind = 'LIGHT_POINT'), 0) AS lighting,
         coalesce(sum(kwh) FILTER (WHERE kind = 'ENERGY_METER'), 0) AS buildings,
         coalesce(sum(baseline_kwh), 0) AS baseline,
         coalesce(sum(baseline_kwh - kwh), 0) AS saved,
         CASE WHEN GROUPING(period) = 1 THEN count(*) FILTER (WHERE first_in_range) ELSE count(*) FILTER (WHERE first_in_period) END::int AS assets
    FROM consumption
   GROUP BY GROUPING SETS ((collectivity_id, period), (collectivity_id))
),
asked AS (
  SELECT id, ord FROM unnest($3::text[]) WITH ORDINALITY AS t(id, ord)
),
periods AS (
  SELECT CASE WHEN $4::text = 'DAY' THEN d ELSE date_trunc('month', d::timestamp)::date END AS period, min(d) AS first_day, max(d) AS last_day
    FROM (SELECT g::date AS d FROM generate_series($1::date::timestamp, $2::date::timestamp, interval '1 day') g) days
   GROUP BY 1
),
shares AS (
  -- Each collectivity's share of the target is its share of every recorded baseline.
  SELECT collectivity_id, sum(baseline_kwh_per_year) / nullif(sum(sum(baseline_kwh_per_year)) OVER (), 0) AS share
    FROM energy_baselines GROUP BY collectivity_id
),
term AS (
  SELECT $8::date AS first_day, ($8::date + make_interval(years => $9::int))::date AS end_day
),
grid AS (
  SELECT a.ord, a.id AS collectivity_id, false AS is_total, p.period, p.first_day, p.last_day
    FROM asked a CROSS JOIN periods p
  UNION ALL
  SELECT a.ord, a.id, true, NULL, $1::date, $2::date FROM asked a
)
SELECT g.collectivity_id, g.is_total,
       to_char(g.first_day, 'YYYY-MM-DD') AS start, to_char(g.last_day, 'YYYY-MM-DD') AS "end",
       coalesce(f.consumed, 0) AS consumed, coalesce(f.lighting, 0) AS lighting, coalesce(f.buildings, 0) AS buildings,
       coalesce(f.baseline, 0) AS baseline, coalesce(f.saved, 0) AS saved, coalesce(f.assets, 0) AS assets,
       coalesce(f.saved, 0) * $5::float8 AS saved_euros, coalesce(f.saved, 0) * $6::float8 AS co2_kg,
       $7::float8 * coalesce(s.share, 0) AS contract_euros,
       $7::float8 * coalesce(s.share, 0)
         * greatest(0, least($2::date + 1, t.end_day) - greatest($1::date, t.first_day))::float8
         / (t.end_day - t.first_day) AS pro_rata_euros
  FROM grid g
  CROSS JOIN term t
  LEFT JOIN figures f ON f.collectivity_id = g.collectivity_id AND f.is_total = g.is_total AND f.period IS NOT DISTINCT FROM g.period
  LEFT JOIN shares s ON s.collectivity_id = g.collectivity_id
 ORDER BY g.ord, g.is_total, g.period`;

interface EnergyRow {
  collectivity_id: string;
  is_total: boolean;
  start: string;
  end: string;
  consumed: number;
  lighting: number;
  buildings: number;
  baseline: number;
  saved: number;
  assets: number;
  saved_euros: number;
  co2_kg: number;
  contract_euros: number;
  pro_rata_euros: number;
}

/** kWh and kg to the Wh and the gram, euros to the cent: what a meter and an invoice show. */
const round = (value: number, digits: number) => {
  const rounded = Number(value.toFixed(digits));
  return Object.is(rounded, -0) ? 0 : rounded;
};

const figuresOf = (row: EnergyRow): EnergyFiguresValue => ({
  consumedKwh: round(row.consumed, 3),
  lightingKwh: round(row.lighting, 3),
  buildingsKwh: round(row.buildings, 3),
  baselineKwh: round(row.baseline, 3),
  savedKwh: round(row.saved, 3),
  savedEuros: round(row.saved_euros, 2),
  co2AvoidedKg: round(row.co2_kg, 3),
  reportingAssets: row.assets,
});

/** Per request: public, aggregated figures only (no asset is named), so no caller check. */
export class EnergyService {
  constructor(
    private readonly base: RequestContext,
    private readonly r: TelemetryResources,
  ) {}

  async energy(args: QueryEnergyArgs): Promise<CollectivityEnergyValue[]> {
    const from = dayNumber(args.from);
    const to = dayNumber(args.to);
    if (to < from) throw badInput('to', `must not be before from (${args.from})`);
    if (to - from + 1 > MAX_ENERGY_DAYS) {
      throw badInput('to', `the range covers ${to - from + 1} days from ${args.from}, more than the ${MAX_ENERGY_DAYS} allowed`);
    }
    const granularity: EnergyGranularity = args.granularity ?? 'MONTH';
    const known: readonly string[] = COLLECTIVITY_IDS;
    const ids: string[] = [];
    (args.collectivityIds ?? COLLECTIVITY_IDS).forEach((id, index) => {
      if (!known.includes(id)) throw badInput(`collectivityIds.${index}`, `'${id}' is not a collectivity (known: ${known.join(', ')})`);
      if (!ids.includes(id)) ids.push(id);
    });
    if (ids.length === 0) return [];

    const { config } = this.r;
    const { rows } = await this.base.db.pool.query<EnergyRow>(ENERGY_SQL, [
      args.from,
      args.to,
      ids,
      granularity,
      config.ENERGY_PRICE_EUR_PER_KWH,
      config.CO2_KG_PER_KWH,
      config.SAVINGS_TARGET_EUROS,
      config.CONTRACT_START,
      config.CONTRACT_YEARS,
    ]);

    // Rows come per collectivity, its periods oldest first, then its total.
    const periods = new Map<string, EnergyPeriodValue[]>(ids.map((id) => [id, []]));
    const result: CollectivityEnergyValue[] = [];
    for (const row of rows) {
      if (!row.is_total) {
        periods.get(row.collectivity_id)!.push({ start: row.start, end: row.end, figures: figuresOf(row) });
        continue;
      }
      const total = figuresOf(row);
      const proRataEuros = round(row.pro_rata_euros, 2);
      result.push({
        collectivity: { id: row.collectivity_id },
        periods: periods.get(row.collectivity_id)!,
        total,
        target: {
          contractEuros: round(row.contract_euros, 2),
          proRataEuros,
          achievedEuros: total.savedEuros,
          ratio: proRataEuros > 0 ? row.saved_euros / row.pro_rata_euros : null,
        },
      });
    }
    return result;
  }
}
