/**
 * Parking facilities through the gateway: the seeded tariffs and hours, `updateParkingFacilityInfo`
 * for every role × collectivity, its validation against hostile input (each error naming the field),
 * `isOpen` in Europe/Paris across both summer-time changes, and `parkingFacilities` with every
 * filter and its pages.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { COLLECTIVITY_IDS, ROLES, type Role } from '@connecte/shared/auth';
import { createTestDatabase, gql, startHub, tokenFor, type Hub, type TestDatabase } from '@connecte/testkit';
import { mobilityResourcesFor } from '../src/context.js';
import { isOpenAt, parisDayAndMinute, validateOpeningHours, validateTariffs } from '../src/parking-service.js';
import type { MobilityResources } from '../src/resources.js';
import type { AssetRow } from '../src/types.js';
import { buildSeedPlan } from '../../../prisma/seed/index.js';
import { buildParkingInfo } from '../../../prisma/seed/parking.js';

const UPDATE = `mutation U($id: ID!, $input: ParkingFacilityInfoInput!) {
  updateParkingFacilityInfo(id: $id, input: $input) { id freeMinutes openingHours { days opens closes } tariffs { label upToMinutes priceEur } } }`;
const INFO = `query F($id: ID!) { parkingFacility(id: $id) { freeMinutes openingHours { days opens closes } tariffs { label upToMinutes priceEur } } }`;
const LIST = `query L($filter: ParkingFacilityFilter, $first: Int, $after: String) { parkingFacilities(filter: $filter, first: $first, after: $after) {
  totalCount edges { cursor node { id name type capacity freeSpaces } } pageInfo { hasNextPage hasPreviousPage endCursor } } }`;

let database: TestDatabase;
let hub: Hub;
let r: MobilityResources;
let facilities: AssetRow[];
let operator: string;
let byName: (name: string) => AssetRow;

const EVERY_DAY = [1, 2, 3, 4, 5, 6, 7];
const valid = {
  openingHours: [{ days: [1, 2, 3, 4, 5], opens: '07:00', closes: '20:00' }],
  tariffs: [
    { label: '1 heure', upToMinutes: 60, priceEur: 1.5 },
    { label: 'Journée', upToMinutes: null, priceEur: 9.9 },
  ],
  freeMinutes: 15,
};

async function update(id: string, input: unknown, token = operator) {
  return gql<any>(hub.gatewayUrl, UPDATE, { token, variables: { id, input } });
}
async function info(id: string) {
  const answer = await gql<any>(hub.gatewayUrl, INFO, { variables: { id } });
  assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
  return answer.data.parkingFacility;
}
async function list(variables: Record<string, unknown>) {
  const answer = await gql<any>(hub.gatewayUrl, LIST, { variables });
  assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
  return answer.data.parkingFacilities;
}

before(async () => {
  database = await createTestDatabase();
  hub = await startHub(database.url, {}, { subgraphs: ['territory', 'equipment', 'mobility'] });
  r = mobilityResourcesFor(hub.subgraphs.mobility.db);
  await r.directory.caughtUp();
  facilities = await r.directory.ofKind('PARKING_FACILITY');
  byName = (name) => facilities.find((f) => f.details.name === name)!;
  operator = await tokenFor(hub.config, ['operator'], ['chalons']);
});

after(async () => {
  await hub?.close();
  await database?.drop();
});

describe('seeded tariffs and hours', () => {
  it('prisma/seed/parking.ts: one row per seeded facility, each valid by the rules of updateParkingFacilityInfo', () => {
    const rows = buildParkingInfo(buildSeedPlan().equipment);
    assert.equal(rows.length, 8);
    for (const row of rows) {
      assert.deepEqual(validateOpeningHours(row.openingHours), row.openingHours, row.equipmentId);
      assert.deepEqual(validateTariffs(row.tariffs), row.tariffs, row.equipmentId);
      assert.ok(Number.isInteger(row.freeMinutes) && row.freeMinutes >= 0 && row.freeMinutes <= 1440);
    }
  });

  it('each of the 8 facilities has them (prisma/seed/parking.ts), prices by ascending stay', async () => {
    assert.equal(facilities.length, 8);
    for (const facility of facilities) {
      const f = await info(facility.equipmentId);
      assert.ok(f.tariffs.length > 0, `${facility.details.name} has prices`);
      const bounded = f.tariffs.filter((t: any) => t.upToMinutes !== null).map((t: any) => t.upToMinutes);
      assert.deepEqual(bounded, [...bounded].sort((a, b) => a - b));
    }
    const townHall = await info(byName('Parking Hôtel de Ville').equipmentId);
    assert.equal(townHall.freeMinutes, 30);
    assert.deepEqual(townHall.openingHours, [
      { days: [1, 2, 3, 4, 5, 6], opens: '06:30', closes: '24:00' },
      { days: [7], opens: '08:00', closes: '21:00' },
    ]);
    assert.deepEqual(townHall.tariffs[0], { label: '1 heure', upToMinutes: 60, priceEur: 1.7 });
  });
});

describe('updateParkingFacilityInfo: who may', () => {
  it('operator and admin of the facility’s collectivity only; every other role × collectivity is FORBIDDEN, the public UNAUTHENTICATED', async () => {
    const target = byName('Parking Tissier').equipmentId;
    const before = await info(target);
    for (const role of ROLES) {
      for (const collectivity of COLLECTIVITY_IDS) {
        const token = await tokenFor(hub.config, [role as Role], [collectivity]);
        const answer = await update(target, { freeMinutes: 10 }, token);
        const allowed = (role === 'operator' || role === 'admin') && collectivity === 'chalons';
        if (allowed) {
          assert.equal(answer.errors, undefined, `${role}@${collectivity}: ${JSON.stringify(answer.errors)}`);
          assert.equal(answer.data.updateParkingFacilityInfo.freeMinutes, 10);
        } else {
          assert.equal(answer.errors?.[0]?.extensions?.code, 'FORBIDDEN', `${role}@${collectivity}: ${JSON.stringify(answer.errors)}`);
          assert.equal(answer.errors[0].extensions.field, 'id');
          assert.match(answer.errors[0].message, /needs role operator or admin in collectivity 'chalons'/);
        }
      }
    }
    const several = await tokenFor(hub.config, ['agent', 'operator'], ['fagnieres', 'chalons']);
    assert.equal((await update(target, { freeMinutes: 20 }, several)).errors, undefined, 'operator among several roles and collectivities');
    const publicAnswer = await gql<any>(hub.gatewayUrl, UPDATE, { variables: { id: target, input: { freeMinutes: 0 } } });
    assert.equal(publicAnswer.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    const after = await info(target);
    assert.equal(after.freeMinutes, 20);
    assert.deepEqual([after.tariffs, after.openingHours], [before.tariffs, before.openingHours], 'only freeMinutes was given');
  });

  it('an id that is not a parking facility is NOT_FOUND, naming id', async () => {
    for (const id of ['pf-chalons-99999', 'lp-chalons-00001', 'x'.repeat(5000)]) {
      const answer = await update(id, { freeMinutes: 1 });
      assert.equal(answer.errors?.[0]?.extensions?.code, 'NOT_FOUND', id.slice(0, 40));
      assert.equal(answer.errors[0].extensions.field, 'id');
      assert.ok(answer.errors[0].message.length < 200, 'the message quotes a bounded id');
    }
  });
});

describe('updateParkingFacilityInfo: validation', () => {
  const target = () => byName('Parking du Jard').equipmentId;
  const hours = (entry: Record<string, unknown>) => ({ openingHours: [{ days: [1], opens: '08:00', closes: '18:00', ...entry }] });
  const tariffs = (...list: unknown[]) => ({ tariffs: list });
  const price = (upToMinutes: number | null, priceEur: number, label = 'x') => ({ label, upToMinutes, priceEur });

  const cases: [string, unknown, string, RegExp][] = [
    ['nothing to change', {}, 'input', /changes nothing/],
    ['null hours', { openingHours: null }, 'input.openingHours', /must not be null/],
    ['null tariffs', { tariffs: null }, 'input.tariffs', /must not be null/],
    ['opens without a leading zero', hours({ opens: '7:00' }), 'input.openingHours.0.opens', /HH:MM/],
    ['opens at 24:00', hours({ opens: '24:00' }), 'input.openingHours.0.opens', /HH:MM/],
    ['closes at 25:00', hours({ closes: '25:00' }), 'input.openingHours.0.closes', /HH:MM/],
    ['closes at 12:60', hours({ closes: '12:60' }), 'input.openingHours.0.closes', /HH:MM/],
    ['closes with seconds', hours({ closes: '12:00:00' }), 'input.openingHours.0.closes', /HH:MM/],
    ['closes "NaN"', hours({ closes: 'NaN' }), 'input.openingHours.0.closes', /not "NaN"/],
    ['closes with a trailing line break', hours({ closes: '18:00\n' }), 'input.openingHours.0.closes', /HH:MM/],
    ['closes before it opens', hours({ opens: '18:00', closes: '08:00' }), 'input.openingHours.0.closes', /must be after opens \(18:00\)/],
    ['closes when it opens', hours({ opens: '08:00', closes: '08:00' }), 'input.openingHours.0.closes', /must be after opens/],
    ['no day', hours({ days: [] }), 'input.openingHours.0.days', /at least one day/],
    ['day 0', hours({ days: [0] }), 'input.openingHours.0.days.0', /1 \(Monday\) to 7 \(Sunday\), not 0/],
    ['day 8', hours({ days: [1, 8] }), 'input.openingHours.0.days.1', /not 8/],
    ['a day twice in an entry', hours({ days: [3, 3] }), 'input.openingHours.0.days.1', /day 3 is already given in this entry/],
    [
      'a day in two entries',
      { openingHours: [{ days: [1, 2], opens: '08:00', closes: '12:00' }, { days: [2], opens: '14:00', closes: '18:00' }] },
      'input.openingHours.1.days.0',
      /day 2 is already given in input\.openingHours\.0/,
    ],
    ['a huge list of days', hours({ days: Array.from({ length: 100_000 }, () => 1) }), 'input.openingHours.0.days', /100000 days, at most 7/],
    ['eight entries', { openingHours: Array.from({ length: 8 }, (_, i) => ({ days: [(i % 7) + 1], opens: '08:00', closes: '09:00' })) }, 'input.openingHours', /8 entries, at most 7/],
    ['a huge list of entries', { openingHours: Array.from({ length: 20_000 }, () => ({ days: [1], opens: '08:00', closes: '09:00' })) }, 'input.openingHours', /20000 entries/],
    ['durations not ascending', tariffs(price(60, 1), price(60, 2)), 'input.tariffs.1.upToMinutes', /greater than the previous price's \(60\)/],
    ['durations descending', tariffs(price(120, 1), price(60, 2)), 'input.tariffs.1.upToMinutes', /ascending/],
    ['zero minutes', tariffs(price(0, 1)), 'input.tariffs.0.upToMinutes', /from 1 to 10,080/],
    ['more than a week', tariffs(price(10_081, 1)), 'input.tariffs.0.upToMinutes', /not 10081/],
    ['open-ended not last', tariffs(price(null, 5), price(60, 1)), 'input.tariffs.0.upToMinutes', /only the last/],
    ['two open-ended', tariffs(price(60, 1), price(null, 5), price(null, 6)), 'input.tariffs.1.upToMinutes', /only the last/],
    ['a negative price', tariffs(price(30, 1), price(60, 2), price(90, -0.5)), 'input.tariffs.2.priceEur', /from 0 to 1,000 euros, not -0.5/],
    ['three decimals', tariffs(price(30, 1.234)), 'input.tariffs.0.priceEur', /at most two decimals/],
    ['a tiny fraction', tariffs(price(30, 1e-7)), 'input.tariffs.0.priceEur', /at most two decimals/],
    ['over 1,000 euros', tariffs(price(30, 1000.01)), 'input.tariffs.0.priceEur', /not 1000.01/],
    ['an empty label', tariffs(price(30, 1, '')), 'input.tariffs.0.label', /non-empty/],
    ['a blank label', tariffs(price(30, 1, '   ')), 'input.tariffs.0.label', /non-empty/],
    ['a long label', tariffs(price(30, 1, 'é'.repeat(61))), 'input.tariffs.0.label', /61 characters, at most 60/],
    ['a label with a line break', tariffs(price(30, 1, 'a\nb')), 'input.tariffs.0.label', /control characters/],
    // (50,000 prices do not reach the resolver: the body is over MAX_BODY_BYTES, 413.)
    ['a huge list of prices', { tariffs: Array.from({ length: 10_000 }, (_, i) => price(i + 1, 1)) }, 'input.tariffs', /10000 prices, at most 20/],
    ['negative free minutes', { freeMinutes: -1 }, 'input.freeMinutes', /from 0 to 1,440/],
    ['more than a day free', { freeMinutes: 1441 }, 'input.freeMinutes', /not 1441/],
  ];

  for (const [what, input, field, message] of cases) {
    it(`${what}: BAD_USER_INPUT on ${field}`, async () => {
      const answer = await update(target(), input);
      assert.equal(answer.errors?.length, 1, JSON.stringify(answer.errors)?.slice(0, 500));
      const [error] = answer.errors!;
      assert.deepEqual([error.extensions?.code, error.extensions?.field], ['BAD_USER_INPUT', field], error.message);
      assert.match(error.message, message);
      assert.ok(error.message.length < 300, 'a bounded message');
    });
  }

  it('values GraphQL itself refuses (1e309, a fraction for an Int, NUL bytes) are refused before execution, naming the field', async () => {
    const id = target();
    const raw = async (variablesJson: string) => {
      const response = await fetch(hub.gatewayUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${operator}` },
        body: `{"query": ${JSON.stringify(UPDATE)}, "variables": {"id": ${JSON.stringify(id)}, "input": ${variablesJson}}}`,
      });
      return { status: response.status, body: (await response.json()) as any };
    };
    for (const [json, field] of [
      ['{"tariffs": [{"label": "x", "upToMinutes": 60, "priceEur": 1e309}]}', 'input.tariffs.0.priceEur'],
      ['{"openingHours": [{"days": [1e309], "opens": "08:00", "closes": "09:00"}]}', 'input.openingHours.0.days.0'],
      ['{"openingHours": [{"days": [1.5], "opens": "08:00", "closes": "09:00"}]}', 'input.openingHours.0.days.0'],
      ['{"freeMinutes": 1e309}', 'input.freeMinutes'],
      ['{"openingHours": [{"days": [1], "opens": "08:00\\u0000", "closes": "09:00"}]}', 'input.openingHours.0.opens'],
      ['{"tariffs": [{"label": "a\\u0000b", "upToMinutes": 60, "priceEur": 1}]}', 'input.tariffs.0.label'],
    ]) {
      const { status, body } = await raw(json);
      assert.equal(status, 400, json);
      assert.equal(body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', `${json}: ${JSON.stringify(body.errors)}`);
      assert.equal(body.errors[0].extensions.field, field, `${json}: ${body.errors[0].message}`);
    }
    // In the query text: NaN is not GraphQL, 1e309 is not an Int.
    for (const text of [`days: [NaN]`, `days: [1e309]`]) {
      const query = `mutation { updateParkingFacilityInfo(id: "${id}", input: { openingHours: [{ ${text}, opens: "08:00", closes: "09:00" }] }) { id } }`;
      const answer = await gql<any>(hub.gatewayUrl, query, { token: operator });
      assert.ok(answer.errors?.length, text);
      assert.notEqual(answer.errors[0].extensions?.code, 'INTERNAL_SERVER_ERROR', text);
    }
  });

  it('a refused update changes nothing; a valid one is stored normalised, omitted fields kept', async () => {
    const id = target();
    const before = await info(id);
    await update(id, { ...valid, tariffs: [price(30, 1), price(60, -1)] });
    assert.deepEqual(await info(id), before, 'nothing of a refused update is written');
    const answer = await update(id, { ...valid, openingHours: [{ days: [5, 1, 3], opens: '07:00', closes: '24:00' }] });
    assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    assert.deepEqual(answer.data.updateParkingFacilityInfo.openingHours, [{ days: [1, 3, 5], opens: '07:00', closes: '24:00' }]);
    assert.deepEqual(answer.data.updateParkingFacilityInfo.tariffs, valid.tariffs);
    const partial = await update(id, { tariffs: [] });
    assert.deepEqual(partial.data.updateParkingFacilityInfo.tariffs, [], 'an empty list: free');
    assert.deepEqual(partial.data.updateParkingFacilityInfo.openingHours, [{ days: [1, 3, 5], opens: '07:00', closes: '24:00' }], 'hours kept');
    assert.equal(partial.data.updateParkingFacilityInfo.freeMinutes, 15);
    const stored = await hub.subgraphs.mobility.db.pool.query('SELECT updated_by FROM parking_facility_info WHERE equipment_id = $1', [id]);
    assert.match(stored.rows[0].updated_by, /.+/);
  });
});

describe('isOpen (Europe/Paris)', () => {
  const hours = [{ days: EVERY_DAY, opens: '07:00', closes: '20:00' }];
  const at = (iso: string) => isOpenAt(hours, new Date(iso));

  it('Paris time on both sides of the spring change (2027-03-28, 02:00 → 03:00)', () => {
    assert.equal(at('2027-03-27T05:30:00Z'), false, '06:30 CET on Saturday');
    assert.equal(at('2027-03-27T06:30:00Z'), true, '07:30 CET');
    assert.equal(at('2027-03-28T05:30:00Z'), true, '07:30 CEST on Sunday (06:30 in winter time)');
    assert.equal(at('2027-03-28T17:59:00Z'), true, '19:59 CEST');
    assert.equal(at('2027-03-28T18:00:00Z'), false, '20:00 CEST: closes is exclusive (19:00 in winter time)');
    assert.deepEqual(parisDayAndMinute(new Date('2027-03-28T00:59:00Z')), { day: 7, minute: 119 }, '01:59 CET');
    assert.deepEqual(parisDayAndMinute(new Date('2027-03-28T01:00:00Z')), { day: 7, minute: 180 }, '03:00 CEST: 02:xx never happens');
    const night = [{ days: [7], opens: '02:00', closes: '03:00' }];
    assert.equal(isOpenAt(night, new Date('2027-03-28T00:59:00Z')), false);
    assert.equal(isOpenAt(night, new Date('2027-03-28T01:00:00Z')), false, 'an hour that does not exist that day is never open');
  });

  it('Paris time on both sides of the autumn change (2026-10-25, 03:00 → 02:00)', () => {
    assert.equal(at('2026-10-24T05:30:00Z'), true, '07:30 CEST on Saturday');
    assert.equal(at('2026-10-25T05:30:00Z'), false, '06:30 CET on Sunday');
    assert.equal(at('2026-10-25T06:00:00Z'), true, '07:00 CET: opens is inclusive');
    assert.equal(at('2026-10-25T18:59:00Z'), true, '19:59 CET');
    const night = [{ days: [7], opens: '02:00', closes: '03:00' }];
    assert.equal(isOpenAt(night, new Date('2026-10-25T00:30:00Z')), true, 'the first 02:30 (CEST)');
    assert.equal(isOpenAt(night, new Date('2026-10-25T01:30:00Z')), true, 'the second 02:30 (CET)');
  });

  it('days are ISO, in Paris: Sunday 23:30 in Paris is Monday in no time zone that matters; 24:00 closes at midnight', () => {
    const sundayLate = [{ days: [7], opens: '20:00', closes: '24:00' }];
    assert.equal(isOpenAt(sundayLate, new Date('2026-12-06T22:30:00Z')), true, 'Sunday 23:30 CET (22:30 UTC)');
    assert.equal(isOpenAt(sundayLate, new Date('2026-12-06T23:00:00Z')), false, 'Monday 00:00 CET');
    assert.equal(isOpenAt([], new Date('2026-12-06T03:00:00Z')), true, 'no hours: always open');
    assert.deepEqual(validateOpeningHours([{ days: [7], opens: '00:00', closes: '24:00' }]), [{ days: [7], opens: '00:00', closes: '24:00' }]);
    assert.deepEqual(validateTariffs([{ label: ' Heure ', upToMinutes: 60, priceEur: 0.1 + 0.2 }]), [{ label: 'Heure', upToMinutes: 60, priceEur: 0.3 }], '0.1 + 0.2 is 30 cents');
  });

  it('through GraphQL, at any instant given (default now)', async () => {
    const id = byName('Parking de la Gare').equipmentId;
    assert.equal((await update(id, { openingHours: hours })).errors, undefined);
    const answer = await gql<any>(
      hub.gatewayUrl,
      `query { parkingFacility(id: "${id}") { winter: isOpen(at: "2027-03-27T06:30:00Z") summer: isOpen(at: "2027-03-28T05:30:00Z") late: isOpen(at: "2027-03-28T18:30:00Z") now: isOpen } }`,
    );
    assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    assert.deepEqual({ ...answer.data.parkingFacility, now: undefined }, { winter: true, summer: true, late: false, now: undefined });
    assert.equal(typeof answer.data.parkingFacility.now, 'boolean');
  });
});

describe('parkingFacilities', () => {
  it('every facility by name, with pages (first, after, totalCount)', async () => {
    const all = await list({});
    assert.equal(all.totalCount, 8);
    const names = all.edges.map((e: any) => e.node.name);
    assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b, 'fr')));
    const first = await list({ first: 3 });
    assert.deepEqual([first.edges.length, first.pageInfo.hasNextPage, first.pageInfo.hasPreviousPage, first.totalCount], [3, true, false, 8]);
    const second = await list({ first: 3, after: first.pageInfo.endCursor });
    const third = await list({ first: 3, after: second.pageInfo.endCursor });
    assert.deepEqual(
      [...first.edges, ...second.edges, ...third.edges].map((e: any) => e.node.id),
      all.edges.map((e: any) => e.node.id),
    );
    assert.equal(third.pageInfo.hasNextPage, false);
    const bad = await gql<any>(hub.gatewayUrl, LIST, { variables: { after: 'nope' } });
    assert.deepEqual([bad.errors?.[0]?.extensions?.code, bad.errors?.[0]?.extensions?.field], ['BAD_USER_INPUT', 'after']);
    const tooMany = await gql<any>(hub.gatewayUrl, LIST, { variables: { first: 1001 } });
    assert.equal(tooMany.errors?.[0]?.extensions?.field, 'first');
  });

  it('ids, collectivityIds and types', async () => {
    const townHall = byName('Parking Hôtel de Ville').equipmentId;
    assert.deepEqual((await list({ filter: { ids: [townHall, 'lp-chalons-00001'] } })).edges.map((e: any) => e.node.id), [townHall]);
    assert.equal((await list({ filter: { collectivityIds: ['fagnieres'] } })).totalCount, 0);
    assert.equal((await list({ filter: { collectivityIds: ['chalons'] } })).totalCount, 8);
    const onStreet = await list({ filter: { types: ['ON_STREET'] } });
    assert.deepEqual([onStreet.totalCount, onStreet.edges.every((e: any) => e.node.type === 'ON_STREET' && e.node.capacity === 48)], [2, true]);
    assert.equal((await list({ filter: { types: ['UNDERGROUND'] } })).totalCount, 2);
    for (const [filter, field] of [
      [{ ids: [] }, 'filter.ids'],
      [{ collectivityIds: [] }, 'filter.collectivityIds'],
      [{ types: [] }, 'filter.types'],
      [{ minFreeSpaces: -1 }, 'filter.minFreeSpaces'],
      [{ near: { lon: 4.36, lat: 200, radiusMeters: 100 } }, 'filter.near.lat'],
      [{ near: { lon: 4.36, lat: 48.95, radiusMeters: 0 } }, 'filter.near.radiusMeters'],
    ] as const) {
      const answer = await gql<any>(hub.gatewayUrl, LIST, { variables: { filter } });
      assert.deepEqual([answer.errors?.[0]?.extensions?.code, answer.errors?.[0]?.extensions?.field], ['BAD_USER_INPUT', field], JSON.stringify(filter));
    }
  });

  it('near: within the circle, nearest first, with its own cursors', async () => {
    const station = byName('Parking de la Gare');
    const [lon, lat] = station.location!;
    const near = await list({ filter: { near: { lon, lat, radiusMeters: 800 } } });
    assert.equal(near.edges[0].node.id, station.equipmentId, 'the nearest first');
    assert.ok(near.totalCount >= 1 && near.totalCount < 8, `${near.totalCount} within 800 m`);
    const page = await list({ filter: { near: { lon, lat, radiusMeters: 5_000 } }, first: 2 });
    const next = await list({ filter: { near: { lon, lat, radiusMeters: 5_000 } }, first: 10, after: page.pageInfo.endCursor });
    assert.equal(page.edges.length + next.edges.length, 8);
    const byNameCursor = (await list({ first: 1 })).pageInfo.endCursor;
    const mixed = await gql<any>(hub.gatewayUrl, LIST, { variables: { filter: { near: { lon, lat, radiusMeters: 5_000 } }, after: byNameCursor } });
    assert.equal(mixed.errors?.[0]?.extensions?.field, 'after', 'a cursor of the listing by name');
  });

  it('minFreeSpaces (counts that can be believed now) and openNow', async () => {
    const counted = byName('Parking de la République');
    const stale = byName('Parking du Marché couvert');
    const now = Date.now();
    await r.inTransaction((client) =>
      r.parking.apply(
        client,
        [
          { equipmentId: counted.equipmentId, kind: 'PARKING_FACILITY', metric: 'occupancy', time: new Date(now - 60_000), value: 150 },
          { equipmentId: stale.equipmentId, kind: 'PARKING_FACILITY', metric: 'occupancy', time: new Date(now - 3_600_000), value: 0 },
        ],
        'chalons',
      ),
    );
    const capacity = counted.details.capacity as number;
    const enough = await list({ filter: { minFreeSpaces: capacity - 150 } });
    assert.deepEqual(enough.edges.map((e: any) => [e.node.id, e.node.freeSpaces]), [[counted.equipmentId, capacity - 150]], 'never reported and stale ones left out');
    assert.equal((await list({ filter: { minFreeSpaces: capacity - 149 } })).totalCount, 0);
    // Open now: a facility open only on a day that is not today (Paris) is closed now.
    const { day } = parisDayAndMinute(new Date());
    const closed = byName('Parking Tissier').equipmentId;
    assert.equal((await update(closed, { openingHours: [{ days: [(day % 7) + 1], opens: '00:00', closes: '24:00' }] })).errors, undefined);
    const open = await list({ filter: { openNow: true } });
    const shut = await list({ filter: { openNow: false } });
    assert.ok(!open.edges.some((e: any) => e.node.id === closed));
    assert.ok(shut.edges.some((e: any) => e.node.id === closed));
    assert.equal(open.totalCount + shut.totalCount, 8);
  });

  it('Equipment.parkingFacility: the facility for a PARKING_FACILITY asset, null for another kind', async () => {
    const id = byName('Parking du Jard').equipmentId;
    const answer = await gql<any>(
      hub.gatewayUrl,
      `query { a: equipment(id: "${id}") { id parkingFacility { id name capacity } } b: equipment(id: "lp-chalons-00001") { parkingFacility { id } } }`,
    );
    assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    assert.deepEqual(answer.data.a.parkingFacility, { id, name: 'Parking du Jard', capacity: 260 });
    assert.equal(answer.data.b?.parkingFacility ?? null, null);
  });
});
