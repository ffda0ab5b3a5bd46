/** The small node:http pieces every server of the hub (subgraphs, gateway) shares. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeaderMap, type HTTPGraphQLResponse } from '@apollo/server';

/** A client error that ends the request with this status and a GraphQL-shaped body. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** `extensions` of the error in the body; `code` defaults to BAD_REQUEST. */
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export const requestError = (message: string, extensions: Record<string, unknown> = {}) => ({
  errors: [{ message, extensions: { code: 'BAD_REQUEST', ...extensions } }],
});

/** The body of an HttpError. */
export const httpErrorBody = (error: HttpError) => requestError(error.message, error.extensions);

export const INTERNAL_ERROR_BODY = { errors: [{ message: 'Internal server error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] };

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Path and query string (with its `?`) of a request URL, without URL parsing on the hot path. */
export function splitUrl(url = '/'): { path: string; search: string } {
  const q = url.indexOf('?');
  return q === -1 ? { path: url, search: '' } : { path: url.slice(0, q), search: url.slice(q) };
}

/**
 * The whole body as text; a body over `maxBytes` rejects with HttpError 413 and the rest is
 * discarded. Listeners rather than `for await`: the async iterator costs measurably here.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  const tooLarge = () =>
    new HttpError(413, `request body ${declared > maxBytes ? `of ${declared} bytes ` : ''}exceeds the limit of ${maxBytes} bytes (MAX_BODY_BYTES)`, {
      code: 'PAYLOAD_TOO_LARGE',
      limit: 'bodyBytes',
      max: maxBytes,
      ...(declared > maxBytes ? { measured: declared } : {}),
    });
  if (declared > maxBytes) {
    req.resume();
    return Promise.reject(tooLarge());
  }
  return readBodyBytes(req, maxBytes, tooLarge).then((body) => body.toString('utf8'));
}

/**
 * The whole body as bytes, counted as it arrives: as soon as it passes `maxBytes` the rest is
 * discarded (the response then closes the connection) and the promise rejects with `tooLarge()`.
 */
export function readBodyBytes(req: IncomingMessage, maxBytes: number, tooLarge: () => Error): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        req.off('data', onData);
        req.resume();
        reject(tooLarge());
      } else {
        chunks.push(chunk);
      }
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    req.once('error', reject);
    req.once('aborted', () => reject(new Error('request aborted')));
  });
}

export function headerMapOf(req: IncomingMessage): HeaderMap {
  const headers = new HeaderMap();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return headers;
}

/** Writes Apollo Server's answer to a node:http response. */
export async function writeGraphQLResponse(res: ServerResponse, result: HTTPGraphQLResponse): Promise<void> {
  for (const [name, value] of result.headers) res.setHeader(name, value);
  res.statusCode = result.status ?? 200;
  if (result.body.kind === 'complete') {
    res.end(result.body.string);
    return;
  }
  for await (const chunk of result.body.asyncIterator) res.write(chunk);
  res.end();
}

/** `query` and `extensions` of a GraphQL request over HTTP: the JSON body of a POST, the query string of a GET. */
export function graphQLParams(method: string, body: unknown, search: string): { query?: unknown; extensions?: unknown } {
  if (method === 'GET') {
    const params = new URLSearchParams(search);
    const extensions = params.get('extensions');
    let parsed: unknown;
    try {
      parsed = extensions === null ? undefined : JSON.parse(extensions);
    } catch {
      parsed = undefined; // Apollo answers the malformed parameter itself
    }
    return { query: params.get('query') ?? undefined, extensions: parsed };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return {};
  const { query, extensions } = body as { query?: unknown; extensions?: unknown };
  return { query, extensions };
}

/** The same request with `query` set (a registered operation sent by its hash only). */
export function withQuery(method: string, body: unknown, search: string, query: string): { body: unknown; search: string } {
  if (method === 'GET') {
    const params = new URLSearchParams(search);
    params.set('query', query);
    return { body, search: `?${params}` };
  }
  return { body: { ...(body as object), query }, search };
}

/** The first of `names` (lower case) the request carries more than once, else null: a route refuses it rather than pick one copy. */
export function repeatedHeader(req: IncomingMessage, names: readonly string[]): string | null {
  const seen = new Set<string>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i].toLowerCase();
    if (!names.includes(name)) continue;
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return null;
}
