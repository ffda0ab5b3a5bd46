/**
 * The static GTFS feed: the zip it serves is a valid archive (an independent reader, `unzip -t`),
 * reads back through the mobility importer's own parser and validator without a problem, and
 * holds exactly the network's ids; equal versions are equal bytes; an import moves the version.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { parseGtfs } from '../../../subgraphs/mobility/src/gtfs-parse.js';
import { validateGtfs } from '../../../subgraphs/mobility/src/gtfs-validate.js';
import { QueryParameterError } from '../parameters.js';
import { gtfsStatic } from './gtfs-static.js';

describe('open-data feed: static GTFS', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  const build = async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const version = await gtfsStatic.version(client, {});
      const body = (await gtfsStatic.render(client, {}, version)) as Buffer;
      await client.query('COMMIT');
      return { version, body };
    } finally {
      client.release();
    }
  };

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
  });
  after(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('takes no parameter', () => {
    assert.deepEqual(gtfsStatic.parse(new URLSearchParams()), {});
    assert.throws(() => gtfsStatic.parse(new URLSearchParams('format=json')), (e: unknown) => e instanceof QueryParameterError && e.field === 'format');
  });

  it('serves a zip that the importer reads back without a problem, with the network ids', async () => {
    const { body } = await build();
    const dir = mkdtempSync(join(tmpdir(), 'gtfs-zip-'));
    try {
      writeFileSync(join(dir, 'gtfs.zip'), body);
      const listing = execFileSync('unzip', ['-t', join(dir, 'gtfs.zip')], { encoding: 'utf8' });
      assert.match(listing, /No errors detected/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const files = parseGtfs(body);
    assert.deepEqual(files.problems, []);
    assert.deepEqual(files.warnings, []);
    assert.deepEqual([...files.tables.keys()].sort(), [
      'agency.txt', 'calendar.txt', 'calendar_dates.txt', 'feed_info.txt', 'routes.txt', 'shapes.txt', 'stop_times.txt', 'stops.txt', 'trips.txt',
    ]);
    const { network, problems } = validateGtfs(files);
    assert.deepEqual(problems, []);
    assert.ok(network);
    const ids = async (sql: string) => (await pool.query<{ id: string }>(sql)).rows.map((r) => r.id).sort();
    assert.deepEqual(network.stops.map((s) => s.stopId).sort(), await ids('SELECT stop_id AS id FROM gtfs_stops'));
    assert.deepEqual(network.routes.map((r) => r.routeId).sort(), await ids('SELECT route_id AS id FROM gtfs_routes'));
    assert.deepEqual(network.trips.map((t) => t.tripId).sort(), await ids('SELECT trip_id AS id FROM gtfs_trips'));
    assert.deepEqual(network.shapes.map((s) => s.shapeId).sort(), await ids('SELECT shape_id AS id FROM gtfs_shapes'));
    const { rows } = await pool.query<{ counts: Record<string, number>; feed_version: string; valid_from: string; valid_to: string }>(
      `SELECT counts, feed_version, to_char(valid_from, 'YYYY-MM-DD') AS valid_from, to_char(valid_to, 'YYYY-MM-DD') AS valid_to FROM gtfs_feeds ORDER BY id DESC LIMIT 1`,
    );
    for (const file of ['stops.txt', 'routes.txt', 'trips.txt', 'stop_times.txt', 'calendar.txt', 'calendar_dates.txt']) {
      assert.equal(network.counts[file], rows[0].counts[file], file);
    }
    assert.equal(network.feedVersion, rows[0].feed_version);
    assert.equal(network.validFrom, rows[0].valid_from);
    assert.equal(network.validTo, rows[0].valid_to);
    // Published: no phone, no contact e-mail.
    assert.doesNotMatch(body.toString('latin1'), /agency_phone|feed_contact_email/);
  });

  it('gives equal bytes for equal versions, and moves its version with an import', async () => {
    const first = await build();
    const second = await build();
    assert.equal(second.version.tag, first.version.tag);
    assert.ok(first.body.equals(second.body), 'same version, same bytes');
    assert.ok(first.version.lastModified instanceof Date);
    await pool.query(
      `INSERT INTO gtfs_feeds (collectivity_id, source, feed_version, sha256, imported_by, counts)
       SELECT collectivity_id, source, 'next', repeat('a', 64), 'test', counts FROM gtfs_feeds ORDER BY id DESC LIMIT 1`,
    );
    const next = await build();
    assert.notEqual(next.version.tag, first.version.tag);
    assert.equal(validateGtfs(parseGtfs(next.body)).network?.feedVersion, 'next');
  });
});
