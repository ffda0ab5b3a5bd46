/**
 * Territory and equipment answered together through the gateway on a freshly seeded hub: the
 * seeded counts, spatial search, visibility by role, open data — and bad inputs, each with its
 * code and field, with nothing written.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { signDevelopmentToken } from '@connecte/shared/auth';
import { createTestDatabase, type TestDatabase, gql, startHub, tokenFor, type Hub, type GraphQLResponse } from '@connecte/testkit';

const CONTRACT = `{ collectivities { id name }
  lights: equipmentSearch(filter: { kinds: [LIGHT_POINT] }) { totalCount }
  dimmable: equipmentSearch(filter: { kinds: [LIGHT_POINT], dimmable: true }) { totalCount }
  detectors: equipmentSearch(filter: { kinds: [PRESENCE_DETECTOR] }) { totalCount }
  signals: equipmentSearch(filter: { kinds: [TRAFFIC_SIGNAL_CONTROLLER] }) { totalCount }
  buses: equipmentSearch(filter: { kinds: [BUS] }) { totalCount } }`;

const NEAR = `{ equipmentSearch(filter: { near: { lon: 4.3650, lat: 48.9566, radiusMeters: 300 } }, first: 500) {
  totalCount pageInfo { hasNextPage } edges { node { id kind } } } }`;

describe('territory and equipment through the gateway, on the seeded hub', () => {
  let db: TestDatabase;
  let hub: Hub;
  let pool: pg.Pool;
  let url: string;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    hub = await startHub(db.url);
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    url = hub.gatewayUrl;
  });
  after(async () => {
    await pool?.end();
    await hub?.close();
    await db?.drop();
  });

  it('counts the seeded territory in one query: 4 collectivities, 7290 / 2170 / 510 / 25 / 32', async () => {
    const response = await gql(url, CONTRACT);
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    const data = response.data;
    assert.deepEqual(
      data.collectivities.map((c: { id: string }) => c.id).sort(),
      ['chalons', 'chalons-agglo', 'fagnieres', 'saint-martin-sur-le-pre'],
    );
    assert.ok(data.collectivities.every((c: { name: string }) => c.name.length > 0));
    assert.deepEqual(
      [data.lights, data.dimmable, data.detectors, data.signals, data.buses].map((c) => c.totalCount),
      [7290, 2170, 510, 25, 32],
    );
  });

  it('near 300 m returns exactly the equipment within 300 m (geography distance), cameras excluded for the public', async () => {
    const response = await gql(url, NEAR);
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    const { rows } = await pool.query<{ id: string; kind: string }>(
      `SELECT id, kind::text FROM equipment
       WHERE location IS NOT NULL
         AND ST_Distance(location::geography, ST_SetSRID(ST_MakePoint(4.3650, 48.9566), 4326)::geography) <= 300`,
    );
    const expected = rows.filter((r) => r.kind !== 'CAMERA').map((r) => r.id).sort();
    assert.ok(rows.some((r) => r.kind === 'CAMERA'), 'the seed has cameras near the town hall, so the exclusion is exercised');
    assert.ok(expected.length > 20 && expected.length < 500, `a meaningful, single page (${expected.length})`);
    const ids = response.data.equipmentSearch.edges.map((e: { node: { id: string } }) => e.node.id).sort();
    assert.deepEqual(ids, expected);
    assert.equal(response.data.equipmentSearch.totalCount, expected.length);
    assert.equal(response.data.equipmentSearch.pageInfo.hasNextPage, false);
  });

  it('shows the cameras near the town hall to an operator of Châlons', async () => {
    const token = await tokenFor(hub.config, ['operator'], ['chalons']);
    const response = await gql(url, `{ equipmentSearch(filter: { kinds: [CAMERA], near: { lon: 4.3650, lat: 48.9566, radiusMeters: 300 } }) {
      totalCount edges { node { location { coordinates } } } } }`, { token });
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    assert.ok(response.data.equipmentSearch.totalCount > 0);
    assert.ok(response.data.equipmentSearch.edges.every((e: any) => e.node.location.coordinates.length === 2));
  });

  it('serves the open data under /opendata on the gateway, without cameras', async () => {
    const origin = url.replace(/\/graphql$/, '');
    const catalog = await fetch(`${origin}/opendata/catalog.jsonld`);
    assert.equal(catalog.status, 200);
    const geojson = (await (await fetch(`${origin}/opendata/equipment.geojson?kind=LIGHT_POINT`)).json()) as any;
    const { rows } = await pool.query<{ count: string }>(`SELECT count(*) FROM equipment WHERE kind = 'LIGHT_POINT' AND status <> 'DECOMMISSIONED'`);
    assert.equal(geojson.features.length, Number(rows[0].count));
    assert.equal((await fetch(`${origin}/opendata/equipment.geojson?kind=CAMERA`)).status, 400);
  });

  describe('bad input', () => {
    const counts = async () => {
      const { rows } = await pool.query<{ equipment: string; events: string; updated: string }>(
        `SELECT (SELECT count(*) FROM equipment) AS equipment, (SELECT count(*) FROM events) AS events,
                (SELECT max(updated_at)::text FROM equipment) AS updated`,
      );
      return rows[0];
    };
    const expectError = (response: GraphQLResponse, code: string, field?: string) => {
      assert.ok(response.errors?.length, `an error is returned: ${JSON.stringify(response)}`);
      const [error] = response.errors!;
      assert.equal(error.extensions?.code, code, JSON.stringify(error));
      if (field) assert.equal(error.extensions?.field, field, JSON.stringify(error));
      assert.ok(error.message.length > 10, 'the message says why');
    };

    const search = (filter: string, args = '') => `{ equipmentSearch(filter: ${filter}${args}) { totalCount } }`;

    it('lat 95 → BAD_USER_INPUT naming filter.near.lat', async () => {
      expectError(await gql(url, search('{ near: { lon: 4.36, lat: 95, radiusMeters: 300 } }')), 'BAD_USER_INPUT', 'filter.near.lat');
    });

    it('a self-intersecting polygon → BAD_USER_INPUT naming filter.within', async () => {
      const bowTie = { type: 'Polygon', coordinates: [[[4.35, 48.95], [4.37, 48.97], [4.37, 48.95], [4.35, 48.97], [4.35, 48.95]]] };
      const response = await gql(url, 'query($w: GeoJSONGeometry!) { equipmentSearch(filter: { within: $w }) { totalCount } }', { variables: { w: bowTie } });
      expectError(response, 'BAD_USER_INPUT', 'filter.within');
      assert.match(response.errors![0].message, /self-intersection/i);
    });

    it('a bbox with 3 numbers → BAD_USER_INPUT naming filter.bbox', async () => {
      expectError(await gql(url, search('{ bbox: [4.3, 48.9, 4.4] }')), 'BAD_USER_INPUT', 'filter.bbox');
    });

    for (const first of [-1, 1001]) {
      it(`first: ${first} → BAD_USER_INPUT naming first`, async () => {
        expectError(await gql(url, search('{ kinds: [LIGHT_POINT] }', `, first: ${first}`)), 'BAD_USER_INPUT', 'first');
      });
    }

    it('an unknown kind → a validation error naming the value, not a server error', async () => {
      const response = await gql(url, search('{ kinds: [STREET_LAMP] }'));
      assert.ok(response.errors?.length);
      assert.match(String(response.errors![0].extensions?.code), /^(BAD_USER_INPUT|GRAPHQL_VALIDATION_FAILED)$/);
      assert.match(response.errors![0].message, /STREET_LAMP/);
      assert.notEqual(response.status, 500);
    });

    it('a malformed token → UNAUTHENTICATED (401)', async () => {
      const response = await gql(url, CONTRACT, { token: 'not-a-jwt' });
      assert.equal(response.status, 401);
      expectError(response, 'UNAUTHENTICATED');
    });

    it('an expired token → UNAUTHENTICATED saying it expired', async () => {
      const token = await signDevelopmentToken({ sub: 'late', roles: ['operator'], collectivities: ['chalons'], expiresIn: '-1m' }, hub.config);
      const response = await gql(url, CONTRACT, { token });
      expectError(response, 'UNAUTHENTICATED');
      assert.match(response.errors![0].message, /expired/i);
    });

    it("a write to another collectivity's equipment → FORBIDDEN, and nothing is written", async () => {
      const before = await counts();
      const token = await tokenFor(hub.config, ['operator'], ['fagnieres']);
      const { rows } = await pool.query<{ id: string }>("SELECT id FROM equipment WHERE collectivity_id = 'chalons' AND kind = 'LIGHT_POINT' ORDER BY id LIMIT 1");
      const update = await gql(url, 'mutation($id: ID!) { updateEquipment(id: $id, input: { status: MAINTENANCE }) { id status } }', {
        variables: { id: rows[0].id },
        token,
      });
      expectError(update, 'FORBIDDEN');
      const decommission = await gql(url, 'mutation($id: ID!) { decommissionEquipment(id: $id, reason: "test") { id } }', { variables: { id: rows[0].id }, token });
      expectError(decommission, 'FORBIDDEN');
      const register = await gql(
        url,
        `mutation { registerEquipment(input: { kind: WIFI_HOTSPOT, reference: "WIFI-X-1", collectivityId: "chalons", location: { lon: 4.365, lat: 48.957 } }) { id } }`,
        { token },
      );
      expectError(register, 'FORBIDDEN');
      const anonymous = await gql(url, 'mutation($id: ID!) { updateEquipment(id: $id, input: { status: MAINTENANCE }) { id } }', { variables: { id: rows[0].id } });
      expectError(anonymous, 'UNAUTHENTICATED');
      assert.deepEqual(await counts(), before);
    });
  });
});
