/**
 * register / update / decommission by an operator of the owning collectivity: the row and
 * its `equipment.changed` event are committed together, and a subscriber receives the change.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { subscriptions } from '@connecte/testkit';
import { CENTRE, startEquipment, type EquipmentTestEnv } from './fixtures.js';

const FIELDS = `id kind reference name status communeInseeCode installedOn location { type coordinates } parent { id }
  details { __typename ... on LightPointDetails { powerW lampType dimmable colorTemperatureK } }`;

describe('equipment writes', () => {
  let env: EquipmentTestEnv;
  let operator: string;
  let admin: string;

  before(async () => {
    env = await startEquipment();
    operator = await env.token(['operator'], ['chalons']);
    admin = await env.token(['admin'], ['chalons', 'chalons-agglo']);
  });
  after(() => env?.close());

  const events = async (equipmentId: string) =>
    (
      await env.pool.query<{ id: string; topic: string; collectivity_id: string; payload: Record<string, unknown> }>(
        `SELECT id::text, topic, collectivity_id, payload FROM events WHERE payload->>'equipmentId' = $1 ORDER BY id`,
        [equipmentId],
      )
    ).rows;

  const ok = (response: { errors?: unknown; data?: any }): any => {
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    return response.data!;
  };

  it('registers, updates and decommissions, each with its event in the same transaction', async () => {
    const registered = ok(
      await env.gql(`mutation($input: RegisterEquipmentInput!) { registerEquipment(input: $input) { ${FIELDS} } }`, {
        variables: {
          input: {
            kind: 'LIGHT_POINT',
            reference: ' LP-CHA-900001 ',
            name: 'Rue de la Marne 12',
            collectivityId: 'chalons',
            location: { lon: 4.3661, lat: 48.9581 },
            installedOn: '2025-10-01',
            parentId: 'cab-1',
            details: { powerW: 36, lampType: 'LED', dimmable: true, colorTemperatureK: 2700 },
          },
        },
        token: operator,
      }),
    ).registerEquipment;
    assert.match(registered.id, /^lp-[0-9a-f-]{36}$/);
    assert.deepEqual({ ...registered, id: undefined }, {
      id: undefined,
      kind: 'LIGHT_POINT',
      reference: 'LP-CHA-900001',
      name: 'Rue de la Marne 12',
      status: 'IN_SERVICE',
      communeInseeCode: '51108',
      installedOn: '2025-10-01',
      location: { type: 'Point', coordinates: [4.3661, 48.9581] },
      parent: { id: 'cab-1' },
      details: { __typename: 'LightPointDetails', powerW: 36, lampType: 'LED', dimmable: true, colorTemperatureK: 2700 },
    });
    // Stored, found by a spatial search, and announced.
    const near = ok(await env.gql(`{ equipmentSearch(filter: { near: { lon: 4.3661, lat: 48.9581, radiusMeters: 1 } }) { edges { node { id } } } }`));
    assert.deepEqual(near.equipmentSearch.edges.map((e: any) => e.node.id), [registered.id]);
    let log = await events(registered.id);
    assert.equal(log.length, 1);
    const { snapshot: registeredSnapshot, ...registration } = log[0].payload as Record<string, any>;
    assert.deepEqual(registration, {
      equipmentId: registered.id,
      change: 'REGISTERED',
      kind: 'LIGHT_POINT',
      status: 'IN_SERVICE',
      actor: { sub: 'test-operator-chalons', roles: ['operator'] },
      changes: [
        { field: 'kind', before: null, after: 'LIGHT_POINT' },
        { field: 'reference', before: null, after: 'LP-CHA-900001' },
        { field: 'name', before: null, after: 'Rue de la Marne 12' },
        { field: 'status', before: null, after: 'IN_SERVICE' },
        { field: 'collectivityId', before: null, after: 'chalons' },
        { field: 'communeInseeCode', before: null, after: '51108' },
        { field: 'location', before: null, after: { type: 'Point', coordinates: [4.3661, 48.9581] } },
        { field: 'installedOn', before: null, after: '2025-10-01' },
        { field: 'parentId', before: null, after: 'cab-1' },
        { field: 'details.colorTemperatureK', before: null, after: 2700 },
        { field: 'details.dimmable', before: null, after: true },
        { field: 'details.lampType', before: null, after: 'LED' },
        { field: 'details.powerW', before: null, after: 36 },
      ],
    });
    assert.deepEqual({ ...registeredSnapshot, createdAt: undefined, updatedAt: undefined }, {
      id: registered.id,
      kind: 'LIGHT_POINT',
      reference: 'LP-CHA-900001',
      name: 'Rue de la Marne 12',
      status: 'IN_SERVICE',
      collectivityId: 'chalons',
      inseeCode: '51108',
      lon: 4.3661,
      lat: 48.9581,
      installedOn: '2025-10-01',
      parentId: 'cab-1',
      details: { powerW: 36, lampType: 'LED', dimmable: true, colorTemperatureK: 2700 },
      createdAt: undefined,
      updatedAt: undefined,
      decommissionedAt: null,
    });
    assert.equal(log[0].topic, 'equipment.changed');
    assert.equal(log[0].collectivity_id, 'chalons');

    const updated = ok(
      await env.gql(`mutation($id: ID!, $input: UpdateEquipmentInput!) { updateEquipment(id: $id, input: $input) { ${FIELDS} } }`, {
        variables: { id: registered.id, input: { status: 'FAULT', details: { powerW: 30 }, location: { lon: 4.367, lat: 48.959 }, parentId: null } },
        token: admin,
      }),
    ).updateEquipment;
    assert.equal(updated.status, 'FAULT');
    assert.deepEqual(updated.location.coordinates, [4.367, 48.959]);
    assert.equal(updated.parent, null);
    assert.deepEqual(updated.details, { __typename: 'LightPointDetails', powerW: 30, lampType: 'LED', dimmable: true, colorTemperatureK: 2700 }, 'details are merged');
    log = await events(registered.id);
    assert.deepEqual(log.map((e) => e.payload.change), ['REGISTERED', 'UPDATED']);
    assert.equal(log[1].payload.status, 'FAULT');
    assert.deepEqual(log[1].payload.actor, { sub: 'test-admin-chalons-chalons-agglo', roles: ['admin'] });
    assert.deepEqual(log[1].payload.changes, [
      { field: 'status', before: 'IN_SERVICE', after: 'FAULT' },
      { field: 'location', before: { type: 'Point', coordinates: [4.3661, 48.9581] }, after: { type: 'Point', coordinates: [4.367, 48.959] } },
      { field: 'parentId', before: 'cab-1', after: null },
      { field: 'details.powerW', before: 36, after: 30 },
    ], 'only what changed: the commune and the untouched attributes are left out');

    const decommissioned = ok(
      await env.gql('mutation($id: ID!) { decommissionEquipment(id: $id, reason: "pole knocked down") { status decommissionedAt } }', {
        variables: { id: registered.id },
        token: operator,
      }),
    ).decommissionEquipment;
    assert.equal(decommissioned.status, 'DECOMMISSIONED');
    assert.ok(Date.parse(decommissioned.decommissionedAt) > Date.now() - 60_000);
    log = await events(registered.id);
    const { snapshot: decommissionedSnapshot, ...decommissioning } = log[2].payload as Record<string, any>;
    assert.deepEqual(decommissioning, {
      equipmentId: registered.id,
      change: 'DECOMMISSIONED',
      kind: 'LIGHT_POINT',
      status: 'DECOMMISSIONED',
      reason: 'pole knocked down',
      actor: { sub: 'test-operator-chalons', roles: ['operator'] },
      changes: [
        { field: 'status', before: 'FAULT', after: 'DECOMMISSIONED' },
        { field: 'decommissionedAt', before: null, after: decommissioned.decommissionedAt },
      ],
    });
    assert.equal(decommissionedSnapshot.status, 'DECOMMISSIONED');
    assert.equal(decommissionedSnapshot.decommissionedAt, decommissioned.decommissionedAt);

    // Row and event share one transaction: their commit ids are the same transaction.
    const { rows } = await env.pool.query(
      `SELECT e.xmin::text AS row_xid, (SELECT ev.xmin::text FROM events ev WHERE ev.id = $2::bigint) AS event_xid FROM equipment e WHERE e.id = $1`,
      [registered.id, log[2].id],
    );
    assert.equal(rows[0].row_xid, rows[0].event_xid);
  });

  it('an agglomeration bus needs no location; an agglomeration may place assets in any commune of the territory', async () => {
    const bus = ok(
      await env.gql(`mutation { registerEquipment(input: { kind: BUS, reference: "BUS-250", collectivityId: "chalons-agglo",
          details: { fleetNumber: "250", capacity: 100, energy: "ELECTRIC", signalPriority: true } }) { id location { coordinates } communeInseeCode } }`, { token: admin }),
    ).registerEquipment;
    assert.match(bus.id, /^bus-/);
    assert.equal(bus.location, null);
    const stop = ok(
      await env.gql(`mutation { registerEquipment(input: { kind: BUS_STOP, reference: "STOP-9", collectivityId: "chalons-agglo",
          location: { lon: 4.305, lat: 48.96 }, details: { name: "Fagnières Mairie", shelter: true } }) { communeInseeCode } }`, { token: admin }),
    ).registerEquipment;
    assert.equal(stop.communeInseeCode, '51242');
  });

  it('a failed write rolls back the row and the event together', async () => {
    const count = async () => (await env.pool.query(`SELECT (SELECT count(*) FROM equipment)::int + (SELECT count(*) FROM events)::int AS n`)).rows[0].n;
    const before = await count();
    // Passes the checks before the insert, then violates the unique reference inside the transaction:
    // two concurrent registrations of one reference, exactly one wins.
    const attempt = () =>
      env.gql(`mutation { registerEquipment(input: { kind: WIFI_HOTSPOT, reference: "WIFI-RACE", collectivityId: "chalons", location: { lon: ${CENTRE.lon}, lat: ${CENTRE.lat} } }) { id } }`, { token: operator });
    const results = await Promise.all([attempt(), attempt(), attempt()]);
    const winners = results.filter((r) => !r.errors);
    assert.equal(winners.length, 1, JSON.stringify(results));
    for (const loser of results.filter((r) => r.errors)) {
      assert.equal(loser.errors![0].extensions?.code, 'BAD_USER_INPUT');
      assert.equal(loser.errors![0].extensions?.field, 'input.reference');
    }
    assert.equal(await count(), before + 2, 'one row and one event');
  });

  it('a subscriber receives equipmentChanged after a mutation, filtered by kind, camera positions restricted', async () => {
    const { subscribe, dispose } = subscriptions(env.service.url);
    try {
      const cameras = subscribe('subscription { equipmentChanged(kinds: [CAMERA]) { cursor change equipment { id location { coordinates } } } }');
      const everything = subscribe('subscription { equipmentChanged(collectivityIds: ["chalons"]) { cursor change equipment { id status } } }', operator);
      // Let both subscriptions reach the bus before writing.
      await new Promise((resolve) => setTimeout(resolve, 500));

      ok(await env.gql('mutation { updateEquipment(id: "lp-0002", input: { status: MAINTENANCE }) { id } }', { token: operator }));
      ok(await env.gql('mutation { updateEquipment(id: "cam-1", input: { status: FAULT }) { id } }', { token: operator }));

      const all = await everything.waitFor(2);
      assert.deepEqual(all.map((m) => [m.data.equipmentChanged.change, m.data.equipmentChanged.equipment.id, m.data.equipmentChanged.equipment.status]), [
        ['UPDATED', 'lp-0002', 'MAINTENANCE'],
        ['UPDATED', 'cam-1', 'FAULT'],
      ]);
      const [camera] = await cameras.waitFor(1);
      assert.equal(camera.data.equipmentChanged.equipment.id, 'cam-1');
      assert.equal(camera.data.equipmentChanged.equipment.location, null, 'the public never gets a camera position');
      assert.ok(BigInt(all[1].data.equipmentChanged.cursor) > BigInt(all[0].data.equipmentChanged.cursor));

      // Resuming after the first change replays the second only.
      const resumed = subscribe(`subscription { equipmentChanged(collectivityIds: ["chalons"], after: "${all[0].data.equipmentChanged.cursor}") { equipment { id } } }`);
      const [replayed] = await resumed.waitFor(1);
      assert.equal(replayed.data.equipmentChanged.equipment.id, 'cam-1');
      assert.equal(cameras.received.length, 1, 'the light point change was filtered out by kind');

      const badCursor = subscribe('subscription { equipmentChanged(after: "not-a-cursor") { cursor } }');
      const [rejected] = await badCursor.waitFor(1);
      assert.equal(rejected.errors[0].extensions.code, 'BAD_USER_INPUT');
      assert.equal(rejected.errors[0].extensions.field, 'after');
    } finally {
      await dispose();
    }
  });
});
