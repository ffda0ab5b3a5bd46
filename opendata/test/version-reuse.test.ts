/**
 * OPENDATA_VERSION_REUSE_MS: within the window after a request read a representation's version,
 * a request whose bytes are cached is answered without the database (it keeps working with the
 * pool drained); a change to the data shows once the window has passed, and at once without it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { equipmentGeojson } from '@connecte/opendata/feeds/equipment-geojson';
import { serveOpendata, type ServedOpendata } from './serve.js';

const WINDOW_MS = 600;
let db: TestDatabase;
let pool: pg.Pool;
let reusing: ServedOpendata;
let reading: ServedOpendata;

const etagOf = async (base: string) => {
  const res = await fetch(`${base}/opendata/equipment.geojson?kind=WIFI_HOTSPOT`);
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  return res.headers.get('etag');
};

before(async () => {
  db = await createTestDatabase();
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  reusing = await serveOpendata({ pool, feeds: [equipmentGeojson], versionReuseMs: WINDOW_MS });
  reading = await serveOpendata({ pool, feeds: [equipmentGeojson] });
});

after(async () => {
  await reusing?.close();
  await reading?.close();
  await pool?.end();
  await db?.drop();
});

describe('version reuse', () => {
  it('answers from the cached version within the window, without the database, and shows a change after it', async () => {
    const first = await etagOf(reusing.base);
    assert.equal(await etagOf(reading.base), first);
    // Hold every connection of the pool: a request that needed the database would wait.
    const held = await Promise.all([pool.connect(), pool.connect()]);
    try {
      const started = performance.now();
      const again = await Promise.race([etagOf(reusing.base), sleep(WINDOW_MS / 2).then(() => 'waited for the database')]);
      assert.equal(again, first, `answered in ${Math.round(performance.now() - started)} ms without a connection`);
      await held[0].query(`UPDATE equipment SET name = name || ' (renamed)', updated_at = now() WHERE kind = 'WIFI_HOTSPOT' AND id = (SELECT min(id) FROM equipment WHERE kind = 'WIFI_HOTSPOT')`);
    } finally {
      for (const client of held) client.release();
    }
    const changed = await etagOf(reading.base);
    assert.notEqual(changed, first, 'without reuse the change shows at once');
    await sleep(WINDOW_MS + 50);
    assert.equal(await etagOf(reusing.base), changed, 'after the window the change shows');
  });
});
