/**
 * Two `npm test` runs on one cluster must not drop each other's databases: the clean-up drops
 * only databases whose owning process has ended.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, it } from 'node:test';
import pg from 'pg';
import { ADMIN_URL, createTestDatabase, dropTestDatabases, TEST_DB_PREFIX } from '@connecte/testkit';

const exists = async (name: string) => {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    return (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await admin.end();
  }
};

const mine = await createTestDatabase({ seed: false });
after(() => mine.drop());

it('the clean-up keeps the databases of a live process and drops those of an ended one', async () => {
  // A process that has certainly ended: a child we ran to completion.
  const deadPid = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  const orphan = `${TEST_DB_PREFIX}p${deadPid}_orphan`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${orphan}"`);
    await admin.query(`CREATE DATABASE "${orphan}"`);
  } finally {
    await admin.end();
  }
  const dropped = await dropTestDatabases();
  assert.ok(dropped.includes(orphan), 'the ended process’s database is dropped');
  assert.ok(!dropped.includes(mine.name), 'this live process’s database is kept');
  assert.equal(await exists(orphan), false);
  assert.equal(await exists(mine.name), true);
  // The database still works: nothing was forcibly disconnected.
  const client = new pg.Client({ connectionString: mine.url });
  await client.connect();
  assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
  await client.end();
});
