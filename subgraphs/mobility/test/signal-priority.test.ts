/**
 * Transit-signal priority on the machine's broker: which states ask for priority, the downlink
 * sent only once the request is committed and once per pass (also when the worker's connection
 * to the broker drops between the insert and the send), acks recorded exactly once (a redelivered
 * ack counts once; unknown cids, another controller's cid and malformed JSON are ignored without
 * harm), denials, expiry, and the pure models (geometry, ETA, seconds saved, ack parsing).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { randomUUID } from 'node:crypto';
import {
  ackTopicParts,
  downlinkOf,
  estimatedSecondsSaved,
  etaSeconds,
  intersectionsAlong,
  parseAck,
} from '../src/signal-priority.js';
import type { AssetRow } from '../src/types.js';
import {
  CONTROLLER_AT_M,
  eventually,
  fakeController,
  feed,
  installPriorityLines,
  requestsOf,
  sleep,
  spreadControllers,
  startPriorityService,
  stateOn,
  type PriorityEnv,
  type PriorityLine,
} from './priority-fixture.js';

describe('models', () => {
  const controller = (id: string, lon: number, lat: number): AssetRow => ({
    equipmentId: id,
    collectivityId: 'chalons',
    kind: 'TRAFFIC_SIGNAL_CONTROLLER',
    reference: id,
    name: id,
    status: 'IN_SERVICE',
    location: [lon, lat],
    parentId: null,
    details: {},
  });

  it('finds the controllers within 30 m of a shape, at their distance along it, in order', () => {
    // 1 km east along 48.95° N, a point every 0.001° of longitude (~73 m).
    const coordinates = Array.from({ length: 14 }, (_, i) => [4.36 + i * 0.001, 48.95] as [number, number]);
    const metresPerDeg = 111_320 * Math.cos((48.95 * Math.PI) / 180);
    const distances = coordinates.map((_, i) => i * 0.001 * metresPerDeg);
    const north = (m: number) => 48.95 + m / 111_195;
    const found = intersectionsAlong({ coordinates, distances }, [
      controller('far', 4.365, north(45)),
      controller('b', 4.3705, north(-20)),
      controller('a', 4.3625, north(3)),
    ]);
    assert.deepEqual(found.map((f) => f.controllerId), ['a', 'b']);
    assert.ok(Math.abs(found[0].alongM - 0.0025 * metresPerDeg) < 1, `a at ${found[0].alongM}`);
    assert.ok(Math.abs(found[0].offsetM - 3) < 0.2 && Math.abs(found[1].offsetM - 20) < 0.3);
    assert.ok(Math.abs(found[1].alongM - 0.0105 * metresPerDeg) < 1);
  });

  it('estimates the ETA from the speed, or 6 m/s when still', () => {
    assert.equal(etaSeconds(100, 10), 10);
    assert.equal(etaSeconds(120, 0), 20);
    assert.equal(etaSeconds(120, null), 20);
  });

  it('estimates the seconds a grant saves from the controller’s phases or cycle', () => {
    assert.equal(estimatedSecondsSaved({ phases: 2 }), 6);
    assert.equal(estimatedSecondsSaved({ phases: 3 }), 14.2);
    assert.equal(estimatedSecondsSaved({ phases: 4 }), 22.5);
    assert.equal(estimatedSecondsSaved({}), 6);
    assert.equal(estimatedSecondsSaved({ phases: 2, cycleSeconds: 90 }), 9);
    assert.equal(estimatedSecondsSaved({ phases: 'x', cycleSeconds: -1 }), 6);
  });

  it('parses acks and refuses what is not one', () => {
    const cid = randomUUID();
    assert.deepEqual(parseAck(JSON.stringify({ cid, ok: true })), { ok: true, cid, granted: true, error: null });
    assert.deepEqual(parseAck(JSON.stringify({ cid, ok: false, error: ' busy\n' })), { ok: true, cid, granted: false, error: 'busy' });
    assert.deepEqual(parseAck(JSON.stringify({ cid, ok: false })), { ok: true, cid, granted: false, error: 'no reason given' });
    assert.equal((parseAck('{not json') as { reason: string }).reason, 'not JSON');
    assert.equal((parseAck('[1]') as { reason: string }).reason, 'not a JSON object');
    assert.equal((parseAck(JSON.stringify({ ok: true })) as { reason: string }).reason, 'cid: missing or not a string');
    assert.equal((parseAck(JSON.stringify({ cid, ok: 'yes' })) as { reason: string }).reason, 'ok: missing or not a boolean');
    assert.deepEqual(ackTopicParts('connecte/chalons/tsc-1/ack'), { collectivityId: 'chalons', equipmentId: 'tsc-1' });
    assert.equal(ackTopicParts('connecte/chalons/tsc-1/up'), null);
    assert.equal(ackTopicParts('connecte//tsc-1/ack'), null);
  });

  it('builds the downlink with what is left of the ttl', () => {
    const now = Date.now();
    const { topic, payload, ttl } = downlinkOf(
      {
        id: 'c1d', controllerId: 'tsc-9', collectivityId: 'fagnieres', vehicleId: 'bus-1', tripId: 'T', routeId: 'R', serviceDate: '2026-12-01',
        requestedAt: new Date(now - 5_000), expiresAt: new Date(now + 14_500), distanceM: 90, delaySeconds: 75, etaSeconds: 11.3,
        status: 'REQUESTED', answeredAt: null, error: null, secondsSaved: null,
      },
      now,
    );
    assert.equal(topic, 'connecte/fagnieres/tsc-9/down');
    assert.equal(ttl, 15);
    assert.deepEqual(JSON.parse(payload), { cid: 'c1d', op: 'priority_request', vehicleId: 'bus-1', tripId: 'T', routeId: 'R', etaSeconds: 11.3, delaySeconds: 75, ttl: 15 });
  });
});

describe('requests and answers (machine broker)', () => {
  let env: PriorityEnv;
  let lines: PriorityLine[];

  before(async () => {
    env = await startPriorityService({ MOBILITY_PRIORITY_TTL_S: '4' });
    lines = await installPriorityLines(env.r, spreadControllers(env.controllers, 6));
  });
  after(() => env?.close());

  it('asks only for a late bus in service, moving, near an intersection ahead, with a fresh position', async (t) => {
    const [line] = lines;
    const controller = await fakeController(t, { r: env.r, equipmentIds: [line.controller.equipmentId], policy: () => null });
    const [bus, other] = env.buses;
    const before = CONTROLLER_AT_M - 100;
    await feed(env.r, [
      stateOn(line, bus, before, 59), // not late enough (60 s)
      stateOn(line, bus, CONTROLLER_AT_M - 200, 300), // 200 m away (150 m)
      stateOn(line, bus, CONTROLLER_AT_M + 10, 300), // past it
      stateOn(line, bus, before, 300, { currentStatus: 'STOPPED_AT' }),
      stateOn(line, bus, before, 300, { currentStatus: 'NOT_IN_SERVICE' }),
      stateOn(line, bus, before, 300, { observedAt: new Date(Date.now() - 60_000) }), // replayed
      stateOn(line, other, before, 300, { tripId: null }),
    ]);
    await sleep(1_500);
    assert.deepEqual(await requestsOf(env.r, line.controller.equipmentId), []);
    assert.equal(controller.received.length, 0);
  });

  it('sends the downlink only once the request is committed, and once per pass', async (t) => {
    const line = lines[1];
    const controller = await fakeController(t, { r: env.r, equipmentIds: [line.controller.equipmentId], policy: () => null });
    const bus = env.buses[1];
    const client = await env.r.db.pool.connect();
    try {
      await client.query('BEGIN');
      await env.r.priority.onVehicleStates(client, [stateOn(line, bus, CONTROLLER_AT_M - 120, 95, { speedMps: 10 })]);
      await sleep(2_000);
      assert.equal(controller.received.length, 0, 'nothing is sent before the commit');
      assert.equal((await requestsOf(env.r, line.controller.equipmentId)).length, 0, 'nor visible');
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    const [downlink] = await eventually(() => (controller.received.length > 0 ? controller.received : null), 'the downlink');
    assert.equal(downlink.topic, `connecte/${line.controller.collectivityId}/${line.controller.equipmentId}/down`);
    const [request] = await requestsOf(env.r, line.controller.equipmentId);
    assert.deepEqual(downlink.body, {
      cid: request.id,
      op: 'priority_request',
      vehicleId: bus.equipmentId,
      tripId: line.tripId,
      routeId: line.routeId,
      etaSeconds: 12,
      delaySeconds: 95,
      ttl: downlink.body.ttl,
    });
    assert.ok(downlink.body.ttl >= 1 && downlink.body.ttl <= 4, `ttl ${downlink.body.ttl}`);
    assert.equal(request.distanceM, 120);
    await eventually(async () => (await requestsOf(env.r, line.controller.equipmentId))[0].sentAt, 'sent_at');
    // Later positions of the same pass ask for nothing more.
    await feed(env.r, [stateOn(line, bus, CONTROLLER_AT_M - 80, 100)]);
    await feed(env.r, [stateOn(line, bus, CONTROLLER_AT_M - 30, 110)]);
    await sleep(1_500);
    assert.equal((await requestsOf(env.r, line.controller.equipmentId)).length, 1);
    assert.equal(controller.received.length, 1);
  });

  it('records a grant once, however many times the ack comes, and ignores unknown cids and malformed acks', async (t) => {
    const line = lines[2];
    const controller = await fakeController(t, { r: env.r, equipmentIds: [line.controller.equipmentId], policy: () => null });
    const bus = env.buses[2];
    await feed(env.r, [stateOn(line, bus, CONTROLLER_AT_M - 100, 120)]);
    const [downlink] = await eventually(() => (controller.received.length > 0 ? controller.received : null), 'the downlink');
    const topic = downlink.topic;
    // Noise first: none of it may stop the worker nor change anything.
    await controller.ack(topic, '{this is not json');
    await controller.ack(topic, JSON.stringify([1, 2]));
    await controller.ack(topic, { cid: randomUUID(), ok: true });
    await controller.ack(topic, { cid: 'not-a-uuid', ok: true });
    await controller.ack(topic, { cid: downlink.body.cid, ok: 'yes' });
    // Another controller cannot answer for this one.
    await controller.ack(`connecte/${lines[3].controller.collectivityId}/${lines[3].controller.equipmentId}/down`, { cid: downlink.body.cid, ok: false, error: 'not mine' });
    // The ack, then its redelivery (QoS 1 may deliver twice).
    await controller.ack(topic, { cid: downlink.body.cid, ok: true });
    await controller.client.publishAsync(topic.replace(/down$/, 'ack'), JSON.stringify({ cid: downlink.body.cid, ok: true }), { qos: 1, dup: true });
    await controller.ack(topic, { cid: downlink.body.cid, ok: false, error: 'changed my mind' });
    const [granted] = await eventually(async () => {
      const rows = await requestsOf(env.r, line.controller.equipmentId);
      return rows[0]?.status === 'GRANTED' ? rows : null;
    }, 'the grant');
    await eventually(() => env.r.priority.stats.duplicateAcks >= 2, 'the duplicates handled');
    const phases = Number(line.controller.details.phases);
    assert.equal(granted.secondsSaved, { 2: 6, 3: 14.2, 4: 22.5 }[phases]);
    assert.equal(granted.error, null);
    const stats = await env.service.gql(
      `query($id: ID!) { signalPriorityRequests(filter: { controllerIds: [$id] }) { totalCount edges { node { id status secondsSaved answeredAt } } }
         signalPriorityByIntersection { controller { id } stats { requests grants denials expired secondsSaved } } }`,
      { variables: { id: line.controller.equipmentId }, token: await env.service.token(['partner'], []) },
    );
    assert.equal(stats.errors, undefined, JSON.stringify(stats.errors));
    assert.equal(stats.data.signalPriorityRequests.totalCount, 1);
    const mine = stats.data.signalPriorityByIntersection.find((entry: any) => entry.controller.id === line.controller.equipmentId);
    assert.deepEqual(mine.stats, { requests: 1, grants: 1, denials: 0, expired: 0, secondsSaved: granted.secondsSaved });
    assert.equal(env.r.priority.worker().status().ready, true);
  });

  it('records a denial with its reason, and expires a request nobody answers', async (t) => {
    const [deniedLine, silentLine] = [lines[3], lines[4]];
    await fakeController(t, { r: env.r,
      equipmentIds: [deniedLine.controller.equipmentId],
      policy: (body) => ({ cid: body.cid, ok: false, error: 'conflicting priority already granted to an ambulance' }),
    });
    await fakeController(t, { r: env.r, equipmentIds: [silentLine.controller.equipmentId], policy: () => null });
    await feed(env.r, [stateOn(deniedLine, env.buses[3], CONTROLLER_AT_M - 60, 200), stateOn(silentLine, env.buses[4], CONTROLLER_AT_M - 60, 200)]);
    const [denied] = await eventually(async () => {
      const rows = await requestsOf(env.r, deniedLine.controller.equipmentId);
      return rows[0]?.status === 'DENIED' ? rows : null;
    }, 'the denial');
    assert.equal(denied.error, 'conflicting priority already granted to an ambulance');
    assert.equal(denied.secondsSaved, null);
    const [expired] = await eventually(async () => {
      const rows = await requestsOf(env.r, silentLine.controller.equipmentId);
      return rows[0]?.status === 'EXPIRED' ? rows : null;
    }, 'the expiry', 15_000);
    assert.ok(expired.sentAt, 'it was sent');
  });

  it('sends a request committed while the worker’s connection is down once it is back, exactly once', async (t) => {
    const line = lines[5];
    const controller = await fakeController(t, { r: env.r, equipmentIds: [line.controller.equipmentId], policy: () => null });
    const mqttClient = env.r.priority.mqttClient!;
    mqttClient.stream.destroy();
    await eventually(() => !env.r.priority.connected, 'the drop', 5_000);
    await feed(env.r, [stateOn(line, env.buses[5], CONTROLLER_AT_M - 100, 90)]);
    await eventually(() => env.r.priority.connected, 'the reconnection', 10_000);
    await eventually(() => controller.received.length > 0, 'the downlink');
    // Drop it again right after: what was handed to the client is not sent a second time by the worker.
    mqttClient.stream.destroy();
    await eventually(() => env.r.priority.connected, 'the second reconnection', 10_000);
    await sleep(2_000);
    assert.equal(controller.received.length, 1);
    const [request] = await requestsOf(env.r, line.controller.equipmentId);
    assert.equal(controller.received[0].body.cid, request.id);
    assert.ok(request.sentAt);
  });
});
