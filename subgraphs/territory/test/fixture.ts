/**
 * Until prisma/seed/index.ts lands in the harness: the territory's reference rows at a small
 * scale, on a migrated but unseeded database (real commune boundaries, a few districts and
 * streets). The tests assert only what the full seed also satisfies.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ROOT } from '../../../test/harness.js';

const COMMUNES_FILE = path.join(ROOT, 'prisma', 'seed', 'data', 'communes-around-chalons.geojson');

const COLLECTIVITIES = [
  ['chalons', 'Châlons-en-Champagne', 'COMMUNE', '51108', '215101080'],
  ['fagnieres', 'Fagnières', 'COMMUNE', '51242', '215102427'],
  ['saint-martin-sur-le-pre', 'Saint-Martin-sur-le-Pré', 'COMMUNE', '51504', '215105040'],
  ['chalons-agglo', 'Châlons Agglo', 'AGGLOMERATION', null, '200066637'],
] as const;

const CATEGORIES = [
  ['STREET_LIGHTING', 'Street lighting', 'MUNICIPAL'],
  ['CLEANLINESS', 'Cleanliness', 'MUNICIPAL'],
  ['STREET_FURNITURE', 'Street furniture', 'MUNICIPAL'],
  ['ROADS', 'Roads and pavements', 'MUNICIPAL'],
  ['BUS_NETWORK', 'Bus network and stops', 'AGGLOMERATION'],
  ['WASTE_COLLECTION', 'Waste collection', 'AGGLOMERATION'],
] as const;

/** Châlons cut in four quarters around its centre. */
const CENTRE = [4.3655, 48.9575];
const QUARTERS = [
  ['chalons-nord-ouest', 'Nord-Ouest', -1, 1],
  ['chalons-nord-est', 'Nord-Est', 1, 1],
  ['chalons-sud-ouest', 'Sud-Ouest', -1, -1],
  ['chalons-sud-est', 'Sud-Est', 1, -1],
] as const;

/** [id, name, commune, [[lon, lat], ...]] */
const STREETS: [string, string, string, [number, number][]][] = [
  ['s-marne', 'Rue de la Marne', '51108', [[4.3610, 48.9560], [4.3650, 48.9568]]],
  ['s-hotel-de-ville', "Place de l'Hôtel de Ville", '51108', [[4.3625, 48.9563], [4.3635, 48.9567]]],
  ['s-orfeuil', "Rue d'Orfeuil", '51108', [[4.3640, 48.9580], [4.3680, 48.9590]]],
  ['s-jessaint', 'Rue de Jessaint', '51108', [[4.3590, 48.9540], [4.3620, 48.9530]]],
  ['s-foch', 'Place Foch', '51108', [[4.3660, 48.9555], [4.3672, 48.9558]]],
  ['s-vinetz', 'Rue du Faubourg Saint-Antoine', '51108', [[4.3700, 48.9500], [4.3750, 48.9480]]],
  ['s-gare', 'Avenue de la Gare', '51108', [[4.3520, 48.9560], [4.3580, 48.9565]]],
  ['s-fagnieres', 'Rue de Châlons', '51242', [[4.3150, 48.9650], [4.3200, 48.9660]]],
  ['s-saint-martin', 'Rue du Pré', '51504', [[4.3350, 48.9750], [4.3380, 48.9760]]],
];

export async function insertTerritoryFixture(databaseUrl: string): Promise<void> {
  const communes = JSON.parse(readFileSync(COMMUNES_FILE, 'utf8')) as {
    features: { properties: { code: string; nom: string }; geometry: unknown }[];
  };
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    for (const row of COLLECTIVITIES) {
      await client.query('INSERT INTO collectivity (id, name, kind, insee_code, siren) VALUES ($1, $2, $3, $4, $5)', [...row]);
    }
    for (const feature of communes.features) {
      const governor = COLLECTIVITIES.find((c) => c[3] === feature.properties.code)?.[0] ?? null;
      await client.query(
        `INSERT INTO commune (insee_code, name, collectivity_id, agglomeration, geom)
         VALUES ($1, $2, $3, true, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON($4), 4326)))`,
        [feature.properties.code, feature.properties.nom, governor, JSON.stringify(feature.geometry)],
      );
    }
    for (const [id, name, dx, dy] of QUARTERS) {
      const [x0, x1] = dx < 0 ? [3, CENTRE[0]] : [CENTRE[0], 6];
      const [y0, y1] = dy < 0 ? [47, CENTRE[1]] : [CENTRE[1], 50];
      await client.query(
        `INSERT INTO district (id, name, insee_code, geom)
         SELECT $1, $2, insee_code, ST_Multi(ST_CollectionExtract(ST_Intersection(geom, ST_MakeEnvelope($3, $4, $5, $6, 4326)), 3))
         FROM commune WHERE insee_code = '51108'`,
        [id, name, x0, y0, x1, y1],
      );
    }
    for (const [id, name, insee, coordinates] of STREETS) {
      await client.query(
        `WITH line AS (SELECT ST_SetSRID(ST_GeomFromGeoJSON($4), 4326) AS g)
         INSERT INTO street (id, name, insee_code, length_m, geom) SELECT $1, $2, $3, ST_Length(g::geography), g FROM line`,
        [id, name, insee, JSON.stringify({ type: 'LineString', coordinates })],
      );
    }
    for (const row of CATEGORIES) {
      await client.query('INSERT INTO service_category (code, label, competence) VALUES ($1, $2, $3)', [...row]);
    }
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}
