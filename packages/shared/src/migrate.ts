import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Umzug, type UmzugStorage } from 'umzug';

/** Where `prisma migrate` keeps its migrations; this runner reads the same layout. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../prisma/migrations', import.meta.url));

/** The advisory lock key `prisma migrate deploy` takes, so this runner and Prisma exclude each other. */
const PRISMA_MIGRATE_LOCK = 72707369;

// Prisma's own bookkeeping table, created exactly as the schema engine does.
const CREATE_PRISMA_MIGRATIONS = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): MigrationFile[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(path.join(dir, entry.name, 'migration.sql')))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const bytes = readFileSync(path.join(dir, name, 'migration.sql'));
      return { name, sql: bytes.toString('utf8'), checksum: createHash('sha256').update(bytes).digest('hex') };
    });
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Applies pending migrations the way `prisma migrate deploy` would: same lock, same
 * `_prisma_migrations` rows and SHA-256 checksums, so the two agree wherever Prisma's
 * schema engine exists. Unlike Prisma, each file runs in one transaction with its
 * bookkeeping row, so a failing migration leaves neither half-applied DDL nor a
 * failed row behind.
 */
export async function migrate(
  databaseUrl: string,
  options: { dir?: string; log?: (message: string) => void } = {},
): Promise<{ applied: string[] }> {
  const files = readMigrations(options.dir);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [PRISMA_MIGRATE_LOCK]);
    await client.query(CREATE_PRISMA_MIGRATIONS);
    const { rows } = await client.query<{ migration_name: string; checksum: string; finished_at: Date | null }>(
      'SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL',
    );
    const failed = rows.find((row) => row.finished_at === null);
    if (failed) {
      throw new MigrationError(
        `migration ${failed.migration_name} is recorded as started but not finished; resolve it (prisma migrate resolve) before applying more`,
      );
    }
    for (const row of rows) {
      const file = files.find((f) => f.name === row.migration_name);
      if (file && file.checksum !== row.checksum) {
        throw new MigrationError(`migration ${row.migration_name} was modified after it was applied (checksum differs)`);
      }
    }

    // The storage only reads: each migration records itself inside its own transaction.
    const storage: UmzugStorage = {
      executed: async () => rows.map((row) => row.migration_name),
      logMigration: async () => {},
      unlogMigration: async () => {
        throw new MigrationError('down migrations are not supported: write a new migration instead');
      },
    };
    const umzug = new Umzug({
      migrations: files.map((file) => ({
        name: file.name,
        up: async () => {
          await client.query('BEGIN');
          try {
            const startedAt = new Date();
            await client.query(file.sql);
            await client.query(
              `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
               VALUES ($1, $2, now(), $3, $4, 1)`,
              [randomUUID(), file.checksum, file.name, startedAt],
            );
            await client.query('COMMIT');
          } catch (error) {
            await client.query('ROLLBACK');
            throw new MigrationError(`migration ${file.name} failed: ${(error as Error).message}`);
          }
        },
      })),
      storage,
      logger: undefined,
    });
    const applied = await umzug.up();
    for (const migration of applied) options.log?.(`applied migration ${migration.name}`);
    return { applied: applied.map((m) => m.name) };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [PRISMA_MIGRATE_LOCK]).catch(() => {});
    await client.end();
  }
}
