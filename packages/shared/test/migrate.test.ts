import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { migrate, MIGRATIONS_DIR, readMigrations } from '@connecte/shared/migrate';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('migration runner', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase({ seed: false });
  });
  after(async () => db.drop());

  it('records every migration in _prisma_migrations with the SHA-256 of its file, as prisma migrate deploy does', async () => {
    const rows = await query<{ migration_name: string; checksum: string; finished_at: Date; applied_steps_count: number }>(
      db.url,
      'SELECT migration_name, checksum, finished_at, applied_steps_count FROM _prisma_migrations ORDER BY migration_name',
    );
    const files = readMigrations();
    assert.deepEqual(rows.map((r) => r.migration_name), files.map((f) => f.name));
    for (const [i, row] of rows.entries()) {
      const bytes = readFileSync(path.join(MIGRATIONS_DIR, row.migration_name, 'migration.sql'));
      assert.equal(row.checksum, createHash('sha256').update(bytes).digest('hex'));
      assert.ok(row.finished_at instanceof Date, `${files[i].name} finished`);
      assert.equal(row.applied_steps_count, 1);
    }
    const [{ extversion }] = await query<{ extversion: string }>(db.url, "SELECT extversion FROM pg_extension WHERE extname = 'postgis'");
    assert.match(extversion, /^3\./);
  });

  it('applies nothing the second time', async () => {
    assert.deepEqual(await migrate(db.url), { applied: [] });
  });

  it('rolls a failing migration back whole and records nothing for it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'connecte-migrations-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    mkdirSync(path.join(dir, '29991231000000_broken'));
    writeFileSync(
      path.join(dir, '29991231000000_broken', 'migration.sql'),
      'CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n',
    );
    await assert.rejects(migrate(db.url, { dir }), /29991231000000_broken failed: .*no_such_table/);
    const tables = await query(db.url, "SELECT 1 FROM pg_tables WHERE tablename = 'half_done'");
    assert.equal(tables.length, 0, 'the DDL before the failure was rolled back');
    const rows = await query(db.url, "SELECT 1 FROM _prisma_migrations WHERE migration_name = '29991231000000_broken'");
    assert.equal(rows.length, 0);
  });

  it('refuses to run when an applied migration was edited afterwards', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'connecte-migrations-'));
    cpSync(MIGRATIONS_DIR, dir, { recursive: true });
    const first = readMigrations(dir)[0].name;
    writeFileSync(path.join(dir, first, 'migration.sql'), `${readFileSync(path.join(dir, first, 'migration.sql'), 'utf8')}\n-- edited\n`);
    await assert.rejects(migrate(db.url, { dir }), new RegExp(`${first} was modified after it was applied`));
  });
});
