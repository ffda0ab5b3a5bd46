import type { NearCircle } from '@connecte/shared/geo';
import { Prisma, type Database, type EquipmentKind, type EquipmentStatus, type PrismaClient } from '@connecte/shared/db';

/** The one SQL module of the equipment domain: it reads and writes `equipment` only. */

export interface EquipmentRow {
  id: string;
  kind: EquipmentKind;
  reference: string;
  name: string | null;
  status: EquipmentStatus;
  collectivityId: string;
  inseeCode: string | null;
  /** Coordinates straight from ST_X/ST_Y: no GeoJSON text to parse per row. */
  lon: number | null;
  lat: number | null;
  installedOn: Date | null;
  parentId: string | null;
  details: Record<string, unknown>;
  createdAt: Date;
  updatedAt: Date;
  decommissionedAt: Date | null;
}


/** A validated search filter (see EquipmentService for the validation). */
export interface SearchCriteria {
  kinds?: EquipmentKind[];
  collectivityIds?: string[];
  status?: EquipmentStatus[];
  dimmable?: boolean;
  bbox?: [number, number, number, number];
  near?: NearCircle;
  /** GeoJSON text of a valid Polygon or MultiPolygon. */
  within?: string;
  parentId?: string;
  /** Collectivities whose cameras the caller may see. */
  cameraCollectivities: string[];
}

type Queryable = PrismaClient | Prisma.TransactionClient;

const COLUMNS = Prisma.raw(`
  e.id, e.kind::text AS kind, e.reference, e.name, e.status::text AS status,
  e.collectivity_id AS "collectivityId", e.insee_code AS "inseeCode",
  ST_X(e.location) AS lon, ST_Y(e.location) AS lat, e.installed_on AS "installedOn",
  e.parent_id AS "parentId", e.details, e.created_at AS "createdAt", e.updated_at AS "updatedAt",
  e.decommissioned_at AS "decommissionedAt"`);

const point = (lon: number, lat: number) => Prisma.sql`ST_SetSRID(ST_MakePoint(${lon}::float8, ${lat}::float8), 4326)`;

/**
 * `near` exactly as docs/graphql-conventions.md states it: ST_DWithin on geography, written against
 * `location::geography` so the expression GiST index serves it.
 */
const nearCondition = (near: NearCircle) =>
  Prisma.sql`ST_DWithin(e.location::geography, ${point(near.lon, near.lat)}::geography, ${near.radiusMeters}::float8)`;

/** Cameras the caller may not see are removed from any search that could locate them. */
function cameraVisibility(cameraCollectivities: string[]): Prisma.Sql {
  return cameraCollectivities.length === 0
    ? Prisma.sql`e.kind <> 'CAMERA'`
    : Prisma.sql`(e.kind <> 'CAMERA' OR e.collectivity_id = ANY(${cameraCollectivities}::text[]))`;
}

function conditions(criteria: SearchCriteria): Prisma.Sql[] {
  const where: Prisma.Sql[] = [];
  if (criteria.kinds) where.push(Prisma.sql`e.kind = ANY(${criteria.kinds}::equipment_kind[])`);
  if (criteria.collectivityIds) where.push(Prisma.sql`e.collectivity_id = ANY(${criteria.collectivityIds}::text[])`);
  if (criteria.status) where.push(Prisma.sql`e.status = ANY(${criteria.status}::equipment_status[])`);
  if (criteria.dimmable !== undefined) {
    where.push(Prisma.sql`e.details @> ${JSON.stringify({ dimmable: criteria.dimmable })}::jsonb`);
  }
  if (criteria.parentId !== undefined) where.push(Prisma.sql`e.parent_id = ${criteria.parentId}`);
  if (criteria.bbox) {
    const [minLon, minLat, maxLon, maxLat] = criteria.bbox;
    // `&&` lets the GiST index pick candidates, but it compares single-precision boxes and
    // so also matches points up to one float4 step outside; the coordinate test is exact.
    // Edges are inclusive.
    where.push(
      Prisma.sql`e.location && ST_MakeEnvelope(${minLon}::float8, ${minLat}::float8, ${maxLon}::float8, ${maxLat}::float8, 4326)`,
      Prisma.sql`ST_X(e.location) BETWEEN ${minLon}::float8 AND ${maxLon}::float8`,
      Prisma.sql`ST_Y(e.location) BETWEEN ${minLat}::float8 AND ${maxLat}::float8`,
    );
  }
  if (criteria.near) where.push(nearCondition(criteria.near));
  if (criteria.within) {
    where.push(Prisma.sql`ST_Intersects(e.location, ST_SetSRID(ST_GeomFromGeoJSON(${criteria.within}::text), 4326))`);
  }
  const locating = criteria.bbox || criteria.near || criteria.within || criteria.parentId !== undefined;
  if (locating) where.push(cameraVisibility(criteria.cameraCollectivities));
  return where;
}

const whereClause = (parts: Prisma.Sql[]) => (parts.length ? Prisma.sql`WHERE ${Prisma.join(parts, ' AND ')}` : Prisma.empty);

/**
 * One page in id order: `limit + 1` rows so the caller knows whether another page exists.
 * The page's ids are chosen first and only those rows are projected: when the planner
 * sorts many matches (a wide bbox, stale statistics) it then sorts bare ids instead of
 * computing coordinates and details for every match.
 * Exported so the near-search bench EXPLAINs and times exactly this statement.
 */
export function searchQuery(criteria: SearchCriteria, limit: number, afterId: string | null): Prisma.Sql {
  const parts = conditions(criteria);
  if (afterId !== null) parts.push(Prisma.sql`e.id > ${afterId}`);
  return Prisma.sql`
    SELECT ${COLUMNS}
    FROM (SELECT e.id FROM equipment e ${whereClause(parts)} ORDER BY e.id LIMIT ${limit + 1}) page
    JOIN equipment e ON e.id = page.id
    ORDER BY e.id`;
}

/** Same filter as searchQuery, without the cursor: the total across pages. */
export function countQuery(criteria: SearchCriteria): Prisma.Sql {
  return Prisma.sql`SELECT count(*)::int AS count FROM equipment e ${whereClause(conditions(criteria))}`;
}

export interface NewEquipment {
  id: string;
  kind: EquipmentKind;
  reference: string;
  name: string | null;
  collectivityId: string;
  inseeCode: string | null;
  location: { lon: number; lat: number } | null;
  installedOn: string | null;
  parentId: string | null;
  details: Record<string, unknown>;
}

export interface EquipmentChanges {
  name?: string | null;
  status?: EquipmentStatus;
  location?: { lon: number; lat: number } | null;
  inseeCode?: string | null;
  details?: Record<string, unknown>;
  parentId?: string | null;
}

export class EquipmentStore {
  constructor(private readonly db: Database) {}

  private get prisma() {
    return this.db.prisma;
  }

  search(criteria: SearchCriteria, limit: number, afterId: string | null): Promise<EquipmentRow[]> {
    return this.prisma.$queryRaw<EquipmentRow[]>(searchQuery(criteria, limit, afterId));
  }

  async count(criteria: SearchCriteria): Promise<number> {
    const [{ count }] = await this.prisma.$queryRaw<{ count: number }[]>(countQuery(criteria));
    return count;
  }

  byIds(ids: readonly string[]): Promise<EquipmentRow[]> {
    return this.byIdsIn(this.prisma, ids);
  }

  /** For several parents at once: each parent's first `limit + 1` children after `afterId`, in id order. */
  childrenOf(
    parentIds: readonly string[],
    options: { kinds: EquipmentKind[] | null; limit: number; afterId: string | null; cameraCollectivities: string[] },
  ): Promise<EquipmentRow[]> {
    const parts = [Prisma.sql`e.parent_id = p.id`, cameraVisibility(options.cameraCollectivities)];
    if (options.kinds) parts.push(Prisma.sql`e.kind = ANY(${options.kinds}::equipment_kind[])`);
    if (options.afterId !== null) parts.push(Prisma.sql`e.id > ${options.afterId}`);
    return this.prisma.$queryRaw<EquipmentRow[]>`
      SELECT c.* FROM unnest(${parentIds}::text[]) AS p(id)
      CROSS JOIN LATERAL (
        SELECT ${COLUMNS} FROM equipment e ${whereClause(parts)} ORDER BY e.id LIMIT ${options.limit + 1}
      ) c`;
  }

  async childCounts(
    parentIds: readonly string[],
    options: { kinds: EquipmentKind[] | null; cameraCollectivities: string[] },
  ): Promise<Map<string, number>> {
    const parts = [Prisma.sql`e.parent_id = ANY(${parentIds}::text[])`, cameraVisibility(options.cameraCollectivities)];
    if (options.kinds) parts.push(Prisma.sql`e.kind = ANY(${options.kinds}::equipment_kind[])`);
    const rows = await this.prisma.$queryRaw<{ parentId: string; count: number }[]>`
      SELECT e.parent_id AS "parentId", count(*)::int AS count FROM equipment e ${whereClause(parts)} GROUP BY e.parent_id`;
    return new Map(rows.map((row) => [row.parentId, row.count]));
  }

  /**
   * Nearest located, non-decommissioned assets of a kind: a KNN scan of the geography
   * index picks candidates (spherical distance), then the exact spheroid distance orders
   * them. The margin of candidates absorbs sphere/spheroid disagreements at near-equal distances.
   */
  nearest(
    kind: EquipmentKind,
    lon: number,
    lat: number,
    first: number,
    cameraCollectivities: string[],
  ): Promise<(EquipmentRow & { distanceMeters: number })[]> {
    const centre = Prisma.sql`${point(lon, lat)}::geography`;
    return this.prisma.$queryRaw<(EquipmentRow & { distanceMeters: number })[]>`
      SELECT ${COLUMNS}, ST_Distance(e.location::geography, ${centre}, true) AS "distanceMeters"
      FROM (
        SELECT * FROM equipment e
        WHERE e.kind = ${kind}::equipment_kind AND e.location IS NOT NULL AND e.status <> 'DECOMMISSIONED'
          AND ${cameraVisibility(cameraCollectivities)}
        ORDER BY e.location::geography <-> ${centre}
        LIMIT ${first * 2 + 10}
      ) e
      ORDER BY "distanceMeters", e.id
      LIMIT ${first}`;
  }

  async countsByKind(filter: { collectivityIds: string[] | null; status: EquipmentStatus[] | null }): Promise<Map<EquipmentKind, number>> {
    const parts: Prisma.Sql[] = [];
    if (filter.collectivityIds) parts.push(Prisma.sql`e.collectivity_id = ANY(${filter.collectivityIds}::text[])`);
    if (filter.status) parts.push(Prisma.sql`e.status = ANY(${filter.status}::equipment_status[])`);
    const rows = await this.prisma.$queryRaw<{ kind: EquipmentKind; count: number }[]>`
      SELECT e.kind::text AS kind, count(*)::int AS count FROM equipment e ${whereClause(parts)} GROUP BY e.kind`;
    return new Map(rows.map((row) => [row.kind, row.count]));
  }

  /** PostGIS's verdict on a GeoJSON geometry that is already well-formed. */
  async geometryValidity(geojson: string): Promise<{ valid: boolean; reason: string }> {
    const [row] = await this.prisma.$queryRaw<{ valid: boolean; reason: string }[]>`
      SELECT ST_IsValid(g) AS valid, ST_IsValidReason(g) AS reason FROM ST_GeomFromGeoJSON(${geojson}::text) AS g`;
    return row;
  }

  // --- Writes: each takes the transaction client of the caller's transaction. ---

  byIdsIn(tx: Queryable, ids: readonly string[]): Promise<EquipmentRow[]> {
    return tx.$queryRaw<EquipmentRow[]>`SELECT ${COLUMNS} FROM equipment e WHERE e.id = ANY(${ids}::text[])`;
  }

  async lockById(tx: Queryable, id: string): Promise<EquipmentRow | null> {
    const [row] = await tx.$queryRaw<EquipmentRow[]>`SELECT ${COLUMNS} FROM equipment e WHERE e.id = ${id} FOR UPDATE`;
    return row ?? null;
  }

  /** The reference of another asset of the collectivity equal to `reference` but for case, if any. */
  async referenceHolder(tx: Queryable, collectivityId: string, reference: string): Promise<string | null> {
    const [row] = await tx.$queryRaw<{ reference: string }[]>`
      SELECT reference FROM equipment WHERE collectivity_id = ${collectivityId} AND lower(reference) = lower(${reference})`;
    return row?.reference ?? null;
  }

  /** Through territory's published contract `territory_commune_at`: never its tables. */
  async communeAt(tx: Queryable, lon: number, lat: number): Promise<string | null> {
    const [row] = await tx.$queryRaw<{ insee: string | null }[]>`
      SELECT territory_commune_at(${lon}::float8, ${lat}::float8) AS insee`;
    return row.insee;
  }

  /** Whether a collectivity exists and, when municipal, which commune it governs (territory's published contract). */
  async collectivityScope(tx: Queryable, id: string): Promise<{ municipal: boolean; inseeCode: string | null } | null> {
    const [row] = await tx.$queryRaw<{ municipal: boolean; inseeCode: string | null }[]>`
      SELECT municipal, commune_insee AS "inseeCode" FROM territory_collectivity_scope(${id})`;
    return row ?? null;
  }

  /** Whether `id` is `newParentId` itself or one of its ancestors: attaching it there would close a loop. */
  async wouldCycle(tx: Queryable, id: string, newParentId: string): Promise<boolean> {
    const rows = await tx.$queryRaw<unknown[]>`
      WITH RECURSIVE chain(id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM equipment WHERE id = ${newParentId}
        UNION ALL
        SELECT e.id, e.parent_id, c.depth + 1 FROM equipment e JOIN chain c ON e.id = c.parent_id WHERE c.depth < 64
      )
      SELECT 1 FROM chain WHERE id = ${id} LIMIT 1`;
    return rows.length > 0;
  }

  async insert(tx: Queryable, equipment: NewEquipment): Promise<EquipmentRow> {
    const location = equipment.location ? point(equipment.location.lon, equipment.location.lat) : Prisma.sql`NULL`;
    const [row] = await tx.$queryRaw<EquipmentRow[]>`
      INSERT INTO equipment AS e (id, kind, reference, name, collectivity_id, insee_code, location, installed_on, parent_id, details)
      VALUES (${equipment.id}, ${equipment.kind}::equipment_kind, ${equipment.reference}, ${equipment.name},
              ${equipment.collectivityId}, ${equipment.inseeCode}, ${location}, ${equipment.installedOn}::date,
              ${equipment.parentId}, ${JSON.stringify(equipment.details)}::jsonb)
      RETURNING ${COLUMNS}`;
    return row;
  }

  async update(tx: Queryable, id: string, changes: EquipmentChanges): Promise<EquipmentRow> {
    const sets: Prisma.Sql[] = [Prisma.sql`updated_at = now()`];
    if (changes.name !== undefined) sets.push(Prisma.sql`name = ${changes.name}`);
    if (changes.status !== undefined) sets.push(Prisma.sql`status = ${changes.status}::equipment_status`);
    if (changes.location !== undefined) {
      sets.push(changes.location ? Prisma.sql`location = ${point(changes.location.lon, changes.location.lat)}` : Prisma.sql`location = NULL`);
    }
    if (changes.inseeCode !== undefined) sets.push(Prisma.sql`insee_code = ${changes.inseeCode}`);
    if (changes.details !== undefined) sets.push(Prisma.sql`details = ${JSON.stringify(changes.details)}::jsonb`);
    if (changes.parentId !== undefined) sets.push(Prisma.sql`parent_id = ${changes.parentId}`);
    const [row] = await tx.$queryRaw<EquipmentRow[]>`
      UPDATE equipment AS e SET ${Prisma.join(sets, ', ')} WHERE e.id = ${id} RETURNING ${COLUMNS}`;
    return row;
  }

  async decommission(tx: Queryable, id: string): Promise<EquipmentRow> {
    const [row] = await tx.$queryRaw<EquipmentRow[]>`
      UPDATE equipment AS e SET status = 'DECOMMISSIONED', decommissioned_at = now(), updated_at = now()
      WHERE e.id = ${id} RETURNING ${COLUMNS}`;
    return row;
  }
}
