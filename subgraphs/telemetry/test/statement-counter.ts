/**
 * Counts the SQL statements one service runs: every query sent by a client of its pool (pool.query,
 * Prisma's adapter and checked-out clients alike go through `Client.prototype.query`), other
 * pools of the same process (the hub's other subgraphs) left out. Used by readings.test.ts and
 * bench/latest.ts: `latest` for a page of assets must cost the same whatever the page size.
 *
 * The event bus reads the same pool in the background (its live read and checkpoints), and
 * workers run on timers: `measure` leaves the bus's own statements out and takes the least of
 * a few runs, so a timer that fires during one run does not count as the request's cost.
 */
import pg from 'pg';

/** The bus's background reads (packages/shared/src/events.ts), not the request's. */
const BUS_STATEMENT = /ORDER BY events\.id|pg_snapshot_xmin|pg_current_xact_id\(\)::text AS mark/;

export interface StatementCounter {
  /** Statements run by the pool's clients since `reset` (their text). */
  readonly statements: string[];
  reset(): void;
  /** The fewest statements `work` ran over `runs` runs, with their texts. */
  measure(work: () => Promise<unknown>, runs?: number): Promise<{ count: number; statements: string[] }>;
  restore(): void;
}

export function countStatements(pool: pg.Pool): StatementCounter {
  // Read at each call: pg-pool replaces the array when a client leaves (idle timeout, error).
  const clients = () => (pool as unknown as { _clients: pg.Client[] })._clients;
  const prototype = pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const original = prototype.query;
  let statements: string[] = [];
  prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : ((first as { text?: string } | null)?.text ?? '');
    if (clients().includes(this) && !BUS_STATEMENT.test(text)) statements.push(text);
    return original.apply(this, args);
  };
  return {
    get statements() {
      return statements;
    },
    reset() {
      statements = [];
    },
    async measure(work, runs = 3) {
      let best: string[] | null = null;
      for (let run = 0; run < runs; run++) {
        statements = [];
        await work();
        if (best === null || statements.length < best.length) best = statements;
      }
      statements = [];
      return { count: best!.length, statements: best! };
    },
    restore() {
      prototype.query = original;
    },
  };
}
