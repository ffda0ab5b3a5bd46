/**
 * Parsing and validation of GTFS feeds, without a database: the committed feed is the one the
 * seed generates and is valid; CSV per RFC 4180 (BOM, quotes, CRLF, line breaks in quotes); and
 * every bad input the report must name by file, line and field (missing file and column, unknown
 * stop, times out of order, invalid dates, coordinates, route types, colours, duplicate ids, NUL
 * bytes, not a zip, a zip bomb).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from '@connecte/testkit';
import { staleFiles, FEED_DIR } from '../../../scripts/generate-gtfs.js';
import { buildSeedGtfs } from '../../../prisma/seed/index.js';
import { GTFS_MAX_BLOCKS } from '../../../prisma/seed/gtfs.js';
import { GtfsSourceError, parseCsv, parseGtfs, type GtfsProblem } from '../src/gtfs-parse.js';
import { validateGtfs } from '../src/gtfs-validate.js';
import { writeZip } from '@connecte/shared/zip';
import { tinyFeed } from './gtfs-fixture.js';

function problemsOf(files: Record<string, string | Buffer>): GtfsProblem[] {
  const result = validateGtfs(parseGtfs({ files }));
  assert.equal(result.network, null, 'the feed must be refused');
  return result.problems;
}

function has(problems: GtfsProblem[], expected: Partial<GtfsProblem>): void {
  const found = problems.find((p) => Object.entries(expected).every(([k, v]) => (p as unknown as Record<string, unknown>)[k] === v));
  assert.ok(found, `expected a problem ${JSON.stringify(expected)} among ${JSON.stringify(problems, null, 1)}`);
}

describe('the shipped feed', () => {
  it('is the one the seed generates (npm run gtfs:generate writes it)', () => {
    assert.deepEqual(staleFiles(), [], `run npm run gtfs:generate: ${path.relative(ROOT, FEED_DIR)} is not current`);
  });

  it('is valid, read as a folder, and keeps within the buses of the seed', () => {
    const result = validateGtfs(parseGtfs({ folder: FEED_DIR }));
    assert.deepEqual(result.problems, []);
    const network = result.network!;
    assert.equal(network.routes.length, 6);
    assert.equal(network.stops.length, buildSeedGtfs().stopEquipment.size);
    assert.ok(network.stops.every((s) => /^BS-AGG-\d{5}$/.test(s.stopId)));
    for (const [service, blocks] of Object.entries(buildSeedGtfs().blocksPerService)) assert.ok(blocks <= GTFS_MAX_BLOCKS, `${service}: ${blocks} blocks`);
    // Every trip's stops are in time order and along its shape.
    const byTrip = new Map<string, typeof network.stopTimes>();
    for (const st of network.stopTimes) byTrip.set(st.tripId, [...(byTrip.get(st.tripId) ?? []), st]);
    const shapes = new Map(network.shapes.map((s) => [s.shapeId, s]));
    for (const trip of network.trips) {
      const times = byTrip.get(trip.tripId)!;
      for (let i = 1; i < times.length; i++) {
        assert.ok(times[i].arrivalSeconds >= times[i - 1].departureSeconds);
        assert.ok(times[i].shapeDistTraveled > times[i - 1].shapeDistTraveled);
      }
      assert.ok(times.at(-1)!.shapeDistTraveled <= shapes.get(trip.shapeId)!.lengthM + 0.5);
    }
    // Blocks: a bus's trips follow one another in time.
    const blocks = new Map<string, { start: number; end: number }[]>();
    for (const trip of network.trips) {
      const times = byTrip.get(trip.tripId)!;
      blocks.set(trip.blockId!, [...(blocks.get(trip.blockId!) ?? []), { start: times[0].departureSeconds, end: times.at(-1)!.arrivalSeconds }]);
    }
    for (const [block, list] of blocks) {
      list.sort((a, b) => a.start - b.start);
      for (let i = 1; i < list.length; i++) assert.ok(list[i].start >= list[i - 1].end, `block ${block} overlaps itself`);
    }
    assert.equal(network.validFrom, '2026-01-01');
    assert.equal(network.validTo, '2028-12-31');
  });
});

describe('CSV (RFC 4180)', () => {
  it('reads a BOM, CRLF, quoted commas, doubled quotes and line breaks inside quotes, with physical line numbers', () => {
    const problems: GtfsProblem[] = [];
    const table = parseCsv('stops.txt', '\uFEFFstop_id,stop_name\r\n"S1","Gare, ""Centre"""\r\nS2,"two\r\nlines"\r\nS3,Three\r\n', problems);
    assert.deepEqual(problems, []);
    assert.deepEqual(table.header, ['stop_id', 'stop_name']);
    assert.deepEqual(table.records.map((r) => [r.line, r.values.stop_id, r.values.stop_name]), [
      [2, 'S1', 'Gare, "Centre"'],
      [3, 'S2', 'two\r\nlines'],
      [5, 'S3', 'Three'],
    ]);
  });

  it('reports an unterminated quote and a wrong number of fields with their lines', () => {
    const problems = problemsOf({ ...tinyFeed(), 'stops.txt': 'stop_id,stop_name,stop_lat,stop_lon\nS1,One,48.95\nS2,"Two,48.96,4.37\n' });
    has(problems, { file: 'stops.txt', line: 2, code: 'INVALID_CSV' });
    has(problems, { file: 'stops.txt', line: 3, code: 'INVALID_CSV' });
  });
});

describe('the report names every problem by file, line and field', () => {
  it('a valid tiny feed passes, distances measured when shapes.txt gives none', () => {
    const result = validateGtfs(parseGtfs({ files: tinyFeed() }));
    assert.deepEqual(result.problems, []);
    assert.ok(result.network!.shapes[0].lengthM > 1300 && result.network!.shapes[0].lengthM < 1400);
  });

  it('a missing required file, and a missing required column', () => {
    const files = tinyFeed();
    delete (files as Partial<typeof files>)['stop_times.txt'];
    has(problemsOf(files), { file: 'stop_times.txt', line: null, code: 'MISSING_FILE' });
    const noCalendar = tinyFeed();
    delete (noCalendar as Partial<typeof noCalendar>)['calendar.txt'];
    has(problemsOf(noCalendar), { file: 'calendar.txt', code: 'MISSING_FILE' });
    has(problemsOf({ ...tinyFeed(), 'stops.txt': 'stop_id,stop_name,stop_lat\nS1,One,48.95\n' }), { file: 'stops.txt', line: 1, field: 'stop_lon', code: 'MISSING_FIELD' });
  });

  it('a stop_time referring to an unknown stop', () => {
    const problems = problemsOf({ ...tinyFeed(), 'stop_times.txt': tinyFeed()['stop_times.txt'].replace('S2,2', 'S9,2') });
    has(problems, { file: 'stop_times.txt', line: 3, field: 'stop_id', code: 'UNKNOWN_REFERENCE' });
    assert.match(problems.find((p) => p.code === 'UNKNOWN_REFERENCE')!.message, /S9/);
  });

  it('times out of order: along the trip, departure before arrival, and a time that is not one', () => {
    const along = problemsOf({ ...tinyFeed(), 'stop_times.txt': tinyFeed()['stop_times.txt'].replace('08:05:00,08:05:30', '07:55:00,07:55:30') });
    has(along, { file: 'stop_times.txt', line: 3, field: 'arrival_time', code: 'TIME_OUT_OF_ORDER' });
    const within = problemsOf({ ...tinyFeed(), 'stop_times.txt': tinyFeed()['stop_times.txt'].replace('08:05:00,08:05:30', '08:05:30,08:05:00') });
    has(within, { file: 'stop_times.txt', line: 3, field: 'departure_time', code: 'TIME_OUT_OF_ORDER' });
    const bad = problemsOf({ ...tinyFeed(), 'stop_times.txt': tinyFeed()['stop_times.txt'].replace('08:05:00', '08:65:00') });
    has(bad, { file: 'stop_times.txt', line: 3, field: 'arrival_time', code: 'INVALID_TIME' });
  });

  it('a calendar with an invalid date (30 February, a malformed one, end before start)', () => {
    const cal = (start: string, end: string) => ({ ...tinyFeed(), 'calendar.txt': `service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\nWK,1,1,1,1,1,0,0,${start},${end}\n` });
    has(problemsOf(cal('20260230', '20281231')), { file: 'calendar.txt', line: 2, field: 'start_date', code: 'INVALID_DATE' });
    has(problemsOf(cal('2026-01-01', '20281231')), { file: 'calendar.txt', line: 2, field: 'start_date', code: 'INVALID_DATE' });
    has(problemsOf(cal('20260101', '20251231')), { file: 'calendar.txt', line: 2, field: 'end_date', code: 'INVALID_DATE' });
    has(problemsOf({ ...tinyFeed(), 'calendar_dates.txt': 'service_id,date,exception_type\nWK,20261345,2\nWK,20261225,3\n' }), { file: 'calendar_dates.txt', line: 2, field: 'date', code: 'INVALID_DATE' });
    has(problemsOf({ ...tinyFeed(), 'calendar_dates.txt': 'service_id,date,exception_type\nWK,20261225,3\n' }), { file: 'calendar_dates.txt', line: 2, field: 'exception_type', code: 'INVALID_VALUE' });
  });

  it('bad coordinates, route type and colour; duplicate ids; every problem at once', () => {
    const problems = problemsOf({
      ...tinyFeed(),
      'stops.txt': 'stop_id,stop_name,stop_lat,stop_lon\nS1,One,200,4.36\nS2,Two,48.96,4.37\nS2,Again,48.96,4.37\n',
      'routes.txt': 'route_id,agency_id,route_short_name,route_type,route_color\nR1,A,1,715,red\nR1,A,2,3,\n',
    });
    has(problems, { file: 'stops.txt', line: 2, field: 'stop_lat', code: 'INVALID_COORDINATE' });
    has(problems, { file: 'stops.txt', line: 4, field: 'stop_id', code: 'DUPLICATE_ID' });
    has(problems, { file: 'routes.txt', line: 2, field: 'route_type', code: 'INVALID_VALUE' });
    has(problems, { file: 'routes.txt', line: 2, field: 'route_color', code: 'INVALID_VALUE' });
    has(problems, { file: 'routes.txt', line: 3, field: 'route_id', code: 'DUPLICATE_ID' });
  });

  it('hostile bytes: a NUL byte, invalid UTF-8, not a zip, a zip bomb, a path with ..', () => {
    has(problemsOf({ ...tinyFeed(), 'stops.txt': Buffer.from('stop_id,stop_name,stop_lat,stop_lon\nS1,One\0,48.95,4.36\n') }), { file: 'stops.txt', line: 2, code: 'INVALID_ENCODING' });
    has(problemsOf({ ...tinyFeed(), 'routes.txt': Buffer.from([0x72, 0x6f, 0xff, 0xfe, 0x0a]) }), { file: 'routes.txt', code: 'INVALID_ENCODING' });
    assert.throws(() => parseGtfs(Buffer.from('PK not really a zip')), GtfsSourceError);
    assert.throws(() => parseGtfs(Buffer.from('%PDF-1.4')), (e: unknown) => e instanceof GtfsSourceError && e.problem.code === 'NOT_A_ZIP');
    // 80 MB of zeros deflate to ~80 kB: refused before it is inflated.
    const bomb = writeZip({ ...tinyFeed() });
    const big = writeZip({ 'stops.txt': Buffer.alloc(80 * 1024 * 1024) });
    assert.ok(big.length < 1024 * 1024);
    assert.throws(() => parseGtfs(big), (e: unknown) => e instanceof GtfsSourceError && e.problem.file === 'stops.txt' && /inflates/.test(e.problem.message));
    assert.ok(parseGtfs(bomb).tables.has('stops.txt'));
    assert.throws(() => parseGtfs(writeZip({ '../stops.txt': 'x' })), GtfsSourceError);
  });

  it('a zip whose files stand in one folder is read from it; other files are warnings', () => {
    const files = Object.fromEntries(Object.entries({ ...tinyFeed(), 'notes.md': 'hello' }).map(([k, v]) => [`feed/${k}`, v]));
    const result = validateGtfs(parseGtfs(writeZip(files)));
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.warnings, ['notes.md: not a file this importer reads, ignored']);
  });
});
