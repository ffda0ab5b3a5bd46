/**
 * DATEX II v3.7 ParkingStatusPublication: the live availability of every parking facility, from
 * `opendata_parking_facilities`. Each `prk:parkingStatusInformation` refers to its `prk:Place` of
 * parking-table.xml (same id and version) and to that table's version; `openingStatus` is the
 * facility's hours at the publication time (Europe/Paris); occupancy (vacant and occupied spaces,
 * percentage) is given only for a count that can be believed now: never reported (`UNKNOWN`) or
 * older than the stale threshold (`STALE`), the figures are left out and `lastUpdated` alone says
 * how old the last count is. A count above the capacity is published capped (0 vacant, 100 %).
 */
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed } from '../feed.js';
import { checkParameters } from '../parameters.js';
import { placeVersion, tableVersionOf } from './datex2-parking-table.js';
import { dateTime, esc, PARKING_TABLE_ID, payload } from './datex2.js';
import {
  availabilityOf,
  isOpenAt,
  parkingVersion,
  readFacilities,
  snapshotNow,
  WHOLE_PARKING,
  type ParkingFacility,
  type ParkingVersion,
} from './parking-data.js';

/** What the status shows of a facility at `at`, derived states included (its version's digest). */
const shown = (at: Date) => (f: ParkingFacility) => [
  f.id,
  placeVersion(f),
  f.capacity,
  f.occupied,
  f.observedAt?.getTime() ?? null,
  availabilityOf(f, at),
  isOpenAt(f.openingHours, at),
];

function statusInformation(f: ParkingFacility, at: Date): string {
  const availability = availabilityOf(f, at);
  const open = isOpenAt(f.openingHours, at);
  let occupancy = '';
  if ((availability === 'OK' || availability === 'OVER_CAPACITY') && f.occupied !== null && f.freeSpaces !== null) {
    const percentage = f.capacity > 0 ? `<prk:occupancy>${Number(((f.occupied / f.capacity) * 100).toFixed(1))}</prk:occupancy>` : '';
    occupancy =
      `<prk:occupancy><prk:numberOfVacantSpaces>${f.freeSpaces}</prk:numberOfVacantSpaces>` +
      `<prk:numberOfOccupiedSpaces>${f.occupied}</prk:numberOfOccupiedSpaces>${percentage}</prk:occupancy>`;
  }
  return (
    `<prk:parkingStatusInformation>` +
    `<fac:reference targetClass="fac:FacilityObject" id="${esc(f.id)}" version="${placeVersion(f)}"/>` +
    (f.observedAt ? `<fac:lastUpdated>${dateTime(f.observedAt)}</fac:lastUpdated>` : '') +
    `<fac:openingStatus>${open ? 'open' : 'closed'}</fac:openingStatus>` +
    occupancy +
    `</prk:parkingStatusInformation>`
  );
}

/** The publication at `version.at`; `tableVersion` is parking-table.xml's for the same rows. */
export function parkingStatusXml(facilities: readonly ParkingFacility[], version: ParkingVersion): string {
  const table = tableVersionOf(facilities, version.at).tag.split('|')[1];
  const body =
    `<prk:parkingTableReference targetClass="prk:ParkingTable" id="${PARKING_TABLE_ID}" version="${esc(table)}"/>` +
    facilities.map((f) => statusInformation(f, version.at)).join('');
  return payload('prk:ParkingStatusPublication', version.at, ['fac', 'prk'], body);
}

export const datex2ParkingStatus: Feed<null> = {
  id: 'datex2-parking-status',
  path: '/opendata/datex2/parking-status.xml',
  contentType: 'application/xml; charset=utf-8',
  maxAgeSeconds: 60,
  dataset: {
    title: 'Parkings — disponibilité en temps réel (DATEX II v3.7 ParkingStatusPublication)',
    description:
      "Places libres, places occupées et taux d'occupation des parkings et secteurs de stationnement de Châlons-en-Champagne et de Châlons Agglo, au format européen DATEX II v3.7 (ParkingStatusPublication), avec l'état d'ouverture selon les horaires. Un comptage de plus de 15 minutes n'est plus publié comme disponibilité. Référence les lieux de parking-table.xml.",
    keywords: ['stationnement', 'parking', 'temps réel', 'disponibilité', 'DATEX II', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'DATEX II',
    frequency: 'continuous',
  },
  parse(params) {
    checkParameters(params, []);
    return null;
  },
  async version(db) {
    const [facilities, at] = await Promise.all([readFacilities(db, WHOLE_PARKING), snapshotNow(db)]);
    return parkingVersion(facilities, at, shown(at), (f) => f.updatedAt);
  },
  async render(db, _params, version) {
    return parkingStatusXml(await readFacilities(db, WHOLE_PARKING), version as ParkingVersion);
  },
};
