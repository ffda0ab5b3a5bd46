/**
 * `POST /mobility/gtfs` (reached through the gateway's `/mobility`): imports a GTFS feed.
 *
 *   POST /mobility/gtfs[?dryRun=true][&collectivityId=chalons-agglo]
 *     Content-Type: application/zip (or application/x-zip-compressed); body: the feed's zip
 *     Authorization: Bearer <token of an operator or admin of the collectivity>
 *   201 { feed, counts, warnings, stopsRegistered }        imported (the network replaced)
 *   200 { valid: true, counts, warnings, stopsToRegister } dry run: validated, nothing written
 *   422 problem+json, code INVALID_GTFS, `problems`: [{ file, line, field, code, message }]
 *
 * Refusals (problem details, RFC 9457): 404 another path, 405 another method (Allow), 400 a
 * repeated header, an empty body or a bad query parameter, 401 no token or a token that does not
 * verify, 403 not operator/admin of the collectivity, 415 another content type or a
 * Content-Encoding, 413 a body over GTFS_MAX_UPLOAD_BYTES, 503 the equipment service or the
 * database failed (nothing imported).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { actsIn, createAuthenticator, type Authenticator } from '@connecte/shared/auth';
import { COLLECTIVITY_IDS } from '@connecte/shared/auth';
import { readBodyBytes, repeatedHeader, sendJson } from '@connecte/shared/http';
import { PeerUnavailableError } from '@connecte/shared/peers';
import { PROBLEM_CONTENT_TYPE, refuseRequest } from '@connecte/shared/problem';
import { importGtfs } from './gtfs-import.js';
import type { MobilityResources } from './resources.js';

/** Largest zip accepted, bytes (the shipped feed is about 200 kB zipped). */
export const GTFS_MAX_UPLOAD_BYTES = 50 * 1024 * 1024;
export const GTFS_CONTENT_TYPES = ['application/zip', 'application/x-zip-compressed'] as const;
export const DEFAULT_GTFS_COLLECTIVITY = 'chalons-agglo';

const PATH = '/mobility/gtfs';
const REALM = 'Bearer realm="connecte"';
const authenticators = new WeakMap<MobilityResources, Authenticator>();

class BodyTooLarge extends Error {}

const refuse = (req: IncomingMessage, res: ServerResponse, status: number, code: string, detail: string, field?: string, headers: Record<string, string> = {}) =>
  refuseRequest(req, res, status, { code, detail, ...(field ? { field } : {}) }, { ...headers, 'cache-control': 'no-store' });

export async function handleGtfsRequest(req: IncomingMessage, res: ServerResponse, r: MobilityResources): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname !== PATH && url.pathname !== `${PATH}/`) return refuse(req, res, 404, 'NOT_FOUND', `no such resource: POST a GTFS zip to ${PATH}`);
  if (req.method !== 'POST') return refuse(req, res, 405, 'METHOD_NOT_ALLOWED', `${String(req.method).slice(0, 20)} is not allowed: POST a GTFS zip`, undefined, { allow: 'POST' });
  const twice = repeatedHeader(req, ['authorization', 'content-type', 'content-encoding', 'content-length']);
  if (twice) return refuse(req, res, 400, 'BAD_REQUEST', `the ${twice} header is given more than once`, twice);

  const dryRunParam = url.searchParams.get('dryRun');
  if (dryRunParam !== null && dryRunParam !== 'true' && dryRunParam !== 'false') return refuse(req, res, 400, 'BAD_USER_INPUT', 'dryRun must be true or false', 'dryRun');
  const collectivityId = url.searchParams.get('collectivityId') ?? DEFAULT_GTFS_COLLECTIVITY;
  if (!(COLLECTIVITY_IDS as readonly string[]).includes(collectivityId)) {
    return refuse(req, res, 400, 'BAD_USER_INPUT', `collectivityId must be one of ${COLLECTIVITY_IDS.join(', ')}`, 'collectivityId');
  }

  const authorization = req.headers.authorization;
  if (authorization === undefined || authorization.trim() === '') {
    return refuse(req, res, 401, 'UNAUTHENTICATED', 'authentication required: an operator or admin token of the collectivity', 'authorization', { 'www-authenticate': REALM });
  }
  let authenticate = authenticators.get(r);
  if (!authenticate) authenticators.set(r, (authenticate = createAuthenticator(r.config)));
  let viewer;
  try {
    viewer = await authenticate(authorization);
  } catch (error) {
    return refuse(req, res, 401, 'UNAUTHENTICATED', `the token is refused: ${(error as Error).message}`, 'authorization', { 'www-authenticate': `${REALM}, error="invalid_token"` });
  }
  if (!actsIn(viewer, collectivityId, ['operator', 'admin'])) {
    return refuse(req, res, 403, 'FORBIDDEN', `importing the network needs role operator or admin in collectivity '${collectivityId}'`, 'authorization');
  }

  const contentType = req.headers['content-type'] ?? '';
  const mediaType = contentType.split(';')[0].trim().toLowerCase();
  if (!(GTFS_CONTENT_TYPES as readonly string[]).includes(mediaType)) {
    return refuse(req, res, 415, 'UNSUPPORTED_MEDIA_TYPE', `content type must be application/zip, not ${JSON.stringify(contentType.slice(0, 100))}`, 'content-type');
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    return refuse(req, res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'compressed bodies are not accepted: send the zip as is', 'content-encoding');
  }
  const tooLarge = () => refuse(req, res, 413, 'PAYLOAD_TOO_LARGE', `the feed exceeds the limit of ${GTFS_MAX_UPLOAD_BYTES} bytes`, 'body');
  if (Number(req.headers['content-length']) > GTFS_MAX_UPLOAD_BYTES) return tooLarge();
  let body: Buffer;
  try {
    body = await readBodyBytes(req, GTFS_MAX_UPLOAD_BYTES, () => new BodyTooLarge());
  } catch (error) {
    if (error instanceof BodyTooLarge) return tooLarge();
    res.destroy();
    return;
  }
  if (body.length === 0) return refuse(req, res, 400, 'BAD_REQUEST', 'the body is empty: send the feed’s zip', 'body');

  let result;
  try {
    result = await importGtfs(r, { zip: body, name: 'upload.zip' }, {
      collectivityId,
      dryRun: dryRunParam === 'true',
      authorization,
      importedBy: viewer.sub ?? 'unknown',
      requestId: typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : undefined,
    });
  } catch (error) {
    r.log.error({ err: error }, 'gtfs import failed');
    const detail = error instanceof PeerUnavailableError ? `${error.message}: nothing was imported` : 'the import failed: nothing was imported';
    return refuse(req, res, 503, 'SERVICE_UNAVAILABLE', detail);
  }
  if (!result.ok) {
    const count = result.problems.length + result.moreProblems;
    const body = JSON.stringify({
      type: 'about:blank',
      title: 'Unprocessable Content',
      status: 422,
      detail: `the feed has ${count} problem${count === 1 ? '' : 's'}: nothing was imported`,
      instance: PATH,
      code: 'INVALID_GTFS',
      problems: result.problems,
      moreProblems: result.moreProblems,
      warnings: result.warnings,
    });
    res.writeHead(422, { 'content-type': PROBLEM_CONTENT_TYPE, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' });
    res.end(body);
    return;
  }
  if (result.dryRun) {
    sendJson(res, 200, { valid: true, counts: result.counts, warnings: result.warnings, stopsToRegister: result.stopsToRegister });
    return;
  }
  r.log.info({ feedId: result.feed!.id, counts: result.counts, stopsRegistered: result.stopsRegistered.length }, 'gtfs feed imported');
  sendJson(res, 201, { feed: result.feed, counts: result.counts, warnings: result.warnings, stopsRegistered: result.stopsRegistered });
}
