/**
 * The leak scanner: every feed the hub registers (`FEEDS`, so feeds added later are scanned too)
 * is fetched whole, as the public gets it, and searched for personal data:
 *
 * - what the database knows is personal (every text column the personal-data register classifies
 *   as personal: reporters' names, e-mails, phones, account ids (`sub`), descriptions and notes)
 *   and the exact points of reports (`tickets.geom`), the positions and ids of cameras;
 * - what looks personal whatever its source: e-mail addresses, phone numbers, a civility followed
 *   by a name, house-number addresses, licence plates, MAC and IP addresses, personal field names
 *   (first_name, reporter_id…), free text in a person's voice, coordinates finer than 1 cm;
 * - re-identifiable aggregates: a grid cell of the citizen reports' view holding 1 to k−1 reports,
 *   a feature about reports that is one report (a point, an exact date) or counts fewer than k.
 *
 * Bodies are read by media type: JSON (GeoJSON, GTFS-RT JSON, JSON-LD), XML (DATEX II), CSV, zip
 * archives of CSV (static GTFS), and protobuf (its printable strings; the feed's `?format=json`,
 * when it takes one, is scanned as JSON too). The scanner is first run on the fixtures of
 * `opendata/reference/geojson/`, whose leaks it must all find, and on synthetic leaks of the
 * seed's own personal data in each format.
 */
import assert from 'node:assert/strict';
import { readZip, writeZip } from '@connecte/shared/zip';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { FEEDS, type Feed } from '@connecte/opendata';
import { createTestDatabase, ROOT, type TestDatabase } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from './serve.js';

// ---------------------------------------------------------------------------------------------
// What a body holds: its strings (with the field they are in), its points, its features.

interface Atom {
  /** Where: `$.features[3].properties.email`, `agency.txt:2:agency_phone`, `/d2:payload/…/value`. */
  at: string;
  /** The field name (JSON key, CSV column, XML element or attribute), null for loose text. */
  key: string | null;
  text: string;
}
interface Point {
  at: string;
  lon: number;
  lat: number;
  /** The number as written, for the precision rule (GeoJSON positions only). */
  written?: string;
}
interface Extracted {
  atoms: Atom[];
  points: Point[];
  /** GeoJSON features (for the rules on reports and cells). */
  features: { at: string; feature: Record<string, unknown> }[];
}

const empty = (): Extracted => ({ atoms: [], points: [], features: [] });

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const LAT_KEYS = /^(lat|latitude|y_?lat|ylat|stop_lat|shape_pt_lat)$/i;
const LON_KEYS = /^(lon|lng|long|longitude|x_?long|xlong|stop_lon|shape_pt_lon)$/i;

function extractJson(value: unknown, out: Extracted, at = '$', key: string | null = null, inCoordinates = false): void {
  if (typeof value === 'string') {
    out.atoms.push({ at, key, text: value });
  } else if (Array.isArray(value)) {
    if (inCoordinates && value.length >= 2 && value.length <= 3 && value.every(isNum)) {
      out.points.push({ at, lon: value[0], lat: value[1], written: `${value[0]},${value[1]}` });
      return;
    }
    value.forEach((v, i) => extractJson(v, out, `${at}[${i}]`, key, inCoordinates));
  } else if (value && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if (object.type === 'Feature') out.features.push({ at, feature: object });
    const entries = Object.entries(object);
    const lat = entries.find(([k, v]) => LAT_KEYS.test(k) && (isNum(v) || (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)))));
    const lon = entries.find(([k, v]) => LON_KEYS.test(k) && (isNum(v) || (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)))));
    if (lat && lon) out.points.push({ at, lon: Number(lon[1]), lat: Number(lat[1]) });
    for (const [k, v] of entries) {
      out.atoms.push({ at: `${at} (key)`, key: null, text: k });
      extractJson(v, out, `${at}.${k}`, k, inCoordinates || k === 'coordinates');
    }
  }
}

const decodeEntities = (text: string) =>
  text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1)));
    return named[e.toLowerCase()];
  });

function extractXml(xml: string, out: Extracted, where: string): void {
  const stack: string[] = [];
  const lats: number[] = [];
  const lons: number[] = [];
  const tokens = /<!\[CDATA\[([\s\S]*?)\]\]>|<!--[\s\S]*?-->|<\?[\s\S]*?\?>|<(\/?)([^\s>/]+)([^>]*?)(\/?)>|([^<]+)/g;
  for (const m of xml.matchAll(tokens)) {
    const [, cdata, closing, name, attrs, selfClosing, text] = m;
    const local = (name ?? '').replace(/^.*:/, '');
    if (cdata !== undefined || text !== undefined) {
      const value = decodeEntities(cdata ?? text!).trim();
      if (!value) continue;
      const element = stack[stack.length - 1] ?? null;
      out.atoms.push({ at: `${where}/${stack.join('/')}`, key: element, text: value });
      if (element && /^latitude$/i.test(element) && !Number.isNaN(Number(value))) lats.push(Number(value));
      if (element && /^longitude$/i.test(element) && !Number.isNaN(Number(value))) lons.push(Number(value));
    } else if (name) {
      if (closing) {
        stack.pop();
        continue;
      }
      for (const a of (attrs ?? '').matchAll(/([^\s=]+)\s*=\s*("([^"]*)"|'([^']*)')/g)) {
        out.atoms.push({ at: `${where}/${[...stack, local].join('/')}@${a[1]}`, key: a[1].replace(/^.*:/, ''), text: decodeEntities(a[3] ?? a[4] ?? '') });
      }
      if (!selfClosing) stack.push(local);
    }
  }
  lats.forEach((lat, i) => lons[i] !== undefined && out.points.push({ at: `${where} (position ${i + 1})`, lat, lon: lons[i] }));
}

function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  const body = text.replace(/^\uFEFF/, '');
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (quoted) {
      if (c === '"' && body[i + 1] === '"') (cell += '"'), i++;
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',' || c === ';') (row.push(cell), (cell = ''));
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && body[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      (row = []), (cell = '');
    } else cell += c;
  }
  if (cell !== '' || row.length) (row.push(cell), rows.push(row));
  return rows.filter((r) => r.some((c) => c !== ''));
}

function extractCsv(text: string, out: Extracted, where: string): void {
  const [header = [], ...rows] = parseCsv(text);
  const latColumn = header.findIndex((h) => LAT_KEYS.test(h.trim()));
  const lonColumn = header.findIndex((h) => LON_KEYS.test(h.trim()));
  header.forEach((h) => out.atoms.push({ at: `${where}:header`, key: null, text: h }));
  rows.forEach((row, r) => {
    row.forEach((cell, c) => out.atoms.push({ at: `${where}:${r + 2}:${header[c] ?? c}`, key: header[c]?.trim() ?? null, text: cell }));
    if (latColumn >= 0 && lonColumn >= 0 && row[latColumn] && row[lonColumn]) {
      out.points.push({ at: `${where}:${r + 2}`, lat: Number(row[latColumn]), lon: Number(row[lonColumn]) });
    }
  });
}

/** The entries of a zip archive, read as the importer reads one. */
export const unzip = (zip: Buffer): { name: string; data: Buffer }[] => [...readZip(zip)].map(([name, data]) => ({ name, data }));

export function extract(body: Buffer, contentType: string, where: string, out: Extracted = empty()): Extracted {
  const type = contentType.toLowerCase();
  const text = () => body.toString('utf8');
  if (/zip/.test(type) || (body.length > 4 && body.readUInt32LE(0) === 0x04034b50)) {
    for (const entry of unzip(body)) extract(entry.data, entry.name.endsWith('.json') ? 'application/json' : entry.name.endsWith('.xml') ? 'application/xml' : 'text/csv', `${where}!${entry.name}`, out);
  } else if (/json/.test(type)) {
    extractJson(JSON.parse(text()), out, where);
  } else if (/xml/.test(type)) {
    extractXml(text(), out, where);
  } else if (/csv/.test(type)) {
    extractCsv(text(), out, where);
  } else if (/protobuf|octet-stream/.test(type)) {
    // Strings of a protobuf message are its UTF-8 runs; numbers need the schema (scan ?format=json).
    for (const run of text().match(/[^\u0000-\u001f\u007f-\u009f\ufffd]{4,}/g) ?? []) out.atoms.push({ at: `${where} (bytes)`, key: null, text: run });
  } else {
    out.atoms.push({ at: where, key: null, text: text() });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// What is personal.

export interface Finding {
  rule: string;
  at: string;
  value: string;
}

/** What the database says is personal (empty for the fixtures). */
export interface Knowledge {
  k: number;
  /** Values of personal columns, by rule (`reporter name`, `account id`, `free text`…). */
  secrets: { rule: string; values: string[] }[];
  /** National phone numbers (the last 9 digits) of reporters and contacts. */
  phones: Set<string>;
  /** Points nobody may publish, within `metres`. */
  places: { rule: string; points: [number, number][]; metres: number }[];
  /**
   * Positions the hub publishes of public things (assets but cameras, stops, shapes' vertices):
   * a published point within 10 cm of one is that thing, even when a report happens to be near.
   */
  publicPoints: [number, number][];
  /** Word sequences of public names (streets, stops, assets, communes): a reporter called like a street is no leak. */
  publicNames: string[];
  /** Cells of the citizen reports' view and how many reports each holds. */
  cells: Map<string, number>;
}

const noKnowledge = (k = 5): Knowledge => ({ k, secrets: [], phones: new Set(), places: [], publicPoints: [], publicNames: [], cells: new Map() });

/** Lower case, no accents, one kind of apostrophe: what two spellings of one value share. */
const normalise = (text: string) =>
  text.normalize('NFD').replace(/[\u0300-\u036f]/g, '').replace(/[’‘`]/g, "'").toLowerCase();
const tokens = (text: string) => normalise(text).split(/[^a-z0-9@]+/).filter(Boolean);

/**
 * Fields that name an organisation's public contact or a public fleet's vehicle, never a
 * person's: the pattern rules (e-mail, phone, address, plate) do not apply to them — a value of
 * the database's personal columns found there is still a leak.
 */
const PUBLIC_CONTACT_FIELDS = new Set([
  'agency_phone', 'agency_email', 'agency_url', 'agency_fare_url', 'feed_contact_email', 'feed_contact_url', 'feed_publisher_url',
  'adresse', 'address', 'license_plate', 'licensePlate',
]);
/** Field names that only ever hold a person's data. */
const PERSONAL_FIELD = /^(e-?mail|mail|courriel|phone|phone_?number|telephone|t[eé]l[eé]phone|tel|mobile|portable|first_?name|last_?name|given_?name|family_?name|surname|full_?name|pr[eé]nom|nom_de_famille|reporter.*|requester.*|citizen.*|user_?id|user_?name|username|account_?id|sub|author|ip|ip_?address|.*_ip|mac|mac_?address|last_client.*|client_?(mac|ip|id))$/i;
/** More field names that are personal in a feature about reports (a device, a photo, a place). */
const PERSONAL_IN_REPORTS = /^(device_?id|media_?url|photo.*|image.*|vehicle|plate|location|address_?string|address|adresse|description|comment.*|note.*|message)$/i;
const FREE_TEXT_FIELD = /^(description|comments?|notes?|message|remarks?|commentaire|observations?)$/i;

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/;
const PHONE = /(?<![\w+])(?:\+33[\s.-]?|0033[\s.-]?|0)[1-9](?:[\s.-]?\d{2}){4}(?!\d)/;
const MAC = /(?<![0-9a-f:])[0-9a-f]{2}(?::[0-9a-f]{2}){5}(?![0-9a-f:])/i;
const IPV4 = /(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.])/;
const PLATE = /(?<![A-Z0-9-])[A-HJ-NP-TV-Z]{2}-\d{3}-[A-HJ-NP-TV-Z]{2}(?![A-Z0-9-])/;
const CIVILITY = /(?:^|[\s(])(?:M\.|Mme|Mlle|Monsieur|Madame|Mademoiselle)\s+[A-ZÀ-Ý][a-zà-ÿ'-]+/;
const HOUSE_ADDRESS = /(?<![\d,.])\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|chemin|all[ée]e|impasse|quai|route|square|cours|passage|faubourg|rond-point|promenade)\b/i;
const FIRST_PERSON = /(?:^|[\s,;.!?(])(?:je|j'|j’|moi|mon|ma|mes|chez moi|appelez-moi|contactez-moi|my|I)(?=[\s,;.!?)]|$)/;
const DATE = /\d{4}-\d{2}-\d{2}|\d{2}\/\d{2}\/\d{4}/;
const CELL_ID = /CRS3035RES\d+mN\d+E\d+/g;
const REPORT_KEYS = /^(service_code|service_request_id|requested_datetime|ticket.*|report.*|signalement.*|category|categorie)$/i;
const COUNT_KEY = /^(reports?|count|total|n|nb.*|number.*|signalements?)$/i;

function metresBetween(a: [number, number], b: [number, number]): number {
  const rad = Math.PI / 180;
  const dLat = (b[1] - a[1]) * rad;
  const dLon = (b[0] - a[0]) * rad * Math.cos(((a[1] + b[1]) / 2) * rad);
  return Math.hypot(dLat, dLon) * 6_371_008;
}

export function scan(extracted: Extracted, knowledge: Knowledge): Finding[] {
  const findings: Finding[] = [];
  const found = (rule: string, at: string, value: string) => findings.push({ rule, at, value: value.length > 120 ? `${value.slice(0, 117)}…` : value });

  // Needles of the database's values, indexed by their first word; a value that is (part of) a
  // public name — a reporter called "Louise Michel" and the "Allée Louise Michel" — is no leak.
  const publicSequences = new Set(knowledge.publicNames.map((name) => ` ${tokens(name).join(' ')} `));
  const isPublic = (needle: string[]) => {
    const joined = ` ${needle.join(' ')} `;
    for (const name of publicSequences) if (name.includes(joined)) return true;
    return false;
  };
  const byFirst = new Map<string, { rule: string; words: string[]; value: string }[]>();
  for (const { rule, values } of knowledge.secrets) {
    for (const value of values) {
      const words = tokens(value).slice(0, 8);
      const identifier = words.length === 1 && /[0-9@-]/.test(value) && value.length >= 6;
      if (!(words.length >= 2 || identifier) || normalise(value).replace(/\s+/g, '').length < 6 || isPublic(words)) continue;
      const list = byFirst.get(words[0]) ?? [];
      list.push({ rule, words, value });
      byFirst.set(words[0], list);
    }
  }

  for (const { at, key, text } of extracted.atoms) {
    const contact = key !== null && PUBLIC_CONTACT_FIELDS.has(key);
    if (key !== null && PERSONAL_FIELD.test(key) && text.trim() !== '') found('personal field', at, `${key}: ${text}`);
    if (!contact) {
      if (EMAIL.test(text)) found('e-mail address', at, text);
      if (PHONE.test(text)) found('phone number', at, text);
      if (HOUSE_ADDRESS.test(text)) found('exact address', at, text);
      if (PLATE.test(text)) found('licence plate', at, text);
    }
    if (MAC.test(text)) found('MAC address', at, text);
    if (IPV4.test(text)) found('IP address', at, text);
    if (CIVILITY.test(text)) found('person named', at, text);
    const words = text.trim().split(/\s+/).length;
    if (words >= 6 && (FIRST_PERSON.test(text) || CIVILITY.test(text) || PHONE.test(text))) found('free text', at, text);
    else if (key !== null && FREE_TEXT_FIELD.test(key) && words >= 4) found('free text', at, `${key}: ${text}`);
    // The database's personal values.
    const atomWords = tokens(text);
    for (let i = 0; i < atomWords.length; i++) {
      for (const needle of byFirst.get(atomWords[i]) ?? []) {
        if (needle.words.every((w, j) => atomWords[i + j] === w)) found(needle.rule, at, text);
      }
    }
    for (const run of text.match(/\+?\d[\d\s.-]{7,}\d/g) ?? []) {
      const digits = run.replace(/\D/g, '');
      if (digits.length >= 9 && knowledge.phones.has(digits.slice(-9))) found('reporter phone', at, text);
    }
    for (const [cell] of text.matchAll(CELL_ID)) {
      const n = knowledge.cells.get(cell);
      if (n !== undefined && n < knowledge.k) found('cell of fewer than k reports', at, `${cell} holds ${n}`);
    }
  }

  // Places: a grid of about 110 m finds the candidates, the distance decides.
  const bucket = (lon: number, lat: number) => `${Math.floor(lon * 1000)}|${Math.floor(lat * 1000)}`;
  const gridOf = (points: [number, number][]) => {
    const grid = new Map<string, [number, number][]>();
    for (const p of points) {
      const b = bucket(p[0], p[1]);
      const list = grid.get(b);
      if (list) list.push(p);
      else grid.set(b, [p]);
    }
    return (lon: number, lat: number, metres: number) => {
      for (const dx of [-1, 0, 1]) {
        for (const dy of [-1, 0, 1]) {
          const hit = (grid.get(bucket(lon + dx / 1000, lat + dy / 1000)) ?? []).find((p) => metresBetween(p, [lon, lat]) <= metres);
          if (hit) return hit;
        }
      }
      return undefined;
    };
  };
  const publicThing = gridOf(knowledge.publicPoints);
  for (const { rule, points, metres } of knowledge.places) {
    const nearest = gridOf(points);
    for (const point of extracted.points) {
      const hit = nearest(point.lon, point.lat, metres);
      if (hit && !publicThing(point.lon, point.lat, 0.1)) found(rule, point.at, `${point.lon},${point.lat} is ${metresBetween(hit, [point.lon, point.lat]).toFixed(2)} m from one`);
    }
  }
  for (const point of extracted.points) {
    const decimals = Math.max(...(point.written ?? '').split(',').map((n) => (n.split('.')[1] ?? '').replace(/e.*$/i, '').length));
    if (point.written && decimals > 7) found('coordinates finer than 1 cm', point.at, point.written);
  }

  // Features about reports: an aggregate of at least k, never one report.
  for (const { at, feature } of extracted.features) {
    const properties = (feature.properties ?? {}) as Record<string, unknown>;
    const keys = Object.keys(properties);
    if (!keys.some((k) => REPORT_KEYS.test(k))) continue;
    const counts = Object.entries(properties).filter(([k, v]) => COUNT_KEY.test(k) && isNum(v)) as [string, number][];
    const geometry = feature.geometry as { type?: string } | null;
    if (counts.length === 0 || geometry?.type === 'Point') found('individual report (not a cell of k)', at, JSON.stringify(properties).slice(0, 120));
    for (const [k, n] of counts) if (n > 0 && n < knowledge.k) found('cell of fewer than k reports', `${at}.properties.${k}`, String(n));
    const nested = (value: unknown, path: string): void => {
      if (isNum(value) && value > 0 && value < knowledge.k) found('breakdown of fewer than k reports', path, String(value));
      else if (value && typeof value === 'object' && !Array.isArray(value)) for (const [k, v] of Object.entries(value)) nested(v, `${path}.${k}`);
    };
    for (const [k, v] of Object.entries(properties)) if (v && typeof v === 'object') nested(v, `${at}.properties.${k}`);
    for (const [k, v] of Object.entries(properties)) {
      if (typeof v === 'string' && DATE.test(v)) found('date not generalised', `${at}.properties.${k}`, v);
      if (PERSONAL_IN_REPORTS.test(k) && v !== null && v !== '') found('personal field', `${at}.properties.${k}`, `${k}: ${String(v)}`);
    }
  }
  return findings;
}

// ---------------------------------------------------------------------------------------------
// What the seeded database holds that is personal.

interface Register {
  tables: Record<string, { personal?: Record<string, { data: string }> }>;
}

async function knowledgeOf(pool: pg.Pool, k: number): Promise<Knowledge> {
  const register = JSON.parse(readFileSync(path.join(ROOT, 'prisma', 'personal-data-register.json'), 'utf8')) as Register;
  const { rows: columns } = await pool.query<{ table: string; column: string; type: string }>(
    `SELECT table_name::text AS table, column_name::text AS column, data_type::text AS type
     FROM information_schema.columns WHERE table_schema = 'public'`,
  );
  const typeOf = new Map(columns.map((c) => [`${c.table}.${c.column}`, c.type]));
  const secrets: Knowledge['secrets'] = [];
  const phones = new Set<string>();
  for (const [table, entry] of Object.entries(register.tables)) {
    for (const [column, about] of Object.entries(entry.personal ?? {})) {
      const type = typeOf.get(`${table}.${column}`);
      if (type !== 'text' && type !== 'character varying') continue;
      const { rows } = await pool.query<{ v: string }>(`SELECT DISTINCT "${column}" AS v FROM "${table}" WHERE "${column}" IS NOT NULL`);
      const values = rows.map((r) => r.v).filter((v) => v.trim() !== '');
      const rule =
        /phone/i.test(column) ? 'reporter phone'
        : /email/i.test(column) ? 'e-mail of a person'
        : /name/i.test(column) ? 'reporter name'
        : /account id|token `sub`/i.test(about.data) ? 'account id (sub)'
        : 'personal value of the database';
      secrets.push({ rule: `${rule} (${table}.${column})`, values });
      if (/phone/i.test(column)) for (const v of values) phones.add(v.replace(/\D/g, '').slice(-9));
    }
  }
  const points = async (sql: string) => (await pool.query<{ lon: number; lat: number }>(sql)).rows.map((r) => [r.lon, r.lat] as [number, number]);
  const cameras = await pool.query<{ id: string }>(`SELECT id FROM equipment WHERE kind = 'CAMERA'`);
  secrets.push({ rule: 'camera id', values: cameras.rows.map((r) => r.id) });
  const publicNames = (
    await pool.query<{ name: string }>(
      `SELECT name FROM street UNION SELECT name FROM commune UNION SELECT name FROM gtfs_stops UNION SELECT name FROM collectivity
       UNION SELECT details->>'name' FROM equipment WHERE details->>'name' IS NOT NULL AND kind <> 'CAMERA'
       UNION SELECT details->>'intersectionName' FROM equipment WHERE details->>'intersectionName' IS NOT NULL`,
    )
  ).rows.map((r) => r.name);
  const { rows: cellRows } = await pool.query<{ cell: string; n: number }>(`SELECT cell, count(*)::int AS n FROM opendata_citizen_reports GROUP BY cell`);
  return {
    k,
    secrets,
    phones,
    places: [
      // Seeded reports are at least 1 m from any asset; an exact report point is a leak.
      { rule: 'exact point of a report', points: await points('SELECT ST_X(geom) AS lon, ST_Y(geom) AS lat FROM tickets'), metres: 0.5 },
      // The nearest other asset is more than a metre from a camera.
      { rule: 'camera position', points: await points(`SELECT ST_X(location) AS lon, ST_Y(location) AS lat FROM equipment WHERE kind = 'CAMERA' AND location IS NOT NULL`), metres: 0.5 },
    ],
    publicPoints: await points(
      `SELECT ST_X(location) AS lon, ST_Y(location) AS lat FROM equipment WHERE kind <> 'CAMERA' AND location IS NOT NULL
       UNION ALL SELECT ST_X(geom), ST_Y(geom) FROM gtfs_stops
       UNION ALL SELECT ST_X((d).geom), ST_Y((d).geom) FROM (SELECT ST_DumpPoints(geom) AS d FROM gtfs_shapes) s`,
    ),
    publicNames,
    cells: new Map(cellRows.map((r) => [r.cell, r.n])),
  };
}

// ---------------------------------------------------------------------------------------------

const FIXTURES = path.join(ROOT, 'opendata', 'reference', 'geojson');
const fixture = (name: string) => extract(readFileSync(path.join(FIXTURES, name)), 'application/geo+json', name);
const rulesOf = (findings: Finding[]) => new Set(findings.map((f) => f.rule));
const K = 5;

describe('the leak scanner on the reference fixtures', () => {
  it('finds every leak of the leaky reports', () => {
    const findings = scan(fixture('chalons-citizen-reports.leaky.invalid.geojson'), noKnowledge());
    const at = (rule: string) => findings.filter((f) => f.rule === rule).map((f) => f.at);
    const has = (rule: string, where: RegExp) => assert.ok(at(rule).some((a) => where.test(a)), `${rule} at ${where}: ${JSON.stringify(findings, null, 1)}`);
    has('e-mail address', /features\[0\]\.properties\.email/);
    has('phone number', /features\[0\]\.properties\.phone/);
    has('phone number', /features\[0\]\.properties\.description/);
    has('personal field', /features\[0\]\.properties\.first_name/);
    has('personal field', /features\[0\]\.properties\.reporter_id/);
    has('exact address', /features\[0\]\.properties\.address_string/);
    has('exact address', /features\[1\]\.properties\.location/);
    has('free text', /features\[0\]\.properties\.description/);
    has('person named', /features\[0\]\.properties\.description/);
    has('licence plate', /features\[1\]\.properties\.vehicle/);
    has('personal field', /features\[1\]\.properties\.device_id/);
    has('personal field', /features\[1\]\.properties\.media_url/);
    has('MAC address', /features\[2\]\.properties\.last_client/);
    has('IP address', /features\[2\]\.properties\.last_client_ip/);
    has('coordinates finer than 1 cm', /features\[0\]\.geometry\.coordinates/);
    has('individual report (not a cell of k)', /features\[0\]$/);
  });

  it('finds that the "anonymized" reports are still one point per report, with exact dates', () => {
    const findings = scan(fixture('chalons-citizen-reports.anonymized.valid.geojson'), noKnowledge());
    assert.deepEqual(rulesOf(findings), new Set(['individual report (not a cell of k)', 'date not generalised']), JSON.stringify(findings, null, 1));
    assert.equal(findings.filter((f) => f.rule === 'individual report (not a cell of k)').length, 2);
  });

  it('finds nothing in public assets', () => {
    assert.deepEqual(scan(fixture('chalons-urban-assets.valid.geojson'), noKnowledge()), []);
  });

  it('reads a cell of k as safe and a cell or a breakdown of fewer than k as re-identifying', () => {
    const cell = (reports: number, byCategory: Record<string, number>) => ({
      type: 'FeatureCollection',
      features: [{ type: 'Feature', id: 'CRS3035RES200mN1E1', geometry: { type: 'Polygon', coordinates: [] }, properties: { cell: 'CRS3035RES200mN1E1', reports, byCategory } }],
    });
    const read = (doc: unknown) => extract(Buffer.from(JSON.stringify(doc)), 'application/geo+json', 'doc');
    assert.deepEqual(scan(read(cell(5, { LIGHT_OUT: 5 })), noKnowledge()), []);
    assert.ok(rulesOf(scan(read(cell(4, {})), noKnowledge())).has('cell of fewer than k reports'));
    assert.ok(rulesOf(scan(read(cell(9, { LIGHT_OUT: 5, TAG: 4 })), noKnowledge())).has('breakdown of fewer than k reports'));
  });
});

describe('open data publishes no personal data', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;
  let knowledge: Knowledge;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    served = await serveOpendata({ pool });
    knowledge = await knowledgeOf(pool, K);
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it("knows the seed's personal data", () => {
    const count = (rule: RegExp) => knowledge.secrets.filter((s) => rule.test(s.rule)).reduce((n, s) => n + s.values.length, 0);
    assert.ok(count(/reporter name \(tickets\.reporter_name\)/) > 50, 'reporters named');
    assert.ok(count(/e-mail of a person \(tickets/) > 20, 'reporters with an e-mail');
    assert.ok(count(/account id/) > 100, 'account ids');
    assert.ok(knowledge.phones.size > 20, 'phones');
    assert.ok(knowledge.places[0].points.length >= 390 && knowledge.places[1].points.length > 0, 'report points and cameras');
    assert.ok([...knowledge.cells.values()].some((n) => n < K), 'cells of fewer than k reports exist to be caught');
  });

  it("finds the seed's own personal data in every format the feeds use", async () => {
    const { rows } = await pool.query<{ name: string; email: string | null; phone: string | null; sub: string | null; description: string; lon: number; lat: number }>(
      `SELECT NULL AS name,
              (SELECT reporter_email FROM tickets WHERE reporter_email IS NOT NULL ORDER BY id LIMIT 1) AS email,
              (SELECT reporter_phone FROM tickets WHERE reporter_phone IS NOT NULL ORDER BY id LIMIT 1) AS phone,
              (SELECT reporter_sub FROM tickets WHERE reporter_sub IS NOT NULL ORDER BY id LIMIT 1) AS sub,
              description, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM tickets ORDER BY id LIMIT 1`,
    );
    const seed = rows[0];
    // A reporter's name that no street, stop or asset bears (those are public, and not flagged).
    const names = (await pool.query<{ name: string }>('SELECT DISTINCT reporter_name AS name FROM tickets WHERE reporter_name IS NOT NULL ORDER BY 1')).rows;
    const publicText = knowledge.publicNames.map((n) => ` ${tokens(n).join(' ')} `);
    seed.name = names.map((r) => r.name).find((name) => !publicText.some((p) => p.includes(` ${tokens(name).join(' ')} `)))!;
    const camera = (await pool.query<{ id: string; lon: number; lat: number }>(`SELECT id, ST_X(location) AS lon, ST_Y(location) AS lat FROM equipment WHERE kind = 'CAMERA' ORDER BY id LIMIT 1`)).rows[0];
    const small = [...knowledge.cells].find(([, n]) => n < K)![0];
    // Each leak in a disguise: spelt otherwise, in another field, in another format.
    const nationalPhone = `0${seed.phone!.replace(/\D/g, '').slice(-9)}`.replace(/(\d{2})(?=\d)/g, '$1.');
    const leaks = {
      who: seed.name.toUpperCase(),
      contact: seed.email!.toUpperCase(),
      call: nationalPhone,
      account: seed.sub!,
      text: seed.description,
      cam: camera.id,
      cell: small,
    };
    const expected = [/reporter name/, /e-mail of a person/, /reporter phone/, /account id/, /personal value of the database \(tickets\.description\)/, /camera id/, /cell of fewer than k/, /exact point of a report/, /camera position/];
    const check = (findings: Finding[], format: string) => {
      for (const rule of expected) assert.ok(findings.some((f) => rule.test(f.rule)), `${format}: ${rule} not found in ${JSON.stringify(findings, null, 1)}`);
    };
    const json = { type: 'FeatureCollection', features: [
      { type: 'Feature', geometry: { type: 'Point', coordinates: [seed.lon, seed.lat] }, properties: leaks },
      { type: 'Feature', geometry: { type: 'Point', coordinates: [camera.lon, camera.lat] }, properties: {} },
    ] };
    check(scan(extract(Buffer.from(JSON.stringify(json)), 'application/geo+json', 'json'), knowledge), 'GeoJSON');
    const csv = `id;label;info;Xlong;Ylat\n1;"${leaks.who}";"${leaks.contact} ${leaks.call}";${seed.lon};${seed.lat}\n2;${leaks.account};"${leaks.text.replace(/"/g, '""')}";${camera.lon};${camera.lat}\n3;${leaks.cam};${leaks.cell};4;48\n`;
    check(scan(extract(Buffer.from(csv), 'text/csv; charset=utf-8', 'csv'), knowledge), 'CSV');
    const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
    const xml = `<?xml version="1.0"?><d2:payload xmlns:d2="x"><situation id="${xmlEscape(leaks.account)}"><comment><value lang="fr">${xmlEscape(`${leaks.who} ${leaks.contact} ${leaks.call} ${leaks.text} ${leaks.cam} ${leaks.cell}`)}</value></comment>
      <pointCoordinates><latitude>${seed.lat}</latitude><longitude>${seed.lon}</longitude></pointCoordinates>
      <pointCoordinates><latitude>${camera.lat}</latitude><longitude>${camera.lon}</longitude></pointCoordinates></situation></d2:payload>`;
    check(scan(extract(Buffer.from(xml), 'application/xml; charset=utf-8', 'xml'), knowledge), 'XML');
    check(scan(extract(writeZip({ 'stops.txt': csv }), 'application/zip', 'zip'), knowledge), 'zip of CSV');
    // A public name that a reporter shares ("Allée Louise Michel") is no leak.
    const street = knowledge.publicNames.find((n) => /^all[ée]e /i.test(n)) ?? knowledge.publicNames[0];
    const quiet = scan(extract(Buffer.from(JSON.stringify({ name: street })), 'application/json', 'street'), knowledge);
    assert.deepEqual(quiet, []);
  });

  const feeds: readonly Feed[] = FEEDS;
  for (const feed of feeds) {
    it(`${feed.id} (${feed.path}) publishes no personal data`, async () => {
      const bodies: { url: string; type: string; body: Buffer }[] = [];
      for (const query of ['', ...(acceptsJsonFormat(feed) ? ['?format=json'] : [])]) {
        const url = `${served.base}${feed.path}${query}`;
        const response = await rawRequest(url);
        assert.equal(response.status, 200, `${url}: ${response.body.toString().slice(0, 300)}`);
        bodies.push({ url, type: String(response.headers['content-type'] ?? feed.contentType), body: response.body });
      }
      const findings = bodies.flatMap(({ url, type, body }) => scan(extract(body, type, url.replace(served.base, '')), knowledge));
      assert.deepEqual(findings, [], `${feed.path} leaks:\n${findings.map((f) => `- ${f.rule} at ${f.at}: ${f.value}`).join('\n')}`);
    });
  }
});

/** Whether a feed also answers `?format=json` (GTFS-RT's JSON mapping): then that is scanned too. */
function acceptsJsonFormat(feed: Feed): boolean {
  if (/json/.test(feed.contentType)) return false;
  try {
    feed.parse(new URLSearchParams('format=json'));
    return true;
  } catch {
    return false;
  }
}

