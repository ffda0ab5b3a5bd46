/**
 * Signal priority against a broker of the test's own (the repository's configuration:
 * persistence, authentication), restarted between the request's commit and its sending: the
 * request is neither lost nor sent twice, and the acks of the answer still reach the hub.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestBroker, type TestBroker } from '@connecte/testkit';
import {
  CONTROLLER_AT_M,
  eventually,
  fakeController,
  installPriorityLines,
  requestsOf,
  sleep,
  spreadControllers,
  startPriorityService,
  stateOn,
  type PriorityEnv,
  type PriorityLine,
} from './priority-fixture.js';

let broker: TestBroker;
let env: PriorityEnv;
let lines: PriorityLine[];

before(async () => {
  broker = await startTestBroker();
  const account = broker.testCredentials!;
  env = await startPriorityService({ MQTT_URL: broker.url, MQTT_USERNAME: account.username, MQTT_PASSWORD: account.password, MOBILITY_PRIORITY_TTL_S: '30' });
  lines = await installPriorityLines(env.r, spreadControllers(env.controllers, 1));
});
after(async () => {
  await env?.close();
  await broker?.stop();
});

describe('a broker restart between the commit and the send', () => {
  it('sends the request once, after the restart, and records its grant', async (t) => {
    const [line] = lines;
    // A controller with a persistent session: the broker keeps what comes for it while it is away.
    const controller = await fakeController(t, {
      url: broker.url,
      equipmentIds: [line.controller.equipmentId],
      clientOptions: { clientId: `tsp-controller-${process.pid}`, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 300 }, reconnectPeriod: 200 },
    });
    const client = await env.r.db.pool.connect();
    let restarting: Promise<void>;
    try {
      await client.query('BEGIN');
      await env.r.priority.onVehicleStates(client, [stateOn(line, env.buses[0], CONTROLLER_AT_M - 100, 150)]);
      restarting = broker.restart();
      await eventually(() => !env.r.priority.connected, 'the worker losing the broker', 10_000);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    await restarting;
    const [request] = await eventually(async () => {
      const rows = await requestsOf(env.r, line.controller.equipmentId);
      return rows[0]?.status === 'GRANTED' ? rows : null;
    }, 'the grant', 20_000);
    await sleep(2_000);
    assert.equal(controller.received.length, 1, JSON.stringify(controller.received));
    assert.equal(controller.received[0].body.cid, request.id);
    assert.ok(request.sentAt);
    assert.equal(env.r.priority.stats.published, 1);
  });
});
