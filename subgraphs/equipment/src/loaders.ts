import DataLoader from 'dataloader';
import type { EquipmentKind } from '@connecte/shared/db';
import type { EquipmentRow, EquipmentStore } from './equipment-store.js';

export interface ChildrenKey {
  parentId: string;
  /** Sorted and deduplicated, or null for every kind. */
  kinds: EquipmentKind[] | null;
  limit: number;
  afterId: string | null;
}

export interface ChildCountKey {
  parentId: string;
  kinds: EquipmentKind[] | null;
}

export interface EquipmentLoaders {
  /** Every entity reference and relation to an asset goes through this one. */
  equipmentById: DataLoader<string, EquipmentRow | null>;
  /** A page of children (`limit + 1` rows) per parent. */
  children: DataLoader<ChildrenKey, EquipmentRow[], string>;
  childCount: DataLoader<ChildCountKey, number, string>;
  clearAll(): void;
}

/** Groups keys that share everything but the parent, so each group is one query. */
function groupBy<K, G>(keys: readonly K[], groupOf: (key: K) => G, signature: (key: K) => string) {
  const groups = new Map<string, { group: G; indexes: number[] }>();
  keys.forEach((key, index) => {
    const sig = signature(key);
    const entry = groups.get(sig) ?? { group: groupOf(key), indexes: [] };
    entry.indexes.push(index);
    groups.set(sig, entry);
  });
  return [...groups.values()];
}

/**
 * Per-request loaders: their caches live as long as one request, and they see what the
 * caller may see (`cameraCollectivities`).
 */
export function createLoaders(store: EquipmentStore, cameraCollectivities: string[]): EquipmentLoaders {
  const equipmentById = new DataLoader<string, EquipmentRow | null>(async (ids) => {
    const rows = await store.byIds(ids);
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.map((id) => byId.get(id) ?? null);
  });

  const children = new DataLoader<ChildrenKey, EquipmentRow[], string>(
    async (keys) => {
      const results: EquipmentRow[][] = keys.map(() => []);
      const groups = groupBy(keys, (k) => ({ kinds: k.kinds, limit: k.limit, afterId: k.afterId }), (k) =>
        JSON.stringify([k.kinds, k.limit, k.afterId]),
      );
      await Promise.all(
        groups.map(async ({ group, indexes }) => {
          const parentIds = indexes.map((i) => keys[i].parentId);
          const rows = await store.childrenOf(parentIds, { ...group, cameraCollectivities });
          const byParent = new Map<string, EquipmentRow[]>();
          for (const row of rows) byParent.set(row.parentId!, [...(byParent.get(row.parentId!) ?? []), row]);
          for (const i of indexes) results[i] = byParent.get(keys[i].parentId) ?? [];
        }),
      );
      return results;
    },
    { cacheKeyFn: (k) => JSON.stringify([k.parentId, k.kinds, k.limit, k.afterId]) },
  );

  const childCount = new DataLoader<ChildCountKey, number, string>(
    async (keys) => {
      const results: number[] = keys.map(() => 0);
      const groups = groupBy(keys, (k) => k.kinds, (k) => JSON.stringify(k.kinds));
      await Promise.all(
        groups.map(async ({ group, indexes }) => {
          const counts = await store.childCounts(
            indexes.map((i) => keys[i].parentId),
            { kinds: group, cameraCollectivities },
          );
          for (const i of indexes) results[i] = counts.get(keys[i].parentId) ?? 0;
        }),
      );
      return results;
    },
    { cacheKeyFn: (k) => JSON.stringify([k.parentId, k.kinds]) },
  );

  return {
    equipmentById,
    children,
    childCount,
    clearAll() {
      equipmentById.clearAll();
      children.clearAll();
      childCount.clearAll();
    },
  };
}
