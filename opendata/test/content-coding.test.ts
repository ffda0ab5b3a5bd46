/**
 * Compression of the open data: Accept-Encoding negotiation (br, gzip, q-values, identity),
 * `Content-Encoding`, `Vary: Accept-Encoding`, one ETag per coding, HEAD and 304 per coding,
 * and each version built and compressed once, in bounded memory.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import pg from 'pg';
import { negotiateContentCoding } from '@connecte/opendata/content-coding';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from './serve.js';

describe('open data: content codings', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;
  /** Statements that build a GeoJSON body, counted on the real connections. */
  let bodyBuilds = 0;

  const countBodyBuilds = (target: pg.Pool) =>
    target.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as { query: unknown }).query = (...args: unknown[]) => {
        if (typeof args[0] === 'string' && args[0].includes("'FeatureCollection'")) bodyBuilds += 1;
        return query(...args);
      };
    });

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    countBodyBuilds(pool);
    served = await serveOpendata({ pool });
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  const url = (query = '') => `${served.base}/opendata/equipment.geojson${query}`;

  it('negotiates br, gzip and identity by preference and q-value', () => {
    const cases: [string | undefined, string | null][] = [
      [undefined, 'identity'],
      ['', 'identity'],
      ['gzip, deflate, br', 'br'],
      ['gzip', 'gzip'],
      ['x-gzip', 'gzip'],
      ['br;q=0.5, gzip;q=0.8', 'gzip'],
      ['br;q=1.0, gzip;q=1', 'br'],
      ['gzip;q=0.5, identity', 'identity'],
      ['br;q=0.1', 'br'],
      ['br;q=0, gzip;q=0', 'identity'],
      ['*', 'br'],
      ['*;q=0.5, br;q=0', 'gzip'],
      ['identity;q=0, gzip;q=0.001', 'gzip'],
      ['identity;q=0', null],
      ['*;q=0', null],
      ['*;q=0, identity;q=0.1', 'identity'],
      ['br;q=2, gzip', 'gzip'],
      ['br;q=NaN', 'identity'],
      ['br;q=1e309', 'identity'],
      ['deflate, compress', 'identity'],
      ['GZIP;Q=0.9', 'gzip'],
      [' , ;, br', 'br'],
    ];
    for (const [header, expected] of cases) assert.equal(negotiateContentCoding(header), expected, JSON.stringify(header));
  });

  it('sends the same GeoJSON in br, gzip and identity, with Content-Encoding and Vary', async () => {
    const identity = await rawRequest(url(), { 'accept-encoding': 'identity' });
    const br = await rawRequest(url(), { 'accept-encoding': 'gzip, deflate, br' });
    const gzip = await rawRequest(url(), { 'accept-encoding': 'gzip;q=1, br;q=0.5' });
    const none = await rawRequest(url());
    for (const response of [identity, br, gzip, none]) {
      assert.equal(response.status, 200);
      assert.match(String(response.headers.vary), /(^|,\s*)Accept-Encoding(,|$)/i);
      assert.equal(Number(response.headers['content-length']), response.body.length);
      assert.match(String(response.headers['content-type']), /^application\/geo\+json/);
    }
    assert.equal(identity.headers['content-encoding'], undefined);
    assert.equal(none.headers['content-encoding'], undefined, 'no Accept-Encoding: raw bytes');
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(gzip.headers['content-encoding'], 'gzip');
    assert.ok(identity.body.length > 2_000_000, `the whole territory: ${identity.body.length} bytes`);
    assert.ok(br.body.length < identity.body.length / 10, `brotli: ${br.body.length} bytes`);
    assert.ok(gzip.body.length < identity.body.length / 10, `gzip: ${gzip.body.length} bytes`);
    assert.ok(brotliDecompressSync(br.body).equals(identity.body), 'brotli decodes to the same bytes');
    assert.ok(gunzipSync(gzip.body).equals(identity.body), 'gzip decodes to the same bytes');
    assert.ok(none.body.equals(identity.body));
    const etags = new Set([identity, br, gzip].map((r) => r.headers.etag));
    assert.equal(etags.size, 3, `one strong ETag per coding: ${[...etags].join(' ')}`);
    assert.equal(none.headers.etag, identity.headers.etag);
  });

  it('answers If-None-Match per coding with 304 (weak comparison), and a changed coding with 200', async () => {
    const br = await rawRequest(url('?kind=BUS_STOP'), { 'accept-encoding': 'br' });
    const etag = String(br.headers.etag);
    for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
      const again = await rawRequest(url('?kind=BUS_STOP'), { 'accept-encoding': 'br', 'if-none-match': inm });
      assert.equal(again.status, 304, inm);
      assert.equal(again.body.length, 0);
      assert.equal(again.headers.etag, etag);
      assert.match(String(again.headers.vary), /Accept-Encoding/);
      assert.ok(again.headers['cache-control']);
    }
    // The client's cached copy is brotli; a request for gzip must get gzip bytes, not a 304.
    const gzip = await rawRequest(url('?kind=BUS_STOP'), { 'accept-encoding': 'gzip', 'if-none-match': etag });
    assert.equal(gzip.status, 200);
    assert.equal(gzip.headers['content-encoding'], 'gzip');
    assert.ok(gunzipSync(gzip.body).equals(brotliDecompressSync(br.body)));
  });

  it('answers HEAD with the headers of GET and no body, in every coding', async () => {
    for (const coding of ['br', 'gzip', 'identity']) {
      const get = await rawRequest(url('?kind=WIFI_HOTSPOT'), { 'accept-encoding': coding });
      const head = await rawRequest(url('?kind=WIFI_HOTSPOT'), { 'accept-encoding': coding }, 'HEAD');
      assert.equal(head.status, 200);
      assert.equal(head.body.length, 0);
      for (const name of ['etag', 'content-length', 'content-encoding', 'vary', 'content-type', 'cache-control']) {
        assert.equal(head.headers[name], get.headers[name], `${coding}: ${name}`);
      }
    }
    const catalog = await rawRequest(`${served.base}/opendata/catalog.jsonld`, { 'accept-encoding': 'br' }, 'HEAD');
    assert.equal(catalog.status, 200);
    assert.equal(catalog.headers['content-encoding'], 'br');
    assert.equal(catalog.body.length, 0);
  });

  it('answers 406 naming Accept-Encoding when every coding is refused', async () => {
    for (const header of ['identity;q=0', '*;q=0', 'deflate, identity;q=0']) {
      const response = await rawRequest(url(), { 'accept-encoding': header });
      assert.equal(response.status, 406, header);
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
      assert.equal(JSON.parse(response.body.toString()).field, 'Accept-Encoding');
    }
  });

  it('builds and compresses a version once, however many clients ask for it at the same time', async () => {
    await pool.query(`UPDATE equipment SET updated_at = now() WHERE id = (SELECT id FROM equipment WHERE kind = 'LIGHT_POINT' ORDER BY id LIMIT 1)`);
    const before = bodyBuilds;
    const responses = await Promise.all(
      Array.from({ length: 24 }, (_, i) => rawRequest(url(), { 'accept-encoding': ['br', 'gzip', 'identity'][i % 3] })),
    );
    assert.equal(bodyBuilds - before, 1, 'one body for the new version');
    const bodies = new Map<string, Buffer>();
    for (const response of responses) {
      assert.equal(response.status, 200);
      const key = String(response.headers.etag);
      if (bodies.has(key)) assert.ok(bodies.get(key)!.equals(response.body), 'every client of a coding gets the same bytes');
      bodies.set(key, response.body);
    }
    assert.equal(bodies.size, 3);
    await Promise.all([rawRequest(url(), { 'accept-encoding': 'br' }), rawRequest(url(), { 'accept-encoding': 'gzip' })]);
    assert.equal(bodyBuilds - before, 1, 'later requests are served from the cache');
  });

  it('keeps no more than its memory budget: a representation larger than it is rebuilt, smaller ones are kept', async () => {
    // 1 MB: the brotli GeoJSON of the territory (~130 kB) fits, its raw 2.8 MB does not.
    const small = await serveOpendata({ pool, cacheBytes: 1024 * 1024 });
    try {
      const start = bodyBuilds;
      const first = await rawRequest(`${small.base}/opendata/equipment.geojson`, { 'accept-encoding': 'br' });
      const second = await rawRequest(`${small.base}/opendata/equipment.geojson`, { 'accept-encoding': 'br' });
      assert.ok(first.body.equals(second.body));
      assert.equal(bodyBuilds - start, 1, 'the compressed bytes are kept');
      await rawRequest(`${small.base}/opendata/equipment.geojson`, { 'accept-encoding': 'identity' });
      await rawRequest(`${small.base}/opendata/equipment.geojson`, { 'accept-encoding': 'identity' });
      assert.equal(bodyBuilds - start, 3, 'the raw 2.8 MB are over budget: built for each request, never kept');
      // Filters that each fit (~130 kB: every presence detector) but not all together: the least
      // recently used go first, so the cache never holds more than its budget.
      const detectors = (i: number) => `${small.base}/opendata/equipment.geojson?kind=PRESENCE_DETECTOR&bbox=4.${100 + i},48.8,4.6,49.1`;
      const sizes: number[] = [];
      for (let i = 0; i < 12; i += 1) sizes.push((await rawRequest(detectors(i), { 'accept-encoding': 'identity' })).body.length);
      assert.ok(sizes.every((size) => size > 100_000 && size < 1024 * 1024) && sizes.reduce((a, b) => a + b) > 1024 * 1024, `sizes ${sizes}`);
      const filled = bodyBuilds;
      await rawRequest(detectors(11), { 'accept-encoding': 'identity' });
      assert.equal(bodyBuilds - filled, 0, 'the most recent representation is kept');
      await rawRequest(detectors(0), { 'accept-encoding': 'identity' });
      assert.equal(bodyBuilds - filled, 1, 'the least recently used one was evicted');
    } finally {
      await small.close();
    }
  });
});
