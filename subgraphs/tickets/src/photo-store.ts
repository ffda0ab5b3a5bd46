/**
 * Photos of reports (`ticket_photos`): what an upload becomes before it is stored, the rows, and
 * the moves a report, the retention worker and an erasure make on them.
 *
 * An upload is decoded and re-encoded here with sharp (libvips, shipped in its npm package): the
 * stored bytes are a new image of the same format made from the decoded pixels only, oriented from
 * the EXIF orientation, scaled down to TICKETS_PHOTO_MAX_SIDE, and with no metadata at all (no
 * EXIF, XMP, IPTC, ICC profile, comments or text chunks: the GPS position of the phone that took
 * it does not survive). Before decoding, the bytes must be the format they are sent as, end where
 * that format ends (nothing appended: a file that is also something else is refused), and declare
 * at most MAX_INPUT_PIXELS pixels (a small file declaring a huge image is refused before it is
 * decoded). Decodes run at most DECODE_CONCURRENCY at a time, which bounds the memory they take.
 *
 * An upload belongs to its uploader (`uploader_sub`, or for the public the SHA-256 of a secret
 * given once in the upload's answer) until a report claims it (`claimPhotos`, in the report's
 * transaction); then it is the ticket's, seen by whoever sees the ticket's private part (the
 * uploader columns stay, so that its uploader is told it is already attached). Uploads no report claimed within UNCLAIMED_PHOTO_TTL_MS are no
 * longer claimable and are deleted by the retention worker (`deleteUnclaimedPhotos`).
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';
import sharp, { type Metadata } from 'sharp';
import { ReportError } from './types.js';

/** A pool or a client inside a transaction. */
type Queryable = Pick<pg.Pool, 'query'> | pg.ClientBase;

export const PHOTO_TYPES = ['image/jpeg', 'image/png', 'image/webp'] as const;
export type PhotoType = (typeof PHOTO_TYPES)[number];

/** At most this many photos per report. */
export const MAX_PHOTOS_PER_REPORT = 5;
/** An upload no report claimed within a day is no longer claimable, and is deleted. */
export const UNCLAIMED_PHOTO_TTL_MS = 24 * 60 * 60 * 1000;
/** Largest image decoded (width × height declared by its header): 100 megapixels. */
export const MAX_INPUT_PIXELS = 100_000_000;
/** Decodes at once in this process (each may hold width × height × channels bytes). */
export const DECODE_CONCURRENCY = 2;

/** A row of `ticket_photos`, without its bytes. */
export interface PhotoRow {
  id: string;
  ticketId: string | null;
  contentType: PhotoType;
  width: number;
  height: number;
  createdAt: Date;
}

const PHOTO_COLUMNS = `p.id::text AS id, p.ticket_id::text AS "ticketId", p.content_type AS "contentType", p.width, p.height, p.created_at AS "createdAt"`;

// --- what an upload becomes ------------------------------------------------------------

/** Why an upload is refused: the HTTP status (415 not that image, 413 too many pixels) and the reason. */
export class PhotoRefused extends Error {
  override name = 'PhotoRefused';
  constructor(
    readonly status: 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

const FORMAT_NAMES: Record<PhotoType, string> = { 'image/jpeg': 'JPEG', 'image/png': 'PNG', 'image/webp': 'WebP' };
const SHARP_FORMATS: Record<PhotoType, 'jpeg' | 'png' | 'webp'> = { 'image/jpeg': 'jpeg', 'image/png': 'png', 'image/webp': 'webp' };

/** What the first bytes say the body is (for the refusal's message), or null. */
function sniff(bytes: Buffer): string | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return 'image/png';
  if (bytes.length >= 12 && bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return 'image/webp';
  if (bytes.length >= 6 && /^GIF8[79]a/.test(bytes.toString('latin1', 0, 6))) return 'image/gif';
  if (bytes.length >= 4 && (bytes.toString('latin1', 0, 4) === 'II*\0' || bytes.toString('latin1', 0, 4) === 'MM\0*')) return 'image/tiff';
  if (bytes.length >= 12 && bytes.toString('latin1', 4, 8) === 'ftyp') return 'an ISO media file (HEIC, AVIF or MP4)';
  if (bytes.length >= 4 && bytes.toString('latin1', 0, 4) === '%PDF') return 'application/pdf';
  if (bytes.length >= 4 && bytes.readUInt32BE(0) === 0x504b0304) return 'a ZIP archive';
  const head = bytes.toString('latin1', 0, Math.min(bytes.length, 256)).trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg'))) return 'image/svg+xml';
  if (head.startsWith('<')) return 'HTML or XML text';
  return null;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Where the JPEG in `bytes` ends (just after its EOI marker), walking its segments and the
 * entropy-coded data of its scans; null when it does not end (truncated or not a JPEG).
 */
function jpegEnd(bytes: Buffer): number | null {
  let i = 2;
  while (i < bytes.length) {
    if (bytes[i] !== 0xff) return null;
    while (i < bytes.length && bytes[i] === 0xff) i++; // fill bytes
    if (i >= bytes.length) return null;
    const marker = bytes[i++];
    if (marker === 0xd9) return i;
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length
    if (i + 2 > bytes.length) return null;
    const length = bytes.readUInt16BE(i);
    if (length < 2) return null;
    i += length;
    if (marker !== 0xda) continue;
    // Start of scan: entropy-coded data up to the next marker that is not a stuffed 0xFF00 or a restart.
    while (i < bytes.length) {
      if (bytes[i] === 0xff && i + 1 < bytes.length) {
        const next = bytes[i + 1];
        if (next !== 0x00 && !(next >= 0xd0 && next <= 0xd7) && next !== 0xff) break;
      }
      i++;
    }
  }
  return null;
}

/** Where the PNG ends (after its IEND chunk), or null. */
function pngEnd(bytes: Buffer): number | null {
  let i = 8;
  while (i + 12 <= bytes.length) {
    const length = bytes.readUInt32BE(i);
    const type = bytes.toString('latin1', i + 4, i + 8);
    i += 12 + length;
    if (type === 'IEND') return i <= bytes.length ? i : null;
  }
  return null;
}

/** Where the WebP ends: its RIFF size (padded to even), or null when the file is shorter. */
function webpEnd(bytes: Buffer): number | null {
  const end = 8 + bytes.readUInt32LE(4);
  return end <= bytes.length ? end : null;
}

const ENDS: Record<PhotoType, (bytes: Buffer) => number | null> = { 'image/jpeg': jpegEnd, 'image/png': pngEnd, 'image/webp': webpEnd };

/** The file's bytes after the image ends, ignoring zero padding (some cameras pad their files). */
function trailingBytes(bytes: Buffer, end: number): number {
  for (let i = bytes.length - 1; i >= end; i--) if (bytes[i] !== 0) return bytes.length - end;
  return 0;
}

/** A tiny semaphore: decodes wait for a free slot. */
let decoding = 0;
const waiting: (() => void)[] = [];
async function withDecodeSlot<T>(work: () => Promise<T>): Promise<T> {
  if (decoding >= DECODE_CONCURRENCY) await new Promise<void>((resolve) => waiting.push(resolve));
  decoding++;
  try {
    return await work();
  } finally {
    decoding--;
    waiting.shift()?.();
  }
}

// libvips' operation cache keeps recent images in memory: uploads are each seen once.
sharp.cache(false);

export interface EncodedPhoto {
  contentType: PhotoType;
  width: number;
  height: number;
  bytes: Buffer;
}

/**
 * Checks that `input` is a `claimed` image and re-encodes it without metadata (see the module's
 * comment). Throws PhotoRefused: 415 when it is not that image (another format, not an image,
 * truncated or corrupt, something appended), 413 when it declares more than MAX_INPUT_PIXELS.
 */
export async function reencodePhoto(input: Buffer, claimed: PhotoType, maxSide: number): Promise<EncodedPhoto> {
  const name = FORMAT_NAMES[claimed];
  const actual = sniff(input);
  if (actual !== claimed) {
    throw new PhotoRefused(415, actual === null ? `the body is not a ${name} image (${claimed})` : `the body is ${actual.startsWith('image/') ? `a ${actual} image` : actual}, not a ${name} image (${claimed})`);
  }
  const end = ENDS[claimed](input);
  if (end === null) throw new PhotoRefused(415, `the ${name} image is truncated: its end is missing`);
  const trailing = trailingBytes(input, end);
  if (trailing > 0) {
    throw new PhotoRefused(415, `${trailing} bytes follow the end of the ${name} image: a file that is also something else is refused; send the image alone`);
  }
  return withDecodeSlot(async () => {
    // 'warning': corrupt data refused, not decoded into whatever libjpeg makes of it.
    const options = { failOn: 'warning' as const, limitInputPixels: MAX_INPUT_PIXELS, animated: false };
    let metadata: Metadata;
    try {
      metadata = await sharp(input, { ...options, limitInputPixels: false }).metadata();
    } catch (error) {
      throw new PhotoRefused(415, `the body is not a valid ${name} image (${decoderReason(error)})`);
    }
    if (metadata.format !== SHARP_FORMATS[claimed]) throw new PhotoRefused(415, `the body is a ${metadata.format} image, not a ${name} image (${claimed})`);
    const pixels = metadata.width * metadata.height;
    if (!(pixels <= MAX_INPUT_PIXELS)) {
      throw new PhotoRefused(
        413,
        `the image declares ${metadata.width} × ${metadata.height} pixels (${Math.round(pixels / 1e6)} megapixels), more than the limit of ${MAX_INPUT_PIXELS / 1e6} megapixels`,
      );
    }
    try {
      let pipeline = sharp(input, options)
        .autoOrient()
        .resize({ width: maxSide, height: maxSide, fit: 'inside', withoutEnlargement: true });
      // No keepMetadata/withMetadata/keepIccProfile: sharp writes none of the input's metadata.
      if (claimed === 'image/jpeg') pipeline = pipeline.jpeg({ quality: 85, mozjpeg: true });
      else if (claimed === 'image/png') pipeline = pipeline.png({ compressionLevel: 9 });
      else pipeline = pipeline.webp({ quality: 85 });
      const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
      return { contentType: claimed, width: info.width, height: info.height, bytes: data };
    } catch (error) {
      throw new PhotoRefused(415, `the ${name} image could not be decoded (${decoderReason(error)})`);
    }
  });
}

/** libvips' message, first line, without its noise. */
function decoderReason(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  return message.split('\n')[0].replace(/^Input buffer (contains|has) /, '').slice(0, 200) || 'unreadable';
}

// --- rows ------------------------------------------------------------------------------

/** A new upload's secret (given once to an anonymous uploader) and what is stored of it. */
export function newUploadSecret(): { secret: string; hash: string } {
  const secret = randomBytes(32).toString('base64url');
  return { secret, hash: hashSecret(secret) };
}

export const hashSecret = (secret: string) => createHash('sha256').update(secret, 'utf8').digest('hex');

/** Stores an upload: its uploader is `uploaderSub`, or (anonymous) whoever holds the secret hashed in `secretHash`. */
export async function insertPhoto(
  db: Queryable,
  photo: EncodedPhoto & { uploaderSub: string | null; secretHash: string | null },
): Promise<PhotoRow> {
  const id = randomUUID();
  const { rows } = await db.query<PhotoRow>(
    `INSERT INTO ticket_photos AS p (id, uploader_sub, upload_secret_hash, content_type, width, height, bytes)
     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${PHOTO_COLUMNS}`,
    [id, photo.uploaderSub, photo.secretHash, photo.contentType, photo.width, photo.height, photo.bytes],
  );
  return rows[0];
}

/** A photo with its bytes and who may see it: its ticket's reporter and collectivity, or its uploader before a report claims it. */
export interface StoredPhoto extends PhotoRow {
  bytes: Buffer;
  uploaderSub: string | null;
  uploadSecretHash: string | null;
  ticketReporterSub: string | null;
  ticketCollectivityId: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isPhotoId = (id: string) => UUID.test(id);

/** The photo `id` with its bytes, or null (also for a string that is not a photo id). */
export async function loadStoredPhoto(db: Queryable, id: string): Promise<StoredPhoto | null> {
  if (!isPhotoId(id)) return null;
  const { rows } = await db.query<StoredPhoto>(
    `SELECT ${PHOTO_COLUMNS}, p.bytes, p.uploader_sub AS "uploaderSub", p.upload_secret_hash AS "uploadSecretHash",
            t.reporter_sub AS "ticketReporterSub", t.collectivity_id AS "ticketCollectivityId"
       FROM ticket_photos p LEFT JOIN tickets t ON t.id = p.ticket_id
      WHERE p.id = $1`,
    [id],
  );
  return rows[0] ?? null;
}

/** Whether `secret` is the one an anonymous upload was given (constant time). */
export function secretMatches(secret: string | undefined | null, hash: string | null): boolean {
  if (!secret || !hash) return false;
  const given = Buffer.from(hashSecret(secret), 'hex');
  const stored = Buffer.from(hash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}

/** The photos of each ticket, oldest first (the order they were uploaded), without their bytes. */
export async function photosOfTickets(db: Queryable, ticketIds: readonly string[]): Promise<PhotoRow[][]> {
  const { rows } = await db.query<PhotoRow>(
    `SELECT ${PHOTO_COLUMNS} FROM ticket_photos p WHERE p.ticket_id = ANY($1::bigint[]) ORDER BY p.created_at, p.id`,
    [[...ticketIds]],
  );
  const byTicket = new Map<string, PhotoRow[]>();
  for (const row of rows) {
    const list = byTicket.get(row.ticketId!) ?? [];
    list.push(row);
    byTicket.set(row.ticketId!, list);
  }
  return ticketIds.map((id) => byTicket.get(String(id)) ?? []);
}

// --- what reports, retention and erasures do -------------------------------------------

const refuse = (reason: string) => new ReportError('BAD_USER_INPUT', 'photoIds', reason);

/**
 * Attaches uploads to a new ticket, in the report's transaction (`client`). Each id must be an
 * upload of this reporter: one he sent with his token (`uploaderSub`), or an anonymous one whose
 * secret is among `secrets` (in any order); not yet claimed, and less than a day old. At most
 * MAX_PHOTOS_PER_REPORT, each once. The rows are locked, so two reports cannot claim one photo:
 * the second waits for the first and is refused. Throws ReportError (BAD_USER_INPUT, `photoIds`)
 * naming the photo at fault; then nothing is attached (the caller's transaction rolls back).
 */
export async function claimPhotos(
  client: pg.ClientBase,
  ticketId: string,
  photoIds: readonly string[],
  secrets: readonly string[],
  uploaderSub: string | null,
): Promise<void> {
  if (photoIds.length === 0) return;
  if (photoIds.length > MAX_PHOTOS_PER_REPORT) throw refuse(`at most ${MAX_PHOTOS_PER_REPORT} photos per report, got ${photoIds.length}`);
  const seen = new Set<string>();
  for (const id of photoIds) {
    if (typeof id !== 'string' || !isPhotoId(id)) throw refuse(`${JSON.stringify(String(id).slice(0, 60))} is not a photo id: use the id /tickets/photos returned`);
    const key = id.toLowerCase();
    if (seen.has(key)) throw refuse(`photo ${id} is given twice`);
    seen.add(key);
  }
  const secretHashes = new Set(secrets.filter((s) => typeof s === 'string' && s.length > 0 && s.length <= 200).map(hashSecret));
  const { rows } = await client.query<{ id: string; ticketId: string | null; uploaderSub: string | null; hash: string | null; expired: boolean }>(
    `SELECT id::text AS id, ticket_id::text AS "ticketId", uploader_sub AS "uploaderSub", upload_secret_hash AS hash,
            created_at <= now() - $2 * interval '1 millisecond' AS expired
       FROM ticket_photos WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`,
    [[...seen], UNCLAIMED_PHOTO_TTL_MS],
  );
  const byId = new Map(rows.map((row) => [row.id, row]));
  for (const id of photoIds) {
    const row = byId.get(id.toLowerCase());
    const owned = row !== undefined && ((row.uploaderSub !== null && row.uploaderSub === uploaderSub) || (row.hash !== null && secretHashes.has(row.hash)));
    // Someone else's upload is answered as an unknown one: its existence is not revealed.
    if (!row || !owned) {
      throw refuse(`photo ${id} is not one of your uploads (unknown, deleted, or uploaded by someone else; an anonymous upload needs its secret in photoSecrets)`);
    }
    if (row.ticketId !== null) throw refuse(`photo ${id} is already attached to a report`);
    if (row.expired) throw refuse(`photo ${id} was uploaded more than a day ago and no longer can be attached: upload it again`);
  }
  await client.query(
    `UPDATE ticket_photos SET ticket_id = $1 WHERE id = ANY($2::uuid[])`,
    [ticketId, [...seen]],
  );
}

/** Deletes the photos of these tickets (retention, erasure), in the caller's transaction; how many. */
export async function deletePhotosOfTickets(client: Queryable, ticketIds: readonly string[]): Promise<number> {
  if (ticketIds.length === 0) return 0;
  const result = await client.query(`DELETE FROM ticket_photos WHERE ticket_id = ANY($1::bigint[])`, [[...ticketIds]]);
  return result.rowCount ?? 0;
}

/** Rows per DELETE of `deleteUnclaimedPhotos` (each its own short statement). */
const UNCLAIMED_BATCH = 200;

/**
 * Deletes uploads no report claimed that were made before `olderThan` (the retention worker
 * passes now − UNCLAIMED_PHOTO_TTL_MS), in small statements; rows a report is claiming right now
 * are skipped (SKIP LOCKED). Returns how many were deleted.
 */
export async function deleteUnclaimedPhotos(db: Queryable, olderThan: Date): Promise<number> {
  let total = 0;
  for (;;) {
    const result = await db.query(
      `DELETE FROM ticket_photos WHERE id IN (
         SELECT id FROM ticket_photos WHERE ticket_id IS NULL AND created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [olderThan, UNCLAIMED_BATCH],
    );
    const deleted = result.rowCount ?? 0;
    total += deleted;
    if (deleted < UNCLAIMED_BATCH) return total;
  }
}
