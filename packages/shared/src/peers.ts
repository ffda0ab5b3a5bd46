/**
 * Calls from one domain to another's own GraphQL queries (DESIGN: a domain reaches another's data
 * through federation or through the owner's queries, never its tables): tickets asks territory who
 * answers for a category at a point, and equipment which asset is nearest.
 *
 * A peer is reached at `SUBGRAPH_<NAME>_URL` when set, else at its registered default port, as the
 * gateway does; a test hub passes the URLs of the subgraphs it started (`startSubgraph`'s `peers`).
 */
import { registeredSubgraph, subgraphUrlVariable } from './registry.js';

/** Where a subgraph is reached: `SUBGRAPH_<NAME>_URL` when set, else its default local port. */
export function subgraphUrl(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const override = env[subgraphUrlVariable(name)];
  if (override) return override;
  return `http://127.0.0.1:${registeredSubgraph(name).defaultPort}/graphql`;
}

/** A peer's answer as GraphQL gives it: a caller maps the peer's errors onto its own fields. */
export interface PeerResponse<T> {
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: { code?: string; field?: string; [key: string]: unknown } }[];
}

/** The peer could not answer (down, timed out, not GraphQL): callers report SERVICE_UNAVAILABLE. */
export class PeerUnavailableError extends Error {
  override name = 'PeerUnavailableError';
  constructor(
    readonly peer: string,
    reason: string,
  ) {
    super(`the ${peer} service did not answer (${reason})`);
  }
}

export interface PeerQueryOptions {
  /** Forwarded as the peer's `Authorization` header (the caller's own token), when the query needs it. */
  authorization?: string;
  /** Forwarded as `x-request-id`, so one request's log lines cross services. */
  requestId?: string;
}

export interface Peers {
  url(name: string): string;
  query<T>(name: string, query: string, variables?: Record<string, unknown>, options?: PeerQueryOptions): Promise<PeerResponse<T>>;
}

export function createPeers(overrides: Record<string, string> = {}, timeoutMs = 10_000, env: NodeJS.ProcessEnv = process.env): Peers {
  const url = (name: string) => overrides[name] ?? subgraphUrl(name, env);
  return {
    url,
    async query<T>(name: string, query: string, variables: Record<string, unknown> = {}, options: PeerQueryOptions = {}) {
      let response: Response;
      try {
        response = await fetch(url(name), {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json',
            ...(options.authorization ? { authorization: options.authorization } : {}),
            ...(options.requestId ? { 'x-request-id': options.requestId } : {}),
          },
          body: JSON.stringify({ query, variables }),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        throw new PeerUnavailableError(name, (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (error as Error).message);
      }
      let body: PeerResponse<T>;
      try {
        body = (await response.json()) as PeerResponse<T>;
      } catch {
        throw new PeerUnavailableError(name, `HTTP ${response.status} without a GraphQL body`);
      }
      if (response.status >= 500 && !body.data) throw new PeerUnavailableError(name, `HTTP ${response.status}`);
      return body;
    },
  };
}
