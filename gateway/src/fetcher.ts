import type { RemoteGraphQLDataSource } from '@apollo/gateway';
import { Agent, type Dispatcher } from 'undici';

/** The fetch API subset the data source calls (its declared `fetcher` type). */
export type Fetcher = RemoteGraphQLDataSource['fetcher'];
type FetcherRequestInit = NonNullable<Parameters<Fetcher>[1]>;
type FetcherResponse = Awaited<ReturnType<Fetcher>>;
type FetcherHeaders = FetcherResponse['headers'];

/**
 * Subgraph calls go through undici's pooled keep-alive client instead of the data source's default
 * make-fetch-happen/node-fetch stack, which cost ~40 % of the gateway's CPU when measured here.
 * `connections` bounds the sockets per subgraph origin: enough for 50+ concurrent gateway requests,
 * each of which may fan out to several fetches of the same subgraph.
 */
export interface SubgraphFetcherOptions {
  connections?: number;
  /**
   * Milliseconds to wait for a subgraph's response headers, then for each body chunk, and to open
   * a connection. A subgraph sends its headers with its complete answer (nothing is streamed), so
   * the first is the time it takes to answer.
   */
  timeoutMs?: number;
}

/** A subgraph took longer than the fetcher's timeout to answer (or to send the rest of its answer). */
export class SubgraphTimeoutError extends Error {
  override name = 'SubgraphTimeoutError';
  constructor(
    readonly timeoutMs: number,
    readonly phase: 'headers' | 'body',
    options: { cause: unknown },
  ) {
    super(`no ${phase === 'headers' ? 'answer' : 'further part of the answer'} within ${timeoutMs} ms`, options);
  }
}

/** undici's own timeouts, as the subgraph's; anything else goes on as it is. */
function timeoutOf(error: unknown, timeoutMs: number): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return new SubgraphTimeoutError(timeoutMs, 'headers', { cause: error });
  if (code === 'UND_ERR_BODY_TIMEOUT') return new SubgraphTimeoutError(timeoutMs, 'body', { cause: error });
  return error;
}

export interface SubgraphFetcher {
  fetcher: Fetcher;
  close(): Promise<void>;
}

export function createSubgraphFetcher({ connections = 128, timeoutMs = 30_000 }: SubgraphFetcherOptions = {}): SubgraphFetcher {
  const agent = new Agent({
    connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    connect: { timeout: timeoutMs },
  });
  // The data source calls the same few URLs for the life of the process: split each one once.
  const targets = new Map<string, { origin: string; path: string }>();
  const targetOf = (url: string) => {
    let target = targets.get(url);
    if (!target) {
      const parsed = new URL(url);
      target = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
      targets.set(url, target);
    }
    return target;
  };

  const fetcher: Fetcher = async (url: string, init: FetcherRequestInit = {}) => {
    const { origin, path } = targetOf(url);
    const response = await agent
      .request({
        origin,
        path,
        method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: init.headers,
        body: init.body,
        signal: init.signal,
      })
      .catch((error: unknown) => Promise.reject(timeoutOf(error, timeoutMs)));
    return new UndiciFetcherResponse(url, response, timeoutMs);
  };

  return { fetcher, close: () => agent.close() };
}

const STATUS_TEXT: Record<number, string> = { 200: 'OK', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };

/** The subset of the fetch API's Response that RemoteGraphQLDataSource and its callers read. */
class UndiciFetcherResponse implements FetcherResponse {
  readonly redirected = false;
  readonly status: number;
  readonly ok: boolean;
  readonly statusText: string;
  readonly headers: FetcherHeaders;
  private consumed = false;

  constructor(
    readonly url: string,
    private readonly response: Dispatcher.ResponseData,
    private readonly timeoutMs: number,
  ) {
    this.status = response.statusCode;
    this.ok = this.status >= 200 && this.status < 300;
    this.statusText = response.statusText || STATUS_TEXT[this.status] || '';
    this.headers = new IncomingHeaders(response.headers);
  }

  get bodyUsed(): boolean {
    return this.consumed;
  }

  text(): Promise<string> {
    return this.read(this.response.body.text());
  }

  json(): Promise<any> {
    return this.read(this.response.body.json());
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this.read(this.response.body.arrayBuffer());
  }

  private read<T>(reading: Promise<T>): Promise<T> {
    this.consumed = true;
    return reading.catch((error: unknown) => Promise.reject(timeoutOf(error, this.timeoutMs)));
  }

  clone(): FetcherResponse {
    throw new Error('clone() is not supported by the subgraph fetcher');
  }
}

/** Read-only view of undici's header object (already lower-cased names). */
class IncomingHeaders implements FetcherHeaders {
  constructor(private readonly raw: Record<string, string | string[] | undefined>) {}

  get(name: string): string | null {
    const value = this.raw[name.toLowerCase()];
    if (value === undefined) return null;
    return Array.isArray(value) ? value.join(', ') : value;
  }

  has(name: string): boolean {
    return this.raw[name.toLowerCase()] !== undefined;
  }

  append(name: string, value: string): void {
    const current = this.get(name);
    this.raw[name.toLowerCase()] = current === null ? value : `${current}, ${value}`;
  }

  set(name: string, value: string): void {
    this.raw[name.toLowerCase()] = value;
  }

  delete(name: string): void {
    delete this.raw[name.toLowerCase()];
  }

  *entries(): IterableIterator<[string, string]> {
    for (const name of Object.keys(this.raw)) {
      const value = this.get(name);
      if (value !== null) yield [name, value];
    }
  }

  *keys(): IterableIterator<string> {
    for (const [name] of this.entries()) yield name;
  }

  *values(): IterableIterator<string> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}
