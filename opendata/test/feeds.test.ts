/**
 * The router and the catalogue are generic over the registered feeds: a second feed, binary like
 * GTFS-RT, is served, cached, compressed and catalogued from its declaration alone; a feed that
 * cannot be published as declared (an id or a path registered twice…) stops start-up naming it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { brotliDecompressSync } from 'node:zlib';
import pg from 'pg';
import { createOpendataHandler, FEEDS, type Feed } from '@connecte/opendata';
import { LICENCE_OUVERTE } from '@connecte/opendata/catalog';
import { FeedRegistrationError } from '@connecte/opendata/feed';
import { equipmentGeojson } from '@connecte/opendata/feeds/equipment-geojson';
import { checkParameters, QueryParameterError } from '@connecte/opendata/parameters';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from './serve.js';

/** Readings as 4-byte big-endian records: bytes that are not UTF-8, as a protobuf feed's are. */
const readings: Feed<{ min: number }> = {
  id: 'readings',
  path: '/opendata/readings.bin',
  contentType: 'application/x-protobuf',
  dataset: {
    title: 'Relevés de test',
    description: 'Un flux binaire de test.',
    keywords: ['test'],
    licence: LICENCE_OUVERTE,
    format: 'protobuf',
    frequency: 'continuous',
  },
  parse(params) {
    checkParameters(params, ['min']);
    const min = params.get('min');
    if (min !== null && !/^\d{1,9}$/.test(min)) throw new QueryParameterError('min', 'must be a whole number');
    return { min: min === null ? 0 : Number(min) };
  },
  async version(db, { min }) {
    const { rows } = await db.query<{ tag: string; last: Date | null }>(
      `SELECT count(*) || '|' || coalesce(sum(value * 31 + id), 0) AS tag, max(updated_at) AS last FROM feed_test_reading WHERE value >= $1`,
      [min],
    );
    return { tag: rows[0].tag, lastModified: rows[0].last };
  },
  async render(db, { min }) {
    const { rows } = await db.query<{ value: string }>('SELECT value FROM feed_test_reading WHERE value >= $1 ORDER BY id', [min]);
    const bytes = new Uint8Array(rows.length * 4);
    const view = new DataView(bytes.buffer);
    rows.forEach((row, i) => view.setUint32(i * 4, Number(row.value)));
    return bytes;
  },
};

const expectedBytes = (values: number[]) => {
  const buffer = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => buffer.writeUInt32BE(value, i * 4));
  return buffer;
};

describe('open data: feeds behind one interface', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    await pool.query(`CREATE TABLE feed_test_reading (id int PRIMARY KEY, value bigint NOT NULL, updated_at timestamptz(3) NOT NULL DEFAULT now())`);
    await pool.query(`INSERT INTO feed_test_reading (id, value, updated_at) VALUES (1, 4294967295, '2026-01-02T03:04:05Z'), (2, 255, '2026-01-02T03:04:05Z'), (3, 65280, '2026-01-01T00:00:00Z')`);
    // The catalogue's mechanics on two feeds (the registry's own feeds are the next test's).
    served = await serveOpendata({ pool, feeds: [equipmentGeojson, readings] });
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it('registers every published dataset at its stable URL', () => {
    const byPath = (a: string[], b: string[]) => (a[1] < b[1] ? -1 : 1);
    assert.deepEqual(
      FEEDS.map((feed) => [feed.id, feed.path]).sort(byPath),
      [
        ['datex2-parking-status', '/opendata/datex2/parking-status.xml'],
        ['datex2-parking-table', '/opendata/datex2/parking-table.xml'],
        ['datex2-situations', '/opendata/datex2/situations.xml'],
        ['equipment', '/opendata/equipment.geojson'],
        ['air-quality', '/opendata/geojson/air-quality.geojson'],
        ['bus-stops', '/opendata/geojson/bus-stops.geojson'],
        ['citizen-reports', '/opendata/geojson/citizen-reports.geojson'],
        ['energy-savings', '/opendata/geojson/energy-savings.geojson'],
        ['light-points', '/opendata/geojson/light-points.geojson'],
        ['parking-facilities', '/opendata/geojson/parking-facilities.geojson'],
        ['traffic-signals', '/opendata/geojson/traffic-signals.geojson'],
        ['wifi-hotspots', '/opendata/geojson/wifi-hotspots.geojson'],
        ['gtfs-rt-alerts', '/opendata/gtfs-rt/alerts.pb'],
        ['gtfs-rt-trip-updates', '/opendata/gtfs-rt/trip-updates.pb'],
        ['gtfs-rt-vehicle-positions', '/opendata/gtfs-rt/vehicle-positions.pb'],
        ['gtfs', '/opendata/gtfs/gtfs.zip'],
        ['parking-bnls', '/opendata/parking/bnls.csv'],
      ].sort(byPath),
    );
  });

  it('serves a binary feed byte for byte, with its own content type, ETag, 304 and compression', async () => {
    const url = `${served.base}/opendata/readings.bin`;
    const identity = await rawRequest(url);
    assert.equal(identity.status, 200);
    assert.equal(identity.headers['content-type'], 'application/x-protobuf', 'no charset on bytes');
    assert.ok(identity.body.equals(expectedBytes([4294967295, 255, 65280])), identity.body.toString('hex'));
    assert.equal(identity.headers['last-modified'], new Date('2026-01-02T03:04:05Z').toUTCString());
    const again = await rawRequest(url, { 'if-none-match': String(identity.headers.etag) });
    assert.equal(again.status, 304);
    const br = await rawRequest(url, { 'accept-encoding': 'br' });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.ok(brotliDecompressSync(br.body).equals(identity.body));
    const selected = await rawRequest(`${url}?min=256`);
    assert.ok(selected.body.equals(expectedBytes([4294967295, 65280])));
    assert.notEqual(selected.headers.etag, identity.headers.etag);
    await pool.query(`UPDATE feed_test_reading SET value = 7, updated_at = now() WHERE id = 2`);
    const changed = await rawRequest(url, { 'if-none-match': String(identity.headers.etag) });
    assert.equal(changed.status, 200, 'a new version is a new ETag');
    assert.ok(changed.body.equals(expectedBytes([4294967295, 7, 65280])));
  });

  it("refuses the feed's bad parameters with a 400 problem naming them", async () => {
    for (const [query, field] of [['min=-1', 'min'], ['min=1&min=2', 'min'], ['kind=BUS_STOP', 'kind']]) {
      const response = await rawRequest(`${served.base}/opendata/readings.bin?${query}`);
      assert.equal(response.status, 400, query);
      assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
      const problem = JSON.parse(response.body.toString());
      assert.equal(problem.code, 'BAD_USER_INPUT');
      assert.equal(problem.field, field, query);
    }
  });

  it('catalogues every registered feed from its declaration, each with its own modified', async () => {
    const first = await rawRequest(`${served.base}/opendata/catalog.jsonld`);
    const catalog = JSON.parse(first.body.toString());
    const datasets = catalog['dcat:dataset'] as any[];
    assert.deepEqual(datasets.map((d) => d['dct:identifier']), ['equipment', 'readings']);
    const [equipment, reading] = datasets;
    const { rows } = await pool.query<{ latest: Date }>('SELECT max(updated_at) AS latest FROM opendata_equipment');
    assert.equal(equipment['dct:modified']['@value'], rows[0].latest.toISOString());
    const { rows: readingRows } = await pool.query<{ latest: Date }>('SELECT max(updated_at) AS latest FROM feed_test_reading');
    assert.equal(reading['dct:modified']['@value'], readingRows[0].latest.toISOString());
    assert.equal(reading['dct:title'], 'Relevés de test');
    const distribution = reading['dcat:distribution'][0];
    assert.equal(distribution['dcat:mediaType']['@id'], 'https://www.iana.org/assignments/media-types/application/x-protobuf');
    assert.equal(distribution['dct:format'], 'protobuf');
    assert.equal(distribution['dcat:downloadURL']['@id'], `${served.base}/opendata/readings.bin`);
    assert.equal(equipment['dcat:distribution'][0]['dcat:mediaType']['@id'], 'https://www.iana.org/assignments/media-types/application/geo+json');
    for (const link of [reading['@id'], distribution['dcat:downloadURL']['@id']]) assert.equal((await rawRequest(link)).status, 200, link);
    const description = JSON.parse((await rawRequest(`${served.base}/opendata/datasets/readings`)).body.toString());
    assert.equal(description['dct:modified']['@value'], readingRows[0].latest.toISOString());

    // The catalogue's version covers every feed: a change to the second one alone is a new catalogue.
    await pool.query(`UPDATE feed_test_reading SET value = value + 1, updated_at = now() WHERE id = 3`);
    const after = await rawRequest(`${served.base}/opendata/catalog.jsonld`, { 'if-none-match': String(first.headers.etag) });
    assert.equal(after.status, 200);
    const { rows: latest } = await pool.query<{ latest: Date }>('SELECT max(updated_at) AS latest FROM feed_test_reading');
    assert.equal(JSON.parse(after.body.toString())['dcat:dataset'][1]['dct:modified']['@value'], latest[0].latest.toISOString());
    assert.equal(after.headers['last-modified'], latest[0].latest.toUTCString(), 'Last-Modified is the latest of every feed');
  });

  describe('a feed that cannot be published as declared is refused at start', () => {
    const start = (feeds: readonly Feed[]) => () => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000', feeds });
    const cases: [string, Feed[], RegExp][] = [
      ['the same feed twice', [equipmentGeojson, equipmentGeojson], /'equipment'.*id 'equipment' is registered twice/],
      ['two feeds under one id', [equipmentGeojson, { ...readings, id: 'equipment' }], /id 'equipment' is registered twice \(also for \/opendata\/equipment\.geojson\)/],
      ['two feeds under one path', [equipmentGeojson, { ...readings, path: '/opendata/equipment.geojson' }], /'readings'.*path \/opendata\/equipment\.geojson is registered twice \(also by feed 'equipment'\)/],
      ['the catalogue path', [{ ...readings, path: '/opendata/catalog.jsonld' }], /catalogue's own URLs/],
      ['a path under the descriptions', [{ ...readings, path: '/opendata/datasets/readings' }], /catalogue's own URLs/],
      ['a path outside /opendata', [{ ...readings, path: '/readings.bin' }], /path must be \/opendata\/<name>/],
      ['a trailing slash', [{ ...readings, path: '/opendata/readings/' }], /path must be/],
      ['an id that is no URL segment', [{ ...readings, id: 'Readings 2' }], /'Readings 2'.*id must be/],
      ['a charset other than UTF-8', [{ ...readings, contentType: 'text/csv; charset=latin1' }], /charset latin1/],
      ['a malformed content type', [{ ...readings, contentType: 'protobuf' }], /content type 'protobuf'/],
      ['a feed with no whole dataset', [{ ...readings, parse: () => { throw new QueryParameterError('day', 'is required'); } }], /'readings'.*without parameters must select the whole dataset.*day: is required/],
    ];
    for (const [what, feeds, message] of cases) {
      it(what, () => assert.throws(start(feeds), (error: unknown) => error instanceof FeedRegistrationError && message.test(error.message)));
    }
    it('two distinct feeds are accepted', () => assert.doesNotThrow(start([equipmentGeojson, readings])));
  });
});
