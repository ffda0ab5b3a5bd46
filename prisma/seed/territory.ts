/**
 * The territory's reference data: collectivities (tenants), the 30 communes of
 * `data/communes-around-chalons.geojson`, service categories and Châlons' districts.
 */
import { readFileSync } from 'node:fs';
import { voronoi, featureCollection, point } from '@turf/turf';
import { toLonLat, toXY, pointInRing, type LonLat, type XY } from './geo.js';

export const COMMUNES_FILE = new URL('./data/communes-around-chalons.geojson', import.meta.url);

export const INSEE = {
  CHALONS: '51108',
  FAGNIERES: '51242',
  SAINT_MARTIN: '51504',
} as const;

export interface CollectivitySeed {
  id: string;
  name: string;
  kind: 'COMMUNE' | 'AGGLOMERATION';
  inseeCode: string | null;
  siren: string;
  /** Prefix of equipment references, unique per collectivity (`LP-CHA-00001`). */
  code: string;
}

/**
 * SIREN numbers. A commune's SIREN is built by INSEE as 21 + département + 0 + commune number
 * + a Luhn key, so the three municipal ones below follow that rule (and are very likely the
 * real ones). The agglomeration's (an EPCI, series 200…) is plausible and Luhn-valid but not
 * verified against the SIRENE register. All four pass the Luhn check.
 */
export const COLLECTIVITIES: readonly CollectivitySeed[] = [
  { id: 'chalons', name: 'Châlons-en-Champagne', kind: 'COMMUNE', inseeCode: INSEE.CHALONS, siren: '215101080', code: 'CHA' },
  { id: 'fagnieres', name: 'Fagnières', kind: 'COMMUNE', inseeCode: INSEE.FAGNIERES, siren: '215102427', code: 'FAG' },
  { id: 'saint-martin-sur-le-pre', name: 'Saint-Martin-sur-le-Pré', kind: 'COMMUNE', inseeCode: INSEE.SAINT_MARTIN, siren: '215105040', code: 'SMP' },
  { id: 'chalons-agglo', name: 'Châlons Agglo', kind: 'AGGLOMERATION', inseeCode: null, siren: '200066637', code: 'AGG' },
];

export const AGGLO_ID = 'chalons-agglo';

/** The municipal collectivity of each of the three project communes. */
export const COLLECTIVITY_OF_COMMUNE: Readonly<Record<string, string>> = {
  [INSEE.CHALONS]: 'chalons',
  [INSEE.FAGNIERES]: 'fagnieres',
  [INSEE.SAINT_MARTIN]: 'saint-martin-sur-le-pre',
};

export const SERVICE_CATEGORIES = [
  { code: 'STREET_LIGHTING', label: 'Street lighting', competence: 'MUNICIPAL' },
  { code: 'CLEANLINESS', label: 'Cleanliness (litter, tags and graffiti)', competence: 'MUNICIPAL' },
  { code: 'STREET_FURNITURE', label: 'Street furniture', competence: 'MUNICIPAL' },
  { code: 'ROADS', label: 'Roads and pavements', competence: 'MUNICIPAL' },
  { code: 'BUS_NETWORK', label: 'Bus network and stops', competence: 'AGGLOMERATION' },
  { code: 'WASTE_COLLECTION', label: 'Waste collection (including full bins)', competence: 'AGGLOMERATION' },
] as const;

export interface CommuneSeed {
  code: string;
  name: string;
  /** GeoJSON geometry as read (Polygon), stored as MultiPolygon. */
  geometry: { type: 'Polygon'; coordinates: LonLat[][] };
  /** The outer ring in the local metric plane, open. */
  ring: XY[];
  collectivityId: string | null;
  /**
   * Member of Châlons Agglo. The agglomeration has ~46 member communes since its 2017
   * extension, covering the whole area around the city; every one of the 30 communes of the
   * reference file (centroids within 12 km of Châlons) is taken as a member. The flag stays in
   * the data so a commune can be taken out without touching code that reads it.
   */
  agglomeration: boolean;
}

export function loadCommunes(): CommuneSeed[] {
  const geojson = JSON.parse(readFileSync(COMMUNES_FILE, 'utf8')) as {
    features: { properties: { code: string; nom: string }; geometry: CommuneSeed['geometry'] }[];
  };
  const communes = geojson.features.map((feature) => {
    if (feature.geometry.type !== 'Polygon' || feature.geometry.coordinates.length !== 1) {
      throw new Error(`commune ${feature.properties.code}: expected a Polygon without holes`);
    }
    const outer = feature.geometry.coordinates[0];
    return {
      code: feature.properties.code,
      name: feature.properties.nom,
      geometry: feature.geometry,
      ring: outer.slice(0, -1).map((p) => toXY(p)),
      collectivityId: COLLECTIVITY_OF_COMMUNE[feature.properties.code] ?? null,
      agglomeration: true,
    };
  });
  communes.sort((a, b) => a.code.localeCompare(b.code));
  if (communes.length !== 30) throw new Error(`expected 30 communes, read ${communes.length}`);
  return communes;
}

/**
 * Châlons' quartiers. Real names; centre points placed by hand so that they spread over the
 * commune's odd shape (Rive Gauche west of the Marne, Le Jard along it, the large housing
 * districts to the north and north-east, Saint-Memmie's border to the east) — plausible, not
 * surveyed. The boundaries are not the official IRIS ones: the commune is partitioned into the
 * Voronoi cells of these centres, clipped to the commune.
 */
export const DISTRICTS: readonly { slug: string; name: string; centre: LonLat }[] = [
  { slug: 'centre-ville', name: 'Centre-ville', centre: [4.3655, 48.9575] },
  { slug: 'le-jard', name: 'Le Jard', centre: [4.3575, 48.9525] },
  { slug: 'rive-gauche', name: 'Rive Gauche', centre: [4.3445, 48.9605] },
  { slug: 'bidonnet', name: 'Bidonnet', centre: [4.3490, 48.9450] },
  { slug: 'vallee-saint-pierre', name: 'Vallée Saint-Pierre', centre: [4.3630, 48.9435] },
  { slug: 'mont-hery', name: 'Mont-Héry', centre: [4.3925, 48.9420] },
  { slug: 'orleans', name: 'Orléans', centre: [4.3775, 48.9675] },
  { slug: 'verbeau', name: 'Verbeau', centre: [4.3590, 48.9755] },
  { slug: 'schmit', name: 'Schmit', centre: [4.3810, 48.9850] },
  { slug: 'croix-dampierre', name: 'Croix-Dampierre', centre: [4.4050, 48.9755] },
];

export interface DistrictSeed {
  id: string;
  name: string;
  inseeCode: string;
  /** The Voronoi cell (a Polygon in lon/lat, larger than the commune): SQL clips it to the commune. */
  cell: { type: 'Polygon'; coordinates: LonLat[][] };
}

export function buildDistricts(chalons: CommuneSeed): DistrictSeed[] {
  const centres = DISTRICTS.map((d) => toXY(d.centre));
  DISTRICTS.forEach((d, i) => {
    if (!pointInRing(centres[i], chalons.ring)) throw new Error(`district ${d.slug}: centre outside Châlons`);
  });
  // Voronoi in the metric plane (equidistant boundaries in metres), bounded well beyond the commune.
  const xs = chalons.ring.map((p) => p[0]);
  const ys = chalons.ring.map((p) => p[1]);
  const pad = 2000;
  const bbox: [number, number, number, number] = [Math.min(...xs) - pad, Math.min(...ys) - pad, Math.max(...xs) + pad, Math.max(...ys) + pad];
  const cells = voronoi(featureCollection(centres.map((c) => point(c))), { bbox });
  return DISTRICTS.map((d, i) => {
    const cell = cells.features[i];
    if (!cell?.geometry) throw new Error(`district ${d.slug}: no Voronoi cell`);
    const ring = cell.geometry.coordinates[0].map((p) => toLonLat(p as XY));
    return { id: `${chalons.code}-${d.slug}`, name: d.name, inseeCode: chalons.code, cell: { type: 'Polygon', coordinates: [ring] } };
  });
}
