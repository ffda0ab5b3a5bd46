import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gql, startService, type TestService } from '@connecte/testkit';
import { territoryResourcesFor } from '../src/context.js';

let server: TestService;
before(async () => {
  server = await startService('territory');
});
after(() => server?.close());

/** Runs a query without errors and returns how many SQL statements it cost. */
async function statementsFor(query: string, variables?: Record<string, unknown>): Promise<{ data: any; statements: number }> {
  const before = territoryResourcesFor(server.db).store.queryCount;
  const response = await gql(server.url, query, { variables });
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return { data: response.data, statements: territoryResourcesFor(server.db).store.queryCount - before };
}

test('nested relations cost one statement per relation, whatever the number of parents', async () => {
  const { data, statements } = await statementsFor(`{
    collectivities {
      id
      communes {
        name
        collectivity { id }
        districts { totalCount edges { node { name commune { inseeCode } } } }
        streets(first: 5) { totalCount edges { node { name commune { name } } } }
      }
    }
  }`);
  const communes = data.collectivities.flatMap((c: any) => c.communes);
  assert.ok(communes.length >= 30, `${communes.length} communes reached`);
  assert.ok(communes.some((c: any) => c.districts.edges.length > 0));
  assert.ok(communes.some((c: any) => c.streets.edges.length > 0));
  // collectivities, communes of the 4, their collectivity, districts pages, district counts,
  // streets pages, street counts: 7 (the commune of each district or street is already loaded).
  assert.ok(statements <= 7, `${statements} statements`);
});

test('entity references from the gateway are batched', async () => {
  const r = ['51108', '51242', '51504', '51506', '51525'].map((inseeCode) => ({ __typename: 'Commune', inseeCode }));
  const { data, statements } = await statementsFor(
    `query ($r: [_Any!]!) { _entities(representations: $r) { ... on Commune { name geometry collectivity { name } } } }`,
    { r },
  );
  assert.equal(data._entities.length, 5);
  // communes, their boundaries, their collectivities
  assert.ok(statements <= 3, `${statements} statements`);
});

test('locate costs one statement plus one per kind of entity selected', async () => {
  const { statements } = await statementsFor(`{
    locate(lon: 4.363, lat: 48.9565) {
      commune { name } district { name } nearestStreet { distanceMeters street { name } }
    }
  }`);
  assert.ok(statements <= 4, `${statements} statements`);
});
