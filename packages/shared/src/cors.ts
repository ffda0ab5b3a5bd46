/**
 * CORS for the GraphQL endpoint, by CORS_ALLOWED_ORIGINS: a preflight from an allowed origin
 * gets 204 and the headers a browser needs; one from any other origin gets 403 and no
 * Access-Control-Allow-Origin, so the browser never sends the request. Apollo's CSRF prevention
 * still refuses the simple (non-preflighted) requests a page of any origin can make.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from './http.js';

const ALLOWED_METHODS = 'GET, POST, OPTIONS';
/** What our clients send: the token, JSON, Apollo's CSRF header and operation name, the request id. */
const ALLOWED_HEADERS = 'authorization, content-type, apollo-require-preflight, x-apollo-operation-name, x-request-id';
/** Readable by the page: the request id to report, and when to retry after a 429. */
const EXPOSED_HEADERS = 'x-request-id, retry-after';
/** Browsers cap it (Chromium at 2 h); 10 minutes keeps a configuration change effective soon. */
const MAX_AGE_SECONDS = 600;

export interface Cors {
  /** Answers an OPTIONS request completely. */
  preflight(request: IncomingMessage, response: ServerResponse): void;
  /** Adds the CORS headers an actual request from an allowed origin needs (nothing for others). */
  decorate(request: IncomingMessage, response: ServerResponse): void;
}

export function createCors(allowedOrigins: readonly string[]): Cors {
  const anyOrigin = allowedOrigins.includes('*');
  const allowed = new Set(allowedOrigins);
  const allowOrigin = (origin: string | undefined): string | null => {
    if (origin === undefined) return null;
    if (anyOrigin) return '*';
    return allowed.has(origin) ? origin : null;
  };

  return {
    preflight(request, response) {
      const origin = request.headers.origin;
      // With a list, the answer depends on Origin: caches must keep one per origin.
      if (!anyOrigin) response.setHeader('vary', 'Origin');
      response.setHeader('allow', ALLOWED_METHODS);
      if (origin === undefined) return void response.writeHead(204).end();
      const granted = allowOrigin(origin);
      if (!granted) {
        return sendJson(response, 403, {
          errors: [
            {
              message: `Origin ${origin.slice(0, 200)} is not allowed to call this API from a browser (allowed: ${allowedOrigins.length > 0 ? allowedOrigins.join(', ') : 'none; set CORS_ALLOWED_ORIGINS'})`,
              extensions: { code: 'CORS_ORIGIN_NOT_ALLOWED' },
            },
          ],
        });
      }
      response.writeHead(204, {
        'access-control-allow-origin': granted,
        'access-control-allow-methods': ALLOWED_METHODS,
        'access-control-allow-headers': ALLOWED_HEADERS,
        'access-control-max-age': String(MAX_AGE_SECONDS),
      });
      response.end();
    },
    decorate(request, response) {
      if (!anyOrigin) response.setHeader('vary', 'Origin');
      const granted = allowOrigin(request.headers.origin);
      if (!granted) return;
      response.setHeader('access-control-allow-origin', granted);
      response.setHeader('access-control-expose-headers', EXPOSED_HEADERS);
    },
  };
}
