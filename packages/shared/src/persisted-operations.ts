/**
 * Persisted operations at the gateway. Apollo Server runs the automatic persisted queries
 * protocol itself (a hash it does not know: PERSISTED_QUERY_NOT_FOUND, and the client sends
 * the query with its hash, which registers it), and it does compare the hash with the query,
 * but it reports a mismatch or a wrong version without an error code, which our masking turns
 * into an INTERNAL_SERVER_ERROR. So those are refused here first, clearly, and this adds the
 * registered operations of PERSISTED_OPERATIONS_FILE: known by hash from the start, and with
 * PERSISTED_OPERATIONS_ONLY the only operations that run (the allow-list).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Config } from './config.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;

export const sha256Hex = (text: string) => createHash('sha256').update(text).digest('hex');

export interface Refusal {
  status: number;
  body: { errors: { message: string; extensions: Record<string, unknown> }[] };
}

export type PersistedScreening = { refusal: Refusal } | { refusal?: undefined; /** Registered text to run, for a request that sent only its hash. */ query?: string };

export interface PersistedOperations {
  /** Registered operations by hash. */
  readonly registered: ReadonlyMap<string, string>;
  screen(request: { query?: unknown; extensions?: unknown }): PersistedScreening;
}

const refusal = (status: number, code: string, message: string, extra: Record<string, unknown> = {}): { refusal: Refusal } => ({
  refusal: { status, body: { errors: [{ message, extensions: { code, ...extra } }] } },
});

/** Reads PERSISTED_OPERATIONS_FILE (when set); a bad file throws, naming the file and the entry at fault. */
export function loadPersistedOperations(config: Pick<Config, 'PERSISTED_OPERATIONS_FILE' | 'PERSISTED_OPERATIONS_ONLY'>): PersistedOperations {
  const file = config.PERSISTED_OPERATIONS_FILE;
  const registered = new Map<string, string>();
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (error) {
      throw new Error(`PERSISTED_OPERATIONS_FILE ${file}: ${(error as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error(`PERSISTED_OPERATIONS_FILE ${file}: must be a JSON object { "<sha256 hex>": "<query>" }`);
    }
    for (const [hash, query] of Object.entries(parsed)) {
      if (!SHA256_HEX.test(hash)) throw new Error(`PERSISTED_OPERATIONS_FILE ${file}: key '${hash.slice(0, 80)}' is not a lowercase SHA-256 hex digest`);
      if (typeof query !== 'string') throw new Error(`PERSISTED_OPERATIONS_FILE ${file}: the operation of ${hash} must be a string`);
      if (sha256Hex(query) !== hash) throw new Error(`PERSISTED_OPERATIONS_FILE ${file}: ${hash} is not the SHA-256 of its operation (that is ${sha256Hex(query)})`);
      registered.set(hash, query);
    }
  }
  return createPersistedOperations(registered, config.PERSISTED_OPERATIONS_ONLY);
}

export function createPersistedOperations(registered: ReadonlyMap<string, string>, only: boolean): PersistedOperations {
  const notAllowed = (hash: string) =>
    refusal(400, 'PERSISTED_QUERY_NOT_ALLOWED', `Only registered operations run on this hub, and ${hash} is not one of them (see PERSISTED_OPERATIONS_FILE)`, { sha256Hash: hash });
  return {
    registered,
    screen({ query, extensions }) {
      const persisted = typeof extensions === 'object' && extensions !== null ? (extensions as { persistedQuery?: unknown }).persistedQuery : undefined;
      let hash: string | undefined;
      if (persisted !== undefined) {
        const { version, sha256Hash } = (persisted ?? {}) as { version?: unknown; sha256Hash?: unknown };
        if (version !== 1) return refusal(400, 'BAD_REQUEST', `extensions.persistedQuery.version must be 1, got ${JSON.stringify(version) ?? 'nothing'}`, { field: 'extensions.persistedQuery.version' });
        if (typeof sha256Hash !== 'string' || !SHA256_HEX.test(sha256Hash)) {
          return refusal(400, 'BAD_REQUEST', 'extensions.persistedQuery.sha256Hash must be the SHA-256 of the query, 64 lowercase hex digits', { field: 'extensions.persistedQuery.sha256Hash' });
        }
        hash = sha256Hash;
      }
      if (typeof query === 'string') {
        const actual = sha256Hex(query);
        if (hash !== undefined && hash !== actual) {
          return refusal(400, 'PERSISTED_QUERY_HASH_MISMATCH', `extensions.persistedQuery.sha256Hash ${hash} does not match the query sent with it (whose SHA-256 is ${actual})`, {
            field: 'extensions.persistedQuery.sha256Hash',
          });
        }
        return only && !registered.has(actual) ? notAllowed(actual) : {};
      }
      if (hash === undefined) return {};
      const text = registered.get(hash);
      if (text !== undefined) return { query: text };
      // Not registered: in allow-list mode it never runs; otherwise Apollo's APQ cache may know it.
      return only ? notAllowed(hash) : {};
    },
  };
}
