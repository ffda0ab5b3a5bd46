/**
 * The equipment feed on its own, without HTTP: its parameters select what it says, equal
 * selections read the same, its version moves exactly when the selected rows do, and what it
 * renders is the RFC 7946 collection of those rows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { QueryParameterError } from '../parameters.js';
import { equipmentGeojson, parseEquipmentFilter } from './equipment-geojson.js';

const parse = (query: string) => parseEquipmentFilter(new URLSearchParams(query));

describe('open-data feed: equipment GeoJSON', () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
  });
  after(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('reads no parameters as the whole dataset, and equal selections as equal JSON', () => {
    assert.deepEqual(parse(''), { kinds: null, collectivityId: null, inseeCode: null, bbox: null });
    const listed = JSON.stringify(parse('kind=LIGHT_POINT,BUS_STOP&commune=51108'));
    assert.equal(JSON.stringify(parse('commune=51108&kind=bus_stop&kind=LIGHT_POINT&kind=BUS_STOP')), listed);
    assert.deepEqual(parse('bbox=4.36, 48.95 ,4.37,48.96').bbox, [4.36, 48.95, 4.37, 48.96]);
  });

  it('refuses a bad parameter with an error naming it', () => {
    for (const [query, field] of [
      ['kind=CAMERA', 'kind'],
      ['kind=BUS', 'kind'],
      ['collectivity=paris', 'collectivity'],
      ['commune=5110', 'commune'],
      ['bbox=4.4,48.9,4.3,49', 'bbox'],
      ['bbox=1&bbox=2', 'bbox'],
      ['limit=10', 'limit'],
    ]) {
      assert.throws(() => parse(query), (error: unknown) => error instanceof QueryParameterError && error.field === field, query);
    }
  });

  it('renders the selected rows as a FeatureCollection in a stable order', async () => {
    const client = await pool.connect();
    try {
      const selection = parse('kind=WIFI_HOTSPOT');
      const version = await equipmentGeojson.version(client, selection);
      const body = await equipmentGeojson.render(client, selection, version);
      assert.equal(typeof body, 'string', 'a text feed');
      const collection = JSON.parse(body as string);
      assert.equal(collection.type, 'FeatureCollection');
      const { rows } = await client.query<{ id: string }>(`SELECT id FROM opendata_equipment WHERE kind = 'WIFI_HOTSPOT' ORDER BY id`);
      assert.ok(rows.length > 0);
      assert.deepEqual(collection.features.map((f: { id: string }) => f.id), rows.map((r) => r.id));
      assert.ok(collection.features.every((f: any) => f.geometry.type === 'Point' && f.properties.kind === 'WIFI_HOTSPOT'));
    } finally {
      client.release();
    }
  });

  it('moves its version when a selected row changes, and only then', async () => {
    const versionOf = async (query: string) => {
      const client = await pool.connect();
      try {
        return await equipmentGeojson.version(client, parse(query));
      } finally {
        client.release();
      }
    };
    const hotspots = await versionOf('kind=WIFI_HOTSPOT');
    const stops = await versionOf('kind=BUS_STOP');
    const whole = await versionOf('');
    await pool.query(`UPDATE equipment SET updated_at = now() WHERE id = (SELECT id FROM equipment WHERE kind = 'WIFI_HOTSPOT' ORDER BY id LIMIT 1)`);
    const changed = await versionOf('kind=WIFI_HOTSPOT');
    assert.notEqual(changed.tag, hotspots.tag, 'a selected row changed');
    assert.ok(changed.lastModified! > (hotspots.lastModified ?? new Date(0)));
    assert.equal((await versionOf('kind=BUS_STOP')).tag, stops.tag, 'no bus stop changed');
    assert.notEqual((await versionOf('')).tag, whole.tag, 'the whole dataset changed');
    // A row leaving the view (decommissioned) changes the version even though no remaining row is newer.
    const before = await versionOf('kind=WIFI_HOTSPOT');
    await pool.query(`UPDATE equipment SET status = 'DECOMMISSIONED' WHERE id = (SELECT id FROM equipment WHERE kind = 'WIFI_HOTSPOT' ORDER BY id DESC LIMIT 1)`);
    assert.notEqual((await versionOf('kind=WIFI_HOTSPOT')).tag, before.tag);
  });
});
