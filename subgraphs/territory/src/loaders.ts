import DataLoader from 'dataloader';
import type { GeoJSONGeometry } from '@connecte/shared/scalars';
import type {
  CollectivityRecord,
  CommuneRecord,
  DistrictRecord,
  GeometryLayer,
  NamedKey,
  ServiceCategoryRecord,
  StreetRecord,
  TerritoryStore,
} from './territory-store.js';

/** A page of a commune's districts or streets: `limit` rows after `after`, in (name, id) order. */
export interface CommunePageKey {
  inseeCode: string;
  after: NamedKey | null;
  limit: number;
  nameContains?: string | null;
}

function byKey<K extends string, R>(keys: readonly K[], rows: R[], keyOf: (row: R) => K): (R | null)[] {
  const found = new Map(rows.map((row) => [keyOf(row), row]));
  return keys.map((key) => found.get(key) ?? null);
}

function groupedBy<K extends string, R>(keys: readonly K[], rows: R[], keyOf: (row: R) => K): R[][] {
  const groups = new Map<K, R[]>(keys.map((key) => [key, []]));
  for (const row of rows) groups.get(keyOf(row))?.push(row);
  return keys.map((key) => groups.get(key) ?? []);
}

const counted = (keys: readonly string[], rows: { key: string; n: number }[]) =>
  byKey(keys, rows, (row) => row.key).map((row) => row?.n ?? 0);

const geometries = (keys: readonly string[], rows: { key: string; geometry: GeoJSONGeometry }[]) =>
  byKey(keys, rows, (row) => row.key).map((row) => row?.geometry ?? null);

/**
 * Pages of several communes in one statement per distinct (after, limit, filter): in a
 * query, sibling connections share their arguments, so this is one statement per field.
 */
function communePages<R extends { inseeCode: string }>(
  fetch: (codes: string[], sample: CommunePageKey) => Promise<R[]>,
): DataLoader<CommunePageKey, R[], string> {
  return new DataLoader(
    async (keys) => {
      const batches = new Map<string, CommunePageKey[]>();
      for (const key of keys) {
        const shape = JSON.stringify([key.after, key.limit, key.nameContains ?? null]);
        batches.set(shape, [...(batches.get(shape) ?? []), key]);
      }
      const pages = new Map<CommunePageKey, R[]>();
      await Promise.all(
        [...batches.values()].map(async (batch) => {
          const codes = [...new Set(batch.map((key) => key.inseeCode))];
          const rows = groupedBy(codes, await fetch(codes, batch[0]), (row) => row.inseeCode);
          for (const key of batch) pages.set(key, rows[codes.indexOf(key.inseeCode)]);
        }),
      );
      return keys.map((key) => pages.get(key) ?? []);
    },
    { cacheKeyFn: (key) => JSON.stringify([key.inseeCode, key.after, key.limit, key.nameContains ?? null]) },
  );
}

/** Per-request batching and caching of every entity reference and relation of the territory. */
export function createLoaders(store: TerritoryStore) {
  const geometryLoader = (layer: GeometryLayer) =>
    new DataLoader<string, GeoJSONGeometry | null>(async (keys) => geometries(keys, await store.geometries(layer, keys)));
  const collectivity = new DataLoader<string, CollectivityRecord | null>(async (ids) =>
    byKey(ids, await store.collectivitiesById(ids), (row) => row.id),
  );
  const commune = new DataLoader<string, CommuneRecord | null>(async (codes) =>
    byKey(codes, await store.communesByInsee(codes), (row) => row.inseeCode),
  );
  const district = new DataLoader<string, DistrictRecord | null>(async (ids) =>
    byKey(ids, await store.districtsById(ids), (row) => row.id),
  );
  const street = new DataLoader<string, StreetRecord | null>(async (ids) =>
    byKey(ids, await store.streetsById(ids), (row) => row.id),
  );
  const serviceCategory = new DataLoader<string, ServiceCategoryRecord | null>(async (codes) =>
    byKey(codes, await store.serviceCategoriesByCode(codes), (row) => row.code),
  );

  const communesOfCollectivity = new DataLoader<string, CommuneRecord[]>(async (ids) => {
    const rows = await store.communesOfCollectivities(ids);
    for (const row of rows) commune.prime(row.inseeCode, row);
    return groupedBy(ids, rows, (row) => row.governedBy);
  });

  const districtsOfCommune = communePages((codes, { after, limit }) => store.districtsOfCommunes(codes, after, limit));
  const districtCount = new DataLoader<string, number>(async (codes) => counted(codes, await store.districtCounts(codes)));

  const streetsOfCommune = communePages((codes, { after, limit, nameContains }) =>
    store.streetsOfCommunes(codes, nameContains ?? null, after, limit),
  );
  const streetCount = new DataLoader<{ inseeCode: string; nameContains: string | null }, number, string>(
    async (keys) => {
      const byFilter = new Map<string | null, string[]>();
      for (const key of keys) byFilter.set(key.nameContains, [...(byFilter.get(key.nameContains) ?? []), key.inseeCode]);
      const counts = new Map<string, number>();
      await Promise.all(
        [...byFilter].map(async ([nameContains, codes]) => {
          const n = counted(codes, await store.streetCounts(codes, nameContains));
          codes.forEach((code, i) => counts.set(JSON.stringify([code, nameContains]), n[i]));
        }),
      );
      return keys.map((key) => counts.get(JSON.stringify([key.inseeCode, key.nameContains])) ?? 0);
    },
    { cacheKeyFn: (key) => JSON.stringify([key.inseeCode, key.nameContains]) },
  );

  return {
    collectivity,
    commune,
    district,
    street,
    serviceCategory,
    communesOfCollectivity,
    districtsOfCommune,
    districtCount,
    streetsOfCommune,
    streetCount,
    communeGeometry: geometryLoader('commune'),
    districtGeometry: geometryLoader('district'),
    streetGeometry: geometryLoader('street'),
  };
}

export type TerritoryLoaders = ReturnType<typeof createLoaders>;

/**
 * A row the schema declares non-null and a foreign key guarantees: a miss means a broken
 * database, and the error says which row rather than GraphQL's "cannot return null".
 */
export async function required<T>(row: Promise<T | null>, what: string): Promise<T> {
  const found = await row;
  if (found === null) throw new Error(`${what} is missing from the database`);
  return found;
}
