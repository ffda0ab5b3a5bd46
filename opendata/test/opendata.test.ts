import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { serveOpendata, type ServedOpendata } from './serve.js';

describe('open data: equipment GeoJSON and DCAT catalogue', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;
  let base: string;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    served = await serveOpendata({ pool });
    base = served.base;
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it('publishes every public asset as RFC 7946 GeoJSON, never cameras, buses or decommissioned assets', async () => {
    const response = await fetch(`${base}/opendata/equipment.geojson`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type')!, /^application\/geo\+json/);
    assert.match(response.headers.get('cache-control')!, /public, max-age=\d+/);
    assert.equal(response.headers.get('access-control-allow-origin'), '*');
    const collection = (await response.json()) as any;
    assert.equal(collection.type, 'FeatureCollection');
    assert.equal(collection.crs, undefined, 'no crs member (RFC 7946 §4)');
    const { rows } = await pool.query<{ count: string }>(
      `SELECT count(*) FROM equipment WHERE kind NOT IN ('CAMERA', 'BUS') AND status <> 'DECOMMISSIONED' AND location IS NOT NULL`,
    );
    assert.equal(collection.features.length, Number(rows[0].count));
    const kinds = new Set(collection.features.map((f: any) => f.properties.kind));
    assert.ok(!kinds.has('CAMERA') && !kinds.has('BUS'));
    assert.ok(kinds.has('LIGHT_POINT') && kinds.has('BUS_STOP'));
    for (const feature of collection.features) {
      const [lon, lat] = feature.geometry.coordinates;
      assert.equal(feature.geometry.type, 'Point');
      assert.ok(lon > 4.1 && lon < 4.6 && lat > 48.8 && lat < 49.1, `[lon, lat] order inside the territory: ${lon},${lat}`);
      assert.ok((String(lon).split('.')[1] ?? '').length <= 6 && (String(lat).split('.')[1] ?? '').length <= 6, 'at most 6 decimals');
      assert.notEqual(feature.properties.status, 'DECOMMISSIONED');
    }
  });

  it('publishes only the allow-listed attributes of each kind', async () => {
    const collection = (await (await fetch(`${base}/opendata/equipment.geojson?kind=LIGHT_POINT,PRESENCE_DETECTOR`)).json()) as any;
    const allowed = new Set(['kind', 'status', 'collectivity', 'commune', 'installedOn', 'powerW', 'lampType', 'dimmable', 'colorTemperatureK']);
    for (const feature of collection.features) {
      for (const key of Object.keys(feature.properties)) assert.ok(allowed.has(key), `${key} is not published`);
    }
    assert.ok(collection.features.some((f: any) => f.properties.dimmable === true));
  });

  it('filters by kind, collectivity, commune and bbox', async () => {
    const get = async (query: string) => ((await (await fetch(`${base}/opendata/equipment.geojson?${query}`)).json()) as any).features;
    const fagnieres = await get('collectivity=fagnieres&kind=LIGHT_POINT');
    assert.ok(fagnieres.length > 0);
    assert.ok(fagnieres.every((f: any) => f.properties.collectivity === 'fagnieres' && f.properties.kind === 'LIGHT_POINT'));
    const commune = await get('commune=51504');
    assert.ok(commune.length > 0 && commune.every((f: any) => f.properties.commune === '51504'));
    const boxed = await get('bbox=4.36,48.95,4.37,48.96');
    assert.ok(boxed.length > 0);
    assert.ok(boxed.every((f: any) => f.geometry.coordinates[0] >= 4.36 && f.geometry.coordinates[0] <= 4.37));
  });

  it('answers a conditional GET with 304 until the data changes', async () => {
    const first = await fetch(`${base}/opendata/equipment.geojson?kind=WIFI_HOTSPOT`);
    const etag = first.headers.get('etag')!;
    assert.ok(etag);
    const again = await fetch(`${base}/opendata/equipment.geojson?kind=WIFI_HOTSPOT`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    await pool.query(`UPDATE equipment SET status = 'DECOMMISSIONED', updated_at = now() WHERE id = (SELECT id FROM equipment WHERE kind = 'WIFI_HOTSPOT' ORDER BY id LIMIT 1)`);
    const changed = await fetch(`${base}/opendata/equipment.geojson?kind=WIFI_HOTSPOT`, { headers: { 'if-none-match': etag } });
    assert.equal(changed.status, 200);
    assert.notEqual(changed.headers.get('etag'), etag);
  });

  it('rejects bad parameters with 400 naming the parameter', async () => {
    for (const [query, field] of [
      ['kind=CAMERA', 'kind'],
      ['kind=STREET_LAMP', 'kind'],
      ['bbox=4.3,48.9,4.4', 'bbox'],
      ['bbox=4.4,48.9,4.3,49', 'bbox'],
      ['collectivity=paris', 'collectivity'],
      ['commune=abc', 'commune'],
      ['colour=red', 'colour'],
    ]) {
      const response = await fetch(`${base}/opendata/equipment.geojson?${query}`);
      assert.equal(response.status, 400, query);
      assert.match(response.headers.get('content-type')!, /^application\/problem\+json/);
      const body = (await response.json()) as any;
      assert.equal(body.status, 400);
      assert.equal(body.code, 'BAD_USER_INPUT');
      assert.equal(body.field, field, query);
    }
    const missing = await fetch(`${base}/opendata/nothing-here`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as any).code, 'NOT_FOUND');
    const post = await fetch(`${base}/opendata/equipment.geojson`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal(((await post.json()) as any).code, 'METHOD_NOT_ALLOWED');
  });

  it('answers a browser preflight from any origin, and lets browser apps read the ETag', async () => {
    const preflight = await fetch(`${base}/opendata/equipment.geojson`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'if-none-match' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    assert.match(preflight.headers.get('access-control-allow-headers')!, /if-none-match/);
    assert.match(preflight.headers.get('access-control-allow-methods')!, /GET/);
    const response = await fetch(`${base}/opendata/equipment.geojson?kind=BUS_STOP`, { headers: { origin: 'https://app.example' } });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('access-control-expose-headers')!, /etag/);
    await response.arrayBuffer();
  });

  it('describes its datasets in a DCAT catalogue whose distribution URLs work', async () => {
    const response = await fetch(`${base}/opendata/catalog.jsonld`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type')!, /^application\/ld\+json/);
    const catalog = (await response.json()) as any;
    assert.equal(catalog['@type'], 'dcat:Catalog');
    assert.ok(catalog['dcat:dataset'].length >= 1);
    for (const dataset of catalog['dcat:dataset']) {
      assert.equal(dataset['@type'], 'dcat:Dataset');
      assert.ok(dataset['dct:title'] && dataset['dct:description'] && dataset['dcat:keyword'].length);
      assert.match(dataset['dct:accrualPeriodicity']['@id'], /^http:\/\/publications\.europa\.eu\/resource\/authority\/frequency\/(?:CONT|DAILY|WEEKLY|MONTHLY)$/);
      assert.equal(JSON.parse(dataset['dct:spatial']['locn:geometry']['@value']).type, 'Polygon');
      for (const distribution of dataset['dcat:distribution']) {
        assert.ok(distribution['dct:license']['@id']);
        const download = await fetch(distribution['dcat:downloadURL']['@id']);
        assert.equal(download.status, 200, distribution['dcat:downloadURL']['@id']);
      }
    }
  });
});
