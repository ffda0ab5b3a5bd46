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
