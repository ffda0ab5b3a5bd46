import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { GraphQLError } from 'graphql';
import type { Logger } from '@connecte/shared/log';
import { SubgraphTimeoutError } from './fetcher.js';

type GatewayGraphQLResponse = Awaited<ReturnType<RemoteGraphQLDataSource['process']>>;

/** What the gateway knows of the caller and forwards to every subgraph it calls for them. */
export interface GatewayContext {
  /** The caller's `Authorization` header, verified by the gateway; each subgraph verifies it again. */
  authorization?: string;
  /** Crosses the gateway so one request can be followed through every service's log. */
  requestId: string;
  /** The X-Forwarded-For chain the subgraphs receive: the caller's own, then the address the gateway saw. */
  forwardedFor?: string;
}

/** The chain a request forwarded by the gateway carries: what it came with, then its peer (as the route forwarder does). */
export const forwardedChain = (request: Pick<IncomingMessage, 'headers' | 'socket'>): string =>
  [request.headers['x-forwarded-for'], request.socket.remoteAddress].flat().filter(Boolean).join(', ');

/** A subgraph answered with a non-2xx status but a GraphQL body (e.g. 401 UNAUTHENTICATED). */
class GraphQLErrorResponse extends GraphQLError {
  constructor(readonly body: GatewayGraphQLResponse) {
    super('subgraph answered with GraphQL errors');
  }
}

/** A subgraph that did not answer in time: distinct from one that could not be reached. */
export const SUBGRAPH_TIMEOUT_CODE = 'SUBGRAPH_TIMEOUT';

/**
 * Calls one subgraph for the gateway: forwards the caller's token and request id, keeps the
 * subgraph's own errors (code, field) when it answers with a non-2xx status, and turns a
 * subgraph that cannot be reached, or does not answer in time, into a coded error that names it
 * without leaking its address.
 */
export class AuthForwardingDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  /** Federation name of the subgraph, for errors and logs. */
  readonly name: string;
  private readonly log?: Pick<Logger, 'warn'>;

  constructor({
    name,
    url,
    fetcher,
    log,
  }: {
    name: string;
    url: string;
    fetcher?: RemoteGraphQLDataSource['fetcher'];
    /** Where a subgraph timeout is reported (warn). */
    log?: Pick<Logger, 'warn'>;
  }) {
    super({ url, ...(fetcher ? { fetcher } : {}) });
    this.name = name;
    this.log = log;
  }

  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>): void {
    const headers = request.http!.headers;
    if (context.authorization) headers.set('authorization', context.authorization);
    if (context.requestId) headers.set('x-request-id', context.requestId);
    if (context.forwardedFor) headers.set('x-forwarded-for', context.forwardedFor);
  }

  override async process(options: GraphQLDataSourceProcessOptions<GatewayContext>): Promise<GatewayGraphQLResponse> {
    const started = performance.now();
    try {
      return await super.process(options);
    } catch (error) {
      if (error instanceof GraphQLErrorResponse) return error.body;
      if (error instanceof GraphQLError) throw error;
      if (error instanceof SubgraphTimeoutError) {
        const message = `Subgraph "${this.name}" did not answer within ${error.timeoutMs} ms`;
        this.log?.warn(
          {
            subgraph: this.name,
            requestId: options.context?.requestId,
            operationName: options.request.operationName ?? null,
            timeoutMs: error.timeoutMs,
            elapsedMs: Math.round(performance.now() - started),
            cause: error.message,
          },
          message,
        );
        throw new GraphQLError(message, { extensions: { code: SUBGRAPH_TIMEOUT_CODE, serviceName: this.name } });
      }
      throw new GraphQLError(`Subgraph "${this.name}" could not be reached`, {
        extensions: { code: 'SUBREQUEST_HTTP_ERROR', serviceName: this.name },
      });
    }
  }

  override async errorFromResponse(response: Parameters<RemoteGraphQLDataSource['errorFromResponse']>[0]): Promise<GraphQLError> {
    const body = await this.parseBody(response);
    if (typeof body === 'object' && body !== null && Array.isArray((body as GatewayGraphQLResponse).errors)) {
      return new GraphQLErrorResponse(body as GatewayGraphQLResponse);
    }
    return new GraphQLError(`Subgraph "${this.name}" answered HTTP ${response.status}`, {
      extensions: { code: 'SUBREQUEST_HTTP_ERROR', serviceName: this.name },
    });
  }
}
