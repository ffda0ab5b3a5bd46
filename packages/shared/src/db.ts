import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from './generated/prisma/client.js';
import { poolOptions, type DatabaseConfig } from './timeouts.js';

export { PrismaClient, Prisma } from './generated/prisma/client.js';
export type { EquipmentKind, EquipmentStatus } from './generated/prisma/enums.js';

/**
 * One pg pool per process, shared by Prisma (through adapter-pg) and by the code that
 * needs a raw connection (LISTEN/NOTIFY, COPY, advisory locks).
 */
export interface Database {
  prisma: PrismaClient;
  pool: pg.Pool;
  close(): Promise<void>;
}

export function createDatabase(config: DatabaseConfig): Database {
  const pool = new pg.Pool(poolOptions(config));
  // An idle client losing its server (restart, network) must not crash the process.
  pool.on('error', () => {});
  // Nor a client just handed out: Prisma's adapter takes it with `await pool.connect()` and adds
  // its 'error' listener a microtask later, but a shutdown notice (57P01) that arrives in the same
  // packet as the new connection's ReadyForQuery is emitted in between, with no listener at all,
  // and would crash the process. This listener only keeps it from being unhandled: the error still
  // fails the running query, reaches the adapter, and the pool discards the dead client.
  pool.on('connect', (client) => client.on('error', () => {}));
  const prisma = new PrismaClient({
    adapter: new PrismaPg(pool),
    // Not Prisma's own defaults (2 s to start a transaction, 5 s for all of it), which would
    // time writes out sooner than reads and under other numbers: a transaction waits for its
    // connection as long as any query does, and gets the budget of one statement.
    ...(config.DB_STATEMENT_TIMEOUT_MS && config.DB_CONNECTION_TIMEOUT_MS
      ? { transactionOptions: { maxWait: config.DB_CONNECTION_TIMEOUT_MS, timeout: config.DB_STATEMENT_TIMEOUT_MS } }
      : {}),
  });
  return {
    prisma,
    pool,
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}

/**
 * Runs `work` in a transaction on a pool connection of its own: COMMIT when it resolves,
 * ROLLBACK when it throws (and the connection is then not reused: it may have failed mid-transaction).
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    client.release(true);
    throw error;
  }
}
