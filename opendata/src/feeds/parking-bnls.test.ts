/**
 * The BNLS CSV and the parking GeoJSON: the CSV is valid against the schema-stationnement
 * TableSchema (checked with the rules the schema uses, the checker itself checked on the schema's
 * own valid and invalid examples), the GeoJSON carries live availability; both are served at
 * their URLs.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { serveOpendata, type ServedOpendata } from '../../test/serve.js';
import { parseCsv, validateTable, type TableSchema } from '../../test/tableschema.js';
import { QueryParameterError } from '../parameters.js';
import type { Feed } from '../feed.js';
import { BNLS_SEPARATOR, osmOpeningHours, parkingBnls, siretOfSiren } from './parking-bnls.js';
import { parkingGeojson, parseParkingSelection } from './parking-geojson.js';

const reference = (file: string) => readFileSync(new URL(`../../reference/parking-fr/${file}`, import.meta.url), 'utf8');
const schema = JSON.parse(reference('schema.json')) as TableSchema;

describe('open-data feeds: BNLS car parks and parking GeoJSON', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;

  async function publish<P>(feed: Feed<P>, params: P): Promise<{ tag: string; body: string }> {
    const client = await pool.connect();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const version = await feed.version(client, params);
      const body = await feed.render(client, params, version);
      await client.query('COMMIT');
      return { tag: version.tag, body: body as string };
    } finally {
      client.release();
    }
  }

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 3 });
    served = await serveOpendata({ pool });
    await pool.query(
      `INSERT INTO parking_occupancy (equipment_id, collectivity_id, capacity, occupied, reported, source, status, observed_at) VALUES
         ('pf-chalons-00004', 'chalons', 260, 60, 60, 'COUNTER', 'OK', now() - interval '1 minute'),
         ('pf-chalons-00005', 'chalons', 240, 100, 100, 'COUNTER', 'OK', now() - interval '3 hours')`,
    );
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it('the TableSchema checker accepts the schema’s valid example and finds every error of the invalid one', () => {
    assert.deepEqual(validateTable(schema, reference('exemple-valide.csv'), ','), []);
    const errors = validateTable(schema, reference('exemple-invalide.csv'), ',');
    assert.deepEqual(errors.map((e) => e.field).sort(), ['id', 'num_siret', 'tarif_pmr']);
    // Required, types, enums, bounds, header and primary key.
    const header = reference('exemple-valide.csv').split('\n')[0];
    const line = reference('exemple-valide.csv').split('\n')[1];
    const cells = parseCsv(line, ',')[0];
    const broken = (changes: Record<number, string>) => [header, cells.map((c, i) => (i in changes ? changes[i] : c)).map((c) => (c.includes(',') ? `"${c}"` : c)).join(',')].join('\n');
    const fieldsOf = (csv: string) => validateTable(schema, csv, ',').map((e) => e.field);
    assert.deepEqual(fieldsOf(broken({ 1: '' })), ['nom'], 'required');
    assert.deepEqual(fieldsOf(broken({ 7: '32.5' })), ['nb_places'], 'integer');
    assert.deepEqual(fieldsOf(broken({ 6: 'oui' })), ['gratuit'], 'boolean');
    assert.deepEqual(fieldsOf(broken({ 5: 'public' })), ['type_usagers'], 'enum');
    assert.deepEqual(fieldsOf(broken({ 18: '181' })), ['Xlong'], 'maximum');
    assert.deepEqual(fieldsOf(broken({ 21: '-1' })), ['tarif_1h'], 'minimum');
    assert.deepEqual(fieldsOf(broken({ 4: 'not a uri' })), ['url'], 'format uri');
    assert.deepEqual(fieldsOf(broken({ 16: '2m' })), ['hauteur_max'], 'pattern');
    assert.deepEqual(fieldsOf(`${header.replace('nom,', '')}\n`), ['nom'], 'header');
    assert.deepEqual(fieldsOf(`${broken({})}\n${line}`), ['id'], 'primary key');
  });

  it('publishes a BNLS CSV valid against schema-stationnement, off-street facilities only', async () => {
    assert.equal(parkingBnls.parse(new URLSearchParams()), null);
    assert.throws(() => parkingBnls.parse(new URLSearchParams('format=json')), (e: unknown) => e instanceof QueryParameterError && e.field === 'format');
    const { body } = await publish(parkingBnls, null);
    assert.deepEqual(validateTable(schema, body, BNLS_SEPARATOR), []);
    assert.ok(body.endsWith('\r\n') && !body.startsWith('\ufeff'));
    const [header, ...rows] = parseCsv(body, BNLS_SEPARATOR);
    assert.deepEqual(header, schema.fields.map((f) => f.name));
    assert.equal(rows.length, 6, 'the 6 off-street car parks; the 2 on-street sectors are out of BNLS’s scope');
    const byName = new Map(rows.map((r) => [r[1], Object.fromEntries(header.map((h, i) => [h, r[i]]))]));
    const hdv = byName.get('Parking Hôtel de Ville')!;
    assert.equal(hdv.id, '51108-P-001');
    assert.equal(hdv.insee, '51108');
    assert.equal(hdv.nb_places, '320');
    assert.equal(hdv.type_ouvrage, 'ouvrage');
    assert.equal(hdv.gratuit, 'false');
    assert.equal(hdv.num_siret, siretOfSiren('215101080'));
    assert.match(hdv.num_siret, /^2151010800001\d$/);
    assert.deepEqual([hdv.tarif_1h, hdv.tarif_2h, hdv.tarif_3h, hdv.tarif_4h, hdv.tarif_24h], ['1.70', '3.20', '4.60', '5.90', '14.00']);
    assert.equal(hdv.Xlong, '4.365000');
    assert.equal(hdv.Ylat, '48.956600');
    assert.match(hdv.info, /Mo-Sa 06:30-24:00; Su 08:00-21:00.*30 premières minutes gratuites/);
    // République: 4 h covers 3 h; the open-ended day price covers 24 h. Tissier: nothing covers 24 h.
    const republique = byName.get('Parking de la République')!;
    assert.deepEqual([republique.tarif_3h, republique.tarif_24h, republique.type_ouvrage], ['4.00', '6.00', 'enclos_en_surface']);
    assert.equal(byName.get('Parking Tissier')!.tarif_24h, '');
  });

  it('writes opening hours in OSM syntax', () => {
    assert.equal(osmOpeningHours([]), '24/7');
    assert.equal(osmOpeningHours([{ days: [1, 2, 3, 5, 6], opens: '07:00', closes: '20:00' }, { days: [7], opens: '08:00', closes: '12:00' }]), 'Mo-We,Fr,Sa 07:00-20:00; Su 08:00-12:00');
  });

  it('reads the GeoJSON’s parameters, refusing bad ones by name', () => {
    assert.deepEqual(parseParkingSelection(new URLSearchParams('')), { collectivityId: null, types: null });
    assert.equal(JSON.stringify(parseParkingSelection(new URLSearchParams('type=surface,UNDERGROUND&type=SURFACE'))), JSON.stringify({ collectivityId: null, types: ['SURFACE', 'UNDERGROUND'] }));
    for (const [query, field] of [['type=BUS', 'type'], ['collectivity=paris', 'collectivity'], ['collectivity=chalons&collectivity=fagnieres', 'collectivity'], ['limit=1', 'limit']]) {
      assert.throws(() => parseParkingSelection(new URLSearchParams(query)), (e: unknown) => e instanceof QueryParameterError && e.field === field, query);
    }
  });

  it('publishes the facilities with live availability as GeoJSON', async () => {
    const { body, tag } = await publish(parkingGeojson, parseParkingSelection(new URLSearchParams('')));
    const collection = JSON.parse(body);
    assert.equal(collection.type, 'FeatureCollection');
    assert.equal(collection.features.length, 8);
    const byId = new Map(collection.features.map((f: any) => [f.id, f]));
    const jard = byId.get('pf-chalons-00004') as any;
    assert.deepEqual(jard.geometry, { type: 'Point', coordinates: [4.3585, 48.9528] });
    assert.equal(jard.properties.availability, 'OK');
    assert.equal(jard.properties.freeSpaces, 200);
    assert.equal(jard.properties.occupancyRate, 0.231);
    assert.equal(jard.properties.open, true);
    const gare = byId.get('pf-chalons-00005') as any;
    assert.equal(gare.properties.availability, 'STALE');
    assert.equal(gare.properties.freeSpaces, null);
    assert.equal((byId.get('pf-chalons-00001') as any).properties.availability, 'UNKNOWN');
    const underground = JSON.parse((await publish(parkingGeojson, parseParkingSelection(new URLSearchParams('type=UNDERGROUND')))).body);
    assert.deepEqual(underground.features.map((f: any) => f.id), ['pf-chalons-00001', 'pf-chalons-00002']);
    await pool.query(`UPDATE parking_occupancy SET occupied = 61, reported = 61, observed_at = now(), updated_at = now() WHERE equipment_id = 'pf-chalons-00004'`);
    assert.notEqual((await publish(parkingGeojson, parseParkingSelection(new URLSearchParams('')))).tag, tag);
  });

  it('serves the five parking and DATEX II documents at their URLs, and names a bad parameter', async () => {
    for (const [path, type] of [
      ['/opendata/datex2/parking-table.xml', 'application/xml'],
      ['/opendata/datex2/parking-status.xml', 'application/xml'],
      ['/opendata/datex2/situations.xml', 'application/xml'],
      ['/opendata/parking/bnls.csv', 'text/csv'],
      ['/opendata/geojson/parking-facilities.geojson', 'application/geo+json'],
    ]) {
      // (An explicit Accept: the router's negotiation is another helper's, in progress.)
      const response = await fetch(`${served.base}${path}`, { headers: { accept: type } });
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get('content-type'), `${type}; charset=utf-8`);
      assert.ok(response.headers.get('etag'));
      assert.ok((await response.text()).length > 100);
    }
    const bad = await fetch(`${served.base}/opendata/geojson/parking-facilities.geojson?type=BUS`, { headers: { accept: 'application/geo+json' } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { field: string }).field, 'type');
  });
});
