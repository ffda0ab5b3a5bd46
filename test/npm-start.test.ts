/**
 * `npm start` on a database that does not exist yet: it must create it, install the
 * schema, seed the territory, start every service and the simulator, and stop cleanly.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, it } from 'node:test';
import { METRICS, type MetricName } from '@connecte/shared/senml';
import { ADMIN_URL, connectTestBroker, freePort, gql, ROOT, startTestBroker, testConfig, testDatabaseName, tokenFor } from '@connecte/testkit';

const databaseName = testDatabaseName(`start_${randomBytes(4).toString('hex')}`);
const databaseUrl = Object.assign(new URL(ADMIN_URL), { pathname: `/${databaseName}` }).toString();

after(async () => {
  const pg = (await import('pg')).default;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`);
  await admin.end();
});

it('npm start sets up a fresh database and runs the whole hub with a live simulator', { timeout: 240_000 }, async (t) => {
  const [gatewayPort, territoryPort, equipmentPort, telemetryPort, ticketsPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const mqttBroker = await startTestBroker();
  t.after(() => mqttBroker.stop());
  const output: string[] = [];
  const hub = spawn(process.execPath, [path.join(ROOT, 'scripts', 'start.mjs')], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: String(gatewayPort),
      SUBGRAPH_TERRITORY_URL: `http://127.0.0.1:${territoryPort}/graphql`,
      SUBGRAPH_EQUIPMENT_URL: `http://127.0.0.1:${equipmentPort}/graphql`,
      SUBGRAPH_TELEMETRY_URL: `http://127.0.0.1:${telemetryPort}/graphql`,
      SUBGRAPH_TICKETS_URL: `http://127.0.0.1:${ticketsPort}/graphql`,
      // The test broker refuses anonymous clients: the hub gets its service account, the simulator issues its own keys.
      ...mqttBroker.env,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  hub.stdout.on('data', (chunk) => output.push(String(chunk)));
  hub.stderr.on('data', (chunk) => output.push(String(chunk)));
  const exited = new Promise<number | null>((resolve) => hub.once('exit', (code) => resolve(code)));

  const broker = await connectTestBroker(t, { url: mqttBroker.url });
  try {
    const uplink = new Promise<{ topic: string; payload: any[] }>((resolve) => {
      broker.on('message', (topic, payload) => resolve({ topic, payload: JSON.parse(String(payload)) }));
    });
    await broker.subscribeAsync('connecte/+/+/up', { qos: 1 });

    const deadline = Date.now() + 200_000;
    while (!output.join('').includes('connecte-hub is running')) {
      assert.ok(Date.now() < deadline, `the hub did not start:\n${output.join('')}`);
      assert.equal(hub.exitCode, null, `the hub exited early:\n${output.join('')}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const text = output.join('');
    assert.match(text, /created database/);
    assert.match(text, /seeded the territory/);
    assert.match(text, new RegExp(`http://localhost:${gatewayPort}/graphql`));

    const response = await gql(`http://127.0.0.1:${gatewayPort}/graphql`, '{ collectivities { id } equipmentSearch(filter: { kinds: [LIGHT_POINT] }) { totalCount } }');
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    assert.equal(response.data.collectivities.length, 4);
    assert.equal(response.data.equipmentSearch.totalCount, 7290);

    const opendata = await fetch(`http://127.0.0.1:${gatewayPort}/opendata/catalog.jsonld`);
    assert.equal(opendata.status, 200, 'the open-data module is served by the gateway');

    const { topic, payload } = await uplink;
    assert.match(topic, /^connecte\/(chalons|fagnieres|saint-martin-sur-le-pre|chalons-agglo)\/[^/]+\/up$/);
    assert.ok(Array.isArray(payload) && payload.length > 0, 'a SenML pack');
    assert.match(payload[0].bn, /^urn:dev:connecte:/);
    for (const record of payload) {
      const metric = METRICS[record.n as MetricName];
      assert.ok(metric, `${record.n} is a metric of the table`);
      // A boolean carries `vb` and no unit; a number `v` and exactly the table's unit (none for a mode such as signal_state).
      assert.equal(record.u, metric.unit ?? undefined, `unit of ${record.n} follows the metric table`);
      if (metric.type === 'boolean') assert.equal(typeof record.vb, 'boolean', `${record.n} is a boolean`);
      else assert.equal(typeof record.v, 'number', `${record.n} is a number`);
    }

    // And telemetry stored it: the simulator's credentials were accepted and its uplinks ingested.
    const [, collectivityId, equipmentId] = topic.split('/');
    const operator = await tokenFor(testConfig(databaseUrl), ['operator'], [collectivityId]);
    for (;;) {
      const stored = await gql(`http://127.0.0.1:${gatewayPort}/graphql`, 'query($id: ID!) { equipment(id: $id) { latest { metric } } }', { token: operator, variables: { id: equipmentId } });
      assert.equal(stored.errors, undefined, JSON.stringify(stored.errors));
      if (stored.data.equipment.latest.length > 0) break;
      assert.ok(Date.now() < deadline, `no reading of ${equipmentId} in telemetry:\n${output.join('').slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    hub.kill('SIGTERM');
  }
  assert.equal(await exited, 0, `the hub stops cleanly on SIGTERM:\n${output.join('').slice(-2000)}`);
});
