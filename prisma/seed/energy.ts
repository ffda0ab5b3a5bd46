/**
 * Pre-renovation energy baselines: what each light point and each building's energy meter
 * consumed a year before the contract's works, the reference its savings are counted against
 * (table `energy_baselines`, read by the telemetry subgraph's energy figures). Deterministic:
 * computed from the equipment plan alone. The assumptions and their sources are in README.md
 * beside this file ("Energy baselines").
 */
import type pg from 'pg';
import type { EquipmentSeed } from './equipment.js';

/**
 * Annual burning hours of all-night public lighting in France (dusk to dawn, about 11.2 h a night
 * on average over the year): the usual reference figure for public-lighting energy audits.
 */
export const LIGHTING_HOURS_PER_YEAR = 4_100;

/**
 * The high-pressure sodium (HPS) luminaire each LED wattage of the seed replaced, and what it drew
 * from the network with its ferromagnetic ballast (lamp + ballast losses, about 12–19 %). Before
 * renovation nothing was dimmed: the luminaire drew that power for every burning hour.
 */
export const REPLACED_HPS: Readonly<Record<number, { lampW: number; systemW: number }>> = {
  18: { lampW: 70, systemW: 83 },
  24: { lampW: 70, systemW: 83 },
  30: { lampW: 100, systemW: 115 },
  36: { lampW: 100, systemW: 115 },
  45: { lampW: 150, systemW: 171 },
  60: { lampW: 150, systemW: 171 },
  75: { lampW: 250, systemW: 276 },
  90: { lampW: 250, systemW: 276 },
};

/**
 * Pre-renovation final energy per heated m² and year, all uses of the carrier the meter measures
 * (heating, hot water, lighting, ventilation): non-renovated schools and sports halls of the
 * 1960s–1980s (the seed's assumption; README.md).
 */
export const BUILDING_KWH_PER_M2_YEAR = { SCHOOL: 150, SPORTS_HALL: 190 } as const;

/** Who recorded the seeded baselines. */
export const BASELINE_RECORDED_BY = 'seed';

export interface EnergyBaselineSeed {
  equipmentId: string;
  collectivityId: string;
  kind: 'LIGHT_POINT' | 'ENERGY_METER';
  kwhPerYear: number;
  source: string;
  /** YYYY-MM-DD: the day the asset was installed, i.e. when the old equipment it replaced was audited. */
  recordedOn: string;
}

/** 4100 → `4,100`, without depending on the platform's locale data. */
const thousands = (n: number) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** One baseline per light point and per energy meter of the plan, in the plan's order. */
export function buildEnergyBaselines(rows: readonly EquipmentSeed[]): EnergyBaselineSeed[] {
  const byId = new Map(rows.map((row) => [row.id, row]));
  const baselines: EnergyBaselineSeed[] = [];
  for (const row of rows) {
    if (row.kind === 'LIGHT_POINT') {
      const powerW = row.details.powerW as number;
      const hps = REPLACED_HPS[powerW];
      if (!hps) throw new Error(`seed: light point ${row.id} has a ${powerW} W LED, which REPLACED_HPS does not map to the luminaire it replaced`);
      baselines.push({
        equipmentId: row.id,
        collectivityId: row.collectivityId,
        kind: 'LIGHT_POINT',
        // Integer arithmetic, then one division: the same float on every platform.
        kwhPerYear: (hps.systemW * LIGHTING_HOURS_PER_YEAR) / 1000,
        source: `replaced HPS ${hps.lampW} W luminaire, ${hps.systemW} W with its ballast, × ${thousands(LIGHTING_HOURS_PER_YEAR)} h/year, undimmed`,
        recordedOn: row.installedOn,
      });
    } else if (row.kind === 'ENERGY_METER') {
      const building = row.parentId ? byId.get(row.parentId) : undefined;
      const use = building?.details.use as keyof typeof BUILDING_KWH_PER_M2_YEAR | undefined;
      const area = building?.details.heatedAreaM2 as number | undefined;
      if (!building || building.kind !== 'BUILDING' || !use || !(use in BUILDING_KWH_PER_M2_YEAR) || !(typeof area === 'number' && area > 0)) {
        throw new Error(`seed: energy meter ${row.id} is not in a building with a use and a heated area`);
      }
      const ratio = BUILDING_KWH_PER_M2_YEAR[use];
      baselines.push({
        equipmentId: row.id,
        collectivityId: row.collectivityId,
        kind: 'ENERGY_METER',
        kwhPerYear: area * ratio,
        source: `${use === 'SCHOOL' ? 'school' : 'sports hall'} ${building.id}: ${thousands(area)} m² heated × ${ratio} kWh/m²/year before renovation`,
        recordedOn: row.installedOn,
      });
    }
  }
  return baselines;
}

/** Writes the baselines in one statement (unnest arrays). */
export async function insertEnergyBaselines(client: pg.PoolClient, baselines: readonly EnergyBaselineSeed[]): Promise<void> {
  await client.query(
    `INSERT INTO energy_baselines (equipment_id, collectivity_id, kind, baseline_kwh_per_year, source, recorded_on, recorded_by)
     SELECT equipment_id, collectivity_id, kind, kwh, source, recorded_on, $7
       FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::date[])
         AS t(equipment_id, collectivity_id, kind, kwh, source, recorded_on)`,
    [
      baselines.map((b) => b.equipmentId),
      baselines.map((b) => b.collectivityId),
      baselines.map((b) => b.kind),
      baselines.map((b) => b.kwhPerYear),
      baselines.map((b) => b.source),
      baselines.map((b) => b.recordedOn),
      BASELINE_RECORDED_BY,
    ],
  );
}
