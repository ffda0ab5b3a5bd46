/**
 * Timeouts everywhere, and the right words for them (issue #5). The equipment table is locked
 * (`LOCK TABLE equipment IN ACCESS EXCLUSIVE MODE`, held by a plain client of the test) and:
 *  - a query straight at the subgraph answers after the statement timeout, not when the lock is
 *    released, with code TIMEOUT, "The database did not answer within 1000 ms", HTTP 503, and a
 *    warn line naming the field, the limit, PostgreSQL's words and the time spent;
 *  - through the gateway the subgraph's TIMEOUT passes as it is; with a gateway timeout shorter
 *    than the statement timeout, the gateway's own SUBGRAPH_TIMEOUT, distinct from "could not be
 *    reached", and the gateway's warn line;
 *  - a write (Prisma interactive transaction) and a query over graphql-ws say TIMEOUT too;
 *  - `/readyz` names a subgraph that does not answer in time;
 * a pool of one connection held by someone else answers "No database connection was available";
 * a server that stops answering at all (a frozen proxy) is given up on by the client;
 * a forgotten open transaction does not keep its locks; the LISTEN connection of the event bus
 * outlives every timeout; and after each, the service answers again.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
// The enum is not re-exported by the package's root.
import { GraphQLDataSourceRequestKind } from '@apollo/gateway/dist/datasources/types.js';
import { createClient } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { createDatabase } from '@connecte/shared/db';
import { createLogger, type Logger } from '@connecte/shared/log';
import { startSubgraph, type RunningService } from '@connecte/shared/server';
import { databaseTimeoutOf, QUERY_TIMEOUT_GRACE_MS } from '@connecte/shared/timeouts';
import { startGateway, type RunningGateway } from '@connecte/gateway';
import { AuthForwardingDataSource } from '@connecte/gateway/data-source';
import { createSubgraphFetcher } from '@connecte/gateway/fetcher';
import { createReadiness } from '@connecte/gateway/health';
import { territorySubgraph } from '@connecte/subgraph-territory';
import { equipmentSubgraph } from '@connecte/subgraph-equipment';
import { createTestDatabase, type TestDatabase, gql, testConfig, tokenFor } from '@connecte/testkit';

const STATEMENT_TIMEOUT_MS = 1_000;
const CONNECTION_TIMEOUT_MS = 800;
/** Shorter than the statement timeout of the subgraph it calls (SLOW_STATEMENT_TIMEOUT_MS). */
const GATEWAY_TIMEOUT_MS = 1_500;
const SLOW_STATEMENT_TIMEOUT_MS = 6_000;
/** undici checks its timeouts on a ~0.5 s tick, node's timers and a loaded machine add some. */
const SLACK_MS = 1_500;
/** Far longer than any timeout under test. */
const LOCK_HOLD_MS = 10_000;

const COUNT = '{ equipmentSearch(first: 1) { totalCount } }';
const REGISTER = 'mutation Register($input: RegisterEquipmentInput!) { registerEquipment(input: $input) { id reference } }';
const registration = (reference: string) => ({
  input: { kind: 'WIFI_HOTSPOT', reference, collectivityId: 'chalons', location: { lon: 4.365, lat: 48.9566 } },
});

/** JSON lines written by a logger, parsed. */
function capturedLogger(service: string): { log: Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) });
  return { log: createLogger(service, { LOG_LEVEL: 'warn' }, sink), lines };
}

async function timed<T>(work: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = Date.now();
  const result = await work();
  return { result, ms: Date.now() - started };
}

describe('timeouts', { timeout: 120_000 }, () => {
  let db: TestDatabase;
  let operator: string;
  const equipmentLogs = capturedLogger('equipment');
  /** Statement timeout 1 s, pool 10. */
  let territory: RunningService;
  let equipment: RunningService;
  /** Statement timeout 6 s: the gateway in front of it gives up first. */
  let slowEquipment: RunningService;
  /** One connection, 0.8 s to get it. */
  let tinyEquipment: RunningService;
  /** Subgraph timeout 4 s, in front of `equipment`. */
  let gateway: RunningGateway;
  /** Subgraph timeout 1.5 s, in front of `slowEquipment`. */
  let impatientGateway: RunningGateway;
  const lockers = new Set<pg.Client>();

  const subgraphEnv = {
    DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
    DB_CONNECTION_TIMEOUT_MS: String(CONNECTION_TIMEOUT_MS),
    SUBGRAPH_TIMEOUT_MS: '4000',
  };

  /**
   * Holds an exclusive lock on the equipment table until the returned function is called, or
   * LOCK_HOLD_MS have passed: without the timeouts, a request answers then (and fails the test
   * by its duration) instead of hanging the run.
   */
  async function lockEquipment(): Promise<() => Promise<void>> {
    const locker = new pg.Client({ connectionString: db.url });
    await locker.connect();
    lockers.add(locker);
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE equipment IN ACCESS EXCLUSIVE MODE');
    const unlock = async () => {
      clearTimeout(deadline);
      if (!lockers.delete(locker)) return;
      await locker.query('ROLLBACK');
      await locker.end();
    };
    const deadline = setTimeout(() => void unlock(), LOCK_HOLD_MS);
    return unlock;
  }

  const assertAnswers = async (url: string, what: string) => {
    const answer = await gql(url, COUNT);
    assert.equal(answer.errors, undefined, `${what}: ${JSON.stringify(answer.errors)}`);
    assert.ok(answer.data.equipmentSearch.totalCount > 0, what);
  };

  before(async () => {
    db = await createTestDatabase();
    const config = testConfig(db.url, subgraphEnv);
    operator = await tokenFor(config, ['operator'], ['chalons']);
    territory = await startSubgraph(territorySubgraph, { config, port: 0 });
    equipment = await startSubgraph(equipmentSubgraph, { config, port: 0, log: equipmentLogs.log });
    slowEquipment = await startSubgraph(equipmentSubgraph, {
      config: testConfig(db.url, { ...subgraphEnv, DB_STATEMENT_TIMEOUT_MS: String(SLOW_STATEMENT_TIMEOUT_MS) }),
      port: 0,
    });
    tinyEquipment = await startSubgraph(equipmentSubgraph, { config: testConfig(db.url, { ...subgraphEnv, DB_POOL_SIZE: '1' }), port: 0 });
    gateway = await startGateway({ config, port: 0, subgraphUrls: { territory: territory.url, equipment: equipment.url } });
    impatientGateway = await startGateway({
      config: testConfig(db.url, { ...subgraphEnv, SUBGRAPH_TIMEOUT_MS: String(GATEWAY_TIMEOUT_MS) }),
      port: 0,
      subgraphUrls: { territory: territory.url, equipment: slowEquipment.url },
    });
  });

  after(async () => {
    for (const locker of lockers) await locker.end().catch(() => {});
    await Promise.all([gateway?.close(), impatientGateway?.close()]);
    await Promise.all([territory, equipment, slowEquipment, tinyEquipment].map((service) => service?.close()));
    await db?.drop();
  });

  it('a statement blocked by a lock answers TIMEOUT at the subgraph after the statement timeout, with a warn line', async () => {
    const unlock = await lockEquipment();
    try {
      equipmentLogs.lines.length = 0;
      const { result: answer, ms } = await timed(() => gql(equipment.url, COUNT));
      assert.ok(ms >= STATEMENT_TIMEOUT_MS - 50 && ms < STATEMENT_TIMEOUT_MS + SLACK_MS, `answered in ${ms} ms`);
      assert.equal(answer.status, 503, 'nothing to answer: 503');
      assert.equal(answer.data, null);
      assert.deepEqual(answer.errors, [
        {
          message: `The database did not answer within ${STATEMENT_TIMEOUT_MS} ms`,
          locations: [{ line: 1, column: 3 }],
          path: ['equipmentSearch'],
          extensions: { code: 'TIMEOUT' },
        },
      ]);
      const warnings = equipmentLogs.lines.filter((line) => line.level === 'warn');
      assert.equal(warnings.length, 1, JSON.stringify(equipmentLogs.lines));
      const [warning] = warnings;
      assert.equal(warning.msg, `database timeout: The database did not answer within ${STATEMENT_TIMEOUT_MS} ms`);
      assert.equal(warning.timeout, 'statement');
      assert.equal(warning.timeoutMs, STATEMENT_TIMEOUT_MS);
      assert.equal(warning.cause, 'canceling statement due to statement timeout');
      assert.deepEqual(warning.path, ['equipmentSearch']);
      assert.ok(warning.elapsedMs >= STATEMENT_TIMEOUT_MS - 50, JSON.stringify(warning));
      assert.equal(typeof warning.requestId, 'string');
      assert.ok(!equipmentLogs.lines.some((line) => line.level === 'error' && line.msg === 'unexpected error'), 'not an unexpected error');
    } finally {
      await unlock();
    }
    await assertAnswers(equipment.url, 'the subgraph after the lock');
  });

  it('through the gateway, the subgraph TIMEOUT passes as it is', async () => {
    const unlock = await lockEquipment();
    try {
      const { result: answer, ms } = await timed(() => gql(gateway.url, COUNT));
      assert.ok(ms < STATEMENT_TIMEOUT_MS + SLACK_MS, `answered in ${ms} ms`);
      assert.equal(answer.errors?.length, 1, JSON.stringify(answer));
      const [error] = answer.errors!;
      assert.equal(error.message, `The database did not answer within ${STATEMENT_TIMEOUT_MS} ms`);
      assert.equal(error.extensions?.code, 'TIMEOUT');
      assert.deepEqual(error.path, ['equipmentSearch']);
      assert.equal(answer.status, 503, 'nothing to answer because the database did not: 503, as the subgraph says');
    } finally {
      await unlock();
    }
    await assertAnswers(gateway.url, 'the gateway after the lock');
  });

  it('a gateway timeout shorter than the statement timeout is the gateway’s own SUBGRAPH_TIMEOUT', async () => {
    const unlock = await lockEquipment();
    try {
      const { result: answer, ms } = await timed(() => gql(impatientGateway.url, COUNT));
      assert.ok(ms >= GATEWAY_TIMEOUT_MS - 50 && ms < GATEWAY_TIMEOUT_MS + SLACK_MS, `answered in ${ms} ms`);
      assert.equal(answer.errors?.length, 1, JSON.stringify(answer));
      const [error] = answer.errors!;
      assert.equal(error.message, `Subgraph "equipment" did not answer within ${GATEWAY_TIMEOUT_MS} ms`);
      assert.equal(error.extensions?.code, 'SUBGRAPH_TIMEOUT');
      assert.equal(error.extensions?.serviceName, 'equipment');
      assert.equal(answer.status, 504, 'a subgraph that did not answer the gateway in time: 504 Gateway Timeout');
      assert.doesNotMatch(JSON.stringify(answer), /could not be reached|127\.0\.0\.1|UND_ERR/);
    } finally {
      await unlock();
    }
    await assertAnswers(impatientGateway.url, 'the impatient gateway after the lock');
  });

  it('the gateway’s warn line names the subgraph, the limit and the time spent', async () => {
    const { log, lines } = capturedLogger('gateway');
    const fetcher = createSubgraphFetcher({ timeoutMs: GATEWAY_TIMEOUT_MS });
    const source = new AuthForwardingDataSource({ name: 'equipment', url: slowEquipment.url, fetcher: fetcher.fetcher, log });
    const unlock = await lockEquipment();
    try {
      await assert.rejects(
        source.process({
          kind: GraphQLDataSourceRequestKind.LOADING_SCHEMA,
          request: { query: `query Count ${COUNT}`, operationName: 'Count' },
          context: { requestId: 'timeouts-test' },
        }),
        (error: any) => error.extensions?.code === 'SUBGRAPH_TIMEOUT' && error.message.includes(`${GATEWAY_TIMEOUT_MS} ms`),
      );
    } finally {
      await unlock();
      await fetcher.close();
    }
    assert.equal(lines.length, 1, JSON.stringify(lines));
    const [warning] = lines;
    assert.equal(warning.level, 'warn');
    assert.equal(warning.msg, `Subgraph "equipment" did not answer within ${GATEWAY_TIMEOUT_MS} ms`);
    assert.equal(warning.subgraph, 'equipment');
    assert.equal(warning.requestId, 'timeouts-test');
    assert.equal(warning.operationName, 'Count');
    assert.equal(warning.timeoutMs, GATEWAY_TIMEOUT_MS);
    assert.ok(warning.elapsedMs >= GATEWAY_TIMEOUT_MS - 50, JSON.stringify(warning));
    assert.match(warning.cause, /no answer within/);
  });

  it('a subgraph that is down is still "could not be reached", not a timeout', async () => {
    const closed = await startSubgraph(equipmentSubgraph, { config: testConfig(db.url, subgraphEnv), port: 0 });
    const url = closed.url;
    await closed.close();
    const fetcher = createSubgraphFetcher({ timeoutMs: GATEWAY_TIMEOUT_MS });
    const source = new AuthForwardingDataSource({ name: 'equipment', url, fetcher: fetcher.fetcher });
    try {
      await assert.rejects(
        source.process({ kind: GraphQLDataSourceRequestKind.LOADING_SCHEMA, request: { query: COUNT }, context: { requestId: 'down' } }),
        (error: any) => error.extensions?.code === 'SUBREQUEST_HTTP_ERROR' && error.message === 'Subgraph "equipment" could not be reached',
      );
    } finally {
      await fetcher.close();
    }
  });

  it('/readyz names a subgraph that does not answer in time', async () => {
    const silent = http.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const fetcher = createSubgraphFetcher({ timeoutMs: GATEWAY_TIMEOUT_MS });
    const readiness = createReadiness({
      databaseUrl: db.url,
      subgraphUrls: { silent: `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/graphql` },
      fetcher: fetcher.fetcher,
      timeoutMs: GATEWAY_TIMEOUT_MS + SLACK_MS,
    });
    try {
      const report = await readiness.check();
      assert.deepEqual(report.failed, ['subgraph:silent'], JSON.stringify(report));
      assert.equal(report.checks['subgraph:silent'], `did not answer within ${GATEWAY_TIMEOUT_MS} ms`);
      assert.equal(report.checks.database, 'ok');
    } finally {
      await readiness.close();
      await fetcher.close();
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('a write waiting on the lock (interactive transaction) answers TIMEOUT and writes nothing', async () => {
    const unlock = await lockEquipment();
    try {
      const { result: answer, ms } = await timed(() =>
        gql(equipment.url, REGISTER, { token: operator, variables: registration('TIMEOUT-WRITE') }),
      );
      assert.ok(ms < STATEMENT_TIMEOUT_MS + SLACK_MS, `answered in ${ms} ms`);
      assert.equal(answer.errors?.[0]?.extensions?.code, 'TIMEOUT', JSON.stringify(answer));
      assert.match(answer.errors![0].message, /^The database did not answer within \d+ ms$/);
    } finally {
      await unlock();
    }
    const check = new pg.Client({ connectionString: db.url });
    await check.connect();
    try {
      const { rowCount } = await check.query(`SELECT 1 FROM equipment WHERE reference = 'TIMEOUT-WRITE'`);
      assert.equal(rowCount, 0, 'nothing written');
    } finally {
      await check.end();
    }
    const again = await gql(equipment.url, REGISTER, { token: operator, variables: registration('TIMEOUT-WRITE-AFTER') });
    assert.equal(again.errors, undefined, JSON.stringify(again.errors));
    assert.equal(again.data.registerEquipment.reference, 'TIMEOUT-WRITE-AFTER');
  });

  it('a query over graphql-ws says TIMEOUT too', async () => {
    const client = createClient({ url: equipment.url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    const unlock = await lockEquipment();
    try {
      equipmentLogs.lines.length = 0;
      const results: any[] = [];
      for await (const result of client.iterate({ query: COUNT })) results.push(result);
      assert.equal(results.length, 1, JSON.stringify(results));
      assert.deepEqual(results[0].errors?.map((e: any) => [e.message, e.extensions?.code]), [
        [`The database did not answer within ${STATEMENT_TIMEOUT_MS} ms`, 'TIMEOUT'],
      ]);
      assert.ok(equipmentLogs.lines.some((line) => line.level === 'warn' && line.timeoutMs === STATEMENT_TIMEOUT_MS));
    } finally {
      await unlock();
      await client.dispose();
    }
  });

  it('a pool whose one connection is taken answers "No database connection was available" (query and write)', async () => {
    const held = await tinyEquipment.db.pool.connect();
    try {
      const { result: query, ms } = await timed(() => gql(tinyEquipment.url, COUNT));
      assert.ok(ms >= CONNECTION_TIMEOUT_MS - 50 && ms < CONNECTION_TIMEOUT_MS + SLACK_MS, `answered in ${ms} ms`);
      assert.equal(query.status, 503);
      assert.deepEqual(query.errors?.map((e) => [e.message, e.extensions?.code]), [
        [`No database connection was available within ${CONNECTION_TIMEOUT_MS} ms`, 'TIMEOUT'],
      ]);
      const write = await gql(tinyEquipment.url, REGISTER, { token: operator, variables: registration('TIMEOUT-POOL') });
      assert.deepEqual(write.errors?.map((e) => [e.message, e.extensions?.code]), [
        [`No database connection was available within ${CONNECTION_TIMEOUT_MS} ms`, 'TIMEOUT'],
      ]);
    } finally {
      held.release();
    }
    await assertAnswers(tinyEquipment.url, 'the one-connection subgraph once its connection is back');
  });

  it('a forgotten open transaction loses its session, and its locks, after the statement timeout', async () => {
    const forgotten = await equipment.db.pool.connect();
    let lost: Error | undefined;
    forgotten.on('error', (error) => (lost = error));
    await forgotten.query('BEGIN');
    await forgotten.query('LOCK TABLE equipment IN ACCESS EXCLUSIVE MODE');
    await sleep(STATEMENT_TIMEOUT_MS + 500);
    try {
      const { ms } = await timed(() => assertAnswers(equipment.url, 'the subgraph while a forgotten transaction held a lock'));
      assert.ok(ms < STATEMENT_TIMEOUT_MS, `answered in ${ms} ms: the lock was gone`);
      assert.match(String(lost?.message), /idle-in-transaction timeout|terminat/i);
    } finally {
      forgotten.release(lost ?? true);
    }
  });

  it('the event bus keeps its LISTEN connection past every timeout', async () => {
    const events = equipment.events.subscribe({ topics: ['equipment.changed'] });
    try {
      await sleep(STATEMENT_TIMEOUT_MS + QUERY_TIMEOUT_GRACE_MS + 500);
      const check = new pg.Client({ connectionString: db.url });
      await check.connect();
      try {
        const { rows } = await check.query<{ state: string }>(
          `SELECT state FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'connecte-event-bus'`,
        );
        assert.ok(rows.length >= 1 && rows.every((row) => row.state === 'idle'), JSON.stringify(rows));
      } finally {
        await check.end();
      }
      const written = await gql(equipment.url, REGISTER, { token: operator, variables: registration('TIMEOUT-LISTEN') });
      assert.equal(written.errors, undefined, JSON.stringify(written.errors));
      // Sooner than the bus's 5 s safety poll: delivered on its notification.
      const { ms } = await timed(async () => {
        for (;;) {
          const next = await events.next();
          assert.equal(next.done, false);
          if ((next.value.payload as { equipmentId?: string }).equipmentId === written.data.registerEquipment.id) return;
        }
      });
      assert.ok(ms < 2_000, `delivered ${ms} ms after the write`);
    } finally {
      await events.return?.();
    }
  });

  it('a server that stops answering: the client gives up on the statement, then on a new connection', async () => {
    const proxy = await frozenProxy(new URL(db.url));
    const database = createDatabase({
      DATABASE_URL: proxy.url(db.name),
      DB_POOL_SIZE: 2,
      DB_STATEMENT_TIMEOUT_MS: 300,
      DB_CONNECTION_TIMEOUT_MS: 300,
    });
    const limits = { DB_STATEMENT_TIMEOUT_MS: 300, DB_CONNECTION_TIMEOUT_MS: 300 };
    try {
      assert.deepEqual(await database.prisma.$queryRaw`SELECT 1 AS one`, [{ one: 1 }]);
      proxy.freeze();
      const { result: statement, ms } = await timed(() => database.prisma.$queryRaw`SELECT 1 AS one`.then(() => null, (e: unknown) => e));
      assert.ok(ms >= 300 + QUERY_TIMEOUT_GRACE_MS - 50 && ms < 300 + QUERY_TIMEOUT_GRACE_MS + SLACK_MS, `gave up after ${ms} ms`);
      assert.equal(databaseTimeoutOf(statement, limits)?.kind, 'statement', String(statement));
      const connection = await database.pool.query('SELECT 1').then(() => null, (e: unknown) => e);
      assert.equal(databaseTimeoutOf(connection, limits)?.kind, 'connection', String(connection));
    } finally {
      await database.close().catch(() => {});
      await proxy.close();
    }
  });

  it('recognises timeouts only: hostile and unrelated values are not', () => {
    const limits = { DB_STATEMENT_TIMEOUT_MS: 1_000, DB_CONNECTION_TIMEOUT_MS: 800 };
    const cyclic: { message: string; cause?: unknown } = { message: 'loop' };
    cyclic.cause = cyclic;
    for (const value of [null, undefined, 57014, '57014', 'timeout exceeded when trying to connect', {}, [], cyclic, new Error('boom'), { code: 57014 }, { code: '23505', message: 'duplicate' }, { code: 'P2028', message: 'Transaction not found.' }, { code: 'P2028', meta: { timeout: '5000' } }]) {
      assert.equal(databaseTimeoutOf(value, limits), null, inspect(value));
    }
    assert.equal(databaseTimeoutOf({ originalError: { cause: { code: '57014' } } }, limits)?.timeoutMs, 1_000);
    assert.equal(databaseTimeoutOf({ code: 'P2028', message: 'Transaction API error: Unable to start a transaction in the given time.' }, limits)?.kind, 'connection');
    assert.deepEqual(databaseTimeoutOf({ code: 'P2028', message: 'expired', meta: { timeout: 1_000 } }, limits)?.timeoutMs, 1_000);
  });
});

/** A TCP proxy to PostgreSQL that can stop forwarding anything, as a dead network does. */
async function frozenProxy(target: URL): Promise<{ url(database: string): string; freeze(): void; close(): Promise<void> }> {
  let frozen = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk) => void (frozen || upstream.write(chunk)));
    upstream.on('data', (chunk) => void (frozen || client.write(chunk)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: (database) => {
      const url = new URL(target);
      url.host = `127.0.0.1:${port}`;
      url.pathname = `/${database}`;
      return url.toString();
    },
    freeze: () => void (frozen = true),
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
