/**
 * Zip archives (PKWARE APPNOTE 6.3) on node:zlib, what a GTFS feed needs and no more: one flat
 * archive of stored or deflated entries, UTF-8 names, no ZIP64. The reader refuses hostile
 * archives with a reason (not a zip, encrypted or multi-disk, ZIP64, an unknown method, a CRC
 * mismatch, an entry or a total that inflates beyond the limits — a zip bomb —, a path with `..`);
 * the writer serves the published GTFS zip, the import CLI and tests.
 */
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';

export class ZipError extends Error {
  constructor(message: string, readonly entry?: string) {
    super(message);
    this.name = 'ZipError';
  }
}

export interface ZipLimits {
  /** Inflated size of one entry, bytes. */
  maxEntryBytes: number;
  /** Inflated size of all entries, bytes. */
  maxTotalBytes: number;
  /** Entries in the archive. */
  maxEntries: number;
}

export const DEFAULT_ZIP_LIMITS: ZipLimits = { maxEntryBytes: 64 * 1024 * 1024, maxTotalBytes: 256 * 1024 * 1024, maxEntries: 200 };

export function looksLikeZip(data: Buffer): boolean {
  return data.length >= 4 && data.readUInt32LE(0) === 0x04034b50;
}

/** The archive's files by name (directories skipped; names as stored, `/` separated). */
export function readZip(data: Buffer, limits: ZipLimits = DEFAULT_ZIP_LIMITS): Map<string, Buffer> {
  if (data.length < 22) throw new ZipError('not a zip archive (too short)');
  // End of central directory: the last 22 bytes plus a comment of up to 65,535 bytes.
  let eocd = -1;
  for (let i = data.length - 22; i >= Math.max(0, data.length - 22 - 0xffff); i--) {
    if (data.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError('not a zip archive (no end of central directory)');
  const disk = data.readUInt16LE(eocd + 4);
  const entries = data.readUInt16LE(eocd + 10);
  const cdSize = data.readUInt32LE(eocd + 12);
  const cdOffset = data.readUInt32LE(eocd + 16);
  if (disk !== 0) throw new ZipError('multi-disk zip archives are not supported');
  if (entries === 0xffff || cdOffset === 0xffffffff) throw new ZipError('ZIP64 archives are not supported');
  if (entries > limits.maxEntries) throw new ZipError(`the archive has ${entries} entries, at most ${limits.maxEntries}`);
  if (cdOffset + cdSize > eocd) throw new ZipError('corrupt zip archive (central directory out of bounds)');
  const out = new Map<string, Buffer>();
  let total = 0;
  let p = cdOffset;
  for (let n = 0; n < entries; n++) {
    if (p + 46 > eocd || data.readUInt32LE(p) !== 0x02014b50) throw new ZipError('corrupt zip archive (central directory)');
    const flags = data.readUInt16LE(p + 8);
    const method = data.readUInt16LE(p + 10);
    const crc = data.readUInt32LE(p + 16);
    const compressed = data.readUInt32LE(p + 20);
    const size = data.readUInt32LE(p + 24);
    const nameLen = data.readUInt16LE(p + 28);
    const extraLen = data.readUInt16LE(p + 30);
    const commentLen = data.readUInt16LE(p + 32);
    const local = data.readUInt32LE(p + 42);
    const name = data.subarray(p + 46, p + 46 + nameLen).toString(flags & 0x800 ? 'utf8' : 'latin1');
    p += 46 + nameLen + extraLen + commentLen;
    if (name.endsWith('/')) continue;
    if (flags & 0x1) throw new ZipError('encrypted entries are not supported', name);
    if (name.includes('\0') || name.split(/[\\/]/).includes('..')) throw new ZipError('an entry name with “..” or a NUL byte', name);
    if (size > limits.maxEntryBytes) throw new ZipError(`inflates to ${size} bytes, at most ${limits.maxEntryBytes}`, name);
    total += size;
    if (total > limits.maxTotalBytes) throw new ZipError(`the archive inflates to more than ${limits.maxTotalBytes} bytes`, name);
    if (local + 30 > data.length || data.readUInt32LE(local) !== 0x04034b50) throw new ZipError('corrupt zip archive (local header)', name);
    const start = local + 30 + data.readUInt16LE(local + 26) + data.readUInt16LE(local + 28);
    if (start + compressed > data.length) throw new ZipError('corrupt zip archive (truncated entry)', name);
    const raw = data.subarray(start, start + compressed);
    let content: Buffer;
    if (method === 0) content = Buffer.from(raw);
    else if (method === 8) {
      try {
        // maxOutputLength: the declared size is not trusted to stop a bomb by itself.
        content = inflateRawSync(raw, { maxOutputLength: Math.max(1, size) });
      } catch (error) {
        throw new ZipError(`cannot be inflated (${(error as Error).message})`, name);
      }
    } else throw new ZipError(`compression method ${method} is not supported (stored or deflate only)`, name);
    if (content.length !== size) throw new ZipError(`inflates to ${content.length} bytes, the directory says ${size}`, name);
    if (crc32(content) !== crc) throw new ZipError('CRC mismatch (corrupt entry)', name);
    out.set(name, content);
  }
  return out;
}

/** MS-DOS date and time (2-second resolution, years 1980–2107), of the UTC fields. */
function dosDateTime(at: Date): { date: number; time: number } {
  const year = Math.min(Math.max(at.getUTCFullYear(), 1980), 2107);
  return {
    date: ((year - 1980) << 9) | ((at.getUTCMonth() + 1) << 5) | at.getUTCDate(),
    time: (at.getUTCHours() << 11) | (at.getUTCMinutes() << 5) | Math.floor(at.getUTCSeconds() / 2),
  };
}

const LIMIT = 0xffffffff;

/**
 * A zip archive of `files` (name → content, in that order), each deflated unless that would make
 * it larger; every entry dated `modified` (default 1980-01-01), so equal inputs give equal bytes.
 */
export function writeZip(files: Record<string, string | Uint8Array>, modified: Date = new Date(Date.UTC(1980, 0, 1))): Buffer {
  const { date, time } = dosDateTime(modified);
  const entries = Object.entries(files).map(([name, value]) => ({ name, data: typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value.buffer, value.byteOffset, value.byteLength) }));
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const deflated = deflateRawSync(entry.data);
    const stored = deflated.length >= entry.data.length;
    const body = stored ? entry.data : deflated;
    if (entry.data.length >= LIMIT || offset + body.length >= LIMIT) throw new RangeError(`zip: ${entry.name} needs ZIP64, which is not written`);
    const crc = crc32(entry.data);
    const method = stored ? 0 : 8;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate)
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(time, 10);
    local.writeUInt16LE(date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(entry.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4); // made by: MS-DOS, 2.0
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(time, 12);
    central.writeUInt16LE(date, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(entry.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    // extra, comment, disk number, internal and external attributes: 0
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
