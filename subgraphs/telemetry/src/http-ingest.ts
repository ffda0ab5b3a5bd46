/**
 * `POST /ingest`: a SenML pack over HTTP (served by the telemetry subgraph, forwarded by the
 * gateway from its own `/ingest`), authenticated by a device credential or an ingest key
 * (`Authorization: Bearer <token>`), answered with what became of each record:
 *
 *   200 { "accepted": 3, "duplicate": 1, "rejected": [{ "index": 4, "field": "u", "reason": "…" }] }
 *
 * A pack that could be read is answered 200 with its counts even when every record was rejected:
 * the request was processed, and what went wrong is per record (a 4xx would make a client treat
 * the whole batch as one failure and lose the per-record reasons). Everything else is problem
 * details (RFC 9457, packages/shared/src/problem.ts), checked in this order, before any write:
 *
 * - 404 for a path under /ingest, 405 (with Allow: POST) for any method but POST;
 * - 400 for a repeated Authorization or Content-Type header (ambiguous: node keeps the first);
 * - 401 (with WWW-Authenticate) for a missing, malformed, unknown or revoked credential;
 * - 415 for a content type other than application/senml+json or application/json (UTF-8), or a
 *   Content-Encoding;
 * - 413 for a body over INGEST_MAX_BYTES (the declared length, or counted as it streams: never
 *   buffered beyond the limit) or a pack of more than INGEST_MAX_RECORDS records;
 * - 400 for a body that is not a SenML pack (malformed JSON, not an array, empty);
 * - 503 (with Retry-After) when the database fails: nothing was stored, the client may resend
 *   the same pack (readings are idempotent).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBodyBytes, repeatedHeader, sendJson } from '@connecte/shared/http';
import { refuseRequest, sendProblem } from '@connecte/shared/problem';
import type { TelemetryResources } from './resources.js';
import type { Principal } from './types.js';

const ALLOWED_TYPES = new Set(['application/senml+json', 'application/json']);
const REALM = 'Bearer realm="connecte-ingest"';
const RETRY_AFTER_SECONDS = '5';

/** Thrown while reading the body: it is over the limit. */
class BodyTooLarge extends Error {}

/** Ends the exchange without reading (the rest of) the body, with a lingering close (`refuseRequest`). */
const refuse = refuseRequest;

export async function handleIngestRequest(req: IncomingMessage, res: ServerResponse, r: TelemetryResources): Promise<void> {
  const url = req.url ?? '/';
  const path = url.includes('?') ? url.slice(0, url.indexOf('?')) : url;
  if (path !== '/ingest' && path !== '/ingest/') {
    return refuse(req, res, 404, { code: 'NOT_FOUND', detail: `No route for ${path.slice(0, 200)}: POST a SenML pack to /ingest` });
  }
  if (req.method !== 'POST') {
    return refuse(req, res, 405, { code: 'METHOD_NOT_ALLOWED', detail: `${String(req.method).slice(0, 20)} is not allowed: POST a SenML pack to /ingest` }, { allow: 'POST' });
  }
  const twice = repeatedHeader(req, ['authorization', 'content-type', 'content-encoding']);
  if (twice) {
    return refuse(req, res, 400, { code: 'BAD_REQUEST', field: twice, detail: `the ${twice} header is given more than once` });
  }

  // Who is sending.
  const authorization = req.headers.authorization;
  if (authorization === undefined || authorization.trim() === '') {
    return refuse(req, res, 401, { code: 'UNAUTHENTICATED', field: 'authorization', detail: 'a device credential or an ingest key is required: Authorization: Bearer <token>' }, { 'www-authenticate': REALM });
  }
  const bearer = /^Bearer +([\x21-\x7e]{1,512})$/i.exec(authorization.trim());
  if (!bearer) {
    return refuse(req, res, 401, { code: 'UNAUTHENTICATED', field: 'authorization', detail: 'the authorization header must be "Bearer <token>"' }, { 'www-authenticate': `${REALM}, error="invalid_request"` });
  }
  let principal: Principal | null;
  try {
    principal = await r.credentials.authenticate(bearer[1]);
  } catch (error) {
    return unavailable(req, res, r, error);
  }
  if (!principal || principal.kind === 'topic') {
    return refuse(req, res, 401, { code: 'UNAUTHENTICATED', field: 'authorization', detail: 'the credential is unknown or revoked' }, { 'www-authenticate': `${REALM}, error="invalid_token"` });
  }

  // What it sends.
  const contentType = req.headers['content-type'] ?? '';
  const [mediaType, ...parameters] = contentType.split(';').map((part) => part.trim().toLowerCase());
  const charset = parameters.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/^"|"$/g, '');
  if (!ALLOWED_TYPES.has(mediaType) || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) {
    return refuse(req, res, 415, {
      code: 'UNSUPPORTED_MEDIA_TYPE',
      field: 'content-type',
      detail: `content type must be application/senml+json or application/json (UTF-8), not ${JSON.stringify(contentType.slice(0, 100))}`,
    });
  }
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
    return refuse(req, res, 415, { code: 'UNSUPPORTED_MEDIA_TYPE', field: 'content-encoding', detail: 'compressed bodies are not accepted: send the pack as is' });
  }
  const maxBytes = r.config.INGEST_MAX_BYTES;
  const declared = Number(req.headers['content-length']);
  const tooLarge = (measured?: number) =>
    refuse(req, res, 413, {
      code: 'PAYLOAD_TOO_LARGE',
      field: 'body',
      detail: `the body ${measured !== undefined ? `of ${measured} bytes ` : ''}exceeds the limit of ${maxBytes} bytes (INGEST_MAX_BYTES)`,
    });
  if (declared > maxBytes) return tooLarge(declared);
  let payload: Buffer;
  try {
    payload = await readBodyBytes(req, maxBytes, () => new BodyTooLarge());
  } catch (error) {
    if (error instanceof BodyTooLarge) return tooLarge();
    // The client went away: nobody to answer.
    res.destroy();
    return;
  }

  let result;
  try {
    [result] = await r.ingestor.ingestDetailed([{ transport: 'http', topic: null, payload, principal }]);
  } catch (error) {
    return unavailable(req, res, r, error);
  }
  if (result.refusal !== null) {
    const rejection = result.rejected[0];
    const status = result.refusal === 'too_many_records' ? 413 : 400;
    return sendProblem(res, status, {
      code: status === 413 ? 'PAYLOAD_TOO_LARGE' : 'BAD_USER_INPUT',
      field: rejection?.field ?? 'body',
      detail: rejection?.reason ?? 'the body is not a SenML pack',
    });
  }
  sendJson(res, 200, { accepted: result.accepted, duplicate: result.duplicate, rejected: result.rejected });
}

/** The database failed (the Ingestor and the credential store throw only then): 503, nothing stored. */
function unavailable(req: IncomingMessage, res: ServerResponse, r: TelemetryResources, error: unknown): void {
  r.log.warn({ err: (error as Error)?.message ?? String(error) }, 'HTTP ingest failed: the database did not answer');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  refuse(req, res, 503, { code: 'SERVICE_UNAVAILABLE', detail: 'the readings could not be stored now; nothing was stored: send them again later' }, { 'retry-after': RETRY_AFTER_SECONDS });
}
