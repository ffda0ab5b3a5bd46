/**
 * equipmentSearch and nearestEquipment over real HTTP against PostGIS: every answer is
 * compared with an independent SQL computation on the same rows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { countQuery, searchQuery } from '../src/equipment-store.js';
import { CENTRE, FAGNIERES_POINT, LIGHT_POINTS, startEquipment, type EquipmentTestEnv } from './fixtures.js';

const SEARCH = `query($filter: EquipmentFilter, $first: Int, $after: String) {
  equipmentSearch(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id kind status name communeInseeCode location { type coordinates } } }
  }
}`;

type Node = { id: string; kind: string; status: string; name: string | null; communeInseeCode: string | null; location: { type: string; coordinates: number[] } | null };

interface SearchResult {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string };
  edges: { cursor: string; node: Node }[];
  nodes: Node[];
  ids: string[];
}

describe('equipment search', () => {
  let env: EquipmentTestEnv;
  let operatorChalons: string;

  const search = async (filter: Record<string, unknown> | null, options: { first?: number; after?: string; token?: string } = {}) => {
    const response = await env.gql(SEARCH, { variables: { filter, first: options.first ?? 1000, after: options.after }, token: options.token });
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    const connection = response.data.equipmentSearch;
    const nodes: Node[] = connection.edges.map((e: { node: Node }) => e.node);
    const result: SearchResult = { ...connection, nodes, ids: nodes.map((n) => n.id) };
    return result;
  };
  const idsWhere = async (where: string, params: unknown[] = []) =>
    (await env.pool.query<{ id: string }>(`SELECT id FROM equipment WHERE ${where} ORDER BY id`, params)).rows.map((r) => r.id);

  before(async () => {
    env = await startEquipment();
    operatorChalons = await env.token(['operator'], ['chalons']);
  });
  after(() => env?.close());

  it('filters by kind, status, dimmable and collectivity', async () => {
    const lights = await search({ kinds: ['LIGHT_POINT'] });
    assert.equal(lights.totalCount, LIGHT_POINTS + 10);
    assert.deepEqual(lights.ids, await idsWhere(`kind = 'LIGHT_POINT'`));

    const faulty = await search({ kinds: ['LIGHT_POINT'], status: ['FAULT', 'MAINTENANCE'] });
    assert.deepEqual(faulty.ids, await idsWhere(`kind = 'LIGHT_POINT' AND status IN ('FAULT', 'MAINTENANCE')`));
    assert.ok(faulty.nodes.every((n) => n.status === 'FAULT' || n.status === 'MAINTENANCE'));

    const dimmable = await search({ kinds: ['LIGHT_POINT'], dimmable: true, collectivityIds: ['chalons'] });
    assert.deepEqual(dimmable.ids, await idsWhere(`collectivity_id = 'chalons' AND (details->>'dimmable')::boolean`));
    assert.equal(dimmable.totalCount, LIGHT_POINTS / 3);

    const fagnieres = await search({ collectivityIds: ['fagnieres'] });
    assert.deepEqual(fagnieres.ids, await idsWhere(`collectivity_id = 'fagnieres'`));
    assert.ok(fagnieres.ids.includes('cam-3'), 'without a spatial filter cameras are listed (counted publicly)');
  });

  it('near returns exactly the assets within the radius (geodesic), cameras excluded for the public', async () => {
    for (const radius of [150, 300, 700]) {
      const expected = await idsWhere(
        `location IS NOT NULL AND kind <> 'CAMERA'
         AND ST_Distance(location::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography) <= $3`,
        [CENTRE.lon, CENTRE.lat, radius],
      );
      assert.ok(expected.length > 0, `the fixtures put assets within ${radius} m`);
      const result = await search({ near: { lon: CENTRE.lon, lat: CENTRE.lat, radiusMeters: radius } });
      assert.deepEqual(result.ids, expected, `radius ${radius}`);
      assert.equal(result.totalCount, expected.length);
    }
  });

  it('bbox returns the assets inside the box', async () => {
    const bbox = [4.36, 48.952, 4.37, 48.96];
    const expected = await idsWhere(
      `ST_X(location) BETWEEN 4.36 AND 4.37 AND ST_Y(location) BETWEEN 48.952 AND 48.96 AND kind <> 'CAMERA'`,
    );
    const result = await search({ bbox });
    assert.deepEqual(result.ids, expected);
    assert.ok(result.nodes.every((n) => n.location!.coordinates[0] >= 4.36 && n.location!.coordinates[0] <= 4.37));
  });

  describe('bbox is exact and inclusive, and still served by the GiST index', () => {
    const BOX = [4.36, 48.95, 4.37, 48.96] as const;
    // Outside by less than one single-precision step (about 4e-6 degrees at 48°, 5e-7 at 4°):
    // the index box operator `&&` cannot tell these from points on the edge.
    const POINTS: [id: string, lon: number, lat: number, inside: boolean][] = [
      ['edge-inside', 4.365, 48.955, true],
      ['edge-on-west', 4.36, 48.955, true],
      ['edge-on-east', 4.37, 48.955, true],
      ['edge-on-south', 4.365, 48.95, true],
      ['edge-on-north', 4.365, 48.96, true],
      ['edge-on-corner', 4.37, 48.96, true],
      ['edge-out-north', 4.365, 48.9600059, false],
      ['edge-out-south', 4.365, 48.9499962, false],
      ['edge-out-east', 4.3700001, 48.955, false],
      ['edge-out-west', 4.3599999, 48.955, false],
      ['edge-out-corner', 4.3700001, 48.9600001, false],
    ];
    const inside = POINTS.filter(([, , , isInside]) => isInside).map(([id]) => id).sort();
    const outside = POINTS.filter(([, , , isInside]) => !isInside).map(([id]) => id).sort();

    before(async () => {
      await env.pool.query(
        `INSERT INTO equipment (id, kind, reference, collectivity_id, insee_code, location)
         SELECT id, 'WIFI_HOTSPOT', upper(id), 'chalons', '51108', ST_SetSRID(ST_MakePoint(lon, lat), 4326)
         FROM unnest($1::text[], $2::float8[], $3::float8[]) AS t(id, lon, lat)`,
        [POINTS.map((p) => p[0]), POINTS.map((p) => p[1]), POINTS.map((p) => p[2])],
      );
    });
    after(() => env.pool.query(`DELETE FROM equipment WHERE id LIKE 'edge-%'`));

    it('excludes points outside the box by less than float4 precision; points on an edge or corner match', async () => {
      const { rows } = await env.pool.query<{ id: string }>(
        `SELECT id FROM equipment WHERE id LIKE 'edge-out-%' AND location && ST_MakeEnvelope($1, $2, $3, $4, 4326) ORDER BY id`,
        [...BOX],
      );
      assert.deepEqual(rows.map((r) => r.id), outside, 'the index operator alone matches every outside point: the test sits on the float4 boundary');

      const result = await search({ bbox: [...BOX], kinds: ['WIFI_HOTSPOT'] });
      assert.deepEqual(result.ids, inside);
      assert.equal(result.totalCount, inside.length);
      const paged = await search({ bbox: [...BOX], kinds: ['WIFI_HOTSPOT'] }, { first: 2, after: result.edges[1].cursor });
      assert.deepEqual(paged.ids, inside.slice(2, 4));

      const everything = await search({ bbox: [...BOX] }, { token: operatorChalons });
      assert.ok(everything.ids.length > inside.length);
      for (const node of everything.nodes) {
        const [lon, lat] = node.location!.coordinates;
        assert.ok(lon >= BOX[0] && lon <= BOX[2] && lat >= BOX[1] && lat <= BOX[3], `${node.id} at [${lon}, ${lat}] is inside`);
      }
      assert.ok(!everything.ids.some((id) => outside.includes(id)));
    });

    it('uses the GiST index on location for the page and the count', async () => {
      const client = await env.pool.connect();
      try {
        // Enough rows around the box for the planner to prefer the index, then rolled back.
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO equipment (id, kind, reference, collectivity_id, location)
           SELECT 'grid-' || x || '-' || y, 'WIFI_HOTSPOT', 'GRID-' || x || '-' || y, 'chalons',
                  ST_SetSRID(ST_MakePoint(4.28 + x * 0.0006, 48.93 + y * 0.0009), 4326)
           FROM generate_series(0, 199) AS x, generate_series(0, 99) AS y`,
        );
        await client.query('ANALYZE equipment');
        const criteria = { bbox: [...BOX] as [number, number, number, number], cameraCollectivities: [] };
        for (const [what, statement] of [['page', searchQuery(criteria, 50, null)], ['count', countQuery(criteria)]] as const) {
          const { rows } = await client.query(`EXPLAIN (FORMAT JSON) ${statement.text}`, statement.values);
          const plan = JSON.stringify(rows[0]['QUERY PLAN']);
          assert.match(plan, /"Index Name":"equipment_location_idx"/, `${what}: ${plan}`);
        }
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    });
  });

  it('within accepts a Polygon and a MultiPolygon', async () => {
    const square = (lon: number, lat: number, d: number) => [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]];
    const polygon = { type: 'Polygon', coordinates: square(CENTRE.lon, CENTRE.lat, 0.004) };
    const expectedPolygon = await idsWhere(`ST_Intersects(location, ST_GeomFromGeoJSON($1)) AND kind <> 'CAMERA'`, [JSON.stringify(polygon)]);
    assert.ok(expectedPolygon.length > 3);
    assert.deepEqual((await search({ within: polygon })).ids, expectedPolygon);

    const multi = { type: 'MultiPolygon', coordinates: [square(CENTRE.lon, CENTRE.lat, 0.002), square(FAGNIERES_POINT.lon, FAGNIERES_POINT.lat, 0.006)] };
    const expectedMulti = await idsWhere(`ST_Intersects(location, ST_GeomFromGeoJSON($1)) AND kind <> 'CAMERA'`, [JSON.stringify(multi)]);
    const result = await search({ within: multi });
    assert.deepEqual(result.ids, expectedMulti);
    assert.ok(result.ids.some((id) => id.startsWith('lpf-')) && result.ids.some((id) => id.startsWith('lp-')), 'both polygons match');
  });

  it('pages with after/hasNextPage in stable id order, totalCount across pages', async () => {
    const all = await idsWhere(`kind = 'LIGHT_POINT'`);
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await search({ kinds: ['LIGHT_POINT'] }, { first: 37, after: cursor });
      pages++;
      assert.equal(page.totalCount, all.length);
      assert.equal(page.pageInfo.hasPreviousPage, cursor !== undefined);
      assert.equal(page.pageInfo.startCursor, page.edges[0]?.cursor ?? null);
      seen.push(...page.ids);
      if (!page.pageInfo.hasNextPage) break;
      assert.equal(page.ids.length, 37);
      cursor = page.pageInfo.endCursor;
    }
    assert.equal(pages, Math.ceil(all.length / 37));
    assert.deepEqual(seen, all);
    const empty = await search({ kinds: ['LIGHT_POINT'] }, { first: 0 });
    assert.deepEqual(empty.ids, []);
    assert.equal(empty.totalCount, all.length);
  });

  it('default page is 50', async () => {
    const response = await env.gql('{ equipmentSearch { edges { node { id } } pageInfo { hasNextPage } } }');
    assert.equal(response.data.equipmentSearch.edges.length, 50);
    assert.equal(response.data.equipmentSearch.pageInfo.hasNextPage, true);
  });

  describe('camera visibility', () => {
    const near = { near: { lon: CENTRE.lon, lat: CENTRE.lat, radiusMeters: 300 } };

    it('the public never matches a camera with near, bbox, within or parentId, and sees no position', async () => {
      const filters = [
        { kinds: ['CAMERA'], ...near },
        { kinds: ['CAMERA'], bbox: [4.3, 48.9, 4.45, 49.0] },
        { kinds: ['CAMERA'], within: { type: 'Polygon', coordinates: [[[4.3, 48.9], [4.45, 48.9], [4.45, 49.0], [4.3, 49.0], [4.3, 48.9]]] } },
        { parentId: 'bldg-1', kinds: ['CAMERA'] },
      ];
      for (const filter of filters) {
        const result = await search(filter);
        assert.deepEqual(result.ids, [], JSON.stringify(filter));
        assert.equal(result.totalCount, 0, JSON.stringify(filter));
      }
      const listed = await search({ kinds: ['CAMERA'] });
      assert.deepEqual(listed.ids, ['cam-1', 'cam-2', 'cam-3', 'cam-4'], 'still listed and counted without a spatial filter');
      assert.ok(listed.nodes.every((n) => n.location === null && n.communeInseeCode === null && n.name === null));

      const one = await env.gql('{ equipment(id: "cam-1") { id kind location { coordinates } details { __typename } parent { id } } }');
      assert.deepEqual(one.data.equipment, { id: 'cam-1', kind: 'CAMERA', location: null, details: null, parent: null });
      const building = await env.gql('{ equipment(id: "bldg-1") { children { totalCount edges { node { id } } } } }');
      assert.deepEqual(building.data.equipment.children.edges.map((e: { node: { id: string } }) => e.node.id), ['aq-1', 'heat-1']);
      assert.equal(building.data.equipment.children.totalCount, 2);
    });

    it("an operator of Châlons sees Châlons' cameras (position, details, spatial match) but not Fagnières'", async () => {
      const result = await search({ kinds: ['CAMERA'], bbox: [4.28, 48.93, 4.40, 48.99] }, { token: operatorChalons });
      assert.deepEqual(result.ids, ['cam-1', 'cam-2', 'cam-4']);
      assert.ok(result.nodes.every((n) => n.location?.type === 'Point' && n.location.coordinates.length === 2));
      const expectedNear = await idsWhere(
        `kind = 'CAMERA' AND collectivity_id = 'chalons' AND ST_DWithin(location::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, 300)`,
        [CENTRE.lon, CENTRE.lat],
      );
      assert.deepEqual((await search({ kinds: ['CAMERA'], ...near }, { token: operatorChalons })).ids, expectedNear);

      const camera = await env.gql('{ equipment(id: "cam-1") { name location { coordinates } details { ... on CameraDetails { model ptz retentionDays } } } }', { token: operatorChalons });
      assert.deepEqual(camera.data.equipment, {
        name: 'Caméra place Foch',
        location: { coordinates: [4.3652, 48.9568] },
        details: { model: 'Axis Q6135', ptz: true, retentionDays: 30 },
      });
      const other = await env.gql('{ equipment(id: "cam-3") { location { coordinates } details { __typename } } }', { token: operatorChalons });
      assert.deepEqual(other.data.equipment, { location: null, details: null });

      const agent = await env.token(['agent'], ['chalons']);
      const asAgent = await env.gql('{ equipment(id: "cam-1") { location { coordinates } } }', { token: agent });
      assert.equal(asAgent.data.equipment.location, null, 'an agent is not an operator');
    });

    it('nearestEquipment of kind CAMERA is empty for the public and limited to their own cameras for an operator', async () => {
      const query = `{ nearestEquipment(kind: CAMERA, lon: ${CENTRE.lon}, lat: ${CENTRE.lat}, first: 10) { equipment { id } distanceMeters } }`;
      assert.deepEqual((await env.gql(query)).data.nearestEquipment, []);
      const mine = await env.gql(query, { token: operatorChalons });
      assert.deepEqual(mine.data.nearestEquipment.map((d: { equipment: { id: string } }) => d.equipment.id), ['cam-1', 'cam-2', 'cam-4']);
    });

    it('counts cameras publicly', async () => {
      const response = await env.gql(`{ equipmentCountsByKind { kind count } chalons: equipmentCountsByKind(collectivityIds: ["chalons"]) { kind count }
        active: equipmentCountsByKind(status: [IN_SERVICE, FAULT, MAINTENANCE]) { kind count } }`);
      const count = (list: { kind: string; count: number }[], kind: string) => list.find((c) => c.kind === kind)!.count;
      assert.equal(count(response.data.equipmentCountsByKind, 'CAMERA'), 4);
      assert.equal(count(response.data.chalons, 'CAMERA'), 3);
      assert.equal(response.data.equipmentCountsByKind.length, 14, 'every kind, zeros included');
      assert.equal(count(response.data.equipmentCountsByKind, 'LIGHT_POINT'), LIGHT_POINTS + 10);
      const activeLights = (await env.pool.query(`SELECT count(*)::int AS n FROM equipment WHERE kind = 'LIGHT_POINT' AND status <> 'DECOMMISSIONED'`)).rows[0].n;
      assert.ok(activeLights < LIGHT_POINTS + 10);
      assert.equal(count(response.data.active, 'LIGHT_POINT'), activeLights);
    });
  });

  it('nearestEquipment orders by exact geodesic distance, skipping decommissioned assets', async () => {
    const response = await env.gql(`{ nearestEquipment(kind: LIGHT_POINT, lon: ${CENTRE.lon}, lat: ${CENTRE.lat}, first: 15) { equipment { id } distanceMeters } }`);
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    const { rows } = await env.pool.query<{ id: string; d: number }>(
      `SELECT id, ST_Distance(location::geography, ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography) AS d
       FROM equipment WHERE kind = 'LIGHT_POINT' AND status <> 'DECOMMISSIONED' ORDER BY d, id LIMIT 15`,
      [CENTRE.lon, CENTRE.lat],
    );
    const got = response.data.nearestEquipment as { equipment: { id: string }; distanceMeters: number }[];
    assert.deepEqual(got.map((d) => d.equipment.id), rows.map((r) => r.id));
    got.forEach((d, i) => assert.ok(Math.abs(d.distanceMeters - rows[i].d) < 0.01));
  });

  it('resolves relations and details through loaders: cabinet, children, presence detector, entity references', async () => {
    const response = await env.gql(`{
      cabinet: equipment(id: "cab-1") { children(kinds: [LIGHT_POINT], first: 5) { totalCount pageInfo { hasNextPage } edges { node { id parent { id } } } } }
      light: equipment(id: "lp-0003") { installedOn collectivity { id } details { __typename ... on LightPointDetails { powerW dimmable cabinet { id kind } } } }
      detector: equipment(id: "pd-1") { details { ... on PresenceDetectorDetails { detectionRangeM lightPoint { id } } } }
      sensor: equipment(id: "aq-1") { details { ... on GenericDetails { attributes } } parent { id details { ... on BuildingDetails { name use } } } }
      bus: equipment(id: "bus-1") { location { coordinates } communeInseeCode details { ... on BusDetails { fleetNumber energy } } }
      missing: equipment(id: "nope") { id }
      _entities(representations: [{ __typename: "Equipment", id: "lp-0001" }, { __typename: "Equipment", id: "cab-2" }, { __typename: "Equipment", id: "nope" }]) { ... on Equipment { id kind } }
    }`);
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    const data = response.data;
    assert.equal(data.cabinet.children.totalCount, 40);
    assert.equal(data.cabinet.children.pageInfo.hasNextPage, true);
    assert.deepEqual(data.cabinet.children.edges.map((e: any) => e.node.id), ['lp-0001', 'lp-0002', 'lp-0003', 'lp-0004', 'lp-0005']);
    assert.ok(data.cabinet.children.edges.every((e: any) => e.node.parent.id === 'cab-1'));
    assert.deepEqual(data.light, {
      installedOn: '2021-06-15',
      collectivity: { id: 'chalons' },
      details: { __typename: 'LightPointDetails', powerW: 60, dimmable: true, cabinet: { id: 'cab-1', kind: 'ELECTRICAL_CABINET' } },
    });
    assert.deepEqual(data.detector.details, { detectionRangeM: 12, lightPoint: { id: 'lp-0001' } });
    assert.deepEqual(data.sensor, { details: { attributes: { room: 'CM2' } }, parent: { id: 'bldg-1', details: { name: 'École Jean Jaurès', use: 'SCHOOL' } } });
    assert.deepEqual(data.bus, { location: null, communeInseeCode: null, details: { fleetNumber: '212', energy: 'HYBRID' } });
    assert.equal(data.missing, null);
    assert.deepEqual(data._entities, [{ id: 'lp-0001', kind: 'LIGHT_POINT' }, { id: 'cab-2', kind: 'ELECTRICAL_CABINET' }, null]);
  });

  it('costs a fixed number of SQL statements whatever the page size (every relation batched)', async () => {
    const pool = env.service.db.pool;
    const original = pool.query;
    let statements = 0;
    pool.query = function (this: typeof pool, ...args: unknown[]) {
      statements++;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof pool.query;
    const cost = async (first: number) => {
      const before = statements;
      const response = await env.gql(`{ equipmentSearch(filter: { kinds: [LIGHT_POINT, PRESENCE_DETECTOR] }, first: ${first}) { totalCount edges { node {
        id parent { id children(first: 3) { totalCount edges { node { id } } } }
        details { ... on LightPointDetails { cabinet { id } } ... on PresenceDetectorDetails { lightPoint { id parent { id } } } } } } } }`);
      assert.equal(response.errors, undefined, JSON.stringify(response.errors));
      assert.equal(response.data.equipmentSearch.edges.length, first);
      return statements - before;
    };
    try {
      const small = await cost(5);
      const large = await cost(100);
      assert.equal(large, small, `${small} statements for 5 nodes, ${large} for 100`);
      assert.ok(large >= 4 && large <= 6, `${large} statements`);
    } finally {
      pool.query = original;
    }
  });
});
