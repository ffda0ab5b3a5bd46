/**
 * The catalogue as data.gouv.fr and DCAT-AP validators read it: every dataset with its
 * licence (Licence Ouverte 2.0), frequency, temporal and spatial coverage, publisher, contact
 * point and a distribution with access and download URL and media type; and `catalog.ttl` is the
 * same RDF graph as `catalog.jsonld`, as an independent JSON-LD processor (jsonld.js) and Turtle
 * parser (N3.js) read them, compared after RDF canonicalisation (RDFC-1.0).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import jsonld from 'jsonld';
import * as N3 from 'n3';
import pg from 'pg';
import { createOpendataHandler, FEEDS, type Feed } from '@connecte/opendata';
import { LICENCE_OUVERTE, PUBLISHED_SINCE } from '@connecte/opendata/catalog';
import { equipmentGeojson } from '@connecte/opendata/feeds/equipment-geojson';
import { TERRITORY_BBOX } from '@connecte/opendata/territory';
import { jsonLdToTurtle } from '@connecte/opendata/turtle';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from './serve.js';

const canonical = (input: object | string) =>
  typeof input === 'string'
    ? jsonld.canonize(input as never, { algorithm: 'RDFC-1.0', inputFormat: 'application/n-quads', format: 'application/n-quads' } as never)
    : jsonld.canonize(input as never, { algorithm: 'RDFC-1.0', format: 'application/n-quads', safe: true } as never);

/** The Turtle's graph, parsed by N3.js, as N-Quads. */
function turtleToNQuads(turtle: string): Promise<string> {
  const quads = new N3.Parser({ format: 'text/turtle' }).parse(turtle);
  const writer = new N3.Writer({ format: 'N-Quads' });
  writer.addQuads(quads);
  return new Promise((resolve, reject) => writer.end((error, result) => (error ? reject(error) : resolve(result))));
}

const sameGraph = async (document: object, turtle: string) => {
  const [fromJsonLd, fromTurtle] = (await Promise.all([canonical(document), canonical(await turtleToNQuads(turtle))])) as unknown as [string, string];
  assert.ok(fromJsonLd.split('\n').length > 5, 'a graph, not an empty document');
  assert.equal(fromTurtle, fromJsonLd);
};

describe('open data: the DCAT-AP catalogue in JSON-LD and Turtle', () => {
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

  it('describes every dataset with what DCAT-AP and data.gouv.fr ask for', async () => {
    const response = await rawRequest(`${base}/opendata/catalog.jsonld`);
    const catalog = JSON.parse(response.body.toString());
    assert.equal(catalog['@type'], 'dcat:Catalog');
    assert.equal(catalog['dct:license']['@id'], LICENCE_OUVERTE);
    assert.equal(catalog['foaf:homepage']['@id'], `${base}/opendata/`);
    assert.equal(catalog['dct:language']['@id'], 'http://publications.europa.eu/resource/authority/language/FRA');
    assert.deepEqual(catalog['dcat:dataset'].map((d: any) => d['dct:identifier']), FEEDS.map((feed) => feed.id));
    for (const dataset of catalog['dcat:dataset']) {
      const id = dataset['dct:identifier'];
      const feed = FEEDS.find((f) => f.id === id)!;
      assert.equal(dataset['@id'], `${base}/opendata/datasets/${id}`);
      assert.ok(dataset['dct:title'] && dataset['dct:description'] && dataset['dcat:keyword'].length, id);
      // Publisher and contact point.
      assert.equal(dataset['dct:publisher']['@type'], 'foaf:Agent');
      assert.ok(dataset['dct:publisher']['foaf:name']);
      assert.equal(dataset['dcat:contactPoint']['@type'], 'vcard:Organization');
      assert.ok(dataset['dcat:contactPoint']['vcard:fn']);
      assert.equal(dataset['dcat:contactPoint']['vcard:hasURL']['@id'], `${base}/opendata/`);
      // Frequency (EU vocabulary) and temporal coverage.
      assert.match(dataset['dct:accrualPeriodicity']['@id'], /^http:\/\/publications\.europa\.eu\/resource\/authority\/frequency\/(CONT|DAILY|WEEKLY|MONTHLY)$/);
      const temporal = dataset['dct:temporal'];
      assert.equal(temporal['@type'], 'dct:PeriodOfTime');
      assert.equal(temporal['dcat:startDate']['@type'], 'xsd:date');
      assert.equal(temporal['dcat:startDate']['@value'], feed.dataset.temporal?.start ?? PUBLISHED_SINCE);
      // Spatial coverage: the territory's outline (closed, counter-clockwise, within its bbox) and its bbox in WKT.
      const spatial = dataset['dct:spatial'];
      assert.equal(spatial['@type'], 'dct:Location');
      const geometry = JSON.parse(spatial['locn:geometry']['@value']);
      assert.equal(geometry.type, 'Polygon');
      const ring: [number, number][] = geometry.coordinates[0];
      assert.ok(ring.length >= 20);
      assert.deepEqual(ring[0], ring.at(-1));
      const [minLon, minLat, maxLon, maxLat] = TERRITORY_BBOX;
      assert.ok(ring.every(([lon, lat]) => lon >= minLon && lon <= maxLon && lat >= minLat && lat <= maxLat));
      let area = 0;
      for (let i = 0; i < ring.length - 1; i++) area += ring[i][0] * ring[i + 1][1] - ring[i + 1][0] * ring[i][1];
      assert.ok(area > 0, 'exterior ring counter-clockwise (RFC 7946 §3.1.6)');
      assert.equal(spatial['dcat:bbox']['@type'], 'gsp:wktLiteral');
      assert.match(spatial['dcat:bbox']['@value'], /^POLYGON\(\(4\.\d+ 48\.\d+, /);
      assert.equal(dataset['dcat:landingPage']['@id'], `${base}/opendata/#${id}`);
      // The distribution.
      const [distribution] = dataset['dcat:distribution'];
      const url = `${base}${feed.path}`;
      assert.equal(distribution['@type'], 'dcat:Distribution');
      assert.equal(distribution['dcat:accessURL']['@id'], url);
      assert.equal(distribution['dcat:downloadURL']['@id'], url);
      assert.equal(distribution['dcat:mediaType']['@id'], `https://www.iana.org/assignments/media-types/${feed.contentType.split(';')[0]}`);
      assert.ok(distribution['dct:format']);
      assert.equal(distribution['dct:license']['@id'], feed.dataset.licence);
      assert.equal(feed.dataset.licence, LICENCE_OUVERTE, `${id} is under Licence Ouverte 2.0`);
    }
  });

  it('serves catalog.ttl as the same RDF graph as catalog.jsonld, with the same caching', async () => {
    const [json, turtle] = await Promise.all([rawRequest(`${base}/opendata/catalog.jsonld`), rawRequest(`${base}/opendata/catalog.ttl`)]);
    assert.equal(turtle.status, 200);
    assert.equal(turtle.headers['content-type'], 'text/turtle; charset=utf-8');
    assert.match(String(turtle.headers['cache-control']), /^public, max-age=\d+$/);
    assert.ok(turtle.headers.etag && turtle.headers.etag !== json.headers.etag);
    assert.equal(turtle.headers['last-modified'], json.headers['last-modified']);
    await sameGraph(JSON.parse(json.body.toString()), turtle.body.toString());
    assert.equal((await rawRequest(`${base}/opendata/catalog.ttl`, { 'if-none-match': String(turtle.headers.etag) })).status, 304);
    // Links from PUBLIC_BASE_URL, whatever Host or X-Forwarded-Host a client (not a trusted proxy) sends.
    const forged = await rawRequest(`${base}/opendata/catalog.ttl`, { host: 'evil.example', 'x-forwarded-host': 'evil.example', forwarded: 'host=evil.example' });
    assert.doesNotMatch(forged.body.toString(), /evil/);
    assert.equal(forged.headers.etag, turtle.headers.etag);
    // /opendata negotiated to Turtle is the same bytes.
    const negotiated = await rawRequest(`${base}/opendata`, { accept: 'text/turtle' });
    assert.equal(negotiated.body.toString(), turtle.body.toString());
  });

  it('writes any text and IRI a feed declares as Turtle that parses to the same graph', async () => {
    const strange: Feed = {
      ...(equipmentGeojson as Feed),
      id: 'strange',
      path: '/opendata/strange.geojson',
      dataset: {
        ...equipmentGeojson.dataset,
        title: 'Guillemets " et \\ barre, tab\tretour\r\nligne, <chevrons> @prefix x: <y> . ; , [ ] ^^ # 🚌 é',
        description: '"""triple""" \'simple\' \u0001\u007f fin',
        keywords: ['a', 'a ', '', '\\u0041'],
        conformsTo: ['https://gtfs.org/documentation/realtime/reference/#message-feedmessage', 'urn:x-test:%C3%A9t%C3%A9;a=b,c'],
        temporal: { start: '2024-01-08', end: '2026-10-30' },
      },
    };
    const tricky = await serveOpendata({ pool, feeds: [strange], contactEmail: 'open.data+catalogue@example.org', publicUrl: 'https://data.example/hub%20x/' });
    try {
      const json = JSON.parse((await rawRequest(`${tricky.base}/opendata/catalog.jsonld`)).body.toString());
      const turtle = (await rawRequest(`${tricky.base}/opendata/catalog.ttl`)).body.toString();
      await sameGraph(json, turtle);
      const [dataset] = json['dcat:dataset'];
      assert.equal(dataset['dcat:contactPoint']['vcard:hasEmail']['@id'], 'mailto:open.data+catalogue@example.org');
      assert.equal(dataset['dct:temporal']['dcat:endDate']['@value'], '2026-10-30');
      assert.equal(dataset['dcat:distribution'][0]['dct:conformsTo'].length, 2);
    } finally {
      await tricky.close();
    }
    // An IRI that is not one stops start-up, naming the feed.
    for (const uri of ['urn:x-test:a b', 'https://x.example/<script>', 'no-scheme', 'https://x.example/"q"']) {
      const bad = { ...strange, dataset: { ...strange.dataset, conformsTo: [uri] } };
      assert.throws(() => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000', feeds: [bad] }), /strange.*absolute IRI/, uri);
    }
    assert.throws(() => jsonLdToTurtle({ '@context': { a: 'http://a/' }, '@id': 'http://x/ y', 'a:b': 'c' }), /not an IRI/);
    // A construct the writer does not know fails loudly rather than publishing another graph.
    assert.throws(() => jsonLdToTurtle({ '@context': { a: 'http://a/' }, '@id': 'http://x/', 'a:b': { '@list': ['x'] } }), /turtle/);
    assert.throws(() => jsonLdToTurtle({ '@context': { a: 'http://a/' }, '@id': 'http://x/', 'a:b': 1.5 }), /whole number/);
    assert.throws(() => jsonLdToTurtle({ '@context': { a: 'http://a/' }, '@id': 'http://x/', title: 'x' }), /neither a compact nor an absolute IRI/);
  });

  it('refuses a contact e-mail that is not one', () => {
    for (const contactEmail of ['not an address', 'a@b', '<a@b.c>', 'a b@c.d']) {
      assert.throws(() => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000', contactEmail }), /OPENDATA_CONTACT_EMAIL/, contactEmail);
    }
  });
});
