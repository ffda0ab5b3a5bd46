/**
 * Controller faults, end to end with telemetry started beside mobility over one database:
 * MOBILITY_PRIORITY_FAULT_AFTER consecutive priority requests left unanswered raise telemetry's
 * SIGNAL_PRIORITY_FAULT alarm on the controller (once, however many more go unanswered), an
 * answer saying the controller is in fault raises it at once, and the controller's next normal
 * answer clears it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startService, type TestService } from '@connecte/testkit';
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

let env: PriorityEnv;
let telemetry: TestService;
let lines: PriorityLine[];

before(async () => {
  env = await startPriorityService({ MOBILITY_PRIORITY_TTL_S: '1', MOBILITY_PRIORITY_FAULT_AFTER: '2' });
  telemetry = await startService('telemetry', { db: env.database });
  lines = await installPriorityLines(env.r, spreadControllers(env.controllers, 2));
});
after(async () => {
  await telemetry?.close();
  await env?.close();
});

async function alarmsOf(controllerId: string, collectivityId: string): Promise<{ state: string; message: string; severity: string; occurrences: number }[]> {
  const response = await telemetry.gql(
    `{ alarms(filter: { codes: ["SIGNAL_PRIORITY_FAULT"], collectivityIds: ["${collectivityId}"] }) { edges { node { state message severity occurrences equipment { id } } } } }`,
    { token: await telemetry.token(['operator'], [collectivityId]) },
  );
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data.alarms.edges.map((edge: any) => edge.node).filter((node: any) => node.equipment.id === controllerId);
}

describe('SIGNAL_PRIORITY_FAULT', () => {
  it('is raised after 2 unanswered requests, once, and cleared by the next grant', async (t) => {
    const [line] = lines;
    const { equipmentId, collectivityId } = line.controller;
    const controller = await fakeController(t, { r: env.r, equipmentIds: [equipmentId], policy: () => null });
    const [a, b, c, d] = env.buses;
    await feed(env.r, [stateOn(line, a, CONTROLLER_AT_M - 100, 120)]);
    await eventually(async () => (await requestsOf(env.r, equipmentId)).every((row) => row.status === 'EXPIRED'), 'the first expiry', 15_000);
    assert.deepEqual(await alarmsOf(equipmentId, collectivityId), [], 'one unanswered request is no fault');
    await feed(env.r, [stateOn(line, b, CONTROLLER_AT_M - 100, 120)]);
    const [alarm] = await eventually(async () => {
      const alarms = await alarmsOf(equipmentId, collectivityId);
      return alarms.length > 0 ? alarms : null;
    }, 'the alarm', 20_000);
    assert.equal(alarm.state, 'RAISED');
    assert.equal(alarm.severity, 'MAJOR');
    assert.match(alarm.message, /no answer to the last 2 priority requests/);
    // A third unanswered request does not raise it again.
    await feed(env.r, [stateOn(line, c, CONTROLLER_AT_M - 100, 120)]);
    await eventually(async () => (await requestsOf(env.r, equipmentId)).every((row) => row.status === 'EXPIRED'), 'the third expiry', 15_000);
    await sleep(1_000);
    assert.equal((await alarmsOf(equipmentId, collectivityId))[0].occurrences, 1);
    // The controller answers again.
    controller.setPolicy((body) => ({ cid: body.cid, ok: true }));
    await feed(env.r, [stateOn(line, d, CONTROLLER_AT_M - 100, 120)]);
    await eventually(async () => (await alarmsOf(equipmentId, collectivityId))[0]?.state === 'CLEARED', 'the alarm cleared', 20_000);
    assert.equal((await requestsOf(env.r, equipmentId)).at(-1)!.status, 'GRANTED');
  });

  it('is raised at once by an answer saying the controller is in fault, and cleared by a normal denial', async (t) => {
    const line = lines[1];
    const { equipmentId, collectivityId } = line.controller;
    const controller = await fakeController(t, { r: env.r,
      equipmentIds: [equipmentId],
      policy: (body) => ({ cid: body.cid, ok: false, error: 'controller in fault: flashing amber' }),
    });
    const [a, b] = env.buses;
    await feed(env.r, [stateOn(line, a, CONTROLLER_AT_M - 100, 120)]);
    const [alarm] = await eventually(async () => {
      const alarms = await alarmsOf(equipmentId, collectivityId);
      return alarms.length > 0 ? alarms : null;
    }, 'the alarm', 20_000);
    assert.equal(alarm.state, 'RAISED');
    assert.match(alarm.message, /flashing amber/);
    assert.equal((await requestsOf(env.r, equipmentId))[0].status, 'DENIED');
    controller.setPolicy((body) => ({ cid: body.cid, ok: false, error: 'another bus has priority' }));
    await feed(env.r, [stateOn(line, b, CONTROLLER_AT_M - 100, 120)]);
    await eventually(async () => (await alarmsOf(equipmentId, collectivityId))[0]?.state === 'CLEARED', 'the alarm cleared', 20_000);
  });
});
