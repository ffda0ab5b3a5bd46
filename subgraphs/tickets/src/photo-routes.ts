/**
 * Photo uploads and downloads (served by the tickets subgraph under `/tickets`, reached through
 * the gateway's `/tickets`, which streams bodies through without a limit of its own: the limit is
 * TICKETS_PHOTO_MAX_BYTES, here):
 *
 *   POST /tickets/photos            raw body, Content-Type image/jpeg | image/png | image/webp,
 *                                   Authorization: Bearer <token> optional
 *     201 { id, contentType, width, height, secret? }   (Location: the photo's URL)
 *   GET  /tickets/photos/<id>       the re-encoded image (HEAD: its headers)
 *
 * An upload is decoded and re-encoded without metadata before it is stored (photo-store.ts).
 * `secret` is given only to an anonymous uploader, once: a report claims the photo with it
 * (`photoSecrets`); the hub keeps only its hash.
 *
 * A photo is served to whoever sees its ticket's private part (the reporter; agents, operators
 * and admins of the ticket's collectivity: their reads are audited, channel `photo`), and before
 * a report claims it to its uploader (his token, or for an anonymous upload its secret in
 * `X-Photo-Secret`). Anyone else gets the 404 of a photo that does not exist.
 *
 * Refusals are problem details (RFC 9457) naming the reason, before anything is stored:
 * 404 (another path, an unknown photo), 405 (with Allow), 400 (a repeated header, an empty body),
 * 401 (a token that does not verify: never taken as anonymous), 415 (another content type, a
 * Content-Encoding, or bytes that are not the image they are sent as), 413 (over
 * TICKETS_PHOTO_MAX_BYTES, declared or counted as it streams, or an image over MAX_INPUT_PIXELS),
 * 429 (more uploads than 5 × TICKETS_REPORTS_PER_HOUR in an hour from one uploader: his account,
 * or the client address of an anonymous one, see `anonymousUploader`; with Retry-After), 503 (the database failed: nothing stored).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter } from 'prom-client';
import { addressBucketKey, clientAddressResolver, type ClientAddressOf } from '@connecte/shared/client-address';
import { createAuthenticator, PUBLIC_VIEWER, type Authenticator, type Viewer } from '@connecte/shared/auth';
import { readBodyBytes, repeatedHeader, sendJson } from '@connecte/shared/http';
import { refuseRequest, sendProblem } from '@connecte/shared/problem';
import {
  insertPhoto,
  loadStoredPhoto,
  MAX_PHOTOS_PER_REPORT,
  newUploadSecret,
  PHOTO_TYPES,
  PhotoRefused,
  reencodePhoto,
  secretMatches,
  type PhotoRow,
  type PhotoType,
} from './photo-store.js';
import { isReporterOf, isStaffOf, recordPersonalDataAccess } from './privacy.js';
import type { TicketResources } from './resources.js';

/** The public URL of a photo: PUBLIC_BASE_URL (without its trailing slash) + `/tickets/photos/<id>`. */
export function photoUrl(resources: Pick<TicketResources, 'config'>, photo: Pick<PhotoRow, 'id'>): string {
  return `${resources.config.PUBLIC_BASE_URL.replace(/\/+$/, '')}/tickets/photos/${photo.id}`;
}

const UPLOAD_PATH = '/tickets/photos';
const PHOTO_PATH = /^\/tickets\/photos\/([^/]+)$/;
const SECRET_HEADER = 'x-photo-secret';
const REALM = 'Bearer realm="connecte"';
const RETRY_AFTER_SECONDS = '5';
const EXTENSIONS: Record<PhotoType, string> = { 'image/jpeg': 'jpg', 'image/png': 'png', 'image/webp': 'webp' };

/** What the routes keep per process: the token verifier, the client address, the upload budgets, the counter. */
interface RouteState {
  authenticate: Authenticator;
  clientAddress: ClientAddressOf;
  uploads: UploadBudgets;
  outcomes: Counter<'outcome'> | null;
  /** Whether the warning about a proxy missing from TRUSTED_PROXIES was logged. */
  warnedUntrustedProxy: boolean;
}
const states = new WeakMap<TicketResources, RouteState>();

function stateOf(resources: TicketResources): RouteState {
  let state = states.get(resources);
  if (!state) {
    const registry = resources.metrics?.registry;
    state = {
      authenticate: createAuthenticator(resources.config),
      clientAddress: clientAddressResolver(resources.config.TRUSTED_PROXIES),
      uploads: new UploadBudgets(MAX_PHOTOS_PER_REPORT * resources.config.TICKETS_REPORTS_PER_HOUR),
      outcomes: registry
        ? ((registry.getSingleMetric('tickets_photo_uploads_total') as Counter<'outcome'> | undefined) ??
          new Counter({
            name: 'tickets_photo_uploads_total',
            help: 'Photo uploads, by outcome (stored, or the reason they were refused)',
            labelNames: ['outcome'] as const,
            registers: [registry],
          }))
        : null,
      warnedUntrustedProxy: false,
    };
    states.set(resources, state);
  }
  return state;
}

/**
 * Uploads per hour per uploader (account, or client address for the public): a bucket of
 * `perHour` refilled over an hour; 0 disables. In memory (per instance), at most 50,000 uploaders
 * remembered (the least recently seen forgotten first).
 */
class UploadBudgets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly perHour: number) {}

  /** 0 when allowed, else the seconds to wait. */
  take(key: string, now = Date.now()): number {
    if (this.perHour === 0) return 0;
    const refillPerMs = this.perHour / 3_600_000;
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key);
      bucket.tokens = Math.min(this.perHour, bucket.tokens + (now - bucket.at) * refillPerMs);
      bucket.at = now;
    } else {
      if (this.buckets.size >= 50_000) this.buckets.delete(this.buckets.keys().next().value!);
      bucket = { tokens: this.perHour, at: now };
    }
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerMs / 1000));
  }
}

interface Problem {
  code: string;
  detail: string;
  field?: string;
}

/** Answers without storing (the rest of) the body, with a lingering close (`refuseRequest`). */
const refuse = (req: IncomingMessage, res: ServerResponse, status: number, problem: Problem, headers: Record<string, string> = {}) =>
  refuseRequest(req, res, status, problem, { ...headers, 'cache-control': 'no-store' });

const notFound = (req: IncomingMessage, res: ServerResponse) =>
  refuse(req, res, 404, { code: 'NOT_FOUND', detail: 'no such photo: POST an image to /tickets/photos, GET /tickets/photos/<id>' });

/** The caller, or null when the answer (401) was sent. */
async function viewerOf(req: IncomingMessage, res: ServerResponse, state: RouteState): Promise<Viewer | null> {
  const authorization = req.headers.authorization;
  if (authorization === undefined || authorization.trim() === '') return PUBLIC_VIEWER;
  try {
    return await state.authenticate(authorization);
  } catch (error) {
    refuse(req, res, 401, { code: 'UNAUTHENTICATED', field: 'authorization', detail: `the token is refused: ${(error as Error).message}` }, { 'www-authenticate': `${REALM}, error="invalid_token"` });
    return null;
  }
}

export async function handlePhotoRequest(req: IncomingMessage, res: ServerResponse, resources: TicketResources): Promise<void> {
  const url = req.url ?? '/';
  const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
  const state = stateOf(resources);
  if (path === UPLOAD_PATH || path === `${UPLOAD_PATH}/`) {
    if (req.method !== 'POST') {
      return refuse(req, res, 405, { code: 'METHOD_NOT_ALLOWED', detail: `${String(req.method).slice(0, 20)} is not allowed: POST an image to /tickets/photos` }, { allow: 'POST' });
    }
    return upload(req, res, resources, state);
  }
  const match = PHOTO_PATH.exec(path);
  if (!match) return notFound(req, res);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return refuse(req, res, 405, { code: 'METHOD_NOT_ALLOWED', detail: `${String(req.method).slice(0, 20)} is not allowed: GET a photo` }, { allow: 'GET, HEAD' });
  }
  return download(req, res, resources, state, decodeURIComponentSafe(match[1]));
}

const decodeURIComponentSafe = (value: string) => {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
};

async function upload(req: IncomingMessage, res: ServerResponse, resources: TicketResources, state: RouteState): Promise<void> {
  const count = (outcome: string) => state.outcomes?.inc({ outcome });
  const twice = repeatedHeader(req, ['authorization', 'content-type', 'content-encoding', 'content-length']);
  if (twice) {
    count('bad_request');
    return refuse(req, res, 400, { code: 'BAD_REQUEST', field: twice, detail: `the ${twice} header is given more than once` });
  }
  const viewer = await viewerOf(req, res, state);
  if (!viewer) return void count('unauthenticated');

  const contentType = req.headers['content-type'] ?? '';
  const mediaType = contentType.split(';')[0].trim().toLowerCase();
  if (!(PHOTO_TYPES as readonly string[]).includes(mediaType)) {
    count('unsupported_type');
    return refuse(req, res, 415, {
      code: 'UNSUPPORTED_MEDIA_TYPE',
      field: 'content-type',
      detail: `content type must be image/jpeg, image/png or image/webp, not ${JSON.stringify(contentType.slice(0, 100))}`,
    });
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    count('unsupported_type');
    return refuse(req, res, 415, { code: 'UNSUPPORTED_MEDIA_TYPE', field: 'content-encoding', detail: 'compressed bodies are not accepted: send the image as is' });
  }
  const maxBytes = resources.config.TICKETS_PHOTO_MAX_BYTES;
  const tooLarge = (measured?: number) => {
    count('too_large');
    refuse(req, res, 413, {
      code: 'PAYLOAD_TOO_LARGE',
      field: 'body',
      detail: `the photo ${measured !== undefined ? `of ${measured} bytes ` : ''}exceeds the limit of ${maxBytes} bytes (TICKETS_PHOTO_MAX_BYTES)`,
    });
  };
  const declared = Number(req.headers['content-length']);
  if (declared > maxBytes) return tooLarge(declared);

  // The budget is taken before the body is read: a flood costs the headers only.
  const uploader = viewer.sub !== null ? `sub:${viewer.sub}` : anonymousUploader(req, resources, state);
  const wait = uploader === null ? 0 : state.uploads.take(uploader);
  if (wait > 0) {
    count('rate_limited');
    return refuse(
      req,
      res,
      429,
      { code: 'RATE_LIMITED', detail: `too many photo uploads: at most ${MAX_PHOTOS_PER_REPORT * resources.config.TICKETS_REPORTS_PER_HOUR} per hour; retry after ${wait} s` },
      { 'retry-after': String(wait) },
    );
  }

  let body: Buffer;
  try {
    body = await readBodyBytes(req, maxBytes, () => new BodyTooLarge());
  } catch (error) {
    if (error instanceof BodyTooLarge) return tooLarge();
    res.destroy(); // the client went away: nobody to answer
    return;
  }
  if (body.length === 0) {
    count('bad_request');
    return refuse(req, res, 400, { code: 'BAD_REQUEST', field: 'body', detail: 'the body is empty: send the image’s bytes' });
  }

  let encoded;
  try {
    encoded = await reencodePhoto(body, mediaType as PhotoType, resources.config.TICKETS_PHOTO_MAX_SIDE);
  } catch (error) {
    if (!(error instanceof PhotoRefused)) throw error;
    count(error.status === 413 ? 'too_many_pixels' : 'not_the_image');
    return refuse(req, res, error.status, {
      code: error.status === 413 ? 'PAYLOAD_TOO_LARGE' : 'UNSUPPORTED_MEDIA_TYPE',
      field: 'body',
      detail: error.message,
    });
  }

  const secret = viewer.sub === null ? newUploadSecret() : null;
  let row: PhotoRow;
  try {
    row = await insertPhoto(resources.db.pool, { ...encoded, uploaderSub: viewer.sub, secretHash: secret?.hash ?? null });
  } catch (error) {
    count('unavailable');
    resources.log.warn({ err: (error as Error)?.message ?? String(error) }, 'photo upload failed: the database did not answer');
    return refuse(req, res, 503, { code: 'SERVICE_UNAVAILABLE', detail: 'the photo could not be stored now; nothing was stored: send it again later' }, { 'retry-after': RETRY_AFTER_SECONDS });
  }
  count('stored');
  res.setHeader('location', photoUrl(resources, row));
  res.setHeader('cache-control', 'no-store');
  sendJson(res, 201, {
    id: row.id,
    contentType: row.contentType,
    width: row.width,
    height: row.height,
    ...(secret ? { secret: secret.secret } : {}),
  });
}

/** Thrown while reading the body: it is over the limit. */
class BodyTooLarge extends Error {}

/**
 * The budget key of an anonymous upload: its client address. A request forwarded
 * (X-Forwarded-For) by a proxy missing from TRUSTED_PROXIES (the gateway, by default) cannot be
 * told apart from the others: counted under the proxy's address, every anonymous uploader would
 * share one budget, so none is applied (null), and the deployment is told once how to fix it
 * (as Open311 does).
 */
function anonymousUploader(req: IncomingMessage, resources: TicketResources, state: RouteState): string | null {
  const address = state.clientAddress(req);
  if (req.headers['x-forwarded-for'] !== undefined) {
    const peer = (req.socket.remoteAddress ?? '').replace(/^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i, '$1');
    if (address === peer) {
      if (!state.warnedUntrustedProxy) {
        state.warnedUntrustedProxy = true;
        resources.log.warn(
          { proxy: peer },
          "photo uploads come through a proxy that is not in TRUSTED_PROXIES: anonymous uploads are not limited per client address; add the gateway's address to TRUSTED_PROXIES",
        );
      }
      return null;
    }
  }
  return `address:${addressBucketKey(address)}`;
}

async function download(req: IncomingMessage, res: ServerResponse, resources: TicketResources, state: RouteState, id: string): Promise<void> {
  const viewer = await viewerOf(req, res, state);
  if (!viewer) return;
  let photo;
  try {
    photo = await loadStoredPhoto(resources.db.pool, id);
  } catch (error) {
    return unavailable(req, res, resources, error);
  }
  if (!photo) return notFound(req, res);
  if (photo.ticketId === null) {
    // Not yet a ticket's: only its uploader.
    const mine = (viewer.sub !== null && photo.uploaderSub === viewer.sub) || secretMatches(headerValue(req, SECRET_HEADER), photo.uploadSecretHash);
    if (!mine) return notFound(req, res);
  } else {
    const ticket = { reporterSub: photo.ticketReporterSub, collectivityId: photo.ticketCollectivityId ?? '' };
    if (!isReporterOf(viewer, ticket)) {
      if (!isStaffOf(viewer, ticket)) return notFound(req, res);
      // Audited before it is served: a read that cannot be recorded is not made.
      const requestId = res.getHeader('x-request-id');
      try {
        await recordPersonalDataAccess(resources.db.pool, {
          actor: viewer,
          ticketIds: [photo.ticketId],
          fields: ['photos'],
          channel: 'photo',
          requestId: typeof requestId === 'string' ? requestId : null,
        });
      } catch (error) {
        return unavailable(req, res, resources, error);
      }
    }
  }
  res.writeHead(200, {
    'content-type': photo.contentType,
    'content-length': String(photo.bytes.length),
    // The viewer's own browser may keep it a little; no shared cache may (it depends on the token).
    'cache-control': 'private, max-age=300',
    vary: 'Authorization, X-Photo-Secret',
    'x-content-type-options': 'nosniff',
    'content-security-policy': "default-src 'none'; sandbox",
    'content-disposition': `inline; filename="photo-${photo.id}.${EXTENSIONS[photo.contentType]}"`,
  });
  res.end(req.method === 'HEAD' ? undefined : photo.bytes);
}

const headerValue = (req: IncomingMessage, name: string) => {
  const value = req.headers[name];
  return Array.isArray(value) ? undefined : value;
};

function unavailable(req: IncomingMessage, res: ServerResponse, resources: TicketResources, error: unknown): void {
  resources.log.warn({ err: (error as Error)?.message ?? String(error) }, 'photo request failed: the database did not answer');
  if (res.headersSent) return void res.destroy();
  refuse(req, res, 503, { code: 'SERVICE_UNAVAILABLE', detail: 'the photo cannot be read now: try again later' }, { 'retry-after': RETRY_AFTER_SECONDS });
}
