/**
 * Tariffs and opening hours of the seeded parking facilities (table `parking_facility_info`,
 * owned by the mobility subgraph; the facilities themselves, their positions and capacities, are
 * PARKING_FACILITY equipment rows of equipment.ts). Deterministic: computed from the equipment
 * plan alone.
 *
 * The figures are plausible for a French préfecture of ~45,000 inhabitants, not an inventory:
 * - underground car parks (barrier, pay on foot): open every day, long hours, first 30 minutes
 *   free, about 1.70 € an hour, capped by a day price;
 * - surface car parks near the centre: open all the time, paying Monday to Saturday, first
 *   20 minutes free (the seed keeps one set of hours: the facility is open at any hour);
 *   the station's is the dearest and has a day price for commuters;
 * - on-street sectors: short stays (at most 2 hours), first 15 minutes free (the municipal
 *   "arrêt minute"), with the paid period of Monday to Saturday 09:00–19:00 in the tariffs' labels;
 *   the sector's opening hours stay `[]` (the bays are on a public street: always open).
 * Opening hours: `[]` means always open; days are ISO (1 = Monday … 7 = Sunday).
 */
import type pg from 'pg';
import type { EquipmentPlan } from './equipment.js';

export interface ParkingInfoSeed {
  equipmentId: string;
  collectivityId: string;
  openingHours: { days: number[]; opens: string; closes: string }[];
  tariffs: { label: string; upToMinutes: number | null; priceEur: number }[];
  freeMinutes: number;
}

const WEEKDAYS_SAT = [1, 2, 3, 4, 5, 6];

/** Per facility name of equipment.ts (PARKING_FACILITIES); on-street sectors by type. */
const OFF_STREET: Readonly<Record<string, Omit<ParkingInfoSeed, 'equipmentId' | 'collectivityId'>>> = {
  'Parking Hôtel de Ville': {
    openingHours: [
      { days: WEEKDAYS_SAT, opens: '06:30', closes: '24:00' },
      { days: [7], opens: '08:00', closes: '21:00' },
    ],
    freeMinutes: 30,
    tariffs: [
      { label: '1 heure', upToMinutes: 60, priceEur: 1.7 },
      { label: '2 heures', upToMinutes: 120, priceEur: 3.2 },
      { label: '3 heures', upToMinutes: 180, priceEur: 4.6 },
      { label: '4 heures', upToMinutes: 240, priceEur: 5.9 },
      { label: 'Journée (24 h)', upToMinutes: 1440, priceEur: 14 },
      { label: 'Au-delà, par jour', upToMinutes: null, priceEur: 14 },
    ],
  },
  'Parking du Marché couvert': {
    openingHours: [
      { days: [1, 2, 3, 4, 5], opens: '07:00', closes: '21:00' },
      { days: [6], opens: '06:00', closes: '21:00' },
      { days: [7], opens: '07:00', closes: '14:00' },
    ],
    freeMinutes: 30,
    tariffs: [
      { label: '1 heure', upToMinutes: 60, priceEur: 1.6 },
      { label: '2 heures', upToMinutes: 120, priceEur: 3 },
      { label: '3 heures', upToMinutes: 180, priceEur: 4.3 },
      { label: 'Journée', upToMinutes: 1440, priceEur: 12 },
    ],
  },
  'Parking de la République': {
    openingHours: [],
    freeMinutes: 20,
    tariffs: [
      { label: '1 heure', upToMinutes: 60, priceEur: 1.2 },
      { label: '2 heures', upToMinutes: 120, priceEur: 2.2 },
      { label: '4 heures', upToMinutes: 240, priceEur: 4 },
      { label: 'Journée', upToMinutes: null, priceEur: 6 },
    ],
  },
  'Parking du Jard': {
    openingHours: [],
    freeMinutes: 20,
    tariffs: [
      { label: '1 heure', upToMinutes: 60, priceEur: 0.8 },
      { label: '2 heures', upToMinutes: 120, priceEur: 1.5 },
      { label: 'Journée', upToMinutes: null, priceEur: 3.5 },
    ],
  },
  'Parking de la Gare': {
    openingHours: [],
    freeMinutes: 15,
    tariffs: [
      { label: '1 heure', upToMinutes: 60, priceEur: 1.5 },
      { label: '2 heures', upToMinutes: 120, priceEur: 2.8 },
      { label: 'Journée (24 h)', upToMinutes: 1440, priceEur: 7.5 },
      { label: 'Semaine (7 jours)', upToMinutes: 10080, priceEur: 30 },
      { label: 'Au-delà, par jour', upToMinutes: null, priceEur: 7.5 },
    ],
  },
  'Parking Tissier': {
    openingHours: [{ days: WEEKDAYS_SAT, opens: '07:30', closes: '20:00' }],
    freeMinutes: 20,
    tariffs: [
      { label: '1 heure', upToMinutes: 60, priceEur: 1 },
      { label: '2 heures', upToMinutes: 120, priceEur: 1.9 },
      { label: 'Journée', upToMinutes: 720, priceEur: 4.5 },
    ],
  },
};

const ON_STREET: Omit<ParkingInfoSeed, 'equipmentId' | 'collectivityId'> = {
  openingHours: [],
  freeMinutes: 15,
  tariffs: [
    { label: '30 minutes', upToMinutes: 30, priceEur: 0.6 },
    { label: '1 heure', upToMinutes: 60, priceEur: 1.3 },
    { label: '1 h 30', upToMinutes: 90, priceEur: 2.1 },
    { label: '2 heures (durée maximale)', upToMinutes: 120, priceEur: 3 },
  ],
};

/** The info row of every seeded PARKING_FACILITY, in equipment order (pure). */
export function buildParkingInfo(equipment: EquipmentPlan): ParkingInfoSeed[] {
  const out: ParkingInfoSeed[] = [];
  for (const row of equipment.rows) {
    if (row.kind !== 'PARKING_FACILITY') continue;
    const type = row.details.type;
    const name = String(row.details.name ?? row.name ?? '');
    const info = type === 'ON_STREET' ? ON_STREET : OFF_STREET[name];
    if (!info) throw new Error(`no tariffs or hours for the seeded parking facility ${row.id} (${name})`);
    out.push({
      equipmentId: row.id,
      collectivityId: row.collectivityId,
      openingHours: info.openingHours.map((h) => ({ ...h, days: [...h.days] })),
      tariffs: info.tariffs.map((t) => ({ ...t })),
      freeMinutes: info.freeMinutes,
    });
  }
  return out;
}

/** Writes the seeded facilities' tariffs and hours (inside the seed's transaction). */
export async function insertParkingInfo(client: pg.PoolClient, equipment: EquipmentPlan): Promise<void> {
  const rows = buildParkingInfo(equipment);
  if (rows.length === 0) return;
  await client.query(
    `INSERT INTO parking_facility_info (equipment_id, collectivity_id, opening_hours, tariffs, free_minutes, updated_by)
     SELECT r.equipment_id, r.collectivity_id, r.opening_hours, r.tariffs, r.free_minutes, 'seed'
       FROM jsonb_to_recordset($1::jsonb)
         AS r(equipment_id text, collectivity_id text, opening_hours jsonb, tariffs jsonb, free_minutes int)
     ON CONFLICT (equipment_id) DO NOTHING`,
    [
      JSON.stringify(
        rows.map((r) => ({
          equipment_id: r.equipmentId,
          collectivity_id: r.collectivityId,
          opening_hours: r.openingHours,
          tariffs: r.tariffs,
          free_minutes: r.freeMinutes,
        })),
      ),
    ],
  );
}
