/**
 * Parking facilities with their live availability as RFC 7946 GeoJSON (WGS84 [lon, lat]), from
 * `opendata_parking_facilities`: one Point feature per facility, id = the hub's equipment id (the
 * id of the DATEX II publications). `availability` is OK / OVER_CAPACITY / STALE (last count older
 * than 15 minutes) / UNKNOWN (never counted); `freeSpaces`, `occupied` and `occupancyRate` are null
 * unless the count can be believed now (OK or OVER_CAPACITY), `observedAt` says when it was
 * counted; `open` is the opening hours at the document's `generatedAt` (Europe/Paris).
 */
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed } from '../feed.js';
import { checkParameters, QueryParameterError, shown } from '../parameters.js';
import {
  availabilityOf,
  isOpenAt,
  parkingVersion,
  readFacilities,
  snapshotNow,
  type FacilityType,
  type ParkingFacility,
  type ParkingSelection,
  type ParkingVersion,
} from './parking-data.js';

const TYPES: readonly FacilityType[] = ['UNDERGROUND', 'SURFACE', 'ON_STREET'];
const COLLECTIVITIES = ['chalons', 'fagnieres', 'saint-martin-sur-le-pre', 'chalons-agglo'];

/** `collectivity` (one id) and `type` (a list: `type=A,B` or `type=A&type=B`, any case). */
export function parseParkingSelection(params: URLSearchParams): ParkingSelection {
  checkParameters(params, ['collectivity', 'type'], ['type']);
  const collectivityId = params.get('collectivity');
  if (collectivityId !== null && !COLLECTIVITIES.includes(collectivityId)) {
    throw new QueryParameterError('collectivity', `must be one of ${COLLECTIVITIES.join(', ')}`);
  }
  const values = params.getAll('type');
  const types = values.length === 0 ? null : [...new Set(values.flatMap((v) => v.split(',')).map((t) => t.trim().toUpperCase()))].sort();
  for (const type of types ?? []) {
    if (!(TYPES as readonly string[]).includes(type)) throw new QueryParameterError('type', `${shown(type)} is not a facility type (${TYPES.join(', ')})`);
  }
  return { collectivityId, types: types as FacilityType[] | null };
}

const shownAt = (at: Date) => (f: ParkingFacility) => [
  f.id, f.name, f.type, f.lon, f.lat, f.capacity, f.occupied, f.observedAt?.getTime() ?? null,
  f.openingHours, f.tariffs, f.freeMinutes, availabilityOf(f, at), isOpenAt(f.openingHours, at),
];

function feature(f: ParkingFacility, at: Date) {
  const availability = availabilityOf(f, at);
  const believed = availability === 'OK' || availability === 'OVER_CAPACITY';
  return {
    type: 'Feature',
    id: f.id,
    geometry: { type: 'Point', coordinates: [Number(f.lon.toFixed(6)), Number(f.lat.toFixed(6))] },
    properties: {
      name: f.name,
      type: f.type,
      collectivity: f.collectivityId,
      commune: f.inseeCode,
      capacity: f.capacity,
      availability,
      freeSpaces: believed ? f.freeSpaces : null,
      occupied: believed ? f.occupied : null,
      occupancyRate: believed && f.capacity > 0 && f.occupied !== null ? Number((f.occupied / f.capacity).toFixed(3)) : null,
      observedAt: f.observedAt?.toISOString() ?? null,
      open: isOpenAt(f.openingHours, at),
      openingHours: f.openingHours,
      freeMinutes: f.freeMinutes,
      tariffs: f.tariffs,
    },
  };
}

export function parkingFeatureCollection(facilities: readonly ParkingFacility[], at: Date): string {
  return JSON.stringify({ type: 'FeatureCollection', generatedAt: at.toISOString(), features: facilities.map((f) => feature(f, at)) });
}

export const parkingGeojson: Feed<ParkingSelection> = {
  id: 'parking-facilities',
  path: '/opendata/geojson/parking-facilities.geojson',
  contentType: 'application/geo+json; charset=utf-8',
  maxAgeSeconds: 60,
  dataset: {
    title: 'Parkings et places disponibles en temps réel (GeoJSON)',
    description:
      "Parkings et secteurs de stationnement sur voirie de Châlons-en-Champagne et de Châlons Agglo avec leurs places libres en temps réel, leur capacité, leurs horaires et leurs tarifs (GeoJSON RFC 7946, WGS84). Filtres : collectivity, type (UNDERGROUND, SURFACE, ON_STREET).",
    keywords: ['stationnement', 'parking', 'temps réel', 'GeoJSON', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GeoJSON',
    frequency: 'continuous',
  },
  parse: parseParkingSelection,
  async version(db, selection) {
    const [facilities, at] = await Promise.all([readFacilities(db, selection), snapshotNow(db)]);
    return parkingVersion(facilities, at, shownAt(at), (f) => f.updatedAt);
  },
  async render(db, selection, version) {
    const at = (version as ParkingVersion).at;
    return parkingFeatureCollection(await readFacilities(db, selection), at);
  },
};
