/**
 * What a client's request chooses besides the data: `Accept` (406 when nothing offered is
 * taken; the index page or the catalogue at /opendata/), a feed's own freshness
 * (`Cache-Control`), and the 404 that lists what exists.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createOpendataHandler, FEEDS, type Feed } from '@connecte/opendata';
import { negotiateMediaType } from '@connecte/opendata/accept';
import { FeedRegistrationError } from '@connecte/opendata/feed';
import { equipmentGeojson } from '@connecte/opendata/feeds/equipment-geojson';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from './serve.js';

const BROWSER = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';

describe('open data: content negotiation, freshness and unknown paths', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;
  let base: string;
  const fast: Feed = { ...(equipmentGeojson as Feed), id: 'fast-equipment', path: '/opendata/fast/equipment.geojson', maxAgeSeconds: 10 };

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    served = await serveOpendata({ pool, publicUrl: 'https://data.chalons-agglo.example/hub' });
    base = served.base;
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it('reads Accept as RFC 9110 says: q-values, specificity, wildcards, structured suffixes', () => {
    const geojson = 'application/geo+json; charset=utf-8';
    const offers = ['application/ld+json; charset=utf-8', 'text/html; charset=utf-8', 'text/turtle; charset=utf-8'];
    const cases: [string | string[] | undefined, readonly string[], string | null][] = [
      [undefined, [geojson], geojson],
      ['', [geojson], geojson],
      ['*/*', [geojson], geojson],
      ['application/*', [geojson], geojson],
      ['application/json', [geojson], geojson],
      ['APPLICATION/GEO+JSON', [geojson], geojson],
      ['application/geo+json;q=0, */*', [geojson], null],
      ['*/*;q=0', [geojson], null],
      ['text/html', [geojson], null],
      ['application/xml', [geojson], null],
      ['garbage', [geojson], null],
      ['application/geo+json;q=2', [geojson], null],
      ['application/geo+json;q=abc', [geojson], null],
      ['application/geo+json;q=0.0001', [geojson], null],
      ['*/json', [geojson], null],
      ['application/geo+json;q=0.5, text/html;q=0.9', [geojson], geojson],
      [BROWSER, offers, offers[1]],
      ['application/json', offers, offers[0]],
      ['text/turtle', offers, offers[2]],
      ['text/*', offers, offers[1]],
      ['text/turtle;q=0.5, application/ld+json;q=0.4', offers, offers[2]],
      ['text/html;q=0.3, text/html', offers, offers[1]],
      [['text/turtle;q=0.1', 'application/ld+json'], offers, offers[0]],
      [`${'x/y, '.repeat(200)}text/turtle`, offers, null],
    ];
    for (const [header, list, expected] of cases) assert.equal(negotiateMediaType(header, list), expected, JSON.stringify(header));
  });

  it('answers 406 naming Accept when a feed or a catalogue is asked for as a type it is not', async () => {
    for (const [path, accept, available] of [
      ['/opendata/equipment.geojson', 'text/html', 'application/geo+json'],
      ['/opendata/equipment.geojson', 'application/geo+json;q=0, */*;q=1', 'application/geo+json'],
      ['/opendata/equipment.geojson', 'image/png', 'application/geo+json'],
      ['/opendata/catalog.jsonld', 'text/turtle', 'application/ld+json'],
      ['/opendata/catalog.ttl', 'application/ld+json', 'text/turtle'],
      ['/opendata/datasets/equipment', 'text/html', 'application/ld+json'],
      ['/opendata/', 'image/png', 'application/ld+json, text/html, text/turtle'],
      ['/opendata/equipment.geojson', '\u00ff\u00fe;;;,,,', 'application/geo+json'],
    ]) {
      const response = await rawRequest(`${base}${path}`, { accept });
      assert.equal(response.status, 406, `${path} ${accept}`);
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
      const problem = JSON.parse(response.body.toString());
      assert.equal(problem.code, 'NOT_ACCEPTABLE');
      assert.equal(problem.field, 'Accept');
      assert.ok(problem.detail.includes(available), problem.detail);
    }
    for (const accept of ['application/json', 'application/*', '*/*', 'application/geo+json', 'application/geo+json;q=0.1, text/html']) {
      const response = await rawRequest(`${base}/opendata/equipment.geojson?kind=BUS_STOP`, { accept });
      assert.equal(response.status, 200, accept);
      assert.match(String(response.headers['content-type']), /^application\/geo\+json/);
    }
    // A bad parameter is reported as such whatever Accept says.
    const both = await rawRequest(`${base}/opendata/equipment.geojson?kind=CAMERA`, { accept: 'text/html' });
    assert.equal(both.status, 400);
  });

  it('serves the index page to a browser at /opendata/ and the JSON-LD catalogue to everyone else, varying on Accept', async () => {
    const page = await rawRequest(`${base}/opendata/`, { accept: BROWSER, host: 'evil.example' });
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
    assert.match(String(page.headers.vary), /Accept(?!-)/);
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
    assert.doesNotMatch(String(page.headers['content-security-policy']), /script-src/);
    const html = page.body.toString();
    assert.doesNotMatch(html, /<script|<iframe|<img|<link[^>]+stylesheet|@import|url\(/i, 'no script, frame, image, external style');
    assert.doesNotMatch(html, /src=/i, 'nothing loaded from anywhere');
    assert.doesNotMatch(html, /evil/, 'links from PUBLIC_BASE_URL, never from Host');
    for (const feed of FEEDS) {
      assert.ok(html.includes(`id="${feed.id}"`), `${feed.id} has its section`);
      assert.ok(html.includes(`href="https://data.chalons-agglo.example/hub${feed.path}"`), `${feed.id}'s download link`);
      assert.ok(html.includes(`https://data.chalons-agglo.example/hub/opendata/datasets/${feed.id}`), `${feed.id}'s description link`);
    }
    assert.ok(html.includes('https://data.chalons-agglo.example/hub/opendata/catalog.ttl'));
    // The map of the equipment: the territory and a sample of its positions, inline.
    const section = html.slice(html.indexOf('id="equipment"'), html.indexOf('</section>', html.indexOf('id="equipment"')));
    const svg = /<svg[\s\S]*?<\/svg>/.exec(section)?.[0];
    assert.ok(svg, 'an inline SVG map');
    const dots = (svg.match(/h0/g) ?? []).length;
    assert.ok(dots >= 100 && dots <= 400, `a sample of the equipment's positions: ${dots}`);
    assert.match(svg, /<path d="M[\d. L]+Z"/, 'the territory outline');

    // The same ETag cycle as every representation; the HTML and the JSON-LD are different representations.
    const again = await rawRequest(`${base}/opendata/`, { accept: BROWSER, 'if-none-match': String(page.headers.etag) });
    assert.equal(again.status, 304);
    for (const [accept, type] of [
      [undefined, /^application\/ld\+json/],
      ['*/*', /^application\/ld\+json/],
      ['application/json', /^application\/ld\+json/],
      ['application/ld+json', /^application\/ld\+json/],
      ['text/turtle', /^text\/turtle/],
    ] as const) {
      const response = await rawRequest(`${base}/opendata`, accept ? { accept } : {});
      assert.equal(response.status, 200, String(accept));
      assert.match(String(response.headers['content-type']), type, String(accept));
      assert.match(String(response.headers.vary), /Accept(?!-)/);
      assert.notEqual(response.headers.etag, page.headers.etag);
    }
    const catalog = await rawRequest(`${base}/opendata/`);
    assert.equal(JSON.parse(catalog.body.toString())['@type'], 'dcat:Catalog', 'the catalogue stays at /opendata for programs');
    // HEAD and compression apply to the page too.
    const head = await rawRequest(`${base}/opendata/`, { accept: 'text/html', 'accept-encoding': 'br' }, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-encoding'], 'br');
    assert.equal(head.body.length, 0);
    // The catalogue's own URLs do not vary on Accept: they are one type each.
    assert.doesNotMatch(String((await rawRequest(`${base}/opendata/catalog.jsonld`)).headers.vary), /Accept(?!-)/);
  });

  it('escapes whatever a feed declares on the index page', async () => {
    const hostile: Feed = {
      ...(equipmentGeojson as Feed),
      id: 'hostile',
      path: '/opendata/hostile.geojson',
      dataset: { ...equipmentGeojson.dataset, title: '<script>alert(1)</script> & "quotes"', description: "</p><img src=x onerror=alert(1)> l'été", keywords: ['<b>'] },
    };
    const page = await serveOpendata({ pool, feeds: [hostile] });
    try {
      const html = (await rawRequest(`${page.base}/opendata/`, { accept: 'text/html' })).body.toString();
      assert.doesNotMatch(html, /<script|<img|<b>/);
      assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;'));
      assert.ok(html.includes('l&#39;été'));
    } finally {
      await page.close();
    }
  });

  it("sends each feed's own Cache-Control max-age, the handler's default otherwise, and refuses a bad one at start-up", async () => {
    const both = await serveOpendata({ pool, feeds: [equipmentGeojson as Feed, fast] });
    try {
      const slow = await rawRequest(`${both.base}/opendata/equipment.geojson?kind=BUS_STOP`);
      assert.equal(slow.headers['cache-control'], 'public, max-age=300');
      const quick = await rawRequest(`${both.base}/opendata/fast/equipment.geojson?kind=BUS_STOP`);
      assert.equal(quick.status, 200);
      assert.equal(quick.headers['cache-control'], 'public, max-age=10');
      const revalidated = await rawRequest(`${both.base}/opendata/fast/equipment.geojson?kind=BUS_STOP`, { 'if-none-match': String(quick.headers.etag) });
      assert.equal(revalidated.status, 304);
      assert.equal(revalidated.headers['cache-control'], 'public, max-age=10', 'a 304 carries the same freshness');
      assert.equal((await rawRequest(`${both.base}/opendata/catalog.jsonld`)).headers['cache-control'], 'public, max-age=300');
      const page = (await rawRequest(`${both.base}/opendata/`, { accept: 'text/html' })).body.toString();
      assert.match(page, /réutilisables 10 s/);
    } finally {
      await both.close();
    }
    for (const maxAgeSeconds of [-1, 1.5, 86_401, Number.NaN]) {
      assert.throws(() => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000', feeds: [{ ...fast, maxAgeSeconds }] }), (error: Error) => {
        assert.ok(error instanceof FeedRegistrationError);
        assert.match(error.message, /fast-equipment.*maxAgeSeconds/);
        return true;
      });
    }
    assert.throws(
      () => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000', feeds: [{ ...fast, path: '/opendata/catalog.ttl' }] }),
      /catalog\.ttl/,
    );
    assert.throws(
      () => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000', feeds: [{ ...fast, dataset: { ...fast.dataset, temporal: { start: '2026-02-30' } } }] }),
      /temporal/,
    );
  });

  it('answers an unknown dataset with a 404 that lists the valid paths, whatever the path holds', async () => {
    for (const path of [
      '/opendata/nothing.geojson',
      '/opendata/equipment.geojson/extra',
      '/opendata/gtfs-rt/../nothing',
      `/opendata/${'a'.repeat(5_000)}`,
      '/opendata/%3Cscript%3Ealert(1)%3C%2Fscript%3E',
      '/opendata/%00%ff',
    ]) {
      const response = await rawRequest(`${base}${path}`);
      assert.equal(response.status, 404, path.slice(0, 60));
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
      assert.equal(response.headers['access-control-allow-origin'], '*');
      const problem = JSON.parse(response.body.toString());
      assert.equal(problem.code, 'NOT_FOUND');
      assert.equal(problem.title, 'Not Found');
      assert.deepEqual(problem.validPaths, ['/opendata/', '/opendata/catalog.jsonld', '/opendata/catalog.ttl', ...FEEDS.map((feed) => feed.path)]);
      for (const feed of FEEDS) assert.ok(problem.detail.includes(feed.path), `${feed.path} in the detail`);
      assert.ok(problem.detail.length < 400 + FEEDS.length * 80, 'the detail does not echo a long path');
    }
    const dataset = await rawRequest(`${base}/opendata/datasets/nothing`);
    assert.equal(dataset.status, 404);
    const problem = JSON.parse(dataset.body.toString());
    assert.deepEqual(problem.validPaths, FEEDS.map((feed) => `/opendata/datasets/${feed.id}`));
    assert.match(problem.detail, /equipment/);
    // Parameters of the catalogue's documents are refused by name, repeated or not.
    for (const query of ['x=1', 'format=ttl&format=ttl']) {
      const response = await rawRequest(`${base}/opendata/catalog.ttl?${query}`);
      assert.equal(response.status, 400);
      assert.equal(JSON.parse(response.body.toString()).field, query.split('=')[0]);
    }
  });
});
