/**
 * The one body of an HTTP error outside GraphQL (open data, Open311, ingest, the gateway's own
 * routes): RFC 9457 problem details, `application/problem+json`.
 *
 * `type` is always `about:blank`: the hub publishes no documentation URL per problem type, and
 * RFC 9457 §4.2.1 says that with `about:blank` the `title` is the HTTP status phrase, so both
 * follow from the status. What a client dispatches on is the extension member `code`, the same
 * vocabulary as `extensions.code` of the GraphQL errors (BAD_USER_INPUT, NOT_FOUND, …), with
 * `field` naming the parameter or header at fault, as `extensions.field` does there.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

/** Longer request paths are left out of `instance` rather than echoed back. */
const MAX_INSTANCE_LENGTH = 512;

export interface ProblemInput {
  /** Machine-readable: BAD_USER_INPUT, NOT_FOUND, METHOD_NOT_ALLOWED, INTERNAL_SERVER_ERROR… */
  code: string;
  /** This occurrence, for a person: what was wrong and, where it helps, what to send instead. */
  detail: string;
  /** The query parameter or request header at fault. */
  field?: string;
  /** The occurrence; by default the request's path (without its query string). */
  instance?: string;
}

export interface ProblemDetails {
  type: 'about:blank';
  title: string;
  status: number;
  detail: string;
  instance?: string;
  code: string;
  field?: string;
}

function problemDetails(status: number, problem: ProblemInput): ProblemDetails {
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? `HTTP ${status}`,
    status,
    detail: problem.detail,
    ...(problem.instance !== undefined ? { instance: problem.instance } : {}),
    code: problem.code,
    ...(problem.field !== undefined ? { field: problem.field } : {}),
  };
}

/** The request path a response answers, or nothing when it is too long to be worth echoing. */
function requestPath(res: ServerResponse): string | undefined {
  const url = res.req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  return path.length <= MAX_INSTANCE_LENGTH ? path : undefined;
}

/**
 * Ends `res` with `status` and the problem details. `headers` adds to them (Allow, Vary,
 * Access-Control-Allow-Origin…). A HEAD request gets the headers only: node:http drops the body.
 */
export function sendProblem(res: ServerResponse, status: number, problem: ProblemInput, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(problemDetails(status, { ...problem, instance: problem.instance ?? requestPath(res) }));
  res.writeHead(status, {
    ...headers,
    'content-type': PROBLEM_CONTENT_TYPE,
    'content-length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/** What a refused request may still send after the answer (discarded) before its connection is cut. */
export const LINGER_BYTES = 4 * 1024 * 1024;
export const LINGER_MS = 3_000;

/**
 * Answers a request with a problem without reading (the rest of) its body: a refusal decided on
 * the headers or part of the body (413, 415, 401...). The connection is not cut at once: a peer
 * still sending (the gateway forwarding a large upload) whose socket is cut gets EPIPE and may
 * never read the answer, so what still comes is discarded for a while (a lingering close, as
 * HTTP servers do), then the connection is cut if the body has not ended by then: a client
 * cannot make the service read much more than LINGER_BYTES.
 */
export function refuseRequest(req: IncomingMessage, res: ServerResponse, status: number, problem: ProblemInput, headers: Record<string, string> = {}): void {
  sendProblem(res, status, problem, headers);
  lingerAfterAnswer(req);
}

/**
 * After an answer sent before (all of) the request's body was read, whatever its format: the
 * lingering close of `refuseRequest`, for routes that answer errors in a format of their own (Open311).
 */
export function lingerAfterAnswer(req: IncomingMessage): void {
  if (req.readableEnded) return;
  let discarded = 0;
  const stop = () => {
    clearTimeout(timer);
    req.off('data', count);
  };
  const cut = () => {
    stop();
    req.socket.destroy();
  };
  const count = (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) cut();
  };
  const timer = setTimeout(cut, LINGER_MS).unref();
  req.on('data', count);
  req.once('end', stop);
  req.once('close', stop);
  req.resume();
}
