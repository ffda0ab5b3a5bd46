/**
 * Reporting (issue #8, "Reporting" and "Duplicates", "Bad input"): the responsible collectivity of
 * municipal and agglomeration categories in each commune, every refused input (clear error naming
 * the field, nothing written), the rate limits, the duplicate rule (50 m on the spheroid, 7 days,
 * same category, open only), concurrent identical reports (exactly one original), and linking
 * the nearest asset. Through the gateway, on the real territory and equipment subgraphs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createReport } from '../src/report-service.js';
import type { TicketResources } from '../src/resources.js';
import { ReportError, type ReportRequest } from '../src/types.js';
import { east, metresBetween, north, POINTS, startTicketsHub, type Place, type TicketsHub } from './fixtures.js';

/** Reports per hour per reporter in this file's hub: the flood tests use it, every other test a fresh reporter. */
const PER_HOUR = 4;

let t: TicketsHub;
let reporters = 0;
/** A citizen never used before in this file (each has its own hourly quota). */
const freshCitizen = () => t.citizen(`citizen-r${++reporters}`);

/** The same resources with other configuration values (its own in-memory address windows). */
function withConfig(resources: TicketResources, overrides: Partial<TicketResources['config']>): TicketResources {
  return Object.create(resources, { config: { value: { ...resources.config, ...overrides } } }) as TicketResources;
}

before(async () => {
  t = await startTicketsHub({ env: { TICKETS_REPORTS_PER_HOUR: String(PER_HOUR) } });
});
after(async () => {
  await t?.close();
});

describe('the responsible collectivity', () => {
  it('is the commune for a municipal category and the agglomeration for an agglomeration one, in each commune', async () => {
    const cases: [keyof typeof POINTS, string, string, string, string][] = [
      ['chalons', 'TAG', 'chalons', '51108', 'Propreté urbaine'],
      ['fagnieres', 'TAG', 'fagnieres', '51242', 'Propreté urbaine'],
      ['saintMartin', 'TAG', 'saint-martin-sur-le-pre', '51504', 'Propreté urbaine'],
      ['chalons', 'POTHOLE', 'chalons', '51108', 'Voirie et mobilier urbain'],
      ['fagnieres', 'LIGHT_OUT', 'fagnieres', '51242', 'Éclairage public'],
      ['chalons', 'FULL_BIN', 'chalons-agglo', '51108', 'Collecte des déchets'],
      ['fagnieres', 'FULL_BIN', 'chalons-agglo', '51242', 'Collecte des déchets'],
      ['saintMartin', 'BUS_STOP_DAMAGED', 'chalons-agglo', '51504', 'Transports urbains'],
      // In the territory but outside the three communes: only the agglomeration's categories.
      ['compertrix', 'FULL_BIN', 'chalons-agglo', '51160', 'Collecte des déchets'],
      ['compertrix', 'BUS_STOP_DAMAGED', 'chalons-agglo', '51160', 'Transports urbains'],
    ];
    for (const [place, category, collectivity, insee, service] of cases) {
      const result = await t.reportOk({ category, location: POINTS[place] }, await freshCitizen());
      const { ticket } = result;
      assert.deepEqual(
        [ticket.status, ticket.collectivity.id, ticket.inseeCode, ticket.service],
        ['NEW', collectivity, insee, service],
        `${category} at ${place}`,
      );
      assert.match(result.notice, new RegExp(`goes to ${service} of `), `${category} at ${place}: ${result.notice}`);
    }
  });

  it('sets the service-level due dates from the category (hours after the report)', async () => {
    const { ticket } = await t.reportOk({ category: 'OPEN_CABINET', location: await t.spot('saintMartin') }, await freshCitizen());
    const created = Date.parse(ticket.createdAt);
    assert.equal(Date.parse(ticket.serviceLevel.acknowledgeDueAt) - created, 2 * 3_600_000);
    assert.equal(Date.parse(ticket.serviceLevel.resolveDueAt) - created, 24 * 3_600_000);
    assert.deepEqual([ticket.serviceLevel.acknowledgeBreached, ticket.serviceLevel.resolveBreached], [false, false]);
  });
});

describe('the catalogue', () => {
  it('lists the categories in display order with their competence (from territory) and service levels', async () => {
    const { ticketCategories } = await t.ok(`{ ticketCategories { code label serviceCategory competence service group equipmentKinds acknowledgeWithinHours resolveWithinHours } }`);
    assert.deepEqual(
      ticketCategories.map((c: any) => [c.code, c.serviceCategory, c.competence, c.equipmentKinds.join(), c.acknowledgeWithinHours, c.resolveWithinHours]),
      [
        ['LIGHT_OUT', 'STREET_LIGHTING', 'MUNICIPAL', 'LIGHT_POINT', 24, 72],
        ['OPEN_CABINET', 'STREET_LIGHTING', 'MUNICIPAL', 'ELECTRICAL_CABINET', 2, 24],
        ['TAG', 'CLEANLINESS', 'MUNICIPAL', '', 48, 240],
        ['ILLEGAL_DUMPING', 'CLEANLINESS', 'MUNICIPAL', '', 24, 120],
        ['DAMAGED_FURNITURE', 'STREET_FURNITURE', 'MUNICIPAL', '', 48, 336],
        ['POTHOLE', 'ROADS', 'MUNICIPAL', '', 24, 336],
        ['BUS_STOP_DAMAGED', 'BUS_NETWORK', 'AGGLOMERATION', 'BUS_STOP', 24, 168],
        ['FULL_BIN', 'WASTE_COLLECTION', 'AGGLOMERATION', '', 12, 48],
      ],
    );
    assert.deepEqual(ticketCategories[0].group, 'Éclairage public');
  });
});

describe('bad input', () => {
  /** The answer's first error as [code, field], and that nothing was written. */
  async function refused(input: Record<string, unknown>, token: string | undefined, code: string, field: string | undefined, message: RegExp) {
    const before = await t.counts();
    const answer = await t.report(input as never, token);
    const error = answer.errors?.[0];
    assert.ok(error, `expected a refusal for ${JSON.stringify(input).slice(0, 200)}, got ${JSON.stringify(answer.data)}`);
    assert.deepEqual([error.extensions?.code, error.extensions?.field], [code, field], JSON.stringify(answer.errors));
    assert.match(error.message, message);
    assert.ok(answer.status < 500, `status ${answer.status}`);
    assert.deepEqual(await t.counts(), before, 'nothing is written');
  }

  it('refuses each bad report naming the field, and writes nothing', async () => {
    const token = await freshCitizen();
    const chalons = POINTS.chalons;
    await refused({ category: 'NOT_A_CATEGORY', location: chalons }, token, 'BAD_USER_INPUT', 'category', /^category: unknown category "NOT_A_CATEGORY" \(known: LIGHT_OUT, OPEN_CABINET, TAG/);
    await refused({ category: 'LIGHT_OUT', location: POINTS.outside }, token, 'BAD_USER_INPUT', 'location', /^location: \(lon 2\.35, lat 48\.85\) is outside the territory/);
    await refused({ category: 'TAG', location: POINTS.compertrix }, token, 'BAD_USER_INPUT', 'location', /TAG \(Tag or graffiti\) is a municipal matter, handled only inside the three communes/);
    await refused({ category: 'LIGHT_OUT', location: { lon: 4.365, lat: 91 } }, token, 'BAD_USER_INPUT', 'location.lat', /^location\.lat: must be between -90 and 90 degrees \(got 91\)/);
    await refused({ category: 'LIGHT_OUT', location: { lon: -181, lat: 48.9 } }, token, 'BAD_USER_INPUT', 'location.lon', /^location\.lon: must be between -180 and 180/);
    await refused({ category: 'TAG', location: chalons, description: 'x'.repeat(4001) }, token, 'BAD_USER_INPUT', 'description', /^description: must be at most 4,000 characters \(got 4,001\)/);
    await refused({ category: 'TAG', location: chalons, description: '   ' }, token, 'BAD_USER_INPUT', 'description', /^description: must not be empty/);
    await refused({ category: 'TAG', location: chalons, description: 'bell\u0007' }, token, 'BAD_USER_INPUT', 'description', /control characters/);
    await refused({ category: 'TAG', location: chalons, name: 'x'.repeat(201) }, token, 'BAD_USER_INPUT', 'name', /^name: must be at most 200 characters/);
    await refused({ category: 'TAG', location: chalons, name: 'two\nlines' }, token, 'BAD_USER_INPUT', 'name', /control characters/);
    await refused({ category: 'TAG', location: chalons, email: 'not-an-address' }, token, 'BAD_USER_INPUT', 'email', /^email: is not an e-mail address/);
    await refused({ category: 'TAG', location: chalons, phone: 'call me' }, token, 'BAD_USER_INPUT', 'phone', /^phone: is not a telephone number/);
    await refused({ category: 'TAG', location: chalons, photoIds: ['a', 'b', 'c', 'd', 'e', 'f'] }, token, 'BAD_USER_INPUT', 'photoIds', /at most 5 photos/);
    await refused({ category: 'TAG', location: chalons, photoIds: ['0b8f0a52-5a54-4c4f-9d0e-3f1f7f6f2a11'] }, token, 'BAD_USER_INPUT', 'photoIds', /is not one of your uploads/);
    // Anonymous without any contact.
    await refused({ category: 'TAG', location: chalons }, undefined, 'BAD_USER_INPUT', 'email', /an anonymous report needs an e-mail address or a telephone number/);
    await refused({ category: 'TAG', location: chalons, name: 'Anne' }, undefined, 'BAD_USER_INPUT', 'email', /anonymous report needs/);
  });

  it('accepts exactly 4,000 characters (trimmed) and an anonymous reporter with only a phone', async () => {
    const long = await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), description: `  ${'é'.repeat(4000)}\n` }, await freshCitizen());
    assert.equal(long.ticket.description.length, 4000);
    const anonymous = await t.reportOk({ category: 'TAG', location: await t.spot('chalons'), phone: '+33 3 26 00 00 00' });
    assert.deepEqual(anonymous.ticket.reporter, null, 'the public reporter does not see his own ticket private part (no account)');
    const { rows } = await t.pool.query('SELECT reporter_sub, reporter_phone, reporter_email, source FROM tickets WHERE id = $1', [anonymous.ticket.id]);
    assert.deepEqual(rows[0], { reporter_sub: null, reporter_phone: '+33 3 26 00 00 00', reporter_email: null, source: 'APP' });
  });

  it('refuses a missing location, NUL bytes and non-finite coordinates before anything runs, naming them', async () => {
    const token = await freshCitizen();
    const before = await t.counts();
    const missing = await t.gql(`mutation { reportProblem(input: { category: "TAG", description: "x" }) { notice } }`, { token });
    assert.equal(missing.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(missing));
    assert.match(missing.errors![0].message, /location/);
    const missingVariable = await t.report({ category: 'TAG', location: undefined as never }, token);
    assert.match(missingVariable.errors?.[0]?.message ?? '', /location/, JSON.stringify(missingVariable));
    const nul = await t.report({ category: 'TAG', location: POINTS.chalons, description: 'a\u0000b' }, token);
    assert.equal(nul.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(nul));
    assert.match(nul.errors![0].message, /description/);
    assert.match(nul.errors![0].message, /NUL/);
    const huge = await t.gql(`mutation { reportProblem(input: { category: "TAG", description: "x", location: { lon: 1e309, lat: 48.9 } }) { notice } }`, { token });
    assert.ok(huge.errors?.length, JSON.stringify(huge));
    assert.match(huge.errors![0].message, /lon|Float|finite|Infinity/i, JSON.stringify(huge.errors));
    assert.ok(huge.status < 500);
    assert.deepEqual(await t.counts(), before);
  });

  it('createReport (the Open311 path) refuses NaN, Infinity, NUL, and names the field', async () => {
    const base: ReportRequest = { category: 'TAG', lon: POINTS.chalons.lon, lat: POINTS.chalons.lat, description: 'x', source: 'OPEN311', email: 'a@example.org' };
    const reporter = { sub: null, roles: [], address: '198.51.100.7' };
    const cases: [Partial<ReportRequest>, string, RegExp][] = [
      [{ lon: Number.NaN }, 'location.lon', /finite number of degrees \(got NaN\)/],
      [{ lat: Number.POSITIVE_INFINITY }, 'location.lat', /got Infinity/],
      [{ lon: 1e309 }, 'location.lon', /got Infinity/],
      [{ lon: undefined as never }, 'location', /is required/],
      [{ description: 'a\u0000b' }, 'description', /^description: must not contain NUL characters/],
      [{ email: 'a\u0000@example.org' }, 'email', /NUL/],
      [{ category: 'TAG\u0000' }, 'category', /NUL/],
      [{ category: '' }, 'category', /is required/],
    ];
    const before = await t.counts();
    for (const [change, field, message] of cases) {
      await assert.rejects(createReport(t.resources, { ...base, ...change }, reporter), (error: unknown) => {
        assert.ok(error instanceof ReportError, String(error));
        assert.deepEqual([error.code, error.field], ['BAD_USER_INPUT', field], error.message);
        assert.match(error.message, message);
        return true;
      });
    }
    assert.deepEqual(await t.counts(), before);
  });
});

describe('rate limits', () => {
  it('refuses a flood from one citizen with RATE_LIMITED and the seconds to wait, and writes nothing', async () => {
    const token = await freshCitizen();
    for (let i = 0; i < PER_HOUR; i++) await t.reportOk({ category: 'TAG', location: await t.spot('fagnieres') }, token);
    const before = await t.counts();
    const flood = await t.report({ category: 'TAG', location: await t.spot('fagnieres') }, token);
    const error = flood.errors?.[0];
    assert.equal(error?.extensions?.code, 'RATE_LIMITED', JSON.stringify(flood));
    assert.match(error!.message, new RegExp(`too many reports from this reporter: at most ${PER_HOUR} per hour; try again in \\d+ s`));
    const wait = error!.extensions!.retryAfterSeconds as number;
    assert.ok(Number.isInteger(wait) && wait > 3_500 && wait <= 3_600, `retryAfterSeconds ${wait}`);
    assert.deepEqual(await t.counts(), before);
    // Another citizen is not affected.
    await t.reportOk({ category: 'TAG', location: await t.spot('fagnieres') }, await freshCitizen());
  });

  it('counts an anonymous reporter by his e-mail (case-insensitive), and concurrent reports cannot exceed the limit', async () => {
    const results = await Promise.all(
      Array.from({ length: PER_HOUR + 3 }, async (_, i) => {
        const place = await t.spot('saintMartin');
        await sleep(Math.random() * 20);
        return t.report({ category: 'TAG', location: place, email: i % 2 ? 'Flood@Example.org' : 'flood@example.org' });
      }),
    );
    const accepted = results.filter((r) => !r.errors);
    const limited = results.filter((r) => r.errors?.[0]?.extensions?.code === 'RATE_LIMITED');
    assert.deepEqual([accepted.length, limited.length], [PER_HOUR, 3], JSON.stringify(results.map((r) => r.errors ?? 'ok')));
  });

  it('limits reports per client address (createReport with an address, as Open311 calls it)', async () => {
    const limited = withConfig(t.resources, { TICKETS_REPORTS_PER_HOUR: 2 });
    const request = async (email: string): Promise<ReportRequest> => {
      const place = await t.spot('chalons');
      return { category: 'TAG', lon: place.lon, lat: place.lat, description: 'tag', source: 'OPEN311', email };
    };
    const address = '203.0.113.9';
    await createReport(limited, await request('one@example.org'), { sub: null, roles: [], address });
    await createReport(limited, await request('two@example.org'), { sub: null, roles: [], address });
    await assert.rejects(createReport(limited, await request('three@example.org'), { sub: null, roles: [], address }), (error: unknown) => {
      assert.ok(error instanceof ReportError);
      assert.equal(error.code, 'RATE_LIMITED');
      assert.match(error.message, /too many reports from this address: at most 2 per hour/);
      assert.ok(error.retryAfterSeconds! > 3_590 && error.retryAfterSeconds! <= 3_600, String(error.retryAfterSeconds));
      return true;
    });
    // Another address is not affected.
    await createReport(limited, await request('four@example.org'), { sub: null, roles: [], address: '203.0.113.10' });
  });
});

describe('duplicates', () => {
  const ORIGINAL = `query($id: ID!) { ticket(id: $id) { id status duplicateCount history { action note } } }`;

  it('attaches a report of the same category within 50 m of an open ticket to it, and tells the reporter', async () => {
    const place = await t.spot('chalons');
    const original = await t.reportOk({ category: 'POTHOLE', location: place }, await freshCitizen());
    const near = east(place, 48);
    assert.ok(metresBetween(place, near) < 50);
    const second = await t.reportOk({ category: 'POTHOLE', location: near }, await freshCitizen());
    assert.equal(second.ticket.status, 'DUPLICATE');
    assert.deepEqual(second.ticket.duplicateOf, { id: original.ticket.id });
    assert.deepEqual(second.duplicateOf, { id: original.ticket.id, status: 'NEW' });
    assert.match(second.notice, new RegExp(`^This problem was already reported \\(ticket ${original.ticket.id}, new\\): your report ${second.ticket.id} is attached to it`));
    const operator = await t.token(['operator'], ['chalons']);
    const seen = await t.ok(ORIGINAL, { variables: { id: original.ticket.id }, token: operator });
    assert.equal(seen.ticket.duplicateCount, 1);
    assert.deepEqual(seen.ticket.history.map((h: any) => [h.action, h.note]), [['CREATED', null], ['DUPLICATE_ATTACHED', `ticket ${second.ticket.id} attached as a duplicate`]]);
    // A third one attaches to the original, not to the duplicate.
    const third = await t.reportOk({ category: 'POTHOLE', location: north(place, 30) }, await freshCitizen());
    assert.deepEqual(third.ticket.duplicateOf, { id: original.ticket.id });
  });

  it('does not attach beyond 50 m, to another category, to a closed or rejected ticket, or to one older than 7 days', async () => {
    const operator = await t.token(['operator'], ['chalons']);
    const place = await t.spot('chalons');
    const original = await t.reportOk({ category: 'ILLEGAL_DUMPING', location: place }, await freshCitizen());
    const far = await t.reportOk({ category: 'ILLEGAL_DUMPING', location: east(place, 53) }, await freshCitizen());
    assert.equal(far.ticket.status, 'NEW', '53 m away is another problem');
    const other = await t.reportOk({ category: 'TAG', location: place }, await freshCitizen());
    assert.equal(other.ticket.status, 'NEW', 'another category is another problem');

    // Rejected: no longer open.
    const spot2 = await t.spot('chalons');
    const rejected = await t.reportOk({ category: 'ILLEGAL_DUMPING', location: spot2 }, await freshCitizen());
    await t.ok(`mutation($id: ID!) { transitionTicket(input: { ticketId: $id, to: REJECTED, note: "private land" }) { status } }`, { variables: { id: rejected.ticket.id }, token: operator });
    const afterRejected = await t.reportOk({ category: 'ILLEGAL_DUMPING', location: spot2 }, await freshCitizen());
    assert.equal(afterRejected.ticket.status, 'NEW');

    // Resolved (not open either).
    const spot3 = await t.spot('chalons');
    const resolved = await t.reportOk({ category: 'ILLEGAL_DUMPING', location: spot3 }, await freshCitizen());
    for (const to of ['ACKNOWLEDGED', 'RESOLVED']) {
      await t.ok(`mutation($id: ID!, $to: TicketStatus!) { transitionTicket(input: { ticketId: $id, to: $to }) { status } }`, { variables: { id: resolved.ticket.id, to }, token: operator });
    }
    assert.equal((await t.reportOk({ category: 'ILLEGAL_DUMPING', location: spot3 }, await freshCitizen())).ticket.status, 'NEW');

    // Age: 6 days 23 h is still a duplicate, 7 days and a minute is not.
    const spot4 = await t.spot('chalons');
    const old = await t.reportOk({ category: 'ILLEGAL_DUMPING', location: spot4 }, await freshCitizen());
    await t.pool.query(`UPDATE tickets SET created_at = now() - interval '6 days 23 hours' WHERE id = $1`, [old.ticket.id]);
    assert.deepEqual((await t.reportOk({ category: 'ILLEGAL_DUMPING', location: spot4 }, await freshCitizen())).ticket.duplicateOf, { id: old.ticket.id });
    await t.pool.query(`UPDATE tickets SET created_at = now() - interval '7 days 1 minute' WHERE id = $1`, [old.ticket.id]);
    assert.equal((await t.reportOk({ category: 'ILLEGAL_DUMPING', location: spot4 }, await freshCitizen())).ticket.status, 'NEW');
    assert.ok(original);
  });

  it('measures on the spheroid: 49.5 m north is a duplicate, 50.5 m is not', async () => {
    const place = await t.spot('fagnieres');
    await t.reportOk({ category: 'DAMAGED_FURNITURE', location: place }, await freshCitizen());
    const { rows } = await t.pool.query<{ lat49: number; lat51: number }>(
      `SELECT ST_Y(ST_Project(ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, 49.5, 0)::geometry) AS lat49,
              ST_Y(ST_Project(ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, 50.5, 0)::geometry) AS lat51`,
      [place.lon, place.lat],
    );
    const outside = await t.reportOk({ category: 'DAMAGED_FURNITURE', location: { lon: place.lon, lat: rows[0].lat51 } }, await freshCitizen());
    assert.equal(outside.ticket.status, 'NEW');
    // The report 50.5 m north is itself an original now; 49.5 m north of the first is closer to the first.
    const inside = await t.reportOk({ category: 'DAMAGED_FURNITURE', location: { lon: place.lon, lat: rows[0].lat49 } }, await freshCitizen());
    assert.equal(inside.ticket.status, 'DUPLICATE');
  });

  it('gives exactly one original when identical reports arrive concurrently (random delays, cell boundaries)', async () => {
    const rounds: Place[][] = [];
    // Identical points.
    for (let r = 0; r < 3; r++) {
      const place = await t.spot('chalons');
      rounds.push(Array.from({ length: 8 }, () => place));
    }
    // Points up to 20 m around one centre (all within 40 m of each other), across lock-grid cell lines.
    for (let r = 0; r < 2; r++) {
      const centre = await t.spot('saintMartin');
      const line = { lon: Math.round(centre.lon / 0.0015) * 0.0015, lat: Math.round(centre.lat / 0.001) * 0.001 };
      rounds.push(Array.from({ length: 8 }, (_, i) => (i % 2 ? east(line, -10 + Math.random() * 20) : north(line, -10 + Math.random() * 20))));
    }
    for (const places of rounds) {
      const tokens = await Promise.all(places.map(() => freshCitizen()));
      const results = await Promise.all(
        places.map(async (place, i) => {
          await sleep(Math.random() * 15);
          return t.reportOk({ category: 'LIGHT_OUT', location: place }, tokens[i]);
        }),
      );
      const originals = results.filter((r) => r.ticket.status === 'NEW');
      assert.equal(originals.length, 1, `one original: ${JSON.stringify(results.map((r) => [r.ticket.id, r.ticket.status, r.ticket.duplicateOf]))}`);
      const id = originals[0].ticket.id;
      for (const r of results.filter((x) => x !== originals[0])) assert.deepEqual([r.ticket.status, r.ticket.duplicateOf], ['DUPLICATE', { id }]);
      const { rows } = await t.pool.query(`SELECT count(*)::int AS n FROM ticket_history WHERE ticket_id = $1 AND action = 'DUPLICATE_ATTACHED'`, [id]);
      assert.equal(rows[0].n, 7);
    }
  });

  it('skips the lookup with TICKETS_DUPLICATE_DETECTION=false', async () => {
    const off = withConfig(t.resources, { TICKETS_DUPLICATE_DETECTION: false });
    const place = await t.spot('fagnieres');
    const request: ReportRequest = { category: 'TAG', lon: place.lon, lat: place.lat, description: 'tag', source: 'APP' };
    const first = await createReport(off, request, { sub: 'citizen-nodup', roles: ['citizen'], address: '' });
    const second = await createReport(off, request, { sub: 'citizen-nodup2', roles: ['citizen'], address: '' });
    assert.deepEqual([first.ticket.status, second.ticket.status, second.duplicateOf], ['NEW', 'NEW', null]);
  });
});

describe('the linked asset', () => {
  it('links the nearest asset of the category’s kinds within its radius, none beyond it or for a category without kinds', async () => {
    const lamp = await t.pool.query<{ id: string; lon: number; lat: number }>(
      `SELECT id, ST_X(location) AS lon, ST_Y(location) AS lat FROM equipment e WHERE kind = 'LIGHT_POINT' AND status = 'IN_SERVICE' AND insee_code = '51504'
       AND NOT EXISTS (SELECT 1 FROM equipment o WHERE o.kind = 'LIGHT_POINT' AND o.id <> e.id AND o.decommissioned_at IS NULL
                       AND ST_DWithin(o.location::geography, e.location::geography, 25)) ORDER BY id DESC LIMIT 1`,
    );
    const target = lamp.rows[0];
    const operator = await t.token(['operator'], ['saint-martin-sur-le-pre']);
    const reported = await t.reportOk({ category: 'LIGHT_OUT', location: east(target, 5) }, await freshCitizen());
    const seen = await t.ok(`query($id: ID!) { ticket(id: $id) { equipment { id kind } } }`, { variables: { id: reported.ticket.id }, token: operator });
    assert.deepEqual(seen.ticket.equipment, { id: target.id, kind: 'LIGHT_POINT' }, 'resolved through the equipment subgraph');

    // A point with no lamp within 30 m (LIGHT_OUT's radius).
    const { rows } = await t.pool.query<{ lon: number; lat: number }>(
      `SELECT ST_X(p.geom) AS lon, ST_Y(p.geom) AS lat FROM commune c, LATERAL ST_Dump(ST_GeneratePoints(c.geom, 300, 7)) AS p
       WHERE c.insee_code = '51108' AND NOT EXISTS (SELECT 1 FROM equipment e WHERE e.kind = 'LIGHT_POINT' AND ST_DWithin(e.location::geography, p.geom::geography, 60))
       LIMIT 1`,
    );
    const dark = await t.reportOk({ category: 'LIGHT_OUT', location: rows[0] }, await freshCitizen());
    assert.equal(dark.ticket.equipment, null);
    const tag = await t.reportOk({ category: 'POTHOLE', location: east(target, 300) }, await freshCitizen());
    assert.equal(tag.ticket.equipment, null);
  });
});

describe('when a peer does not answer', () => {
  it('is SERVICE_UNAVAILABLE and writes nothing (territory stopped)', async () => {
    const territory = t.hub.subgraphs.territory;
    await territory.close();
    t.hub.subgraphs.territory = { ...territory, close: async () => {} };
    const before = await t.counts();
    const answer = await t.gql(`mutation($input: ReportInput!) { reportProblem(input: $input) { ticket { id } } }`, {
      variables: { input: { category: 'TAG', location: POINTS.chalons, description: 'tag' } },
      token: await freshCitizen(),
    });
    assert.equal(answer.errors?.[0]?.extensions?.code, 'SERVICE_UNAVAILABLE', JSON.stringify(answer));
    assert.match(answer.errors![0].message, /^cannot take the report now: the territory service did not answer/);
    assert.deepEqual(await t.counts(), before);
  });
});
