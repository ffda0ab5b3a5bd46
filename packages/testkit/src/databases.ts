/**
 * Fresh PostgreSQL databases for tests, cloned from a migrated (and seeded) template: one per
 * test file, named after the process that owns it. Tests talk to the real things.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrate } from '@connecte/shared/migrate';
import { ensurePostgisAvailable } from '@connecte/shared/provision';

/** The repository root (this file is packages/testkit/src/databases.ts, or its compiled dist/ twin). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const ADMIN_URL = process.env.TEST_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
/** Test databases share this prefix; `npm test` drops leftovers of an interrupted run. */
export const TEST_DB_PREFIX = 'connecte_t_';
/**
 * A test database is named after the process that owns it (`connecte_t_p<pid>_<random>`), so
 * that cleaning up after one run never drops a database another run on the same cluster is
 * still using: only databases whose process has ended are leftovers.
 */
export const testDatabaseName = (label = randomBytes(6).toString('hex')) => `${TEST_DB_PREFIX}p${process.pid}_${label}`;
const OWNER = new RegExp(`^${TEST_DB_PREFIX}p(\\d+)_`);
const TEMPLATE_LOCK = 72707370;

const urlFor = (database: string) => {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'test' ? [] : filesUnder(full);
    return [full];
  });
}

/** Templates are named after the content of the migrations and the seed, so a stale one is never reused. */
function templateName(seeded: boolean): string {
  const hash = createHash('sha256');
  const sources = [path.join(ROOT, 'prisma', 'migrations'), ...(seeded ? [path.join(ROOT, 'prisma', 'seed'), path.join(ROOT, 'subgraphs', 'mobility', 'gtfs')] : [])];
  // The seed writes the bus network with mobility's own GTFS parser, validator and writer.
  const seedImports = seeded ? filesUnder(path.join(ROOT, 'subgraphs', 'mobility', 'src')).filter((file) => path.basename(file).startsWith('gtfs-')) : [];
  for (const file of [...sources.flatMap(filesUnder), ...seedImports].sort()) {
    if (statSync(file).isFile()) hash.update(file.slice(ROOT.length)).update(readFileSync(file));
  }
  return `${TEST_DB_PREFIX}tpl_${seeded ? 'seeded' : 'empty'}_${hash.digest('hex').slice(0, 12)}`;
}

async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function ensureTemplate(seeded: boolean): Promise<string> {
  const name = templateName(seeded);
  return withAdmin(async (admin) => {
    await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK]);
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (rowCount) return name;
      await ensurePostgisAvailable(ADMIN_URL);
      const building = `${name}_building`;
      await admin.query(`DROP DATABASE IF EXISTS "${building}"`);
      await admin.query(`CREATE DATABASE "${building}"`);
      await migrate(urlFor(building));
      if (seeded) {
        const { seed } = await import('../../../prisma/seed/index.js');
        const pool = new pg.Pool({ connectionString: urlFor(building), max: 2 });
        try {
          await seed(pool);
        } finally {
          await pool.end();
        }
      }
      await admin.query(`ALTER DATABASE "${building}" RENAME TO "${name}"`);
      return name;
    } finally {
      await admin.query('SELECT pg_advisory_unlock($1)', [TEMPLATE_LOCK]);
    }
  });
}

export interface TestDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

/**
 * A database of its own for one test file: migrated, and seeded at the territory's real
 * scale unless `seed: false`. Cloning a template takes well under a second.
 */
export async function createTestDatabase(options: { seed?: boolean } = {}): Promise<TestDatabase> {
  const template = await ensureTemplate(options.seed ?? true);
  const name = testDatabaseName();
  await withAdmin(async (admin) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
        return;
      } catch (error) {
        // Another file is cloning the same template at this very moment.
        if ((error as { code?: string }).code !== '55006' || attempt >= 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });
  return {
    name,
    url: urlFor(name),
    drop: () => withAdmin((admin) => dropWhenQuiet(admin, name)),
  };
}

/**
 * A pool's `end()` resolves before its connections have finished closing; forcing the drop at
 * once would terminate them mid-close, and a client terminated with no listener left crashes
 * the test process. So the drop waits (up to 2 s) for the sessions to go, then forces it.
 */
async function dropWhenQuiet(admin: pg.Client, name: string): Promise<void> {
  const deadline = Date.now() + 2_000;
  for (;;) {
    try {
      await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== '55006' || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Drops the test databases whose owning process has ended. Templates (shared by every run,
 * named after their content) go too once no test database is left in use, so a run never
 * trusts what an older checkout built. Taken under the template lock: no template is dropped
 * while a run is building or cloning one.
 */
export async function dropTestDatabases(): Promise<string[]> {
  return withAdmin(async (admin) => {
    await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK]);
    try {
      const { rows } = await admin.query<{ datname: string }>(
        `SELECT datname FROM pg_database WHERE datname LIKE $1`,
        [`${TEST_DB_PREFIX.replaceAll('_', '\\_')}%`],
      );
      const names = rows.map((r) => r.datname);
      const inUse = names.filter((name) => {
        const owner = OWNER.exec(name);
        return owner !== null && processAlive(Number(owner[1]));
      });
      const doomed = names.filter((name) => {
        if (inUse.includes(name)) return false;
        const isTemplate = name.startsWith(`${TEST_DB_PREFIX}tpl_`);
        return !isTemplate || inUse.length === 0;
      });
      for (const name of doomed) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      return doomed;
    } finally {
      await admin.query('SELECT pg_advisory_unlock($1)', [TEMPLATE_LOCK]);
    }
  });
}
