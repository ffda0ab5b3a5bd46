/**
 * Validation of a parsed GTFS feed, with a full report: every missing file or column, every
 * missing or invalid value, every duplicate id and broken reference, every time out of order,
 * every invalid date, coordinate, route type or colour — each with its file, line and field.
 * The network comes out only when there is no problem at all (no partial import).
 *
 * What this importer needs beyond the GTFS minimum (docs/mobility.md): `shapes.txt` and a
 * `shape_id` on every trip (the live tracker follows shapes), and times at every stop.
 */
import type { StopTimeRow } from './types.js';
import type { CsvRecord, CsvTable, GtfsFiles, GtfsProblem } from './gtfs-parse.js';

/** At most this many problems are listed (the count of the others is given). */
export const MAX_PROBLEMS = 1000;

export interface GtfsAgency {
  agencyId: string;
  name: string;
  url: string;
  timezone: string;
  lang: string | null;
  phone: string | null;
}
export interface GtfsRoute {
  routeId: string;
  agencyId: string;
  shortName: string | null;
  longName: string | null;
  description: string | null;
  routeType: number;
  color: string | null;
  textColor: string | null;
  sortOrder: number | null;
}
export interface GtfsStop {
  stopId: string;
  code: string | null;
  name: string;
  description: string | null;
  lon: number;
  lat: number;
  wheelchairBoarding: number | null;
}
export interface GtfsCalendar {
  serviceId: string;
  days: [boolean, boolean, boolean, boolean, boolean, boolean, boolean];
  /** YYYY-MM-DD */
  startDate: string;
  endDate: string;
}
export interface GtfsCalendarDate {
  serviceId: string;
  date: string;
  exceptionType: 1 | 2;
}
export interface GtfsShape {
  shapeId: string;
  coordinates: [number, number][];
  distances: number[];
  lengthM: number;
}
export interface GtfsTrip {
  tripId: string;
  routeId: string;
  serviceId: string;
  shapeId: string;
  headsign: string | null;
  shortName: string | null;
  directionId: number | null;
  blockId: string | null;
}

export interface GtfsNetwork {
  agencies: GtfsAgency[];
  routes: GtfsRoute[];
  stops: GtfsStop[];
  calendar: GtfsCalendar[];
  calendarDates: GtfsCalendarDate[];
  shapes: GtfsShape[];
  trips: GtfsTrip[];
  stopTimes: (StopTimeRow & { timepoint: boolean })[];
  feedVersion: string | null;
  /** First and last day any service runs (YYYY-MM-DD), null without services. */
  validFrom: string | null;
  validTo: string | null;
  /** Rows per file. */
  counts: Record<string, number>;
}

export interface GtfsValidation {
  network: GtfsNetwork | null;
  problems: GtfsProblem[];
  /** Problems beyond MAX_PROBLEMS, not listed. */
  moreProblems: number;
  warnings: string[];
}

/** GTFS route_type values accepted (basic types; extended ones are refused). */
export const ROUTE_TYPES = [0, 1, 2, 3, 4, 5, 6, 7, 11, 12] as const;

const REQUIRED_FILES = ['agency.txt', 'stops.txt', 'routes.txt', 'trips.txt', 'stop_times.txt', 'shapes.txt'] as const;

const REQUIRED_FIELDS: Record<string, string[]> = {
  'agency.txt': ['agency_name', 'agency_url', 'agency_timezone'],
  'stops.txt': ['stop_id', 'stop_name', 'stop_lat', 'stop_lon'],
  'routes.txt': ['route_id', 'route_type'],
  'trips.txt': ['route_id', 'service_id', 'trip_id', 'shape_id'],
  'stop_times.txt': ['trip_id', 'arrival_time', 'departure_time', 'stop_id', 'stop_sequence'],
  'calendar.txt': ['service_id', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday', 'start_date', 'end_date'],
  'calendar_dates.txt': ['service_id', 'date', 'exception_type'],
  'shapes.txt': ['shape_id', 'shape_pt_lat', 'shape_pt_lon', 'shape_pt_sequence'],
  'feed_info.txt': ['feed_publisher_name', 'feed_publisher_url', 'feed_lang'],
};

const DAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'] as const;

/** `HH:MM:SS` (hours may exceed 24) → seconds, or null. */
export function parseGtfsTime(text: string): number | null {
  const m = /^(\d{1,3}):([0-5]\d):([0-5]\d)$/.exec(text);
  if (!m) return null;
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

/** `YYYYMMDD` → `YYYY-MM-DD` when it is a real calendar date, else null. */
export function parseGtfsDate(text: string): string | null {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(text);
  if (!m) return null;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(y, mo - 1, d));
  if (y < 1900 || date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return null;
  return `${m[1]}-${m[2]}-${m[3]}`;
}

const A = 6378137;
const E2 = (1 / 298.257223563) * (2 - 1 / 298.257223563);
/** Metres between two [lon, lat] points close together (WGS84, local radii of curvature). */
export function segmentMetres(a: [number, number], b: [number, number]): number {
  const phi = (((a[1] + b[1]) / 2) * Math.PI) / 180;
  const s = Math.sin(phi);
  const w = Math.sqrt(1 - E2 * s * s);
  const mLat = ((A * (1 - E2)) / (w * w * w)) * (Math.PI / 180);
  const mLon = (A / w) * Math.cos(phi) * (Math.PI / 180);
  return Math.hypot((b[0] - a[0]) * mLon, (b[1] - a[1]) * mLat);
}

function validTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return tz.includes('/') || tz === 'UTC';
  } catch {
    return false;
  }
}

class Report {
  readonly problems: GtfsProblem[] = [];
  more = 0;
  add(file: string, line: number | null, field: string | null, code: string, message: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push({ file, line, field, code, message });
    else this.more++;
  }
  get count(): number {
    return this.problems.length + this.more;
  }
}

/** Reads the fields of one record, reporting each problem at its file, line and field. */
class Fields {
  constructor(
    private readonly report: Report,
    private readonly file: string,
    readonly rec: CsvRecord,
  ) {}
  private bad(field: string, code: string, message: string): null {
    this.report.add(this.file, this.rec.line, field, code, message);
    return null;
  }
  opt(field: string): string | null {
    const v = this.rec.values[field];
    return v === undefined || v === '' ? null : v;
  }
  req(field: string): string | null {
    const v = this.opt(field);
    return v === null ? this.bad(field, 'MISSING_VALUE', `${field} is required`) : v;
  }
  num(field: string, required: boolean, min: number, max: number, code = 'INVALID_VALUE'): number | null {
    const v = required ? this.req(field) : this.opt(field);
    if (v === null) return null;
    const n = Number(v);
    if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v) || !Number.isFinite(n)) return this.bad(field, code, `${field} “${v}” is not a number`);
    if (n < min || n > max) return this.bad(field, code, `${field} ${v} is outside [${min}, ${max}]`);
    return n;
  }
  int(field: string, required: boolean, allowed: readonly number[] | [number, number]): number | null {
    const v = required ? this.req(field) : this.opt(field);
    if (v === null) return null;
    const n = Number(v);
    if (!/^-?\d+$/.test(v)) return this.bad(field, 'INVALID_VALUE', `${field} “${v}” is not an integer`);
    const ok = allowed.length === 2 && allowed[1] - allowed[0] > 2 ? n >= allowed[0] && n <= allowed[1] : (allowed as readonly number[]).includes(n);
    if (!ok) return this.bad(field, 'INVALID_VALUE', `${field} ${v} is not one of the accepted values (${allowed.length === 2 && allowed[1] - allowed[0] > 2 ? `${allowed[0]} to ${allowed[1]}` : allowed.join(', ')})`);
    return n;
  }
  date(field: string): string | null {
    const v = this.req(field);
    if (v === null) return null;
    return parseGtfsDate(v) ?? this.bad(field, 'INVALID_DATE', `${field} “${v}” is not a valid date (YYYYMMDD)`);
  }
  time(field: string, required: boolean): number | null {
    const v = required ? this.req(field) : this.opt(field);
    if (v === null) return null;
    const t = parseGtfsTime(v);
    return t ?? this.bad(field, 'INVALID_TIME', `${field} “${v}” is not a time (HH:MM:SS)`);
  }
  colour(field: string): string | null {
    const v = this.opt(field);
    if (v === null) return null;
    return /^[0-9A-Fa-f]{6}$/.test(v) ? v.toUpperCase() : this.bad(field, 'INVALID_VALUE', `${field} “${v}” is not a colour (six hexadecimal digits)`);
  }
}

/** Validates the parsed files; `network` is null unless the report is empty. */
export function validateGtfs(files: GtfsFiles): GtfsValidation {
  const report = new Report();
  for (const p of files.problems) report.add(p.file, p.line, p.field, p.code, p.message);
  const warnings = [...files.warnings];
  const unreadable = new Set(files.problems.filter((p) => p.code === 'INVALID_ENCODING' || p.code === 'MISSING_HEADER').map((p) => p.file));

  for (const file of REQUIRED_FILES) if (!files.tables.has(file)) report.add(file, null, null, 'MISSING_FILE', `${file} is required and missing`);
  if (!files.tables.has('calendar.txt') && !files.tables.has('calendar_dates.txt')) {
    report.add('calendar.txt', null, null, 'MISSING_FILE', 'calendar.txt or calendar_dates.txt is required (neither is there)');
  }
  /** The table's records, or none when a required column is missing (each missing column reported). */
  const table = (file: string, extraRequired: string[] = []): CsvTable | null => {
    const t = files.tables.get(file);
    if (!t || unreadable.has(file)) return null;
    let ok = true;
    for (const field of [...REQUIRED_FIELDS[file], ...extraRequired]) {
      if (!t.header.includes(field)) {
        report.add(file, 1, field, 'MISSING_FIELD', `column ${field} is required and missing from the header`);
        ok = false;
      }
    }
    return ok ? t : null;
  };
  const counts: Record<string, number> = {};
  const count = (file: string, n: number) => (counts[file] = n);

  // --- agency.txt
  const agencies: GtfsAgency[] = [];
  const agencyT = table('agency.txt');
  if (agencyT) {
    const multi = agencyT.records.length > 1;
    if (multi && !agencyT.header.includes('agency_id')) report.add('agency.txt', 1, 'agency_id', 'MISSING_FIELD', 'agency_id is required when the feed has several agencies');
    const seen = new Map<string, number>();
    for (const rec of agencyT.records) {
      const f = new Fields(report, 'agency.txt', rec);
      const id = (multi ? f.req('agency_id') : f.opt('agency_id')) ?? (multi ? null : '');
      const name = f.req('agency_name');
      const url = f.req('agency_url');
      const tz = f.req('agency_timezone');
      if (url !== null && !/^https?:\/\/\S+$/i.test(url)) report.add('agency.txt', rec.line, 'agency_url', 'INVALID_VALUE', `agency_url “${url}” is not an http(s) URL`);
      if (tz !== null && !validTimezone(tz)) report.add('agency.txt', rec.line, 'agency_timezone', 'INVALID_VALUE', `agency_timezone “${tz}” is not a time zone (e.g. Europe/Paris)`);
      if (id === null) continue;
      if (seen.has(id)) {
        report.add('agency.txt', rec.line, 'agency_id', 'DUPLICATE_ID', `agency_id “${id}” already on line ${seen.get(id)}`);
        continue;
      }
      seen.set(id, rec.line);
      if (name !== null && url !== null && tz !== null) agencies.push({ agencyId: id, name, url, timezone: tz, lang: f.opt('agency_lang'), phone: f.opt('agency_phone') });
    }
    if (!agencyT.records.length) report.add('agency.txt', null, null, 'MISSING_VALUE', 'agency.txt has no agency');
    count('agency.txt', agencyT.records.length);
  }
  const agencyIds = new Set(agencies.map((a) => a.agencyId));
  const soleAgency = agencyT && agencyT.records.length === 1 ? (agencies[0]?.agencyId ?? '') : null;

  // --- stops.txt
  const stops: GtfsStop[] = [];
  const stopT = table('stops.txt');
  const stopIds = new Map<string, number>();
  const notStops = new Set<string>();
  if (stopT) {
    for (const rec of stopT.records) {
      const f = new Fields(report, 'stops.txt', rec);
      const id = f.req('stop_id');
      const name = f.req('stop_name');
      const lat = f.num('stop_lat', true, -90, 90, 'INVALID_COORDINATE');
      const lon = f.num('stop_lon', true, -180, 180, 'INVALID_COORDINATE');
      const locationType = f.int('location_type', false, [0, 1, 2, 3, 4]);
      const wheelchair = f.int('wheelchair_boarding', false, [0, 1, 2]);
      if (lat === 0 && lon === 0) report.add('stops.txt', rec.line, 'stop_lat', 'INVALID_COORDINATE', 'stop_lat, stop_lon 0, 0 is no place (a missing position?)');
      if (id === null) continue;
      if (stopIds.has(id)) {
        report.add('stops.txt', rec.line, 'stop_id', 'DUPLICATE_ID', `stop_id “${id}” already on line ${stopIds.get(id)}`);
        continue;
      }
      stopIds.set(id, rec.line);
      if (locationType !== null && locationType !== 0) {
        warnings.push(`stops.txt line ${rec.line}: location_type ${locationType} (${id}) is not a stop, ignored`);
        notStops.add(id);
        continue;
      }
      if (name !== null && lat !== null && lon !== null) {
        stops.push({ stopId: id, code: f.opt('stop_code'), name, description: f.opt('stop_desc'), lat, lon, wheelchairBoarding: wheelchair });
      }
    }
    count('stops.txt', stops.length);
  }
  const stopById = new Map(stops.map((s) => [s.stopId, s]));

  // --- routes.txt
  const routes: GtfsRoute[] = [];
  const routeT = table('routes.txt');
  const routeIds = new Map<string, number>();
  if (routeT) {
    for (const rec of routeT.records) {
      const f = new Fields(report, 'routes.txt', rec);
      const id = f.req('route_id');
      let agencyId = f.opt('agency_id');
      if (agencyId === null) {
        if (soleAgency === null) report.add('routes.txt', rec.line, 'agency_id', 'MISSING_VALUE', 'agency_id is required when the feed has several agencies');
        else agencyId = soleAgency;
      } else if (agencyT && !agencyIds.has(agencyId)) {
        report.add('routes.txt', rec.line, 'agency_id', 'UNKNOWN_REFERENCE', `agency_id “${agencyId}” is not in agency.txt`);
        agencyId = null;
      }
      const shortName = f.opt('route_short_name');
      const longName = f.opt('route_long_name');
      if (shortName === null && longName === null) report.add('routes.txt', rec.line, 'route_short_name', 'MISSING_VALUE', 'route_short_name or route_long_name is required');
      const type = f.int('route_type', true, ROUTE_TYPES);
      const color = f.colour('route_color');
      const textColor = f.colour('route_text_color');
      const sortOrder = f.int('route_sort_order', false, [0, 1_000_000]);
      if (id === null) continue;
      if (routeIds.has(id)) {
        report.add('routes.txt', rec.line, 'route_id', 'DUPLICATE_ID', `route_id “${id}” already on line ${routeIds.get(id)}`);
        continue;
      }
      routeIds.set(id, rec.line);
      if (agencyId !== null && type !== null) {
        routes.push({ routeId: id, agencyId, shortName, longName, description: f.opt('route_desc'), routeType: type, color, textColor, sortOrder });
      }
    }
    count('routes.txt', routes.length);
  }

  // --- calendar.txt, calendar_dates.txt
  const calendar: GtfsCalendar[] = [];
  const serviceIds = new Set<string>();
  const calT = table('calendar.txt');
  if (calT) {
    const seen = new Map<string, number>();
    for (const rec of calT.records) {
      const f = new Fields(report, 'calendar.txt', rec);
      const id = f.req('service_id');
      const days = DAYS.map((d) => f.int(d, true, [0, 1]));
      const start = f.date('start_date');
      const end = f.date('end_date');
      if (start && end && start > end) report.add('calendar.txt', rec.line, 'end_date', 'INVALID_DATE', `end_date ${end} is before start_date ${start}`);
      if (id === null) continue;
      if (seen.has(id)) {
        report.add('calendar.txt', rec.line, 'service_id', 'DUPLICATE_ID', `service_id “${id}” already on line ${seen.get(id)}`);
        continue;
      }
      seen.set(id, rec.line);
      serviceIds.add(id);
      if (days.every((d) => d !== null) && start && end && start <= end) {
        calendar.push({ serviceId: id, days: days.map((d) => d === 1) as GtfsCalendar['days'], startDate: start, endDate: end });
      }
    }
    count('calendar.txt', calendar.length);
  }
  const calendarDates: GtfsCalendarDate[] = [];
  const cdT = table('calendar_dates.txt');
  if (cdT) {
    const seen = new Map<string, number>();
    for (const rec of cdT.records) {
      const f = new Fields(report, 'calendar_dates.txt', rec);
      const id = f.req('service_id');
      const date = f.date('date');
      const type = f.int('exception_type', true, [1, 2]);
      if (id === null || date === null) continue;
      const key = `${id}\0${date}`;
      if (seen.has(key)) {
        report.add('calendar_dates.txt', rec.line, 'date', 'DUPLICATE_ID', `service “${id}” on ${date} already on line ${seen.get(key)}`);
        continue;
      }
      seen.set(key, rec.line);
      serviceIds.add(id);
      if (type !== null) calendarDates.push({ serviceId: id, date, exceptionType: type as 1 | 2 });
    }
    count('calendar_dates.txt', calendarDates.length);
  }

  // --- shapes.txt
  const shapes: GtfsShape[] = [];
  const shapeT = table('shapes.txt');
  if (shapeT) {
    const points = new Map<string, { seq: number; lon: number; lat: number; dist: number | null; line: number }[]>();
    for (const rec of shapeT.records) {
      const f = new Fields(report, 'shapes.txt', rec);
      const id = f.req('shape_id');
      const lat = f.num('shape_pt_lat', true, -90, 90, 'INVALID_COORDINATE');
      const lon = f.num('shape_pt_lon', true, -180, 180, 'INVALID_COORDINATE');
      const seq = f.int('shape_pt_sequence', true, [0, 2_147_483_647]);
      const d = f.num('shape_dist_traveled', false, 0, 1e8);
      if (id === null || lat === null || lon === null || seq === null) continue;
      let list = points.get(id);
      if (!list) points.set(id, (list = []));
      list.push({ seq, lon, lat, dist: d, line: rec.line });
    }
    for (const [id, list] of points) {
      list.sort((a, b) => a.seq - b.seq);
      let ok = true;
      for (let i = 1; i < list.length; i++) {
        if (list[i].seq === list[i - 1].seq) {
          report.add('shapes.txt', list[i].line, 'shape_pt_sequence', 'DUPLICATE_ID', `shape “${id}” has shape_pt_sequence ${list[i].seq} twice (line ${list[i - 1].line})`);
          ok = false;
        }
        const a = list[i - 1].dist;
        const b = list[i].dist;
        if (a !== null && b !== null && b < a) {
          report.add('shapes.txt', list[i].line, 'shape_dist_traveled', 'INVALID_VALUE', `shape “${id}”: shape_dist_traveled ${b} decreases (line ${list[i - 1].line} has ${a})`);
          ok = false;
        }
      }
      if (list.length < 2) {
        report.add('shapes.txt', list[0].line, 'shape_id', 'INVALID_VALUE', `shape “${id}” has a single point (at least two make a line)`);
        ok = false;
      }
      if (!ok) continue;
      const coordinates = list.map((p): [number, number] => [p.lon, p.lat]);
      // Given distances are kept (stop_times' shape_dist_traveled are in the same unit); else measured, metres.
      const given = list.every((p) => p.dist !== null);
      const distances = [0];
      for (let i = 1; i < list.length; i++) distances.push(given ? list[i].dist! - list[0].dist! : distances[i - 1] + segmentMetres(coordinates[i - 1], coordinates[i]));
      shapes.push({ shapeId: id, coordinates, distances, lengthM: distances[distances.length - 1] });
    }
    count('shapes.txt', shapeT.records.length);
  }
  const shapeById = new Map(shapes.map((s) => [s.shapeId, s]));
  const shapeIdsSeen = new Set(shapeT?.records.map((r) => r.values.shape_id).filter(Boolean) ?? []);

  // --- trips.txt
  const trips: GtfsTrip[] = [];
  const tripT = table('trips.txt');
  const tripLines = new Map<string, number>();
  if (tripT) {
    for (const rec of tripT.records) {
      const f = new Fields(report, 'trips.txt', rec);
      const id = f.req('trip_id');
      const routeId = f.req('route_id');
      const serviceId = f.req('service_id');
      const shapeId = f.req('shape_id');
      const direction = f.int('direction_id', false, [0, 1]);
      if (routeId !== null && routeT && !routeIds.has(routeId)) report.add('trips.txt', rec.line, 'route_id', 'UNKNOWN_REFERENCE', `route_id “${routeId}” is not in routes.txt`);
      if (serviceId !== null && (calT || cdT) && !serviceIds.has(serviceId)) report.add('trips.txt', rec.line, 'service_id', 'UNKNOWN_REFERENCE', `service_id “${serviceId}” is in neither calendar.txt nor calendar_dates.txt`);
      if (shapeId !== null && shapeT && !shapeIdsSeen.has(shapeId)) report.add('trips.txt', rec.line, 'shape_id', 'UNKNOWN_REFERENCE', `shape_id “${shapeId}” is not in shapes.txt`);
      if (id === null) continue;
      if (tripLines.has(id)) {
        report.add('trips.txt', rec.line, 'trip_id', 'DUPLICATE_ID', `trip_id “${id}” already on line ${tripLines.get(id)}`);
        continue;
      }
      tripLines.set(id, rec.line);
      if (routeId !== null && serviceId !== null && shapeId !== null) {
        trips.push({ tripId: id, routeId, serviceId, shapeId, headsign: f.opt('trip_headsign'), shortName: f.opt('trip_short_name'), directionId: direction, blockId: f.opt('block_id') });
      }
    }
    count('trips.txt', trips.length);
  }
  const tripById = new Map(trips.map((t) => [t.tripId, t]));

  // --- stop_times.txt
  const stopTimes: GtfsNetwork['stopTimes'] = [];
  const stT = table('stop_times.txt');
  if (stT) {
    const byTrip = new Map<string, { seq: number; stopId: string; arr: number; dep: number; dist: number | null; timepoint: boolean; line: number }[]>();
    for (const rec of stT.records) {
      const f = new Fields(report, 'stop_times.txt', rec);
      const tripId = f.req('trip_id');
      const stopId = f.req('stop_id');
      const seq = f.int('stop_sequence', true, [0, 2_147_483_647]);
      const arr = f.time('arrival_time', true);
      const dep = f.time('departure_time', true);
      const d = f.num('shape_dist_traveled', false, 0, 1e8);
      const timepoint = f.int('timepoint', false, [0, 1]);
      if (tripId !== null && tripT && !tripLines.has(tripId)) report.add('stop_times.txt', rec.line, 'trip_id', 'UNKNOWN_REFERENCE', `trip_id “${tripId}” is not in trips.txt`);
      if (stopId !== null && stopT && !stopIds.has(stopId)) report.add('stop_times.txt', rec.line, 'stop_id', 'UNKNOWN_REFERENCE', `stop_id “${stopId}” is not in stops.txt`);
      else if (stopId !== null && notStops.has(stopId)) {
        report.add('stop_times.txt', rec.line, 'stop_id', 'UNKNOWN_REFERENCE', `stop_id “${stopId}” is a station or entrance (location_type ≠ 0), not a stop`);
      }
      if (arr !== null && dep !== null && dep < arr) report.add('stop_times.txt', rec.line, 'departure_time', 'TIME_OUT_OF_ORDER', `departure_time ${f.opt('departure_time')} is before arrival_time ${f.opt('arrival_time')}`);
      if (tripId === null || stopId === null || seq === null || arr === null || dep === null) continue;
      let list = byTrip.get(tripId);
      if (!list) byTrip.set(tripId, (list = []));
      list.push({ seq, stopId, arr, dep, dist: d, timepoint: timepoint !== 0, line: rec.line });
    }
    for (const [tripId, list] of byTrip) {
      list.sort((a, b) => a.seq - b.seq);
      const trip = tripById.get(tripId);
      const shape = trip ? shapeById.get(trip.shapeId) : undefined;
      if (list.length < 2) report.add('stop_times.txt', list[0].line, 'trip_id', 'INVALID_VALUE', `trip “${tripId}” has a single stop time (at least two)`);
      for (let i = 1; i < list.length; i++) {
        const prev = list[i - 1];
        const cur = list[i];
        if (cur.seq === prev.seq) {
          report.add('stop_times.txt', cur.line, 'stop_sequence', 'DUPLICATE_ID', `trip “${tripId}” has stop_sequence ${cur.seq} twice (line ${prev.line})`);
          continue;
        }
        if (cur.arr < prev.dep) {
          report.add('stop_times.txt', cur.line, 'arrival_time', 'TIME_OUT_OF_ORDER', `trip “${tripId}”: arrival_time ${fmt(cur.arr)} at stop_sequence ${cur.seq} is before the departure ${fmt(prev.dep)} from stop_sequence ${prev.seq} (line ${prev.line})`);
        }
        if (cur.dist !== null && prev.dist !== null && cur.dist < prev.dist) {
          report.add('stop_times.txt', cur.line, 'shape_dist_traveled', 'INVALID_VALUE', `trip “${tripId}”: shape_dist_traveled ${cur.dist} decreases (line ${prev.line} has ${prev.dist})`);
        }
      }
      if (shape) {
        for (const st of list) {
          if (st.dist !== null && st.dist > shape.lengthM + 50) {
            report.add('stop_times.txt', st.line, 'shape_dist_traveled', 'INVALID_VALUE', `shape_dist_traveled ${st.dist} is beyond the end of shape “${shape.shapeId}” (${Math.round(shape.lengthM)})`);
          }
        }
      }
      if (report.count || !trip || !shape) continue;
      // Distances not given: each stop projected on the shape, onwards from the previous one.
      let from = 0;
      for (const st of list) {
        let dist = st.dist;
        if (dist === null) {
          const stop = stopById.get(st.stopId)!;
          dist = project(shape, [stop.lon, stop.lat], from);
        }
        from = dist;
        stopTimes.push({ tripId, stopSequence: st.seq, stopId: st.stopId, arrivalSeconds: st.arr, departureSeconds: st.dep, shapeDistTraveled: dist, timepoint: st.timepoint });
      }
    }
    for (const trip of trips) if (!byTrip.has(trip.tripId)) report.add('trips.txt', tripLines.get(trip.tripId)!, 'trip_id', 'INVALID_VALUE', `trip “${trip.tripId}” has no stop times`);
    count('stop_times.txt', stT.records.length);
  }

  // --- feed_info.txt
  let feedVersion: string | null = null;
  const infoT = table('feed_info.txt');
  if (infoT) {
    for (const rec of infoT.records.slice(0, 1)) {
      const f = new Fields(report, 'feed_info.txt', rec);
      feedVersion = f.opt('feed_version');
      const start = f.opt('feed_start_date');
      const end = f.opt('feed_end_date');
      if (start !== null && !parseGtfsDate(start)) report.add('feed_info.txt', rec.line, 'feed_start_date', 'INVALID_DATE', `feed_start_date “${start}” is not a valid date (YYYYMMDD)`);
      if (end !== null && !parseGtfsDate(end)) report.add('feed_info.txt', rec.line, 'feed_end_date', 'INVALID_DATE', `feed_end_date “${end}” is not a valid date (YYYYMMDD)`);
    }
    count('feed_info.txt', infoT.records.length);
  }

  if (report.count) return { network: null, problems: report.problems, moreProblems: report.more, warnings };
  const days = [
    ...calendar.flatMap((c) => [c.startDate, c.endDate]),
    ...calendarDates.filter((d) => d.exceptionType === 1).map((d) => d.date),
  ].sort();
  return {
    network: {
      agencies,
      routes,
      stops,
      calendar,
      calendarDates,
      shapes,
      trips,
      stopTimes,
      feedVersion,
      validFrom: days[0] ?? null,
      validTo: days[days.length - 1] ?? null,
      counts,
    },
    problems: [],
    moreProblems: 0,
    warnings,
  };
}

function fmt(t: number): string {
  return `${String(Math.floor(t / 3600)).padStart(2, '0')}:${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`;
}

/** Distance along the shape of the point nearest `p`, at or after `from` (planar near each segment). */
function project(shape: GtfsShape, p: [number, number], from: number): number {
  let best = { d: Infinity, s: from };
  const k = Math.cos((p[1] * Math.PI) / 180);
  for (let i = 1; i < shape.coordinates.length; i++) {
    if (shape.distances[i] < from) continue;
    const a = shape.coordinates[i - 1];
    const b = shape.coordinates[i];
    const dx = (b[0] - a[0]) * k;
    const dy = b[1] - a[1];
    const len2 = dx * dx + dy * dy;
    const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, (((p[0] - a[0]) * k) * dx + (p[1] - a[1]) * dy) / len2));
    const d = Math.hypot((p[0] - a[0]) * k - t * dx, p[1] - a[1] - t * dy);
    const s = Math.max(from, shape.distances[i - 1] + t * (shape.distances[i] - shape.distances[i - 1]));
    if (d < best.d - 1e-12) best = { d, s };
  }
  return best.s;
}
