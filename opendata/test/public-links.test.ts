/**
 * The links the catalogue publishes: built from PUBLIC_BASE_URL, never from the `Host` header;
 * forwarded host and scheme believed only from TRUSTED_PROXIES (exact addresses, IPv4 and IPv6
 * CIDR ranges); and every one of them dereferences.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createOpendataHandler, FEEDS } from '@connecte/opendata';
import { LICENCE_OUVERTE } from '@connecte/opendata/catalog';
import { TrustedProxies } from '@connecte/shared/client-address';
import { createTestDatabase, type TestDatabase, startHub } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from './serve.js';

/** Vocabularies and registries the catalogue points to on purpose; any other foreign host is a leak. */
const EXTERNAL = [
  'http://publications.europa.eu/resource/authority/frequency/',
  'https://www.iana.org/assignments/media-types/',
  LICENCE_OUVERTE,
  'http://publications.europa.eu/resource/authority/language/',
  'http://purl.org/adms/publishertype/',
  // The standards feeds declare they follow (`dataset.conformsTo`).
  ...FEEDS.flatMap((feed) => feed.dataset.conformsTo ?? []),
];

/** Every absolute URL in a JSON-LD document (`@id`s and plain values alike), outside `@context`. */
function urlsIn(node: unknown, found = new Set<string>()): Set<string> {
  if (typeof node === 'string') {
    if (/^https?:\/\//.test(node)) found.add(node);
  } else if (Array.isArray(node)) {
    for (const item of node) urlsIn(item, found);
  } else if (node && typeof node === 'object') {
    // `@context` maps prefixes to vocabularies: those are not links the catalogue publishes.
    for (const [key, value] of Object.entries(node)) if (key !== '@context') urlsIn(value, found);
  }
  return found;
}

const catalogLinks = async (base: string, headers: Record<string, string> = {}) => {
  const response = await rawRequest(`${base}/opendata/catalog.jsonld`, headers);
  assert.equal(response.status, 200);
  return { response, urls: [...urlsIn(JSON.parse(response.body.toString()))] };
};

describe('open data: public links', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let direct: ServedOpendata;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    direct = await serveOpendata({ pool });
  });
  after(async () => {
    await direct?.close();
    await pool?.end();
    await db?.drop();
  });

  it('every URL the catalogue emits answers 200, dataset ids with their own DCAT description', async () => {
    const { urls } = await catalogLinks(direct.base);
    const ours = urls.filter((url) => url.startsWith(`${direct.base}/`));
    assert.ok(ours.some((url) => url.endsWith('/opendata/datasets/equipment')), 'the dataset @id is among them');
    for (const url of urls) {
      assert.ok(ours.includes(url) || EXTERNAL.some((prefix) => url.startsWith(prefix)), `unexpected link ${url}`);
    }
    const seen = new Set<string>();
    const queue = [...ours];
    while (queue.length) {
      const url = queue.shift()!;
      if (seen.has(url)) continue;
      seen.add(url);
      // The index page (the catalogue's foaf:homepage, each dataset's landing page `…/opendata/#id`) is for browsers.
      const page = new URL(url);
      if (page.pathname === '/opendata/') {
        const html = await fetch(url, { headers: { accept: 'text/html' } });
        assert.equal(html.status, 200, url);
        assert.match(html.headers.get('content-type')!, /^text\/html/);
        const text = await html.text();
        if (page.hash) assert.ok(text.includes(`id="${page.hash.slice(1)}"`), `the index page has the anchor of ${url}`);
        continue;
      }
      const response = await fetch(url);
      assert.equal(response.status, 200, url);
      if (/ld\+json/.test(response.headers.get('content-type') ?? '')) {
        const document = (await response.json()) as any;
        assert.equal(document['@id'], url, 'a document describes the resource it is fetched as');
        // A description's own links must dereference too.
        for (const link of urlsIn(document)) if (link.startsWith(`${direct.base}/`)) queue.push(link);
      } else {
        await response.arrayBuffer();
      }
    }
    const description = (await (await fetch(`${direct.base}/opendata/datasets/equipment`)).json()) as any;
    assert.equal(description['@type'], 'dcat:Dataset');
    assert.equal(description['dct:identifier'], 'equipment');
    assert.ok(description['@context'].dcat);
    assert.equal(description['dcat:distribution'][0]['dcat:downloadURL']['@id'], `${direct.base}/opendata/equipment.geojson`);
    assert.equal((await fetch(`${direct.base}/opendata/datasets/unknown`)).status, 404);
  });

  it('ignores a forged Host header: links come from PUBLIC_BASE_URL', async () => {
    const published = await serveOpendata({ pool, publicUrl: 'https://data.chalons-agglo.example/hub/' });
    try {
      const attempts: Record<string, string>[] = [{ host: 'evil.example' }, { host: 'evil.example', 'x-forwarded-host': 'evil.example', forwarded: 'host=evil.example' }, {}];
      for (const headers of attempts) {
        const { urls } = await catalogLinks(published.base, headers);
        const ours = urls.filter((url) => !EXTERNAL.some((prefix) => url.startsWith(prefix)));
        assert.ok(ours.length >= 3);
        for (const url of ours) assert.ok(url.startsWith('https://data.chalons-agglo.example/hub/opendata/'), url);
      }
      const description = await rawRequest(`${published.base}/opendata/datasets/equipment`, { host: 'evil.example' });
      assert.doesNotMatch(description.body.toString(), /evil/);
    } finally {
      await published.close();
    }
  });

  it('on the gateway: links from PUBLIC_BASE_URL whatever the Host, forwarded host only from TRUSTED_PROXIES', async () => {
    const hub = await startHub(db.url, { PUBLIC_BASE_URL: 'https://data.chalons-agglo.example', TRUSTED_PROXIES: '10.0.0.0/8' });
    const trustingLoopback = await startHub(db.url, { PUBLIC_BASE_URL: 'https://data.chalons-agglo.example', TRUSTED_PROXIES: '127.0.0.0/8,::1' });
    try {
      const forged = { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' };
      const { urls } = await catalogLinks(hub.gateway.origin, forged);
      const ours = urls.filter((url) => !EXTERNAL.some((prefix) => url.startsWith(prefix)));
      assert.ok(ours.length >= 3);
      for (const url of ours) assert.ok(url.startsWith('https://data.chalons-agglo.example/opendata/'), url);
      const proxied = await catalogLinks(trustingLoopback.gateway.origin, { 'x-forwarded-host': 'opendata.partner.example', 'x-forwarded-proto': 'https' });
      assert.ok(proxied.urls.includes('https://opendata.partner.example/opendata/datasets/equipment'), proxied.urls.join(' '));
    } finally {
      await hub.close();
      await trustingLoopback.close();
    }
  });

  it('believes Forwarded / X-Forwarded-Host / -Proto only from a trusted proxy, and only a plain host', async () => {
    const trusted = await serveOpendata({ pool, publicUrl: 'http://localhost:4000', trustedProxies: ['10.0.0.0/8', '127.0.0.1/32'] });
    const untrusted = await serveOpendata({ pool, publicUrl: 'http://localhost:4000', trustedProxies: ['10.0.0.0/8', '::1'] });
    const datasetId = async (base: string, headers: Record<string, string>) => {
      const response = await rawRequest(`${base}/opendata/catalog.jsonld`, headers);
      return JSON.parse(response.body.toString())['dcat:dataset'][0]['@id'] as string;
    };
    try {
      const cases: [Record<string, string>, string][] = [
        [{ 'x-forwarded-host': 'data.example', 'x-forwarded-proto': 'https' }, 'https://data.example'],
        [{ 'x-forwarded-host': 'evil.example, data.example:8443', 'x-forwarded-proto': 'http, https' }, 'https://data.example:8443'],
        [{ forwarded: 'for=192.0.2.1;host=evil.example, for=10.1.2.3;host="data.example";proto=https' }, 'https://data.example'],
        [{ forwarded: 'host=data.example;proto=https', 'x-forwarded-host': 'evil.example' }, 'https://data.example'],
        [{ 'x-forwarded-host': 'DATA.Example:443', 'x-forwarded-proto': 'https' }, 'https://data.example'],
        [{ 'x-forwarded-host': 'evil.example/path', 'x-forwarded-proto': 'https' }, 'https://localhost:4000'],
        [{ 'x-forwarded-host': 'user@evil.example' }, 'http://localhost:4000'],
        [{ 'x-forwarded-host': 'data.example:99999' }, 'http://localhost:4000'],
        [{ 'x-forwarded-host': 'data.example', 'x-forwarded-proto': 'javascript' }, 'http://data.example'],
        [{ forwarded: 'host=data.example;proto=https, garbage' }, 'http://localhost:4000'],
        [{ host: 'evil.example' }, 'http://localhost:4000'],
      ];
      for (const [headers, origin] of cases) {
        assert.equal(await datasetId(trusted.base, headers), `${origin}/opendata/datasets/equipment`, `trusted: ${JSON.stringify(headers)}`);
        assert.equal(await datasetId(untrusted.base, headers), 'http://localhost:4000/opendata/datasets/equipment', `untrusted: ${JSON.stringify(headers)}`);
      }
      const varied = await rawRequest(`${trusted.base}/opendata/catalog.jsonld`);
      assert.match(String(varied.headers.vary), /Accept-Encoding/);
      assert.match(String(varied.headers.vary), /Forwarded/);
      assert.match(String(varied.headers.vary), /X-Forwarded-Host/);
      const a = await rawRequest(`${trusted.base}/opendata/catalog.jsonld`, { 'x-forwarded-host': 'a.example' });
      const b = await rawRequest(`${trusted.base}/opendata/catalog.jsonld`, { 'x-forwarded-host': 'b.example' });
      assert.notEqual(a.headers.etag, b.headers.etag, 'documents with different links have different ETags');
      assert.doesNotMatch(String((await rawRequest(`${direct.base}/opendata/catalog.jsonld`)).headers.vary), /Forwarded/, 'no proxy trusted: links depend on no header');
    } finally {
      await trusted.close();
      await untrusted.close();
    }
  });

  it('matches IPv6 peers against IPv6 ranges', async (t) => {
    let v6: ServedOpendata;
    try {
      v6 = await serveOpendata({ pool, publicUrl: 'http://localhost:4000', trustedProxies: ['fd00::/8', '::1/128'] }, '::1');
    } catch {
      return t.skip('no IPv6 loopback on this machine');
    }
    const outside = await serveOpendata({ pool, publicUrl: 'http://localhost:4000', trustedProxies: ['fd00::/8', '127.0.0.1'] }, '::1');
    try {
      const headers = { 'x-forwarded-host': 'data.example' };
      const id = async (base: string) =>
        JSON.parse((await rawRequest(`${base}/opendata/catalog.jsonld`, headers)).body.toString())['dcat:dataset'][0]['@id'];
      assert.equal(await id(v6.base), 'http://data.example/opendata/datasets/equipment');
      assert.equal(await id(outside.base), 'http://localhost:4000/opendata/datasets/equipment');
    } finally {
      await v6.close();
      await outside.close();
    }
  });

  it('reads TRUSTED_PROXIES as exact addresses and CIDR ranges, IPv4-mapped peers included', () => {
    const proxies = new TrustedProxies(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', 'fe80::1']);
    const cases: [string, boolean][] = [
      ['10.200.3.4', true],
      ['11.0.0.1', false],
      ['192.168.1.7', true],
      ['192.168.1.8', false],
      ['::ffff:10.1.1.1', true],
      ['::ffff:192.168.1.7', true],
      ['2001:db8:1::5', true],
      ['2001:db9::5', false],
      ['fe80::1', true],
      ['fe80::2', false],
      ['not-an-address', false],
    ];
    for (const [address, expected] of cases) assert.equal(proxies.includes(address), expected, address);
    assert.equal(new TrustedProxies([]).includes('127.0.0.1'), false);
    for (const entry of ['10.0.0.0/33', '::/129', 'proxy.example', '10.0.0.0/8/1', '10.0.0.0/', '10.0.0.0/x']) {
      assert.throws(() => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000', trustedProxies: [entry] }), /TRUSTED_PROXIES/, entry);
    }
    assert.throws(() => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000/?x=1' }), /PUBLIC_BASE_URL/);
  });
});
