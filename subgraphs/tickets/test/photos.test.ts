/**
 * Photos of reports, over real HTTP through the gateway's `/tickets` (and on the tickets
 * subgraph's own port where the difference matters): what is stored and served of an upload (no
 * EXIF, no XMP, no GPS; oriented, scaled), every refusal (415 for bytes that are not the image
 * they claim to be, 413 at the size limit and for decompression bombs, 401, 404, 405, 429)
 * before anything is stored, who claims an upload (its token's subject, or the holder of an
 * anonymous upload's secret; once, also under concurrency), who may download it (the reporter and
 * the ticket collectivity's staff, audited; 404 for everyone else), and the deletions the
 * retention worker and erasures use.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32, deflateSync } from 'node:zlib';
import pg from 'pg';
import sharp from 'sharp';
import { signDevelopmentToken } from '@connecte/shared/auth';
import { createTestDatabase, gql, startHub, startService, tokenFor, type Hub, type TestDatabase } from '@connecte/testkit';
import { claimPhotos, deletePhotosOfTickets, deleteUnclaimedPhotos, MAX_INPUT_PIXELS, UNCLAIMED_PHOTO_TTL_MS } from '../src/photo-store.js';
import { ReportError } from '../src/types.js';

/** Above the gateway's MAX_BODY_BYTES (1 MiB by default): the photo limit is the subgraph's, through the gateway too. */
const MAX_BYTES = 2 * 1024 * 1024;
const MAX_SIDE = 1024;
const ENV = { TICKETS_PHOTO_MAX_BYTES: String(MAX_BYTES), TICKETS_PHOTO_MAX_SIDE: String(MAX_SIDE) };

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  json: any;
}

/** One request on a connection of its own; a server that answers before the whole body is sent may close: the answer still counts. */
function request(url: string, options: { method?: string; headers?: Record<string, string> | string[]; body?: Buffer | string | AsyncIterable<Buffer> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const req = http.request({ hostname: target.hostname, port: target.port, path: target.pathname + target.search, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let json: unknown = null;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          json = null;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
      res.on('error', reject);
    });
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' || error.code === 'ECONNRESET' ? undefined : reject(error)));
    const body = options.body;
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else
      void (async () => {
        for await (const chunk of body) {
          if (req.destroyed) return;
          if (!req.write(chunk)) await new Promise((resolve) => req.once('drain', resolve));
        }
        req.end();
      })().catch(() => undefined);
  });
}

// --- images ---------------------------------------------------------------------------

const GPS_XMP = `<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
 exif:GPSLatitude="48,57.4247N" exif:GPSLongitude="4,21.9118E" photoshop:City="Châlons-en-Champagne"/>
</rdf:RDF></x:xmpmeta><?xpacket end="w"?>`;

/** A photo as a phone takes it: EXIF with the camera and a GPS position (IFD3 is libvips' GPS directory), and an XMP packet with GPS too. */
async function phoneJpeg(options: { width?: number; height?: number; orientation?: number } = {}): Promise<Buffer> {
  const { width = 320, height = 200 } = options;
  // Left half red, right half blue: orientation is visible in the pixels.
  const left = await sharp({ create: { width: width / 2, height, channels: 3, background: { r: 220, g: 20, b: 20 } } }).png().toBuffer();
  let image = sharp({ create: { width, height, channels: 3, background: { r: 20, g: 20, b: 220 } } })
    .composite([{ input: left, left: 0, top: 0 }])
    .withExif({
      IFD0: { Make: 'PhoneMaker', Model: 'Model X', Software: 'TestCam 1.0' },
      IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '48/1 57/1 2548/100', GPSLongitudeRef: 'E', GPSLongitude: '4/1 21/1 5470/100' },
    })
    .withXmp(GPS_XMP);
  if (options.orientation) image = image.withMetadata({ orientation: options.orientation });
  return image.jpeg({ quality: 90 }).toBuffer();
}

const solid = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: { r: 40, g: 160, b: 60 } } });

/** Random pixels as PNG: incompressible, so its size is about width × height × 3 bytes. */
const noisePng = (width: number, height: number) => {
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 2654435761) >>> 24 ^ (Math.random() * 256);
  return sharp(pixels, { raw: { width, height, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();
};

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A valid 1-bit PNG of width × height, all black: tens of kilobytes for hundreds of megapixels. */
function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([1, 0, 0, 0, 0], 8); // bit depth 1, greyscale, deflate, no filter, no interlace
  const rows = Buffer.alloc(height * (1 + Math.ceil(width / 8)));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(rows, { level: 9 })), pngChunk('IEND', Buffer.alloc(0))]);
}

/** The JPEG with its first Huffman table overwritten, or the entropy-coded data of its scan replaced by garbage (its structure intact). */
function corrupt(jpeg: Buffer, what: 'table' | 'scan'): Buffer {
  const bad = Buffer.from(jpeg);
  if (what === 'table') {
    const dht = bad.indexOf(Buffer.from([0xff, 0xc4]));
    bad.fill(0xee, dht + 5, dht + 21); // its 16 code counts, inside the segment
  } else {
    const sos = bad.indexOf(Buffer.from([0xff, 0xda]));
    for (let i = sos + 20; i < bad.length - 4; i++) bad[i] = (i * 37) & 0x7f;
  }
  return bad;
}

/** The JPEG's segments' markers up to the first scan (0xE1 is EXIF or XMP, 0xED IPTC, 0xFE a comment). */
function jpegMarkers(bytes: Buffer): number[] {
  const markers: number[] = [];
  let i = 2;
  while (i + 4 <= bytes.length && bytes[i] === 0xff) {
    const marker = bytes[i + 1];
    markers.push(marker);
    if (marker === 0xda) break;
    i += 2 + bytes.readUInt16BE(i + 2);
  }
  return markers;
}

/** The tag ids of the EXIF's GPS directory (TIFF structure after `Exif\0\0`), or null when it has none. */
function exifGpsTags(exif: Buffer): number[] | null {
  const tiff = exif.subarray(exif.indexOf('Exif\0\0', 0, 'latin1') + 6);
  const little = tiff.toString('latin1', 0, 2) === 'II';
  const u16 = (at: number) => (little ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at));
  const u32 = (at: number) => (little ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at));
  const entries = (offset: number) => Array.from({ length: u16(offset) }, (_, k) => ({ tag: u16(offset + 2 + k * 12), value: u32(offset + 2 + k * 12 + 8) }));
  const gps = entries(u32(4)).find((entry) => entry.tag === 0x8825);
  return gps ? entries(gps.value).map((entry) => entry.tag) : null;
}

/** Asserts that `bytes` carry no metadata at all: none in sharp's eyes, no EXIF/XMP/IPTC/comment segment, no trace of the GPS or the camera. */
async function assertNoMetadata(bytes: Buffer, what: string) {
  const metadata = await sharp(bytes).metadata();
  assert.equal(metadata.format, 'jpeg', what);
  assert.equal(metadata.exif, undefined, `${what}: no EXIF`);
  assert.equal(metadata.xmp, undefined, `${what}: no XMP`);
  assert.equal(metadata.iptc, undefined, `${what}: no IPTC`);
  assert.equal(metadata.icc, undefined, `${what}: no ICC profile`);
  assert.equal(metadata.comments, undefined, `${what}: no comment`);
  const markers = jpegMarkers(bytes);
  assert.ok(markers.includes(0xda), `${what}: a scan is found`);
  assert.deepEqual(markers.filter((m) => (m >= 0xe1 && m <= 0xef) || m === 0xfe), [], `${what}: no APP1–APP15 or COM segment`);
  for (const trace of ['Exif', 'GPS', 'http://ns.adobe.com', 'xmpmeta', '48,57', 'PhoneMaker', 'TestCam', 'Châlons']) {
    assert.equal(bytes.includes(Buffer.from(trace, 'utf8')), false, `${what}: no "${trace}" in the bytes`);
  }
}

// --- the hub -------------------------------------------------------------------------------

let database: TestDatabase;
let hub: Hub;
let pool: pg.Pool;
let photosUrl: string;
let directUrl: string;
let alice: string;
let bob: string;
const tokens: Record<string, string> = {};

const citizen = (sub: string) => signDevelopmentToken({ sub, roles: ['citizen'], collectivities: [], expiresIn: '1h' }, hub.config);
const bearer = (token?: string): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

const upload = (body: Buffer | string | AsyncIterable<Buffer>, contentType: string | null, token?: string, base = photosUrl, headers: Record<string, string> = {}) =>
  request(base, { method: 'POST', headers: { ...(contentType === null ? {} : { 'content-type': contentType }), ...bearer(token), ...headers }, body });

const download = (id: string, headers: Record<string, string> = {}, base = photosUrl) => request(`${base}/${id}`, { headers });

const storedCount = async () => Number((await pool.query('SELECT count(*) FROM ticket_photos')).rows[0].count);
const storedBytes = async (id: string): Promise<Buffer> => (await pool.query('SELECT bytes FROM ticket_photos WHERE id = $1', [id])).rows[0].bytes;

/** A ticket inserted as core's createReport would leave it (for the photo rules only its reporter and collectivity matter). */
async function insertTicket(collectivityId: string, reporterSub: string | null): Promise<string> {
  const { rows } = await pool.query(
    `INSERT INTO tickets (category_code, collectivity_id, service, description, geom, source, reporter_sub, reporter_email, ack_due_at, resolve_due_at)
     VALUES ('TAG', $1, 'Propreté urbaine', 'A tag on the wall', ST_SetSRID(ST_MakePoint(4.365, 48.957), 4326), 'APP', $2, $3,
             now() + interval '2 days', now() + interval '10 days') RETURNING id::text AS id`,
    [collectivityId, reporterSub, reporterSub === null ? 'someone@example.org' : null],
  );
  return rows[0].id;
}

/** `claimPhotos` in a transaction of its own, as createReport calls it. */
async function claim(ticketId: string, photoIds: string[], secrets: string[], uploaderSub: string | null, delayMs = 0): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await claimPhotos(client, ticketId, photoIds, secrets, uploaderSub);
    if (delayMs) await sleep(delayMs);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

const refusedClaim = (pattern: RegExp) => (error: unknown) => {
  assert.ok(error instanceof ReportError, String(error));
  assert.equal(error.code, 'BAD_USER_INPUT');
  assert.equal(error.field, 'photoIds');
  assert.match(error.message, pattern);
  return true;
};

before(async () => {
  database = await createTestDatabase();
  hub = await startHub(database.url, ENV, { subgraphs: ['territory', 'equipment', 'telemetry', 'tickets'] });
  pool = new pg.Pool({ connectionString: database.url, max: 6 });
  photosUrl = hub.gatewayUrl.replace(/\/graphql$/, '/tickets/photos');
  directUrl = hub.subgraphs.tickets.url.replace(/\/graphql$/, '/tickets/photos');
  alice = await citizen('citizen-alice');
  bob = await citizen('citizen-bob');
  for (const role of ['agent', 'operator', 'admin'] as const) {
    tokens[`${role}:chalons`] = await tokenFor(hub.config, [role], ['chalons']);
    tokens[`${role}:fagnieres`] = await tokenFor(hub.config, [role], ['fagnieres']);
  }
  tokens.partner = await tokenFor(hub.config, ['partner'], ['chalons']);
});

after(async () => {
  await pool?.end();
  await hub?.close();
  await database?.drop();
});

// --- tests -----------------------------------------------------------------------------------

describe('POST /tickets/photos: what is stored and served', () => {
  it('a JPEG carrying EXIF and XMP GPS tags keeps none of them, in the database or in what GET serves', async () => {
    const original = await phoneJpeg();
    // The fixture really carries them.
    const metadata = await sharp(original).metadata();
    assert.ok(metadata.exif, 'the fixture has EXIF');
    const gpsTags = exifGpsTags(metadata.exif!);
    assert.ok(gpsTags, 'the EXIF has a GPS directory');
    for (const tag of [1, 2, 3, 4]) assert.ok(gpsTags!.includes(tag), `GPS tag ${tag} (latitude/longitude and their refs) is there`);
    assert.match(metadata.xmp!.toString('utf8'), /exif:GPSLatitude="48,57.4247N"/);
    assert.ok(original.includes(Buffer.from('http://ns.adobe.com/xap/1.0/\0', 'latin1')), 'an XMP APP1 segment');
    assert.ok(original.includes(Buffer.from('Exif\0\0', 'latin1')), 'an EXIF APP1 segment');
    assert.ok(original.includes(Buffer.from('PhoneMaker')));

    const answer = await upload(original, 'image/jpeg');
    assert.equal(answer.status, 201, answer.body.toString());
    assert.deepEqual(Object.keys(answer.json).sort(), ['contentType', 'height', 'id', 'secret', 'width']);
    assert.equal(answer.json.contentType, 'image/jpeg');
    assert.equal(answer.json.width, 320);
    assert.equal(answer.json.height, 200);
    assert.match(answer.json.secret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(answer.headers.location, `${hub.config.PUBLIC_BASE_URL}/tickets/photos/${answer.json.id}`);
    assert.equal(answer.headers['cache-control'], 'no-store');

    const stored = await storedBytes(answer.json.id);
    await assertNoMetadata(stored, 'stored');
    const { rows } = await pool.query('SELECT upload_secret_hash, uploader_sub, ticket_id FROM ticket_photos WHERE id = $1', [answer.json.id]);
    assert.equal(rows[0].uploader_sub, null);
    assert.equal(rows[0].ticket_id, null);
    assert.match(rows[0].upload_secret_hash, /^[0-9a-f]{64}$/, 'only the hash of the secret is kept');
    assert.notEqual(rows[0].upload_secret_hash, answer.json.secret);

    const served = await download(answer.json.id, { 'x-photo-secret': answer.json.secret });
    assert.equal(served.status, 200);
    assert.equal(served.headers['content-type'], 'image/jpeg');
    assert.ok(served.body.equals(stored), 'what is served is what is stored');
    await assertNoMetadata(served.body, 'served');
    // Still the picture: red on the left, blue on the right.
    const { data } = await sharp(served.body).raw().toBuffer({ resolveWithObject: true });
    assert.ok(data[0] > 150 && data[2] < 80, 'left pixel is red');
    assert.ok(data[(320 - 1) * 3] < 80 && data[(320 - 1) * 3 + 2] > 150, 'right pixel is blue');
  });

  it('is oriented from the EXIF orientation, then scaled to TICKETS_PHOTO_MAX_SIDE', async () => {
    // Orientation 6: the camera was turned; shown upright it is 200 wide and 320 high, red on top.
    const turned = await upload(await phoneJpeg({ orientation: 6 }), 'image/jpeg', alice);
    assert.equal(turned.status, 201, turned.body.toString());
    assert.deepEqual([turned.json.width, turned.json.height], [200, 320]);
    assert.equal(turned.json.secret, undefined, 'no secret for an upload with a token');
    const stored = await storedBytes(turned.json.id);
    const metadata = await sharp(stored).metadata();
    assert.deepEqual([metadata.width, metadata.height, metadata.orientation], [200, 320, undefined]);
    const { data } = await sharp(stored).raw().toBuffer({ resolveWithObject: true });
    assert.ok(data[0] > 150 && data[2] < 80, 'top is red');
    assert.ok(data[(200 * 319) * 3] < 80 && data[(200 * 319) * 3 + 2] > 150, 'bottom is blue');

    const big = await upload(await solid(3000, 1000).png().toBuffer(), 'image/png', alice);
    assert.equal(big.status, 201, big.body.toString());
    assert.deepEqual([big.json.contentType, big.json.width, big.json.height], ['image/png', 1024, 341]);
    const small = await upload(await solid(64, 48).webp().toBuffer(), 'image/webp', alice);
    assert.equal(small.status, 201, small.body.toString());
    assert.deepEqual([small.json.contentType, small.json.width, small.json.height], ['image/webp', 64, 48], 'never enlarged');
    const webp = await sharp(await storedBytes(small.json.id)).metadata();
    assert.equal(webp.format, 'webp');
    assert.equal(webp.exif, undefined);
  });

  it('passes through the gateway beyond its own MAX_BODY_BYTES, up to TICKETS_PHOTO_MAX_BYTES', async () => {
    const body = await noisePng(720, 720);
    assert.ok(body.length > hub.config.MAX_BODY_BYTES && body.length < MAX_BYTES, `${body.length} bytes: over the gateway's 1 MiB, under the photo limit`);
    const answer = await upload(body, 'image/png', alice);
    assert.equal(answer.status, 201, answer.body.toString());
    assert.deepEqual([answer.json.width, answer.json.height], [720, 720]);
  });
});

describe('POST /tickets/photos: refusals, before anything is stored', () => {
  it('415 for bytes that are not the image they are sent as', async () => {
    const jpeg = await phoneJpeg();
    const png = await solid(40, 30).png().toBuffer();
    const zip = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(60, 1)]);
    const cases: [string, Buffer, string, RegExp][] = [
      ['a PNG sent as a JPEG', png, 'image/jpeg', /^the body is a image\/png image, not a JPEG image \(image\/jpeg\)$/],
      ['a JPEG sent as a PNG', jpeg, 'image/png', /^the body is a image\/jpeg image, not a PNG image \(image\/png\)$/],
      ['text sent as a PNG', Buffer.from('Hello, this is not a picture at all.\n'), 'image/png', /^the body is not a PNG image \(image\/png\)$/],
      ['HTML sent as a WebP', Buffer.from('<html><script>alert(1)</script></html>'), 'image/webp', /^the body is HTML or XML text, not a WebP image/],
      ['an SVG sent as a PNG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'), 'image/png', /^the body is a image\/svg\+xml image, not a PNG/],
      ['a GIF sent as a PNG', await solid(10, 10).gif().toBuffer(), 'image/png', /^the body is a image\/gif image, not a PNG/],
      ['a truncated JPEG', jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), 'image/jpeg', /^the JPEG image is truncated: its end is missing$/],
      ['a truncated PNG', png.subarray(0, png.length - 20), 'image/png', /^the PNG image is truncated/],
      ['a JPEG that is also an HTML page (polyglot)', Buffer.concat([jpeg, Buffer.from('<html><script>alert(document.cookie)</script></html>')]), 'image/jpeg', /^\d+ bytes follow the end of the JPEG image: a file that is also something else is refused/],
      ['a JPEG that is also a ZIP archive (polyglot)', Buffer.concat([jpeg, zip]), 'image/jpeg', /^64 bytes follow the end of the JPEG image/],
      ['a PNG with a payload after IEND (polyglot)', Buffer.concat([png, Buffer.from('<?php system($_GET["c"]); ?>')]), 'image/png', /bytes follow the end of the PNG image/],
      ['a JPEG with a corrupt Huffman table', corrupt(jpeg, 'table'), 'image/jpeg', /^the body is not a valid JPEG image \(corrupt header: VipsJpeg: Bogus Huffman table definition\)$/],
      ['a JPEG whose scan is garbage', corrupt(jpeg, 'scan'), 'image/jpeg', /^the JPEG image could not be decoded \(VipsJpeg: Corrupt JPEG data/],
    ];
    const before = await storedCount();
    for (const [what, body, type, pattern] of cases) {
      const answer = await upload(body, type);
      assert.equal(answer.status, 415, `${what}: ${answer.body.toString()}`);
      assert.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8', what);
      assert.equal(answer.json.code, 'UNSUPPORTED_MEDIA_TYPE', what);
      assert.equal(answer.json.field, 'body', what);
      assert.match(answer.json.detail, pattern, what);
    }
    // Zero padding after the end is not a second file: some cameras pad.
    const padded = await upload(Buffer.concat([jpeg, Buffer.alloc(100)]), 'image/jpeg');
    assert.equal(padded.status, 201, padded.body.toString());
    assert.equal(await storedCount(), before + 1, 'only the padded JPEG was stored');
  });

  it('415 for any other content type or an encoded body', async () => {
    const jpeg = await phoneJpeg();
    const before = await storedCount();
    for (const type of ['image/gif', 'image/jpg', 'image/svg+xml', 'image/heic', 'application/octet-stream', 'text/plain', 'multipart/form-data; boundary=x', '']) {
      const answer = await upload(jpeg, type);
      assert.equal(answer.status, 415, type);
      assert.equal(answer.json.field, 'content-type', type);
      assert.equal(answer.json.detail, `content type must be image/jpeg, image/png or image/webp, not ${JSON.stringify(type)}`);
    }
    const none = await upload(jpeg, null);
    assert.equal(none.status, 415);
    const gzip = await upload(jpeg, 'image/jpeg', undefined, photosUrl, { 'content-encoding': 'gzip' });
    assert.equal(gzip.status, 415);
    assert.equal(gzip.json.field, 'content-encoding');
    // Parameters and case of the media type do not matter.
    assert.equal((await upload(jpeg, 'IMAGE/JPEG; name=photo.jpg')).status, 201);
    assert.equal(await storedCount(), before + 1);
  });

  it('413 at the size limit, declared or streamed, on the subgraph and through the gateway', async () => {
    const before = await storedCount();
    for (const base of [photosUrl, directUrl]) {
      const declared = await upload(Buffer.alloc(MAX_BYTES + 1, 0xff), 'image/jpeg', undefined, base);
      assert.equal(declared.status, 413, base);
      assert.equal(declared.json.code, 'PAYLOAD_TOO_LARGE');
      assert.equal(declared.json.detail, `the photo of ${MAX_BYTES + 1} bytes exceeds the limit of ${MAX_BYTES} bytes (TICKETS_PHOTO_MAX_BYTES)`);
      // 64 MiB announced by nothing (chunked): refused once the limit is passed, without reading it all.
      let sent = 0;
      const started = Date.now();
      async function* endless() {
        const chunk = Buffer.alloc(64 * 1024, 0xff);
        while (sent < 64 * 1024 * 1024) {
          sent += chunk.length;
          yield chunk;
        }
      }
      const streamed = await upload(endless(), 'image/jpeg', alice, base);
      assert.equal(streamed.status, 413, `${base}: ${streamed.body.toString()}`);
      assert.equal(streamed.json.detail, `the photo exceeds the limit of ${MAX_BYTES} bytes (TICKETS_PHOTO_MAX_BYTES)`);
      assert.ok(Date.now() - started < 10_000);
      assert.ok(sent < 24 * 1024 * 1024, `${base}: the server stopped reading (${sent} bytes sent)`);
    }
    // Exactly at the limit is not too large: it is then judged as an image (here: not one).
    const atLimit = await upload(Buffer.alloc(MAX_BYTES, 0x41), 'image/jpeg');
    assert.equal(atLimit.status, 415);
    assert.equal(await storedCount(), before);
  });

  it('refuses decompression bombs (huge dimensions, tiny file) before decoding them', async () => {
    const png = bombPng(20_000, 20_000);
    assert.ok(png.length < 200_000, `${png.length} bytes for 400 megapixels`);
    const decoded = await sharp(png, { limitInputPixels: false }).metadata();
    assert.deepEqual([decoded.format, decoded.width, decoded.height], ['png', 20_000, 20_000], 'a real PNG header');
    // A JPEG whose frame header says 60000 × 60000.
    const jpeg = Buffer.from(await solid(16, 16).jpeg().toBuffer());
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    assert.ok(sof > 0);
    jpeg.writeUInt16BE(60_000, sof + 5);
    jpeg.writeUInt16BE(60_000, sof + 7);
    const before = await storedCount();
    for (const [body, type, width] of [[png, 'image/png', 20_000], [jpeg, 'image/jpeg', 60_000]] as const) {
      const started = Date.now();
      const answer = await upload(body, type);
      assert.equal(answer.status, 413, answer.body.toString());
      assert.equal(answer.json.code, 'PAYLOAD_TOO_LARGE');
      assert.equal(answer.json.field, 'body');
      assert.equal(
        answer.json.detail,
        `the image declares ${width} × ${width} pixels (${Math.round((width * width) / 1e6)} megapixels), more than the limit of ${MAX_INPUT_PIXELS / 1e6} megapixels`,
      );
      assert.ok(Date.now() - started < 3_000, 'refused from its header, not decoded');
    }
    assert.equal(await storedCount(), before);
  });

  it('401 for a token that does not verify, 400 for an empty body or a repeated header, 404 and 405 elsewhere', async () => {
    const jpeg = await phoneJpeg();
    const before = await storedCount();
    const forged = await upload(jpeg, 'image/jpeg', `${alice.slice(0, -4)}AAAA`);
    assert.equal(forged.status, 401);
    // The gateway does not look at /tickets: the subgraph refuses it, with its own words.
    const direct = await upload(jpeg, 'image/jpeg', 'not-a-jwt', directUrl);
    assert.equal(direct.status, 401);
    assert.equal(direct.json.field, 'authorization');
    assert.match(direct.headers['www-authenticate'] as string, /invalid_token/);
    const empty = await upload(Buffer.alloc(0), 'image/jpeg');
    assert.equal(empty.status, 400);
    assert.equal(empty.json.detail, 'the body is empty: send the image’s bytes');
    // On the subgraph's port (the gateway forwards node's parsed headers: the first of a repeated one).
    const headers = ['host', new URL(directUrl).host, 'content-type', 'image/jpeg', 'content-type', 'image/png', 'content-length', String(jpeg.length)];
    const twice = await request(directUrl, { method: 'POST', headers, body: jpeg });
    assert.equal(twice.status, 400);
    assert.equal(twice.json.field, 'content-type');
    const get = await request(photosUrl);
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, 'POST');
    const put = await request(`${photosUrl}/00000000-0000-4000-8000-000000000000`, { method: 'PUT', body: jpeg, headers: { 'content-type': 'image/jpeg' } });
    assert.equal(put.status, 405);
    assert.equal(put.headers.allow, 'GET, HEAD');
    for (const path of ['/tickets', '/tickets/', '/tickets/photo', '/tickets/photos/a/b']) {
      const answer = await request(hub.gatewayUrl.replace(/\/graphql$/, path), { method: 'POST', body: jpeg, headers: { 'content-type': 'image/jpeg' } });
      assert.equal(answer.status, 404, path);
      assert.equal(answer.json.code, 'NOT_FOUND', path);
    }
    assert.equal(await storedCount(), before);
  });

  it('429 with Retry-After past 5 × TICKETS_REPORTS_PER_HOUR uploads in an hour from one uploader', async () => {
    const tickets = await startService('tickets', { db: database, env: { ...ENV, TICKETS_REPORTS_PER_HOUR: '1' } });
    try {
      const url = tickets.url.replace(/\/graphql$/, '/tickets/photos');
      const body = await solid(20, 20).jpeg().toBuffer();
      for (let i = 0; i < 5; i++) assert.equal((await upload(body, 'image/jpeg', alice, url)).status, 201, `upload ${i + 1}`);
      const refused = await upload(body, 'image/jpeg', alice, url);
      assert.equal(refused.status, 429);
      assert.equal(refused.json.code, 'RATE_LIMITED');
      assert.match(refused.json.detail, /^too many photo uploads: at most 5 per hour; retry after \d+ s$/);
      assert.ok(Number(refused.headers['retry-after']) >= 600, 'one upload comes back every 12 minutes');
      // Another uploader has a budget of his own; the public counts by client address.
      assert.equal((await upload(body, 'image/jpeg', bob, url)).status, 201);
      for (let i = 0; i < 5; i++) assert.equal((await upload(body, 'image/jpeg', undefined, url)).status, 201);
      assert.equal((await upload(body, 'image/jpeg', undefined, url)).status, 429);
      // Forwarded by a proxy that is not in TRUSTED_PROXIES: its clients cannot be told apart, so
      // they are not held to one shared budget (the accounts' budgets still hold).
      const proxied = { 'x-forwarded-for': '203.0.113.7' };
      for (let i = 0; i < 6; i++) assert.equal((await upload(body, 'image/jpeg', undefined, url, proxied)).status, 201, `proxied ${i + 1}`);
      assert.equal((await upload(body, 'image/jpeg', alice, url, proxied)).status, 429);
    } finally {
      await tickets.close();
    }
  });
});

describe('claimPhotos: only the uploader attaches an upload, once', () => {
  const tiny = async () => solid(24, 16).jpeg().toBuffer();

  it('an anonymous upload is claimed with its secret only; a token upload by its subject only', async () => {
    const anonymous = (await upload(await tiny(), 'image/jpeg')).json;
    const other = (await upload(await tiny(), 'image/jpeg')).json;
    const alices = (await upload(await tiny(), 'image/jpeg', alice)).json;
    const ticket = await insertTicket('chalons', null);
    await assert.rejects(claim(ticket, [anonymous.id], [], null), refusedClaim(/^photo [0-9a-f-]{36} is not one of your uploads/));
    await assert.rejects(claim(ticket, [anonymous.id], [other.secret], null), refusedClaim(/is not one of your uploads/), 'another upload’s secret');
    await assert.rejects(claim(ticket, [alices.id], [anonymous.secret], null), refusedClaim(/is not one of your uploads/), 'Alice’s upload, anonymously');
    await assert.rejects(claim(ticket, [alices.id], [], 'citizen-bob'), refusedClaim(/is not one of your uploads/), 'Alice’s upload, by Bob');
    assert.equal((await pool.query('SELECT count(*) FROM ticket_photos WHERE ticket_id = $1', [ticket])).rows[0].count, '0');
    // Secrets in any order; the upload of a token and an anonymous one of the same person together.
    const alicesTicket = await insertTicket('chalons', 'citizen-alice');
    await claim(alicesTicket, [alices.id, anonymous.id], [other.secret, anonymous.secret], 'citizen-alice');
    const { rows } = await pool.query('SELECT id::text FROM ticket_photos WHERE ticket_id = $1 ORDER BY id', [alicesTicket]);
    assert.deepEqual(rows.map((r) => r.id), [alices.id, anonymous.id].sort());
    // Once attached, never again (the other upload stays free).
    await assert.rejects(claim(ticket, [anonymous.id], [anonymous.secret], null), refusedClaim(/^photo [0-9a-f-]{36} is already attached to a report$/));
    await assert.rejects(claim(ticket, [other.id, alices.id], [other.secret], 'citizen-alice'), refusedClaim(new RegExp(`^photo ${alices.id} is already attached`)));
    assert.equal((await pool.query('SELECT ticket_id FROM ticket_photos WHERE id = $1', [other.id])).rows[0].ticket_id, null, 'a refused claim attaches none');
  });

  it('refuses more than 5, the same photo twice, a malformed id, an unknown one, and an upload over a day old', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await upload(await tiny(), 'image/jpeg', bob)).json.id);
    const ticket = await insertTicket('fagnieres', 'citizen-bob');
    await assert.rejects(claim(ticket, ids, [], 'citizen-bob'), refusedClaim(/^at most 5 photos per report, got 6$/));
    await assert.rejects(claim(ticket, [ids[0], ids[0]], [], 'citizen-bob'), refusedClaim(/is given twice$/));
    await assert.rejects(claim(ticket, [ids[0], ids[0].toUpperCase()], [], 'citizen-bob'), refusedClaim(/is given twice$/));
    await assert.rejects(claim(ticket, ['42'], [], 'citizen-bob'), refusedClaim(/^"42" is not a photo id/));
    await assert.rejects(claim(ticket, ['00000000-0000-4000-8000-000000000000'], [], 'citizen-bob'), refusedClaim(/is not one of your uploads \(unknown, deleted/));
    await pool.query(`UPDATE ticket_photos SET created_at = now() - interval '25 hours' WHERE id = $1`, [ids[5]]);
    await assert.rejects(claim(ticket, [ids[5]], [], 'citizen-bob'), refusedClaim(/was uploaded more than a day ago and no longer can be attached/));
    await claim(ticket, ids.slice(0, 5), [], 'citizen-bob');
    assert.equal((await pool.query('SELECT count(*) FROM ticket_photos WHERE ticket_id = $1', [ticket])).rows[0].count, '5');
  });

  it('two reports claiming one photo at once: exactly one gets it', async () => {
    for (let round = 0; round < 4; round++) {
      const photo = (await upload(await tiny(), 'image/jpeg')).json;
      const tickets = [await insertTicket('chalons', null), await insertTicket('chalons', null)];
      const outcomes = await Promise.allSettled(
        tickets.map(async (ticket) => {
          await sleep(Math.random() * 10);
          await claim(ticket, [photo.id], [photo.secret], null, Math.random() * 30);
          return ticket;
        }),
      );
      const won = outcomes.filter((o) => o.status === 'fulfilled');
      const lost = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      assert.equal(won.length, 1, `round ${round}: ${JSON.stringify(outcomes.map((o) => o.status))}`);
      assert.match((lost[0].reason as Error).message, /is already attached to a report/);
      const { rows } = await pool.query('SELECT ticket_id::text FROM ticket_photos WHERE id = $1', [photo.id]);
      assert.equal(rows[0].ticket_id, (won[0] as PromiseFulfilledResult<string>).value);
    }
  });
});

describe('GET /tickets/photos/<id>: the reporter and the collectivity’s staff, audited; 404 for everyone else', () => {
  let photoId: string;
  let ticketId: string;
  let stored: Buffer;

  before(async () => {
    const uploaded = await upload(await phoneJpeg(), 'image/jpeg', alice);
    photoId = uploaded.json.id;
    ticketId = await insertTicket('chalons', 'citizen-alice');
    await claim(ticketId, [photoId], [], 'citizen-alice');
    stored = await storedBytes(photoId);
  });

  const audit = async () =>
    (await pool.query(`SELECT actor_sub, actor_roles, fields, channel, request_id FROM personal_data_access_log WHERE ticket_id = $1 ORDER BY id`, [ticketId])).rows;

  it('serves the reporter (not audited) and staff of the ticket’s collectivity (audited, channel photo)', async () => {
    const own = await download(photoId, bearer(alice));
    assert.equal(own.status, 200);
    assert.ok(own.body.equals(stored));
    assert.equal(own.headers['content-type'], 'image/jpeg');
    assert.equal(own.headers['content-length'], String(stored.length));
    assert.equal(own.headers['cache-control'], 'private, max-age=300');
    assert.equal(own.headers['x-content-type-options'], 'nosniff');
    assert.match(own.headers.vary as string, /Authorization/);
    assert.deepEqual(await audit(), [], 'the reporter’s own read is not audited');
    for (const role of ['agent', 'operator', 'admin']) {
      const answer = await download(photoId, { ...bearer(tokens[`${role}:chalons`]), 'x-request-id': `photo-read-${role}` });
      assert.equal(answer.status, 200, role);
      assert.ok(answer.body.equals(stored), role);
    }
    const head = await request(`${photosUrl}/${photoId}`, { method: 'HEAD', headers: bearer(tokens['operator:chalons']) });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const rows = await audit();
    assert.deepEqual(
      rows.map((row) => [row.actor_sub, row.actor_roles, row.fields, row.channel]),
      [
        ['test-agent-chalons', ['agent'], ['photos'], 'photo'],
        ['test-operator-chalons', ['operator'], ['photos'], 'photo'],
        ['test-admin-chalons', ['admin'], ['photos'], 'photo'],
        ['test-operator-chalons', ['operator'], ['photos'], 'photo'],
      ],
    );
    assert.deepEqual(rows.slice(0, 3).map((row) => row.request_id), ['photo-read-agent', 'photo-read-operator', 'photo-read-admin']);
  });

  it('answers everyone else as if the photo did not exist', async () => {
    const unknown = await download('00000000-0000-4000-8000-000000000000', bearer(tokens['operator:chalons']));
    assert.equal(unknown.status, 404);
    const rowsBefore = (await audit()).length;
    const others: [string, Record<string, string>][] = [
      ['the public', {}],
      ['another citizen', bearer(bob)],
      ['a partner of the collectivity', bearer(tokens.partner)],
      ...(['agent', 'operator', 'admin'].map((role) => [`${role} of another collectivity`, bearer(tokens[`${role}:fagnieres`])]) as [string, Record<string, string>][]),
    ];
    for (const [who, headers] of others) {
      const answer = await download(photoId, headers);
      assert.equal(answer.status, 404, who);
      assert.deepEqual({ ...answer.json, instance: undefined }, { ...unknown.json, instance: undefined }, `${who}: the same answer as for a photo that does not exist`);
    }
    assert.equal((await download('not-a-uuid')).status, 404);
    assert.equal((await download(photoId, { authorization: 'Bearer forged' })).status, 401);
    assert.equal((await audit()).length, rowsBefore, 'refused reads are not recorded as reads');
  });

  it('before a report claims it: only its uploader (token or secret); after: the secret no longer opens it', async () => {
    const anonymous = (await upload(await phoneJpeg(), 'image/jpeg')).json;
    assert.equal((await download(anonymous.id, { 'x-photo-secret': anonymous.secret })).status, 200);
    assert.equal((await download(anonymous.id, { 'x-photo-secret': 'wrong' })).status, 404);
    assert.equal((await download(anonymous.id, bearer(tokens['operator:chalons']))).status, 404, 'no ticket yet: no staff');
    const bobs = (await upload(await phoneJpeg(), 'image/jpeg', bob)).json;
    assert.equal((await download(bobs.id, bearer(bob))).status, 200);
    assert.equal((await download(bobs.id, bearer(alice))).status, 404);
    assert.equal((await download(bobs.id)).status, 404);
    const ticket = await insertTicket('fagnieres', null);
    await claim(ticket, [anonymous.id], [anonymous.secret], null);
    assert.equal((await download(anonymous.id, { 'x-photo-secret': anonymous.secret })).status, 404, 'the ticket’s rules now');
    assert.equal((await download(anonymous.id, bearer(tokens['agent:fagnieres']))).status, 200);
    assert.equal((await download(anonymous.id, bearer(tokens['agent:chalons']))).status, 404);
  });
});

describe('deletions for retention and erasure', () => {
  it('deletePhotosOfTickets deletes those tickets’ photos only; deleteUnclaimedPhotos the free uploads older than the cut-off', async () => {
    const body = await solid(20, 20).jpeg().toBuffer();
    const mine = [(await upload(body, 'image/jpeg', alice)).json.id, (await upload(body, 'image/jpeg', alice)).json.id];
    const kept = (await upload(body, 'image/jpeg', alice)).json.id;
    const [erased, other] = [await insertTicket('chalons', 'citizen-alice'), await insertTicket('chalons', 'citizen-alice')];
    await claim(erased, mine, [], 'citizen-alice');
    await claim(other, [kept], [], 'citizen-alice');
    const client = await pool.connect();
    try {
      assert.equal(await deletePhotosOfTickets(client, [erased]), 2);
      assert.equal(await deletePhotosOfTickets(client, [erased]), 0, 'idempotent');
      assert.equal(await deletePhotosOfTickets(client, []), 0);
    } finally {
      client.release();
    }
    assert.equal((await download(mine[0], bearer(alice))).status, 404);
    assert.equal((await download(kept, bearer(alice))).status, 200);

    // Free uploads: two old ones, one fresh one, and an old one that a ticket took.
    const old = [(await upload(body, 'image/jpeg')).json.id, (await upload(body, 'image/jpeg', bob)).json.id];
    const fresh = (await upload(body, 'image/jpeg')).json.id;
    await pool.query(`UPDATE ticket_photos SET created_at = now() - interval '2 days' WHERE id = ANY($1::uuid[]) OR id = $2`, [old, kept]);
    const unclaimedBefore = Number((await pool.query(`SELECT count(*) FROM ticket_photos WHERE ticket_id IS NULL AND created_at < now() - interval '1 day'`)).rows[0].count);
    assert.ok(unclaimedBefore >= 2);
    assert.equal(await deleteUnclaimedPhotos(pool, new Date(Date.now() - UNCLAIMED_PHOTO_TTL_MS)), unclaimedBefore);
    const left = (await pool.query('SELECT id::text FROM ticket_photos WHERE id = ANY($1::uuid[])', [[...old, fresh, kept]])).rows.map((r) => r.id);
    assert.deepEqual(left.sort(), [fresh, kept].sort());
    assert.equal(await deleteUnclaimedPhotos(pool, new Date(Date.now() - UNCLAIMED_PHOTO_TTL_MS)), 0, 'idempotent');
  });

  it('deleteUnclaimedPhotos works through more rows than one batch', async () => {
    const body = await solid(8, 8).jpeg().toBuffer();
    const id = (await upload(body, 'image/jpeg')).json.id;
    // 450 copies of one upload's row, a week old.
    await pool.query(
      `INSERT INTO ticket_photos (id, content_type, width, height, bytes, upload_secret_hash, created_at)
       SELECT gen_random_uuid(), content_type, width, height, bytes, upload_secret_hash, now() - interval '7 days' FROM ticket_photos, generate_series(1, 450) WHERE id = $1`,
      [id],
    );
    assert.equal(await deleteUnclaimedPhotos(pool, new Date(Date.now() - UNCLAIMED_PHOTO_TTL_MS)), 450);
    assert.equal((await pool.query('SELECT count(*) FROM ticket_photos WHERE id = $1', [id])).rows[0].count, '1');
  });
});

describe('GraphQL', () => {
  it('TicketPhoto.url is under PUBLIC_BASE_URL, and every type and field of it is described', async () => {
    const { data } = await gql(hub.gatewayUrl, `{ __type(name: "TicketPhoto") { description fields { name description } } }`);
    assert.ok(data.__type.description);
    assert.deepEqual(data.__type.fields.map((f: { name: string }) => f.name), ['id', 'contentType', 'width', 'height', 'url']);
    for (const field of data.__type.fields) assert.ok(field.description, field.name);
  });
});

describe('end to end: reportProblem claims the photos, Ticket.photos lists them', () => {
  const REPORT = `mutation Report($input: ReportInput!) { reportProblem(input: $input) { ticket { id photos { id contentType width height url } } } }`;
  const TICKET = `query Ticket($id: ID!) { ticket(id: $id) { id photos { id contentType width height url } } }`;

  it('an anonymous reporter attaches his uploads with their secrets; staff and he see them, the public does not', async () => {
    const first = (await upload(await phoneJpeg(), 'image/jpeg')).json;
    const second = (await upload(await solid(300, 100).png().toBuffer(), 'image/png')).json;
    const ticketsBefore = Number((await pool.query('SELECT count(*) FROM tickets')).rows[0].count);
    const input = { category: 'TAG', location: { lon: 4.3652, lat: 48.9571 }, description: 'A tag on the school wall', email: 'anon@example.org' };

    // A wrong secret: refused naming photoIds, nothing written, the uploads still free.
    const refused = await gql(hub.gatewayUrl, REPORT, { variables: { input: { ...input, photoIds: [first.id], photoSecrets: [second.secret] } } });
    assert.equal(refused.errors?.[0].extensions?.code, 'BAD_USER_INPUT', JSON.stringify(refused));
    assert.equal(refused.errors?.[0].extensions?.field, 'photoIds');
    assert.match(refused.errors![0].message, /is not one of your uploads/);
    assert.equal(Number((await pool.query('SELECT count(*) FROM tickets')).rows[0].count), ticketsBefore, 'no ticket written');
    assert.equal((await pool.query('SELECT count(*) FROM ticket_photos WHERE id = ANY($1::uuid[]) AND ticket_id IS NULL', [[first.id, second.id]])).rows[0].count, '2');

    const reported = await gql(hub.gatewayUrl, REPORT, { variables: { input: { ...input, photoIds: [first.id, second.id], photoSecrets: [second.secret, first.secret] } } });
    assert.equal(reported.errors, undefined, JSON.stringify(reported.errors));
    const ticketId = reported.data.reportProblem.ticket.id;
    assert.deepEqual(reported.data.reportProblem.ticket.photos, [], 'the anonymous reporter has no token to see the private part with');

    const base = hub.config.PUBLIC_BASE_URL;
    const expected = [
      { id: first.id, contentType: 'image/jpeg', width: 320, height: 200, url: `${base}/tickets/photos/${first.id}` },
      { id: second.id, contentType: 'image/png', width: 300, height: 100, url: `${base}/tickets/photos/${second.id}` },
    ];
    const staff = await gql(hub.gatewayUrl, TICKET, { token: tokens['operator:chalons'], variables: { id: ticketId } });
    assert.equal(staff.errors, undefined, JSON.stringify(staff.errors));
    assert.deepEqual(staff.data.ticket.photos, expected);
    for (const token of [undefined, bob, tokens['operator:fagnieres']]) {
      const other = await gql(hub.gatewayUrl, TICKET, { token, variables: { id: ticketId } });
      assert.deepEqual(other.data?.ticket?.photos ?? [], [], 'others see no photo');
    }
    // The URL works for staff, through the gateway.
    const served = await download(first.id, bearer(tokens['agent:chalons']));
    assert.equal(served.status, 200);
    await assertNoMetadata(served.body, 'served after the report');
  });

  it('a citizen attaches the uploads of his token and lists them himself', async () => {
    const mine = (await upload(await solid(64, 64).webp().toBuffer(), 'image/webp', alice)).json;
    const reported = await gql(hub.gatewayUrl, REPORT, {
      token: alice,
      variables: { input: { category: 'FULL_BIN', location: { lon: 4.3663, lat: 48.9562 }, description: 'The bin overflows', photoIds: [mine.id] } },
    });
    assert.equal(reported.errors, undefined, JSON.stringify(reported.errors));
    assert.deepEqual(reported.data.reportProblem.ticket.photos.map((p: { id: string }) => p.id), [mine.id]);
    // Bob cannot take Alice's upload.
    const bobs = await gql(hub.gatewayUrl, REPORT, {
      token: bob,
      variables: { input: { category: 'FULL_BIN', location: { lon: 4.3703, lat: 48.9542 }, description: 'Another bin', photoIds: [(await upload(await solid(8, 8).jpeg().toBuffer(), 'image/jpeg', alice)).json.id] } },
    });
    assert.equal(bobs.errors?.[0].extensions?.field, 'photoIds');
  });
});
