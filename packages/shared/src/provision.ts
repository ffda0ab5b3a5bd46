import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import pg from 'pg';

export const POSTGIS_INSTALL_COMMAND = 'apt-get update && apt-get install -y postgresql-15-postgis-3';

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
  const available = async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rowCount } = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'");
      return rowCount === 1;
    } finally {
      await client.end();
    }
  };
  if (await available()) return;
  const canInstall = isLocal(databaseUrl) && process.getuid?.() === 0 && existsSync('/usr/bin/apt-get');
  if (!canInstall) {
    throw new Error(`PostGIS is not installed on the PostgreSQL server. Install it with:\n  ${POSTGIS_INSTALL_COMMAND}`);
  }
  log(`PostGIS is missing: running '${POSTGIS_INSTALL_COMMAND}'`);
  execFileSync('sh', ['-c', POSTGIS_INSTALL_COMMAND], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (!(await available())) throw new Error('PostGIS was installed but the server still does not offer it');
}
