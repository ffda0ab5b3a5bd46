/**
 * References are unique within a collectivity ignoring case: `lp-cha-00001` is refused
 * beside `LP-CHA-00001`, sequentially and in a race, with BAD_USER_INPUT naming
 * `input.reference` and nothing written. The migration that brings the rule names existing
 * duplicates instead of failing on them blindly.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MIGRATIONS_DIR } from '@connecte/shared/migrate';
import { CENTRE, startEquipment, type EquipmentTestEnv } from './fixtures.js';

const MIGRATION = '20261126000000_equipment_reference_case_insensitive';

describe('equipment reference uniqueness', () => {
  let env: EquipmentTestEnv;
  let operator: string;
  let operatorFagnieres: string;

  before(async () => {
    env = await startEquipment();
    operator = await env.token(['operator'], ['chalons']);
    operatorFagnieres = await env.token(['operator'], ['fagnieres']);
  });
  after(() => env?.close());

  const register = (reference: string, token = operator, collectivityId = 'chalons') =>
    env.gql('mutation($input: RegisterEquipmentInput!) { registerEquipment(input: $input) { id reference } }', {
      variables: { input: { kind: 'WIFI_HOTSPOT', reference, collectivityId, location: collectivityId === 'chalons' ? CENTRE : { lon: 4.305, lat: 48.96 } } },
      token,
    });
  const written = async () =>
    (await env.pool.query(`SELECT (SELECT count(*) FROM equipment)::int AS equipment, (SELECT count(*) FROM events)::int AS events`)).rows[0];

  it('refuses a reference that differs from another only in case, naming input.reference, writing nothing', async () => {
    const first = await register('WIFI-CHA-00001');
    assert.equal(first.errors, undefined, JSON.stringify(first.errors));
    // The fixtures' references are upper case (`LP-0001`): a lower-case twin is refused too.
    for (const twin of ['wifi-cha-00001', 'Wifi-Cha-00001', ' WIFI-CHA-00001 ', 'lp-0001']) {
      const before = await written();
      const response = await register(twin);
      assert.equal(response.errors?.[0].extensions?.code, 'BAD_USER_INPUT', JSON.stringify(response));
      assert.equal(response.errors?.[0].extensions?.field, 'input.reference');
      assert.match(response.errors![0].message, /^input\.reference: is already used by (WIFI-CHA-00001|LP-0001) in chalons \(references are unique ignoring case\)$/);
      assert.equal(response.data, null);
      assert.deepEqual(await written(), before, `nothing written for ${twin}`);
    }
    // Another collectivity may use it.
    const elsewhere = await register('wifi-cha-00001', operatorFagnieres, 'fagnieres');
    assert.equal(elsewhere.errors, undefined, JSON.stringify(elsewhere.errors));
  });

  it('lets exactly one of concurrent registrations differing only in case win', async () => {
    const before = await written();
    const variants = ['WIFI-RACE-CASE', 'wifi-race-case', 'Wifi-Race-Case', 'wIFI-rACE-cASE', 'WIFI-race-CASE', 'wifi-RACE-case'];
    const results = await Promise.all(variants.map((reference) => register(reference)));
    const winners = results.filter((r) => !r.errors);
    assert.equal(winners.length, 1, JSON.stringify(results));
    for (const loser of results.filter((r) => r.errors)) {
      assert.equal(loser.errors![0].extensions?.code, 'BAD_USER_INPUT', JSON.stringify(loser));
      assert.equal(loser.errors![0].extensions?.field, 'input.reference');
    }
    assert.deepEqual(await written(), { equipment: before.equipment + 1, events: before.events + 1 }, 'one row and one event');
  });

  it('refuses hostile references with a reason, never a 500', async () => {
    for (const [reference, reason] of [
      ['WIFI\u0000NUL', /NUL/],
      ['   ', /must not be empty/],
      ['W'.repeat(65), /at most 64 characters/],
    ] as const) {
      const response = await register(reference);
      assert.notEqual(response.status, 500);
      assert.equal(response.errors?.[0].extensions?.code, 'BAD_USER_INPUT', JSON.stringify(response));
      assert.equal(response.errors?.[0].extensions?.field, 'input.reference');
      assert.match(response.errors![0].message, reason);
    }
  });

  it('the migration names references that already collide ignoring case instead of failing blindly', async () => {
    const sql = readFileSync(path.join(MIGRATIONS_DIR, MIGRATION, 'migration.sql'), 'utf8');
    const client = await env.pool.connect();
    try {
      await client.query('BEGIN');
      // Back to the state before the migration, with a collision it would have to refuse.
      await client.query(`DROP INDEX equipment_collectivity_id_lower_reference_key`);
      await client.query(`CREATE UNIQUE INDEX equipment_collectivity_id_reference_key ON equipment (collectivity_id, reference)`);
      await client.query(`INSERT INTO equipment (id, kind, reference, collectivity_id) VALUES ('wifi-twin', 'WIFI_HOTSPOT', 'lp-0002', 'chalons')`);
      await assert.rejects(client.query(sql), /differ only in case must be renamed before this migration: chalons: LP-0002, lp-0002/);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
    // Without collisions it applies (inside a transaction that is rolled back).
    const clean = await env.pool.connect();
    try {
      await clean.query('BEGIN');
      await clean.query(`DROP INDEX equipment_collectivity_id_lower_reference_key`);
      await clean.query(`CREATE UNIQUE INDEX equipment_collectivity_id_reference_key ON equipment (collectivity_id, reference)`);
      await clean.query(sql);
      const { rows } = await clean.query(`SELECT indexdef FROM pg_indexes WHERE tablename = 'equipment' AND indexname LIKE '%reference%'`);
      assert.deepEqual(rows.map((r) => r.indexdef), [
        'CREATE UNIQUE INDEX equipment_collectivity_id_lower_reference_key ON public.equipment USING btree (collectivity_id, lower(reference))',
      ]);
    } finally {
      await clean.query('ROLLBACK');
      clean.release();
    }
  });
});
