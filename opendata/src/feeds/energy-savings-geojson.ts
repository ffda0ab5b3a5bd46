/**
 * Energy consumed and saved per collectivity and month, as GeoJSON: one MultiPolygon feature per
 * collectivity (its area: a commune, or the agglomeration's member communes, from
 * `opendata_collectivities`) with its monthly figures (`months`, oldest first) and their total,
 * in kWh: consumed (lighting and buildings), baseline (the recorded pre-renovation consumption
 * of the assets that reported, for the days they reported) and saved. From telemetry's
 * `opendata_energy_monthly`. `from` / `to` (months `YYYY-MM`, included) narrow the months.
 */
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed } from '../feed.js';
import { checkParameters, QueryParameterError } from '../parameters.js';
import { COLLECTIVITIES, Conditions, featureCollection, rowsVersion } from './geojson-stream.js';

export interface EnergySelection {
  collectivityId: string | null;
  /** First day of a month, included. */
  from: string | null;
  /** First day of a month, included. */
  to: string | null;
}

function month(params: URLSearchParams, name: string): string | null {
  const value = params.get(name);
  if (value === null) return null;
  const match = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(value);
  if (!match) throw new QueryParameterError(name, 'must be a month YYYY-MM');
  return `${value}-01`;
}

export function parseEnergy(params: URLSearchParams): EnergySelection {
  checkParameters(params, ['collectivity', 'from', 'to']);
  const collectivityId = params.get('collectivity');
  if (collectivityId !== null && !COLLECTIVITIES.includes(collectivityId)) {
    throw new QueryParameterError('collectivity', `must be one of ${COLLECTIVITIES.join(', ')}`);
  }
  const from = month(params, 'from');
  const to = month(params, 'to');
  if (from && to && to < from) throw new QueryParameterError('to', `must not be before from (${from.slice(0, 7)})`);
  return { collectivityId, from, to };
}

function monthConditions(selection: EnergySelection, table: string): Conditions {
  const c = new Conditions();
  if (selection.collectivityId) c.add(`${table}.collectivity_id = ${c.param(selection.collectivityId)}`);
  if (selection.from) c.add(`${table}.month >= ${c.param(selection.from)}::date`);
  if (selection.to) c.add(`${table}.month <= ${c.param(selection.to)}::date`);
  return c;
}

const kwh = (sql: string) => `round((${sql})::numeric, 3)`;
const figures = (t: string) => `'consumedKwh', ${kwh(`${t}.consumed_kwh`)}, 'lightingKwh', ${kwh(`${t}.lighting_kwh`)},
  'buildingsKwh', ${kwh(`${t}.buildings_kwh`)}, 'baselineKwh', ${kwh(`${t}.baseline_kwh`)}, 'savedKwh', ${kwh(`${t}.saved_kwh`)},
  'savedPercent', round((100 * ${t}.saved_kwh / nullif(${t}.baseline_kwh, 0))::numeric, 1), 'reportingAssets', ${t}.reporting_assets`;

function featureSql(selection: EnergySelection): { sql: string; values: unknown[] } {
  const c = monthConditions(selection, 'm');
  const collectivity = selection.collectivityId ? `WHERE c.id = ${c.param(selection.collectivityId)}` : '';
  const sql = `
    WITH months AS (SELECT m.* FROM opendata_energy_monthly m ${c.where}),
    totals AS (
      SELECT collectivity_id, sum(consumed_kwh) AS consumed_kwh, sum(lighting_kwh) AS lighting_kwh, sum(buildings_kwh) AS buildings_kwh,
             sum(baseline_kwh) AS baseline_kwh, sum(saved_kwh) AS saved_kwh, max(reporting_assets) AS reporting_assets,
             min(month) AS first_month, max(month) AS last_month
        FROM months GROUP BY collectivity_id)
    SELECT json_build_object(
             'type', 'Feature', 'id', c.id,
             'geometry', ST_AsGeoJSON(c.geom, 6)::json,
             'properties', json_build_object(
               'collectivity', c.id, 'name', c.name, 'kind', c.kind, 'siren', c.siren, 'commune', c.insee_code,
               'from', to_char(t.first_month, 'YYYY-MM'), 'to', to_char(t.last_month, 'YYYY-MM'),
               'total', CASE WHEN t.collectivity_id IS NULL THEN NULL ELSE json_build_object(${figures('t')}) END,
               'months', coalesce((SELECT json_agg(json_build_object('month', to_char(m.month, 'YYYY-MM'), ${figures('m')}) ORDER BY m.month)
                                     FROM months m WHERE m.collectivity_id = c.id), '[]'::json)))::text AS feature
      FROM opendata_collectivities c
      LEFT JOIN totals t ON t.collectivity_id = c.id
      ${collectivity}
     ORDER BY c.id`;
  return { sql, values: c.values };
}

export const energySavingsGeojson: Feed<EnergySelection> = {
  id: 'energy-savings',
  path: '/opendata/geojson/energy-savings.geojson',
  contentType: 'application/geo+json; charset=utf-8',
  dataset: {
    title: "Économies d'énergie de l'éclairage public et des bâtiments, par collectivité et par mois",
    description:
      "Pour Châlons-en-Champagne, Fagnières, Saint-Martin-sur-le-Pré et Châlons Agglo, mois par mois : énergie consommée par l'éclairage public et par les bâtiments (kWh), consommation de référence avant rénovation des équipements qui ont transmis leurs compteurs, et énergie économisée (kWh et %). Chiffres agrégés, calculés à partir des compteurs télérelevés.",
    keywords: ['énergie', 'économies', 'éclairage public', 'bâtiments publics', 'contrat de performance énergétique', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GeoJSON',
    frequency: 'daily',
  },
  parse: parseEnergy,
  version: (db, selection) =>
    rowsVersion(
      db,
      'opendata_energy_monthly t',
      `t.collectivity_id || '|' || t.month::text || '|' || round(t.consumed_kwh::numeric, 3)::text || '|' || round(t.baseline_kwh::numeric, 3)::text || '|' || t.reporting_assets::text`,
      monthConditions(selection, 't'),
    ),
  render: async (db, selection) => {
    const { sql, values } = featureSql(selection);
    return featureCollection(db, sql, values);
  },
};
