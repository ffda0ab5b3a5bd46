/**
 * The read side of telemetry through the gateway (the hub in-process over one seeded database):
 * `Equipment.latest` and `Equipment.readings` (batched: a page of 1,000 assets costs the same
 * statements as a page of 10), buckets against hand computation across both changes of time,
 * range limits, who reads what, and `readingReceived` over graphql-ws (concurrent writers,
 * resuming from a cursor inside an event, refusals). Readings go through the real Ingestor.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Role } from '@connecte/shared/auth';
import { METRICS, type MetricName } from '@connecte/shared/senml';
import { createTestDatabase, gql, RawClient, startHub, subscriptions, tokenFor, type Hub, type TestDatabase } from '@connecte/testkit';
import { telemetryResourcesFor } from '../src/context.js';
import type { TelemetryResources } from '../src/resources.js';
import { countStatements } from './statement-counter.js';

interface Point {
  id: string;
  metric: MetricName;
  time: string | number;
  value: number;
}

let database: TestDatabase;
let hub: Hub;
let r: TelemetryResources;
let agentEverywhere: string;

/** One SenML pack per collectivity (each record with its own base name and time), in one ingest call: one transaction. */
async function ingest(points: Point[]): Promise<void> {
  const devices = await r.directory.lookup([...new Set(points.map((p) => p.id))]);
  const byCollectivity = new Map<string, Point[]>();
  for (const point of points) {
    const device = devices.get(point.id);
    assert.ok(device, `${point.id} is in the directory`);
    byCollectivity.set(device.collectivityId, [...(byCollectivity.get(device.collectivityId) ?? []), point]);
  }
  const messages = [...byCollectivity].map(([collectivityId, list]) => ({
    transport: 'http' as const,
    topic: null,
    principal: { kind: 'ingest-key' as const, keyId: 'readings-test', collectivityId },
    payload: Buffer.from(
      JSON.stringify(
        list.map((p) => ({
          bn: `urn:dev:connecte:${p.id}:`,
          bt: (typeof p.time === 'number' ? p.time : Date.parse(p.time)) / 1000,
          n: p.metric,
          ...(METRICS[p.metric].unit === null ? {} : { u: METRICS[p.metric].unit }),
          v: p.value,
        })),
      ),
    ),
  }));
  const results = await r.ingestor.ingest(messages);
  for (const result of results) assert.deepEqual(result.rejected, [], JSON.stringify(result.rejected));
  assert.equal(results.reduce((n, result) => n + result.accepted + result.duplicate, 0), points.length);
}

const q = (query: string, token?: string, variables?: Record<string, unknown>) => gql(hub.gatewayUrl, query, { token, variables });

function ok<T>(response: { data?: T; errors?: unknown }): T {
  assert.equal(response.errors, undefined, JSON.stringify(response.errors));
  return response.data!;
}

before(async () => {
  database = await createTestDatabase();
  // The DST days of 2026 stay within the retention whenever this runs.
  hub = await startHub(database.url, { TELEMETRY_RETENTION_DAYS: '3650' });
  r = telemetryResourcesFor(hub.subgraphs.telemetry.db);
  agentEverywhere = await tokenFor(hub.config, ['agent'], ['chalons', 'fagnieres', 'saint-martin-sur-le-pre', 'chalons-agglo']);
});

after(async () => {
  await hub?.close();
  await database?.drop();
});

const LATEST_PAGE = (first: number, metrics = '["power"]') =>
  `{ equipmentSearch(filter: { kinds: [LIGHT_POINT] }, first: ${first}) { edges { node { id latest(metrics: ${metrics}) { metric unit value time } } } } }`;

describe('Equipment.latest', () => {
  let ids: string[];
  let decommissioned: Set<string>;
  const now = Date.now() - 60_000;

  before(async () => {
    const data = ok(await q('{ equipmentSearch(filter: { kinds: [LIGHT_POINT] }, first: 1000) { edges { node { id status } } } }', agentEverywhere));
    ids = data.equipmentSearch.edges.map((e: any) => e.node.id);
    assert.equal(ids.length, 1000);
    // A decommissioned asset's readings are no longer taken: those keep no latest value.
    decommissioned = new Set(data.equipmentSearch.edges.filter((e: any) => e.node.status === 'DECOMMISSIONED').map((e: any) => e.node.id));
    assert.ok(decommissioned.size < 100);
    await ingest(ids.filter((id) => !decommissioned.has(id)).flatMap((id) => [
      { id, metric: 'power' as const, time: now, value: ids.indexOf(id) % 97 },
      { id, metric: 'energy' as const, time: now, value: 1000 + ids.indexOf(id) },
    ]));
  });

  it('gives every light point of a page of 1,000 its latest power, in a number of statements that does not grow with the page', async () => {
    const counter = countStatements(hub.subgraphs.telemetry.db.pool);
    try {
      const page = async (first: number) => {
        const data = ok(await q(LATEST_PAGE(first), agentEverywhere));
        assert.equal(data.equipmentSearch.edges.length, first);
        for (const [i, { node }] of data.equipmentSearch.edges.entries()) {
          assert.equal(node.id, ids[i]);
          const expected = decommissioned.has(node.id) ? [] : [{ metric: 'power', unit: 'W', value: i % 97, time: new Date(now).toISOString() }];
          assert.deepEqual(node.latest, expected, node.id);
        }
      };
      await page(10); // the first request warms nothing up that later ones skip, but be fair to both sizes
      const small = await counter.measure(() => page(10));
      const large = await counter.measure(() => page(1000));
      assert.equal(large.count, small.count, `10 assets: ${JSON.stringify(small.statements)}; 1,000: ${JSON.stringify(large.statements)}`);
      assert.ok(large.count >= 1 && large.count <= 2, `one statement for latest (and at most one for the directory): ${JSON.stringify(large.statements)}`);
      // Every metric, and two different `metrics` arguments on one page: still one statement for latest.
      const mixed = await counter.measure(() =>
        q(`{ equipmentSearch(filter: { kinds: [LIGHT_POINT] }, first: 1000) { edges { node { id all: latest { metric } p: latest(metrics: ["energy", "power"]) { metric value } } } } }`, agentEverywhere).then(ok),
      );
      assert.equal(mixed.count, large.count, JSON.stringify(mixed.statements));
    } finally {
      counter.restore();
    }
  });

  it('keeps the order of `metrics`, the table’s order without it, and refuses an unknown metric', async () => {
    const data = ok(await q(`{ equipment(id: "${ids[5]}") { a: latest(metrics: ["energy", "power", "energy"]) { metric value } b: latest { metric } c: latest(metrics: []) { metric } d: latest(metrics: ["co2"]) { metric } } }`, agentEverywhere));
    assert.deepEqual(data.equipment.a, [{ metric: 'energy', value: 1005 }, { metric: 'power', value: 5 }]);
    assert.deepEqual(data.equipment.b.map((l: any) => l.metric), ['power', 'energy']);
    assert.deepEqual(data.equipment.c, []);
    assert.deepEqual(data.equipment.d, []);
    const refused = await q(`{ equipment(id: "${ids[5]}") { latest(metrics: ["power", "watts"]) { metric } } }`, agentEverywhere);
    assert.equal(refused.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.equal(refused.errors?.[0].extensions?.field, 'metrics');
    assert.match(refused.errors![0].message, /watts/);
  });
});

// --- Buckets, by hand ---

/** A light point's power around both changes of time in 2026 (Europe/Paris: +01:00 → +02:00 on 03-29 at 01:00Z, back on 10-25 at 01:00Z). */
const DST_LIGHT = 'lp-chalons-00002';
const DST_POINTS: [string, number][] = [
  ['2026-03-28T22:59:00.000Z', 10], // 23:59 on 28 March
  ['2026-03-28T23:00:00.000Z', 20], // midnight, 29 March (a 23-hour day)
  ['2026-03-29T00:30:00.000Z', 30], // 01:30 +01:00
  ['2026-03-29T01:00:00.000Z', 40], // 03:00 +02:00
  ['2026-03-29T21:59:00.000Z', 50], // 23:59 +02:00
  ['2026-03-29T22:00:00.000Z', 60], // midnight, 30 March
  ['2026-10-24T21:59:00.000Z', 1], // 23:59 on 24 October
  ['2026-10-24T22:00:00.000Z', 2], // midnight, 25 October (a 25-hour day)
  ['2026-10-25T00:30:00.000Z', 3], // 02:30 +02:00
  ['2026-10-25T01:30:00.000Z', 4], // 02:30 +01:00: the same wall-clock time, another hour
  ['2026-10-25T22:59:00.000Z', 5], // 23:59 +01:00
  ['2026-10-25T23:00:00.000Z', 6], // midnight, 26 October
];
/** Dense readings of another light point on one morning (before the autumn change, so the test needs no later clock than the DST days), for minute and quarter-hour buckets (gaps included). */
const MINUTE_LIGHT = 'lp-chalons-00003';
const MINUTE_POINTS: [string, number][] = [
  ['2026-10-21T10:00:00.000Z', 1],
  ['2026-10-21T10:00:30.000Z', 3],
  ['2026-10-21T10:01:10.000Z', 5],
  ['2026-10-21T10:14:59.000Z', 7],
  ['2026-10-21T10:15:00.000Z', 9],
  ['2026-10-21T10:29:00.000Z', 2],
  ['2026-10-21T11:05:00.000Z', 4],
];

const READINGS = (id: string, args: string, selection = 'edges { cursor node { time value min max last count } } pageInfo { hasNextPage hasPreviousPage endCursor } totalCount unit') =>
  `{ equipment(id: "${id}") { readings(${args}) { ${selection} } } }`;
const bucket = (time: string, count: number, value: number, min: number, max: number, last: number) => ({ time, value, min, max, last, count });
const nodes = (data: any) => data.equipment.readings.edges.map((e: any) => e.node);

describe('Equipment.readings', () => {
  before(async () => {
    // Out of order and in two transactions: the roll-ups must not care.
    const points = [...DST_POINTS].reverse().map(([time, value]) => ({ id: DST_LIGHT, metric: 'power' as const, time, value }));
    await ingest(points.slice(0, 5));
    await ingest(points.slice(5));
    await ingest(MINUTE_POINTS.map(([time, value]) => ({ id: MINUTE_LIGHT, metric: 'power' as const, time, value })));
  });

  it('DAY: Europe/Paris days of 23 and 25 hours, each bucket starting at its midnight, paged', async () => {
    const all = ok(await q(READINGS(DST_LIGHT, 'metric: "power", from: "2026-03-27T23:00:00Z", to: "2026-10-26T23:00:00Z", bucket: DAY'), agentEverywhere));
    assert.deepEqual(nodes(all), [
      bucket('2026-03-27T23:00:00.000Z', 1, 10, 10, 10, 10),
      bucket('2026-03-28T23:00:00.000Z', 4, 35, 20, 50, 50),
      bucket('2026-03-29T22:00:00.000Z', 1, 60, 60, 60, 60),
      bucket('2026-10-23T22:00:00.000Z', 1, 1, 1, 1, 1),
      bucket('2026-10-24T22:00:00.000Z', 4, 3.5, 2, 5, 5),
      bucket('2026-10-25T23:00:00.000Z', 1, 6, 6, 6, 6),
    ]);
    assert.equal(all.equipment.readings.totalCount, 6);
    assert.equal(all.equipment.readings.unit, 'W');

    const first = ok(await q(READINGS(DST_LIGHT, 'metric: "power", from: "2026-03-27T23:00:00Z", to: "2026-10-26T23:00:00Z", bucket: DAY, first: 4'), agentEverywhere));
    assert.equal(nodes(first).length, 4);
    assert.equal(first.equipment.readings.pageInfo.hasNextPage, true);
    const rest = ok(await q(READINGS(DST_LIGHT, `metric: "power", from: "2026-03-27T23:00:00Z", to: "2026-10-26T23:00:00Z", bucket: DAY, first: 4, after: "${first.equipment.readings.pageInfo.endCursor}"`), agentEverywhere));
    assert.deepEqual([...nodes(first), ...nodes(rest)], nodes(all));
    assert.deepEqual(rest.equipment.readings.pageInfo, { ...rest.equipment.readings.pageInfo, hasNextPage: false, hasPreviousPage: true });

    // The range holds the days whose midnight is in it: from noon on 28 March, to the midnight of 30 March (excluded).
    const cut = ok(await q(READINGS(DST_LIGHT, 'metric: "power", from: "2026-03-28T12:00:00Z", to: "2026-03-29T22:00:00Z", bucket: DAY', 'edges { node { time count } } totalCount'), agentEverywhere));
    assert.deepEqual(nodes(cut), [{ time: '2026-03-28T23:00:00.000Z', count: 4 }]);
    assert.equal(cut.equipment.readings.totalCount, 1);
  });

  it('HOUR: the two 02:30 of 25 October are two hours; RAW: the values as received, paged by time', async () => {
    const hours = ok(await q(READINGS(DST_LIGHT, 'metric: "power", from: "2026-10-24T21:00:00Z", to: "2026-10-25T02:00:00Z", bucket: HOUR'), agentEverywhere));
    assert.deepEqual(nodes(hours), [
      bucket('2026-10-24T21:00:00.000Z', 1, 1, 1, 1, 1),
      bucket('2026-10-24T22:00:00.000Z', 1, 2, 2, 2, 2),
      bucket('2026-10-25T00:00:00.000Z', 1, 3, 3, 3, 3),
      bucket('2026-10-25T01:00:00.000Z', 1, 4, 4, 4, 4),
    ]);
    const morning = ok(await q(READINGS(MINUTE_LIGHT, 'metric: "power", from: "2026-10-21T10:00:00Z", to: "2026-10-21T12:00:00Z", bucket: HOUR'), agentEverywhere));
    assert.deepEqual(nodes(morning), [bucket('2026-10-21T10:00:00.000Z', 6, 27 / 6, 1, 9, 2), bucket('2026-10-21T11:00:00.000Z', 1, 4, 4, 4, 4)]);

    const raw = ok(await q(READINGS(DST_LIGHT, 'metric: "power", from: "2026-03-28T23:00:00Z", to: "2026-03-29T22:00:00Z", first: 2'), agentEverywhere));
    assert.deepEqual(nodes(raw), [bucket('2026-03-28T23:00:00.000Z', 1, 20, 20, 20, 20), bucket('2026-03-29T00:30:00.000Z', 1, 30, 30, 30, 30)]);
    assert.equal(raw.equipment.readings.totalCount, 4);
    const next = ok(await q(READINGS(DST_LIGHT, `metric: "power", from: "2026-03-28T23:00:00Z", to: "2026-03-29T22:00:00Z", first: 2, after: "${raw.equipment.readings.pageInfo.endCursor}"`), agentEverywhere));
    assert.deepEqual(nodes(next).map((n: any) => n.value), [40, 50]);
    assert.equal(next.equipment.readings.pageInfo.hasNextPage, false);
  });

  it('MINUTE and MINUTE_15: whole clock-aligned buckets, empty ones skipped, paged', async () => {
    const minutes = ok(await q(READINGS(MINUTE_LIGHT, 'metric: "power", from: "2026-10-21T10:00:00Z", to: "2026-10-21T12:00:00Z", bucket: MINUTE'), agentEverywhere));
    assert.deepEqual(nodes(minutes), [
      bucket('2026-10-21T10:00:00.000Z', 2, 2, 1, 3, 3),
      bucket('2026-10-21T10:01:00.000Z', 1, 5, 5, 5, 5),
      bucket('2026-10-21T10:14:00.000Z', 1, 7, 7, 7, 7),
      bucket('2026-10-21T10:15:00.000Z', 1, 9, 9, 9, 9),
      bucket('2026-10-21T10:29:00.000Z', 1, 2, 2, 2, 2),
      bucket('2026-10-21T11:05:00.000Z', 1, 4, 4, 4, 4),
    ]);
    assert.equal(minutes.equipment.readings.totalCount, 6);
    const quarters = ok(await q(READINGS(MINUTE_LIGHT, 'metric: "power", from: "2026-10-21T10:00:00Z", to: "2026-10-21T12:00:00Z", bucket: MINUTE_15, first: 2'), agentEverywhere));
    assert.deepEqual(nodes(quarters), [bucket('2026-10-21T10:00:00.000Z', 4, 4, 1, 7, 7), bucket('2026-10-21T10:15:00.000Z', 2, 5.5, 2, 9, 2)]);
    assert.equal(quarters.equipment.readings.pageInfo.hasNextPage, true);
    assert.equal(quarters.equipment.readings.totalCount, 3);
    const last = ok(await q(READINGS(MINUTE_LIGHT, `metric: "power", from: "2026-10-21T10:00:00Z", to: "2026-10-21T12:00:00Z", bucket: MINUTE_15, after: "${quarters.equipment.readings.pageInfo.endCursor}"`), agentEverywhere));
    assert.deepEqual(nodes(last), [bucket('2026-10-21T11:00:00.000Z', 1, 4, 4, 4, 4)]);
    // A range that starts inside a bucket holds the buckets that start after it: 10:00 is left out, 10:01 stays whole.
    const inside = ok(await q(READINGS(MINUTE_LIGHT, 'metric: "power", from: "2026-10-21T10:00:20Z", to: "2026-10-21T10:14:30Z", bucket: MINUTE', 'edges { node { time count } }'), agentEverywhere));
    assert.deepEqual(nodes(inside), [{ time: '2026-10-21T10:01:00.000Z', count: 1 }, { time: '2026-10-21T10:14:00.000Z', count: 1 }]);
    // first: 0 is an empty page that still says whether there is something.
    const none = ok(await q(READINGS(MINUTE_LIGHT, 'metric: "power", from: "2026-10-21T10:00:00Z", to: "2026-10-21T12:00:00Z", bucket: MINUTE, first: 0', 'edges { cursor } pageInfo { hasNextPage } totalCount'), agentEverywhere));
    assert.deepEqual(none.equipment.readings, { edges: [], pageInfo: { hasNextPage: false }, totalCount: 6 });
  });

  it('a page of assets costs the same statements for 10 and 500 of them, per bucket', async () => {
    const counter = countStatements(hub.subgraphs.telemetry.db.pool);
    try {
      for (const b of ['RAW', 'MINUTE_15', 'HOUR', 'DAY']) {
        const page = (first: number) =>
          q(`{ equipmentSearch(filter: { kinds: [LIGHT_POINT] }, first: ${first}) { edges { node { id readings(metric: "power", from: "2026-03-01T00:00:00Z", to: "2026-03-30T00:00:00Z", bucket: ${b}, first: 3) { totalCount edges { node { value } } } } } } }`, agentEverywhere).then(ok);
        const small = await counter.measure(() => page(10));
        const large = await counter.measure(() => page(500));
        assert.equal(large.count, small.count, `${b}: 10 assets ${JSON.stringify(small.statements)}; 500: ${JSON.stringify(large.statements)}`);
        assert.ok(large.count <= 3, `${b}: one page statement, one count statement, at most one directory read: ${JSON.stringify(large.statements)}`);
      }
    } finally {
      counter.restore();
    }
  });

  it('refuses a bad range, metric, page size or cursor, naming the argument', async () => {
    const refusal = async (args: string, field: string, message?: RegExp) => {
      const response = await q(READINGS(DST_LIGHT, args, 'totalCount'), agentEverywhere);
      assert.equal(response.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', `${args}: ${JSON.stringify(response)}`);
      assert.equal(response.errors?.[0]?.extensions?.field, field, args);
      if (message) assert.match(response.errors![0].message, message);
    };
    const accepted = async (args: string) => ok(await q(READINGS(DST_LIGHT, args, 'totalCount'), agentEverywhere));
    await refusal('metric: "voltage", from: "2026-03-01T00:00:00Z", to: "2026-03-02T00:00:00Z"', 'metric', /voltage/);
    await refusal('metric: "power", from: "2026-03-02T00:00:00Z", to: "2026-03-02T00:00:00Z"', 'to', /after from/);
    await refusal('metric: "power", from: "2026-03-03T00:00:00Z", to: "2026-03-02T00:00:00Z"', 'to');
    // 31 days (and the autumn hour: October from midnight to midnight, Paris time) for RAW and MINUTE.
    await accepted('metric: "power", from: "2026-09-30T22:00:00Z", to: "2026-10-31T23:00:00Z"');
    await accepted('metric: "power", from: "2026-09-30T22:00:00Z", to: "2026-10-31T23:00:00Z", bucket: MINUTE');
    await refusal('metric: "power", from: "2026-09-30T22:00:00Z", to: "2026-10-31T23:00:00.001Z"', 'to', /31 days/);
    await refusal('metric: "power", from: "2026-01-01T00:00:00Z", to: "2026-03-01T00:00:00Z", bucket: MINUTE', 'to', /31 days/);
    await accepted('metric: "power", from: "2025-01-01T00:00:00Z", to: "2026-02-05T00:00:00Z", bucket: MINUTE_15');
    await accepted('metric: "power", from: "2025-01-01T00:00:00Z", to: "2026-02-05T00:00:00Z", bucket: HOUR');
    await refusal('metric: "power", from: "2025-01-01T00:00:00Z", to: "2026-02-06T01:00:00.001Z", bucket: HOUR', 'to', /400 days/);
    await refusal('metric: "power", from: "2025-01-01T00:00:00Z", to: "2026-02-06T01:00:00.001Z", bucket: MINUTE_15', 'to', /400 days/);
    await accepted('metric: "power", from: "2016-12-01T00:00:00Z", to: "2026-12-01T00:00:00Z", bucket: DAY');
    await refusal('metric: "power", from: "2010-01-01T00:00:00Z", to: "2026-12-01T00:00:00Z", bucket: DAY', 'to', /3,660 days/);
    await refusal('metric: "power", from: "2026-03-01T00:00:00Z", to: "2026-03-02T00:00:00Z", first: 1001', 'first');
    await refusal('metric: "power", from: "2026-03-01T00:00:00Z", to: "2026-03-02T00:00:00Z", first: -1', 'first');
    await refusal('metric: "power", from: "2026-03-01T00:00:00Z", to: "2026-03-02T00:00:00Z", after: "bm9wZQ"', 'after');
    // A cursor of another bucket is not a position in this one.
    const raw = ok(await q(READINGS(DST_LIGHT, 'metric: "power", from: "2026-03-28T00:00:00Z", to: "2026-03-30T00:00:00Z", first: 1'), agentEverywhere));
    await refusal(`metric: "power", from: "2026-03-28T00:00:00Z", to: "2026-03-30T00:00:00Z", bucket: DAY, after: "${raw.equipment.readings.pageInfo.endCursor}"`, 'after');
    // Not an instant: refused before anything runs (a request error, docs/graphql-conventions.md), naming the argument.
    const invalidTime = await q(READINGS(DST_LIGHT, 'metric: "power", from: "yesterday", to: "2026-03-02T00:00:00Z"', 'totalCount'), agentEverywhere);
    assert.equal(invalidTime.status, 400, JSON.stringify(invalidTime));
    assert.equal(invalidTime.errors?.[0]?.extensions?.field, 'from', JSON.stringify(invalidTime));
  });
});

// --- Who reads what ---

const OTHER_LIGHT = 'lp-fagnieres-00001';
const OWN_LIGHT = 'lp-chalons-00004';
const WHO = (id: string) => `{ equipment(id: "${id}") {
  latest(metrics: ["power"]) { value }
  raw: readings(metric: "power", from: "2026-10-20T00:00:00Z", to: "2026-10-21T00:00:00Z") { totalCount edges { node { value } } }
  quarter: readings(metric: "power", from: "2026-10-20T00:00:00Z", to: "2026-10-21T00:00:00Z", bucket: MINUTE_15) { totalCount edges { node { value } } }
  hour: readings(metric: "power", from: "2026-10-20T00:00:00Z", to: "2026-10-21T00:00:00Z", bucket: HOUR) { totalCount edges { node { value } } }
  day: readings(metric: "power", from: "2026-10-19T22:00:00Z", to: "2026-10-20T22:00:00Z", bucket: DAY) { totalCount edges { node { value } } }
} }`;

/** What the answer shows: which fields had data. */
function visible(data: any): Record<string, boolean> {
  const e = data.equipment;
  const has = (c: any) => {
    assert.equal(c.edges.length > 0, c.totalCount > 0, 'totalCount agrees with the page');
    return c.edges.length > 0;
  };
  return { latest: e.latest.length > 0, raw: has(e.raw), quarter: has(e.quarter), hour: has(e.hour), day: has(e.day) };
}

/** The first error a graphql-ws operation got, as a `next` payload's errors or an `error` message; null if it got data. */
function outcome(client: RawClient, id: string): { code: string | undefined; field: string | undefined } | 'data' | null {
  for (const m of client.of(id)) {
    if (m.type === 'error') return { code: m.payload?.[0]?.extensions?.code, field: m.payload?.[0]?.extensions?.field };
    if (m.type === 'next' && m.payload.errors) return { code: m.payload.errors[0].extensions?.code, field: m.payload.errors[0].extensions?.field };
    if (m.type === 'next' && m.payload.data) return 'data';
  }
  return null;
}

describe('who reads what', () => {
  before(async () => {
    for (const id of [OWN_LIGHT, OTHER_LIGHT]) {
      await ingest([
        { id, metric: 'power', time: '2026-10-20T10:00:00.000Z', value: 12 },
        { id, metric: 'power', time: '2026-10-20T10:10:00.000Z', value: 14 },
      ]);
    }
    // A newer value for latest (the ones above are not the newest of the first suite's assets).
    await ingest([{ id: OWN_LIGHT, metric: 'power', time: Date.now() - 30_000, value: 15 }, { id: OTHER_LIGHT, metric: 'power', time: Date.now() - 30_000, value: 15 }]);
  });

  it('agents, operators and admins read their collectivity’s assets; partners only hours and days, anywhere; citizens and the public nothing', async () => {
    const roles: Role[] = ['citizen', 'agent', 'operator', 'admin', 'partner'];
    const nothing = { latest: false, raw: false, quarter: false, hour: false, day: false };
    const everything = { latest: true, raw: true, quarter: true, hour: true, day: true };
    const aggregates = { ...nothing, hour: true, day: true };
    const cases: { who: string; token?: string; own: typeof nothing; other: typeof nothing }[] = [{ who: 'public', own: nothing, other: nothing }];
    for (const role of roles) {
      const reader = role === 'agent' || role === 'operator' || role === 'admin';
      cases.push({
        who: `${role} of chalons`,
        token: await tokenFor(hub.config, [role], ['chalons']),
        own: reader ? everything : role === 'partner' ? aggregates : nothing,
        other: role === 'partner' ? aggregates : nothing,
      });
      cases.push({
        who: `${role} of fagnieres and saint-martin`,
        token: await tokenFor(hub.config, [role], ['fagnieres', 'saint-martin-sur-le-pre']),
        own: role === 'partner' ? aggregates : nothing,
        other: reader ? everything : role === 'partner' ? aggregates : nothing,
      });
    }
    for (const c of cases) {
      assert.deepEqual(visible(ok(await q(WHO(OWN_LIGHT), c.token))), c.own, `${c.who} on ${OWN_LIGHT}`);
      assert.deepEqual(visible(ok(await q(WHO(OTHER_LIGHT), c.token))), c.other, `${c.who} on ${OTHER_LIGHT}`);
    }
  });

  it('readingReceived: the stream is refused to whoever may not read the assets (UNAUTHENTICATED for the public, FORBIDDEN naming the filter)', async () => {
    const subscription = (filter: string) => `subscription { readingReceived(filter: ${filter}) { cursor equipment { id } value } }`;
    const tokens: [string, string | undefined][] = [['public', undefined]];
    for (const role of ['citizen', 'agent', 'operator', 'admin', 'partner'] as Role[]) tokens.push([role, await tokenFor(hub.config, [role], ['chalons'])]);
    const clients: { who: string; client: RawClient }[] = [];
    try {
      for (const [who, token] of tokens) {
        const client = await RawClient.open(hub.gatewayUrl, token ? `Bearer ${token}` : undefined);
        clients.push({ who, client });
        client.subscribe('own', subscription(`{ equipmentIds: ["${OWN_LIGHT}"] }`));
        client.subscribe('other', subscription(`{ equipmentIds: ["${OWN_LIGHT}", "${OTHER_LIGHT}"] }`));
        client.subscribe('kinds', subscription('{ kinds: [LIGHT_POINT], collectivityId: "chalons" }'));
        client.subscribe('otherKinds', subscription('{ kinds: [LIGHT_POINT], collectivityId: "fagnieres" }'));
      }
      await sleep(500);
      await ingest([{ id: OWN_LIGHT, metric: 'power', time: Date.now() - 20_000, value: 16 }]);
      for (const { who, client } of clients) {
        await client.until(() => ['own', 'other', 'kinds', 'otherKinds'].every((id) => outcome(client, id) !== null), `${who}'s four answers`);
        const reader = ['agent', 'operator', 'admin'].includes(who);
        if (who === 'public') {
          for (const id of ['own', 'other', 'kinds', 'otherKinds']) assert.equal((outcome(client, id) as any).code, 'UNAUTHENTICATED', `${who} ${id}`);
        } else if (reader) {
          assert.equal(outcome(client, 'own'), 'data', who);
          assert.equal(outcome(client, 'kinds'), 'data', who);
          assert.deepEqual(outcome(client, 'other'), { code: 'FORBIDDEN', field: 'filter.equipmentIds.1' }, who);
          assert.deepEqual(outcome(client, 'otherKinds'), { code: 'FORBIDDEN', field: 'filter.collectivityId' }, who);
        } else {
          assert.deepEqual(outcome(client, 'own'), { code: 'FORBIDDEN', field: 'filter.equipmentIds' }, who);
          assert.deepEqual(outcome(client, 'kinds'), { code: 'FORBIDDEN', field: 'filter.collectivityId' }, who);
        }
      }
    } finally {
      for (const { client } of clients) client.terminate();
    }
  });
});

// --- The stream ---

const STREAMED = 'cursor equipment { id } kind metric unit value time';
const cursorOrder = (cursor: string) => {
  const [event, index = '-1'] = cursor.split('.');
  return [BigInt(event), BigInt(index)] as const;
};
const before_ = (a: string, b: string) => {
  const [ea, ia] = cursorOrder(a);
  const [eb, ib] = cursorOrder(b);
  return ea < eb || (ea === eb && ia < ib);
};

describe('Subscription.readingReceived', () => {
  const watched = ['lp-chalons-00011', 'lp-chalons-00012', 'lp-chalons-00013', 'lp-chalons-00014', 'lp-chalons-00015', 'lp-chalons-00016'];
  /** Readings nobody above watches: another light point of chalons (the kinds stream sees it) and one of fagnieres. */
  const noise = ['lp-chalons-00020', 'lp-fagnieres-00002'];
  const WRITERS = 3;
  const BATCHES = 10;
  const METRIC_SET: MetricName[] = ['power', 'energy', 'dim_level'];
  let streams: ReturnType<typeof subscriptions>;
  let start: string;
  let received: any[];

  before(async () => {
    streams = subscriptions(hub.gatewayUrl);
    const { rows } = await hub.subgraphs.telemetry.db.pool.query<{ id: string }>('SELECT coalesce(max(id), 0)::text AS id FROM events');
    start = rows[0].id;
  });
  after(() => streams.dispose());

  it('delivers the readings of several concurrent writers exactly once, in cursor order, and only those of the filter', async () => {
    const token = await tokenFor(hub.config, ['agent'], ['chalons']);
    // From a plain event id taken before anything is written: nothing can slip between subscribing and writing.
    const byIds = streams.subscribe(`subscription { readingReceived(filter: { equipmentIds: ${JSON.stringify(watched)} }, after: "${start}") { ${STREAMED} } }`, token);
    const byKind = streams.subscribe(`subscription { readingReceived(filter: { kinds: [LIGHT_POINT], collectivityId: "chalons", metrics: ["power"] }, after: "${start}") { ${STREAMED} } }`, token);
    const base = Date.now() - 10 * 60_000;
    const expected: string[] = [];
    const writer = async (w: number) => {
      for (let batch = 0; batch < BATCHES; batch++) {
        const time = base + batch * 1000 + w;
        const points: Point[] = [];
        for (const id of [watched[2 * w], watched[2 * w + 1], noise[w % noise.length]]) {
          for (const [m, metric] of METRIC_SET.entries()) points.push({ id, metric, time, value: batch * 10 + m });
        }
        for (const p of points) if (watched.includes(p.id)) expected.push(`${p.id} ${p.metric} ${new Date(time).toISOString()}`);
        await ingest(points);
      }
    };
    await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));

    received = (await byIds.waitFor(expected.length)).map((m) => {
      assert.equal(m.errors, undefined, JSON.stringify(m.errors));
      return m.data.readingReceived;
    });
    await sleep(300);
    assert.equal(byIds.received.length, expected.length, 'nothing more than what was written');
    assert.deepEqual(received.map((x) => `${x.equipment.id} ${x.metric} ${x.time}`).sort(), expected.sort(), 'each reading once');
    for (let i = 1; i < received.length; i++) assert.ok(before_(received[i - 1].cursor, received[i].cursor), `${received[i - 1].cursor} then ${received[i].cursor}`);
    // Each writer's readings of an asset come in the order it wrote them.
    for (const id of watched) {
      const times = received.filter((x) => x.equipment.id === id && x.metric === 'power').map((x) => x.time);
      assert.deepEqual(times, [...times].sort(), id);
      assert.equal(times.length, BATCHES);
    }
    assert.deepEqual(received[0], { ...received[0], kind: 'LIGHT_POINT' });
    assert.equal(received.find((x) => x.metric === 'power').unit, 'W');
    // Several readings share an event: the cursor tells them apart.
    assert.ok(new Set(received.map((x) => x.cursor.split('.')[0])).size < received.length);

    // The kind stream: every chalons light point's power (the noise asset of chalons included, fagnieres' not).
    const chalonsNoiseWriters = Array.from({ length: WRITERS }, (_, w) => noise[w % noise.length]).filter((id) => id.startsWith('lp-chalons-')).length;
    const kindExpected = (WRITERS * 2 + chalonsNoiseWriters) * BATCHES;
    const kinds = (await byKind.waitFor(kindExpected)).map((m) => m.data.readingReceived);
    await sleep(300);
    assert.equal(byKind.received.length, kindExpected);
    assert.ok(kinds.every((x) => x.metric === 'power' && x.equipment.id.startsWith('lp-chalons-')));
    assert.ok(kinds.some((x) => x.equipment.id === noise[0]));
  });

  it('resumes after a reading in the middle of an event with nothing lost or doubled, and after a plain event id', async () => {
    assert.ok(received, 'the previous test ran');
    const token = await tokenFor(hub.config, ['operator'], ['chalons']);
    const middle = received.findIndex((x, i) => i + 1 < received.length && x.cursor.split('.')[0] === received[i + 1].cursor.split('.')[0]);
    assert.ok(middle >= 0, 'an event with more than one watched reading');
    const rest = received.slice(middle + 1);
    const resumed = streams.subscribe(`subscription { readingReceived(filter: { equipmentIds: ${JSON.stringify(watched)} }, after: "${received[middle].cursor}") { ${STREAMED} } }`, token);
    const got = (await resumed.waitFor(rest.length)).map((m) => m.data.readingReceived);
    await sleep(300);
    assert.equal(resumed.received.length, rest.length);
    assert.deepEqual(got, rest);

    const event = received[middle].cursor.split('.')[0];
    const later = received.filter((x) => BigInt(x.cursor.split('.')[0]) > BigInt(event));
    const byEvent = streams.subscribe(`subscription { readingReceived(filter: { equipmentIds: ${JSON.stringify(watched)} }, after: "${event}") { ${STREAMED} } }`, token);
    assert.deepEqual((await byEvent.waitFor(later.length)).map((m) => m.data.readingReceived), later);

    // And live from there: the next reading written comes once.
    const time = Date.now() - 5_000;
    await ingest([{ id: watched[0], metric: 'power', time, value: 99 }]);
    const [live] = (await resumed.waitFor(rest.length + 1)).slice(rest.length).map((m) => m.data.readingReceived);
    assert.deepEqual({ id: live.equipment.id, value: live.value, time: live.time }, { id: watched[0], value: 99, time: new Date(time).toISOString() });
    assert.ok(before_(rest.at(-1).cursor, live.cursor));
  });

  it('refuses a missing or double filter, a bad one, and a malformed cursor, naming the argument', async () => {
    const token = await tokenFor(hub.config, ['agent'], ['chalons']);
    const client = await RawClient.open(hub.gatewayUrl, `Bearer ${token}`);
    try {
      const cases: [string, Record<string, unknown>, string][] = [
        ['empty', { filter: {} }, 'filter'],
        ['both', { filter: { equipmentIds: ['lp-chalons-00011'], kinds: ['LIGHT_POINT'], collectivityId: 'chalons' } }, 'filter'],
        ['kindsAlone', { filter: { kinds: ['LIGHT_POINT'] } }, 'filter.collectivityId'],
        ['collectivityAlone', { filter: { collectivityId: 'chalons' } }, 'filter.kinds'],
        ['unknownCollectivity', { filter: { kinds: ['LIGHT_POINT'], collectivityId: 'paris' } }, 'filter.collectivityId'],
        ['noIds', { filter: { equipmentIds: [] } }, 'filter.equipmentIds'],
        ['tooMany', { filter: { equipmentIds: Array.from({ length: 1001 }, (_, i) => `lp-chalons-${String(i + 1).padStart(5, '0')}`) } }, 'filter.equipmentIds'],
        ['unknownAsset', { filter: { equipmentIds: ['lp-chalons-00011', 'lp-nowhere'] } }, 'filter.equipmentIds.1'],
        ['unknownMetric', { filter: { equipmentIds: ['lp-chalons-00011'], metrics: ['power', 'volts'] } }, 'filter.metrics.1'],
        ['cursorWord', { filter: { equipmentIds: ['lp-chalons-00011'] }, after: 'latest' }, 'after'],
        ['cursorIndexOnly', { filter: { equipmentIds: ['lp-chalons-00011'] }, after: '.3' }, 'after'],
        ['cursorZero', { filter: { equipmentIds: ['lp-chalons-00011'] }, after: '0.1' }, 'after'],
        ['cursorNegative', { filter: { equipmentIds: ['lp-chalons-00011'] }, after: '-5' }, 'after'],
        ['cursorTooBig', { filter: { equipmentIds: ['lp-chalons-00011'] }, after: '99999999999999999999' }, 'after'],
      ];
      const query = 'subscription ($filter: ReadingFilter!, $after: String) { readingReceived(filter: $filter, after: $after) { cursor } }';
      for (const [id, variables] of cases) client.subscribe(id, query, variables);
      client.subscribe('missing', 'subscription { readingReceived { cursor } }');
      await client.until(() => [...cases.map(([id]) => id), 'missing'].every((id) => outcome(client, id) !== null), 'every refusal');
      for (const [id, , field] of cases) assert.deepEqual(outcome(client, id), { code: 'BAD_USER_INPUT', field }, id);
      const missing = outcome(client, 'missing') as { code: string };
      assert.equal(missing.code, 'GRAPHQL_VALIDATION_FAILED', JSON.stringify(client.of('missing')));
    } finally {
      client.terminate();
    }
  });
});
