import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GraphQLError } from 'graphql';
import { decideCompetence, type CompetenceQuestion } from '../src/territory-service.js';
import { gql, startService, type TestService } from '@connecte/testkit';

/** Points well inside each commune (on their surface). */
const IN = {
  chalons: { lon: 4.363, lat: 48.9565 },
  fagnieres: { lon: 4.3121, lat: 48.9492 },
  saintMartin: { lon: 4.3536, lat: 48.989 },
  saintMemmie: { lon: 4.4149, lat: 48.9541 },
  paris: { lon: 2.3522, lat: 48.8566 },
};

const QUERY = `query ($category: String!, $lon: Float!, $lat: Float!) {
  competentCollectivity(category: $category, lon: $lon, lat: $lat) {
    category { code } competence collectivity { id } commune { inseeCode name }
  }
}`;

let server: TestService;
before(async () => {
  server = await startService('territory');
});
after(() => server?.close());

const ask = (category: string, at: { lon: number; lat: number }) => gql(server.url, QUERY, { variables: { category, ...at } });

describe('competentCollectivity', () => {
  test('a municipal category in a project commune goes to that commune', async () => {
    for (const [at, collectivity, insee] of [
      [IN.fagnieres, 'fagnieres', '51242'],
      [IN.chalons, 'chalons', '51108'],
      [IN.saintMartin, 'saint-martin-sur-le-pre', '51504'],
    ] as const) {
      const { data, errors } = await ask('STREET_LIGHTING', at);
      assert.equal(errors, undefined, JSON.stringify(errors));
      assert.equal(data.competentCollectivity.competence, 'MUNICIPAL');
      assert.equal(data.competentCollectivity.collectivity.id, collectivity);
      assert.equal(data.competentCollectivity.commune.inseeCode, insee);
      assert.equal(data.competentCollectivity.category.code, 'STREET_LIGHTING');
    }
  });

  test('an agglomeration category goes to chalons-agglo, in a project commune or a neighbour', async () => {
    for (const at of [IN.saintMemmie, IN.fagnieres]) {
      const { data, errors } = await ask('WASTE_COLLECTION', at);
      assert.equal(errors, undefined, JSON.stringify(errors));
      assert.equal(data.competentCollectivity.competence, 'AGGLOMERATION');
      assert.equal(data.competentCollectivity.collectivity.id, 'chalons-agglo');
    }
    const { data } = await ask('BUS_NETWORK', IN.saintMemmie);
    assert.equal(data.competentCollectivity.commune.name, 'Saint-Memmie');
  });

  test('a municipal category in a neighbour is refused, naming category and the commune', async () => {
    const { data, errors } = await ask('STREET_LIGHTING', IN.saintMemmie);
    assert.equal(data, null);
    assert.equal(errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.equal(errors?.[0].extensions?.field, 'category');
    assert.match(errors![0].message, /Saint-Memmie/);
    assert.match(errors![0].message, /Fagnières/);
  });

  test('a point outside the territory is refused, naming lon', async () => {
    for (const category of ['WASTE_COLLECTION', 'STREET_LIGHTING']) {
      const { errors } = await ask(category, IN.paris);
      assert.equal(errors?.[0].extensions?.code, 'BAD_USER_INPUT');
      assert.equal(errors?.[0].extensions?.field, 'lon');
      assert.match(errors![0].message, /outside the territory/);
    }
  });

  test('an unknown category is refused, listing the valid codes', async () => {
    const { errors } = await ask('GRAFFITI', IN.chalons);
    assert.equal(errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.equal(errors?.[0].extensions?.field, 'category');
    assert.match(errors![0].message, /STREET_LIGHTING/);
    assert.match(errors![0].message, /WASTE_COLLECTION/);
  });

  test('coordinates that are not a position are refused before anything else', async () => {
    const { errors } = await ask('GRAFFITI', { lon: 4.36, lat: 95 });
    assert.equal(errors?.[0].extensions?.field, 'lat');
  });
});

describe('decideCompetence (the rule the tickets domain mirrors)', () => {
  const question: CompetenceQuestion = {
    category: 'ROADS',
    categories: [
      { code: 'ROADS', label: 'Roads', competence: 'MUNICIPAL' },
      { code: 'BUS_NETWORK', label: 'Buses', competence: 'AGGLOMERATION' },
    ],
    commune: { inseeCode: '51242', name: 'Fagnières', collectivityId: 'fagnieres' },
    projectCommunes: [{ name: 'Châlons-en-Champagne' }, { name: 'Fagnières' }, { name: 'Saint-Martin-sur-le-Pré' }],
    agglomerationId: 'chalons-agglo',
    lon: 4.31,
    lat: 48.95,
  };
  const neighbour = { inseeCode: '51525', name: 'Sarry', collectivityId: null };

  test('decides without I/O', () => {
    assert.equal(decideCompetence(question).collectivityId, 'fagnieres');
    assert.equal(decideCompetence({ ...question, category: 'BUS_NETWORK', commune: neighbour }).collectivityId, 'chalons-agglo');
  });

  test('refuses with coded errors', () => {
    const refusal = (q: CompetenceQuestion, field: string) =>
      assert.throws(() => decideCompetence(q), (error: unknown) => {
        assert.ok(error instanceof GraphQLError);
        assert.equal(error.extensions.code, 'BAD_USER_INPUT');
        assert.equal(error.extensions.field, field);
        return true;
      });
    refusal({ ...question, commune: neighbour }, 'category');
    refusal({ ...question, commune: null }, 'lon');
    refusal({ ...question, category: 'NOPE' }, 'category');
  });
});
