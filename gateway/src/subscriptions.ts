import type { IncomingMessage, Server } from 'node:http';
import { buildOperationContext, executeQueryPlan, type GraphQLDataSource, type ServiceMap } from '@apollo/gateway';
import { operationFromDocument, Supergraph } from '@apollo/federation-internals';
import { QueryPlanner, type FetchNode, type PlanNode, type QueryPlan } from '@apollo/query-planner';
import {
  GraphQLError,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLFormattedError,
} from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import WebSocket, { WebSocketServer } from 'ws';
import type { Viewer } from '@connecte/shared/auth';
import { socketOperation } from '@connecte/shared/graphql-over-http';
import { admitSocketOperation, type SocketAdmission } from '@connecte/shared/limits';
import { ConnectionLifetime, isTokenExpiry, limitSendBuffers } from '@connecte/shared/ws-limits';
import { forwardedChain, type GatewayContext } from './data-source.js';

/**
 * Subscriptions through the gateway. @apollo/gateway plans a subscription (a `primary` fetch to
 * the subgraph that owns the root field, and the `rest` of the plan) but refuses to execute it.
 * So the gateway serves graphql-ws itself: the primary fetch becomes a graphql-ws subscription to
 * the owning subgraph, made with the caller's token, and each event it delivers is completed by
 * running the `rest` of the plan (entity fetches to other subgraphs) through the gateway's own
 * executor, with the primary fetch answered by the event.
 *
 * Limits (see @connecte/shared/ws-limits): a connection's subscriptions end when its token
 * expires, here and at the subgraphs; and a client that reads more slowly than its events come
 * has them queued here up to `queueLimit`, past which that subscription ends with
 * SUBSCRIPTION_TOO_SLOW and its last delivered cursor, to resume from.
 */

export interface SubscriptionServerOptions {
  httpServer: Server;
  path: string;
  /** The supergraph, with real subgraph URLs. */
  supergraphSdl: string;
  /** The gateway's data sources by subgraph name, for the `rest` of each plan. */
  dataSources: Record<string, GraphQLDataSource>;
  /** Verifies the token in connection_init; rejects (throws) a malformed or expired one. */
  authenticate(authorization: string | undefined): Promise<Viewer>;
  /** Events queued for one subscription whose client does not keep up (SUBSCRIPTION_QUEUE_LIMIT). */
  queueLimit: number;
  /** Query limits, introspection and the allow-list, as over HTTP (before any planning). */
  admission: SocketAdmission;
  /** The HTTP path's rate limits, for each operation a socket sends: its refusal, or null. */
  refuseOperation(request: IncomingMessage, subject: string | null): GraphQLError[] | null;
  requestIdFrom(request: IncomingMessage): string;
  /** Queries and mutations sent over the socket take the HTTP path's executor. */
  execute(args: ExecutionArgs, context: GatewayContext): Promise<ExecutionResult>;
  formatError(error: GraphQLFormattedError, original: unknown): GraphQLFormattedError;
}

export interface SubscriptionServer {
  /** Open subscriptions from the gateway to subgraphs (one per client subscription). */
  upstreamCount(): number;
  close(): Promise<void>;
}

type ConnectionState = {
  context?: GatewayContext;
  /** Upstream graphql-ws clients of this connection, one per subgraph, made with its token. */
  upstreams?: Map<string, Client>;
  lifetime?: ConnectionLifetime;
  /** The token's subject (null: public), whose budget the socket's operations spend. */
  subject?: string | null;
};

interface SubscriptionContext extends GatewayContext {
  upstream(serviceName: string): Client;
  /** A subgraph ended a subscription because the token expired: so does the whole connection. */
  tokenExpired(): void;
}

/** The primary fetch of a plan is answered by the event, through a data source of this name. */
const EVENT_SOURCE = '__subscription_event__';

export function startSubscriptionServer(options: SubscriptionServerOptions): SubscriptionServer {
  const supergraph = Supergraph.build(options.supergraphSdl);
  const apiSchema = supergraph.apiSchema();
  const apiGraphQLSchema = apiSchema.toGraphQLJSSchema();
  const supergraphSchema = supergraph.schema.toGraphQLJSSchema();
  const planner = new QueryPlanner(supergraph);
  const websocketUrls = new Map(
    supergraph.subgraphsMetadata().map(({ name, url }) => [name, url.replace(/^http/, 'ws')]),
  );
  let upstreamCount = 0;

  const wsServer = new WebSocketServer({ server: options.httpServer, path: options.path, maxPayload: 1024 * 1024 });
  limitSendBuffers(wsServer);
  const disposable = useServer<Record<string, unknown>, ConnectionState>(
    {
      schema: apiGraphQLSchema,
      async onConnect(ctx) {
        const raw = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        const authorization = (typeof raw === 'string' ? raw : ctx.extra.request.headers.authorization) || undefined;
        let viewer: Viewer;
        try {
          viewer = await options.authenticate(authorization);
        } catch (error) {
          // 4401 with the reason, as the subgraphs do, rather than graphql-ws' generic 4403 "Forbidden".
          ctx.extra.socket.close(4401, `Unauthorized: ${(error as Error).message}`.slice(0, 120));
          return false;
        }
        ctx.extra.context = { authorization, requestId: options.requestIdFrom(ctx.extra.request), forwardedFor: forwardedChain(ctx.extra.request) };
        ctx.extra.upstreams = new Map();
        ctx.extra.lifetime = new ConnectionLifetime(ctx.extra.socket, viewer);
        ctx.extra.subject = viewer.sub;
        return true;
      },
      async onClose(ctx) {
        ctx.extra.lifetime?.dispose();
        for (const client of ctx.extra.upstreams?.values() ?? []) await client.dispose();
        ctx.extra.upstreams?.clear();
      },
      // Parsed, validated and guarded here, each request error with its code (see graphql-over-http).
      onSubscribe: (ctx, _id, payload) =>
        ctx.extra.lifetime?.refusal() ??
        options.refuseOperation(ctx.extra.request, ctx.extra.subject ?? null) ??
        admitSocketOperation(payload, options.admission, (p) => socketOperation(apiGraphQLSchema, p)),
      onOperation: (ctx, id, _payload, _args, result) => ctx.extra.lifetime?.track(id, result),
      onComplete: (ctx, id) => ctx.extra.lifetime?.ended(id),
      context(ctx): SubscriptionContext {
        const state = ctx.extra;
        return {
          ...state.context!,
          tokenExpired: () => state.lifetime?.expire(),
          upstream(serviceName) {
            let client = state.upstreams!.get(serviceName);
            if (!client) {
              const url = websocketUrls.get(serviceName);
              if (!url) throw new Error(`No subgraph named ${serviceName}`);
              const authorization = state.context!.authorization;
              client = createClient({
                url,
                webSocketImpl: WebSocket,
                connectionParams: authorization ? { authorization } : {},
                // Opens with the first subscription, closes with the last one.
                lazy: true,
                // A dropped upstream ends the client's subscription with an error; the client resumes with `after`.
                retryAttempts: 0,
              });
              state.upstreams!.set(serviceName, client);
            }
            return client;
          },
        };
      },
      execute: (args) => options.execute(args, stripUpstream(args.contextValue as SubscriptionContext)),
      subscribe: async (args) => {
        const context = args.contextValue as SubscriptionContext;
        let plan: QueryPlan;
        let operationContext: ReturnType<typeof buildOperationContext>;
        try {
          operationContext = buildOperationContext({
            schema: apiGraphQLSchema,
            operationDocument: args.document,
            operationName: args.operationName ?? undefined,
          });
          plan = planner.buildQueryPlan(
            operationFromDocument(apiSchema, args.document, { operationName: args.operationName ?? undefined }),
          );
        } catch (error) {
          return { errors: [asGraphQLError(error)] };
        }
        if (plan.node?.kind !== 'Subscription') {
          return { errors: [new GraphQLError('Expected a subscription operation')] };
        }
        const { primary, rest } = plan.node;
        const variables = (args.variableValues ?? {}) as Record<string, unknown>;
        const upstream = new UpstreamSubscription(
          context.upstream(primary.serviceName),
          {
            query: primary.operation,
            operationName: primary.operationName ?? undefined,
            variables: pick(variables, primary.variableUsages ?? []),
            // The subgraph logs the operation under the caller's request id.
            extensions: { requestId: context.requestId },
          },
          primary.serviceName,
          options.queueLimit,
          {
            opened: () => upstreamCount++,
            closed: () => upstreamCount--,
            tokenExpired: context.tokenExpired,
          },
        );
        const eventPlan: QueryPlan = { kind: 'QueryPlan', node: withEventSource(primary, rest) };
        const gatewayContext = stripUpstream(context);
        const complete = async (event: ExecutionResult): Promise<ExecutionResult> => {
          const eventSource: GraphQLDataSource = { process: async () => event as never };
          const serviceMap: ServiceMap = { ...options.dataSources, [EVENT_SOURCE]: eventSource };
          const requestContext = {
            request: { variables, operationName: args.operationName ?? undefined },
            context: gatewayContext,
            metrics: {},
            logger: undefined,
          };
          const result = await executeQueryPlan(
            eventPlan,
            serviceMap,
            requestContext as never,
            operationContext,
            supergraphSchema,
            apiSchema,
          );
          const errors = result.errors?.map((error) =>
            error.extensions?.serviceName === EVENT_SOURCE
              ? new GraphQLError(error.message, {
                  path: error.path,
                  extensions: { ...error.extensions, serviceName: primary.serviceName },
                })
              : error,
          );
          return { data: result.data, ...(errors ? { errors } : {}) };
        };
        return new FederatedSubscription(upstream, complete);
      },
      onNext: (_ctx, _id, _payload, _args, result) => formatResult(result, options.formatError),
      onError: (_ctx, _id, _payload, errors) => errors.map((error) => options.formatError(error.toJSON(), error)),
    },
    wsServer,
  );

  return {
    upstreamCount: () => upstreamCount,
    async close() {
      for (const socket of wsServer.clients) socket.close(1001, 'Going away');
      await disposable.dispose();
    },
  };
}

/** The error ending a subscription whose client let `limit` events wait; ResumableStream adds the cursor. */
function tooSlowError(limit: number): GraphQLError {
  return new GraphQLError(
    `subscription ended: more than ${limit} events were waiting for this client to read them; subscribe again with \`after\` set to extensions.cursor`,
    { extensions: { code: 'SUBSCRIPTION_TOO_SLOW', limit } },
  );
}

function stripUpstream({ authorization, requestId, forwardedFor }: SubscriptionContext): GatewayContext {
  return { authorization, requestId, forwardedFor };
}

function pick(variables: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(names.filter((name) => name in variables).map((name) => [name, variables[name]]));
}

/** The plan to run per event: the primary fetch, answered by the event, then the rest. */
function withEventSource(primary: FetchNode, rest: PlanNode | undefined): PlanNode {
  const answeredByEvent: FetchNode = { ...primary, serviceName: EVENT_SOURCE };
  return rest ? { kind: 'Sequence', nodes: [answeredByEvent, rest] } : answeredByEvent;
}

function formatResult(
  result: ExecutionResult | { errors?: readonly (GraphQLError | GraphQLFormattedError)[] },
  formatError: SubscriptionServerOptions['formatError'],
) {
  if (!result.errors) return result as ExecutionResult;
  return {
    ...result,
    errors: result.errors.map((error) =>
      formatError(error instanceof GraphQLError ? error.toJSON() : (error as GraphQLFormattedError), error),
    ),
  };
}

/**
 * One upstream graphql-ws subscription as an async iterator whose `return()` unsubscribes at once,
 * even while a `next()` is waiting for an event (an async generator would only see the return at
 * its next `yield`, keeping the upstream open until the next event). The subgraph sends as fast
 * as it can, so events wait here for a slow client: past `limit` of them the subscription ends
 * (upstream too) and `next()` throws SUBSCRIPTION_TOO_SLOW.
 */
class UpstreamSubscription implements AsyncIterableIterator<ExecutionResult> {
  private readonly queue: ExecutionResult[] = [];
  private waiting?: (result: IteratorResult<ExecutionResult>) => void;
  private ended = false;
  private overflow: GraphQLError | null = null;
  private readonly unsubscribe: () => void;

  constructor(
    client: Client,
    payload: { query: string; operationName?: string; variables: Record<string, unknown>; extensions: Record<string, unknown> },
    private readonly serviceName: string,
    private readonly limit: number,
    private readonly hooks: { opened(): void; closed(): void; tokenExpired(): void },
  ) {
    hooks.opened();
    this.unsubscribe = client.subscribe<Record<string, unknown>>(payload, {
      next: (event) => this.push(toExecutionResult(event)),
      error: (error) => {
        // The token is the connection's: it ends all of its subscriptions (this one included,
        // which is returned at once and drops what follows) with the gateway's own error.
        if (isTokenExpiry(error)) hooks.tokenExpired();
        this.push({ errors: upstreamErrors(error, this.serviceName) });
        this.end();
      },
      complete: () => this.end(),
    });
  }

  private push(result: ExecutionResult): void {
    if (this.ended) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: result, done: false });
    } else if (this.queue.length >= this.limit) {
      this.queue.length = 0;
      this.overflow = tooSlowError(this.limit);
      this.end();
    } else {
      this.queue.push(result);
    }
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.hooks.closed();
    this.unsubscribe();
    if (this.waiting && this.queue.length === 0) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve({ value: queued, done: false });
    if (this.overflow) {
      const overflow = this.overflow;
      this.overflow = null;
      return Promise.reject(overflow);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiting = resolve));
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.queue.length = 0;
    this.overflow = null;
    this.end();
    return { value: undefined, done: true };
  }

  async throw(error: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Each upstream event, completed by the rest of the plan, in the order the events came. */
class FederatedSubscription implements AsyncIterableIterator<ExecutionResult> {
  constructor(
    private readonly upstream: UpstreamSubscription,
    private readonly complete: (event: ExecutionResult) => Promise<ExecutionResult>,
  ) {}

  async next(): Promise<IteratorResult<ExecutionResult>> {
    const event = await this.upstream.next();
    if (event.done) return event;
    // An event that is only errors (the subgraph refused or ended the stream) has nothing to complete.
    if (!event.value.data) return event;
    try {
      return { value: await this.complete(event.value), done: false };
    } catch (error) {
      // One event that cannot be completed must not end the stream (nor leave the upstream open,
      // which a rejected `next()` would: for-await does not call `return()` then).
      return { value: { data: null, errors: [asGraphQLError(error)] }, done: false };
    }
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    return this.upstream.return();
  }

  throw(error: unknown): Promise<IteratorResult<ExecutionResult>> {
    return this.upstream.throw(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

function asGraphQLError(error: unknown): GraphQLError {
  return error instanceof GraphQLError ? error : new GraphQLError((error as Error)?.message ?? String(error), { originalError: error as Error });
}

function toExecutionResult(event: { data?: unknown; errors?: readonly GraphQLFormattedError[] }): ExecutionResult {
  return {
    data: (event.data ?? null) as ExecutionResult['data'],
    ...(event.errors ? { errors: event.errors.map(fromFormatted) } : {}),
  };
}

function fromFormatted(error: GraphQLFormattedError): GraphQLError {
  return new GraphQLError(error.message, { path: error.path, extensions: error.extensions });
}

/** graphql-ws reports a subgraph's refusal as GraphQL errors, and a lost socket as a close event. */
function upstreamErrors(error: unknown, serviceName: string): GraphQLError[] {
  if (Array.isArray(error) && error.every((e) => typeof e?.message === 'string')) {
    return (error as GraphQLFormattedError[]).map((e) =>
      new GraphQLError(e.message, { path: e.path, extensions: { ...e.extensions, serviceName } }),
    );
  }
  const reason = typeof (error as { reason?: unknown })?.reason === 'string' ? (error as { reason: string }).reason : '';
  const code = typeof (error as { code?: unknown })?.code === 'number' ? (error as { code: number }).code : undefined;
  return [
    new GraphQLError(`The ${serviceName} subgraph ended the subscription${reason ? `: ${reason}` : ''}`, {
      extensions: { code: 'SUBSCRIPTION_UPSTREAM_CLOSED', serviceName, ...(code ? { closeCode: code } : {}) },
    }),
  ];
}
