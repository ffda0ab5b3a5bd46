/**
 * The citizen reports' feed against an attacker who knows where and when a neighbour reported:
 * a cell of k−1 reports never appears, adding reports to a suppressed cell changes nothing
 * anyone can see (body, ETag, headers) until it holds k, a category with few reports is never
 * listed (and no small remainder can be computed), dates are ISO weeks, the current week is
 * never shown, and every string of the document comes from a closed vocabulary (no free text).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { QueryParameterError } from '../parameters.js';
import { rawRequest, serveOpendata, type ServedOpendata } from '../../test/serve.js';
import { applyPolicy, citizenReportsFeed, citizenReportsGeojson, listable } from './citizen-reports-geojson.js';

const K = 5;
const feed = citizenReportsFeed(K);
const PATH = '/opendata/geojson/citizen-reports.geojson';

interface Doc {
  type: string;
  k: number;
  period: { from: string; to: string };
  suppression: { reportsPublished: number; cellsPublished: number; cellsSuppressed: number; shareOfReportsSuppressed: { min: number; max: number } };
  features: { id: string; geometry: { type: string; coordinates: number[][][] }; properties: { cell: string; reports: number; byCategory: Record<string, number>; byStage: Record<string, number>; byWeek: Record<string, number> } }[];
}

describe('open-data feed: citizen reports, anonymised', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;
  let categories: string[];

  /** Points, each alone in its 200 m cell (no seeded report there), inside Châlons. */
  let emptySpots: [number, number][];

  const fetchDoc = async () => {
    const response = await rawRequest(`${served.base}${PATH}`);
    assert.equal(response.status, 200);
    return { response, doc: JSON.parse(response.body.toString()) as Doc, text: response.body.toString() };
  };
  const versionOf = async () => {
    const client = await pool.connect();
    try {
      return await feed.version(client, {});
    } finally {
      client.release();
    }
  };
  /** A report as the tickets domain stores it, with every personal field filled in, dated in a past week. */
  const report = async (spot: [number, number], category = 'LIGHT_OUT', { weeksAgo = 1, status = 'NEW' } = {}) => {
    await pool.query(
      `INSERT INTO tickets (category_code, collectivity_id, service, status, description, geom, insee_code, address, source,
                            reporter_sub, reporter_name, reporter_email, reporter_phone, created_at, ack_due_at, resolve_due_at)
       VALUES ($1, 'chalons', 'Éclairage public', $5, 'Devant chez Mme Test-Attaque, appelez-moi au 06 11 22 33 44',
               ST_SetSRID(ST_MakePoint($2, $3), 4326), '51108', '7 rue de l''Attaque', 'APP',
               'attack-citizen', 'Ada Attaque', 'ada.attaque@example.org', '+33 6 11 22 33 44',
               (date_trunc('week', now() AT TIME ZONE 'Europe/Paris') - make_interval(days => 7 * $4::int - 2, hours => 10)) AT TIME ZONE 'Europe/Paris',
               now() + interval '1 day', now() + interval '2 days')`,
      [category, spot[0], spot[1], weeksAgo, status],
    );
  };
  const cellOf = async ([lon, lat]: [number, number]) =>
    (
      await pool.query<{ cell: string }>(
        `SELECT 'CRS3035RES200mN' || (floor(ST_Y(p) / 200) * 200)::bigint || 'E' || (floor(ST_X(p) / 200) * 200)::bigint AS cell
         FROM ST_Transform(ST_SetSRID(ST_MakePoint($1, $2), 4326), 3035) p`,
        [lon, lat],
      )
    ).rows[0].cell;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    served = await serveOpendata({ pool, feeds: [feed] });
    categories = (await pool.query<{ code: string }>('SELECT code FROM ticket_categories ORDER BY code')).rows.map((r) => r.code);
    // Light points of Châlons whose cell holds no report at all, each in a different cell.
    const { rows } = await pool.query<{ lon: number; lat: number }>(
      `SELECT DISTINCT ON (east, north) lon, lat FROM (
         SELECT ST_X(e.location) AS lon, ST_Y(e.location) AS lat,
                (floor(ST_X(ST_Transform(e.location, 3035)) / 200) * 200)::bigint AS east,
                (floor(ST_Y(ST_Transform(e.location, 3035)) / 200) * 200)::bigint AS north
         FROM equipment e WHERE e.kind = 'LIGHT_POINT' AND e.collectivity_id = 'chalons') l
       WHERE NOT EXISTS (SELECT 1 FROM opendata_citizen_reports r WHERE r.cell_east = l.east AND r.cell_north = l.north)
       ORDER BY east, north LIMIT 12`,
    );
    emptySpots = rows.map((r) => [r.lon, r.lat]);
    assert.ok(emptySpots.length >= 6, 'the seed leaves empty cells');
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it('takes no parameter, and names any it is given', () => {
    assert.deepEqual(feed.parse(new URLSearchParams()), {});
    for (const [query, field] of [['bbox=1,2,3,4', 'bbox'], ['k=1', 'k'], ['cell=CRS3035RES200mN1E1', 'cell']]) {
      assert.throws(() => feed.parse(new URLSearchParams(query)), (e: unknown) => e instanceof QueryParameterError && e.field === field, query);
    }
    assert.equal(citizenReportsGeojson.id, 'citizen-reports');
    assert.throws(() => citizenReportsFeed(1), /k must be a whole number of at least 2/);
  });

  it('lists a breakdown only with k or more, and never leaves a remainder between 1 and k−1', () => {
    const m = (entries: [string, number][]) => new Map(entries);
    assert.deepEqual(listable(m([['A', 5], ['B', 3], ['C', 2]]), 10, 5), { A: 5 }, 'B and C together are 5');
    assert.deepEqual(listable(m([['A', 5], ['B', 1]]), 6, 5), {}, 'listing A would reveal B = 1');
    assert.deepEqual(listable(m([['A', 7], ['B', 5], ['C', 1]]), 13, 5), { A: 7 }, 'the smallest listed value goes first');
    assert.deepEqual(listable(m([['A', 6], ['B', 6]]), 12, 5), { A: 6, B: 6 });
    const publication = applyPolicy(
      [
        { cell: 'c1', cell_east: '0', cell_north: '0', category: 'A', stage: 'OPEN', iso_week: '2026-W01', n: '4' },
        { cell: 'c2', cell_east: '200', cell_north: '0', category: 'A', stage: 'OPEN', iso_week: '2026-W01', n: '5' },
      ],
      5,
      { from: '2025-W02', to: '2026-W01' },
    );
    assert.deepEqual(publication.cells.map((c) => c.cell), ['c2']);
    assert.deepEqual(publication.suppression, { reportsPublished: 5, cellsPublished: 1, cellsSuppressed: 1, shareOfReportsSuppressed: { min: 0.1667, max: 0.4444 } });
  });

  it('publishes only cells of at least k reports, each count true, each breakdown safe, from the seed', async () => {
    const { response, doc } = await fetchDoc();
    assert.match(String(response.headers['content-type']), /^application\/geo\+json/);
    assert.equal(response.headers['last-modified'], undefined, 'no date tells when the newest report came');
    assert.equal(doc.type, 'FeatureCollection');
    assert.equal(doc.k, K);
    const { rows } = await pool.query<{ cell: string; n: number }>(
      `SELECT cell, count(*)::int AS n FROM opendata_citizen_reports
       WHERE week_start >= date_trunc('week', now() AT TIME ZONE 'Europe/Paris')::date - 7 * 52
         AND week_start < date_trunc('week', now() AT TIME ZONE 'Europe/Paris')::date GROUP BY cell`,
    );
    const truth = new Map(rows.map((r) => [r.cell, r.n]));
    const expected = rows.filter((r) => r.n >= K).map((r) => r.cell).sort();
    assert.ok(expected.length > 0, 'the seed has cells of at least k reports');
    assert.deepEqual(doc.features.map((f) => f.id), expected, 'exactly the cells of k reports or more');
    for (const feature of doc.features) {
      const { reports, byCategory, byStage, byWeek } = feature.properties;
      assert.equal(reports, truth.get(feature.id));
      for (const breakdown of [byCategory, byStage, byWeek]) {
        const listed = Object.values(breakdown);
        assert.ok(listed.every((n) => n >= K), JSON.stringify(breakdown));
        const left = reports - listed.reduce((a, b) => a + b, 0);
        assert.ok(left === 0 || left >= K, `${feature.id}: a remainder of ${left} would be re-identifying`);
      }
      // A polygon of 200 m (never more than 250 m) a side, counter-clockwise, in WGS84.
      const ring = feature.geometry.coordinates[0];
      assert.equal(feature.geometry.type, 'Polygon');
      assert.equal(ring.length, 5);
      const area = ring.slice(0, -1).reduce((sum, [x1, y1], i) => sum + (x1 * ring[i + 1][1] - ring[i + 1][0] * y1), 0);
      assert.ok(area > 0, 'exterior ring counter-clockwise (RFC 7946 §3.1.6)');
      const { rows: sides } = await pool.query<{ side: number }>(
        `SELECT ST_Distance(ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography, ST_SetSRID(ST_MakePoint($3, $4), 4326)::geography) AS side`,
        [ring[0][0], ring[0][1], ring[1][0], ring[1][1]],
      );
      assert.ok(sides[0].side > 195 && sides[0].side < 205 && sides[0].side <= 250, `side ${sides[0].side} m`);
    }
    const suppressed = rows.filter((r) => r.n < K);
    assert.equal(doc.suppression.cellsSuppressed, suppressed.length);
    assert.equal(doc.suppression.reportsPublished, expected.reduce((sum, cell) => sum + truth.get(cell)!, 0));
    const actualShare = suppressed.reduce((s, r) => s + r.n, 0) / [...truth.values()].reduce((a, b) => a + b, 0);
    const { min, max } = doc.suppression.shareOfReportsSuppressed;
    assert.ok(min <= actualShare + 1e-4 && actualShare <= max + 1e-4, `${actualShare} within [${min}, ${max}]`);
  });

  it('never shows a cell of k−1 reports, and adding reports to a suppressed cell changes nothing visible until it holds k', async () => {
    const spot = emptySpots[0];
    const cell = await cellOf(spot);
    await report(spot); // the cell now exists, suppressed: the baseline the attacker watches
    const baseline = await fetchDoc();
    const baselineVersion = await versionOf();
    assert.ok(!baseline.doc.features.some((f) => f.id === cell));
    for (let n = 2; n < K; n++) {
      await report(spot, n % 2 ? 'TAG' : 'LIGHT_OUT', { status: n === 3 ? 'RESOLVED' : 'NEW' });
      const now = await fetchDoc();
      assert.ok(now.response.body.equals(baseline.response.body), `${n} reports: the same bytes`);
      assert.equal(now.response.headers.etag, baseline.response.headers.etag, `${n} reports: the same ETag`);
      assert.equal(now.response.headers['last-modified'], undefined);
      assert.equal((await versionOf()).tag, baselineVersion.tag);
      assert.equal(
        (await rawRequest(`${served.base}${PATH}`, { 'if-none-match': String(baseline.response.headers.etag) })).status,
        304,
        'a client holding the old version is told nothing changed',
      );
    }
    await report(spot);
    const reached = await fetchDoc();
    assert.notEqual(reached.response.headers.etag, baseline.response.headers.etag);
    const feature = reached.doc.features.find((f) => f.id === cell);
    assert.ok(feature, 'with k reports the cell appears');
    assert.equal(feature.properties.reports, K);
    assert.equal(reached.doc.suppression.cellsSuppressed, baseline.doc.suppression.cellsSuppressed - 1);
    // 3 LIGHT_OUT and 2 TAG: neither category, and no stage split of 4 + 1, may be listed.
    assert.deepEqual(feature.properties.byCategory, {});
    assert.deepEqual(feature.properties.byStage, {});
    assert.deepEqual(Object.values(feature.properties.byWeek), [K], 'all in one week: the week is listed');
    // The cell contains the reports' point, which the document never gives.
    assert.ok(!reached.text.includes(String(spot[0])) && !reached.text.includes(String(spot[1])), 'no coordinate of the report');
  });

  it('never lists a category with few reports, however many cells it is spread over', async () => {
    await pool.query(
      `INSERT INTO ticket_categories (code, label, description, service_category, service, group_label, ack_hours, resolve_hours, position)
       VALUES ('RARE_THING', 'Rare', 'A rare category.', 'STREET_LIGHTING', 'Éclairage public', 'Éclairage public', 24, 48, 99)`,
    );
    // Spread over published cells, and one rare report in a cell of its own that reaches k with common ones.
    const published = (await fetchDoc()).doc.features.slice(0, 3);
    for (const f of published) {
      const [[lon, lat], , [lon2, lat2]] = f.geometry.coordinates[0];
      await report([(lon + lon2) / 2, (lat + lat2) / 2], 'RARE_THING');
    }
    const spot = emptySpots[1];
    await report(spot, 'RARE_THING');
    for (let i = 0; i < K; i++) await report(spot, 'POTHOLE');
    const { doc, text } = await fetchDoc();
    assert.ok(!text.includes('RARE_THING'), 'the rare category is nowhere in the document');
    const ownCell = await cellOf(spot);
    const own = doc.features.find((f) => f.id === ownCell);
    assert.ok(own, 'k + 1 reports: the cell is published');
    assert.equal(own.properties.reports, K + 1);
    assert.deepEqual(own.properties.byCategory, {}, 'listing POTHOLE = k would reveal the one other report');
  });

  it('gives dates as ISO weeks only, and never the current week', async () => {
    const spot = emptySpots[2];
    for (let i = 0; i < K + 2; i++) await report(spot, 'FULL_BIN', { weeksAgo: 0 });
    const { doc, text } = await fetchDoc();
    const cell = await cellOf(spot);
    assert.ok(!doc.features.some((f) => f.id === cell), 'reports of the current week wait for the week to end');
    assert.doesNotMatch(text, /\d{4}-\d{2}-\d{2}|T\d{2}:\d{2}/, 'no calendar date or time anywhere');
    assert.match(doc.period.from, /^\d{4}-W\d{2}$/);
    assert.match(doc.period.to, /^\d{4}-W\d{2}$/);
    const { rows } = await pool.query<{ last: string }>(`SELECT to_char(now() AT TIME ZONE 'Europe/Paris' - interval '7 days', 'IYYY-"W"IW') AS last`);
    assert.equal(doc.period.to, rows[0].last, 'the window ends with the last completed week');
    for (const f of doc.features) for (const week of Object.keys(f.properties.byWeek)) assert.match(week, /^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$/);
  });

  it('carries no free text: every string is from a closed vocabulary', async () => {
    const { doc, text } = await fetchDoc();
    const allowed = [
      /^(FeatureCollection|Feature|Polygon|citizen-reports|EPSG:3035)$/,
      /^CRS3035RES200mN\d+E\d+$/,
      /^(OPEN|RESOLVED|REJECTED|DUPLICATE)$/,
      /^\d{4}-W\d{2}$/,
      new RegExp(`^(${categories.join('|')})$`),
      /^(type|name|k|cellSizeMetres|grid|period|from|to|suppression|reportsPublished|cellsPublished|cellsSuppressed|shareOfReportsSuppressed|min|max|features|id|geometry|coordinates|properties|cell|reports|byCategory|byStage|byWeek)$/,
    ];
    const walk = (value: unknown, at: string): void => {
      if (typeof value === 'string') assert.ok(allowed.some((re) => re.test(value)), `${at}: ${JSON.stringify(value)} is not from the vocabulary`);
      else if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${at}[${i}]`));
      else if (value && typeof value === 'object') for (const [key, v] of Object.entries(value)) (walk(key, `${at} key`), walk(v, `${at}.${key}`));
      else assert.ok(typeof value === 'number', `${at}: ${typeof value}`);
    };
    walk(doc, '$');
    for (const leaked of ['Attaque', 'appelez', 'attack-citizen', 'example.org', '06 11 22 33 44', 'rue de']) assert.ok(!text.includes(leaked), leaked);
  });

  it('moves its version when a published cell changes', async () => {
    const before = await versionOf();
    const [first] = (await fetchDoc()).doc.features;
    const [[lon, lat], , [lon2, lat2]] = first.geometry.coordinates[0];
    await report([(lon + lon2) / 2, (lat + lat2) / 2], 'LIGHT_OUT');
    const after = await versionOf();
    assert.notEqual(after.tag, before.tag);
    assert.equal(after.lastModified, null);
  });
});
