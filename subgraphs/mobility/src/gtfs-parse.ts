/**
 * Reading a GTFS feed: from a zip archive, a folder, or files in memory, each `.txt` file parsed
 * as CSV (RFC 4180: quoted fields with doubled quotes, commas and line breaks inside quotes,
 * CRLF or LF line ends, a UTF-8 byte-order mark). Nothing is interpreted here: the records go to
 * `validateGtfs` (gtfs-validate.ts), which reports every problem with file, line and field.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_ZIP_LIMITS, looksLikeZip, readZip, ZipError, type ZipLimits } from '@connecte/shared/zip';

/** One problem of a feed: where it is (file, line — 1 is the header —, field) and what it is. */
export interface GtfsProblem {
  file: string;
  line: number | null;
  field: string | null;
  code: string;
  message: string;
}

export interface CsvRecord {
  /** Physical line of the file where the record starts (the header is line 1). */
  line: number;
  values: Record<string, string>;
}

export interface CsvTable {
  file: string;
  header: string[];
  records: CsvRecord[];
}

export interface GtfsFiles {
  /** Parsed tables by file name (`stops.txt`). */
  tables: Map<string, CsvTable>;
  /** Problems found reading the files (encoding, CSV syntax). */
  problems: GtfsProblem[];
  /** Files that are not GTFS files this importer reads (ignored). */
  warnings: string[];
  /** SHA-256 over the files' names and bytes, in name order. */
  sha256: string;
  /** Where the feed came from. */
  source: string;
}

/** The GTFS files the importer reads; any other file is reported as a warning and ignored. */
export const GTFS_FILES = [
  'agency.txt',
  'stops.txt',
  'routes.txt',
  'trips.txt',
  'stop_times.txt',
  'calendar.txt',
  'calendar_dates.txt',
  'shapes.txt',
  'feed_info.txt',
] as const;

/** Parses one CSV file. Problems (unterminated quote, wrong number of fields…) are appended to `problems`. */
export function parseCsv(file: string, text: string, problems: GtfsProblem[]): CsvTable {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: { line: number; fields: string[] }[] = [];
  if (!text.includes('"')) {
    // No quote anywhere: a record is a line, a field is what commas separate (the common case, fast).
    const lines = text.split(/\r\n|\n|\r/);
    for (let k = 0; k < lines.length; k++) if (lines[k] !== '') rows.push({ line: k + 1, fields: lines[k].split(',') });
    return tableOf(file, rows, problems);
  }
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let rowLine = 1;
  let i = 0;
  let quoted = false;
  let fieldStarted = false;
  const n = text.length;
  const endRow = () => {
    fields.push(field);
    // A blank line (one empty field) is skipped, not a record.
    if (!(fields.length === 1 && fields[0] === '' && !fieldStarted)) rows.push({ line: rowLine, fields });
    fields = [];
    field = '';
    fieldStarted = false;
  };
  while (i < n) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        if (i < n && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
          problems.push({ file, line, field: null, code: 'INVALID_CSV', message: 'text after a closing quote (a quote inside a field must be doubled)' });
          // Resynchronise: take the rest as text of the field.
          while (i < n && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') field += text[i++];
        }
        continue;
      }
      if (c === '\n') line++;
      field += c;
      i++;
      continue;
    }
    if (c === '"' && field === '') {
      quoted = true;
      fieldStarted = true;
      i++;
      continue;
    }
    if (c === ',') {
      fields.push(field);
      field = '';
      fieldStarted = true;
      i++;
      continue;
    }
    if (c === '\r' || c === '\n') {
      endRow();
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      rowLine = line;
      continue;
    }
    field += c;
    fieldStarted = true;
    i++;
  }
  if (quoted) problems.push({ file, line: rowLine, field: null, code: 'INVALID_CSV', message: 'a quoted field is never closed' });
  if (field !== '' || fields.length || fieldStarted) endRow();
  return tableOf(file, rows, problems);
}

function tableOf(file: string, rows: { line: number; fields: string[] }[], problems: GtfsProblem[]): CsvTable {
  if (!rows.length) {
    problems.push({ file, line: 1, field: null, code: 'MISSING_HEADER', message: 'the file is empty (no header line)' });
    return { file, header: [], records: [] };
  }
  const header = rows[0].fields.map((h) => h.trim());
  const seen = new Set<string>();
  for (const h of header) {
    if (h === '') problems.push({ file, line: 1, field: null, code: 'INVALID_CSV', message: 'an empty column name in the header' });
    else if (seen.has(h)) problems.push({ file, line: 1, field: h, code: 'DUPLICATE_FIELD', message: `column “${h}” appears twice in the header` });
    seen.add(h);
  }
  const records: CsvRecord[] = [];
  for (const row of rows.slice(1)) {
    if (row.fields.length !== header.length) {
      problems.push({
        file,
        line: row.line,
        field: null,
        code: 'INVALID_CSV',
        message: `${row.fields.length} fields where the header has ${header.length}`,
      });
      continue;
    }
    const values: Record<string, string> = {};
    header.forEach((h, k) => (values[h] = row.fields[k].trim()));
    records.push({ line: row.line, values });
  }
  return { file, header, records };
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function decode(file: string, bytes: Buffer, problems: GtfsProblem[]): string | null {
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    let line = 1;
    for (let i = 0; i < nul; i++) if (bytes[i] === 0x0a) line++;
    problems.push({ file, line, field: null, code: 'INVALID_ENCODING', message: 'the file contains a NUL byte (not a text file)' });
    return null;
  }
  try {
    return decoder.decode(bytes);
  } catch {
    problems.push({ file, line: null, field: null, code: 'INVALID_ENCODING', message: 'the file is not valid UTF-8' });
    return null;
  }
}

export type GtfsSource =
  | { zip: Buffer; name?: string }
  | { folder: string }
  | { files: Record<string, string | Buffer>; name?: string };

export class GtfsSourceError extends Error {
  constructor(
    message: string,
    readonly problem: GtfsProblem,
  ) {
    super(message);
    this.name = 'GtfsSourceError';
  }
}

/**
 * Reads the files of a feed. A zip whose files all stand in one folder is read from that
 * folder. Throws `GtfsSourceError` when the source cannot be read at all (not a zip, a zip
 * bomb, no such folder); problems of individual files are in the result.
 */
export function parseGtfs(source: GtfsSource | Buffer | string, limits: ZipLimits = DEFAULT_ZIP_LIMITS): GtfsFiles {
  let raw: Map<string, Buffer>;
  let name: string;
  if (Buffer.isBuffer(source)) source = { zip: source };
  else if (typeof source === 'string') source = statSync(source, { throwIfNoEntry: false })?.isDirectory() ? { folder: source } : { zip: readFileSync(source), name: source };
  if ('zip' in source) {
    name = source.name ?? 'upload.zip';
    if (!looksLikeZip(source.zip)) throw new GtfsSourceError('not a zip archive', { file: name, line: null, field: null, code: 'NOT_A_ZIP', message: 'the body is not a zip archive' });
    try {
      raw = readZip(source.zip, limits);
    } catch (error) {
      if (!(error instanceof ZipError)) throw error;
      const message = error.entry ? `${error.entry}: ${error.message}` : error.message;
      throw new GtfsSourceError(message, { file: error.entry ?? name, line: null, field: null, code: 'INVALID_ZIP', message: error.message });
    }
    // Files under a single folder (`feed/stops.txt`) are read from it.
    const names = [...raw.keys()].filter((k) => !k.startsWith('__MACOSX/'));
    const dirs = new Set(names.map((k) => (k.includes('/') ? k.slice(0, k.lastIndexOf('/') + 1) : '')));
    if (dirs.size === 1 && !dirs.has('')) {
      const [prefix] = dirs;
      raw = new Map(names.map((k) => [k.slice(prefix.length), raw.get(k)!]));
    }
  } else if ('folder' in source) {
    name = source.folder;
    const stat = statSync(source.folder, { throwIfNoEntry: false });
    if (!stat?.isDirectory()) throw new GtfsSourceError('no such folder', { file: source.folder, line: null, field: null, code: 'NOT_FOUND', message: 'no such folder' });
    raw = new Map();
    for (const entry of readdirSync(source.folder).sort()) {
      const full = path.join(source.folder, entry);
      if (!statSync(full).isFile()) continue;
      if (statSync(full).size > limits.maxEntryBytes) throw new GtfsSourceError(`${entry} is too large`, { file: entry, line: null, field: null, code: 'TOO_LARGE', message: `larger than ${limits.maxEntryBytes} bytes` });
      raw.set(entry, readFileSync(full));
    }
  } else {
    name = source.name ?? 'files';
    raw = new Map(Object.entries(source.files).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v, 'utf8') : v]));
  }

  const problems: GtfsProblem[] = [];
  const warnings: string[] = [];
  const tables = new Map<string, CsvTable>();
  const hash = createHash('sha256');
  for (const file of [...raw.keys()].sort()) {
    const bytes = raw.get(file)!;
    hash.update(file).update('\0').update(bytes).update('\0');
    if (!(GTFS_FILES as readonly string[]).includes(file)) {
      warnings.push(`${file}: not a file this importer reads, ignored`);
      continue;
    }
    const text = decode(file, bytes, problems);
    if (text === null) {
      tables.set(file, { file, header: [], records: [] });
      continue;
    }
    tables.set(file, parseCsv(file, text, problems));
  }
  return { tables, problems, warnings, sha256: hash.digest('hex'), source: name };
}
