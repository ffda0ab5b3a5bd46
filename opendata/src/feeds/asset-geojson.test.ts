/**
 * The asset feeds (light points with EclExt attributes, Wi-Fi hotspots, traffic signals, bus
 * stops) through HTTP on the seeded database: what they publish and never publish, their
 * parameters, their versions, and their streamed bodies (chunked, compressed on the fly, cached
 * once small enough, not cached when larger than the budget, a client leaving half-way).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from '../../test/serve.js';

describe('open-data feeds: assets GeoJSON (light points, Wi-Fi, traffic signals, bus stops)', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;
  let small: ServedOpendata;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    served = await serveOpendata({ pool });
    // A cache too small for the light points: every request streams from the database.
    small = await serveOpendata({ pool, cacheBytes: 64 * 1024 });
  });
  after(async () => {
    await small?.close();
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  const json = async (path: string, base = served.base) => {
    const response = await rawRequest(`${base}${path}`);
    assert.equal(response.status, 200, `${path}: ${response.body.toString().slice(0, 300)}`);
    return { response, body: JSON.parse(response.body.toString()) as any };
  };

  it('publishes every light point in service with the EclExt attributes, and its operating regime', async () => {
    const { response, body } = await json('/opendata/geojson/light-points.geojson');
    assert.match(String(response.headers['content-type']), /^application\/geo\+json; charset=utf-8$/);
    assert.equal(body.type, 'FeatureCollection');
    const { rows } = await pool.query<{ id: string }>(
      `SELECT id FROM equipment WHERE kind = 'LIGHT_POINT' AND status <> 'DECOMMISSIONED' AND location IS NOT NULL ORDER BY id`,
    );
    assert.deepEqual(body.features.map((f: any) => f.id), rows.map((r) => r.id), 'every light point in service, ordered by id');
    const feature = body.features[0];
    assert.equal(feature.geometry.type, 'Point');
    assert.deepEqual(Object.keys(feature.properties).sort(), [
      'collectivity', 'commune', 'hauteurFeu', 'installedOn', 'puissanceNominale', 'regimeFonctionnement',
      'status', 'telegestion', 'temperatureCouleur', 'typeSource',
    ]);
    assert.ok(body.features.every((f: any) => f.properties.typeSource === 'LED' && f.properties.puissanceNominale > 0));
    const regimes = await pool.query<{ id: string; regime: string }>(`
      SELECT e.id, CASE WHEN EXISTS (SELECT 1 FROM equipment p WHERE p.parent_id = e.id AND p.kind = 'PRESENCE_DETECTOR' AND p.status <> 'DECOMMISSIONED') THEN 'DETECTION'
                        WHEN (e.details->>'dimmable')::boolean THEN 'ABAISSEMENT' ELSE 'PERMANENT' END AS regime
        FROM equipment e WHERE e.kind = 'LIGHT_POINT' AND e.status <> 'DECOMMISSIONED' ORDER BY e.id`);
    assert.deepEqual(body.features.map((f: any) => f.properties.regimeFonctionnement), regimes.rows.map((r) => r.regime));
    assert.deepEqual(new Set(regimes.rows.map((r) => r.regime)), new Set(['DETECTION', 'ABAISSEMENT', 'PERMANENT']));
  });

  it('publishes Wi-Fi hotspots without anything of their clients, traffic signals and bus stops', async () => {
    const wifi = (await json('/opendata/geojson/wifi-hotspots.geojson')).body;
    assert.equal(wifi.features.length, 40);
    for (const f of wifi.features) {
      assert.deepEqual(Object.keys(f.properties).sort(), ['band', 'collectivity', 'commune', 'installedOn', 'maxClients', 'name', 'ssid', 'status']);
      assert.match(f.properties.ssid, /-WIFI-PUBLIC$/);
    }
    const signals = (await json('/opendata/geojson/traffic-signals.geojson')).body;
    assert.equal(signals.features.length, 25);
    assert.ok(signals.features.every((f: any) => typeof f.properties.intersectionName === 'string' && f.properties.phases >= 1));
    const stops = (await json('/opendata/geojson/bus-stops.geojson')).body;
    assert.equal(stops.features.length, 150);
    assert.ok(stops.features.every((f: any) => f.id.startsWith('bs-') && typeof f.properties.shelter === 'boolean'));
    // Never a camera, a bus or another kind, whatever the feed.
    const cameras = await pool.query<{ id: string }>(`SELECT id FROM equipment WHERE kind IN ('CAMERA', 'BUS')`);
    const published = new Set([...wifi.features, ...signals.features, ...stops.features].map((f: any) => f.id));
    assert.ok(cameras.rows.every((r) => !published.has(r.id)));
  });

  it('filters by collectivity, commune and bbox, and refuses a bad parameter naming it', async () => {
    const fagnieres = (await json('/opendata/geojson/light-points.geojson?collectivity=fagnieres')).body;
    assert.ok(fagnieres.features.length > 0 && fagnieres.features.every((f: any) => f.properties.collectivity === 'fagnieres'));
    const commune = (await json('/opendata/geojson/bus-stops.geojson?commune=51506')).body;
    assert.equal(commune.features.length, 10, 'Saint-Memmie has 10 stops');
    const boxed = (await json('/opendata/geojson/light-points.geojson?bbox=4.36,48.95,4.37,48.96')).body;
    assert.ok(boxed.features.length > 0);
    assert.ok(boxed.features.every(({ geometry: { coordinates: [x, y] } }: any) => x >= 4.36 && x <= 4.37 && y >= 48.95 && y <= 48.96));
    for (const [query, field] of [
      ['collectivity=paris', 'collectivity'],
      ['commune=5110', 'commune'],
      ['bbox=4.4,48.9,4.3,49', 'bbox'],
      ['bbox=1&bbox=2', 'bbox'],
      ['kind=LIGHT_POINT', 'kind'],
    ]) {
      const response = await rawRequest(`${served.base}/opendata/geojson/light-points.geojson?${query}`);
      assert.equal(response.status, 400, query);
      const problem = JSON.parse(response.body.toString());
      assert.equal(problem.code, 'BAD_USER_INPUT');
      assert.equal(problem.field, field, query);
    }
  });

  it('streams the first request, serves the next from the cache with the same bytes, and compresses either way', async () => {
    const path = '/opendata/geojson/light-points.geojson?collectivity=saint-martin-sur-le-pre';
    const first = await rawRequest(`${served.base}${path}`);
    assert.equal(first.headers['transfer-encoding'], 'chunked', 'built as it is sent');
    assert.equal(first.headers['content-length'], undefined);
    const second = await rawRequest(`${served.base}${path}`);
    assert.equal(second.headers['content-length'], String(second.body.length), 'kept, then served whole');
    assert.equal(second.headers.etag, first.headers.etag);
    assert.deepEqual(second.body, first.body);
    const br = await rawRequest(`${served.base}${path}`, { 'accept-encoding': 'br' });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.deepEqual(brotliDecompressSync(br.body), first.body);
    const gzip = await rawRequest(`${served.base}${path}`, { 'accept-encoding': 'gzip' });
    assert.deepEqual(gunzipSync(gzip.body), first.body);
    const notModified = await rawRequest(`${served.base}${path}`, { 'if-none-match': first.headers.etag! });
    assert.equal(notModified.status, 304);
    const head = await rawRequest(`${small.base}${path}`, {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  it('streams again and again a body larger than the cache, and survives a client leaving half-way', async () => {
    const url = `${small.base}/opendata/geojson/light-points.geojson`;
    const a = await rawRequest(url, { 'accept-encoding': 'gzip' });
    const b = await rawRequest(url, { 'accept-encoding': 'gzip' });
    assert.equal(a.headers['transfer-encoding'], 'chunked');
    assert.equal(b.headers['transfer-encoding'], 'chunked', 'not kept: over the budget');
    assert.equal(JSON.parse(gunzipSync(b.body).toString()).features.length, JSON.parse(gunzipSync(a.body).toString()).features.length);
    // A client that reads one chunk and goes away: the connection is given back, later requests work.
    await new Promise<void>((resolve, reject) => {
      const req = http.get(url, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', (error) => ((error as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(error)));
    });
    for (let i = 0; i < 6; i++) {
      const response = await rawRequest(`${small.base}/opendata/geojson/traffic-signals.geojson?commune=51242`);
      assert.equal(response.status, 200);
    }
    assert.ok(pool.totalCount <= 4);
  });

  it('moves the light points version when a detector is removed from a pole, and only that feed', async () => {
    const etag = async (path: string) => (await rawRequest(`${served.base}${path}`, {}, 'HEAD')).headers.etag;
    const lights = await etag('/opendata/geojson/light-points.geojson');
    const stops = await etag('/opendata/geojson/bus-stops.geojson');
    const { rows } = await pool.query<{ parent_id: string }>(
      `UPDATE equipment SET status = 'DECOMMISSIONED', updated_at = now() + interval '1 second'
        WHERE id = (SELECT id FROM equipment WHERE kind = 'PRESENCE_DETECTOR' AND status <> 'DECOMMISSIONED' ORDER BY id LIMIT 1)
        RETURNING parent_id`,
    );
    assert.notEqual(await etag('/opendata/geojson/light-points.geojson'), lights);
    assert.equal(await etag('/opendata/geojson/bus-stops.geojson'), stops);
    const body = (await json('/opendata/geojson/light-points.geojson')).body;
    const regime = body.features.find((f: any) => f.id === rows[0].parent_id).properties.regimeFonctionnement;
    assert.notEqual(regime, 'DETECTION', 'its only detector is gone');
  });
});
