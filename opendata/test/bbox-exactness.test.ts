/**
 * `bbox` keeps exactly the points inside the box, edges included. PostGIS's `&&` compares the
 * float4 boxes of the GiST index, rounded outwards, and so matches points a few millionths of a
 * degree outside: it may only find candidates.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { serveOpendata, type ServedOpendata } from './serve.js';

const BBOX = [4.36, 48.95, 4.37, 48.96] as const;

/** Light points placed on and just past the edges of BBOX. */
const PLACED = {
  'bbox-north-outside': [4.365, 48.9600059],
  'bbox-east-outside': [4.3700001, 48.955],
  'bbox-north-edge': [4.365, 48.96],
  'bbox-south-west-corner': [4.36, 48.95],
} as const;

describe('open data: bbox is exact', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    for (const [id, [lon, lat]] of Object.entries(PLACED)) {
      await pool.query(
        `INSERT INTO equipment (id, kind, reference, collectivity_id, insee_code, location)
         VALUES ($1, 'LIGHT_POINT', $1, 'chalons', '51108', ST_SetSRID(ST_MakePoint($2, $3), 4326))`,
        [id, lon, lat],
      );
    }
    served = await serveOpendata({ pool });
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it('the index test alone would keep the points just outside (the defect this guards against)', async () => {
    const { rows } = await pool.query<{ id: string }>(
      `SELECT id FROM opendata_equipment WHERE location && ST_MakeEnvelope($1, $2, $3, $4, 4326) AND id LIKE 'bbox-%' ORDER BY id`,
      [...BBOX],
    );
    assert.deepEqual(rows.map((r) => r.id), Object.keys(PLACED).sort());
  });

  it('keeps the points on the edges and drops those just outside', async () => {
    const response = await fetch(`${served.base}/opendata/equipment.geojson?bbox=${BBOX.join(',')}`);
    assert.equal(response.status, 200);
    const features = ((await response.json()) as any).features as any[];
    const ids = new Set(features.map((f) => f.id));
    assert.ok(ids.has('bbox-north-edge'), 'a point on the north edge is inside');
    assert.ok(ids.has('bbox-south-west-corner'), 'a point on the corner is inside');
    assert.ok(!ids.has('bbox-north-outside'), 'lat 48.9600059 is outside a box ending at 48.96');
    assert.ok(!ids.has('bbox-east-outside'), 'lon 4.3700001 is outside a box ending at 4.37');
    const [minLon, minLat, maxLon, maxLat] = BBOX;
    for (const feature of features) {
      const [lon, lat] = feature.geometry.coordinates;
      assert.ok(lon >= minLon && lon <= maxLon && lat >= minLat && lat <= maxLat, `${feature.id} at ${lon},${lat}`);
    }
    const { rows } = await pool.query<{ count: string }>(
      `SELECT count(*) FROM opendata_equipment WHERE ST_X(location) BETWEEN $1 AND $3 AND ST_Y(location) BETWEEN $2 AND $4`,
      [...BBOX],
    );
    assert.equal(features.length, Number(rows[0].count), 'every point inside is there');
  });
});
