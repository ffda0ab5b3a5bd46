import { badInput } from './errors.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

/** Validates `first` per the GraphQL conventions (default 50, 0..1000). */
export function pageSize(first: number | null | undefined, field = 'first'): number {
  if (first === null || first === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(first) || first < 0) throw badInput(field, 'must be a whole number ≥ 0');
  if (first > MAX_PAGE_SIZE) throw badInput(field, `must be at most ${MAX_PAGE_SIZE}`);
  return first;
}

/** Opaque keyset cursors: base64url of the sort key(s) of the last row seen. */
export function encodeCursor(key: string): string {
  return Buffer.from(`k:${key}`, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | null | undefined, field = 'after'): string | null {
  if (cursor === null || cursor === undefined) return null;
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  // A NUL can only come from a forged cursor (PostgreSQL text cannot hold one): refuse it here
  // rather than let the database fail on it (22021).
  if (!decoded.startsWith('k:') || decoded.includes('\u0000') || encodeCursor(decoded.slice(2)) !== cursor) {
    throw badInput(field, 'is not a cursor returned by this API');
  }
  return decoded.slice(2);
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
  totalCount: number | (() => Promise<number>);
}

/**
 * Builds a connection from `limit + 1` fetched rows (the extra row only tells whether
 * another page exists). `totalCount` stays lazy so it costs a query only when selected.
 */
export function connection<T>(
  rows: T[],
  limit: number,
  keyOf: (row: T) => string,
  hasPrevious: boolean,
  totalCount: () => Promise<number>,
): Connection<T> {
  const page = rows.slice(0, limit);
  const edges = page.map((node) => ({ cursor: encodeCursor(keyOf(node)), node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: rows.length > limit,
      hasPreviousPage: hasPrevious,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
    totalCount,
  };
}
