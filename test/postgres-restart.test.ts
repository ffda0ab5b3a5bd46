/**
 * The hub survives a real PostgreSQL restart, on a throwaway cluster of its own (never the
 * machine's server). The server is stopped (`pg_ctl stop -m fast`) while registrations are in
 * flight, then started again:
 *  - a subscription through the gateway keeps its socket and receives every change committed
 *    before, during and after the restart, once each, in commit order (the event bus
 *    reconnects and catches up; the events table is the reference);
 *  - during the outage a query and a mutation get a clean GraphQL error quickly (no hang), the
 *    mutation writes nothing, `/readyz` answers 503 naming `database`;
 *  - after it, `/readyz` is 200 again within a bounded time and queries work at once;
 *  - nothing crashes: every service runs in this process, so an unhandled 'error' event of a pg
 *    client whose server went away would end the run (and is also collected and asserted).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type Client } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { migrate } from '@connecte/shared/migrate';
import { startHub, tokenFor, type Hub, startThrowawayCluster, type ThrowawayCluster } from '@connecte/testkit';

/** A query or mutation while the database is down fails within this (no hang). */
const ERROR_BOUND_MS = 5_000;
/** After the restart, `/readyz` is 200 within this. */
const READY_BOUND_MS = 10_000;
/** Every change reaches the subscriber within this after the restart (bus reconnect backoff ≤ 5 s). */
const EVENT_BOUND_MS = 15_000;
/** Registrations kept in flight while the server stops. */
const IN_FLIGHT = 8;
/** How long they run before the server stops. */
const LOAD_BEFORE_STOP_MS = 400;
/** A second wave starts this long before the stop (new pool connections still starting up). */
const BURST_BEFORE_STOP_MS = 100;

const CHANGES = 'subscription Changes { equipmentChanged { cursor change equipment { id } } }';
const REGISTER = 'mutation Register($input: RegisterEquipmentInput!) { registerEquipment(input: $input) { id reference } }';
const SEARCH = '{ equipmentSearch(first: 1000) { totalCount edges { node { id reference collectivity { name } } } } }';

interface Change {
  cursor: string;
  change: string;
  equipment: { id: string } | null;
}

interface Answer {
  status: number;
  ms: number;
  body: { data?: any; errors?: { message: string; extensions?: Record<string, unknown> }[] } & Record<string, any>;
}

/** One HTTP request, bounded: a hang fails the test saying what hung instead of stalling it. */
async function request(url: string, init: { body?: unknown; token?: string } = {}, boundMs = ERROR_BOUND_MS): Promise<Answer> {
  const started = Date.now();
  try {
    const response = await fetch(url, {
      method: init.body === undefined ? 'GET' : 'POST',
      headers: { 'content-type': 'application/json', ...(init.token ? { authorization: `Bearer ${init.token}` } : {}) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(boundMs),
    });
    return { status: response.status, body: (await response.json()) as Answer['body'], ms: Date.now() - started };
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') assert.fail(`${url} did not answer within ${boundMs} ms`);
    throw error;
  }
}

async function until(condition: () => boolean | Promise<boolean>, what: () => string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(25);
  }
  return Date.now() - started;
}

/** A GraphQL error fit for a client: a code, no stack trace, no connection details. */
function assertCleanErrors(answer: Answer, what: string): void {
  assert.ok(answer.body.errors?.length, `${what}: an error, got ${JSON.stringify(answer.body)}`);
  for (const error of answer.body.errors!) {
    assert.equal(typeof error.extensions?.code, 'string', `${what}: ${JSON.stringify(error)}`);
    assert.equal(error.extensions?.stacktrace, undefined, `${what}: no stack trace`);
    assert.doesNotMatch(error.message, /ECONNREFUSED|57P0\d|127\.0\.0\.1|:\d{4,5}\b/, `${what}: no connection details`);
  }
}

describe('the hub across a PostgreSQL restart (throwaway cluster)', { timeout: 60_000 }, () => {
  let cluster: ThrowawayCluster;
  let url: string;
  let hub: Hub;
  let client: Client;
  let operator: string;
  let registered = 0;
  const received: Change[] = [];
  const streamProblems: unknown[] = [];
  /** Registrations the gateway confirmed: their changes must all arrive. */
  const confirmed: { reference: string; id: string }[] = [];
  // Every service runs in this process: an unhandled 'error' of a pg client would land here.
  const crashes: unknown[] = [];
  const onCrash = (error: unknown) => void crashes.push(error);

  const register = (reference: string) =>
    request(hub.gatewayUrl, {
      token: operator,
      body: {
        query: REGISTER,
        variables: { input: { kind: 'WIFI_HOTSPOT', reference, collectivityId: 'chalons', location: { lon: 4.365, lat: 48.9566 } } },
      },
    });

  /** Registers an asset through the gateway, which must succeed. */
  const publish = async () => {
    const reference = `PG-RESTART-${++registered}`;
    const answer = await register(reference);
    assert.equal(answer.body.errors, undefined, JSON.stringify(answer.body.errors));
    assert.equal(answer.body.data.registerEquipment.reference, reference);
    confirmed.push(answer.body.data.registerEquipment);
  };

  /** What the database holds, as the reference for the stream: every change event, in id order. */
  const committedChanges = async () => {
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      const { rows } = await db.query<{ id: string; equipment_id: string }>(
        `SELECT id::text, payload->>'equipmentId' AS equipment_id FROM events WHERE topic = 'equipment.changed' ORDER BY events.id`,
      );
      return rows;
    } finally {
      await db.end();
    }
  };

  const readyz = () => request(`${hub.gateway.origin}/readyz`);
  const subgraphReadyz = (name: 'territory' | 'equipment') => request(hub.subgraphs[name].url.replace(/\/graphql$/, '/readyz'));

  before(async () => {
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
    cluster = await startThrowawayCluster();
    const admin = new pg.Client({ connectionString: cluster.url() });
    await admin.connect();
    try {
      await admin.query('CREATE DATABASE connecte');
    } finally {
      await admin.end();
    }
    url = cluster.url('connecte');
    await migrate(url);
    // The least territory a registration needs: one municipal collectivity and its commune.
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      await db.query(`
        INSERT INTO collectivity (id, name, kind, insee_code, siren)
        VALUES ('chalons', 'Châlons-en-Champagne', 'COMMUNE', '51108', '215101083');
        INSERT INTO commune (insee_code, name, collectivity_id, geom)
        VALUES ('51108', 'Châlons-en-Champagne', 'chalons', ST_Multi(ST_MakeEnvelope(4.30, 48.92, 4.42, 48.99, 4326)));`);
    } finally {
      await db.end();
    }
    hub = await startHub(url);
    operator = await tokenFor(hub.config, ['operator'], ['chalons']);
    client = createClient({
      url: hub.gatewayUrl.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${operator}` },
      lazy: true,
      retryAttempts: 0,
    });
  });

  after(async () => {
    try {
      await client?.dispose();
      await hub?.close();
    } finally {
      await cluster?.destroy();
      process.off('uncaughtException', onCrash);
      process.off('unhandledRejection', onCrash);
    }
  });

  it('delivers a change published before the restart', async () => {
    client.subscribe<{ equipmentChanged: Change }>(
      { query: CHANGES },
      {
        next: (result) => (result.errors ? streamProblems.push(result.errors) : received.push(result.data!.equipmentChanged)),
        error: (error) => streamProblems.push(error),
        complete: () => streamProblems.push('the subscription completed'),
      },
    );
    // Once the equipment subgraph's bus holds the subscriber, every later commit reaches it.
    const busSubscribers = () => [...(hub.subgraphs.equipment.events as unknown as { subscribers: Set<{ topics: Set<string> }> }).subscribers].filter((s) => s.topics.has('equipment.changed')).length;
    await until(() => hub.gateway.upstreamSubscriptions() === 1 && busSubscribers() === 1, () => 'the subscription to reach the bus', 5_000);
    await publish();
    await until(() => received.length === 1, () => 'the first change', 5_000);
    assert.deepEqual(streamProblems, []);
    assert.equal(received[0].change, 'REGISTERED');
    assert.equal(received[0].equipment?.id, confirmed[0].id);
  });

  it('stopped under load: clean errors without hanging, /readyz 503 naming database, nothing written', async (t) => {
    // Registrations in flight as the server stops: some commit, some fail; new pool connections
    // open as it goes away. Each one answers, within the bound, with data or a clean error.
    let loading = true;
    const failures: Answer[] = [];
    const writer = async () => {
      while (loading) {
        const reference = `PG-RESTART-LOAD-${++registered}`;
        const answer = await register(reference);
        assert.ok(answer.ms < ERROR_BOUND_MS, `a registration answered in ${answer.ms} ms`);
        if (answer.body.data?.registerEquipment) confirmed.push(answer.body.data.registerEquipment);
        else failures.push(answer);
      }
    };
    const writers = Array.from({ length: IN_FLIGHT }, writer);
    await sleep(LOAD_BEFORE_STOP_MS);
    // Then more, so that the pools open connections as the server goes away: a connection whose
    // startup completes just as the shutdown begins gets its ReadyForQuery and its 57P01 in one
    // packet, before Prisma's adapter has attached its 'error' listener (this crashed the process
    // about every other run before db.ts gave every pooled client a listener).
    for (let i = 0; i < IN_FLIGHT; i++) writers.push(writer());
    await sleep(BURST_BEFORE_STOP_MS);
    // The same moment, made certain: a client each pool has just handed out, no listener yet.
    const borrowed = await Promise.all([hub.subgraphs.territory.db.pool.connect(), hub.subgraphs.equipment.db.pool.connect()]);
    await cluster.stop();
    await sleep(100);
    loading = false;
    await Promise.all(writers);
    for (const pooled of borrowed) pooled.release(new Error('its server stopped'));
    assert.deepEqual(crashes, [], 'a pooled connection ended by the stop crashed nothing');
    t.diagnostic(`registrations around the stop: ${confirmed.length - 1} confirmed, ${failures.length} failed`);
    assert.ok(failures.length > 0, 'some registrations met the outage');
    for (const failure of failures) assertCleanErrors(failure, 'a registration during the stop');

    const query = await request(hub.gatewayUrl, { body: { query: SEARCH } });
    assert.ok(query.ms < ERROR_BOUND_MS, `answered in ${query.ms} ms`);
    assertCleanErrors(query, 'a query during the outage');

    const mutation = await register('PG-RESTART-DURING-OUTAGE');
    assert.ok(mutation.ms < ERROR_BOUND_MS, `answered in ${mutation.ms} ms`);
    assertCleanErrors(mutation, 'a registration during the outage');
    assert.equal(mutation.body.data?.registerEquipment ?? null, null);

    const ready = await readyz();
    assert.equal(ready.status, 503, JSON.stringify(ready.body));
    assert.deepEqual(ready.body.failed, ['database'], JSON.stringify(ready.body));
    assert.notEqual(ready.body.checks.database, 'ok');
    assert.equal(ready.body.checks['subgraph:territory'], 'ok', 'the subgraphs themselves are alive');
    assert.equal(ready.body.checks['subgraph:equipment'], 'ok', 'the subgraphs themselves are alive');
    for (const name of ['territory', 'equipment'] as const) {
      const sub = await subgraphReadyz(name);
      assert.equal(sub.status, 503, `${name}: ${JSON.stringify(sub.body)}`);
      assert.match(sub.body.reason, /^database: /);
    }
    assert.equal((await request(`${hub.gateway.origin}/healthz`)).status, 200);

    // Let the bus fail a few reads and LISTEN reconnections while the server is down.
    await sleep(1_500);
    assert.deepEqual(crashes, []);
  });

  it('after the restart: /readyz 200 within a bounded time, queries work, every change once, in order', async (t) => {
    const restarted = Date.now();
    await cluster.start();
    // Committed at once, while the bus may still wait to reconnect its LISTEN: it must catch up.
    await publish();

    const readyAfter = await until(async () => (await readyz()).status === 200, () => 'the gateway /readyz to be 200', READY_BOUND_MS);
    t.diagnostic(`/readyz 200 ${readyAfter} ms after start`);
    for (const name of ['territory', 'equipment'] as const) {
      const sub = await subgraphReadyz(name);
      assert.equal(sub.status, 200, `${name}: ${JSON.stringify(sub.body)}`);
    }
    const query = await request(hub.gatewayUrl, { body: { query: SEARCH } });
    assert.equal(query.body.errors, undefined, JSON.stringify(query.body.errors));
    const stored = query.body.data.equipmentSearch.edges.map((edge: { node: { id: string; reference: string } }) => edge.node);
    assert.ok(stored.every((node: { collectivity: { name: string } }) => node.collectivity.name === 'Châlons-en-Champagne'));
    const storedIds = new Set(stored.map((node: { id: string }) => node.id));
    for (const { id } of confirmed) assert.ok(storedIds.has(id), `confirmed registration ${id} is stored`);
    assert.ok(!stored.some((node: { reference: string }) => node.reference === 'PG-RESTART-DURING-OUTAGE'), 'nothing written during the outage');

    await publish();
    const committed = await committedChanges();
    assert.deepEqual(
      new Set(committed.map((row) => row.equipment_id)),
      new Set([...storedIds, confirmed.at(-1)!.id]),
      'one change per stored asset',
    );
    const deliveredAfter = await until(
      () => received.length >= committed.length || streamProblems.length > 0,
      () => `${committed.length} changes (got ${received.length})`,
      EVENT_BOUND_MS,
    );
    t.diagnostic(`${committed.length} changes delivered, ${Date.now() - restarted} ms after start (${deliveredAfter} ms after the last commit)`);
    await sleep(300); // a duplicate would show up now
    assert.deepEqual(streamProblems, [], 'the subscription stayed open without errors');
    assert.deepEqual(
      received.map((change) => [change.cursor, change.equipment?.id]),
      committed.map((row) => [row.id, row.equipment_id]),
      'every committed change once, in commit order',
    );
    const receivedIds = new Set(received.map((change) => change.equipment?.id));
    for (const { id } of confirmed) assert.ok(receivedIds.has(id), `the change of confirmed registration ${id} arrived`);
    assert.equal(hub.gateway.upstreamSubscriptions(), 1, 'the same upstream subscription');
  });

  it('crashed nothing: no uncaught exception or unhandled rejection in the services', () => {
    assert.deepEqual(crashes, []);
  });
});
