/**
 * Energy, savings and CO2 per collectivity through GraphQL, against figures worked out by hand for
 * a few assets whose readings go through the real ingest path (so the daily roll-ups are the
 * ingest's own): Europe/Paris days across a daylight-saving change and a month boundary, a counter
 * reset mid-day and between days, an asset silent for a day, an asset without a baseline, the
 * contract's target pro rata; and bad arguments refused naming the field.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { COLLECTIVITY_IDS } from '@connecte/shared/auth';
import { gql, startHub, startService, type TestService } from '@connecte/testkit';
import { buildEnergyBaselines, buildSeedPlan } from '../../../prisma/seed/index.js';
import { telemetryResourcesFor } from '../src/context.js';
import type { IngestMessage } from '../src/types.js';

const PRICE = 0.25;
const CO2 = 0.05;
const TARGET = 17_000_000;

// ---- Days and instants in Europe/Paris --------------------------------------------------------

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const dayMs = (day: string) => Date.parse(`${day}T00:00:00Z`);
const addDays = (day: string, n: number) => isoDay(dayMs(day) + n * DAY_MS);
const daysBetween = (from: string, to: string) => Math.round((dayMs(to) - dayMs(from)) / DAY_MS);
const daysInYear = (day: string) => (Number(day.slice(0, 4)) % 4 === 0 ? 366 : 365);

const paris = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Europe/Paris',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  hourCycle: 'h23',
});
const parisWallClock = (ms: number) => {
  const part = Object.fromEntries(paris.formatToParts(new Date(ms)).map((p) => [p.type, p.value]));
  return { day: `${part.year}-${part.month}-${part.day}`, hour: Number(part.hour), minute: Number(part.minute) };
};
/** The instant Paris clocks show `hour:minute` on `day` (never 02:xx on the night clocks change). */
function parisTime(day: string, hour: number, minute = 0): number {
  for (const offset of [1, 2]) {
    const ms = dayMs(day) + (hour - offset) * 3_600_000 + minute * 60_000;
    const shown = parisWallClock(ms);
    if (shown.day === day && shown.hour === hour && shown.minute === minute) return ms;
  }
  throw new Error(`no instant shows ${hour}:${minute} on ${day} in Paris`);
}
/** Hours in the Paris day `day`: 23 when clocks go forward, 25 when they go back. */
const parisDayHours = (day: string) => (parisTime(addDays(day, 1), 0) - parisTime(day, 0)) / 3_600_000;

/**
 * The most recent day clocks changed in Paris (last Sunday of March or October) whose month and
 * the next month's first day are over, so that every reading below is in the past and well within
 * the retention, whatever day the test runs.
 */
function recentClockChange(now: number): string {
  const year = new Date(now).getUTCFullYear();
  const candidates: string[] = [];
  for (const y of [year - 1, year]) {
    for (const month of [2, 9]) {
      const last = new Date(Date.UTC(y, month + 1, 0));
      candidates.push(isoDay(last.getTime() - last.getUTCDay() * DAY_MS));
    }
  }
  const today = isoDay(now);
  const usable = candidates.filter((d) => daysBetween(endOfMonth(d), today) >= 3).sort();
  return usable[usable.length - 1];
}
function endOfMonth(day: string): string {
  const [y, m] = day.split('-').map(Number);
  return isoDay(Date.UTC(y, m, 0));
}

// ---- The scenario -----------------------------------------------------------------------------

const D = recentClockChange(Date.now()); // the clock-change Sunday
const BEFORE = addDays(D, -1);
const AFTER = addDays(D, 1);
const MONTH_END = endOfMonth(D);
const NEXT_MONTH = addDays(MONTH_END, 1);
const HOURS_D = parisDayHours(D);
const YEAR_DAYS = daysInYear(D);

const LP1 = 'lp-chalons-00001'; // reports every day, twice: 00:30 and 23:30
const LP2 = 'lp-chalons-00002'; // its baseline is deleted: counts in consumption only
const LP4 = 'lp-chalons-00003'; // silent on the clock-change day
const EM1 = 'em-chalons-00001'; // hourly, across the clock change
const LP3 = 'lp-fagnieres-00001'; // its counter resets mid-day, then again overnight

interface Reading {
  equipmentId: string;
  collectivityId: string;
  time: number;
  wh: number;
}
const readings: Reading[] = [];
const add = (equipmentId: string, collectivityId: string, time: number, wh: number) => readings.push({ equipmentId, collectivityId, time, wh });

// LP1: 1,000 + 500 a day; 450 Wh between 00:30 and 23:30, 50 Wh overnight. The 00:30 reading is
// still the previous day in UTC: a roll-up by UTC day would move 50 Wh a day, and across the month.
const lp1Days: string[] = [];
for (let day = BEFORE, i = 0; day <= NEXT_MONTH; day = addDays(day, 1), i++) {
  lp1Days.push(day);
  add(LP1, 'chalons', parisTime(day, 0, 30), 1000 + 500 * i);
  add(LP1, 'chalons', parisTime(day, 23, 30), 1000 + 500 * i + 450);
}
add(LP2, 'chalons', parisTime(AFTER, 0, 30), 200);
add(LP2, 'chalons', parisTime(AFTER, 23, 30), 260);
add(LP4, 'chalons', parisTime(BEFORE, 0, 30), 1000);
add(LP4, 'chalons', parisTime(BEFORE, 23, 30), 1100);
add(LP4, 'chalons', parisTime(AFTER, 0, 30), 1150);
add(LP4, 'chalons', parisTime(AFTER, 23, 30), 1200);
// EM1: 1 kWh an hour, on the hour, from 00:00 the day before to 23:00 the day after.
for (let t = parisTime(BEFORE, 0), k = 0; t <= parisTime(AFTER, 23); t += 3_600_000, k++) add(EM1, 'chalons', t, 5_000_000 + 1000 * k);
add(LP3, 'fagnieres', parisTime(BEFORE, 0, 30), 5000);
add(LP3, 'fagnieres', parisTime(BEFORE, 23, 30), 5300);
add(LP3, 'fagnieres', parisTime(D, 0, 30), 5320);
add(LP3, 'fagnieres', parisTime(D, 12, 0), 5400);
add(LP3, 'fagnieres', parisTime(D, 12, 10), 10); // replaced: the new counter starts near 0
add(LP3, 'fagnieres', parisTime(D, 23, 30), 110);
add(LP3, 'fagnieres', parisTime(AFTER, 0, 30), 5); // reset again before the next day's first reading
add(LP3, 'fagnieres', parisTime(AFTER, 23, 30), 65);

/**
 * What each asset consumed each Paris day, by hand (kWh), and how many days of its baseline that
 * day carries (the days since its previous reading day).
 */
const consumed: { equipmentId: string; collectivityId: string; kind: 'LIGHT_POINT' | 'ENERGY_METER'; day: string; kwh: number; baselineDays: number }[] = [
  ...lp1Days.map((day, i) => ({ equipmentId: LP1, collectivityId: 'chalons', kind: 'LIGHT_POINT' as const, day, kwh: i === 0 ? 0.45 : 0.5, baselineDays: 1 })),
  { equipmentId: LP2, collectivityId: 'chalons', kind: 'LIGHT_POINT', day: AFTER, kwh: 0.06, baselineDays: 1 },
  { equipmentId: LP4, collectivityId: 'chalons', kind: 'LIGHT_POINT', day: BEFORE, kwh: 0.1, baselineDays: 1 },
  { equipmentId: LP4, collectivityId: 'chalons', kind: 'LIGHT_POINT', day: AFTER, kwh: 0.1, baselineDays: 2 },
  { equipmentId: EM1, collectivityId: 'chalons', kind: 'ENERGY_METER', day: BEFORE, kwh: 23, baselineDays: 1 },
  { equipmentId: EM1, collectivityId: 'chalons', kind: 'ENERGY_METER', day: D, kwh: HOURS_D, baselineDays: 1 },
  { equipmentId: EM1, collectivityId: 'chalons', kind: 'ENERGY_METER', day: AFTER, kwh: 24, baselineDays: 1 },
  { equipmentId: LP3, collectivityId: 'fagnieres', kind: 'LIGHT_POINT', day: BEFORE, kwh: 0.3, baselineDays: 1 },
  // (5,400 − 5,300) before the replacement + (110 − 10) after it
  { equipmentId: LP3, collectivityId: 'fagnieres', kind: 'LIGHT_POINT', day: D, kwh: 0.2, baselineDays: 1 },
  // the overnight reset: only what the new counter rose during the day
  { equipmentId: LP3, collectivityId: 'fagnieres', kind: 'LIGHT_POINT', day: AFTER, kwh: 0.06, baselineDays: 1 },
];

const seededBaselines = buildEnergyBaselines(buildSeedPlan().equipment.rows).filter((b) => b.equipmentId !== LP2);
const baselineOf = new Map(seededBaselines.map((b) => [b.equipmentId, b.kwhPerYear]));

interface Figures {
  consumedKwh: number;
  lightingKwh: number;
  buildingsKwh: number;
  baselineKwh: number;
  savedKwh: number;
  savedEuros: number;
  co2AvoidedKg: number;
  reportingAssets: number;
}

/** The figures of one collectivity over [first, last], from the hand table. */
function expected(collectivityId: string, first: string, last: string): Figures {
  const rows = consumed.filter((c) => c.collectivityId === collectivityId && c.day >= first && c.day <= last);
  const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
  const withBaseline = rows.filter((c) => baselineOf.has(c.equipmentId));
  const baselineKwh = sum(withBaseline.map((c) => (baselineOf.get(c.equipmentId)! * c.baselineDays) / YEAR_DAYS));
  const savedKwh = baselineKwh - sum(withBaseline.map((c) => c.kwh));
  return {
    consumedKwh: sum(rows.map((c) => c.kwh)),
    lightingKwh: sum(rows.filter((c) => c.kind === 'LIGHT_POINT').map((c) => c.kwh)),
    buildingsKwh: sum(rows.filter((c) => c.kind === 'ENERGY_METER').map((c) => c.kwh)),
    baselineKwh,
    savedKwh,
    savedEuros: savedKwh * PRICE,
    co2AvoidedKg: savedKwh * CO2,
    reportingAssets: new Set(rows.map((c) => c.equipmentId)).size,
  };
}

function assertFigures(actual: Figures, wanted: Figures, label: string) {
  for (const key of Object.keys(wanted) as (keyof Figures)[]) {
    const tolerance = key === 'reportingAssets' ? 0 : key === 'savedEuros' ? 0.006 : 0.0006;
    assert.ok(Math.abs(actual[key] - wanted[key]) <= tolerance, `${label}: ${key} is ${actual[key]}, expected ${wanted[key]}`);
  }
}

// ---- The service ------------------------------------------------------------------------------

const CONTRACT_START = `${D.slice(0, 4)}-01-01`;
const CONTRACT_YEARS = 5;
const TERM_DAYS = daysBetween(CONTRACT_START, `${Number(D.slice(0, 4)) + CONTRACT_YEARS}-01-01`);

const FIGURES = 'consumedKwh lightingKwh buildingsKwh baselineKwh savedKwh savedEuros co2AvoidedKg reportingAssets';
const ENERGY = `query Energy($from: Date!, $to: Date!, $granularity: EnergyGranularity, $ids: [ID!]) {
  energy(from: $from, to: $to, granularity: $granularity, collectivityIds: $ids) {
    collectivity { id }
    periods { start end figures { ${FIGURES} } }
    total { ${FIGURES} }
    target { contractEuros proRataEuros achievedEuros ratio }
  }
}`;

interface CollectivityEnergy {
  collectivity: { id: string };
  periods: { start: string; end: string; figures: Figures }[];
  total: Figures;
  target: { contractEuros: number; proRataEuros: number; achievedEuros: number; ratio: number | null };
}

let service: TestService;

async function energy(variables: Record<string, unknown>): Promise<CollectivityEnergy[]> {
  const response = await service.gql<{ energy: CollectivityEnergy[] }>(ENERGY, { variables });
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data!.energy;
}

function messages(): IngestMessage[] {
  const byAsset = new Map<string, Reading[]>();
  for (const r of readings) byAsset.set(r.equipmentId, [...(byAsset.get(r.equipmentId) ?? []), r]);
  // Several packs per asset, sent newest first: the roll-ups keep first and last by measurement time.
  const packs: IngestMessage[] = [];
  for (const list of byAsset.values()) {
    for (let start = 0; start < list.length; start += 7) {
      const chunk = list.slice(start, start + 7);
      const bt = chunk[0].time / 1000;
      const pack = chunk.map((r, i) => ({
        ...(i === 0 ? { bn: `urn:dev:connecte:${r.equipmentId}:`, bt } : {}),
        n: 'energy',
        u: 'Wh',
        v: r.wh,
        t: r.time / 1000 - bt,
      }));
      packs.push({
        transport: 'http',
        topic: null,
        payload: Buffer.from(JSON.stringify(pack)),
        principal: { kind: 'ingest-key', keyId: 'energy-test', collectivityId: chunk[0].collectivityId },
      });
    }
  }
  return packs.reverse();
}

async function ingestScenario(): Promise<void> {
  const results = await telemetryResourcesFor(service.db).ingestor.ingest(messages());
  for (const result of results) assert.deepEqual(result.rejected, [], JSON.stringify(result.rejected));
}

before(async () => {
  service = await startService('telemetry', {
    env: {
      ENERGY_PRICE_EUR_PER_KWH: String(PRICE),
      CO2_KG_PER_KWH: String(CO2),
      SAVINGS_TARGET_EUROS: String(TARGET),
      CONTRACT_START,
      CONTRACT_YEARS: String(CONTRACT_YEARS),
    },
  });
  await service.db.pool.query('DELETE FROM energy_baselines WHERE equipment_id = $1', [LP2]);
  await ingestScenario();
});

after(async () => {
  await service?.close();
});

describe(`energy figures (clock change on ${D}, ${HOURS_D} h)`, () => {
  it('per Paris day: DST day, month boundary, counter resets, a silent asset, an asset without baseline', async () => {
    const result = await energy({ from: BEFORE, to: NEXT_MONTH, granularity: 'DAY', ids: ['chalons', 'fagnieres'] });
    assert.deepEqual(result.map((r) => r.collectivity.id), ['chalons', 'fagnieres']);
    for (const entry of result) {
      const id = entry.collectivity.id;
      assert.equal(entry.periods.length, daysBetween(BEFORE, NEXT_MONTH) + 1, 'every day of the range, empty ones too');
      for (const period of entry.periods) {
        assert.equal(period.start, period.end);
        assertFigures(period.figures, expected(id, period.start, period.end), `${id} ${period.start}`);
      }
      assertFigures(entry.total, expected(id, BEFORE, NEXT_MONTH), `${id} total`);
    }
    const chalonsDst = result[0].periods.find((p) => p.start === D)!;
    assert.ok(Math.abs(chalonsDst.figures.buildingsKwh - HOURS_D) < 1e-9, `the meter's ${HOURS_D}-hour day`);
    assert.equal(result[1].periods.find((p) => p.start === D)!.figures.consumedKwh, 0.2, 'a counter replaced mid-day');
  });

  it('per month: the 00:30 reading of the 1st belongs to the new month', async () => {
    const result = await energy({ from: BEFORE, to: NEXT_MONTH, granularity: 'MONTH', ids: ['chalons'] });
    const [chalons] = result;
    assert.deepEqual(
      chalons.periods.map((p) => [p.start, p.end]),
      [[BEFORE, MONTH_END], [NEXT_MONTH, NEXT_MONTH]],
      'months clipped to the range',
    );
    assertFigures(chalons.periods[0].figures, expected('chalons', BEFORE, MONTH_END), 'first month');
    assertFigures(chalons.periods[1].figures, expected('chalons', NEXT_MONTH, NEXT_MONTH), 'next month');
    assert.equal(chalons.periods[1].figures.lightingKwh, 0.5);
  });

  it('a range starting after an asset’s first day continues its counter from its previous reading day', async () => {
    const [chalons] = await energy({ from: D, to: AFTER, granularity: 'DAY', ids: ['chalons'] });
    const [day, next] = chalons.periods;
    assertFigures(day.figures, expected('chalons', D, D), 'first day of the range');
    // LP4 was silent on D: its reading on the day after carries two days, of consumption and baseline.
    assertFigures(next.figures, expected('chalons', AFTER, AFTER), 'the day after');
    const lp4Baseline = (baselineOf.get(LP4)! * 2) / YEAR_DAYS;
    assert.ok(next.figures.baselineKwh > lp4Baseline, 'the silent asset’s two days of baseline are in');
  });

  it('every collectivity when none is named, in the usual order, with zeros where nothing reported', async () => {
    const result = await energy({ from: BEFORE, to: NEXT_MONTH });
    assert.deepEqual(result.map((r) => r.collectivity.id), [...COLLECTIVITY_IDS]);
    const agglo = result.find((r) => r.collectivity.id === 'chalons-agglo')!;
    assert.equal(agglo.periods.length, 2);
    assert.deepEqual(agglo.total, { consumedKwh: 0, lightingKwh: 0, buildingsKwh: 0, baselineKwh: 0, savedKwh: 0, savedEuros: 0, co2AvoidedKg: 0, reportingAssets: 0 });
    assert.deepEqual((await energy({ from: BEFORE, to: BEFORE, ids: ['fagnieres', 'fagnieres'] })).length, 1, 'a collectivity named twice is answered once');
    assert.deepEqual(await energy({ from: BEFORE, to: BEFORE, ids: [] }), []);
  });

  it('against the contract’s target: the share of the baseline, pro rata of the range within the term', async () => {
    const result = await energy({ from: BEFORE, to: NEXT_MONTH, ids: ['chalons', 'fagnieres', 'chalons-agglo'] });
    const all = seededBaselines.reduce((sum, b) => sum + b.kwhPerYear, 0);
    const days = daysBetween(BEFORE, NEXT_MONTH) + 1;
    for (const entry of result) {
      const id = entry.collectivity.id;
      const share = seededBaselines.filter((b) => b.collectivityId === id).reduce((sum, b) => sum + b.kwhPerYear, 0) / all;
      const contract = TARGET * share;
      const proRata = (contract * days) / TERM_DAYS;
      assert.ok(Math.abs(entry.target.contractEuros - contract) <= 0.006, `${id} contract share ${entry.target.contractEuros} vs ${contract}`);
      assert.ok(Math.abs(entry.target.proRataEuros - proRata) <= 0.006, `${id} pro rata ${entry.target.proRataEuros} vs ${proRata}`);
      assert.equal(entry.target.achievedEuros, entry.total.savedEuros);
      assert.ok(Math.abs(entry.target.ratio! - entry.total.savedEuros / proRata) < 1e-6, `${id} ratio`);
    }
    // The agglomeration's four sports halls are a small share of the baseline, but not nothing.
    assert.ok(result[2].target.contractEuros > 0 && result[2].target.contractEuros < result[1].target.contractEuros * 2);

    const outside = await energy({ from: addDays(CONTRACT_START, -30), to: addDays(CONTRACT_START, -1), ids: ['chalons'] });
    assert.equal(outside[0].target.proRataEuros, 0, 'no pro rata before the term');
    assert.equal(outside[0].target.ratio, null);
    const straddling = await energy({ from: addDays(CONTRACT_START, -10), to: addDays(CONTRACT_START, 9), ids: ['chalons'] });
    assert.ok(Math.abs(straddling[0].target.proRataEuros - (straddling[0].target.contractEuros * 10) / TERM_DAYS) <= 0.01, 'only the days within the term');
  });

  it('ingesting the same readings again changes nothing', async () => {
    const before = await energy({ from: BEFORE, to: NEXT_MONTH, granularity: 'DAY', ids: ['chalons', 'fagnieres'] });
    const results = await telemetryResourcesFor(service.db).ingestor.ingest(messages());
    assert.equal(results.reduce((n, r) => n + r.accepted, 0), 0);
    assert.equal(results.reduce((n, r) => n + r.duplicate, 0), readings.length);
    assert.deepEqual(await energy({ from: BEFORE, to: NEXT_MONTH, granularity: 'DAY', ids: ['chalons', 'fagnieres'] }), before);
  });

  it('is public: no token needed', async () => {
    const response = await service.gql(`{ energy(from: "${BEFORE}", to: "${BEFORE}", collectivityIds: ["chalons"]) { total { consumedKwh } } }`);
    assert.equal(response.errors, undefined);
    assert.ok(response.data.energy[0].total.consumedKwh > 23);
  });

  it('through the gateway, with the collectivity’s name from the territory subgraph', async () => {
    const hub = await startHub(service.database.url, {}, { subgraphs: ['territory', 'telemetry'] });
    try {
      const response = await gql(hub.gatewayUrl, `{ energy(from: "${BEFORE}", to: "${AFTER}", collectivityIds: ["fagnieres"]) { collectivity { id name } total { consumedKwh } } }`);
      assert.equal(response.errors, undefined, JSON.stringify(response.errors));
      assert.deepEqual(response.data.energy, [{ collectivity: { id: 'fagnieres', name: 'Fagnières' }, total: { consumedKwh: 0.56 } }]);
    } finally {
      await hub.close();
    }
  });
});

describe('energy: bad arguments', () => {
  const refused = async (variables: Record<string, unknown>, field: string, status = 200) => {
    const response = await service.gql(ENERGY, { variables });
    assert.equal(response.status, status, JSON.stringify(response));
    assert.equal(response.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(response.errors));
    assert.equal(response.errors?.[0]?.extensions?.field, field, JSON.stringify(response.errors));
    return response.errors![0].message;
  };

  it('`to` before `from`', async () => {
    assert.match(await refused({ from: '2026-03-02', to: '2026-03-01' }, 'to'), /before from/);
  });

  it('a range over 3,660 days; 3,660 is fine', async () => {
    assert.match(await refused({ from: '2016-01-01', to: addDays('2016-01-01', 3660) }, 'to'), /3661 days/);
    const longest = await energy({ from: '2016-01-01', to: addDays('2016-01-01', 3659), granularity: 'DAY', ids: ['saint-martin-sur-le-pre'] });
    assert.equal(longest[0].periods.length, 3660);
  });

  it('an unknown collectivity, named by its place in the list', async () => {
    assert.match(await refused({ from: BEFORE, to: BEFORE, ids: ['chalons', 'paris'] }, 'collectivityIds.1'), /'paris' is not a collectivity/);
  });

  it('a date that does not exist, or is not a date', async () => {
    await refused({ from: '2026-02-30', to: '2026-03-01' }, 'from', 400);
    await refused({ from: '2026-02-01', to: '01/03/2026' }, 'to', 400);
  });

  it('a granularity that is not one', async () => {
    const response = await service.gql(ENERGY, { variables: { from: BEFORE, to: BEFORE, granularity: 'WEEK' } });
    assert.equal(response.status, 400);
    assert.equal(response.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  });
});
