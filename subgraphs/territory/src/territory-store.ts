import { Prisma, type Database } from '@connecte/shared/db';
import type { NearCircle } from '@connecte/shared/geo';
import type { GeoJSONGeometry } from '@connecte/shared/scalars';


export type CollectivityKind = 'COMMUNE' | 'AGGLOMERATION';
export type Competence = 'MUNICIPAL' | 'AGGLOMERATION';

export interface CollectivityRecord {
  id: string;
  name: string;
  kind: CollectivityKind;
  siren: string;
  inseeCode: string | null;
}

export interface CommuneRecord {
  inseeCode: string;
  name: string;
  collectivityId: string | null;
  agglomerationMember: boolean;
  centroid: GeoJSONGeometry;
  areaKm2: number;
}

export interface DistrictRecord {
  id: string;
  name: string;
  inseeCode: string;
}

export interface StreetRecord {
  id: string;
  name: string;
  inseeCode: string;
  lengthMeters: number;
}

export interface ServiceCategoryRecord {
  code: string;
  label: string;
  competence: Competence;
}

/** A communes filter as SQL takes it (the GraphQL `CommuneFilter`, nulls kept). */
export interface CommuneCriteria {
  inProject?: boolean | null;
  agglomerationMember?: boolean | null;
}

/** A validated streets filter (see TerritoryService.streets). */
export interface StreetCriteria {
  inseeCode?: string | null;
  nameContains?: string | null;
  near?: NearCircle | null;
}

/** Keyset position in a list ordered by (name, id). */
export interface NamedKey {
  name: string;
  id: string;
}

export interface TerritorySummary {
  communeCount: number;
  bbox: [number, number, number, number];
  geometry: GeoJSONGeometry;
  areaKm2: number;
}

export interface PointLocation {
  inseeCode: string | null;
  districtId: string | null;
  streetId: string | null;
  streetDistanceMeters: number | null;
}

/** GeoJSON outputs keep 6 decimals: about 10 cm on the ground, a third of the default size. */
const GEOJSON_DECIMALS = 6;

/** The layers whose geometry is loaded on demand, with their table and key column (fixed names, never input). */
const GEOMETRY_LAYERS = {
  commune: { table: 'commune', key: 'insee_code' },
  district: { table: 'district', key: 'id' },
  street: { table: 'street', key: 'id' },
} as const;
export type GeometryLayer = keyof typeof GEOMETRY_LAYERS;

const point = (lon: number, lat: number) =>
  Prisma.sql`ST_SetSRID(ST_MakePoint(${lon}::float8, ${lat}::float8), 4326)`;

/**
 * `ST_DWithin` on geography is exact but cannot use the GiST index on the geometry column;
 * a bounding box in degrees that surely contains the circle lets the index pick the
 * candidates first (110 km per degree errs on the large side at every latitude).
 */
function withinMeters(column: Prisma.Sql, near: NearCircle): Prisma.Sql {
  const center = point(near.lon, near.lat);
  const dLat = near.radiusMeters / 110_000;
  const dLon = Math.min(180, near.radiusMeters / (110_000 * Math.cos((near.lat * Math.PI) / 180)));
  return Prisma.sql`${column} && ST_Expand(${center}, ${dLon}::float8, ${dLat}::float8)
    AND ST_DWithin(${column}::geography, ${center}::geography, ${near.radiusMeters}::float8)`;
}

/** `ILIKE` pattern matching the text literally (its `%`, `_` and `\` are not wildcards). */
const containsPattern = (text: string) => `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

const and = (conditions: Prisma.Sql[]) =>
  conditions.length ? Prisma.sql`WHERE ${Prisma.join(conditions, ' AND ')}` : Prisma.empty;

const COLLECTIVITY_COLUMNS = Prisma.sql`c.id, c.name, c.kind::text AS kind, c.siren, c.insee_code AS "inseeCode"`;

const COMMUNE_COLUMNS = Prisma.sql`m.insee_code AS "inseeCode", m.name, m.collectivity_id AS "collectivityId",
  m.agglomeration AS "agglomerationMember",
  ST_AsGeoJSON(ST_Centroid(m.geom), ${GEOJSON_DECIMALS}::int)::json AS centroid,
  ST_Area(m.geom::geography) / 1e6 AS "areaKm2"`;

const DISTRICT_COLUMNS = Prisma.sql`d.id, d.name, d.insee_code AS "inseeCode"`;

const STREET_COLUMNS = Prisma.sql`s.id, s.name, s.insee_code AS "inseeCode", s.length_m AS "lengthMeters"`;

function communeConditions(filter: CommuneCriteria): Prisma.Sql[] {
  const conditions: Prisma.Sql[] = [];
  if (filter.inProject != null) {
    conditions.push(filter.inProject ? Prisma.sql`m.collectivity_id IS NOT NULL` : Prisma.sql`m.collectivity_id IS NULL`);
  }
  if (filter.agglomerationMember != null) conditions.push(Prisma.sql`m.agglomeration = ${filter.agglomerationMember}`);
  return conditions;
}

function streetConditions(filter: StreetCriteria): Prisma.Sql[] {
  const conditions: Prisma.Sql[] = [];
  if (filter.inseeCode != null) conditions.push(Prisma.sql`s.insee_code = ${filter.inseeCode}`);
  if (filter.nameContains) conditions.push(Prisma.sql`s.name ILIKE ${containsPattern(filter.nameContains)}`);
  if (filter.near) conditions.push(withinMeters(Prisma.sql`s.geom`, filter.near));
  return conditions;
}

const after = (alias: string, key: NamedKey | null) =>
  key ? [Prisma.sql`(${Prisma.raw(alias)}.name, ${Prisma.raw(alias)}.id) > (${key.name}, ${key.id})`] : [];

/**
 * Every SQL statement of the territory domain. Reads only its own tables; each method is
 * one query, and the methods taking lists of keys serve the per-request DataLoaders.
 */
export class TerritoryStore {
  /** Statements issued so far: how tests pin that a query shape costs a bounded number of them. */
  queryCount = 0;
  private summary: Promise<TerritorySummary> | null = null;

  constructor(private readonly db: Database) {}

  private query<T>(sql: Prisma.Sql): Promise<T[]> {
    this.queryCount++;
    return this.db.prisma.$queryRaw<T[]>(sql);
  }

  collectivities(): Promise<CollectivityRecord[]> {
    return this.query(Prisma.sql`SELECT ${COLLECTIVITY_COLUMNS} FROM collectivity c ORDER BY c.id`);
  }

  collectivitiesById(ids: readonly string[]): Promise<CollectivityRecord[]> {
    return this.query(Prisma.sql`SELECT ${COLLECTIVITY_COLUMNS} FROM collectivity c WHERE c.id = ANY(${[...ids]}::text[])`);
  }

  /** The communes each collectivity governs: its own for a municipality, the members for the agglomeration. */
  communesOfCollectivities(ids: readonly string[]): Promise<(CommuneRecord & { governedBy: string })[]> {
    return this.query(Prisma.sql`
      SELECT c.id AS "governedBy", ${COMMUNE_COLUMNS}
      FROM collectivity c
      JOIN commune m ON (c.kind = 'COMMUNE' AND m.collectivity_id = c.id) OR (c.kind = 'AGGLOMERATION' AND m.agglomeration)
      WHERE c.id = ANY(${[...ids]}::text[])
      ORDER BY m.insee_code`);
  }

  communesByInsee(codes: readonly string[]): Promise<CommuneRecord[]> {
    return this.query(Prisma.sql`SELECT ${COMMUNE_COLUMNS} FROM commune m WHERE m.insee_code = ANY(${[...codes]}::text[])`);
  }

  communes(filter: CommuneCriteria, afterInsee: string | null, limit: number): Promise<CommuneRecord[]> {
    const conditions = communeConditions(filter);
    if (afterInsee !== null) conditions.push(Prisma.sql`m.insee_code > ${afterInsee}`);
    return this.query(Prisma.sql`
      SELECT ${COMMUNE_COLUMNS} FROM commune m ${and(conditions)} ORDER BY m.insee_code LIMIT ${limit}::int`);
  }

  async communeCount(filter: CommuneCriteria): Promise<number> {
    const [row] = await this.query<{ n: number }>(
      Prisma.sql`SELECT count(*)::int AS n FROM commune m ${and(communeConditions(filter))}`,
    );
    return row.n;
  }

  /** The commune containing a point, by the domain's published rule; null outside the territory. */
  async communeAt(lon: number, lat: number): Promise<CommuneRecord | null> {
    const [row] = await this.query<CommuneRecord>(Prisma.sql`
      SELECT ${COMMUNE_COLUMNS} FROM commune m WHERE m.insee_code = territory_commune_at(${lon}::float8, ${lat}::float8)`);
    return row ?? null;
  }

  /** The communes of the project: those a municipal collectivity governs. */
  projectCommunes(): Promise<{ inseeCode: string; name: string }[]> {
    return this.query(Prisma.sql`
      SELECT insee_code AS "inseeCode", name FROM commune WHERE collectivity_id IS NOT NULL ORDER BY name`);
  }


  districtsById(ids: readonly string[]): Promise<DistrictRecord[]> {
    return this.query(Prisma.sql`SELECT ${DISTRICT_COLUMNS} FROM district d WHERE d.id = ANY(${[...ids]}::text[])`);
  }

  districts(inseeCode: string | null, afterKey: NamedKey | null, limit: number): Promise<DistrictRecord[]> {
    const conditions = [...(inseeCode !== null ? [Prisma.sql`d.insee_code = ${inseeCode}`] : []), ...after('d', afterKey)];
    return this.query(Prisma.sql`
      SELECT ${DISTRICT_COLUMNS} FROM district d ${and(conditions)} ORDER BY d.name, d.id LIMIT ${limit}::int`);
  }

  async districtCount(inseeCode: string | null): Promise<number> {
    const [row] = await this.query<{ n: number }>(Prisma.sql`
      SELECT count(*)::int AS n FROM district d ${and(inseeCode !== null ? [Prisma.sql`d.insee_code = ${inseeCode}`] : [])}`);
    return row.n;
  }

  /** One page per commune, in one statement: the first `limit` districts after `afterKey` in each. */
  districtsOfCommunes(codes: readonly string[], afterKey: NamedKey | null, limit: number): Promise<DistrictRecord[]> {
    return this.query(Prisma.sql`
      SELECT page.* FROM unnest(${[...codes]}::text[]) AS k(insee_code)
      CROSS JOIN LATERAL (
        SELECT ${DISTRICT_COLUMNS} FROM district d
        ${and([Prisma.sql`d.insee_code = k.insee_code`, ...after('d', afterKey)])}
        ORDER BY d.name, d.id LIMIT ${limit}::int
      ) page
      ORDER BY page."inseeCode", page.name, page.id`);
  }

  districtCounts(codes: readonly string[]): Promise<{ key: string; n: number }[]> {
    return this.query(Prisma.sql`
      SELECT insee_code AS key, count(*)::int AS n FROM district
      WHERE insee_code = ANY(${[...codes]}::text[]) GROUP BY insee_code`);
  }


  streetsById(ids: readonly string[]): Promise<StreetRecord[]> {
    return this.query(Prisma.sql`SELECT ${STREET_COLUMNS} FROM street s WHERE s.id = ANY(${[...ids]}::text[])`);
  }

  streets(filter: StreetCriteria, afterKey: NamedKey | null, limit: number): Promise<StreetRecord[]> {
    return this.query(Prisma.sql`
      SELECT ${STREET_COLUMNS} FROM street s ${and([...streetConditions(filter), ...after('s', afterKey)])}
      ORDER BY s.name, s.id LIMIT ${limit}::int`);
  }

  async streetCount(filter: StreetCriteria): Promise<number> {
    const [row] = await this.query<{ n: number }>(
      Prisma.sql`SELECT count(*)::int AS n FROM street s ${and(streetConditions(filter))}`,
    );
    return row.n;
  }

  /** One page per commune, in one statement (see `districtsOfCommunes`). */
  streetsOfCommunes(
    codes: readonly string[],
    nameContains: string | null,
    afterKey: NamedKey | null,
    limit: number,
  ): Promise<StreetRecord[]> {
    const conditions = [
      Prisma.sql`s.insee_code = k.insee_code`,
      ...streetConditions({ nameContains }),
      ...after('s', afterKey),
    ];
    return this.query(Prisma.sql`
      SELECT page.* FROM unnest(${[...codes]}::text[]) AS k(insee_code)
      CROSS JOIN LATERAL (
        SELECT ${STREET_COLUMNS} FROM street s ${and(conditions)} ORDER BY s.name, s.id LIMIT ${limit}::int
      ) page
      ORDER BY page."inseeCode", page.name, page.id`);
  }

  streetCounts(codes: readonly string[], nameContains: string | null): Promise<{ key: string; n: number }[]> {
    const conditions = [Prisma.sql`s.insee_code = ANY(${[...codes]}::text[])`, ...streetConditions({ nameContains })];
    return this.query(Prisma.sql`
      SELECT s.insee_code AS key, count(*)::int AS n FROM street s ${and(conditions)} GROUP BY s.insee_code`);
  }

  /** Geometries by key, for one layer: the heavy column is read only when a query selects it. */
  geometries(layer: GeometryLayer, keys: readonly string[]): Promise<{ key: string; geometry: GeoJSONGeometry }[]> {
    const { table, key } = GEOMETRY_LAYERS[layer];
    return this.query(Prisma.sql`
      SELECT ${Prisma.raw(key)} AS key, ST_AsGeoJSON(geom, ${GEOJSON_DECIMALS}::int)::json AS geometry
      FROM ${Prisma.raw(table)} WHERE ${Prisma.raw(key)} = ANY(${[...keys]}::text[])`);
  }

  serviceCategories(): Promise<ServiceCategoryRecord[]> {
    return this.query(Prisma.sql`
      SELECT code, label, competence::text AS competence FROM service_category ORDER BY code`);
  }

  serviceCategoriesByCode(codes: readonly string[]): Promise<ServiceCategoryRecord[]> {
    return this.query(Prisma.sql`
      SELECT code, label, competence::text AS competence FROM service_category WHERE code = ANY(${[...codes]}::text[])`);
  }

  /**
   * The extent of the territory, computed once per store (so once per database: see
   * context.ts); an empty territory (not seeded yet) and a failure are not kept.
   */
  territory(): Promise<TerritorySummary> {
    if (!this.summary) {
      const pending = this.computeTerritory();
      this.summary = pending;
      pending.then(
        (summary) => {
          if (summary.communeCount === 0 && this.summary === pending) this.summary = null;
        },
        () => {
          if (this.summary === pending) this.summary = null;
        },
      );
    }
    return this.summary;
  }

  /** The union of the 30 boundaries is the expensive part, hence `territory()`'s memo. */
  private async computeTerritory(): Promise<TerritorySummary> {
    const [row] = await this.query<{
      communeCount: number;
      minLon: number | null;
      minLat: number | null;
      maxLon: number | null;
      maxLat: number | null;
      geometry: GeoJSONGeometry | null;
      areaKm2: number | null;
    }>(Prisma.sql`
      SELECT n AS "communeCount",
             ST_XMin(extent) AS "minLon", ST_YMin(extent) AS "minLat",
             ST_XMax(extent) AS "maxLon", ST_YMax(extent) AS "maxLat",
             ST_AsGeoJSON(outline, ${GEOJSON_DECIMALS}::int)::json AS geometry,
             ST_Area(outline::geography) / 1e6 AS "areaKm2"
      FROM (SELECT count(*)::int AS n, ST_Extent(geom) AS extent, ST_Union(geom) AS outline FROM commune) t`);
    return {
      communeCount: row.communeCount,
      bbox: [row.minLon ?? 0, row.minLat ?? 0, row.maxLon ?? 0, row.maxLat ?? 0],
      geometry: row.geometry ?? { type: 'MultiPolygon', coordinates: [] },
      areaKm2: row.areaKm2 ?? 0,
    };
  }

  /**
   * Commune, district and nearest street of a point, in one statement. The commune comes
   * from the domain's published rule (`territory_commune_at`), so every domain places a point
   * alike. Each part is answered by a GiST index: `ST_Intersects` on the polygons, and for the street a box
   * around the point then the exact distance on the spheroid among the few candidates.
   */
  async locate(lon: number, lat: number, streetRadiusMeters: number): Promise<PointLocation> {
    const here = point(lon, lat);
    const [row] = await this.query<PointLocation>(Prisma.sql`
      SELECT
        territory_commune_at(${lon}::float8, ${lat}::float8) AS "inseeCode",
        (SELECT d.id FROM district d WHERE ST_Intersects(d.geom, ${here}) ORDER BY d.id LIMIT 1) AS "districtId",
        nearest.id AS "streetId",
        nearest.distance AS "streetDistanceMeters"
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
        SELECT s.id, ST_Distance(s.geom::geography, ${here}::geography) AS distance
        FROM street s
        WHERE ${withinMeters(Prisma.sql`s.geom`, { lon, lat, radiusMeters: streetRadiusMeters })}
        ORDER BY distance, s.id
        LIMIT 1
      ) nearest ON true`);
    return row;
  }
}
