/**
 * The retention of reporters' personal data (retention.ts): which tickets are due (closed or
 * rejected more than TICKETS_PERSONAL_DATA_RETENTION_MONTHS ago, to the millisecond, and their
 * duplicates), what erasure leaves, idempotence, what it logs and records, concurrent runs,
 * concurrent writers not held up for long, the worker's schedule and shutdown, uploads no report
 * took, and a retention setting the service refuses to start with.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { createLogger } from '@connecte/shared/log';
import { ROOT } from '@connecte/testkit';
import { AUTO_CLOSE_NOTE, ERASURE_NOTES, retentionCutoff, retentionWorker, runRetention } from '../src/retention.js';
import { TicketResources } from '../src/resources.js';
import { east, startTicketsHub, type TicketsHub } from './fixtures.js';

let t: TicketsHub;
let photosUrl: string;
let staff: string;

before(async () => {
  t = await startTicketsHub({
    env: { TICKETS_RETENTION_INTERVAL_MS: '0', GRC_WEBHOOK_URL: 'http://127.0.0.1:9/grc', GRC_WEBHOOK_SECRET: 'a-test-secret-of-at-least-32-characters' },
  });
  photosUrl = t.url.replace(/\/graphql$/, '/tickets/photos');
  staff = await t.tokenAs('operator-chalons', ['operator'], ['chalons']);
});

after(async () => {
  await t?.close();
});

/** The hub's tickets resources with a logger whose lines the test reads (and other settings). */
function resourcesWith(config: Partial<TicketResources['config']> = {}) {
  const lines: Record<string, any>[] = [];
  const r = t.resources;
  const log = createLogger('tickets', { LOG_LEVEL: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { resources: new TicketResources({ config: { ...r.config, ...config }, db: r.db, events: r.events, log, peers: r.peers }), lines };
}

async function uploadPhoto(token: string | null, seed: number): Promise<string> {
  const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: seed % 256, g: 10, b: 200 } } }).png().toBuffer();
  const headers: Record<string, string> = { 'content-type': 'image/png' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(photosUrl, { method: 'POST', headers, body: png });
  assert.equal(response.status, 201, await response.clone().text());
  return ((await response.json()) as { id: string }).id;
}

/** Moves a ticket to a final status at `closedAt` (the lifecycle's own moves are tested elsewhere). */
async function close(id: string, status: 'CLOSED' | 'REJECTED' | 'RESOLVED', at: Date): Promise<void> {
  const closedAt = status === 'RESOLVED' ? null : at;
  await t.pool.query(
    `UPDATE tickets SET status = $2::text, acknowledged_at = $3::timestamptz, resolved_at = CASE WHEN $2::text = 'REJECTED' THEN NULL ELSE $3::timestamptz END,
                        closed_at = $4::timestamptz, updated_at = $3::timestamptz WHERE id = $1`,
    [id, status, at, closedAt],
  );
}

/** `count` tickets of Châlons closed at `closedAt` with a reporter each, `duplicatesEach` duplicates per original; their ids. */
async function insertClosed(count: number, closedAt: Date, duplicatesEach = 0): Promise<{ originals: string[]; duplicates: string[] }> {
  const { rows } = await t.pool.query<{ id: string }>(
    `INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, insee_code, source,
                          reporter_sub, reporter_name, reporter_email, reporter_phone, created_at, updated_at, acknowledged_at, resolved_at, closed_at, ack_due_at, resolve_due_at)
     SELECT 'TAG', 'chalons', 'Propreté urbaine', 'CLOSED', 'Old tag ' || g, ST_SetSRID(ST_MakePoint(4.36 + (g % 100) * 0.0001, 48.95 + (g / 100) * 0.0001), 4326), '51108', 'APP',
            'bulk-' || g, 'Bulk Reporter ' || g, 'bulk' || g || '@example.org', '06 00 00 00 00',
            $2::timestamptz - interval '20 days', $2, $2::timestamptz - interval '19 days', $2::timestamptz - interval '1 day', $2, $2::timestamptz - interval '18 days', $2::timestamptz - interval '10 days'
     FROM generate_series(1, $1::int) AS g RETURNING id::text`,
    [count, closedAt],
  );
  const originals = rows.map((row) => row.id);
  let duplicates: string[] = [];
  if (duplicatesEach > 0) {
    const inserted = await t.pool.query<{ id: string }>(
      `INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, insee_code, source, duplicate_of,
                            reporter_sub, reporter_email, created_at, updated_at, ack_due_at, resolve_due_at)
       SELECT o.category_code, o.collectivity_id, o.service, 'DUPLICATE', 'Same tag', o.geom, o.insee_code, 'APP', o.id,
              'bulk-dup-' || o.id || '-' || k, 'dup' || o.id || '-' || k || '@example.org', o.created_at + interval '1 day', o.created_at + interval '1 day', o.ack_due_at, o.resolve_due_at
       FROM tickets o, generate_series(1, $2::int) AS k WHERE o.id = ANY($1::bigint[]) RETURNING id::text`,
      [originals, duplicatesEach],
    );
    duplicates = inserted.rows.map((row) => row.id);
  }
  return { originals, duplicates };
}

interface Row {
  id: string;
  reporter_sub: string | null;
  reporter_name: string | null;
  reporter_email: string | null;
  reporter_phone: string | null;
  erased: boolean;
}
const rowsOf = async (ids: string[]) =>
  (
    await t.pool.query<Row>(
      `SELECT id::text, reporter_sub, reporter_name, reporter_email, reporter_phone, reporter_erased_at IS NOT NULL AS erased
       FROM tickets WHERE id = ANY($1::bigint[]) ORDER BY tickets.id`,
      [ids],
    )
  ).rows;
const erasedMarks = async (ids: string[]) =>
  (await t.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ticket_history WHERE action = 'REPORTER_ERASED' AND ticket_id = ANY($1::bigint[])`, [ids])).rows[0].n;

describe('the retention period', () => {
  it('is counted back in UTC calendar months, the day clamped to the end of a shorter month', () => {
    const cases: [string, number, string][] = [
      ['2027-03-31T12:00:00.000Z', 1, '2027-02-28T12:00:00.000Z'],
      ['2028-03-31T23:59:59.999Z', 1, '2028-02-29T23:59:59.999Z'],
      ['2027-03-31T00:00:00.000Z', 12, '2026-03-31T00:00:00.000Z'],
      ['2027-01-15T08:30:00.000Z', 1, '2026-12-15T08:30:00.000Z'],
      ['2027-05-31T06:00:00.000Z', 3, '2027-02-28T06:00:00.000Z'],
      ['2028-02-29T10:00:00.000Z', 12, '2027-02-28T10:00:00.000Z'],
      ['2027-12-01T00:00:00.000Z', 120, '2017-12-01T00:00:00.000Z'],
    ];
    for (const [now, months, cutoff] of cases) assert.equal(retentionCutoff(new Date(now), months).toISOString(), cutoff, `${now} − ${months} months`);
  });

  it('agrees with PostgreSQL’s timestamptz − interval in UTC', async () => {
    const client = await t.pool.connect();
    try {
      await client.query(`SET TIME ZONE 'UTC'`);
      let seed = 7;
      const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
      const instants = Array.from({ length: 300 }, () => new Date(Date.UTC(2024, 0, 1) + Math.floor(random() * 4 * 365 * 86_400_000)));
      const months = instants.map(() => 1 + Math.floor(random() * 120));
      const { rows } = await client.query<{ cutoff: Date }>(
        `SELECT (i - make_interval(months => m)) AS cutoff FROM unnest($1::timestamptz[], $2::int[]) WITH ORDINALITY AS x(i, m, n) ORDER BY n`,
        [instants, months],
      );
      rows.forEach((row, k) => assert.equal(retentionCutoff(instants[k], months[k]).toISOString(), row.cutoff.toISOString(), `${instants[k].toISOString()} − ${months[k]} months`));
    } finally {
      client.release();
    }
  });
});

describe('a retention run', () => {
  it('erases exactly the tickets closed or rejected more than 12 months ago and their duplicates, once, and logs and records it', async () => {
    const now = new Date();
    const cutoff = retentionCutoff(now, 12);
    const ms = (offset: number) => new Date(cutoff.getTime() + offset);
    const citizen = await t.citizen('citizen-old-timer');
    const report = async (extra: Record<string, unknown> = {}, place?: { lon: number; lat: number }) =>
      (await t.reportOk({ category: 'TAG', location: place ?? (await t.spot('chalons')), description: 'A tag', name: 'Old Timer', email: 'old.timer@example.org', phone: '03 26 00 00 00', ...extra }, citizen)).ticket.id as string;

    const photo = await uploadPhoto(citizen, 9);
    const pastPlace = await t.spot('chalons');
    const exactPlace = await t.spot('chalons');
    const justPast = await report({ photoIds: [photo] }, pastPlace);
    const exact = await report({}, exactPlace);
    const duplicateOfPast = await report({ email: 'dup.past@example.org' }, east(pastPlace, 8));
    const duplicateOfExact = await report({ email: 'dup.exact@example.org' }, east(exactPlace, 8));
    const rejected = await report();
    const recent = await report();
    const resolvedOnly = await report();
    const open = await report();
    await t.pool.query(`UPDATE tickets SET created_at = $2, updated_at = $2 WHERE id = $1`, [open, ms(-400 * 86_400_000)]);
    await close(justPast, 'CLOSED', ms(-1));
    await close(exact, 'CLOSED', ms(0));
    await close(rejected, 'REJECTED', ms(-86_400_000));
    await close(recent, 'CLOSED', ms(86_400_000));
    await close(resolvedOnly, 'RESOLVED', ms(-30 * 86_400_000));
    const { rows: dups } = await t.pool.query(`SELECT id::text, status, duplicate_of::text FROM tickets WHERE id = ANY($1::bigint[]) ORDER BY tickets.id`, [[duplicateOfPast, duplicateOfExact]]);
    assert.deepEqual(dups, [
      { id: duplicateOfPast, status: 'DUPLICATE', duplicate_of: justPast },
      { id: duplicateOfExact, status: 'DUPLICATE', duplicate_of: exact },
    ]);
    const history = (await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ticket_history')).rows[0].n;

    const { resources, lines } = resourcesWith();
    const run = await runRetention(resources, { now });
    // The ticket resolved long ago and never reopened is closed first (by the system): its retention starts now.
    assert.deepEqual({ ...run, ms: 0 }, { autoClosed: 1, cutoff, tickets: 3, photos: 1, unclaimedPhotos: 0, batches: 1, complete: true, ms: 0 });
    const { rows: autoClosed } = await t.pool.query(
      `SELECT t.status, t.closed_at >= $2 AS "closedNow", h.actor_sub, h.from_status, h.to_status, h.note
       FROM tickets t JOIN ticket_history h ON h.ticket_id = t.id AND h.to_status = 'CLOSED' WHERE t.id = $1`,
      [resolvedOnly, now],
    );
    assert.deepEqual(autoClosed, [{ status: 'CLOSED', closedNow: true, actor_sub: null, from_status: 'RESOLVED', to_status: 'CLOSED', note: AUTO_CLOSE_NOTE(14) }]);

    const erasedSet = [justPast, rejected, duplicateOfPast];
    const all = [justPast, exact, duplicateOfPast, duplicateOfExact, rejected, recent, resolvedOnly, open];
    const kept = (id: string, email: string): Row => ({ id, reporter_sub: 'citizen-old-timer', reporter_name: 'Old Timer', reporter_email: email, reporter_phone: '03 26 00 00 00', erased: false });
    const erased = (id: string): Row => ({ id, reporter_sub: null, reporter_name: null, reporter_email: null, reporter_phone: null, erased: true });
    const expected = (extraErased: string[]) =>
      all
        .map((id) =>
          erasedSet.includes(id) || extraErased.includes(id)
            ? erased(id)
            : kept(id, id === duplicateOfExact ? 'dup.exact@example.org' : 'old.timer@example.org'),
        )
        .sort((a, b) => Number(a.id) - Number(b.id));
    assert.deepEqual(await rowsOf(all), expected([]));
    assert.deepEqual((await t.pool.query('SELECT id FROM ticket_photos WHERE id = $1', [photo])).rows, []);

    // One REPORTER_ERASED entry each, by the system, with the retention note; the account id gone from their history.
    const { rows: entries } = await t.pool.query(
      `SELECT ticket_id::text, actor_sub, note FROM ticket_history WHERE action = 'REPORTER_ERASED' ORDER BY ticket_history.ticket_id`,
    );
    assert.deepEqual(entries, erasedSet.map((id) => ({ ticket_id: id, actor_sub: null, note: ERASURE_NOTES.RETENTION })).sort((a, b) => Number(a.ticket_id) - Number(b.ticket_id)));
    const { rows: left } = await t.pool.query(`SELECT count(*)::int AS n FROM ticket_history WHERE actor_sub = 'citizen-old-timer' AND ticket_id = ANY($1::bigint[])`, [erasedSet]);
    assert.equal(left[0].n, 0);
    // The GRC payloads of the erased tickets hold no reporter any more; the kept ones still do.
    const { rows: outbox } = await t.pool.query<{ ticket_id: string; reporter: unknown; actor: string | null }>(
      `SELECT ticket_id::text, payload #> '{ticket,reporter}' AS reporter, payload->>'actor' AS actor FROM ticket_outbox WHERE ticket_id = ANY($1::bigint[])`,
      [[...erasedSet, exact]],
    );
    for (const row of outbox) {
      if (row.ticket_id === exact) assert.equal((row.reporter as { email: string }).email, 'old.timer@example.org');
      else assert.deepEqual([row.reporter, row.actor], [null, null], `outbox row of ${row.ticket_id}`);
    }
    const { rows: erasures } = await t.pool.query(`SELECT reason, requested_by, ticket_ids::text[] AS ids, photos_deleted, request_reference FROM personal_data_erasures`);
    assert.deepEqual(erasures, [{ reason: 'RETENTION', requested_by: null, ids: [...erasedSet].sort((a, b) => Number(a) - Number(b)), photos_deleted: 1, request_reference: null }]);
    // The automatic close is logged as every move is ('ticket moved'), then the run's one line.
    assert.deepEqual(
      lines.filter((line) => line.msg === 'ticket moved').map((line) => [line.ticketId, line.from, line.to, line.actor]),
      [[resolvedOnly, 'RESOLVED', 'CLOSED', null]],
    );
    const info = lines.filter((line) => line.level === 'info' && line.msg !== 'ticket moved');
    assert.equal(info.length, 1);
    assert.deepEqual(
      { msg: info[0].msg, cutoff: info[0].cutoff, retentionMonths: info[0].retentionMonths, tickets: info[0].tickets, photos: info[0].photos, batches: info[0].batches, complete: info[0].complete },
      { msg: 'personal data retention: reporters’ data erased', cutoff: cutoff.toISOString(), retentionMonths: 12, tickets: 3, photos: 1, batches: 1, complete: true },
    );
    assert.ok(!JSON.stringify(lines).includes('old.timer@example.org'), 'the log holds no personal data');
    assert.equal((await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ticket_history')).rows[0].n, history + 4);

    // Again at the same instant: nothing due, nothing written, nothing logged at info.
    lines.length = 0;
    const again = await runRetention(resources, { now });
    assert.deepEqual([again.autoClosed, again.tickets, again.photos, again.batches], [0, 0, 0, 0]);
    assert.equal((await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM ticket_history')).rows[0].n, history + 4);
    assert.equal((await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM personal_data_erasures')).rows[0].n, 1);
    assert.deepEqual(lines.map((line) => [line.level, line.msg]), [['debug', 'personal data retention: nothing due']]);

    // One millisecond later the ticket closed exactly 12 months before `now` is past the period, with its duplicate.
    const later = await runRetention(resources, { now: new Date(now.getTime() + 1) });
    assert.equal(later.tickets, 2);
    assert.deepEqual(await rowsOf(all), expected([exact, duplicateOfExact]));
    assert.equal(await erasedMarks(all), 5);
  });

  it('closes RESOLVED tickets TICKETS_AUTO_CLOSE_DAYS after they were resolved, not sooner, and never a reopened one', async () => {
    const citizen = await t.citizen('citizen-resolved');
    const report = async () => (await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: 'A tag' }, citizen)).ticket.id as string;
    const now = new Date();
    const [young, old, reopened] = [await report(), await report(), await report()];
    await close(young, 'RESOLVED', new Date(now.getTime() - 13 * 86_400_000));
    await close(old, 'RESOLVED', new Date(now.getTime() - 15 * 86_400_000));
    await close(reopened, 'RESOLVED', new Date(now.getTime() - 15 * 86_400_000));
    await t.pool.query(`UPDATE tickets SET status = 'IN_PROGRESS' WHERE id = $1`, [reopened]);
    const { resources } = resourcesWith();
    const run = await runRetention(resources, { now });
    assert.equal(run.autoClosed, 1);
    const { rows } = await t.pool.query(`SELECT id::text, status FROM tickets WHERE id = ANY($1::bigint[]) ORDER BY tickets.id`, [[young, old, reopened]]);
    assert.deepEqual(rows, [
      { id: young, status: 'RESOLVED' },
      { id: old, status: 'CLOSED' },
      { id: reopened, status: 'IN_PROGRESS' },
    ]);
  });

  it('deletes uploads no report took once they are a day old, not younger ones nor claimed ones', async () => {
    const citizen = await t.citizen('citizen-uploader');
    const [old, young, anonymous] = [await uploadPhoto(citizen, 20), await uploadPhoto(citizen, 21), await uploadPhoto(null, 22)];
    await t.pool.query(`UPDATE ticket_photos SET created_at = now() - interval '25 hours' WHERE id = ANY($1::uuid[])`, [[old, anonymous]]);
    const claimed = await uploadPhoto(citizen, 23);
    await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: 'With a photo', photoIds: [claimed] }, citizen);
    await t.pool.query(`UPDATE ticket_photos SET created_at = now() - interval '3 days' WHERE id = $1`, [claimed]);
    const run = await runRetention(resourcesWith().resources);
    assert.equal(run.unclaimedPhotos, 2);
    const { rows } = await t.pool.query(`SELECT id::text FROM ticket_photos WHERE id = ANY($1::uuid[]) ORDER BY created_at DESC`, [[old, young, anonymous, claimed]]);
    assert.deepEqual(rows.map((row) => row.id).sort(), [young, claimed].sort());
  });

  it('run concurrently (several instances), erases every due ticket exactly once, in small transactions', async () => {
    const closedAt = new Date(Date.now() - 400 * 86_400_000);
    const { originals, duplicates } = await insertClosed(600, closedAt, 1);
    const ids = [...originals, ...duplicates];
    const before = (await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM personal_data_erasures')).rows[0].n;
    const runs = await Promise.all([1, 2, 3].map(() => runRetention(resourcesWith().resources, { batchSize: 50 })));
    assert.equal(runs.reduce((sum, run) => sum + run.tickets, 0), 1200);
    assert.equal(await erasedMarks(ids), 1200);
    const { rows } = await t.pool.query<{ ids: string[] }>(`SELECT ticket_ids::text[] AS ids FROM personal_data_erasures ORDER BY id OFFSET $1`, [before]);
    const recorded = rows.flatMap((row) => row.ids);
    assert.equal(recorded.length, 1200, 'each ticket in one erasure row');
    assert.deepEqual([...new Set(recorded)].sort(), [...ids].sort());
    // Batches of at most 50 originals with their duplicates.
    assert.ok(rows.every((row) => row.ids.length <= 100), `batch sizes ${rows.map((row) => row.ids.length)}`);
    assert.ok(rows.length >= 12, `${rows.length} transactions`);
    assert.deepEqual((await rowsOf(ids)).filter((row) => !row.erased), []);
  });

  it('holds up concurrent reports and writes to due tickets for one small batch at most', async () => {
    const closedAt = new Date(Date.now() - 500 * 86_400_000);
    const { originals } = await insertClosed(3000, closedAt);
    const citizen = await t.citizen('citizen-busy');
    let running = true;
    const reportTimes: number[] = [];
    const rowWaits: number[] = [];
    let reportsDuringRun = 0;
    const place = await t.spot('chalons');
    const reporter = (async () => {
      for (let k = 0; running; k++) {
        const started = performance.now();
        await t.reportOk({ category: 'TAG', location: east(place, k % 40), description: 'During retention' }, citizen);
        reportTimes.push(performance.now() - started);
        if (running) reportsDuringRun++;
      }
    })();
    // A staff write to a ticket the run is erasing (a note on a closed ticket): it waits for that ticket's batch only.
    const writer = (async () => {
      let k = 0;
      while (running) {
        const id = originals[(k += 37) % originals.length];
        const started = performance.now();
        await t.pool.query('UPDATE tickets SET updated_at = updated_at WHERE id = $1', [id]);
        rowWaits.push(performance.now() - started);
        await sleep(5);
      }
    })();
    const startedRun = performance.now();
    const run = await runRetention(resourcesWith().resources);
    const runMs = performance.now() - startedRun;
    running = false;
    await Promise.all([reporter, writer]);
    assert.ok(run.tickets >= 3000, `${run.tickets} erased`);
    assert.ok(run.batches >= 15, `${run.batches} transactions`);
    const max = (values: number[]) => Math.max(...values);
    const batchMs = runMs / run.batches;
    // Generous bounds (the machine is shared): far below the run's length.
    assert.ok(reportsDuringRun >= 3, `only ${reportsDuringRun} reports went through during a run of ${Math.round(runMs)} ms`);
    assert.ok(max(reportTimes) < Math.max(1500, runMs / 3), `a report waited ${Math.round(max(reportTimes))} ms (run ${Math.round(runMs)} ms, ${run.batches} batches)`);
    assert.ok(max(rowWaits) < Math.max(1000, batchMs * 4), `a write to a due ticket waited ${Math.round(max(rowWaits))} ms (a batch takes ${Math.round(batchMs)} ms)`);
  });
});

describe('the retention worker', () => {
  it('runs at start and at every interval, and stops between two transactions', async () => {
    const { resources, lines } = resourcesWith({ TICKETS_RETENTION_INTERVAL_MS: 100 });
    const closedAt = new Date(Date.now() - 450 * 86_400_000);
    const first = (await insertClosed(3, closedAt)).originals;
    const worker = retentionWorker(resources);
    assert.equal(worker.name, 'retention');
    await worker.start();
    const erasedSoon = async (ids: string[]) => {
      for (let i = 0; i < 100; i++) {
        if ((await rowsOf(ids)).every((row) => row.erased)) return true;
        await sleep(50);
      }
      return false;
    };
    try {
      assert.ok(await erasedSoon(first), 'erased by the run at start');
      const second = (await insertClosed(2, closedAt)).originals;
      assert.ok(await erasedSoon(second), 'erased by a later run');
      // The run's line comes once it is over (after the uploads' cleanup): waited for.
      const erasedByRun = () => lines.filter((line) => line.msg === 'personal data retention: reporters’ data erased').map((line) => line.tickets);
      for (let i = 0; i < 100 && erasedByRun().length < 2; i++) await sleep(50);
      assert.deepEqual(erasedByRun(), [3, 2], JSON.stringify(lines.filter((line) => line.level !== 'debug')));
      assert.match(worker.status().state, /^ran at .*: \d+ resolved tickets closed, \d+ tickets erased, \d+ photos deleted$/);
      assert.equal(worker.status().ready, true);
    } finally {
      await worker.stop();
    }
    const third = (await insertClosed(1, closedAt)).originals;
    await sleep(400);
    assert.deepEqual((await rowsOf(third)).map((row) => row.erased), [false], 'a stopped worker erases nothing');
  });
});

describe('the retention setting', () => {
  for (const value of ['0', '-1', '121', 'twelve']) {
    it(`${JSON.stringify(value)} makes the tickets service refuse to start, naming TICKETS_PERSONAL_DATA_RETENTION_MONTHS`, () => {
      const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'subgraphs', 'tickets', 'src', 'main.ts')], {
        cwd: ROOT,
        env: { ...process.env, TICKETS_PERSONAL_DATA_RETENTION_MONTHS: value, PORT: '0', LOG_LEVEL: 'silent', DATABASE_URL: t.database.url },
        encoding: 'utf8',
        timeout: 60_000,
      });
      assert.equal(result.status, 1, result.stderr);
      assert.match(result.stderr, /TICKETS_PERSONAL_DATA_RETENTION_MONTHS: must be a whole number between 1 and 120/);
      assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/);
    });
  }
});
