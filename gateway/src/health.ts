import pg from 'pg';
import { databaseTimeoutOf } from '@connecte/shared/timeouts';
import { SubgraphTimeoutError, type Fetcher } from './fetcher.js';

export interface ReadinessReport {
  status: 'ready' | 'unavailable';
  /** `ok`, or why the dependency is not ready. */
  checks: Record<string, string>;
  /** The dependencies that failed, by name (`database`, `subgraph:<name>`, a worker's name). */
  failed: string[];
}

export interface Readiness {
  check(): Promise<ReadinessReport>;
  close(): Promise<void>;
}

/**
 * `/readyz`: the database answers `SELECT 1` and every subgraph answers `{ __typename }`,
 * each within a short timeout so a hung dependency makes the probe fail, not hang.
 */
export function createReadiness(options: {
  databaseUrl: string;
  subgraphUrls: Record<string, string>;
  fetcher: Fetcher;
  timeoutMs?: number;
  /** The gateway's background workers, each reported by its state (`mqtt: disconnected`). */
  workers?: () => { checks: Record<string, string>; failed: string[] };
}): Readiness {
  const timeoutMs = options.timeoutMs ?? 2000;
  const pool = new pg.Pool({
    connectionString: options.databaseUrl,
    max: 1,
    connectionTimeoutMillis: timeoutMs,
    // The client gives up on a server that does not answer; the server ends the probe's statement
    // at the same moment, rather than leaving it running (waiting on a lock) behind the client.
    statement_timeout: timeoutMs,
    query_timeout: timeoutMs,
    idleTimeoutMillis: 30_000,
  });
  // A restart of PostgreSQL must fail the probe, not crash the gateway.
  pool.on('error', () => {});

  const database = async () => {
    await pool.query('SELECT 1');
  };
  const subgraph = (url: string) => async () => {
    const response = await options.fetcher(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"query":"{ __typename }"}',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    if (JSON.parse(text)?.data?.__typename !== 'Query') throw new Error('unexpected answer to { __typename }');
  };
  const probes: [string, () => Promise<void>][] = [
    ['database', database],
    ...Object.entries(options.subgraphUrls).map(([name, url]): [string, () => Promise<void>] => [`subgraph:${name}`, subgraph(url)]),
  ];

  return {
    async check() {
      const outcomes = await Promise.all(
        probes.map(async ([name, probe]) => {
          try {
            await probe();
            return [name, 'ok'] as const;
          } catch (error) {
            return [name, describe(error, timeoutMs)] as const;
          }
        }),
      );
      const failed = outcomes.filter(([, outcome]) => outcome !== 'ok').map(([name]) => name);
      const workers = options.workers?.() ?? { checks: {}, failed: [] };
      failed.push(...workers.failed);
      return { status: failed.length === 0 ? 'ready' : 'unavailable', checks: { ...Object.fromEntries(outcomes), ...workers.checks }, failed };
    },
    close: () => pool.end(),
  };
}

function describe(error: unknown, timeoutMs: number): string {
  const { name, message, code } = error as { name?: string; message?: string; code?: string };
  if (error instanceof SubgraphTimeoutError) return `did not answer within ${error.timeoutMs} ms`;
  if (name === 'TimeoutError' || name === 'AbortError') return `did not answer within ${timeoutMs} ms`;
  const database = databaseTimeoutOf(error, { DB_STATEMENT_TIMEOUT_MS: timeoutMs, DB_CONNECTION_TIMEOUT_MS: timeoutMs });
  if (database) return database.message;
  return [code, message].filter(Boolean).join(': ') || String(error);
}
