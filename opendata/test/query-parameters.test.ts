/**
 * Query parameters of the open data: `kind` is a list (repeating it adds kinds), every other
 * parameter is single-valued and refused when repeated; hostile values are a 400 naming the
 * parameter, never a 500 and never silently read as something else.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { serveOpendata, type ServedOpendata } from './serve.js';

describe('open data: query parameters', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    served = await serveOpendata({ pool });
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  const geojson = (query: string) => fetch(`${served.base}/opendata/equipment.geojson?${query}`);
  const kindsOf = async (response: Response) => {
    assert.equal(response.status, 200);
    const features = ((await response.json()) as any).features as any[];
    return { count: features.length, kinds: new Set(features.map((f) => f.properties.kind)) };
  };

  it('reads a repeated kind as a list: kind=A&kind=B is kind=A,B, whatever the order or case', async () => {
    const repeated = await geojson('kind=BUS_STOP&kind=LIGHT_POINT');
    const listed = await geojson('kind=LIGHT_POINT,BUS_STOP');
    const mixed = await geojson('kind=light_point&kind=BUS_STOP,LIGHT_POINT');
    const etag = listed.headers.get('etag');
    assert.equal(repeated.headers.get('etag'), etag, 'one filter, one representation');
    assert.equal(mixed.headers.get('etag'), etag);
    const a = await kindsOf(repeated);
    const b = await kindsOf(listed);
    assert.deepEqual([...a.kinds].sort(), ['BUS_STOP', 'LIGHT_POINT']);
    assert.equal(a.count, b.count);
    assert.equal((await kindsOf(mixed)).count, b.count);
    const { rows } = await pool.query<{ count: string }>(`SELECT count(*) FROM opendata_equipment WHERE kind IN ('BUS_STOP', 'LIGHT_POINT')`);
    assert.equal(a.count, Number(rows[0].count), 'both kinds, not only the last one');
  });

  it('refuses a repeated single-valued parameter with 400 naming it', async () => {
    for (const [query, field] of [
      ['collectivity=chalons&collectivity=fagnieres', 'collectivity'],
      ['commune=51108&commune=51108', 'commune'],
      ['bbox=4.36,48.95,4.37,48.96&bbox=4.2,48.85,4.53,49.07', 'bbox'],
      ['kind=BUS_STOP&commune=51108&commune=51504', 'commune'],
    ]) {
      const response = await geojson(query);
      assert.equal(response.status, 400, query);
      const problem = (await response.json()) as any;
      assert.equal(problem.code, 'BAD_USER_INPUT');
      assert.equal(problem.field, field, query);
      assert.match(problem.detail, /given 2 times/);
    }
  });

  it('answers hostile values with 400 naming the parameter, never 500', async () => {
    const huge = 'A'.repeat(10_000);
    for (const [query, field] of [
      ['bbox=NaN,48.9,4.4,49', 'bbox'],
      ['bbox=4.3,48.9,1e309,49', 'bbox'],
      ['bbox=-Infinity,48.9,4.4,49', 'bbox'],
      ['bbox=0x4,48.9,4.4,49', 'bbox'],
      ['bbox=,48.9,4.4,49', 'bbox'],
      ['bbox=%20,48.9,4.4,49', 'bbox'],
      ['bbox=4.3,48.9,4.4,49,', 'bbox'],
      ['bbox=4.3%00,48.9,4.4,49', 'bbox'],
      ['bbox=', 'bbox'],
      ['bbox=-181,48.9,4.4,49', 'bbox'],
      ['kind=LIGHT_POINT%00', 'kind'],
      ['kind=', 'kind'],
      ['kind=LIGHT_POINT,,BUS_STOP', 'kind'],
      [`kind=${huge}`, 'kind'],
      ['collectivity=chalons%00', 'collectivity'],
      ['commune=51108%00', 'commune'],
      ['commune=5110８', 'commune'],
      ['%00=1', '\u0000'],
      ['kind=BUS_STOP&limit=10', 'limit'],
    ]) {
      const response = await geojson(query);
      assert.equal(response.status, 400, `${query.slice(0, 60)} → ${response.status}`);
      const problem = (await response.json()) as any;
      assert.equal(problem.code, 'BAD_USER_INPUT');
      assert.equal(problem.field, field, query.slice(0, 60));
      assert.ok(problem.detail.length < 600 && JSON.stringify(problem).length < 1000, 'the problem does not echo a huge value back');
    }
  });

  it('refuses parameters on the catalogue and the dataset descriptions, which take none', async () => {
    for (const path of ['/opendata/catalog.jsonld?page=2', '/opendata/datasets/equipment?kind=BUS_STOP', '/opendata?x%00=1']) {
      const response = await fetch(`${served.base}${path}`);
      assert.equal(response.status, 400, path);
      assert.equal(((await response.json()) as any).code, 'BAD_USER_INPUT');
    }
  });
});
