/**
 * Reporters' rights through the gateway: export (myPersonalData, reporterPersonalData) and
 * erasure (eraseMyPersonalData, eraseReporterPersonalData). Who may (the reporter himself; an
 * operator or admin of the reports' collectivity, on a written request), what is exported, what
 * erasure leaves (the ticket, anonymised: nothing of the reporter in any table), idempotence,
 * audit, bad input with nothing written, and concurrent erasures.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { east, startTicketsHub, type TicketsHub } from './fixtures.js';
import { ERASURE_NOTES } from '../src/retention.js';

let t: TicketsHub;
let photosUrl: string;
const OPERATOR_CHALONS = 'operator-chalons';
const OPERATOR_FAGNIERES = 'operator-fagnieres';
const tokens: Record<string, string> = {};

const EXPORT = `query Export($reporter: ReporterSelector!, $ref: String!) {
  reporterPersonalData(reporter: $reporter, requestReference: $ref) {
    accountId exportedAt
    tickets { id status description location { coordinates } reporter { accountId name email phone } photos { id } collectivity { id } }
    accessLog { at actor ticketId fields channel }
  }
}`;
const MY_EXPORT = `{ myPersonalData { accountId exportedAt
  tickets { id status description location { coordinates } reporter { accountId name email phone } photos { id url } collectivity { id } history { action } }
  accessLog { at actor ticketId fields channel } } }`;
const ERASE = `mutation Erase($reporter: ReporterSelector!, $ref: String!) {
  eraseReporterPersonalData(reporter: $reporter, requestReference: $ref) { ticketsAnonymised photosDeleted } }`;
const ERASE_MINE = `mutation { eraseMyPersonalData { ticketsAnonymised photosDeleted } }`;

/** A small real PNG, uploaded as `token`'s: its id. */
async function uploadPhoto(token: string, seed: number): Promise<string> {
  const png = await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: seed % 256, g: 80, b: 120 } } }).png().toBuffer();
  const response = await fetch(photosUrl, { method: 'POST', headers: { 'content-type': 'image/png', authorization: `Bearer ${token}` }, body: png });
  assert.equal(response.status, 201, await response.clone().text());
  return ((await response.json()) as { id: string }).id;
}

const errorOf = (answer: { errors?: { message: string; extensions?: Record<string, unknown> }[] }) => {
  assert.ok(answer.errors?.length, 'an error was expected');
  return { code: answer.errors![0].extensions?.code, field: answer.errors![0].extensions?.field, message: answer.errors![0].message };
};

/** Rows anywhere in the tickets domain whose text holds `needle` (an account id, an e-mail...). */
async function traces(needle: string): Promise<Record<string, number>> {
  const found: Record<string, number> = {};
  for (const table of ['tickets', 'ticket_history', 'ticket_outbox', 'ticket_photos', 'personal_data_erasures', 'events', 'interventions', 'intervention_history']) {
    const { rows } = await t.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} x WHERE strpos(x::text, $1) > 0`, [needle]);
    if (rows[0].n > 0) found[table] = rows[0].n;
  }
  return found;
}

const auditRows = async () => (await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM personal_data_access_log')).rows[0].n;
const erasureRows = async () => (await t.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM personal_data_erasures')).rows[0].n;

before(async () => {
  // The GRC export on (its receiver never answers: rows stay pending), so that scrubbing its payloads is tested.
  t = await startTicketsHub({
    env: { TICKETS_RETENTION_INTERVAL_MS: '0', GRC_WEBHOOK_URL: 'http://127.0.0.1:9/grc', GRC_WEBHOOK_SECRET: 'a-test-secret-of-at-least-32-characters' },
  });
  photosUrl = t.url.replace(/\/graphql$/, '/tickets/photos');
  tokens.operatorChalons = await t.tokenAs(OPERATOR_CHALONS, ['operator'], ['chalons']);
  tokens.operatorFagnieres = await t.tokenAs(OPERATOR_FAGNIERES, ['operator'], ['fagnieres']);
  tokens.adminChalons = await t.tokenAs('admin-chalons', ['admin'], ['chalons']);
  tokens.agentChalons = await t.tokenAs('agent-chalons', ['agent'], ['chalons']);
  tokens.partner = await t.tokenAs('partner-1', ['partner'], ['chalons']);
});

after(async () => {
  await t?.close();
});

describe('myPersonalData: everything the hub holds about the signed-in reporter', () => {
  it('exports his tickets (with identity, contact, description, location, photos) and every staff read of them, nobody else’s', async () => {
    const alice = await t.citizen('citizen-alice');
    const bob = await t.citizen('citizen-bob');
    const photo = await uploadPhoto(alice, 1);
    const first = await t.reportOk(
      { category: 'TAG', location: await t.spot('chalons'), description: 'Tag on the wall of the school', name: 'Alice Martin', email: 'alice@example.org', phone: '+33 6 11 22 33 44', photoIds: [photo] },
      alice,
    );
    const second = await t.reportOk({ category: 'POTHOLE', location: await t.spot('fagnieres'), description: 'Deep pothole' }, alice);
    const bobs = await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: 'Bob’s tag' }, bob);

    // An operator reads her contact (audited by the ticket service, channel graphql).
    await t.ok(`{ ticket(id: "${first.ticket.id}") { reporter { email } } }`, { token: tokens.operatorChalons });
    const before = await auditRows();

    const { myPersonalData } = await t.ok(MY_EXPORT, { token: alice });
    assert.equal(myPersonalData.accountId, 'citizen-alice');
    assert.ok(Math.abs(Date.parse(myPersonalData.exportedAt) - Date.now()) < 60_000);
    assert.deepEqual(
      myPersonalData.tickets.map((ticket: any) => [ticket.id, ticket.collectivity.id, ticket.description, ticket.reporter]),
      [
        [first.ticket.id, 'chalons', 'Tag on the wall of the school', { accountId: 'citizen-alice', name: 'Alice Martin', email: 'alice@example.org', phone: '+33 6 11 22 33 44' }],
        [second.ticket.id, 'fagnieres', 'Deep pothole', { accountId: 'citizen-alice', name: null, email: null, phone: null }],
      ],
    );
    assert.deepEqual(myPersonalData.tickets[0].photos.map((p: any) => p.id), [photo]);
    assert.deepEqual(myPersonalData.tickets[0].location.coordinates, first.ticket.location.coordinates);
    assert.ok(!myPersonalData.tickets.some((ticket: any) => ticket.id === bobs.ticket.id));
    assert.deepEqual(
      myPersonalData.accessLog.map((row: any) => [row.actor, row.ticketId, row.fields, row.channel]),
      [[OPERATOR_CHALONS, first.ticket.id, ['reporter.email'], 'graphql']],
    );
    // The reporter's own export is not an access by staff: nothing written to the access log.
    assert.equal(await auditRows(), before);
  });

  it('is refused to the public (UNAUTHENTICATED), and empty for someone who reported nothing', async () => {
    const answer = await t.gql(MY_EXPORT);
    assert.equal(errorOf(answer).code, 'UNAUTHENTICATED');
    const { myPersonalData } = await t.ok(MY_EXPORT, { token: await t.citizen('citizen-nobody') });
    assert.deepEqual([myPersonalData.accountId, myPersonalData.tickets, myPersonalData.accessLog], ['citizen-nobody', [], []]);
  });
});

describe('reporterPersonalData: an operator’s export on a written request', () => {
  let carolTickets: string[];
  let anonymous: string;

  before(async () => {
    const carol = await t.citizen('citizen-carol');
    carolTickets = [
      (await t.reportOk({ category: 'DAMAGED_FURNITURE', location: await t.spot('chalons'), description: 'Broken bench', email: 'carol@example.org' }, carol)).ticket.id,
      (await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: 'Another tag' }, carol)).ticket.id,
      (await t.reportOk({ category: 'TAG', location: await t.spot('fagnieres'), description: 'A tag in Fagnières' }, carol)).ticket.id,
    ];
    anonymous = (await t.reportOk({ category: 'ILLEGAL_DUMPING', location: await t.spot('chalons'), description: 'Rubble', email: 'Anon.Reporter@Example.org', phone: '+33 6 12 34 56 78' })).ticket.id;
  });

  it('exports the reporter’s tickets of the operator’s collectivities only, audited with the request’s reference', async () => {
    const before = await auditRows();
    const { reporterPersonalData } = await t.ok(EXPORT, { token: tokens.operatorChalons, variables: { reporter: { accountId: 'citizen-carol' }, ref: '  Courrier 2026-0042 ' } });
    assert.equal(reporterPersonalData.accountId, 'citizen-carol');
    assert.deepEqual(reporterPersonalData.tickets.map((ticket: any) => ticket.id), carolTickets.slice(0, 2));
    assert.deepEqual(reporterPersonalData.tickets[0].reporter, { accountId: 'citizen-carol', name: null, email: 'carol@example.org', phone: null });
    const { rows } = await t.pool.query(
      `SELECT actor_sub, actor_roles, ticket_id::text, fields, channel, request_reference FROM personal_data_access_log WHERE channel = 'export' ORDER BY personal_data_access_log.ticket_id`,
    );
    const fields = ['reporter.accountId', 'reporter.name', 'reporter.email', 'reporter.phone', 'description', 'location', 'photos'];
    assert.deepEqual(rows, carolTickets.slice(0, 2).map((id) => ({ actor_sub: OPERATOR_CHALONS, actor_roles: ['operator'], ticket_id: id, fields, channel: 'export', request_reference: 'Courrier 2026-0042' })));
    // The export's own audit rows are in its access log; the reporter fields read through Ticket.reporter too (channel graphql).
    const channels = reporterPersonalData.accessLog.map((row: any) => `${row.ticketId}:${row.channel}:${row.actor}`).sort();
    assert.deepEqual(channels, carolTickets.slice(0, 2).map((id) => `${id}:export:${OPERATOR_CHALONS}`).sort());
    assert.ok((await auditRows()) >= before + 2);
  });

  it('finds anonymous reports by e-mail (any case) or by phone (any punctuation)', async () => {
    const byEmail = await t.ok(EXPORT, { token: tokens.adminChalons, variables: { reporter: { email: ' anon.reporter@EXAMPLE.org' }, ref: 'REQ-1' } });
    assert.equal(byEmail.reporterPersonalData.accountId, null);
    assert.deepEqual(byEmail.reporterPersonalData.tickets.map((ticket: any) => [ticket.id, ticket.reporter.email]), [[anonymous, 'anon.reporter@example.org']]);
    const byPhone = await t.ok(EXPORT, { token: tokens.operatorChalons, variables: { reporter: { phone: '+33.6.12.34.56.78' }, ref: 'REQ-2' } });
    assert.deepEqual(byPhone.reporterPersonalData.tickets.map((ticket: any) => ticket.id), [anonymous]);
  });

  it('is FORBIDDEN for someone else’s data: citizens, agents, partners, and operators of another collectivity; UNAUTHENTICATED for the public', async () => {
    const before = await auditRows();
    const variables = { reporter: { accountId: 'citizen-carol' }, ref: 'REQ-3' };
    for (const token of [await t.citizen('citizen-carol'), await t.citizen('citizen-mallory'), tokens.agentChalons, tokens.partner]) {
      const { code, message } = errorOf(await t.gql(EXPORT, { token, variables }));
      assert.equal(code, 'FORBIDDEN');
      assert.match(message, /needs role operator or admin/);
    }
    assert.equal(errorOf(await t.gql(EXPORT, { variables })).code, 'UNAUTHENTICATED');
    // Carol reported in Fagnières too: its operator sees that one only.
    const fagnieres = await t.ok(EXPORT, { token: tokens.operatorFagnieres, variables });
    assert.deepEqual(fagnieres.reporterPersonalData.tickets.map((ticket: any) => ticket.id), [carolTickets[2]]);
    // The anonymous reporter reported in Châlons only.
    const other = errorOf(await t.gql(EXPORT, { token: tokens.operatorFagnieres, variables: { reporter: { email: 'anon.reporter@example.org' }, ref: 'REQ-4' } }));
    assert.deepEqual([other.code, other.field], ['FORBIDDEN', 'reporter']);
    assert.match(other.message, /^reporter: no report of this reporter \(by email\) belongs to your collectivities \(fagnieres\)/);
    // Only the Fagnières export of its own ticket was audited (channel export, and graphql for the Ticket.reporter read).
    const { rows } = await t.pool.query(`SELECT channel, actor_sub FROM personal_data_access_log ORDER BY id DESC LIMIT $1`, [(await auditRows()) - before]);
    assert.deepEqual(rows.map((row) => `${row.channel}:${row.actor_sub}`).sort(), [`export:${OPERATOR_FAGNIERES}`, `graphql:${OPERATOR_FAGNIERES}`]);
  });

  it('refuses bad input naming the field, and writes nothing', async () => {
    const before = await auditRows();
    const cases: [Record<string, unknown>, string, string, RegExp][] = [
      [{}, 'REQ', 'reporter', /^reporter: give exactly one of accountId, email or phone \(got none\)/],
      [{ accountId: 'citizen-carol', email: 'carol@example.org' }, 'REQ', 'reporter', /got accountId, email/],
      [{ email: 'not-an-address' }, 'REQ', 'reporter.email', /^reporter\.email: is not an e-mail address/],
      [{ phone: '12' }, 'REQ', 'reporter.phone', /^reporter\.phone: is not a telephone number/],
      [{ accountId: '   ' }, 'REQ', 'reporter.accountId', /must not be empty/],
      [{ accountId: 'a\u0000b' }, 'REQ', 'reporter.accountId', /NUL/],
      [{ accountId: 'citizen-carol' }, '   ', 'requestReference', /^requestReference: must not be empty/],
      [{ accountId: 'citizen-carol' }, 'line\nbreak', 'requestReference', /control characters/],
      [{ accountId: 'citizen-carol' }, 'x'.repeat(201), 'requestReference', /at most 200 characters/],
    ];
    for (const [reporter, ref, field, message] of cases) {
      for (const query of [EXPORT, ERASE]) {
        const error = errorOf(await t.gql(query, { token: tokens.operatorChalons, variables: { reporter, ref } }));
        assert.deepEqual([error.code, error.field], ['BAD_USER_INPUT', field], `${JSON.stringify(reporter)} ${JSON.stringify(ref)}: ${error.message}`);
        assert.match(error.message, message);
      }
    }
    assert.equal(await auditRows(), before);
    const { rows } = await t.pool.query(`SELECT count(*)::int AS n FROM tickets WHERE reporter_erased_at IS NOT NULL AND id = ANY($1::bigint[])`, [carolTickets]);
    assert.equal(rows[0].n, 0);
  });

  it('gives an empty export for a reporter with nothing left', async () => {
    const { reporterPersonalData } = await t.ok(EXPORT, { token: tokens.operatorChalons, variables: { reporter: { email: 'never@example.org' }, ref: 'REQ-5' } });
    assert.deepEqual([reporterPersonalData.tickets, reporterPersonalData.accessLog], [[], []]);
  });
});

describe('eraseMyPersonalData: the reporter has his data erased (the tickets stay, anonymised)', () => {
  it('erases identity, contact, photos and uploads, every trace of his account id and e-mail; a second time erases nothing', async () => {
    const dave = await t.citizen('citizen-dave');
    const erin = await t.citizen('citizen-erin');
    const claimed = await uploadPhoto(dave, 2);
    const pending = await uploadPhoto(dave, 3);
    const place = await t.spot('chalons');
    const first = await t.reportOk({ category: 'LIGHT_OUT', location: place, description: 'The lamp is out', name: 'Dave Durand', email: 'dave.durand@example.org', photoIds: [claimed] }, dave);
    // A duplicate Dave's account attaches to Erin's open ticket leaves his account id in her ticket's history.
    const erinsPlace = await t.spot('chalons');
    const erins = await t.reportOk({ category: 'TAG', location: erinsPlace, description: 'Erin’s tag', email: 'erin@example.org' }, erin);
    const duplicate = await t.reportOk({ category: 'TAG', location: east(erinsPlace, 10), description: 'Same tag' }, dave);
    assert.equal(duplicate.ticket.status, 'DUPLICATE');
    // Staff move his ticket along (their account ids must stay), and read his contact.
    await t.ok(`mutation { transitionTicket(input: { ticketId: "${first.ticket.id}", to: ACKNOWLEDGED, note: "seen" }) { id } }`, { token: tokens.operatorChalons });
    await t.ok(`{ ticket(id: "${first.ticket.id}") { reporter { name } } }`, { token: tokens.operatorChalons });
    assert.ok(Object.keys(await traces('citizen-dave')).length > 0);
    const erasuresBefore = await erasureRows();

    const { eraseMyPersonalData } = await t.ok(ERASE_MINE, { token: dave });
    assert.deepEqual(eraseMyPersonalData, { ticketsAnonymised: 2, photosDeleted: 2 });

    // Nothing of Dave anywhere in the tickets domain (tickets, history, outbox, photos, erasures, bus events).
    assert.deepEqual(await traces('citizen-dave'), {});
    assert.deepEqual(await traces('dave.durand@example.org'), {});
    assert.deepEqual(await traces('Dave Durand'), {});
    const { rows: photos } = await t.pool.query('SELECT id FROM ticket_photos WHERE id = ANY($1::uuid[])', [[claimed, pending]]);
    assert.deepEqual(photos, []);

    // The tickets stay, anonymised, with their history; staff see who moved them, and the erasure.
    const { ticket } = await t.ok(
      `{ ticket(id: "${first.ticket.id}") { status description reporter { name } photos { id } history { action actor note toStatus } } }`,
      { token: tokens.operatorChalons },
    );
    assert.deepEqual([ticket.status, ticket.description, ticket.reporter, ticket.photos], ['ACKNOWLEDGED', 'The lamp is out', null, []]);
    assert.deepEqual(ticket.history, [
      { action: 'CREATED', actor: null, note: null, toStatus: 'NEW' },
      { action: 'TRANSITION', actor: OPERATOR_CHALONS, note: 'seen', toStatus: 'ACKNOWLEDGED' },
      { action: 'REPORTER_ERASED', actor: null, note: ERASURE_NOTES.REPORTER_REQUEST, toStatus: null },
    ]);
    const { rows: db } = await t.pool.query(
      `SELECT id::text, reporter_sub, reporter_name, reporter_email, reporter_phone, reporter_erased_at IS NOT NULL AS erased FROM tickets WHERE id = ANY($1::bigint[]) ORDER BY tickets.id`,
      [[first.ticket.id, duplicate.ticket.id]],
    );
    assert.deepEqual(db, [first.ticket.id, duplicate.ticket.id].map((id) => ({ id, reporter_sub: null, reporter_name: null, reporter_email: null, reporter_phone: null, erased: true })));
    // Erin's original keeps its reporter; its DUPLICATE_ATTACHED entry no longer names Dave.
    const erinsNow = await t.ok(`{ ticket(id: "${erins.ticket.id}") { reporter { accountId email } history { action actor } } }`, { token: tokens.operatorChalons });
    assert.deepEqual(erinsNow.ticket.reporter, { accountId: 'citizen-erin', email: 'erin@example.org' });
    assert.deepEqual(erinsNow.ticket.history.map((h: any) => [h.action, h.actor]), [['CREATED', 'citizen-erin'], ['DUPLICATE_ATTACHED', null]]);
    // Every GRC payload of his tickets has a null reporter; the REPORTER_ERASED change is queued for the GRC system.
    const { rows: outbox } = await t.pool.query(
      `SELECT ticket_id::text, payload->>'action' AS action, payload #> '{ticket,reporter}' AS reporter FROM ticket_outbox WHERE ticket_id = $1 ORDER BY id`,
      [first.ticket.id],
    );
    assert.deepEqual(outbox.map((row) => [row.action, row.reporter]), [['CREATED', null], ['TRANSITION', null], ['REPORTER_ERASED', null]]);
    const { rows: erasure } = await t.pool.query(`SELECT reason, requested_by, ticket_ids::text[] AS ids, photos_deleted, request_reference FROM personal_data_erasures ORDER BY id DESC LIMIT 1`);
    assert.deepEqual(erasure, [{ reason: 'REPORTER_REQUEST', requested_by: null, ids: [first.ticket.id, duplicate.ticket.id], photos_deleted: 1, request_reference: null }]);
    assert.equal(await erasureRows(), erasuresBefore + 1);

    // His export is now empty, his tickets are no longer his.
    const exported = await t.ok(MY_EXPORT, { token: dave });
    assert.deepEqual(exported.myPersonalData.tickets, []);
    const mine = await t.ok(`{ myTickets { totalCount } }`, { token: dave });
    assert.equal(mine.myTickets.totalCount, 0);

    // Erased twice: nothing left, nothing written.
    const history = (await t.pool.query('SELECT count(*)::int AS n FROM ticket_history')).rows[0].n;
    const again = await t.ok(ERASE_MINE, { token: dave });
    assert.deepEqual(again.eraseMyPersonalData, { ticketsAnonymised: 0, photosDeleted: 0 });
    assert.equal((await t.pool.query('SELECT count(*)::int AS n FROM ticket_history')).rows[0].n, history);
    assert.equal(await erasureRows(), erasuresBefore + 1);
  });

  it('is refused to the public (UNAUTHENTICATED)', async () => {
    assert.equal(errorOf(await t.gql(ERASE_MINE)).code, 'UNAUTHENTICATED');
  });

  it('erases each ticket once when the reporter asks twice at the same moment', async () => {
    const frank = await t.citizen('citizen-frank');
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: `Tag ${i}` }, frank)).ticket.id);
    const answers = await Promise.all(Array.from({ length: 4 }, () => t.ok(ERASE_MINE, { token: frank })));
    assert.equal(answers.reduce((sum, a) => sum + a.eraseMyPersonalData.ticketsAnonymised, 0), 4);
    const { rows } = await t.pool.query(
      `SELECT ticket_id::text, count(*)::int AS n FROM ticket_history WHERE action = 'REPORTER_ERASED' AND ticket_id = ANY($1::bigint[]) GROUP BY ticket_history.ticket_id ORDER BY ticket_history.ticket_id`,
      [ids],
    );
    assert.deepEqual(rows, ids.map((id) => ({ ticket_id: id, n: 1 })));
  });
});

describe('eraseReporterPersonalData: an operator erases a reporter’s data on a written request', () => {
  let gina: string;
  let ginaTickets: string[];

  before(async () => {
    gina = await t.citizen('citizen-gina');
    ginaTickets = [
      (await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: 'Tag', phone: '06 98 76 54 32' }, gina)).ticket.id,
      (await t.reportOk({ category: 'TAG', location: await t.spot('fagnieres'), description: 'Tag in Fagnières', phone: '06 98 76 54 32' }, gina)).ticket.id,
    ];
  });

  it('is FORBIDDEN to citizens (the reporter included), agents and partners, and to operators of collectivities with none of her reports', async () => {
    const only = await t.reportOk({ category: 'TAG', location: await t.spot('saintMartin'), description: 'Tag in Saint-Martin', email: 'hank@example.org' });
    for (const token of [gina, await t.citizen('citizen-mallory'), tokens.agentChalons, tokens.partner]) {
      const { code } = errorOf(await t.gql(ERASE, { token, variables: { reporter: { accountId: 'citizen-gina' }, ref: 'REQ-9' } }));
      assert.equal(code, 'FORBIDDEN');
    }
    const other = errorOf(await t.gql(ERASE, { token: tokens.operatorChalons, variables: { reporter: { email: 'hank@example.org' }, ref: 'REQ-10' } }));
    assert.deepEqual([other.code, other.field], ['FORBIDDEN', 'reporter']);
    const { rows } = await t.pool.query('SELECT reporter_email, reporter_erased_at FROM tickets WHERE id = $1', [only.ticket.id]);
    assert.deepEqual(rows, [{ reporter_email: 'hank@example.org', reporter_erased_at: null }]);
  });

  it('erases the tickets of the operator’s collectivities only, records who asked and the reference; a second time gives 0', async () => {
    const { eraseReporterPersonalData } = await t.ok(ERASE, { token: tokens.operatorChalons, variables: { reporter: { phone: '06.98.76.54.32' }, ref: 'Lettre du 3 mars, n° 17' } });
    assert.deepEqual(eraseReporterPersonalData, { ticketsAnonymised: 1, photosDeleted: 0 });
    const { rows } = await t.pool.query(
      `SELECT id::text, reporter_sub, reporter_phone, reporter_erased_at IS NOT NULL AS erased FROM tickets WHERE id = ANY($1::bigint[]) ORDER BY tickets.id`,
      [ginaTickets],
    );
    assert.deepEqual(rows, [
      { id: ginaTickets[0], reporter_sub: null, reporter_phone: null, erased: true },
      { id: ginaTickets[1], reporter_sub: 'citizen-gina', reporter_phone: '06 98 76 54 32', erased: false },
    ]);
    const { rows: erasure } = await t.pool.query(`SELECT reason, requested_by, ticket_ids::text[] AS ids, request_reference FROM personal_data_erasures ORDER BY id DESC LIMIT 1`);
    assert.deepEqual(erasure, [{ reason: 'OPERATOR_REQUEST', requested_by: OPERATOR_CHALONS, ids: [ginaTickets[0]], request_reference: 'Lettre du 3 mars, n° 17' }]);
    const { ticket } = await t.ok(`{ ticket(id: "${ginaTickets[0]}") { history { action actor note } } }`, { token: tokens.operatorChalons });
    assert.deepEqual(ticket.history.at(-1), { action: 'REPORTER_ERASED', actor: OPERATOR_CHALONS, note: ERASURE_NOTES.OPERATOR_REQUEST });
    // The public sees the note, not who asked nor the reference.
    const publicView = await t.ok(`{ ticket(id: "${ginaTickets[0]}") { history { action actor note } } }`);
    assert.deepEqual(publicView.ticket.history.at(-1), { action: 'REPORTER_ERASED', actor: null, note: ERASURE_NOTES.OPERATOR_REQUEST });

    // The same request again (a retry): 0, although her Fagnières ticket still has her phone.
    const again = await t.ok(ERASE, { token: tokens.operatorChalons, variables: { reporter: { phone: '06 98 76 54 32' }, ref: 'Lettre du 3 mars, n° 17' } });
    assert.deepEqual(again.eraseReporterPersonalData, { ticketsAnonymised: 0, photosDeleted: 0 });
    // A new request for what is left: Fagnières' data, not Châlons'.
    const elsewhere = errorOf(await t.gql(ERASE, { token: tokens.operatorChalons, variables: { reporter: { phone: '06 98 76 54 32' }, ref: 'Lettre du 9 mars' } }));
    assert.deepEqual([elsewhere.code, elsewhere.field], ['FORBIDDEN', 'reporter']);
    // Her Fagnières ticket is Fagnières' to erase; after which the Châlons operator also gets 0.
    const fagnieres = await t.ok(ERASE, { token: tokens.operatorFagnieres, variables: { reporter: { accountId: 'citizen-gina' }, ref: 'F-1' } });
    assert.deepEqual(fagnieres.eraseReporterPersonalData, { ticketsAnonymised: 1, photosDeleted: 0 });
    const last = await t.ok(ERASE, { token: tokens.operatorChalons, variables: { reporter: { accountId: 'citizen-gina' }, ref: 'F-2' } });
    assert.deepEqual(last.eraseReporterPersonalData, { ticketsAnonymised: 0, photosDeleted: 0 });
  });

  it('erases each ticket once when the reporter and an operator erase at the same moment', async () => {
    const ivan = await t.citizen('citizen-ivan');
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await t.reportOk({ category: 'POTHOLE', location: await t.spot('chalons'), description: `Hole ${i}` }, ivan)).ticket.id);
    const [mine, operator] = await Promise.all([
      t.ok(ERASE_MINE, { token: ivan }),
      t.ok(ERASE, { token: tokens.operatorChalons, variables: { reporter: { accountId: 'citizen-ivan' }, ref: 'REQ-11' } }),
    ]);
    assert.equal(mine.eraseMyPersonalData.ticketsAnonymised + operator.eraseReporterPersonalData.ticketsAnonymised, 3);
    const { rows } = await t.pool.query(`SELECT count(*)::int AS n FROM ticket_history WHERE action = 'REPORTER_ERASED' AND ticket_id = ANY($1::bigint[])`, [ids]);
    assert.equal(rows[0].n, 3);
  });
});
