/**
 * Bad input and forbidden writes: each gets its code and names the field at fault, never a
 * 500, and nothing is written (equipment rows, their last update and the event log unchanged).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CENTRE, FAGNIERES_POINT, OUTSIDE_TERRITORY, startEquipment, type EquipmentTestEnv, type GraphQLResponse } from './fixtures.js';

describe('bad input', () => {
  let env: EquipmentTestEnv;
  let operatorChalons: string;
  let operatorFagnieres: string;

  before(async () => {
    env = await startEquipment();
    operatorChalons = await env.token(['operator'], ['chalons']);
    operatorFagnieres = await env.token(['operator'], ['fagnieres']);
  });
  after(() => env?.close());

  const snapshot = async () =>
    (
      await env.pool.query(
        `SELECT (SELECT count(*)::int FROM equipment) AS equipment, (SELECT count(*)::int FROM events) AS events,
                (SELECT max(updated_at)::text FROM equipment) AS updated, (SELECT md5(string_agg(e::text, ',' ORDER BY id)) FROM equipment e) AS digest`,
      )
    ).rows[0];

  const expectError = (response: GraphQLResponse, code: string | RegExp, field?: string, message?: RegExp) => {
    assert.ok(response.errors?.length, `an error is expected: ${JSON.stringify(response)}`);
    const [error] = response.errors!;
    if (typeof code === 'string') assert.equal(error.extensions?.code, code, JSON.stringify(error));
    else assert.match(String(error.extensions?.code), code, JSON.stringify(error));
    if (field) assert.equal(error.extensions?.field, field, JSON.stringify(error));
    if (message) assert.match(error.message, message);
    assert.ok(error.message.length > 10, 'the message says why');
    assert.notEqual(response.status, 500);
  };

  /** Runs a request that must fail, and checks it wrote nothing. */
  const rejects = async (
    query: string,
    expectation: { code: string | RegExp; field?: string; message?: RegExp },
    options: { variables?: Record<string, unknown>; token?: string } = {},
  ) => {
    const before = await snapshot();
    expectError(await env.gql(query, options), expectation.code, expectation.field, expectation.message);
    assert.deepEqual(await snapshot(), before, 'nothing was written');
  };

  const search = (filter: string, extra = '') => `{ equipmentSearch(filter: ${filter}${extra}) { totalCount edges { node { id } } } }`;
  const within = (geometry: unknown) => ({
    query: 'query($w: GeoJSONGeometry) { equipmentSearch(filter: { within: $w }) { totalCount } }',
    variables: { w: geometry },
  });

  describe('search arguments', () => {
    const cases: [string, string, string][] = [
      ['lat 95', search(`{ near: { lon: 4.36, lat: 95, radiusMeters: 300 } }`), 'filter.near.lat'],
      ['lon 181', search(`{ near: { lon: 181, lat: 48.9, radiusMeters: 300 } }`), 'filter.near.lon'],
      ['radius 0', search(`{ near: { lon: 4.36, lat: 48.9, radiusMeters: 0 } }`), 'filter.near.radiusMeters'],
      ['radius 50,001 m', search(`{ near: { lon: 4.36, lat: 48.9, radiusMeters: 50001 } }`), 'filter.near.radiusMeters'],
      ['bbox of 3 numbers', search(`{ bbox: [4.3, 48.9, 4.4] }`), 'filter.bbox'],
      ['bbox of 5 numbers', search(`{ bbox: [4.3, 48.9, 4.4, 49.0, 1] }`), 'filter.bbox'],
      ['bbox with minLon > maxLon', search(`{ bbox: [4.4, 48.9, 4.3, 49.0] }`), 'filter.bbox'],
      ['bbox with latitude 91', search(`{ bbox: [4.3, 48.9, 4.4, 91] }`), 'filter.bbox'],
      ['first -1', search(`{ kinds: [LIGHT_POINT] }`, ', first: -1'), 'first'],
      ['first 1001', search(`{ kinds: [LIGHT_POINT] }`, ', first: 1001'), 'first'],
      ['a cursor this API did not issue', search(`{ kinds: [LIGHT_POINT] }`, ', after: "bm90LWEtY3Vyc29y"'), 'after'],
      ['children first 1001', '{ equipment(id: "cab-1") { children(first: 1001) { totalCount } } }', 'first'],
      ['nearest lat 95', '{ nearestEquipment(kind: LIGHT_POINT, lon: 4.36, lat: 95) { distanceMeters } }', 'lat'],
      ['nearest first 101', '{ nearestEquipment(kind: LIGHT_POINT, lon: 4.36, lat: 48.9, first: 101) { distanceMeters } }', 'first'],
    ];
    for (const [name, query, field] of cases) {
      it(`${name} → BAD_USER_INPUT naming ${field}`, () => rejects(query, { code: 'BAD_USER_INPUT', field }));
    }

    it('a self-intersecting polygon (bow-tie) → BAD_USER_INPUT naming filter.within, with PostGIS reason', async () => {
      const bowTie = { type: 'Polygon', coordinates: [[[4.35, 48.95], [4.37, 48.97], [4.37, 48.95], [4.35, 48.97], [4.35, 48.95]]] };
      const { query, variables } = within(bowTie);
      await rejects(query, { code: 'BAD_USER_INPUT', field: 'filter.within', message: /self-intersection/i }, { variables });
    });

    const badPolygons: [string, unknown][] = [
      ['a Point', { type: 'Point', coordinates: [4.36, 48.95] }],
      ['an unclosed ring', { type: 'Polygon', coordinates: [[[4.35, 48.95], [4.37, 48.95], [4.37, 48.97], [4.35, 48.97]]] }],
      ['a ring of 3 positions', { type: 'Polygon', coordinates: [[[4.35, 48.95], [4.37, 48.95], [4.35, 48.95]]] }],
      ['a latitude of 100', { type: 'Polygon', coordinates: [[[4.35, 48.95], [4.37, 100], [4.37, 48.97], [4.35, 48.95]]] }],
      ['an empty MultiPolygon', { type: 'MultiPolygon', coordinates: [] }],
      ['strings as coordinates', { type: 'Polygon', coordinates: [[['4.35', '48.95'], [4.37, 48.95], [4.37, 48.97], ['4.35', '48.95']]] }],
    ];
    for (const [name, geometry] of badPolygons) {
      it(`within ${name} → BAD_USER_INPUT naming filter.within`, () => {
        const { query, variables } = within(geometry);
        return rejects(query, { code: 'BAD_USER_INPUT', field: 'filter.within' }, { variables });
      });
    }

    it('within given as a string → BAD_USER_INPUT, not a server error', () => {
      const { query, variables } = within('POLYGON((0 0, 1 1, 1 0, 0 0))');
      return rejects(query, { code: 'BAD_USER_INPUT' }, { variables });
    });

    it('an unknown kind or status → a validation error naming the value, never a 500', async () => {
      for (const [query, value] of [
        [search('{ kinds: [STREET_LAMP] }'), 'STREET_LAMP'],
        [search('{ status: [BROKEN] }'), 'BROKEN'],
        ['{ nearestEquipment(kind: LAMP, lon: 4.36, lat: 48.9) { distanceMeters } }', 'LAMP'],
      ]) {
        const response = await env.gql(query);
        expectError(response, /^(BAD_USER_INPUT|GRAPHQL_VALIDATION_FAILED)$/, undefined, new RegExp(value));
      }
      const asVariable = await env.gql('query($f: EquipmentFilter) { equipmentSearch(filter: $f) { totalCount } }', {
        variables: { f: { kinds: ['STREET_LAMP'] } },
      });
      expectError(asVariable, 'BAD_USER_INPUT', undefined, /STREET_LAMP/);
    });
  });

  describe('writes', () => {
    const register = (input: Record<string, unknown>) => ({
      query: 'mutation($input: RegisterEquipmentInput!) { registerEquipment(input: $input) { id } }',
      variables: {
        input: {
          kind: 'LIGHT_POINT',
          reference: 'LP-NEW-1',
          collectivityId: 'chalons',
          location: CENTRE,
          details: { powerW: 40, lampType: 'LED', dimmable: true },
          ...input,
        },
      },
    });
    const update = (id: string, input: Record<string, unknown>) => ({
      query: 'mutation($id: ID!, $input: UpdateEquipmentInput!) { updateEquipment(id: $id, input: $input) { id } }',
      variables: { id, input },
    });
    const decommission = (id: string, reason: string) => ({
      query: 'mutation($id: ID!, $reason: String!) { decommissionEquipment(id: $id, reason: $reason) { id } }',
      variables: { id, reason },
    });

    it('anonymous writes → UNAUTHENTICATED', async () => {
      for (const { query, variables } of [register({}), update('lp-0001', { status: 'FAULT' }), decommission('lp-0001', 'broken')]) {
        await rejects(query, { code: 'UNAUTHENTICATED' }, { variables });
      }
    });

    it("writes to another collectivity's equipment → FORBIDDEN naming the field", async () => {
      const token = operatorFagnieres;
      await rejects(register({}).query, { code: 'FORBIDDEN', field: 'input.collectivityId' }, { variables: register({}).variables, token });
      const u = update('lp-0001', { status: 'MAINTENANCE' });
      await rejects(u.query, { code: 'FORBIDDEN', field: 'id' }, { variables: u.variables, token });
      const d = decommission('lp-0001', 'replaced');
      await rejects(d.query, { code: 'FORBIDDEN', field: 'id' }, { variables: d.variables, token });
      const citizen = await env.token(['citizen'], ['chalons']);
      await rejects(u.query, { code: 'FORBIDDEN', field: 'id' }, { variables: u.variables, token: citizen });
    });

    const invalid: [string, { query: string; variables: Record<string, unknown> }, string, string?][] = [
      ['negative power', register({ details: { powerW: -5, lampType: 'LED', dimmable: true } }), 'input.details.powerW'],
      ['missing lamp type', register({ details: { powerW: 40, dimmable: true } }), 'input.details.lampType'],
      ['an attribute the kind has not', register({ details: { powerW: 40, lampType: 'LED', dimmable: true, colour: 'red' } }), 'input.details.colour'],
      ['a camera keeping recordings 60 days', register({ kind: 'CAMERA', details: { model: 'X', ptz: false, retentionDays: 60 } }), 'input.details.retentionDays'],
      ['a duplicate reference', register({ reference: 'LP-0001' }), 'input.reference'],
      ['an empty reference', register({ reference: '  ' }), 'input.reference'],
      ['a reference differing from an existing one only in case', register({ reference: 'lp-0001' }), 'input.reference'],
      ['a NUL byte in the reference', register({ reference: 'LP-\u0000' }), 'input.reference'],
      ['a NUL byte in the name', register({ name: 'Rue\u0000' }), 'input.name'],
      ['a NUL byte in the reason', decommission('lp-0001', 'gone\u0000'), 'reason'],
      ['an unknown parent', register({ parentId: 'cab-404' }), 'input.parentId'],
      ['a light point under a building', register({ parentId: 'bldg-1' }), 'input.parentId'],
      ['no location for a light point', register({ location: null }), 'input.location'],
      ['a location outside the territory', register({ location: OUTSIDE_TERRITORY }), 'input.location'],
      ["a location in another commune than the municipality's", register({ location: FAGNIERES_POINT }), 'input.location'],
      ['a latitude of 95', register({ location: { lon: 4.36, lat: 95 } }), 'input.location.lat'],
      ['status DECOMMISSIONED through update', update('lp-0001', { status: 'DECOMMISSIONED' }), 'input.status'],
      ['an empty update', update('lp-0001', {}), 'input'],
      ['details of the wrong type', update('lp-0001', { details: { dimmable: 'yes' } }), 'input.details.dimmable'],
      ['a parent cycle', update('cab-1', { parentId: 'lp-0001' }), 'input.parentId'],
      ['a light point moved out of its commune', update('lp-0001', { location: FAGNIERES_POINT }), 'input.location'],
      ['an empty reason', decommission('lp-0001', ' '), 'reason'],
      ['an already decommissioned asset', update('lp-0025', { status: 'FAULT' }), 'id'],
    ];
    for (const [name, { query, variables }, field] of invalid) {
      it(`${name} → BAD_USER_INPUT naming ${field}`, () => rejects(query, { code: 'BAD_USER_INPUT', field }, { variables, token: operatorChalons }));
    }

    it('an unknown id → NOT_FOUND naming id', () => {
      const { query, variables } = update('lp-9999', { status: 'FAULT' });
      return rejects(query, { code: 'NOT_FOUND', field: 'id' }, { variables, token: operatorChalons });
    });

    it('an impossible installation date → BAD_USER_INPUT', () => {
      const { query, variables } = register({ installedOn: '2021-02-30' });
      return rejects(query, { code: 'BAD_USER_INPUT', message: /2021-02-30/ }, { variables, token: operatorChalons });
    });
  });
});
