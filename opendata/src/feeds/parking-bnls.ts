/**
 * The car parks of the territory in the French national format, the *Base Nationale des Lieux de
 * Stationnement* (BNLS): a CSV valid against the TableSchema etalab/schema-stationnement 0.1.5
 * (copied in `opendata/reference/parking-fr/`), which transport.data.gouv.fr consolidates.
 *
 * - Off-street facilities only (UNDERGROUND → `ouvrage`, SURFACE → `enclos_en_surface`): the
 *   BNLS does not cover on-street parking, so ON_STREET sectors are left out.
 * - `id` is `<INSEE>-P-<nnn>`: the facilities of each commune numbered from 001 in the order of
 *   their equipment ids (a facility registered later is numbered after the existing ones).
 * - `num_siret` is the SIRET of the collectivity that runs the facility: its SIREN followed by the
 *   NIC `0001k` of its head office, `k` the Luhn key (schema's `french-siret-value` check). This is
 *   derived, not read from the SIRENE register: confirm it before a first publication.
 * - Prices: `tarif_Nh` is the price of a stay of N hours (free within the free minutes; the first
 *   price covering the stay, else the open-ended one; empty when no price covers it);
 *   `gratuit` is true when every price is 0. `info` gives the opening hours (OSM syntax) and the
 *   free minutes; nothing is unknown that the schema requires (`hauteur_max` is `N/A`).
 * - `;`-separated, UTF-8 without BOM, header row, CRLF line ends, every column present.
 */
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed } from '../feed.js';
import { checkParameters } from '../parameters.js';
import { isFree, parkingVersion, priceOfStay, readFacilities, WHOLE_PARKING, type OpeningHours, type ParkingFacility } from './parking-data.js';

/** The schema's columns, in its order. */
export const BNLS_COLUMNS = [
  'id', 'nom', 'insee', 'adresse', 'url', 'type_usagers', 'gratuit', 'nb_places', 'nb_pr', 'nb_pmr',
  'nb_voitures_electriques', 'nb_velo', 'nb_2r_el', 'nb_autopartage', 'nb_2_rm', 'nb_covoit', 'hauteur_max',
  'num_siret', 'Xlong', 'Ylat', 'tarif_pmr', 'tarif_1h', 'tarif_2h', 'tarif_3h', 'tarif_4h', 'tarif_24h',
  'abo_resident', 'abo_non_resident', 'type_ouvrage', 'info',
] as const;

export const BNLS_SEPARATOR = ';';

/** The Luhn key making `digits` + key valid. */
function luhnKey(digits: string): string {
  for (let key = 0; key <= 9; key++) {
    const all = digits + key;
    let sum = 0;
    for (let i = 0; i < all.length; i++) {
      let d = Number(all[all.length - 1 - i]);
      if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
      sum += d;
    }
    if (sum % 10 === 0) return String(key);
  }
  throw new Error('unreachable');
}

/** SIREN → the head office's SIRET (NIC 0001k). */
export const siretOfSiren = (siren: string) => `${siren}0001${luhnKey(`${siren}0001`)}`;

const OSM_DAYS = ['Mo', 'Tu', 'We', 'Th', 'Fr', 'Sa', 'Su'];

/** Opening hours in OpenStreetMap's `opening_hours` syntax: `Mo-Sa 06:30-24:00; Su 08:00-21:00`, `24/7` without hours. */
export function osmOpeningHours(hours: readonly OpeningHours[]): string {
  if (hours.length === 0) return '24/7';
  return hours
    .map((entry) => {
      const runs: string[] = [];
      const days = [...entry.days].sort((a, b) => a - b);
      for (let i = 0; i < days.length; ) {
        let j = i;
        while (j + 1 < days.length && days[j + 1] === days[j] + 1) j++;
        runs.push(j === i ? OSM_DAYS[days[i] - 1] : `${OSM_DAYS[days[i] - 1]}${j === i + 1 ? ',' : '-'}${OSM_DAYS[days[j] - 1]}`);
        i = j + 1;
      }
      return `${runs.join(',')} ${entry.opens}-${entry.closes}`;
    })
    .join('; ');
}

const price = (value: number | null) => (value === null ? '' : value.toFixed(2));

function row(f: ParkingFacility, id: string): string[] {
  const info = [`Horaires : ${osmOpeningHours(f.openingHours)}`];
  if (f.freeMinutes > 0 && !isFree(f)) info.push(`${f.freeMinutes} premières minutes gratuites`);
  const values: Record<(typeof BNLS_COLUMNS)[number], string> = {
    id,
    nom: f.name,
    insee: f.inseeCode!,
    adresse: '',
    url: '',
    type_usagers: 'tous',
    gratuit: String(isFree(f)),
    nb_places: String(f.capacity),
    nb_pr: '',
    nb_pmr: '',
    nb_voitures_electriques: '',
    nb_velo: '',
    nb_2r_el: '',
    nb_autopartage: '',
    nb_2_rm: '',
    nb_covoit: '',
    hauteur_max: 'N/A',
    num_siret: siretOfSiren(f.operatorSiren!),
    Xlong: f.lon.toFixed(6),
    Ylat: f.lat.toFixed(6),
    tarif_pmr: '',
    tarif_1h: price(priceOfStay(f, 60)),
    tarif_2h: price(priceOfStay(f, 120)),
    tarif_3h: price(priceOfStay(f, 180)),
    tarif_4h: price(priceOfStay(f, 240)),
    tarif_24h: price(priceOfStay(f, 1440)),
    abo_resident: '',
    abo_non_resident: '',
    type_ouvrage: f.type === 'UNDERGROUND' ? 'ouvrage' : 'enclos_en_surface',
    info: `${info.join('. ')}.`,
  };
  return BNLS_COLUMNS.map((column) => values[column]);
}

/** RFC 4180 quoting: a field holding the separator, a quote, a line break or edge spaces is quoted. */
const field = (value: string) => (/[;"\r\n]|^\s|\s$/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);

/** The CSV of the facilities BNLS covers (off-street, with a commune and an operator). */
export function bnlsCsv(facilities: readonly ParkingFacility[]): string {
  const numbers = new Map<string, number>();
  const lines = [BNLS_COLUMNS.join(BNLS_SEPARATOR)];
  for (const f of facilities) {
    if (f.type === 'ON_STREET' || !f.inseeCode || !f.operatorSiren || !/^\d{9}$/.test(f.operatorSiren)) continue;
    const n = (numbers.get(f.inseeCode) ?? 0) + 1;
    if (n > 999) continue; // the schema's id has three digits
    numbers.set(f.inseeCode, n);
    lines.push(row(f, `${f.inseeCode}-P-${String(n).padStart(3, '0')}`).map(field).join(BNLS_SEPARATOR));
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** What the CSV shows of a facility (its version's digest). */
const described = (f: ParkingFacility) => [f.id, f.name, f.type, f.inseeCode, f.operatorSiren, f.lon, f.lat, f.capacity, f.openingHours, f.tariffs, f.freeMinutes];

export const parkingBnls: Feed<null> = {
  id: 'parking-bnls',
  path: '/opendata/parking/bnls.csv',
  contentType: 'text/csv; charset=utf-8',
  maxAgeSeconds: 3600,
  dataset: {
    title: 'Lieux de stationnement (Base Nationale des Lieux de Stationnement)',
    description:
      "Parkings en ouvrage et en enclos de Châlons-en-Champagne et de Châlons Agglo au format du schéma national « Lieux de stationnement » (etalab/schema-stationnement 0.1.5, BNLS) : identifiant, commune, nombre de places, coordonnées WGS84, tarifs d'1 h à 24 h, horaires. Le stationnement sur voirie n'y figure pas (hors du champ du schéma).",
    keywords: ['stationnement', 'parking', 'BNLS', 'schema-stationnement', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'CSV',
    frequency: 'daily',
  },
  parse(params) {
    checkParameters(params, []);
    return null;
  },
  async version(db) {
    const facilities = await readFacilities(db, WHOLE_PARKING);
    return parkingVersion(facilities, new Date(), described, (f) => f.descriptionUpdatedAt);
  },
  async render(db) {
    return bnlsCsv(await readFacilities(db, WHOLE_PARKING));
  },
};
