import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import pg from 'pg';

/** Debian's package must match the running server's major version. */
export const postgisInstallCommand = (major: number) =>
  `apt-get update && apt-get install -y postgresql-${major}-postgis-3`;

function adminUrl(databaseUrl: string): { admin: string; database: string } {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_-]+$/.test(database)) {
    throw new Error(`DATABASE_URL: database name '${database}' must use letters, digits, '_' or '-'`);
  }
  url.pathname = '/postgres';
  return { admin: url.toString(), database };
}

/** Connects to the server's maintenance database and creates the target database when missing. */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const { admin, database } = adminUrl(databaseUrl);
  const client = new pg.Client({ connectionString: admin });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `PostgreSQL is not reachable at ${new URL(admin).host} (${(error as Error).message}); start it, or set DATABASE_URL`,
    );
  }
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (rowCount) return false;
    await client.query(`CREATE DATABASE "${database}"`);
    return true;
  } catch (error) {
    // Another process created it in the meantime.
    if ((error as { code?: string }).code === '42P04') return false;
    throw error;
  } finally {
    await client.end();
  }
}

const isLocal = (databaseUrl: string) => ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(new URL(databaseUrl).hostname);

/**
 * Makes sure the PostGIS extension can be created. When the server lacks it, says the
 * exact command; runs it only when it may: local server, root, Debian with apt-get.
 */
export async function ensurePostgisAvailable(databaseUrl: string, log: (message: string) => void = console.log): Promise<void> {
  const probe = async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ major: number; available: boolean }>(
        `SELECT current_setting('server_version_num')::int / 10000 AS major,
                EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis') AS available`,
      );
      return rows[0];
    } finally {
      await client.end();
    }
  };
  const { major, available } = await probe();
  if (available) return;
  const command = postgisInstallCommand(major);
  const canInstall = isLocal(databaseUrl) && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
  if (!canInstall) {
    throw new Error(`PostGIS is not installed on the PostgreSQL server. Install it with:\n  ${command}`);
  }
  log(`PostGIS is missing: running '${command}'`);
  execFileSync('sh', ['-c', command], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (!(await probe()).available) throw new Error('PostGIS was installed but the server still does not offer it');
}
