/**
 * Events say what happened: each `equipment.changed` event carries who made the change, the
 * fields it changed with their values before and after, and the asset right after it, so a
 * replay shows history, not today's row. Restricted camera values stay hidden in replays.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { COLLECTIVITY_IDS, ROLES } from '@connecte/shared/auth';
import { publishEvent } from '@connecte/shared/events';
import { subscriptions } from '@connecte/testkit';
import { FAGNIERES_POINT, startEquipment, type EquipmentTestEnv } from './fixtures.js';

const CHANGE = `cursor change occurredAt actor { sub roles } changes { field before after redacted } reason
  snapshot { id kind reference name status collectivity { id } communeInseeCode location { type coordinates } installedOn
             details parentId createdAt updatedAt decommissionedAt }
  equipment { id status name }`;

const replay = (filter = 'collectivityIds: ["chalons"]') => `subscription { equipmentChanged(${filter}, after: "0") { ${CHANGE} } }`;

describe('equipment change history', () => {
  let env: EquipmentTestEnv;
  let operator: string;
  let admin: string;
  let operatorFagnieres: string;
  let streams: ReturnType<typeof subscriptions>;

  before(async () => {
    env = await startEquipment();
    operator = await env.token(['operator'], ['chalons']);
    admin = await env.token(['admin', 'agent'], ['chalons']);
    operatorFagnieres = await env.token(['operator'], ['fagnieres']);
    streams = subscriptions(env.service.url);
  });
  after(async () => {
    await streams?.dispose();
    await env?.close();
  });

  const ok = (response: { errors?: unknown; data?: any }): any => {
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    return response.data!;
  };
  const update = (id: string, input: Record<string, unknown>, token: string) =>
    env.gql('mutation($id: ID!, $input: UpdateEquipmentInput!) { updateEquipment(id: $id, input: $input) { id status name updatedAt } }', {
      variables: { id, input },
      token,
    });
  const eventCount = async () => (await env.pool.query(`SELECT count(*)::int AS n FROM events`)).rows[0].n as number;

  /** Replays from the start until `n` changes of `equipmentId` arrived; returns those. */
  const replayOf = async (equipmentId: string, n: number, token?: string, filter?: string) => {
    const stream = streams.subscribe(replay(filter), token);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const mine = stream.received.filter((m) => m.data?.equipmentChanged.snapshot?.id === equipmentId || m.data?.equipmentChanged.equipment?.id === equipmentId);
      if (mine.length >= n) return mine.map((m) => m.data.equipmentChanged);
      assert.ok(!stream.received.some((m) => m.errors), JSON.stringify(stream.received));
      assert.ok(Date.now() < deadline, `timed out: ${JSON.stringify(stream.received)}`);
      await stream.waitFor(stream.received.length + 1).catch(() => {});
    }
  };

  it("a replay from after: 0 shows each event's own before/after, actor and snapshot, not today's row", async () => {
    const id = ok(
      await env.gql(`mutation { registerEquipment(input: { kind: LIGHT_POINT, reference: "LP-CHA-HIST-1", collectivityId: "chalons",
          location: { lon: 4.3662, lat: 48.9582 }, parentId: "cab-1", details: { powerW: 36, lampType: "LED", dimmable: false } }) { id } }`, { token: operator }),
    ).registerEquipment.id;
    ok(await update(id, { status: 'FAULT', details: { powerW: 30 } }, admin));
    ok(await update(id, { name: 'Allée des Tilleuls' }, operator));
    const decommissioned = ok(
      await env.gql(`mutation { decommissionEquipment(id: "${id}", reason: "replaced by LP-CHA-HIST-2") { decommissionedAt } }`, { token: operator }),
    ).decommissionEquipment;

    const [registered, broke, named, removed] = await replayOf(id, 4, operator);
    const operatorActor = { sub: 'test-operator-chalons', roles: ['operator'] };

    assert.equal(registered.change, 'REGISTERED');
    assert.deepEqual(registered.actor, operatorActor);
    assert.ok(registered.changes.every((c: any) => c.before === null && !c.redacted), 'a registration has nothing before');
    assert.deepEqual(
      registered.changes.map((c: any) => [c.field, c.after]),
      [
        ['kind', 'LIGHT_POINT'],
        ['reference', 'LP-CHA-HIST-1'],
        ['status', 'IN_SERVICE'],
        ['collectivityId', 'chalons'],
        ['communeInseeCode', '51108'],
        ['location', { type: 'Point', coordinates: [4.3662, 48.9582] }],
        ['parentId', 'cab-1'],
        ['details.dimmable', false],
        ['details.lampType', 'LED'],
        ['details.powerW', 36],
      ],
      'every field it set, the unset name and installation day left out',
    );
    assert.equal(registered.snapshot.status, 'IN_SERVICE');
    assert.equal(registered.snapshot.name, null);
    assert.deepEqual(registered.snapshot.details, { powerW: 36, lampType: 'LED', dimmable: false });
    assert.deepEqual(registered.snapshot.location, { type: 'Point', coordinates: [4.3662, 48.9582] });
    assert.deepEqual(registered.snapshot.collectivity, { id: 'chalons' });
    assert.equal(registered.snapshot.decommissionedAt, null);

    assert.equal(broke.change, 'UPDATED');
    assert.deepEqual(broke.actor, { sub: 'test-admin-agent-chalons', roles: ['admin', 'agent'] });
    assert.deepEqual(broke.changes, [
      { field: 'status', before: 'IN_SERVICE', after: 'FAULT', redacted: false },
      { field: 'details.powerW', before: 36, after: 30, redacted: false },
    ]);
    assert.equal(broke.snapshot.status, 'FAULT', 'the replayed UPDATED shows the asset as it was then');
    assert.equal(broke.snapshot.details.powerW, 30);
    assert.equal(broke.snapshot.name, null);

    assert.deepEqual(named.changes, [{ field: 'name', before: null, after: 'Allée des Tilleuls', redacted: false }]);
    assert.equal(named.snapshot.name, 'Allée des Tilleuls');
    assert.equal(named.snapshot.status, 'FAULT');

    assert.equal(removed.change, 'DECOMMISSIONED');
    assert.equal(removed.reason, 'replaced by LP-CHA-HIST-2');
    assert.deepEqual(removed.changes, [
      { field: 'status', before: 'FAULT', after: 'DECOMMISSIONED', redacted: false },
      { field: 'decommissionedAt', before: null, after: decommissioned.decommissionedAt, redacted: false },
    ]);
    assert.equal(removed.snapshot.decommissionedAt, decommissioned.decommissionedAt);

    for (const event of [registered, broke, named, removed]) {
      assert.equal(event.equipment.status, 'DECOMMISSIONED', '`equipment` stays the live asset');
      assert.equal(event.reason === null, event !== removed);
    }
    const times = [registered, broke, named, removed].map((e) => Date.parse(e.occurredAt));
    assert.deepEqual([...times].sort((a, b) => a - b), times);

    // The public sees the same history of a light point, but not who made it.
    const publicReplay = await replayOf(id, 4);
    assert.deepEqual(publicReplay.map((e) => e.actor), [null, null, null, null]);
    assert.deepEqual(publicReplay.map((e) => e.changes), [registered, broke, named, removed].map((e) => e.changes));
    // Nor does an operator of another collectivity.
    const foreign = await replayOf(id, 4, operatorFagnieres);
    assert.deepEqual(foreign.map((e) => e.actor), [null, null, null, null]);
  });

  it("a camera's restricted values stay hidden in replays from those who may not see it", async () => {
    ok(await update('cam-2', { name: 'Caméra rue de Marne', location: { lon: 4.3667, lat: 48.9577 }, status: 'FAULT', details: { retentionDays: 20 } }, operator));
    ok(await env.gql('mutation { decommissionEquipment(id: "cam-2", reason: "moved to the corner of rue de Marne") { id } }', { token: operator }));

    const [mine, mineRemoved] = await replayOf('cam-2', 2, operator, 'kinds: [CAMERA]');
    assert.deepEqual(mine.changes, [
      { field: 'name', before: null, after: 'Caméra rue de Marne', redacted: false },
      { field: 'status', before: 'IN_SERVICE', after: 'FAULT', redacted: false },
      { field: 'location', before: { type: 'Point', coordinates: [4.3665, 48.9575] }, after: { type: 'Point', coordinates: [4.3667, 48.9577] }, redacted: false },
      { field: 'details.retentionDays', before: 15, after: 20, redacted: false },
    ]);
    assert.deepEqual(mine.snapshot.location, { type: 'Point', coordinates: [4.3667, 48.9577] });
    assert.equal(mineRemoved.reason, 'moved to the corner of rue de Marne');

    for (const token of [undefined, operatorFagnieres, await env.token(['agent'], ['chalons'])]) {
      const [hidden, hiddenRemoved] = await replayOf('cam-2', 2, token, 'kinds: [CAMERA]');
      assert.deepEqual(hidden.changes, [
        { field: 'name', before: null, after: null, redacted: true },
        { field: 'status', before: 'IN_SERVICE', after: 'FAULT', redacted: false },
        { field: 'location', before: null, after: null, redacted: true },
        { field: 'details.retentionDays', before: null, after: null, redacted: true },
      ]);
      const { snapshot } = hidden;
      assert.deepEqual(
        [snapshot.name, snapshot.location, snapshot.communeInseeCode, snapshot.details, snapshot.parentId],
        [null, null, null, null, null],
      );
      assert.equal(snapshot.status, 'FAULT');
      assert.equal(hidden.actor, null);
      assert.equal(hiddenRemoved.reason, null, 'the reason may say where the camera stood');
      assert.equal(hidden.equipment.name, null);
    }
  });

  it('every role of every collectivity: only operators and admins of the camera’s own collectivity see its history in full', async () => {
    ok(await update('cam-3', { name: 'Caméra mairie de Fagnières', location: { lon: FAGNIERES_POINT.lon + 0.0001, lat: FAGNIERES_POINT.lat } }, operatorFagnieres));
    const viewers: { who: string; token?: string; sees: boolean }[] = [{ who: 'the public', sees: false }];
    for (const role of ROLES) {
      for (const collectivity of COLLECTIVITY_IDS) {
        viewers.push({
          who: `${role} of ${collectivity}`,
          token: await env.token([role], [collectivity]),
          sees: (role === 'operator' || role === 'admin') && collectivity === 'fagnieres',
        });
      }
    }
    for (const { who, token, sees } of viewers) {
      const [change] = await replayOf('cam-3', 1, token, 'kinds: [CAMERA]');
      const location = change.changes.find((c: { field: string }) => c.field === 'location');
      assert.equal(location.redacted, !sees, `${who}: location redacted`);
      assert.equal(location.after === null, !sees, `${who}: location value`);
      assert.equal(change.snapshot.location === null, !sees, `${who}: snapshot location`);
      assert.equal(change.actor === null, !sees, `${who}: actor`);
      assert.equal(change.equipment.name === null, !sees, `${who}: live name`);
    }
  });

  it('an update that changes no value writes nothing and publishes nothing', async () => {
    const { rows: [row] } = await env.pool.query(`SELECT status::text, updated_at::text, details FROM equipment WHERE id = 'lp-0003'`);
    const events = await eventCount();
    const same = ok(await update('lp-0003', { status: row.status, details: { powerW: row.details.powerW }, name: null }, operator)).updateEquipment;
    assert.equal(same.status, row.status);
    assert.equal(await eventCount(), events, 'no event');
    const { rows: [after] } = await env.pool.query(`SELECT updated_at::text FROM equipment WHERE id = 'lp-0003'`);
    assert.equal(after.updated_at, row.updated_at, 'updatedAt untouched');
    const line = env.logLines.findLast((l) => l.equipmentId === 'lp-0003');
    assert.equal(line?.msg, 'equipment update changed nothing');
    assert.deepEqual(line?.fields, []);
    assert.deepEqual(line?.actor, { sub: 'test-operator-chalons', roles: ['operator'] });

    // One real change among unchanged ones is an event with that change only.
    ok(await update('lp-0003', { status: row.status, details: { powerW: row.details.powerW + 1 } }, operator));
    const { rows: [event] } = await env.pool.query(`SELECT payload FROM events ORDER BY id DESC LIMIT 1`);
    assert.deepEqual(event.payload.changes, [{ field: 'details.powerW', before: row.details.powerW, after: row.details.powerW + 1 }]);
  });

  it('concurrent updates of one asset record a chain of before/after values, none stale', async () => {
    const { rows: [start] } = await env.pool.query(`SELECT (details->>'powerW')::float8 AS power FROM equipment WHERE id = 'lp-0004'`);
    const powers = Array.from({ length: 12 }, (_, i) => 100 + i);
    const results = await Promise.all(powers.map((powerW) => update('lp-0004', { details: { powerW } }, operator)));
    results.forEach(ok);
    const { rows } = await env.pool.query(
      `SELECT payload->'changes' AS changes FROM events WHERE payload->>'equipmentId' = 'lp-0004' ORDER BY id`,
    );
    assert.equal(rows.length, powers.length);
    let previous = start.power;
    for (const { changes } of rows) {
      assert.equal(changes.length, 1, JSON.stringify(changes));
      assert.equal(changes[0].field, 'details.powerW');
      assert.equal(changes[0].before, previous, 'each change starts where the previous one ended');
      previous = changes[0].after;
    }
    const { rows: [end] } = await env.pool.query(`SELECT (details->>'powerW')::float8 AS power FROM equipment WHERE id = 'lp-0004'`);
    assert.equal(previous, end.power, 'and the last one ends at the row as stored');
    assert.deepEqual([...rows.map((r) => r.changes[0].after)].sort(), [...powers].sort(), 'every update recorded once');
  });

  it("each mutation's log line names the actor and the fields it changed, without their values", async () => {
    const id = ok(
      await env.gql(`mutation { registerEquipment(input: { kind: WIFI_HOTSPOT, reference: "WIFI-LOG-1", collectivityId: "chalons",
          location: { lon: 4.3663, lat: 48.9583 } }) { id } }`, { token: admin }),
    ).registerEquipment.id;
    ok(await update(id, { location: { lon: 4.3664, lat: 48.9584 } }, operator));
    ok(await env.gql(`mutation { decommissionEquipment(id: "${id}", reason: "vandalised") { id } }`, { token: admin }));
    const lines = env.logLines.filter((l) => l.equipmentId === id);
    const { rows: events } = await env.pool.query(`SELECT id::text FROM events WHERE payload->>'equipmentId' = $1 ORDER BY id`, [id]);
    assert.deepEqual(
      lines.map(({ msg, level, actor, change, fields, kind, collectivityId, eventId }) => ({ msg, level, actor, change, fields, kind, collectivityId, eventId })),
      [
        {
          msg: 'equipment changed', level: 'info', actor: { sub: 'test-admin-agent-chalons', roles: ['admin', 'agent'] }, change: 'REGISTERED',
          fields: ['kind', 'reference', 'status', 'collectivityId', 'communeInseeCode', 'location'], kind: 'WIFI_HOTSPOT', collectivityId: 'chalons', eventId: events[0].id,
        },
        {
          msg: 'equipment changed', level: 'info', actor: { sub: 'test-operator-chalons', roles: ['operator'] }, change: 'UPDATED',
          fields: ['location'], kind: 'WIFI_HOTSPOT', collectivityId: 'chalons', eventId: events[1].id,
        },
        {
          msg: 'equipment changed', level: 'info', actor: { sub: 'test-admin-agent-chalons', roles: ['admin', 'agent'] }, change: 'DECOMMISSIONED',
          fields: ['status', 'decommissionedAt'], kind: 'WIFI_HOTSPOT', collectivityId: 'chalons', eventId: events[2].id,
        },
      ],
    );
    assert.ok(lines.every((l) => typeof l.requestId === 'string' && l.requestId.length > 0), 'tied to its request');
    assert.doesNotMatch(JSON.stringify(lines), /4\.3664|48\.9584|vandalised/, 'no values in the logs');
    // A refused write logs no change.
    const refused = await update(id, { name: 'x' }, operator);
    assert.equal(refused.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.equal(env.logLines.filter((l) => l.equipmentId === id).length, 3);
  });

  it('replays events recorded before history was kept, with what they have', async () => {
    const client = new pg.Client({ connectionString: env.db.url });
    await client.connect();
    try {
      await client.query('BEGIN');
      await publishEvent(client, {
        topic: 'equipment.changed',
        collectivityId: 'chalons',
        payload: { equipmentId: 'lp-0006', change: 'UPDATED', kind: 'LIGHT_POINT', status: 'FAULT' },
      });
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    const [legacy] = await replayOf('lp-0006', 1, operator);
    assert.equal(legacy.change, 'UPDATED');
    assert.deepEqual([legacy.actor, legacy.changes, legacy.snapshot, legacy.reason], [null, [], null, null]);
    assert.equal(legacy.equipment.id, 'lp-0006');
    assert.ok(Date.parse(legacy.occurredAt) > Date.now() - 60_000);
  });
});
