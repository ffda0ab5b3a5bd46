/**
 * The shape of the asset feeds (light points, Wi-Fi hotspots, traffic signals, bus stops): one
 * equipment view per kind (prisma/migrations/20261202000500_opendata_assets), filtered by place,
 * streamed as an RFC 7946 FeatureCollection of Points ([lon, lat], 6 decimals ≈ 10 cm), ordered by
 * id. Every feature carries `status`, `collectivity`, `commune`, `installedOn` and the view's own
 * attributes (`properties`: GeoJSON member → SQL expression on the view `t`).
 */
import type { DatasetMetadata, Feed } from '../feed.js';
import { featureCollection, parsePlaceFilter, placeConditions, rowsVersion, type PlaceFilter } from './geojson-stream.js';

export interface AssetFeedDeclaration {
  id: string;
  /** `opendata_*` view: id, status, collectivity_id, insee_code, installed_on, location, updated_at. */
  view: string;
  dataset: DatasetMetadata;
  /** Published properties beyond the common ones, as SQL expressions on the view (alias `t`), in order. */
  properties: Readonly<Record<string, string>>;
}

/** The SQL writing one Feature per row of the view, as text, for `featureCollection`. */
export function assetFeatureSql(declaration: AssetFeedDeclaration, where: string): string {
  const properties = Object.entries({
    ...declaration.properties,
    status: 't.status',
    collectivity: 't.collectivity_id',
    commune: 't.insee_code',
    installedOn: 't.installed_on',
  })
    .map(([name, sql]) => `'${name}', ${sql}`)
    .join(', ');
  return `SELECT json_build_object('type', 'Feature', 'id', t.id, 'geometry', ST_AsGeoJSON(t.location, 6)::json,
                 'properties', json_build_object(${properties}))::text AS feature
            FROM ${declaration.view} t ${where} ORDER BY t.id`;
}

export function assetFeed(declaration: AssetFeedDeclaration): Feed<PlaceFilter> {
  return {
    id: declaration.id,
    path: `/opendata/geojson/${declaration.id}.geojson`,
    contentType: 'application/geo+json; charset=utf-8',
    dataset: declaration.dataset,
    parse: (params) => parsePlaceFilter(params),
    version: (db, filter) =>
      rowsVersion(db, `${declaration.view} t`, `t.id || '|' || extract(epoch FROM t.updated_at)::text`, placeConditions(filter)),
    render: async (db, filter) => {
      const conditions = placeConditions(filter);
      return featureCollection(db, assetFeatureSql(declaration, conditions.where), conditions.values);
    },
  };
}
