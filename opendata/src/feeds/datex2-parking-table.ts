/**
 * DATEX II v3.7 ParkingTablePublication: the static description of every live parking facility
 * (name, position, capacity, opening hours, prices), from `opendata_parking_facilities`. One
 * `prk:Place` per facility, its id the hub's equipment id (the id the status publication and the
 * GeoJSON use), its version the time its description last changed.
 */
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed } from '../feed.js';
import { checkParameters } from '../parameters.js';
import { dateTime, esc, multilingual, PARKING_TABLE_ID, payload, pointByCoordinates } from './datex2.js';
import { parkingVersion, readFacilities, snapshotNow, WHOLE_PARKING, type FacilityType, type ParkingFacility, type ParkingVersion } from './parking-data.js';

const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];
const LAYOUT: Record<FacilityType, string> = { UNDERGROUND: 'building', SURFACE: 'openSpace', ON_STREET: 'layBy' };

/** A facility's description version: changes with its asset or its tariffs and hours. */
export const placeVersion = (facility: ParkingFacility) => String(facility.descriptionUpdatedAt.getTime());

/** What the table shows of a facility (its version's digest). */
const described = (f: ParkingFacility) => [f.id, f.name, f.type, f.lon, f.lat, f.capacity, f.openingHours, f.tariffs, f.freeMinutes, f.descriptionUpdatedAt.getTime()];

/** The table's version: the digest of every facility's description (the status publication refers to it). */
export function tableVersionOf(facilities: readonly ParkingFacility[], at: Date): ParkingVersion {
  return parkingVersion(facilities, at, described, (f) => f.descriptionUpdatedAt);
}

/** `HH:MM` → xs:time; `24:00` stays `24:00:00` (end of day, valid xs:time). */
const time = (hhmm: string) => `${hhmm}:00`;

/** Minutes of a stay → a relative xs:time (`relativeTimes`), only below 24 h. */
const relative = (minutes: number) => `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}:00`;

function operatingHours(f: ParkingFacility): string {
  if (f.openingHours.length === 0) return '<fac:operatingHours xsi:type="fac:OpenAllHours"/>';
  const periods = f.openingHours
    .map(
      (entry) =>
        `<com:validPeriod><com:recurringTimePeriodOfDay><com:startTimeOfPeriod>${time(entry.opens)}</com:startTimeOfPeriod>` +
        `<com:endTimeOfPeriod>${time(entry.closes)}</com:endTimeOfPeriod></com:recurringTimePeriodOfDay>` +
        `<com:recurringDayWeekMonthPeriod>${entry.days.map((d) => `<com:applicableDay>${DAYS[d - 1]}</com:applicableDay>`).join('')}</com:recurringDayWeekMonthPeriod></com:validPeriod>`,
    )
    .join('');
  return (
    `<fac:operatingHours xsi:type="fac:OperatingHoursSpecification" id="${esc(f.id)}-hours" version="${placeVersion(f)}">` +
    `<fac:overallPeriod><com:overallStartTime>${dateTime(f.descriptionUpdatedAt)}</com:overallStartTime>${periods}</fac:overallPeriod></fac:operatingHours>`
  );
}

/**
 * Prices as flat-rate tiers of a stay, times relative to arrival: the free minutes first (0 €),
 * then each price from the previous duration to its own. A tier of 24 h or more has no end time
 * (xs:time cannot say it): its label says it.
 */
function rates(f: ParkingFacility): string {
  const lines: string[] = [];
  const line = (description: string, start: number | null, end: number | null, price: number) => {
    const startTime = start !== null && start < 1440 ? `<fac:durationStart>${relative(start)}</fac:durationStart>` : '';
    const endTime = end !== null && end < 1440 ? `<fac:durationEnd>${relative(end)}</fac:durationEnd>` : '';
    lines.push(
      `<fac:rateLine sequence="${lines.length + 1}"><fac:rateLineType>flatRateTier</fac:rateLineType>` +
        `<fac:description>${multilingual(description)}</fac:description>${startTime}${endTime}<fac:value>${price.toFixed(2)}</fac:value></fac:rateLine>`,
    );
  };
  if (f.tariffs.length === 0) {
    line('Gratuit', null, null, 0);
  } else {
    let from = 0;
    if (f.freeMinutes > 0) {
      line(`${f.freeMinutes} premières minutes gratuites`, 0, f.freeMinutes, 0);
      from = f.freeMinutes;
    }
    for (const tariff of f.tariffs) {
      line(tariff.label, from, tariff.upToMinutes, tariff.priceEur);
      if (tariff.upToMinutes !== null) from = tariff.upToMinutes;
    }
  }
  return (
    `<fac:rates xsi:type="fac:RateTable" id="${esc(f.id)}-rates" version="${placeVersion(f)}"><fac:applicableCurrency>EUR</fac:applicableCurrency>` +
    `<fac:rateLineCollection collectionSequence="1"><fac:relativeTimes>true</fac:relativeTimes>${lines.join('')}</fac:rateLineCollection></fac:rates>`
  );
}

function place(f: ParkingFacility): string {
  return (
    `<prk:hierarchyElementGeneral xsi:type="prk:Place" id="${esc(f.id)}" version="${placeVersion(f)}">` +
    `<fac:name>${multilingual(f.name)}</fac:name>` +
    `<fac:lastUpdated>${dateTime(f.descriptionUpdatedAt)}</fac:lastUpdated>` +
    operatingHours(f) +
    `<fac:locationReference xsi:type="loc:PointLocation">${pointByCoordinates(f.lon, f.lat)}</fac:locationReference>` +
    rates(f) +
    `<prk:layer>0</prk:layer><prk:type>place</prk:type>` +
    `<prk:supply><prk:quantity>${f.capacity}</prk:quantity><prk:viewType>spaceView</prk:viewType></prk:supply>` +
    `<prk:layout>${LAYOUT[f.type]}</prk:layout>` +
    `</prk:hierarchyElementGeneral>`
  );
}

/** The publication of `facilities` (the ParkingTable needs at least one element: an empty table is published without one). */
export function parkingTableXml(facilities: readonly ParkingFacility[], version: ParkingVersion): string {
  const table =
    facilities.length === 0
      ? ''
      : `<prk:parkingTable id="${PARKING_TABLE_ID}" version="${esc(version.tag.split('|')[1])}">` +
        `<prk:name>${multilingual('Parkings de Châlons-en-Champagne et de son agglomération')}</prk:name>` +
        `<prk:versionTime>${dateTime(version.lastModified ?? version.at)}</prk:versionTime>${facilities.map(place).join('')}</prk:parkingTable>`;
  return payload('prk:ParkingTablePublication', version.at, ['fac', 'loc', 'prk'], table);
}

export const datex2ParkingTable: Feed<null> = {
  id: 'datex2-parking-table',
  path: '/opendata/datex2/parking-table.xml',
  contentType: 'application/xml; charset=utf-8',
  maxAgeSeconds: 3600,
  dataset: {
    title: 'Parkings — description (DATEX II v3.7 ParkingTablePublication)',
    description:
      "Description statique des parkings et secteurs de stationnement sur voirie de Châlons-en-Champagne et de Châlons Agglo au format européen DATEX II v3.7 (ParkingTablePublication) : nom, position WGS84, nombre de places, horaires d'ouverture et tarifs. Les identifiants sont ceux de parking-status.xml et du GeoJSON des parkings.",
    keywords: ['stationnement', 'parking', 'DATEX II', 'mobilité', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'DATEX II',
    frequency: 'daily',
  },
  parse(params) {
    checkParameters(params, []);
    return null;
  },
  async version(db) {
    const [facilities, at] = await Promise.all([readFacilities(db, WHOLE_PARKING), snapshotNow(db)]);
    return tableVersionOf(facilities, at);
  },
  async render(db, _params, version) {
    return parkingTableXml(await readFacilities(db, WHOLE_PARKING), version as ParkingVersion);
  },
};
