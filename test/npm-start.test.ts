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
import { ADMIN_URL, connectTestBroker, freePort, gql, ROOT, startTestBroker, testDatabaseName } from '@connecte/testkit';

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
  const [gatewayPort, territoryPort, equipmentPort] = await Promise.all([freePort(), freePort(), freePort()]);
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
      MQTT_URL: mqttBroker.url,
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
      assert.equal(record.u, METRICS[record.n as MetricName].unit, `unit of ${record.n} follows the metric table`);
      assert.equal(typeof record.v, 'number');
    }
  } finally {
    hub.kill('SIGTERM');
  }
  assert.equal(await exited, 0, `the hub stops cleanly on SIGTERM:\n${output.join('').slice(-2000)}`);
});
