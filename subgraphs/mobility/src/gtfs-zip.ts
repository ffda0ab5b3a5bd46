/**
 * A small ZIP reader (and writer, for tests and tools) on node:zlib: what a GTFS feed needs —
 * stored and deflated entries of one flat archive — and no more. Hostile archives are refused
 * with a reason: not a zip, encrypted or multi-disk, ZIP64, an unknown method, a CRC mismatch,
 * an entry or a total that inflates beyond the limits (a zip bomb), a path with `..`.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';

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

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

export function crc32(data: Uint8Array): number {
  let c = -1;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

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

/** A zip archive of the files (deflated), for tests and tools. */
export function writeZip(files: Record<string, string | Buffer>): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, value] of Object.entries(files)) {
    const content = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    const packed = deflateRawSync(content);
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(content);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(content.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(content.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, packed);
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + packed.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}
