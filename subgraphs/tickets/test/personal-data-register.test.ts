/**
 * The personal data register (prisma/personal-data-register.json, described for people in
 * docs/personal-data.md) against the schema a freshly migrated database actually has: every
 * table and view of the public schema, every column, classified as personal (with what it is,
 * whose, why, on what legal basis, how long, who sees it) or not personal. A column added by a
 * migration without being classified fails here, named. Partitions of a partitioned table
 * (readings' daily `readings_pYYYYMMDD`) count as their parent.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, ROOT, type TestDatabase } from '@connecte/testkit';
import { ensurePartitions } from '../../telemetry/src/partitions.js';

const REGISTER_PATH = path.join(ROOT, 'prisma', 'personal-data-register.json');
const DOC_PATH = path.join(ROOT, 'docs', 'personal-data.md');
const PERSONAL_FIELDS = ['data', 'subjects', 'purpose', 'legalBasis', 'retention', 'access'] as const;

interface PersonalColumn {
  data: string;
  subjects: string;
  purpose: string;
  legalBasis: string;
  retention: string;
  access: string;
}
interface TableEntry {
  description: string;
  partitioned?: boolean;
  personal?: Record<string, PersonalColumn>;
  notPersonal?: string[];
}
interface Register {
  legalBases: Record<string, string>;
  tables: Record<string, TableEntry>;
}

const loadRegister = (): Register => JSON.parse(readFileSync(REGISTER_PATH, 'utf8')) as Register;

type Queryable = Pick<pg.ClientBase, 'query'>;

/**
 * The relations of the public schema with their columns, a partition folded into its root
 * (pg_partition_root: a partition of a partition too). Tables, partitioned tables, views,
 * materialized views and foreign tables: anything a column of data can live in.
 */
async function schemaColumns(db: Queryable): Promise<Map<string, { columns: string[]; partitioned: boolean }>> {
  const { rows } = await db.query<{ relation: string; partitioned: boolean; columns: string[] }>(`
    SELECT c.relname AS relation, c.relkind = 'p' AS partitioned,
           array_agg(a.attname::text ORDER BY a.attnum) AS columns
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
    GROUP BY c.relname, c.relkind`);
  const relations = new Map(rows.map((row) => [row.relation, { columns: row.columns, partitioned: row.partitioned }]));
  // Cross-check with information_schema, the standard's view of the same catalogue: every column
  // it lists belongs to a relation above, or to a partition whose root is one.
  const listed = await db.query<{ relation: string; column: string; root: string | null }>(`
    SELECT ic.table_name::text AS relation, ic.column_name::text AS column,
           (SELECT r.relname::text FROM pg_class p JOIN pg_class r ON r.oid = pg_partition_root(p.oid)
            WHERE p.relname = ic.table_name AND p.relnamespace = 'public'::regnamespace AND p.relispartition) AS root
    FROM information_schema.columns ic WHERE ic.table_schema = 'public'`);
  for (const { relation, column, root } of listed.rows) {
    const owner = relations.get(root ?? relation);
    assert.ok(owner?.columns.includes(column), `information_schema lists ${relation}.${column}, which the catalogue query missed`);
  }
  return relations;
}

/** The rows of docs/personal-data.md's register table: `| \`table\` | \`column\` | ...`. */
function documentedColumns(doc: string): Set<string> {
  const found = new Set<string>();
  for (const match of doc.matchAll(/^\|\s*`([a-z_0-9]+)`\s*\|\s*`([a-z_0-9]+)`\s*\|/gm)) found.add(`${match[1]}.${match[2]}`);
  return found;
}

/** Every way the register and the schema (and the document) disagree, one line each naming the table and column. */
async function registerProblems(db: Queryable, register: Register, doc: string): Promise<string[]> {
  const problems: string[] = [];
  const schema = await schemaColumns(db);
  const documented = documentedColumns(doc);
  const howTo = (table: string) =>
    `classify it in prisma/personal-data-register.json under tables.${table}: in "notPersonal", or in "personal" with ${PERSONAL_FIELDS.join(', ')} (and a row in docs/personal-data.md)`;

  for (const [table, { columns, partitioned }] of [...schema].sort(([a], [b]) => a.localeCompare(b))) {
    const entry = register.tables[table];
    if (!entry) {
      problems.push(`${table}: table not in the personal data register (columns ${columns.join(', ')}); ${howTo(table)}`);
      continue;
    }
    if (Boolean(entry.partitioned) !== partitioned) problems.push(`${table}: the register says partitioned=${Boolean(entry.partitioned)}, the database ${partitioned}`);
    const personal = entry.personal ?? {};
    const notPersonal = new Set(entry.notPersonal ?? []);
    for (const column of columns) {
      const isPersonal = Object.hasOwn(personal, column);
      if (isPersonal && notPersonal.has(column)) problems.push(`${table}.${column}: classified both personal and not personal`);
      else if (!isPersonal && !notPersonal.has(column)) problems.push(`${table}.${column}: column not classified in the personal data register; ${howTo(table)}`);
    }
    for (const column of [...Object.keys(personal), ...notPersonal]) {
      if (!columns.includes(column)) problems.push(`${table}.${column}: registered, but the database has no such column (remove it from the register)`);
    }
    if (!entry.description?.trim()) problems.push(`${table}: no description`);
    for (const [column, spec] of Object.entries(personal)) {
      for (const field of PERSONAL_FIELDS) {
        if (typeof spec[field] !== 'string' || spec[field].trim() === '') problems.push(`${table}.${column}: personal, but its "${field}" is missing`);
      }
      if (typeof spec.legalBasis === 'string' && !Object.hasOwn(register.legalBases, spec.legalBasis)) {
        problems.push(`${table}.${column}: legal basis "${spec.legalBasis}" is not one of legalBases (${Object.keys(register.legalBases).join(', ')})`);
      }
      if (!documented.has(`${table}.${column}`)) problems.push(`${table}.${column}: personal, but docs/personal-data.md has no row for it`);
    }
  }
  for (const table of Object.keys(register.tables)) {
    if (!schema.has(table)) problems.push(`${table}: registered, but the database has no such table or view (remove it from the register)`);
  }
  for (const key of documented) {
    const [table, column] = key.split('.');
    if (!Object.hasOwn(register.tables[table]?.personal ?? {}, column)) problems.push(`${key}: docs/personal-data.md lists it, but the register does not classify it as personal`);
  }
  return problems;
}

/** Runs `work` in a transaction that is rolled back: DDL included, the database is left as it was. */
async function rolledBack<T>(client: pg.Client, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    return await work();
  } finally {
    await client.query('ROLLBACK');
  }
}

describe('personal data register', () => {
  let database: TestDatabase;
  let client: pg.Client;
  let register: Register;
  let doc: string;

  before(async () => {
    database = await createTestDatabase({ seed: false });
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
    // readings' daily partitions, as telemetry's partitions worker creates them (none exist right after migrating).
    const pool = new pg.Pool({ connectionString: database.url, max: 1 });
    try {
      await ensurePartitions(pool, ['2026-12-01', '2026-12-02']);
    } finally {
      await pool.end();
    }
    register = loadRegister();
    doc = readFileSync(DOC_PATH, 'utf8');
  });

  after(async () => {
    await client?.end();
    await database?.drop();
  });

  it('classifies every column of every table and view of a freshly migrated database, and nothing else', async () => {
    const { rows } = await client.query<{ name: string }>(`SELECT relname::text AS name FROM pg_class WHERE relispartition AND relname LIKE 'readings_p%'`);
    const partitions = rows.map((row) => row.name);
    assert.ok(partitions.includes('readings_p20261201') && partitions.includes('readings_p20261202'), `the test runs with readings partitions in place: ${partitions}`);
    assert.deepEqual(await registerProblems(client, register, doc), []);
  });

  it('registers the reporters\' contact data as personal, with the retention setting named', () => {
    const tickets = register.tables.tickets.personal!;
    for (const column of ['reporter_sub', 'reporter_name', 'reporter_email', 'reporter_phone']) assert.ok(tickets[column], `tickets.${column} is personal`);
    assert.match(tickets.reporter_sub.retention, /TICKETS_PERSONAL_DATA_RETENTION_MONTHS \(default 12\)/);
    assert.match(register.tables.ticket_photos.personal!.bytes.retention, /TICKETS_PERSONAL_DATA_RETENTION_MONTHS/);
    assert.match(register.tables.ticket_outbox.personal!.payload.retention, /set to null/);
  });

  it('fails on a new column, naming it, until it is classified', async () => {
    const problems = await rolledBack(client, async () => {
      await client.query('ALTER TABLE tickets ADD COLUMN reporter_birth_date date');
      return registerProblems(client, register, doc);
    });
    assert.deepEqual(problems, [
      'tickets.reporter_birth_date: column not classified in the personal data register; classify it in prisma/personal-data-register.json under tables.tickets: in "notPersonal", or in "personal" with data, subjects, purpose, legalBasis, retention, access (and a row in docs/personal-data.md)',
    ]);
    // Classified as not personal, it passes; as personal without its doc row, it fails naming the document.
    const asNotPersonal = structuredClone(register);
    asNotPersonal.tables.tickets.notPersonal!.push('reporter_birth_date');
    const asPersonal = structuredClone(register);
    asPersonal.tables.tickets.personal!.reporter_birth_date = { ...register.tables.tickets.personal!.reporter_name, data: 'Date of birth' };
    const [withNotPersonal, withPersonal] = await rolledBack(client, async () => {
      await client.query('ALTER TABLE tickets ADD COLUMN reporter_birth_date date');
      return [await registerProblems(client, asNotPersonal, doc), await registerProblems(client, asPersonal, doc)];
    });
    assert.deepEqual(withNotPersonal, []);
    assert.deepEqual(withPersonal, ['tickets.reporter_birth_date: personal, but docs/personal-data.md has no row for it']);
    const documented = `${doc}\n| \`tickets\` | \`reporter_birth_date\` | Date of birth | reporters | … |\n`;
    assert.deepEqual(
      await rolledBack(client, async () => {
        await client.query('ALTER TABLE tickets ADD COLUMN reporter_birth_date date');
        return registerProblems(client, asPersonal, documented);
      }),
      [],
    );
  });

  it('fails on a new table or view, naming it and its columns', async () => {
    const problems = await rolledBack(client, async () => {
      await client.query('CREATE TABLE newsletter_subscribers (id bigserial PRIMARY KEY, email text NOT NULL)');
      await client.query('CREATE VIEW reporter_contacts AS SELECT id, reporter_email FROM tickets');
      return registerProblems(client, register, doc);
    });
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(problems[0], /^newsletter_subscribers: table not in the personal data register \(columns id, email\); classify it/);
    assert.match(problems[1], /^reporter_contacts: table not in the personal data register \(columns id, reporter_email\); classify it/);
  });

  it('counts partitions of readings as readings, but not a table that merely looks like one', async () => {
    const problems = await rolledBack(client, async () => {
      // A partition of a partition (sub-partitioned day) is still readings'.
      await client.query(`CREATE TABLE readings_p20261203 PARTITION OF readings FOR VALUES FROM ('2026-12-03T00:00:00Z') TO ('2026-12-04T00:00:00Z') PARTITION BY LIST (metric)`);
      await client.query(`CREATE TABLE readings_p20261203_power PARTITION OF readings_p20261203 FOR VALUES IN ('power')`);
      const nested = await registerProblems(client, register, doc);
      await client.query('CREATE TABLE readings_p20991231 (equipment_id text, contact_email text)');
      return [nested, await registerProblems(client, register, doc)];
    });
    assert.deepEqual(problems[0], []);
    assert.deepEqual(problems[1], [
      'readings_p20991231: table not in the personal data register (columns equipment_id, contact_email); classify it in prisma/personal-data-register.json under tables.readings_p20991231: in "notPersonal", or in "personal" with data, subjects, purpose, legalBasis, retention, access (and a row in docs/personal-data.md)',
    ]);
  });

  it('fails on a stale entry, a column classified twice, a personal column without retention or with an unknown legal basis', async () => {
    const broken = structuredClone(register);
    broken.tables.tickets.notPersonal!.push('reporter_fax', 'reporter_email');
    delete (broken.tables.tickets.personal!.reporter_phone as Partial<PersonalColumn>).retention;
    broken.tables.open311_clients.personal!.contact_email.legalBasis = 'consent';
    broken.tables.gone_table = { description: 'Dropped long ago.', notPersonal: ['id'] };
    const problems = await registerProblems(client, broken, doc);
    assert.deepEqual(problems.sort(), [
      'gone_table: registered, but the database has no such table or view (remove it from the register)',
      'open311_clients.contact_email: legal basis "consent" is not one of legalBases (public-task, legal-obligation)',
      'tickets.reporter_email: classified both personal and not personal',
      'tickets.reporter_fax: registered, but the database has no such column (remove it from the register)',
      'tickets.reporter_phone: personal, but its "retention" is missing',
    ]);
  });

  it('fails when the document lists a personal column the register does not', async () => {
    const problems = await registerProblems(client, register, `${doc}\n| \`tickets\` | \`service\` | The department | staff | … |\n`);
    assert.deepEqual(problems, ['tickets.service: docs/personal-data.md lists it, but the register does not classify it as personal']);
  });
});
