import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gql, startService, type TestService } from '@connecte/testkit';
import { territoryResourcesFor } from '../src/context.js';

const HOTEL_DE_VILLE = { lon: 4.363, lat: 48.9565 };
const PARIS = { lon: 2.3522, lat: 48.8566 };

let server: TestService;
before(async () => {
  server = await startService('territory');
});
after(() => server?.close());

/** The data of a response that must have no errors. */
async function data<T = any>(query: string, variables?: Record<string, unknown>): Promise<T> {
  const response = await gql<T>(server.url, query, { variables });
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data!;
}

async function rejection(query: string, variables?: Record<string, unknown>) {
  const response = await gql(server.url, query, { variables });
  assert.ok(response.errors?.length, `expected an error, got ${JSON.stringify(response.data)}`);
  return response.errors[0];
}

test('collectivities lists the four collectivities of the territory', async () => {
  const { collectivities } = await data('{ collectivities { id name } }');
  assert.deepEqual(
    collectivities.map((c: { id: string }) => c.id).sort(),
    ['chalons', 'chalons-agglo', 'fagnieres', 'saint-martin-sur-le-pre'],
  );
  assert.ok(collectivities.every((c: { name: string }) => c.name.length > 0));
});

test('a collectivity knows its kind and governs its communes; the agglomeration its members', async () => {
  const { fagnieres, agglo } = await data(`{
    fagnieres: collectivity(id: "fagnieres") { kind inseeCode communes { inseeCode name inProject } }
    agglo: collectivity(id: "chalons-agglo") { kind inseeCode communes { inseeCode agglomerationMember } }
  }`);
  assert.equal(fagnieres.kind, 'COMMUNE');
  assert.deepEqual(fagnieres.communes, [{ inseeCode: '51242', name: 'Fagnières', inProject: true }]);
  assert.equal(agglo.kind, 'AGGLOMERATION');
  assert.equal(agglo.inseeCode, null);
  assert.ok(agglo.communes.length >= 3);
  assert.ok(agglo.communes.every((c: { agglomerationMember: boolean }) => c.agglomerationMember));
  assert.equal((await data('{ collectivity(id: "nowhere") { id } }')).collectivity, null);
});

test('locate at the Hôtel de Ville of Châlons finds the commune, a district and a street', async () => {
  const { locate } = await data(
    `query ($lon: Float!, $lat: Float!) {
      locate(lon: $lon, lat: $lat) {
        lon lat inTerritory
        commune { inseeCode name collectivity { id } }
        district { id name commune { inseeCode } }
        nearestStreet { distanceMeters street { id name commune { inseeCode } geometry } }
      }
    }`,
    HOTEL_DE_VILLE,
  );
  assert.equal(locate.inTerritory, true);
  assert.equal(locate.lon, HOTEL_DE_VILLE.lon);
  assert.deepEqual(locate.commune, { inseeCode: '51108', name: 'Châlons-en-Champagne', collectivity: { id: 'chalons' } });
  assert.ok(locate.district, 'a district');
  assert.equal(locate.district.commune.inseeCode, '51108');
  assert.ok(locate.nearestStreet, 'a street');
  assert.ok(locate.nearestStreet.distanceMeters >= 0 && locate.nearestStreet.distanceMeters <= 500);
  assert.equal(locate.nearestStreet.street.geometry.type, 'LineString');
});

test('locate in Paris is outside the territory', async () => {
  const { locate } = await data(
    'query ($lon: Float!, $lat: Float!) { locate(lon: $lon, lat: $lat) { inTerritory commune { inseeCode } district { id } nearestStreet { distanceMeters } } }',
    PARIS,
  );
  assert.deepEqual(locate, { inTerritory: false, commune: null, district: null, nearestStreet: null });
});

test('locate rejects coordinates that are not a position, naming the argument', async () => {
  for (const [args, field] of [
    ['lon: 4.36, lat: 95', 'lat'],
    ['lon: 4.36, lat: -90.5', 'lat'],
    ['lon: 181, lat: 48.9', 'lon'],
  ] as const) {
    const error = await rejection(`{ locate(${args}) { inTerritory } }`);
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT', args);
    assert.equal(error.extensions?.field, field, args);
  }
});

test('the territory: 30 communes, their bounding box, outline and area', async () => {
  const query = '{ territory { communeCount bbox areaKm2 geometry } }';
  const { territory } = await data(query);
  assert.equal(territory.communeCount, 30);
  const [minLon, minLat, maxLon, maxLat] = territory.bbox;
  assert.ok(minLon < HOTEL_DE_VILLE.lon && HOTEL_DE_VILLE.lon < maxLon);
  assert.ok(minLat < HOTEL_DE_VILLE.lat && HOTEL_DE_VILLE.lat < maxLat);
  assert.match(territory.geometry.type, /^(Multi)?Polygon$/);
  assert.ok(territory.areaKm2 > 300 && territory.areaKm2 < 1000, `${territory.areaKm2} km²`);

  const before = territoryResourcesFor(server.db).store.queryCount;
  assert.deepEqual((await data(query)).territory, territory);
  assert.equal(territoryResourcesFor(server.db).store.queryCount, before, 'the outline is computed once');
});

test('a commune: flags, boundary, centroid and area', async () => {
  const { chalons, sarry, none } = await data(`{
    chalons: commune(inseeCode: "51108") { name inProject agglomerationMember geometry centroid areaKm2 collectivity { id } }
    sarry: commune(inseeCode: "51525") { name inProject collectivity { id } }
    none: commune(inseeCode: "75056") { name }
  }`);
  assert.equal(chalons.inProject, true);
  assert.equal(chalons.geometry.type, 'MultiPolygon');
  assert.equal(chalons.centroid.type, 'Point');
  assert.ok(chalons.areaKm2 > 20 && chalons.areaKm2 < 40, `${chalons.areaKm2} km²`);
  assert.deepEqual(sarry, { name: 'Sarry', inProject: false, collectivity: null });
  assert.equal(none, null);
});

test('communes filter on project and agglomeration membership', async () => {
  const { all, project, outside } = await data(`{
    all: communes { totalCount }
    project: communes(filter: { inProject: true }) { totalCount edges { node { inseeCode } } }
    outside: communes(filter: { inProject: false, agglomerationMember: true }) { totalCount }
  }`);
  assert.equal(all.totalCount, 30);
  assert.deepEqual(project.edges.map((e: any) => e.node.inseeCode), ['51108', '51242', '51504']);
  assert.equal(outside.totalCount + project.totalCount, 30);
});

/** Walks a connection page by page and checks it yields each item once, in order. */
async function walk(field: string, args: string, size: number): Promise<{ ids: string[]; totalCount: number }> {
  const ids: string[] = [];
  let cursor: string | null = null;
  let totalCount = 0;
  let hasPreviousPage = false;
  for (let page = 0; page < 100; page++) {
    const result: any = await data(
      `query ($after: String) { list: ${field}(${args} first: ${size}, after: $after) {
        totalCount pageInfo { hasNextPage hasPreviousPage endCursor } edges { cursor node { id: ${field === 'communes' ? 'inseeCode' : 'id'} } }
      } }`,
      { after: cursor },
    );
    const list = result.list;
    totalCount = list.totalCount;
    assert.equal(list.pageInfo.hasPreviousPage, hasPreviousPage);
    assert.ok(list.edges.length <= size);
    ids.push(...list.edges.map((edge: any) => edge.node.id));
    if (!list.pageInfo.hasNextPage) break;
    assert.equal(list.edges.length, size);
    assert.equal(list.pageInfo.endCursor, list.edges.at(-1).cursor);
    cursor = list.pageInfo.endCursor;
    hasPreviousPage = true;
  }
  return { ids, totalCount };
}

test('pagination walks every list once, page by page', async () => {
  for (const [field, args, size] of [
    ['communes', '', 7],
    ['districts', '', 3],
    ['streets', 'filter: { inseeCode: "51108" }', 100],
  ] as const) {
    const { ids, totalCount } = await walk(field, args, size);
    assert.equal(ids.length, totalCount, field);
    assert.equal(new Set(ids).size, ids.length, `${field}: no item twice`);
    assert.ok(totalCount > size, `${field}: more than one page`);
  }
  const { communes } = await data('{ communes(first: 0) { edges { cursor } pageInfo { hasNextPage endCursor } totalCount } }');
  assert.deepEqual(communes, { edges: [], pageInfo: { hasNextPage: true, endCursor: null }, totalCount: 30 });
});

test('streets filter by name and by distance from a point', async () => {
  const { named, near, far } = await data(
    `query ($lon: Float!, $lat: Float!) {
      named: streets(filter: { nameContains: "MARNE" }) { edges { node { name } } }
      near: streets(filter: { near: { lon: $lon, lat: $lat, radiusMeters: 300 } }) { totalCount edges { node { commune { inseeCode } } } }
      far: streets(filter: { near: { lon: 2.3522, lat: 48.8566, radiusMeters: 1000 } }) { totalCount }
    }`,
    HOTEL_DE_VILLE,
  );
  assert.ok(named.edges.length > 0);
  assert.ok(named.edges.every((e: any) => /marne/i.test(e.node.name)));
  assert.ok(near.totalCount > 0);
  assert.ok(near.edges.every((e: any) => e.node.commune.inseeCode === '51108'));
  assert.equal(far.totalCount, 0);
  const { literal } = await data('{ literal: streets(filter: { nameContains: "%" }) { totalCount } }');
  assert.equal(literal.totalCount, 0, '% is not a wildcard');
});

test('bad list arguments are rejected with the field at fault', async () => {
  const { communes } = await data('{ communes(first: 1) { pageInfo { endCursor } } }');
  const communeCursor = communes.pageInfo.endCursor;
  for (const [query, field] of [
    ['{ communes(first: 1001) { totalCount } }', 'first'],
    ['{ communes(first: -1) { totalCount } }', 'first'],
    ['{ streets(first: 1001) { totalCount } }', 'first'],
    ['{ communes(after: "not-a-cursor") { totalCount } }', 'after'],
    [`{ districts(after: "${communeCursor}") { totalCount } }`, 'after'],
    ['{ commune(inseeCode: "51108") { districts(first: 1001) { totalCount } } }', 'first'],
    ['{ commune(inseeCode: "51108") { streets(after: "bad") { totalCount } } }', 'after'],
    ['{ streets(filter: { near: { lon: 4.36, lat: 95, radiusMeters: 10 } }) { totalCount } }', 'filter.near.lat'],
    ['{ streets(filter: { near: { lon: 4.36, lat: 48.9, radiusMeters: 0 } }) { totalCount } }', 'filter.near.radiusMeters'],
  ] as const) {
    const error = await rejection(query);
    assert.equal(error.extensions?.code, 'BAD_USER_INPUT', query);
    assert.equal(error.extensions?.field, field, query);
    assert.match(error.message, new RegExp(`^${field.replaceAll('.', '\\.')}: `), query);
  }
});

test('entities resolve by their keys for the other subgraphs', async () => {
  const { _entities } = await data(
    `query ($representations: [_Any!]!) {
      _entities(representations: $representations) {
        ... on Collectivity { id name }
        ... on Commune { inseeCode name }
        ... on District { id name }
        ... on Street { id name }
        ... on ServiceCategory { code competence }
      }
    }`,
    {
      representations: [
        { __typename: 'Collectivity', id: 'fagnieres' },
        { __typename: 'Commune', inseeCode: '51504' },
        { __typename: 'ServiceCategory', code: 'WASTE_COLLECTION' },
        { __typename: 'Commune', inseeCode: '00000' },
      ],
    },
  );
  assert.deepEqual(_entities, [
    { id: 'fagnieres', name: 'Fagnières' },
    { inseeCode: '51504', name: 'Saint-Martin-sur-le-Pré' },
    { code: 'WASTE_COLLECTION', competence: 'AGGLOMERATION' },
    null,
  ]);
});

describe('the service categories', () => {
  test('each has a competence', async () => {
    const { serviceCategories } = await data('{ serviceCategories { code label competence } }');
    const byCode = Object.fromEntries(serviceCategories.map((c: any) => [c.code, c.competence]));
    assert.equal(byCode.STREET_LIGHTING, 'MUNICIPAL');
    assert.equal(byCode.ROADS, 'MUNICIPAL');
    assert.equal(byCode.BUS_NETWORK, 'AGGLOMERATION');
    assert.equal(byCode.WASTE_COLLECTION, 'AGGLOMERATION');
  });
});
