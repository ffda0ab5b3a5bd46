/**
 * An asset's alarm and its status agree, through the gateway with territory, equipment and
 * telemetry on one seeded database (and a broker of their own): a lamp-failure alarm raised by a
 * reading sent to the gateway's `/ingest` puts the light point in FAULT through the equipment
 * domain's own write path (its `status`, an `equipmentChanged` event by `telemetry`), clearing it
 * restores IN_SERVICE, MAINTENANCE is left alone, an asset stays FAULT while another fault alarm is
 * open, and events that arrive while the equipment service is down are applied exactly once when
 * it comes back (two instances competing for them).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { COLLECTIVITY_IDS } from '@connecte/shared/auth';
import { registeredSubgraph } from '@connecte/shared/registry';
import { senmlPack, type MetricName } from '@connecte/shared/senml';
import { startSubgraph, type RunningService } from '@connecte/shared/server';
import {
  createTestDatabase,
  gql,
  loadSubgraphService,
  startHub,
  startTestBroker,
  subscriptions,
  tokenFor,
  type GraphQLResponse,
  type Hub,
  type TestBroker,
  type TestDatabase,
} from '@connecte/testkit';
import { telemetryResourcesFor } from '../subgraphs/telemetry/src/context.js';
import type { TelemetryResources } from '../subgraphs/telemetry/src/resources.js';

// Far from UTC, so a date read back as local midnight would show in the snapshots compared below.
process.env.TZ = 'Pacific/Auckland';

const minutes = (n: number) => n * 60_000;

let database: TestDatabase;
let broker: TestBroker;
let hub: Hub;
let r: TelemetryResources;
let admin: string;
const keys = new Map<string, string>();
const used = new Set<string>();

const q = (query: string, token?: string, variables?: Record<string, unknown>) => gql(hub.gatewayUrl, query, { token, variables });
const ok = (response: GraphQLResponse): any => {
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data;
};

async function eventually<T>(check: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

/** A SenML pack through the gateway's `/ingest`, with the collectivity's ingest key. */
async function report(equipmentId: string, collectivityId: string, at: number, values: Partial<Record<MetricName, number | boolean>>) {
  const response = await fetch(hub.gatewayUrl.replace(/\/graphql$/, '/ingest'), {
    method: 'POST',
    headers: { 'content-type': 'application/senml+json', authorization: `Bearer ${keys.get(collectivityId)}` },
    body: JSON.stringify(senmlPack(`urn:dev:connecte:${equipmentId}`, at / 1000, values)),
  });
  const body = (await response.json()) as { rejected: unknown[] };
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.deepEqual(body.rejected, []);
}

async function pick(collectivityId: string, status: string): Promise<string> {
  const { rows } = await hub.subgraphs.equipment.db.pool.query<{ id: string }>(
    `SELECT id FROM equipment WHERE kind = 'LIGHT_POINT' AND collectivity_id = $1 AND status = $2 ORDER BY id`,
    [collectivityId, status],
  );
  const id = rows.map((row) => row.id).find((candidate) => !used.has(candidate));
  assert.ok(id);
  used.add(id);
  return id;
}

const statusOf = async (id: string) => ok(await q(`query($id: ID!) { equipment(id: $id) { status } }`, admin, { id })).equipment.status as string;

/** Status changes the equipment domain recorded on telemetry's account, oldest first. */
async function telemetryChanges(id: string): Promise<[string, string][]> {
  const { rows } = await hub.subgraphs.equipment.db.pool.query<{ payload: any }>(
    `SELECT payload FROM events WHERE topic = 'equipment.changed' AND payload->>'equipmentId' = $1 AND payload->'actor'->>'sub' = 'telemetry' ORDER BY id`,
    [id],
  );
  return rows.map((row) => {
    const change = row.payload.changes.find((c: any) => c.field === 'status');
    return [change.before, change.after];
  });
}

/** Waits until the equipment domain has applied every `telemetry.alarm` event written so far. */
async function equipmentCaughtUp(): Promise<void> {
  await eventually(async () => {
    const { rows } = await hub.subgraphs.equipment.db.pool.query<{ behind: boolean }>(
      `SELECT (SELECT coalesce(max(id), 0) FROM events WHERE topic = 'telemetry.alarm') >
              coalesce((SELECT position FROM event_consumers WHERE consumer = 'equipment.alarm-status'), 0) AS behind`,
    );
    assert.equal(rows[0].behind, false, 'alarm-status is behind');
  });
}

before(async () => {
  database = await createTestDatabase();
  broker = await startTestBroker();
  hub = await startHub(database.url, { ...broker.env, ALARM_SWEEP_INTERVAL_MS: '0' }, { subgraphs: ['territory', 'equipment', 'telemetry'] });
  r = telemetryResourcesFor(hub.subgraphs.telemetry.db);
  admin = await tokenFor(hub.config, ['admin'], [...COLLECTIVITY_IDS]);
  for (const collectivityId of COLLECTIVITY_IDS) {
    const issued = ok(await q(`mutation($c: ID!) { issueIngestKey(collectivityId: $c, label: "status tests") { secret { token } } }`, admin, { c: collectivityId }));
    keys.set(collectivityId, issued.issueIngestKey.secret.token);
  }
});
after(async () => {
  await hub?.close();
  await broker?.stop();
  await database?.drop();
});

describe('an asset’s status follows its fault alarms', () => {
  it('puts a light point with a lamp failure in FAULT and back IN_SERVICE when it clears, as equipment changes by telemetry', async () => {
    const lamp = await pick('chalons', 'IN_SERVICE');
    const operator = await tokenFor(hub.config, ['operator'], ['chalons']);
    const { rows } = await hub.subgraphs.equipment.db.pool.query<{ id: string }>(`SELECT coalesce(max(id), 0)::text AS id FROM events`);
    const subs = subscriptions(hub.gatewayUrl);
    try {
      const changes = subs.subscribe(
        `subscription { equipmentChanged(collectivityIds: ["chalons"], kinds: [LIGHT_POINT], after: "${rows[0].id}") {
          change actor { sub roles } changes { field before after } equipment { id status alarms(active: true) { edges { node { code state } } } } } }`,
        operator,
      );
      // The alarm's stream through the gateway: its asset's fields come from the equipment subgraph.
      const alarms = subs.subscribe(
        `subscription { alarmChanged(filter: { collectivityIds: ["chalons"] }, after: "${rows[0].id}") {
          action alarm { code state equipment { id kind reference } } } }`,
        operator,
      );
      await report(lamp, 'chalons', Date.now() - minutes(5), { power: 0, fault: true });
      const faulty = await eventually(async () => {
        const data = ok(await q(`query($id: ID!) { equipment(id: $id) { status alarms(active: true) { edges { node { code state severity } } } } }`, operator, { id: lamp }));
        assert.equal(data.equipment.status, 'FAULT');
        return data.equipment;
      });
      assert.deepEqual(faulty.alarms.edges.map((e: any) => e.node), [{ code: 'LAMP_FAILURE', state: 'RAISED', severity: 'MAJOR' }]);
      const [fault] = (await changes.waitFor(1)).map((m) => m.data.equipmentChanged);
      assert.deepEqual(fault.change, 'UPDATED');
      assert.deepEqual(fault.actor, { sub: 'telemetry', roles: [] });
      assert.deepEqual(fault.changes.filter((c: any) => c.field === 'status'), [{ field: 'status', before: 'IN_SERVICE', after: 'FAULT' }]);
      assert.equal(fault.equipment.id, lamp);
      const [raised] = (await alarms.waitFor(1)).map((m) => m.data.alarmChanged);
      assert.deepEqual(raised.action, 'RAISED');
      assert.deepEqual([raised.alarm.code, raised.alarm.state, raised.alarm.equipment.id, raised.alarm.equipment.kind], ['LAMP_FAILURE', 'RAISED', lamp, 'LIGHT_POINT']);
      assert.match(raised.alarm.equipment.reference, /^LP-/);

      await report(lamp, 'chalons', Date.now() - minutes(1), { power: 36, fault: false });
      await eventually(async () => assert.equal(await statusOf(lamp), 'IN_SERVICE'));
      const [, restored] = (await changes.waitFor(2)).map((m) => m.data.equipmentChanged);
      assert.deepEqual(restored.changes.filter((c: any) => c.field === 'status'), [{ field: 'status', before: 'FAULT', after: 'IN_SERVICE' }]);
      assert.deepEqual(restored.equipment.alarms.edges, []);
      assert.deepEqual(await telemetryChanges(lamp), [
        ['IN_SERVICE', 'FAULT'],
        ['FAULT', 'IN_SERVICE'],
      ]);
      // The snapshot the change recorded is the asset as equipment itself serves it (dates included, whatever the time zone).
      const { rows: recorded } = await hub.subgraphs.equipment.db.pool.query<{ snapshot: any }>(
        `SELECT payload->'snapshot' AS snapshot FROM events WHERE topic = 'equipment.changed' AND payload->>'equipmentId' = $1 ORDER BY id DESC LIMIT 1`,
        [lamp],
      );
      const served = ok(await q(`query($id: ID!) { equipment(id: $id) { reference status installedOn collectivity { id } location { coordinates } } }`, operator, { id: lamp })).equipment;
      assert.deepEqual(
        [recorded[0]!.snapshot.reference, recorded[0]!.snapshot.status, recorded[0]!.snapshot.installedOn, recorded[0]!.snapshot.collectivityId],
        [served.reference, served.status, served.installedOn, served.collectivity.id],
      );
      assert.ok(served.installedOn, 'the seed gives light points an installation date');
    } finally {
      await subs.dispose();
    }
  });

  it('leaves a light point in MAINTENANCE as it is, alarm or not', async () => {
    const lamp = await pick('chalons', 'MAINTENANCE');
    await report(lamp, 'chalons', Date.now() - minutes(5), { fault: true });
    await equipmentCaughtUp();
    assert.equal(await statusOf(lamp), 'MAINTENANCE');
    assert.deepEqual((await r.db.pool.query(`SELECT state FROM alarms WHERE equipment_id = $1`, [lamp])).rows, [{ state: 'RAISED' }]);
    await report(lamp, 'chalons', Date.now() - minutes(2), { fault: false });
    await equipmentCaughtUp();
    assert.equal(await statusOf(lamp), 'MAINTENANCE');
    assert.deepEqual(await telemetryChanges(lamp), []);
  });

  it('keeps an asset in FAULT while another fault alarm is open, and restores it when the last one clears', async () => {
    // Fagnières makes a silent device a fault of its asset.
    ok(await q(`mutation { configureAlarmRule(collectivityId: "fagnieres", code: "DEVICE_SILENT", input: { setsFault: true }) { setsFault } }`, admin));
    const lamp = await pick('fagnieres', 'IN_SERVICE');
    const now = Date.now();
    await report(lamp, 'fagnieres', now - minutes(40), { fault: true });
    await eventually(async () => assert.equal(await statusOf(lamp), 'FAULT'));
    await r.alarms.sweep(new Date(now));
    const open = (await r.db.pool.query<{ id: string; code: string }>(`SELECT id::text, code FROM alarms WHERE equipment_id = $1 AND state <> 'CLEARED' ORDER BY id`, [lamp])).rows;
    assert.deepEqual(open.map((a) => a.code), ['LAMP_FAILURE', 'DEVICE_SILENT']);

    // The lamp is repaired by hand; the device is still silent: FAULT.
    ok(await q(`mutation($id: ID!) { clearAlarm(id: $id, note: "lamp replaced") { state } }`, admin, { id: open[0].id }));
    await equipmentCaughtUp();
    assert.equal(await statusOf(lamp), 'FAULT');
    // It reports again, no fault: the silence clears, and with it the last fault alarm.
    await report(lamp, 'fagnieres', now, { fault: false, power: 35 });
    await eventually(async () => assert.equal(await statusOf(lamp), 'IN_SERVICE'));
    assert.deepEqual(await telemetryChanges(lamp), [
      ['IN_SERVICE', 'FAULT'],
      ['FAULT', 'IN_SERVICE'],
    ]);
  });

  it('applies the events that came while the equipment service was down exactly once, with two instances competing for them', async () => {
    const [broken, repaired, acknowledged] = [await pick('saint-martin-sur-le-pre', 'IN_SERVICE'), await pick('saint-martin-sur-le-pre', 'IN_SERVICE'), await pick('saint-martin-sur-le-pre', 'IN_SERVICE')];
    const equipment = hub.subgraphs.equipment;
    const port = equipment.port;
    await equipment.close();

    const t = Date.now() - minutes(10);
    await report(broken, 'saint-martin-sur-le-pre', t, { fault: true });
    await report(repaired, 'saint-martin-sur-le-pre', t, { fault: true });
    await report(repaired, 'saint-martin-sur-le-pre', t + 1_000, { fault: true });
    await report(acknowledged, 'saint-martin-sur-le-pre', t, { fault: true });
    const [alarm] = (await r.db.pool.query<{ id: string }>(`SELECT id::text FROM alarms WHERE equipment_id = $1`, [acknowledged])).rows;
    ok(await q(`mutation($id: ID!) { acknowledgeAlarm(id: $id, note: "on it") { state } }`, admin, { id: alarm!.id }));
    await report(repaired, 'saint-martin-sur-le-pre', t + 2_000, { fault: false });

    // Back on its port (the gateway's address for it), and a second instance beside it.
    const service = await loadSubgraphService(registeredSubgraph('equipment'));
    const instances: RunningService[] = await Promise.all([
      startSubgraph(service, { config: hub.config, port }),
      startSubgraph(service, { config: hub.config, port: 0 }),
    ]);
    hub.subgraphs.equipment = instances[0];
    try {
      await equipmentCaughtUp();
      // Whatever else might still arrive, arrives now.
      await sleep(500);
      assert.deepEqual([await statusOf(broken), await statusOf(repaired), await statusOf(acknowledged)], ['FAULT', 'IN_SERVICE', 'FAULT']);
      assert.deepEqual(await telemetryChanges(broken), [['IN_SERVICE', 'FAULT']]);
      assert.deepEqual(await telemetryChanges(repaired), [
        ['IN_SERVICE', 'FAULT'],
        ['FAULT', 'IN_SERVICE'],
      ]);
      assert.deepEqual(await telemetryChanges(acknowledged), [['IN_SERVICE', 'FAULT']]);
      const { rows } = await instances[0].db.pool.query(`SELECT equipment_id FROM equipment_alarm_faults WHERE equipment_id = ANY($1) ORDER BY equipment_id`, [
        [broken, repaired, acknowledged],
      ]);
      assert.deepEqual(rows.map((row) => row.equipment_id), [broken, acknowledged].sort());
    } finally {
      await instances[1].close();
    }
  });
});
