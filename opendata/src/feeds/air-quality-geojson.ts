/**
 * Indoor air quality of the public buildings (schools, sports halls), per building and UTC hour,
 * as GeoJSON: one Point feature per building and hour with the hour's mean and maximum CO2 (ppm),
 * mean temperature (°C), mean relative humidity (%) and mean and maximum PM2.5 (µg/m³) over the
 * building's sensors. From telemetry's `opendata_air_quality_hourly` (aggregates of the hourly
 * roll-ups), placed at the building of `opendata_equipment`. Streamed: the whole retained history
 * is large. `from` / `to` (UTC days, included) narrow it.
 */
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed } from '../feed.js';
import { QueryParameterError } from '../parameters.js';
import { Conditions, featureCollection, parseDay, rowsVersion } from './geojson-stream.js';
import { checkParameters } from '../parameters.js';

export interface AirQualitySelection {
  /** UTC day, included. */
  from: string | null;
  /** UTC day, included. */
  to: string | null;
  building: string | null;
}

export function parseAirQuality(params: URLSearchParams): AirQualitySelection {
  checkParameters(params, ['from', 'to', 'building']);
  const from = parseDay(params, 'from');
  const to = parseDay(params, 'to');
  if (from && to && to < from) throw new QueryParameterError('to', `must not be before from (${from})`);
  const building = params.get('building');
  if (building !== null && !/^bld-[a-z0-9-]{1,60}$/.test(building)) {
    throw new QueryParameterError('building', 'must be a building id such as bld-chalons-00001');
  }
  return { from, to, building };
}

function conditions(selection: AirQualitySelection): Conditions {
  const c = new Conditions();
  if (selection.from) c.add(`t.hour >= ${c.param(selection.from)}::date::timestamp AT TIME ZONE 'UTC'`);
  if (selection.to) c.add(`t.hour < (${c.param(selection.to)}::date + 1)::timestamp AT TIME ZONE 'UTC'`);
  if (selection.building) c.add(`t.building_id = ${c.param(selection.building)}`);
  // Only buildings the equipment domain publishes (never a decommissioned one).
  c.add(`EXISTS (SELECT 1 FROM opendata_equipment b WHERE b.id = t.building_id AND b.kind = 'BUILDING')`);
  return c;
}

const round = (sql: string, digits: number) => `round((${sql})::numeric, ${digits})`;

function featureSql(where: string): string {
  return `
    WITH hours AS (
      SELECT t.building_id, t.hour, max(t.sensors) AS sensors, sum(t.readings) AS readings,
             max(t.mean) FILTER (WHERE t.metric = 'co2') AS co2_mean, max(t.max) FILTER (WHERE t.metric = 'co2') AS co2_max,
             max(t.mean) FILTER (WHERE t.metric = 'temperature') AS temperature_mean,
             max(t.mean) FILTER (WHERE t.metric = 'humidity') AS humidity_mean,
             max(t.mean) FILTER (WHERE t.metric = 'pm2_5') AS pm25_mean, max(t.max) FILTER (WHERE t.metric = 'pm2_5') AS pm25_max
        FROM opendata_air_quality_hourly t ${where}
       GROUP BY t.building_id, t.hour
    )
    SELECT json_build_object(
             'type', 'Feature',
             'id', h.building_id || '@' || to_char(h.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"'),
             'geometry', ST_AsGeoJSON(b.location, 6)::json,
             'properties', json_build_object(
               'building', h.building_id, 'name', b.attributes->>'name', 'use', b.attributes->>'use',
               'collectivity', b.collectivity_id, 'commune', b.insee_code,
               'hour', to_char(h.hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24":00:00Z"'),
               'sensors', h.sensors, 'readings', h.readings,
               'co2PpmMean', ${round('h.co2_mean', 0)}, 'co2PpmMax', ${round('h.co2_max', 0)},
               'temperatureCMean', ${round('h.temperature_mean', 1)}, 'humidityPercentMean', ${round('h.humidity_mean', 1)},
               'pm25UgM3Mean', ${round('h.pm25_mean', 1)}, 'pm25UgM3Max', ${round('h.pm25_max', 1)}))::text AS feature
      FROM hours h
      JOIN opendata_equipment b ON b.id = h.building_id AND b.kind = 'BUILDING'
     ORDER BY h.building_id, h.hour`;
}

export const airQualityGeojson: Feed<AirQualitySelection> = {
  id: 'air-quality',
  path: '/opendata/geojson/air-quality.geojson',
  contentType: 'application/geo+json; charset=utf-8',
  dataset: {
    title: "Qualité de l'air intérieur des bâtiments publics, par heure",
    description:
      "Pour chaque école et gymnase équipé de capteurs, et pour chaque heure (UTC) : CO2 moyen et maximal (ppm), température moyenne (°C), humidité relative moyenne (%), particules fines PM2.5 moyennes et maximales (µg/m³), agrégés sur les capteurs du bâtiment. Aucune mesure d'occupation n'est publiée.",
    keywords: ["qualité de l'air", 'CO2', 'PM2.5', 'écoles', 'bâtiments publics', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GeoJSON',
    frequency: 'continuous',
  },
  parse: parseAirQuality,
  version: (db, selection) =>
    rowsVersion(
      db,
      'opendata_air_quality_hourly t',
      `t.building_id || '|' || t.hour::text || '|' || t.metric || '|' || t.readings::text || '|' || t.max::text || '|' || t.min::text`,
      conditions(selection),
    ),
  render: async (db, selection) => {
    const c = conditions(selection);
    return featureCollection(db, featureSql(c.where), c.values);
  },
};
