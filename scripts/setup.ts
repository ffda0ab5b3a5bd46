import pg from 'pg';
import { loadConfigOrExit, type Config } from '@connecte/shared/config';
import { migrate } from '@connecte/shared/migrate';
import { ensureDatabase, ensurePostgisAvailable } from '@connecte/shared/provision';
import { seed } from '../prisma/seed/index.js';

/** Database, PostGIS, migrations, seed: everything `npm start` needs before services start. */
export async function setupDatabase(config: Pick<Config, 'DATABASE_URL'>, log: (message: string) => void = console.log) {
  if (await ensureDatabase(config.DATABASE_URL)) log(`[setup] created database ${new URL(config.DATABASE_URL).pathname.slice(1)}`);
  await ensurePostgisAvailable(config.DATABASE_URL, log);
  await migrate(config.DATABASE_URL, { log: (message) => log(`[setup] ${message}`) });
  const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 2 });
  try {
    const result = await seed(pool, { log: (message) => log(`[seed] ${message}`) });
    log(result.seeded ? '[setup] seeded the territory' : '[setup] territory already seeded');
  } finally {
    await pool.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await setupDatabase(loadConfigOrExit()).catch((error: Error) => {
    console.error(`[setup] ${error.message}`);
    process.exit(1);
  });
}
