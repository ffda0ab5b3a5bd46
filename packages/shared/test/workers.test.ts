/**
 * Background workers of a subgraph, with a real MQTT consumer on a test broker of the file's own
 * and the real database: they start with the server and show on /readyz; a worker that cannot
 * start refuses the service's start, naming it and why; on shutdown a worker stops taking work
 * and finishes what is in flight before the pool closes, and one that hangs is waited for a
 * bounded time, then named.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import gql from 'graphql-tag';
import mqtt, { type MqttClient } from 'mqtt';
import { connectTestBroker, createTestDatabase, ROOT, startTestBroker, type TestBroker, type TestDatabase } from '@connecte/testkit';
import { loadConfig, type Config } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { startSubgraph, StartupError, type SubgraphService, type WorkerResources } from '../src/server.js';
import { createWorkers, WorkerStopError, type Worker } from '../src/workers.js';

const silent = createLogger('testing', { LOG_LEVEL: 'silent' });

/**
 * An MQTT consumer as a domain would write one: each message is handled with the database; stop
 * unsubscribes (no new work), waits for the handlers running, then disconnects.
 */
function mqttConsumer(url: string, topic: string, handle: (payload: string, resources: WorkerResources) => Promise<void>, account: { username?: string; password?: string } = {}) {
  let client: MqttClient | undefined;
  const inFlight = new Set<Promise<void>>();
  const trace: string[] = [];
  return {
    trace,
    client: () => client!,
    create(resources: WorkerResources): Worker {
      return {
        name: 'mqtt',
        async start() {
          client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 2_000, ...account });
          client.on('error', () => {}); // shows as disconnected on /readyz
          await client.subscribeAsync(topic, { qos: 1 });
          client.on('message', (_topic, payload) => {
            const job = handle(payload.toString(), resources).finally(() => inFlight.delete(job));
            inFlight.add(job);
          });
        },
        async stop() {
          // A lost connection takes no more work; unsubscribing on it would wait for a broker that is gone.
          if (client?.connected) await client.unsubscribeAsync(topic);
          trace.push('unsubscribed');
          await Promise.allSettled([...inFlight]);
          trace.push('in-flight done');
          await client?.endAsync();
        },
        status: () => (client?.connected ? { ready: true, state: 'connected' } : { ready: false, state: 'disconnected' }),
      };
    },
  };
}

const serviceWith = (workers: SubgraphService['workers']): SubgraphService => ({
  name: 'testing',
  typeDefs: gql`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    type Query { ping: String }
  `,
  resolvers: { Query: { ping: () => 'pong' } },
  workers,
});

const readyz = async (url: string) => {
  const response = await fetch(url.replace(/\/graphql$/, '/readyz'));
  return { status: response.status, body: (await response.json()) as { status: string; checks: Record<string, string>; reason?: string } };
};

describe('background workers of a subgraph', () => {
  let db: TestDatabase;
  let config: Config;
  let broker: TestBroker;
  before(async () => {
    db = await createTestDatabase({ seed: false });
    config = loadConfig({ DATABASE_URL: db.url, LOG_LEVEL: 'silent' });
    broker = await startTestBroker();
  });
  after(() => Promise.all([db?.drop(), broker?.stop()]));

  it('/readyz reports the event bus reconnecting (still ready) while its LISTEN connection is lost, and listening again after', async () => {
    const running = await startSubgraph(serviceWith(() => []), { config, port: 0, log: silent });
    const pg = (await import('pg')).default;
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'connecte-event-bus'`);
      let down = await readyz(running.url);
      for (let i = 0; i < 50 && down.body.checks['event-bus'] === 'listening'; i++) down = await readyz(running.url);
      assert.equal(down.body.checks['event-bus'], 'reconnecting');
      assert.equal(down.status, 200, 'queries are still served: the bus delivers from the table meanwhile');
      const deadline = Date.now() + 10_000;
      let up = down;
      while (up.body.checks['event-bus'] !== 'listening' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        up = await readyz(running.url);
      }
      assert.equal(up.status, 200, JSON.stringify(up.body));
      assert.equal(up.body.checks['event-bus'], 'listening');
    } finally {
      await admin.end();
      await running.close();
    }
  });

  it('start with the server and are reported by /readyz: "mqtt: disconnected" once its connection is lost', async () => {
    const consumer = mqttConsumer(broker.url, `connecte/test/${process.pid}/ready`, async () => {}, broker.testCredentials ?? {});
    const running = await startSubgraph(serviceWith((resources) => [consumer.create(resources)]), { config, port: 0, log: silent });
    try {
      const up = await readyz(running.url);
      assert.equal(up.status, 200);
      assert.deepEqual(up.body.checks, { database: 'ok', 'event-bus': 'listening', mqtt: 'connected' });

      const closed = new Promise<void>((resolve) => consumer.client().once('close', () => resolve()));
      consumer.client().stream.destroy();
      await closed;
      const down = await readyz(running.url);
      assert.equal(down.status, 503);
      assert.equal(down.body.checks.mqtt, 'disconnected');
      assert.equal(down.body.reason, 'mqtt: disconnected');
    } finally {
      await running.close();
    }
  });

  it('a worker that throws at start refuses the service, naming the worker and why; later workers never start', async () => {
    let laterStarted = false;
    const later: Worker = { name: 'later', start: async () => void (laterStarted = true), stop: async () => {}, status: () => ({ ready: true, state: 'ok' }) };
    const unreachable = mqttConsumer('mqtt://127.0.0.1:1', 'connecte/never', async () => {});
    await assert.rejects(
      startSubgraph(serviceWith((resources) => [unreachable.create(resources), later]), { config, port: 0, log: silent }),
      (error: unknown) => error instanceof StartupError && /^testing cannot start: worker "mqtt" failed to start: .*ECONNREFUSED/.test(error.message),
    );
    assert.equal(laterStarted, false);
  });

  it('on shutdown a worker stops taking work and finishes what is in flight before the pool closes', async (t) => {
    const topic = `connecte/test/${process.pid}/drain`;
    let started!: () => void;
    const handling = new Promise<void>((resolve) => (started = resolve));
    const results: string[] = [];
    const consumer = mqttConsumer(broker.url, topic, async (payload, { db: database }) => {
      started();
      const { rows } = await database.pool.query<{ echo: string }>('SELECT pg_sleep(0.4), $1::text AS echo', [payload]);
      results.push(rows[0].echo);
    }, broker.testCredentials ?? {});
    const running = await startSubgraph(serviceWith((resources) => [consumer.create(resources)]), { config, port: 0, log: silent });
    const publisher = await connectTestBroker(t, { url: broker.url });
    await publisher.publishAsync(topic, 'in flight', { qos: 1 });
    await handling;
    await running.close();
    assert.deepEqual(results, ['in flight'], 'the message being handled was finished with the pool still open');
    assert.deepEqual(consumer.trace, ['unsubscribed', 'in-flight done']);
    assert.equal(running.db.pool.ended, true, 'then the pool was closed');
  });

  it('a worker that hangs on shutdown is waited for a bounded time, named, and the pool is closed anyway', async () => {
    const stuck: Worker = { name: 'stuck', start: async () => {}, stop: () => new Promise(() => {}), status: () => ({ ready: true, state: 'running' }) };
    const running = await startSubgraph(serviceWith(() => [stuck]), { config, port: 0, log: silent, workerStopTimeoutMs: 300 });
    const started = Date.now();
    await assert.rejects(running.close(), (error: unknown) => error instanceof WorkerStopError && /worker "stuck" did not stop within 300 ms/.test(error.message));
    assert.ok(Date.now() - started < 5_000, 'the wait is bounded');
    assert.equal(running.db.pool.ended, true);
  });
});

describe('a service process', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase({ seed: false });
  });
  after(() => db?.drop());

  /** What an entry point does (runSubgraph, which needs a registered name), with the worker given. */
  const serviceProcess = (worker: string) => {
    const script = `
      import gql from 'graphql-tag';
      import { loadConfig } from '@connecte/shared/config';
      import { createLogger } from '@connecte/shared/log';
      import { exitOnStartupError, installShutdownHandlers, startSubgraph } from '@connecte/shared/server';
      const config = loadConfig({ ...process.env, PORT: '0' });
      const service = { name: 'testing', typeDefs: gql\`type Query { ping: String }\`, resolvers: {}, workers: () => [${worker}] };
      const running = await startSubgraph(service, { config, workerStopTimeoutMs: 300 }).catch(exitOnStartupError);
      installShutdownHandlers(running.close, createLogger('testing', config));
      console.log('READY');
    `;
    return spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  };

  it('whose worker throws at start exits 1 with one line naming the service, the worker and why', async () => {
    const child = serviceProcess(`{ name: 'mqtt', start: async () => { throw new Error('broker refused the credentials'); }, stop: async () => {}, status: () => ({ ready: false, state: 'disconnected' }) }`);
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 1, stderr);
    assert.equal(stderr.trim(), 'testing cannot start: worker "mqtt" failed to start: broker refused the credentials');
  });

  it('whose worker hangs on shutdown exits 1 after the bounded wait, with a line naming the worker', async () => {
    const child = serviceProcess(`{ name: 'stuck', start: async () => {}, stop: () => new Promise(() => {}), status: () => ({ ready: true, state: 'running' }) }`);
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no READY within 30 s:\n${output}`)), 30_000);
      child.stdout.on('data', () => output.includes('READY') && (clearTimeout(timer), resolve()));
    });
    const stopping = Date.now();
    child.kill('SIGTERM');
    assert.equal(await exited, 1, output);
    assert.ok(Date.now() - stopping < 10_000, 'bounded');
    assert.match(output, /worker \\"stuck\\" did not stop within 300 ms/);
  });
});

describe('a set of workers', () => {
  const worker = (name: string, trace: string[], overrides: Partial<Worker> = {}): Worker => ({
    name,
    start: async () => void trace.push(`start ${name}`),
    stop: async () => void trace.push(`stop ${name}`),
    status: () => ({ ready: true, state: 'ok' }),
    ...overrides,
  });

  it('starts in order and stops in reverse order; a failed start stops those already started', async () => {
    const trace: string[] = [];
    const workers = createWorkers([worker('a', trace), worker('b', trace)], { log: silent });
    await workers.start();
    await workers.stop();
    assert.deepEqual(trace, ['start a', 'start b', 'stop b', 'stop a']);

    const failing: string[] = [];
    const broken = createWorkers([worker('a', failing), worker('b', failing, { start: () => Promise.reject(new Error('no broker')) }), worker('c', failing)], { log: silent });
    await assert.rejects(broken.start(), /worker "b" failed to start: no broker/);
    assert.deepEqual(failing, ['start a', 'stop b', 'stop a']);
  });

  it('a start that hangs is bounded too, and two workers of one name are refused', async () => {
    const workers = createWorkers([worker('slow', [], { start: () => new Promise(() => {}) })], { log: silent, startTimeoutMs: 200 });
    await assert.rejects(workers.start(), /worker "slow" failed to start: did not start within 200 ms/);
    assert.throws(() => createWorkers([worker('x', []), worker('x', [])], { log: silent }), /worker "x" is declared twice/);
  });
});
