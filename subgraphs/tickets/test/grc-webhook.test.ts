/**
 * The GRC webhook (docs/tickets.md, "Export to the GRC system"): the outbox rows that
 * recordTicketChange writes in each change's transaction, delivered by the grc-outbox worker to a
 * real HTTP receiver on an ephemeral port. The receiver verifies every signature, processes each
 * deliveryId once (the idempotency key), and checks at every request it receives that every
 * earlier change of that ticket was already accepted. It is stopped, answers 500, hangs past the
 * timeout, drops connections mid-request; two workers over one database deliver at once; a worker
 * stops with deliveries in flight and another takes over; a crashed instance's claim expires.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { loadConfig } from '@connecte/shared/config';
import { createDatabase } from '@connecte/shared/db';
import { EventBus } from '@connecte/shared/events';
import { createLogger } from '@connecte/shared/log';
import { createMetrics } from '@connecte/shared/metrics';
import { createPeers } from '@connecte/shared/peers';
import type { Worker } from '@connecte/shared/workers';
import { createTestDatabase, startService, testConfig, type TestDatabase } from '@connecte/testkit';
import { recordTicketChange } from '../src/changes.js';
import { grcOutboxWorker, purgeDeliveredGrcRows, retryDelayMs, type GrcOutboxOptions } from '../src/grc-outbox.js';
import { signGrcPayload, verifyGrcSignature } from '../src/grc-signature.js';
import { TicketResources } from '../src/resources.js';
import { TICKET_COLUMNS, type TicketRow, type TicketStatus } from '../src/types.js';
import { startTicketsHub, type TicketsHub } from './fixtures.js';

const SECRET = 'test-grc-secret-0123456789abcdef0123456789';
const TIMEOUT_MS = 400;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const jitter = (maxMs: number) => sleep(Math.floor(Math.random() * maxMs));

async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

// --- the receiver -------------------------------------------------------------------------

type Answer = 'ok' | 'error500' | 'hang' | 'close' | 'accept-then-hang';

interface Receipt {
  deliveryId: string;
  ticketId: string;
  historyId: string;
  attempt: number;
  answer: Answer | 'refused-signature';
  at: number;
}

interface Body {
  deliveryId: string;
  ticketId: string;
  historyId: string;
  action: string;
  fromStatus: string | null;
  toStatus: string | null;
  [key: string]: unknown;
}

/** A GRC system: verifies, deduplicates on deliveryId, records what it processed in order. */
class Receiver {
  private server: Server | null = null;
  port = 0;
  behaviour: (receipt: Receipt) => Answer | Promise<Answer> = () => 'ok';
  /** Every request that reached the handler, in arrival order. */
  receipts: Receipt[] = [];
  /** Processed once per deliveryId, in the order processed. */
  processed: Body[] = [];
  /** Raw headers and body of every request, for the signature tests. */
  raw: { headers: IncomingMessage['headers']; body: string }[] = [];
  duplicates = 0;
  violations: string[] = [];
  private readonly accepted = new Set<string>();

  constructor(private readonly checkPool: () => pg.Pool) {}

  get url() {
    return `http://127.0.0.1:${this.port}/grc/hook`;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', () => resolve()));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  /** Clears the records, answers 'ok' again, and listens (again) if it was stopped. */
  async reset(): Promise<void> {
    if (!this.server) await this.start();
    this.receipts = [];
    this.processed = [];
    this.raw = [];
    this.duplicates = 0;
    this.violations = [];
    this.behaviour = () => 'ok';
  }

  /** Processed changes of these tickets, in the order processed. */
  processedOf(ticketIds: Iterable<string>): Body[] {
    const wanted = new Set(ticketIds);
    return this.processed.filter((body) => wanted.has(body.ticketId));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const headerId = String(req.headers['x-connecte-delivery'] ?? '');
    const attempt = Number(req.headers['x-connecte-attempt'] ?? 0);
    // The answer is decided before reading: a connection closed mid-request has sent only part of the body.
    const early: Receipt = { deliveryId: headerId, ticketId: '', historyId: '', attempt, answer: 'ok', at: Date.now() };
    const answer = await this.behaviour(early);
    if (answer === 'close') {
      req.once('data', () => req.socket.destroy());
      this.receipts.push({ ...early, answer });
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    this.raw.push({ headers: req.headers, body: text });
    const verified = verifyGrcSignature({ secret: SECRET, body: text, timestamp: req.headers['x-connecte-timestamp'], signature: req.headers['x-connecte-signature'] });
    const body = JSON.parse(text) as Body;
    const receipt: Receipt = { ...early, ticketId: body.ticketId, historyId: body.historyId, answer, at: Date.now() };
    if (!verified.ok) {
      this.violations.push(`delivery ${body.deliveryId}: ${verified.reason}`);
      this.receipts.push({ ...receipt, answer: 'refused-signature' });
      res.writeHead(401).end();
      return;
    }
    if (body.deliveryId !== headerId) this.violations.push(`delivery ${body.deliveryId}: header says ${headerId}`);
    this.receipts.push(receipt);
    // Order: every earlier change of this ticket must have been accepted before this one arrives.
    const { rows } = await this.checkPool().query<{ id: string }>('SELECT id::text FROM ticket_outbox WHERE ticket_id = $1 AND id < $2 ORDER BY id', [body.ticketId, body.deliveryId]);
    const missing = rows.map((row) => row.id).filter((id) => !this.accepted.has(id));
    if (missing.length > 0) this.violations.push(`delivery ${body.deliveryId} of ticket ${body.ticketId} arrived before ${missing.join(', ')}`);
    if (answer === 'error500') {
      res.writeHead(500, { 'content-type': 'text/plain' }).end('GRC database unavailable');
      return;
    }
    if (answer === 'hang') return; // never answers: the sender's timeout ends it
    this.accept(body);
    if (answer === 'accept-then-hang') return; // processed, but the answer never comes
    res.writeHead(204).end();
  }

  private accept(body: Body): void {
    if (this.accepted.has(body.deliveryId)) {
      this.duplicates++;
      return;
    }
    this.accepted.add(body.deliveryId);
    this.processed.push(body);
  }
}

// --- the tickets service's side, without a server -----------------------------------------

interface Instance {
  resources: TicketResources;
  worker: Worker;
  metricsText(): Promise<string>;
  close(): Promise<void>;
}

let database: TestDatabase;
let pool: pg.Pool;
let receiver: Receiver;
const instances = new Set<Instance>();

async function startInstance(options: GrcOutboxOptions = {}, env: Record<string, string> = {}): Promise<Instance> {
  const config = testConfig(database.url, {
    GRC_WEBHOOK_URL: receiver.url,
    GRC_WEBHOOK_SECRET: SECRET,
    GRC_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
    ...env,
  });
  const db = createDatabase(config);
  const log = createLogger('tickets-grc-test', config);
  const events = new EventBus(db.pool, log);
  await events.start();
  const metrics = createMetrics('tickets');
  const resources = new TicketResources({ config, db, events, log, peers: createPeers(), metrics });
  const worker = grcOutboxWorker(resources, { retryBaseMs: 50, retryMaxMs: 400, pollIntervalMs: 300, ...options });
  await worker.start();
  let closed = false;
  const instance: Instance = {
    resources,
    worker,
    metricsText: () => metrics.registry.metrics(),
    async close() {
      if (closed) return;
      closed = true;
      instances.delete(instance);
      await worker.stop();
      await events.close();
      await db.close();
    },
  };
  instances.add(instance);
  return instance;
}

/** The resources a change is recorded with (exportToGrc follows GRC_WEBHOOK_URL), without a worker. */
function writerResources(env: Record<string, string> = { GRC_WEBHOOK_URL: 'http://127.0.0.1:9/unused', GRC_WEBHOOK_SECRET: SECRET }): TicketResources {
  const config = testConfig(database.url, env);
  return new TicketResources({ config, db: { pool } as never, events: null as never, log: createLogger('w', config), peers: createPeers() });
}
const writer = () => writerResources();

async function inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

async function loadTicket(client: pg.ClientBase, id: string): Promise<TicketRow> {
  const { rows } = await client.query<TicketRow>(`SELECT ${TICKET_COLUMNS} FROM tickets t WHERE t.id = $1`, [id]);
  return rows[0];
}

/** A ticket inserted with SQL and its CREATED change, in the caller's transaction. */
async function createTicket(client: pg.ClientBase, r: TicketResources, label: string): Promise<TicketRow> {
  const { rows } = await client.query<{ id: string }>(
    `INSERT INTO tickets (category_code, collectivity_id, service, description, geom, source, reporter_sub, reporter_name, reporter_email, reporter_phone, ack_due_at, resolve_due_at)
     VALUES ('TAG', 'chalons', 'Propreté urbaine', $1, ST_SetSRID(ST_MakePoint(4.365, 48.957), 4326), 'APP', 'citizen-alice', 'Alice Martin', 'alice@example.org', '+33 6 12 34 56 78',
             now() + interval '48 hours', now() + interval '240 hours')
     RETURNING id::text`,
    [label],
  );
  const ticket = await loadTicket(client, rows[0].id);
  await recordTicketChange(client, { ticket, action: 'CREATED', fromStatus: null, toStatus: 'NEW', actor: { sub: 'citizen-alice', roles: ['citizen'] } }, { exportToGrc: r.exportToGrc });
  return ticket;
}

/** What transitionTicket does: lock the row, move it, record the change. */
async function moveTicket(client: pg.ClientBase, r: TicketResources, id: string, to: TicketStatus, note: string | null = null): Promise<void> {
  const { rows } = await client.query<{ status: TicketStatus }>('SELECT status FROM tickets WHERE id = $1 FOR UPDATE', [id]);
  await client.query('UPDATE tickets SET status = $2, version = version + 1, updated_at = now() WHERE id = $1', [id, to]);
  const ticket = await loadTicket(client, id);
  await recordTicketChange(client, { ticket, action: 'TRANSITION', fromStatus: rows[0].status, toStatus: to, actor: { sub: 'operator-1', roles: ['operator'] }, note }, { exportToGrc: r.exportToGrc });
}

/** A change recorded without locking the ticket first (a duplicate attached to an original does this). */
async function noteTicket(client: pg.ClientBase, r: TicketResources, id: string, note: string): Promise<void> {
  const ticket = await loadTicket(client, id);
  await recordTicketChange(client, { ticket, action: 'NOTE', fromStatus: null, toStatus: null, actor: { sub: 'operator-1', roles: ['operator'] }, note }, { exportToGrc: r.exportToGrc });
}

const LIFE: TicketStatus[] = ['ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS', 'RESOLVED', 'CLOSED'];

/** `tickets` tickets, each created then moved `moves` times, concurrently with random delays; returns their ids. */
async function makeChanges(tickets: number, moves: number, label: string): Promise<string[]> {
  const r = writer();
  return Promise.all(
    Array.from({ length: tickets }, async (_, i) => {
      await jitter(40);
      const ticket = await inTransaction((client) => createTicket(client, r, `${label} ${i}`));
      for (const to of LIFE.slice(0, moves)) {
        await jitter(30);
        await inTransaction(async (client) => {
          await moveTicket(client, r, ticket.id, to);
          await jitter(10);
        });
      }
      return ticket.id;
    }),
  );
}

interface Readyz {
  status: string;
  checks: Record<string, string>;
}

interface OutboxRow {
  id: string;
  ticketId: string;
  historyId: string;
  attempts: number;
  delivered: boolean;
  lastError: string | null;
}

async function outboxOf(ticketIds: string[]): Promise<OutboxRow[]> {
  const { rows } = await pool.query<OutboxRow>(
    `SELECT id::text, ticket_id::text AS "ticketId", payload->>'historyId' AS "historyId", attempts, delivered_at IS NOT NULL AS delivered, last_error AS "lastError"
     FROM ticket_outbox WHERE ticket_id = ANY($1::bigint[]) ORDER BY ticket_outbox.id`,
    [ticketIds],
  );
  return rows;
}

const allDelivered = (ticketIds: string[]) => async () => {
  const rows = await outboxOf(ticketIds);
  return rows.length > 0 && rows.every((row) => row.delivered) ? rows : null;
};

/** Every committed change of these tickets processed once, in history order per ticket, and nothing else. */
async function assertExactlyOnceInOrder(ticketIds: string[]): Promise<OutboxRow[]> {
  const rows = await waitFor('every change delivered', allDelivered(ticketIds));
  assert.deepEqual(receiver.violations, []);
  const { rows: history } = await pool.query<{ id: string; ticketId: string; action: string; toStatus: string | null }>(
    'SELECT id::text, ticket_id::text AS "ticketId", action, to_status AS "toStatus" FROM ticket_history WHERE ticket_id = ANY($1::bigint[]) ORDER BY ticket_history.id',
    [ticketIds],
  );
  // One outbox row per history entry, in the same order per ticket (across tickets, ids interleave).
  for (const id of ticketIds) {
    assert.deepEqual(
      rows.filter((row) => row.ticketId === id).map((row) => row.historyId),
      history.filter((entry) => entry.ticketId === id).map((entry) => entry.id),
      `ticket ${id}: one outbox row per history entry, in order`,
    );
  }
  assert.equal(rows.length, history.length);
  const processed = receiver.processedOf(ticketIds);
  assert.deepEqual(processed.map((body) => body.deliveryId).sort(), rows.map((row) => row.id).sort(), 'each change processed exactly once');
  for (const id of ticketIds) {
    const ofTicket = processed.filter((body) => body.ticketId === id);
    assert.deepEqual(
      ofTicket.map((body) => [body.historyId, body.action, body.toStatus]),
      history.filter((entry) => entry.ticketId === id).map((entry) => [entry.id, entry.action, entry.toStatus]),
      `ticket ${id}: its changes in order`,
    );
  }
  return rows;
}

/** A sample of the exposition text: `name{...}` whose labels include `labels` (e.g. `outcome="delivered"`); 0 if absent. */
function metricValue(text: string, name: string, labels = ''): number {
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match && match[1] === name && (labels === '' || (match[2] ?? '').split(',').includes(labels))) return Number(match[3]);
  }
  return 0;
}

before(async () => {
  database = await createTestDatabase({ seed: false });
  pool = new pg.Pool({ connectionString: database.url, max: 20 });
  pool.on('error', () => {});
  receiver = new Receiver(() => pool);
  await receiver.start();
});

after(async () => {
  for (const instance of [...instances]) await instance.close();
  await receiver.stop();
  await pool.end();
  await database.drop();
});

describe('the GRC webhook', () => {
  test('a delivery: the change with its ticket and reporter contact, deliveryId in the body and the header, signed with a fresh timestamp', async () => {
    await receiver.reset();
    const instance = await startInstance();
    try {
      const r = writer();
      const ticket = await inTransaction((client) => createTicket(client, r, 'A tag on the town hall'));
      await inTransaction((client) => moveTicket(client, r, ticket.id, 'ACKNOWLEDGED', 'Seen by the cleaning team'));
      const rows = await assertExactlyOnceInOrder([ticket.id]);
      const [created, acknowledged] = receiver.processedOf([ticket.id]);
      const { rows: history } = await pool.query<{ id: string; at: Date }>('SELECT id::text, at FROM ticket_history WHERE ticket_id = $1 ORDER BY ticket_history.id', [ticket.id]);
      assert.deepEqual(acknowledged, {
        deliveryId: rows[1].id,
        ticketId: ticket.id,
        collectivityId: 'chalons',
        historyId: history[1].id,
        action: 'TRANSITION',
        fromStatus: 'NEW',
        toStatus: 'ACKNOWLEDGED',
        at: history[1].at.toISOString(),
        actor: 'operator-1',
        note: 'Seen by the cleaning team',
        ticket: {
          status: 'ACKNOWLEDGED',
          category: 'TAG',
          service: 'Propreté urbaine',
          description: 'A tag on the town hall',
          location: { lon: 4.365, lat: 48.957 },
          address: null,
          equipmentId: null,
          duplicateOf: null,
          createdAt: ticket.createdAt.toISOString(),
          reporter: { accountId: 'citizen-alice', name: 'Alice Martin', email: 'alice@example.org', phone: '+33 6 12 34 56 78' },
        },
      });
      assert.equal(created.action, 'CREATED');
      assert.equal(created.toStatus, 'NEW');
      const { headers, body } = receiver.raw.find((raw) => raw.headers['x-connecte-delivery'] === rows[1].id)!;
      assert.equal(headers['content-type'], 'application/json');
      assert.equal(headers['x-connecte-attempt'], '1');
      const timestamp = Number(headers['x-connecte-timestamp']);
      assert.ok(Math.abs(timestamp - Date.now() / 1000) < 30, 'the timestamp is the attempt’s, in unix seconds');
      assert.equal(headers['x-connecte-signature'], signGrcPayload(SECRET, timestamp, body));
      assert.match(String(headers['x-connecte-signature']), /^sha256=[0-9a-f]{64}$/);
      assert.deepEqual(rows.map((row) => [row.attempts, row.lastError]), [[1, null], [1, null]]);
      const text = await instance.metricsText();
      assert.equal(metricValue(text, 'tickets_grc_deliveries_total', 'outcome="delivered"'), 2);
      await waitFor('the pending gauge at 0', async () => metricValue(await instance.metricsText(), 'tickets_grc_outbox_pending') === 0);
      assert.equal(receiver.duplicates, 0);
    } finally {
      await instance.close();
    }
  });

  test('the receiver stopped: changes wait with attempts and last_error; restarted, it gets every change exactly once, in order per ticket; rolled-back changes never', async () => {
    await receiver.reset();
    await receiver.stop();
    const instance = await startInstance();
    try {
      const ids = await makeChanges(6, 4, 'while the receiver is down');
      // A change rolled back: neither ticket nor outbox row.
      await assert.rejects(
        inTransaction(async (client) => {
          const ticket = await createTicket(client, writer(), 'rolled back');
          await moveTicket(client, writer(), ticket.id, 'ACKNOWLEDGED');
          throw new Error('the change fails after recording');
        }),
        /the change fails/,
      );
      const failing = await waitFor('failed attempts recorded', async () => {
        const rows = await outboxOf(ids);
        return rows.filter((row) => row.attempts >= 2).length >= 6 ? rows : null;
      });
      assert.equal(failing.length, 6 * 5);
      assert.ok(failing.every((row) => !row.delivered));
      // Only the head of each ticket is tried: later changes wait behind it.
      const tried = failing.filter((row) => row.attempts > 0);
      assert.equal(new Set(tried.map((row) => row.ticketId)).size, tried.length, 'one row tried per ticket');
      for (const row of tried) assert.match(row.lastError!, /fetch failed \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)/);
      const state = instance.worker.status();
      assert.equal(state.ready, true, 'a receiver that is down does not make the service unready');
      assert.match(state.state, /^30 pending, oldest \d+ s(; [1-6] in flight)?; last failure: fetch failed \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)/);
      assert.ok(metricValue(await instance.metricsText(), 'tickets_grc_deliveries_total', 'outcome="failed"') >= 12);
      await receiver.start();
      const rows = await assertExactlyOnceInOrder(ids);
      assert.equal(rows.length, 30);
      assert.equal(receiver.duplicates, 0, 'nothing was ambiguous: not even a raw duplicate');
      assert.equal(receiver.receipts.filter((receipt) => receipt.answer === 'ok' && ids.includes(receipt.ticketId)).length, 30);
      const { rows: rolledBack } = await pool.query("SELECT 1 FROM ticket_outbox WHERE payload->'ticket'->>'description' = 'rolled back' UNION ALL SELECT 1 FROM tickets WHERE description = 'rolled back'");
      assert.equal(rolledBack.length, 0);
      assert.equal(receiver.processed.filter((body) => (body.ticket as { description: string }).description === 'rolled back').length, 0);
      assert.match(instance.worker.status().state, /^0 pending$/);
    } finally {
      await instance.close();
    }
  });

  test('two instances delivering at once: no change twice, none before an earlier one of its ticket', async () => {
    await receiver.reset();
    receiver.behaviour = async (): Promise<Answer> => {
      await jitter(30);
      return 'ok';
    };
    const one = await startInstance({ concurrency: 2 });
    const two = await startInstance({ concurrency: 2 });
    try {
      const ids = await makeChanges(12, 4, 'two instances');
      await assertExactlyOnceInOrder(ids);
      assert.equal(receiver.duplicates, 0);
      assert.equal(receiver.receipts.filter((receipt) => ids.includes(receipt.ticketId)).length, 12 * 5, 'no row was sent twice by the two instances');
      const byOne = metricValue(await one.metricsText(), 'tickets_grc_deliveries_total', 'outcome="delivered"');
      const byTwo = metricValue(await two.metricsText(), 'tickets_grc_deliveries_total', 'outcome="delivered"');
      assert.equal(byOne + byTwo, 60);
      assert.ok(byOne > 0 && byTwo > 0, `both instances delivered (${byOne} + ${byTwo})`);
    } finally {
      await one.close();
      await two.close();
    }
  });

  test('changes of one ticket committed out of the order they began in are delivered in commit order (the ticket row lock)', async () => {
    await receiver.reset();
    // Polling often, so that the worker looks while A is still open.
    const instance = await startInstance({ pollIntervalMs: 50 });
    try {
      const r = writer();
      const ticket = await inTransaction((client) => createTicket(client, r, 'raced notes'));
      await waitFor('the creation delivered', allDelivered([ticket.id]));
      // A records first but commits late; B begins after A recorded. Without the ticket's lock, B would
      // draw the larger ids yet commit first: delivered first, then A's, out of id and history order.
      const a = inTransaction(async (client) => {
        await noteTicket(client, r, ticket.id, 'first recorded, committed late');
        await sleep(800);
      });
      await sleep(50);
      const b = inTransaction((client) => noteTicket(client, r, ticket.id, 'second'));
      await Promise.all([a, b]);
      await assertExactlyOnceInOrder([ticket.id]);
      assert.deepEqual(receiver.processedOf([ticket.id]).map((body) => body.note), [null, 'first recorded, committed late', 'second']);
    } finally {
      await instance.close();
    }
  });

  test('500s, timeouts, connections dropped mid-request and answers that never come are retried; the receiver processes each change once, in order', async () => {
    await receiver.reset();
    const answers: Answer[] = ['error500', 'hang', 'close', 'accept-then-hang'];
    receiver.behaviour = async () => {
      await jitter(20);
      return Math.random() < 0.5 ? answers[Math.floor(Math.random() * answers.length)] : 'ok';
    };
    const instance = await startInstance({ concurrency: 3 });
    try {
      const ids = await makeChanges(8, 3, 'a flaky receiver');
      // Whatever was left failing is taken once the receiver behaves.
      // The failures as recorded while they happened: a row's `last_error` is overwritten by its next failure.
      const recorded = await waitFor('several kinds of failures', async () => {
        const errors = (await pool.query<{ e: string }>('SELECT DISTINCT last_error AS e FROM ticket_outbox WHERE ticket_id = ANY($1::bigint[]) AND last_error IS NOT NULL', [ids])).rows.map((row) => row.e);
        return errors.some((e) => e.startsWith('HTTP 500: GRC database unavailable')) && errors.some((e) => e.startsWith(`no answer within ${TIMEOUT_MS} ms`)) ? errors : null;
      });
      await sleep(1_500);
      receiver.behaviour = () => 'ok';
      const rows = await assertExactlyOnceInOrder(ids);
      assert.ok(rows.some((row) => row.attempts > 1), 'some rows needed several attempts');
      const errors = new Set(recorded.map((e) => e.replace(/\(.*$/, '').trim()));
      assert.ok(errors.has(`no answer within ${TIMEOUT_MS} ms`), [...errors].join(' | '));
      assert.ok(errors.has('HTTP 500: GRC database unavailable'), [...errors].join(' | '));
      const failures = receiver.receipts.filter((receipt) => receipt.answer !== 'ok').length;
      assert.ok(failures > 0);
      assert.equal(metricValue(await instance.metricsText(), 'tickets_grc_deliveries_total', 'outcome="delivered"'), rows.length);
    } finally {
      await instance.close();
    }
  });

  test('a connection closed mid-request is a failure named as such, then retried', async () => {
    await receiver.reset();
    let closes = 0;
    receiver.behaviour = () => (closes++ < 1 ? 'close' : 'ok');
    const instance = await startInstance({ retryBaseMs: 200 });
    try {
      const ticket = await inTransaction((client) => createTicket(client, writer(), 'closed connection'));
      const failed = await waitFor('the failure recorded', async () => (await outboxOf([ticket.id])).find((row) => row.lastError) ?? null);
      assert.match(failed.lastError!, /^fetch failed \((UND_ERR_SOCKET: other side closed|ECONNRESET)/);
      const rows = await assertExactlyOnceInOrder([ticket.id]);
      assert.equal(rows[0].attempts, 2);
      assert.equal(rows[0].lastError, failed.lastError, 'last_error keeps the last failure after delivery');
    } finally {
      await instance.close();
    }
  });

  test('retries back off exponentially with jitter, capped', async () => {
    assert.deepEqual([1, 2, 3, 4, 9, 10, 40].map((n) => retryDelayMs(n, 1_000, 300_000, () => 0.999_999)), [1_000, 2_000, 4_000, 8_000, 256_000, 300_000, 300_000]);
    assert.deepEqual([1, 2, 3, 10].map((n) => retryDelayMs(n, 1_000, 300_000, () => 0)), [500, 1_000, 2_000, 150_000]);
    await receiver.reset();
    receiver.behaviour = (receipt) => (receipt.attempt <= 5 ? 'error500' : 'ok');
    const instance = await startInstance({ retryBaseMs: 100, retryMaxMs: 500, random: () => 0.999_999 });
    try {
      const ticket = await inTransaction((client) => createTicket(client, writer(), 'backoff'));
      const rows = await assertExactlyOnceInOrder([ticket.id]);
      assert.equal(rows[0].attempts, 6);
      const times = receiver.receipts.map((receipt) => receipt.at);
      const gaps = times.slice(1).map((t, i) => t - times[i]);
      // 100, 200, 400, then capped at 500 (+ scheduling slack).
      for (const [i, wanted] of [100, 200, 400, 500, 500].entries()) {
        assert.ok(gaps[i] >= wanted - 15 && gaps[i] < wanted + 250, `gap ${i + 1}: ${gaps[i]} ms, wanted ≈ ${wanted} (${gaps.join(', ')})`);
      }
      assert.equal(rows[0].lastError, 'HTTP 500: GRC database unavailable');
    } finally {
      await instance.close();
    }
  });

  test('the service restarted with deliveries in flight and rows pending: the next instance delivers everything once, in order', async () => {
    await receiver.reset();
    receiver.behaviour = () => 'hang';
    const first = await startInstance({ stopGraceMs: 100 }, { GRC_WEBHOOK_TIMEOUT_MS: '5000' });
    const r = writer();
    const ids = await makeChanges(4, 2, 'restart');
    await waitFor('deliveries in flight', () => /4 in flight/.test(first.worker.status().state));
    await first.close();
    const interrupted = await outboxOf(ids);
    assert.equal(interrupted.filter((row) => row.lastError === 'interrupted: the service stopped during the request').length, 4);
    // While no instance runs, more changes.
    for (const id of ids) await inTransaction((client) => moveTicket(client, r, id, 'IN_PROGRESS'));
    receiver.behaviour = async (): Promise<Answer> => {
      await jitter(20);
      return 'ok';
    };
    const second = await startInstance();
    try {
      await assertExactlyOnceInOrder(ids);
      assert.equal((await outboxOf(ids)).length, 4 * 4);
    } finally {
      await second.close();
    }
  });

  test('an instance that crashed holding a claim: the row is retried once its lease ends, and nothing of its ticket overtakes it', async () => {
    await receiver.reset();
    const r = writer();
    const ticket = await inTransaction((client) => createTicket(client, r, 'crash'));
    await inTransaction((client) => moveTicket(client, r, ticket.id, 'ACKNOWLEDGED'));
    // What a claim writes, by an instance that then dies (no outcome is ever recorded).
    await pool.query(
      `UPDATE ticket_outbox SET attempts = attempts + 1, next_attempt_at = now() + interval '1500 milliseconds'
       WHERE id = (SELECT min(id) FROM ticket_outbox WHERE ticket_id = $1)`,
      [ticket.id],
    );
    const claimedAt = Date.now();
    const instance = await startInstance({ pollIntervalMs: 200 });
    try {
      await sleep(700);
      assert.equal(receiver.receipts.length, 0, 'neither the claimed row nor the one after it is sent during the lease');
      const rows = await assertExactlyOnceInOrder([ticket.id]);
      assert.ok(receiver.receipts[0].at - claimedAt >= 1_400, 'sent after the lease');
      assert.deepEqual(rows.map((row) => row.attempts), [2, 1]);
    } finally {
      await instance.close();
    }
  });

  test('delivered rows are deleted 7 days after delivery; pending ones are kept however old', async () => {
    const r = writer();
    const ids: string[] = [];
    for (const i of [1, 2, 3]) ids.push((await inTransaction((client) => createTicket(client, r, `purge ${i}`))).id);
    const [old, recent, pending] = ids;
    try {
      await pool.query(`UPDATE ticket_outbox SET delivered_at = now() - interval '7 days 1 minute' WHERE ticket_id = $1`, [old]);
      await pool.query(`UPDATE ticket_outbox SET delivered_at = now() - interval '6 days 23 hours' WHERE ticket_id = $1`, [recent]);
      await pool.query(`UPDATE ticket_outbox SET created_at = now() - interval '30 days', next_attempt_at = now() + interval '1 day' WHERE ticket_id = $1`, [pending]);
      const due = (await pool.query("SELECT 1 FROM ticket_outbox WHERE delivered_at < now() - interval '7 days'")).rowCount;
      assert.equal(due, 1);
      assert.equal(await purgeDeliveredGrcRows({ db: { pool } as never }), 1);
      assert.deepEqual((await outboxOf([old, recent, pending])).map((row) => [row.ticketId, row.delivered]), [[recent, true], [pending, false]]);
      // The worker purges at start, even with the export turned off.
      await pool.query(`UPDATE ticket_outbox SET delivered_at = now() - interval '8 days' WHERE ticket_id = $1`, [recent]);
      const off = await startInstance({}, { GRC_WEBHOOK_URL: '', GRC_WEBHOOK_SECRET: '' });
      try {
        await waitFor('the purge at start', async () => (await outboxOf([recent])).length === 0);
        assert.equal(metricValue(await off.metricsText(), 'tickets_grc_outbox_purged_total'), 1);
        assert.equal(off.worker.status().state, 'idle: GRC_WEBHOOK_URL not set (1 undelivered kept until it is)');
      } finally {
        await off.close();
      }
    } finally {
      await pool.query('DELETE FROM ticket_outbox WHERE ticket_id = $1', [pending]);
    }
  });

  test('GRC_WEBHOOK_URL unset: changes queue nothing, the worker idles and /readyz says so; set, /readyz shows what waits', async () => {
    const r = writerResources({});
    assert.equal(r.exportToGrc, false);
    const ticket = await inTransaction((client) => createTicket(client, r, 'no export'));
    await inTransaction((client) => moveTicket(client, r, ticket.id, 'ACKNOWLEDGED'));
    assert.deepEqual(await outboxOf([ticket.id]), []);
    assert.equal((await pool.query('SELECT 1 FROM ticket_history WHERE ticket_id = $1', [ticket.id])).rowCount, 2, 'the history is written all the same');

    const off = await startService('tickets', { db: database });
    try {
      const ready = (await (await fetch(off.url.replace(/\/graphql$/, '/readyz'))).json()) as Readyz;
      assert.equal(ready.checks['grc-outbox'], 'idle: GRC_WEBHOOK_URL not set');
    } finally {
      await off.close();
    }
    await receiver.reset();
    await receiver.stop();
    const on = await startService('tickets', { db: database, env: { GRC_WEBHOOK_URL: receiver.url, GRC_WEBHOOK_SECRET: SECRET, GRC_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS) } });
    try {
      const exporting = await inTransaction((client) => createTicket(client, writer(), 'export, receiver down'));
      const readyz = async () => (await (await fetch(on.url.replace(/\/graphql$/, '/readyz'))).json()) as Readyz;
      const shown = await waitFor('readyz showing the pending change', async () => {
        const body = await readyz();
        return /^1 pending, oldest \d+ s(; 1 in flight)?; last failure: fetch failed \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)/.test(body.checks['grc-outbox']) ? body : null;
      });
      assert.equal(shown.status, 'ready');
      await receiver.start();
      await waitFor('delivered', allDelivered([exporting.id]), 10_000);
      const metrics = await (await fetch(on.url.replace(/\/graphql$/, '/metrics'))).text();
      assert.equal(metricValue(metrics, 'tickets_grc_deliveries_total', 'outcome="delivered"'), 1);
    } finally {
      await on.close();
    }
  });

  test('GRC_WEBHOOK_URL without a secret is refused at start-up, naming GRC_WEBHOOK_SECRET', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'test', DATABASE_URL: database.url, GRC_WEBHOOK_URL: 'https://grc.example.org/hook' }), /GRC_WEBHOOK_SECRET.*required when GRC_WEBHOOK_URL is set/s);
  });
});

describe('verifyGrcSignature (what a receiver runs)', () => {
  const body = '{"deliveryId":"42","ticketId":"7","action":"TRANSITION"}';
  const timestamp = 1_764_590_400;
  const at = (seconds: number) => new Date(seconds * 1000);

  test('the documented example (computed with openssl dgst -sha256 -hmac) verifies', () => {
    const secret = 'example-secret-for-the-docs-0123456789abcdef';
    const signature = 'sha256=cc059e10e07b42fdaa18e33dd42d4d47d4c0a1f13a93c483e003bb66f907b687';
    assert.equal(signGrcPayload(secret, timestamp, body), signature);
    assert.deepEqual(verifyGrcSignature({ secret, body, timestamp: String(timestamp), signature, now: at(timestamp + 2) }), { ok: true, timestamp });
    assert.deepEqual(verifyGrcSignature({ secret, body: Buffer.from(body), timestamp: String(timestamp), signature, now: at(timestamp) }), { ok: true, timestamp });
  });

  test('a forged signature, an altered body or timestamp, a replay past the window and malformed headers are refused, each with its reason', () => {
    const signature = signGrcPayload(SECRET, timestamp, body);
    const check = (changes: Partial<Parameters<typeof verifyGrcSignature>[0]>) =>
      verifyGrcSignature({ secret: SECRET, body, timestamp: String(timestamp), signature, now: at(timestamp + 10), ...changes });
    assert.deepEqual(check({}), { ok: true, timestamp });
    const mismatch = { ok: false, reason: 'X-Connecte-Signature does not match the body and timestamp' };
    assert.deepEqual(check({ signature: signGrcPayload('another-secret-of-at-least-32-characters!', timestamp, body) }), mismatch);
    assert.deepEqual(check({ body: body.replace('TRANSITION', 'CREATED') }), mismatch);
    assert.deepEqual(check({ body: `${body} ` }), mismatch);
    assert.deepEqual(check({ timestamp: String(timestamp + 1) }), mismatch, 'the timestamp is signed: a fresh one cannot be put on an old signature');
    // Replay: the captured request, exactly as sent, more than 5 minutes later.
    assert.deepEqual(check({ now: at(timestamp + 301) }), { ok: false, reason: 'X-Connecte-Timestamp is 301 s from now, outside the 300 s replay window' });
    assert.deepEqual(check({ now: at(timestamp + 300) }), { ok: true, timestamp });
    assert.deepEqual(check({ now: at(timestamp - 301) }), { ok: false, reason: 'X-Connecte-Timestamp is -301 s from now, outside the 300 s replay window' });
    assert.deepEqual(check({ now: at(timestamp + 100), toleranceSeconds: 60 }), { ok: false, reason: 'X-Connecte-Timestamp is 100 s from now, outside the 60 s replay window' });
    assert.deepEqual(check({ timestamp: undefined }), { ok: false, reason: 'X-Connecte-Timestamp is missing or repeated' });
    assert.deepEqual(check({ timestamp: [String(timestamp), String(timestamp)] }), { ok: false, reason: 'X-Connecte-Timestamp is missing or repeated' });
    assert.deepEqual(check({ timestamp: '2026-12-01T00:00:00Z' }), { ok: false, reason: 'X-Connecte-Timestamp must be unix seconds' });
    assert.deepEqual(check({ signature: undefined }), { ok: false, reason: 'X-Connecte-Signature is missing or repeated' });
    for (const bad of [signature.slice(7), signature.toUpperCase(), `sha1=${signature.slice(7, 47)}`, `${signature}00`]) {
      assert.deepEqual(check({ signature: bad }), { ok: false, reason: 'X-Connecte-Signature must be sha256=<64 lower-case hex digits>' }, bad);
    }
  });

  test('a delivery captured from the worker, replayed six minutes later, is refused', async () => {
    const captured = receiver.raw.at(-1) ?? (await waitFor('a captured delivery', () => receiver.raw.at(-1)));
    const sentAt = Number(captured.headers['x-connecte-timestamp']);
    const replay = (now: Date) =>
      verifyGrcSignature({ secret: SECRET, body: captured.body, timestamp: captured.headers['x-connecte-timestamp'], signature: captured.headers['x-connecte-signature'], now });
    assert.equal(replay(at(sentAt + 1)).ok, true);
    assert.deepEqual(replay(at(sentAt + 360)), { ok: false, reason: 'X-Connecte-Timestamp is 360 s from now, outside the 300 s replay window' });
  });
});

describe('through GraphQL: reports, a duplicate and transitions made while the GRC system is down reach it once each, in order', () => {
  let t: TicketsHub;
  let grc: Receiver;

  before(async () => {
    grc = new Receiver(() => t.pool);
    await grc.start();
    t = await startTicketsHub({ env: { GRC_WEBHOOK_URL: grc.url, GRC_WEBHOOK_SECRET: SECRET, GRC_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS) } });
  });

  after(async () => {
    await t?.close();
    await grc.stop();
  });

  test('every change of every ticket, exactly once, in history order per ticket, with the reporter’s contact', async () => {
    await grc.stop();
    // Cleanliness is the commune's; waste collection the agglomeration's.
    const operator = await t.token(['operator'], ['chalons', 'chalons-agglo']);
    const move = async (id: string, to: TicketStatus, note: string | null = null) => {
      const answer = await t.gql(`mutation($id: ID!, $to: TicketStatus!, $note: String) { transitionTicket(input: { ticketId: $id, to: $to, note: $note }) { id status } }`, {
        token: operator,
        variables: { id, to, note },
      });
      assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    };
    const place = await t.spot('chalons');
    const [original, other] = await Promise.all([
      t.reportOk({ category: 'TAG', location: place, description: 'A tag on the school wall', name: 'Bob Durand', email: 'bob@example.org' }, await t.citizen('citizen-bob')),
      t.reportOk({ category: 'FULL_BIN', location: await t.spot('chalons'), description: 'The bin overflows' }, await t.citizen('citizen-carol')),
    ]);
    const duplicate = await t.reportOk({ category: 'TAG', location: place, description: 'Same tag' }, await t.citizen('citizen-dan'));
    assert.equal(duplicate.ticket.status, 'DUPLICATE');
    await Promise.all([
      (async () => {
        await move(original.ticket.id, 'ACKNOWLEDGED', 'Seen');
        await move(original.ticket.id, 'RESOLVED', 'Cleaned');
        await move(original.ticket.id, 'CLOSED');
      })(),
      (async () => {
        await move(other.ticket.id, 'ACKNOWLEDGED');
        await move(other.ticket.id, 'REJECTED', 'Not a public bin');
      })(),
    ]);
    const ids = [original.ticket.id, other.ticket.id, duplicate.ticket.id];
    const { rows: history } = await t.pool.query<{ id: string; ticketId: string; action: string; toStatus: string | null; note: string | null }>(
      'SELECT id::text, ticket_id::text AS "ticketId", action, to_status AS "toStatus", note FROM ticket_history WHERE ticket_id = ANY($1::bigint[]) ORDER BY ticket_history.id',
      [ids],
    );
    assert.deepEqual(
      history.filter((h) => h.ticketId === original.ticket.id).map((h) => [h.action, h.toStatus]),
      [['CREATED', 'NEW'], ['DUPLICATE_ATTACHED', null], ['TRANSITION', 'ACKNOWLEDGED'], ['TRANSITION', 'RESOLVED'], ['TRANSITION', 'CLOSED']],
    );
    await sleep(500);
    assert.equal(grc.receipts.length, 0);
    await grc.start();
    await waitFor('every change delivered', async () => {
      const { rows } = await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ticket_outbox WHERE ticket_id = ANY($1::bigint[]) AND delivered_at IS NOT NULL', [ids]);
      return rows[0].n === history.length;
    }, 30_000);
    assert.deepEqual(grc.violations, []);
    assert.equal(grc.duplicates, 0);
    const processed = grc.processedOf(ids);
    assert.equal(processed.length, history.length, 'each change once');
    for (const id of ids) {
      assert.deepEqual(
        processed.filter((body) => body.ticketId === id).map((body) => [body.historyId, body.action, body.toStatus, body.note]),
        history.filter((h) => h.ticketId === id).map((h) => [h.id, h.action, h.toStatus, h.note]),
        `ticket ${id}`,
      );
    }
    const created = processed.find((body) => body.ticketId === original.ticket.id && body.action === 'CREATED')!;
    assert.deepEqual((created.ticket as { reporter: unknown }).reporter, { accountId: 'citizen-bob', name: 'Bob Durand', email: 'bob@example.org', phone: null });
    assert.equal(created.collectivityId, 'chalons');
    const attached = processed.find((body) => body.ticketId === duplicate.ticket.id)!;
    assert.equal((attached.ticket as { duplicateOf: string }).duplicateOf, original.ticket.id);
  });
});
