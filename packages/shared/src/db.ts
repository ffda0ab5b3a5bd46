import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from './generated/prisma/client.js';
import type { Config } from './config.js';

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

export function createDatabase(config: Pick<Config, 'DATABASE_URL' | 'DB_POOL_SIZE'>): Database {
  const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: config.DB_POOL_SIZE });
  // An idle client losing its server (restart, network) must not crash the process.
  pool.on('error', () => {});
  // Nor a client just handed out: Prisma's adapter takes it with `await pool.connect()` and adds
  // its 'error' listener a microtask later, but a shutdown notice (57P01) that arrives in the same
  // packet as the new connection's ReadyForQuery is emitted in between, with no listener at all,
  // and would crash the process. This listener only keeps it from being unhandled: the error still
  // fails the running query, reaches the adapter, and the pool discards the dead client.
  pool.on('connect', (client) => client.on('error', () => {}));
  const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    prisma,
    pool,
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}
