/**
 * One way to run a subgraph: Apollo Server 5 on a bare node:http server (no framework
 * in the request path: this server is benchmarked), graphql-ws on the same port and path,
 * `/healthz`, `/readyz`, `/metrics`, one JSON log line per request, and graceful shutdown.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { unwrapResolverError } from '@apollo/server/errors';
import {
  ApolloServerPluginInlineTraceDisabled,
  ApolloServerPluginLandingPageDisabled,
  ApolloServerPluginSchemaReportingDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import {
  getOperationAST,
  GraphQLError,
  Kind,
  type DocumentNode,
  type GraphQLFormattedError,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import { createAuthenticator, type Viewer } from './auth.js';
import { believableClientAddress } from './client-address.js';
import { loadConfigOrExit, type Config } from './config.js';
import { createDatabase, type Database } from './db.js';
import { EventBus } from './events.js';
import { createLogger, REQUEST_ID_HEADER, requestIdFrom, type Logger } from './log.js';
import { createMetrics, renderMetrics, type Metrics } from './metrics.js';
import { headerMapOf, HttpError, httpErrorBody, INTERNAL_ERROR_BODY, readBody, requestError, sendJson, splitUrl, writeGraphQLResponse } from './http.js';
import { createCors } from './cors.js';
import { admitSocketOperation, QUERY_TOO_COMPLEX, queryLimitsFrom, requestLimitsPlugin } from './limits.js';
import { screenGraphQLRequest } from './request-screen.js';
import { ConnectionLifetime, limitSendBuffers } from './ws-limits.js';
import { requestErrorsPlugin, socketOperation } from './graphql-over-http.js';
import { namingTheArgument } from './argument-path.js';
import { databaseTimeoutOf, TIMEOUT_CODE, timeoutError, warnDatabaseTimeout } from './timeouts.js';
import { createWorkers, type Worker } from './workers.js';
import { registeredSubgraph, RESERVED_PATHS, ROUTE_PREFIX } from './registry.js';
import { createPeers, type Peers } from './peers.js';

export interface RequestContext {
  viewer: Viewer;
  requestId: string;
  /**
   * The caller's address when it can be believed (`believableClientAddress`: behind the gateway,
   * only when the gateway is among TRUSTED_PROXIES), else null: for a domain's own per-address limits.
   */
  clientAddress: string | null;
  /** Child logger carrying the request id. */
  log: Logger;
  db: Database;
  events: EventBus;
}

/** A resolver map as any subgraph writes it; the SDL-checked shape is the domain's own generated type. */
export type SubgraphResolvers = { readonly [typeName: string]: object };

/** What `buildSubgraphSchema` takes as resolvers, read from its public signature (the type itself is not exported). */
type SchemaResolvers = NonNullable<Exclude<Extract<Parameters<typeof buildSubgraphSchema>[0], readonly unknown[]>[number], DocumentNode>['resolvers']>;

export interface SubgraphService<C extends RequestContext = RequestContext> {
  /** 'territory', 'equipment', ...: names the logs, the metrics and the bus connection. */
  name: string;
  /** Federation SDL (graphql-tag). */
  typeDefs: DocumentNode;
  /** Per GraphQL type, its resolvers (or a scalar): a domain types them with its generated `Resolvers` (scripts/codegen.ts). */
  resolvers: SubgraphResolvers;
  /** Per-request additions (DataLoaders...): called once per HTTP request or ws operation. */
  extendContext?: (base: RequestContext) => C;
  /**
   * Its background workers (MQTT consumer, poller, outbox sender...), built once the database
   * and the bus exist; they start after the event bus, in this order, and stop before it.
   * Their names are the registry entry's `workers` (after `event-bus`).
   */
  workers?: (resources: WorkerResources) => Worker[];
  /**
   * HTTP handlers by path prefix (`/open311/v2`), served on the subgraph's port and forwarded to
   * it by the gateway: the prefixes are the registry entry's `routes`.
   */
  routes?: Record<string, (req: http.IncomingMessage, res: http.ServerResponse, resources: WorkerResources) => void | Promise<void>>;
}

/** What a service's workers are built from. */
export interface WorkerResources {
  config: Config;
  db: Database;
  events: EventBus;
  log: Logger;
  /** The service's Prometheus registry (served at `/metrics`): a domain registers its own counters in it. */
  metrics: Metrics;
  /** The other subgraphs' own queries (packages/shared/src/peers.ts). */
  peers: Peers;
}

export interface RunningService {
  name: string;
  /** http://127.0.0.1:<port>/graphql (HTTP and graphql-ws). */
  url: string;
  port: number;
  db: Database;
  events: EventBus;
  close(): Promise<void>;
}

/** Codes a client may see as they are; anything else is masked as INTERNAL_SERVER_ERROR. */
export const CLIENT_ERROR_CODES = new Set([
  'BAD_USER_INPUT',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'RATE_LIMITED',
  // A dependency other than the database (the MQTT broker) could not do its part; the message says what happened and whether to retry.
  'SERVICE_UNAVAILABLE',
  // Apollo's own request errors
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'OPERATION_RESOLUTION_FAILURE',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  QUERY_TOO_COMPLEX,
]);

const isClientError = (code: unknown) => typeof code === 'string' && CLIENT_ERROR_CODES.has(code);

function masked(error: GraphQLFormattedError): GraphQLFormattedError {
  return {
    message: 'Internal server error',
    ...(error.locations ? { locations: error.locations } : {}),
    ...(error.path ? { path: error.path } : {}),
    extensions: { code: 'INTERNAL_SERVER_ERROR' },
  };
}

const DRAIN_TIMEOUT_MS = 10_000;
const WS_CLOSE_TIMEOUT_MS = 2_000;
const READY_TIMEOUT_MS = 2_000;

/** Per-request facts gathered by the Apollo plugin for the request's log line. */
interface OperationInfo {
  name: string | null;
  type: string;
  outcome: 'ok' | 'error';
  errorCodes: string[];
}

export async function startSubgraph<C extends RequestContext>(
  service: SubgraphService<C>,
  options: {
    config: Config;
    /** 0 = ephemeral; default config.PORT, else ephemeral. */
    port?: number;
    /** A database shared with the caller, who then closes it; by default the service opens its own. */
    db?: Database;
    /** By default a logger for `service.name` at config.LOG_LEVEL on stdout. */
    log?: Logger;
    /** How long shutdown waits for each worker to stop (default WORKER_STOP_TIMEOUT_MS). */
    workerStopTimeoutMs?: number;
    /** Other subgraphs' URLs by name (a test hub's); the others from SUBGRAPH_<NAME>_URL or their default port. */
    peers?: Record<string, string>;
  },
): Promise<RunningService> {
  const { config } = options;
  const log = options.log ?? createLogger(service.name, config);
  const routePrefixes = Object.keys(service.routes ?? {});
  const badRoute = routePrefixes.find((prefix) => !ROUTE_PREFIX.test(prefix) || RESERVED_PATHS.includes(prefix));
  if (badRoute !== undefined) throw new StartupError(service.name, `route "${badRoute}" must be a path such as /open311/v2, not one of ${RESERVED_PATHS.join(', ')}`);
  const routePrefix = (path: string) => routePrefixes.find((prefix) => path === prefix || path.startsWith(`${prefix}/`));
  const db = options.db ?? createDatabase(config);
  const events = new EventBus(db.pool, log.child({ component: 'event-bus' }));
  // The bus is every subgraph's first worker. It reconnects on its own, and without its LISTEN
  // connection it still delivers (from the table, at its safety poll): `/readyz` shows
  // `reconnecting`, but queries are served all the same, so it never makes the service unready
  // (a database that is down shows in the `database` check).
  const eventBusWorker: Worker = { name: 'event-bus', start: () => events.start(), stop: () => events.close(), status: () => ({ ready: true, state: events.listening ? 'listening' : 'reconnecting' }) };
  const metrics = createMetrics(service.name);
  const peers = createPeers(options.peers, config.SUBGRAPH_TIMEOUT_MS);
  const workers = createWorkers([eventBusWorker, ...(service.workers?.({ config, db, events, log, metrics, peers }) ?? [])], {
    log,
    stopTimeoutMs: options.workerStopTimeoutMs,
  });
  const authenticate = createAuthenticator(config);
  const schema = buildSubgraphSchema([{ typeDefs: service.typeDefs, resolvers: service.resolvers as SchemaResolvers }]);
  const operations = new WeakMap<object, OperationInfo>();

  const addressOf = believableClientAddress(config.TRUSTED_PROXIES);
  function contextFor(viewer: Viewer, requestId: string, clientAddress: string | null): C {
    const base: RequestContext = { viewer, requestId, clientAddress, log: log.child({ requestId }), db, events };
    try {
      return service.extendContext ? service.extendContext(base) : (base as C);
    } catch (error) {
      base.log.error({ err: error }, 'context creation failed');
      throw error;
    }
  }

  const observe: ApolloServerPlugin<C> = {
    async requestDidStart() {
      const started = performance.now();
      let timedOut = false;
      return {
        async didEncounterErrors({ errors, contextValue, operationName }) {
          for (const error of errors) {
            const timeout = databaseTimeoutOf(error, config);
            if (timeout) {
              timedOut = true;
              const elapsedMs = Math.round(performance.now() - started);
              warnDatabaseTimeout(contextValue.log, timeout, { path: error.path, operationName: operationName ?? null, elapsedMs });
            } else if (!isClientError(error.extensions?.code)) {
              contextValue.log.error({ err: unwrapResolverError(error), path: error.path }, 'unexpected error');
            }
          }
        },
        async willSendResponse({ request, operation, operationName, errors, response }) {
          const info: OperationInfo = {
            name: operationName ?? null,
            type: operation?.operation ?? 'unknown',
            outcome: errors?.length ? 'error' : 'ok',
            errorCodes:
              errors?.map((e) => (databaseTimeoutOf(e, config) ? TIMEOUT_CODE : String(e.extensions?.code ?? 'INTERNAL_SERVER_ERROR'))) ?? [],
          };
          // Nothing to answer because the database did not: 503. Partial data stays a 200 answer.
          if (timedOut && response.body.kind === 'single' && response.body.singleResult.data == null) response.http.status = 503;
          // Keyed by the HTTP request object: Apollo hands plugins a shallow copy of the context.
          if (request.http) operations.set(request.http, info);
          metrics.graphqlOperations.inc({ type: info.type, outcome: info.outcome });
        },
      };
    },
  };

  const limits = queryLimitsFrom(config);
  const cors = createCors(config.CORS_ALLOWED_ORIGINS);
  const apollo = new ApolloServer<C>({
    schema,
    introspection: config.GRAPHQL_INTROSPECTION,
    // Without introspection, "Did you mean ...?" suggestions would spell the schema out instead.
    hideSchemaDetailsFromClientErrors: !config.GRAPHQL_INTROSPECTION,
    // Only the gateway calls a subgraph, and it sends whole queries: no APQ cache to fill from outside.
    persistedQueries: false,
    includeStacktraceInErrorResponses: false,
    stopOnTerminationSignals: false, // entry points install their own handlers
    logger: {
      debug: (message) => log.debug(String(message)),
      info: (message) => log.info(String(message)),
      warn: (message) => log.warn(String(message)),
      error: (message) => log.error(String(message)),
    },
    formatError: (formatted, error) => {
      const timeout = databaseTimeoutOf(error, config);
      if (timeout) return timeoutError(formatted, timeout);
      return isClientError(formatted.extensions?.code) ? namingTheArgument(formatted, error) : masked(formatted);
    },
    plugins: [
      observe,
      requestErrorsPlugin<C>(),
      requestLimitsPlugin<C>(limits),
      // No Apollo Studio: nothing leaves the machine, and no per-request tracing cost.
      ApolloServerPluginInlineTraceDisabled(),
      ApolloServerPluginUsageReportingDisabled(),
      ApolloServerPluginSchemaReportingDisabled(),
      ...(config.NODE_ENV === 'production' ? [ApolloServerPluginLandingPageDisabled()] : []),
    ],
  });
  await apollo.start();

  let closing = false;

  // No rate limit here, by design: only the gateway calls a subgraph, so per address it would
  // put every client in the gateway's one bucket, and per token it would count the gateway's
  // fan-out (one client request, several fetches to the same subgraph) against the client. The
  // gateway limits each client once, at the entry; the query limits below apply here as well.
  async function handleGraphQL(req: http.IncomingMessage, res: http.ServerResponse, requestId: string, search: string) {
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') return cors.preflight(req, res);
    cors.decorate(req, res);
    let body: unknown;
    if (method === 'POST') {
      if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
        req.resume();
        return sendJson(res, 415, requestError('content-type must be application/json'));
      }
      const text = await readBody(req, config.MAX_BODY_BYTES);
      try {
        body = JSON.parse(text);
      } catch (error) {
        return sendJson(res, 400, requestError(`request body is not valid JSON: ${(error as Error).message}`));
      }
    }
    const screened = screenGraphQLRequest({ method: method.toUpperCase(), body, search }, { limits });
    if (screened.refusal) return sendJson(res, screened.refusal.status, screened.refusal.body);
    const httpGraphQLRequest = { method: method.toUpperCase(), headers: headerMapOf(req), search: screened.search, body: screened.body };
    const response = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest,
      context: async () => contextFor(await authenticate(req.headers.authorization), requestId, addressOf(req)),
    });
    await writeGraphQLResponse(res, response);
    return operations.get(httpGraphQLRequest);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = requestIdFrom(req.headers);
    res.setHeader(REQUEST_ID_HEADER, requestId);
    if (closing) res.setHeader('connection', 'close');
    const { path, search } = splitUrl(req.url);
    let route = 'other';
    let operation: OperationInfo | undefined;
    try {
      if (path === '/graphql') {
        route = '/graphql';
        operation = (await handleGraphQL(req, res, requestId, search)) ?? undefined;
      } else if (path === '/healthz') {
        route = path;
        sendJson(res, 200, { status: 'ok' });
      } else if (path === '/readyz') {
        route = path;
        let database = 'ok';
        try {
          await Promise.race([
            db.pool.query('SELECT 1'),
            new Promise((_, reject) => setTimeout(() => reject(new Error('database did not answer within 2 s')), READY_TIMEOUT_MS).unref()),
          ]);
        } catch (error) {
          database = (error as Error).message;
        }
        const report = workers.report();
        const checks: Record<string, string> = { database, ...report.checks };
        if (database === 'ok' && report.ready) sendJson(res, 200, { status: 'ready', checks });
        else {
          // `reason` names what is not ready, in the operator's words: "database: ...", "mqtt: disconnected".
          const failed = [...(database === 'ok' ? [] : ['database']), ...report.failed];
          sendJson(res, 503, { status: 'unavailable', checks, reason: failed.map((name) => `${name}: ${checks[name]}`).join('; ') });
        }
      } else if (path === '/metrics') {
        route = path;
        const { contentType, body } = await renderMetrics(metrics);
        res.writeHead(200, { 'content-type': contentType }).end(body);
      } else if (routePrefix(path) !== undefined) {
        route = routePrefix(path)!;
        await service.routes![route](req, res, { config, db, events, log: log.child({ requestId }), metrics, peers });
      } else {
        sendJson(res, 404, { error: `no route ${path}: try /graphql, /healthz, /readyz or /metrics` });
      }
    } catch (error) {
      if (error instanceof HttpError) {
        res.setHeader('connection', 'close');
        sendJson(res, error.status, httpErrorBody(error));
      } else {
        log.error({ requestId, err: error }, 'request failed');
        if (!res.headersSent) sendJson(res, 500, INTERNAL_ERROR_BODY);
        else res.destroy();
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const method = req.method === 'GET' || req.method === 'POST' ? req.method : 'other';
    metrics.httpRequestDuration.observe({ method, route, status: res.statusCode }, seconds);
    if (route === '/graphql' || route === 'other' || res.statusCode >= 500) {
      const level = res.statusCode >= 500 ? 'error' : 'info';
      log[level](
        {
          requestId,
          method,
          path: route === 'other' ? path.slice(0, 200) : route,
          status: res.statusCode,
          durationMs: Math.round(seconds * 1e5) / 100,
          ...(operation ? { operationName: operation.name, operationType: operation.type, outcome: operation.outcome } : {}),
          ...(operation?.errorCodes.length ? { errorCodes: operation.errorCodes } : {}),
        },
        'request',
      );
    } else {
      log.debug({ requestId, path: route, status: res.statusCode }, 'request');
    }
  }

  const server = http.createServer((req, res) => void handle(req, res));

  // --- graphql-ws, same port and path ----------------------------------------------
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  limitSendBuffers(wss);
  server.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/graphql' || closing) {
      socket.end(`HTTP/1.1 ${closing ? '503 Service Unavailable' : '404 Not Found'}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  type Connection = { viewer?: Viewer; requestId?: string; lifetime?: ConnectionLifetime };
  const formatForClient = (error: GraphQLError, requestLog: Logger): GraphQLFormattedError => {
    if (isClientError(error.extensions?.code)) return namingTheArgument(error.toJSON(), error);
    const timeout = databaseTimeoutOf(error, config);
    if (timeout) {
      warnDatabaseTimeout(requestLog, timeout, { path: error.path });
      return timeoutError(error.toJSON(), timeout);
    }
    // Variable coercion errors come back from graphql-js without a code; Apollo calls them BAD_USER_INPUT.
    if (error.nodes?.[0]?.kind === Kind.VARIABLE_DEFINITION && !error.path) {
      return { ...error.toJSON(), extensions: { ...error.extensions, code: 'BAD_USER_INPUT' } };
    }
    requestLog.error({ err: unwrapResolverError(error), path: error.path }, 'unexpected error');
    return masked(error.toJSON());
  };
  const wsServer = useServer<Record<string, unknown> | undefined, Connection>(
    {
      schema,
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        const fromParams = params.authorization ?? params.Authorization;
        const authorization = typeof fromParams === 'string' ? fromParams : ctx.extra.request.headers.authorization;
        try {
          ctx.extra.viewer = await authenticate(authorization);
        } catch (error) {
          // 4401 with the reason, rather than graphql-ws' generic 4403 "Forbidden".
          ctx.extra.socket.close(4401, `Unauthorized: ${(error as Error).message}`.slice(0, 120));
          return false;
        }
        ctx.extra.requestId = requestIdFrom(ctx.extra.request.headers);
        // Its subscriptions end when the token does (ws-limits.ts).
        ctx.extra.lifetime = new ConnectionLifetime(ctx.extra.socket, ctx.extra.viewer);
        return true;
      },
      onClose: (ctx) => ctx.extra.lifetime?.dispose(),
      onComplete: (ctx, id) => ctx.extra.lifetime?.ended(id),
      onSubscribe: async (ctx, _id, payload) => {
        const expired = ctx.extra.lifetime?.refusal();
        if (expired) return expired;
        const operation = admitSocketOperation(payload, { limits, introspection: config.GRAPHQL_INTROSPECTION }, (p) => socketOperation(schema, p));
        if (Array.isArray(operation)) return operation;
        // The gateway may name each operation it forwards over one connection.
        const requested = (payload.extensions as { requestId?: unknown } | undefined)?.requestId;
        const requestId = typeof requested === 'string' ? requestIdFrom({ [REQUEST_ID_HEADER]: requested }) : ctx.extra.requestId!;
        let contextValue: C;
        try {
          contextValue = contextFor(ctx.extra.viewer!, requestId, addressOf(ctx.extra.request));
        } catch {
          return [new GraphQLError('Internal server error', { extensions: { code: 'INTERNAL_SERVER_ERROR' } })];
        }
        return { ...operation, contextValue };
      },
      onOperation: (ctx, id, payload, args, result) => {
        const type = getOperationAST(args.document, payload.operationName)?.operation ?? 'unknown';
        const failed = 'errors' in (result as object) && Boolean((result as { errors?: unknown[] }).errors?.length);
        metrics.graphqlOperations.inc({ type, outcome: failed ? 'error' : 'ok' });
        (args.contextValue as C).log.info(
          { operationName: payload.operationName ?? null, operationType: type, outcome: failed ? 'error' : 'ok', transport: 'ws' },
          'ws operation',
        );
        return ctx.extra.lifetime?.track(id, result);
      },
      onNext: (_ctx, _id, _payload, args, result) => {
        if (!result.errors) return;
        const requestLog = (args.contextValue as C).log;
        return { ...result, errors: result.errors.map((e) => formatForClient(e, requestLog)) };
      },
      onError: (ctx, _id, _payload, errors) => {
        metrics.graphqlOperations.inc({ type: 'unknown', outcome: 'error' });
        return errors.map((e) => formatForClient(e, log.child({ requestId: ctx.extra.requestId })));
      },
    },
    wss,
  );

  const requestedPort = options.port ?? config.PORT ?? 0;
  let port: number;
  try {
    await workers.start();
    port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(requestedPort, config.HOST, () => {
        server.off('error', reject);
        resolve((server.address() as { port: number }).port);
      });
    });
  } catch (error) {
    // Leave nothing open behind a failed start, and say what failed in the operator's words.
    await apollo.stop().catch(() => {});
    await workers.stop().catch(() => {});
    if (!options.db) await db.close().catch(() => {});
    throw new StartupError(service.name, startupProblem(error as NodeJS.ErrnoException, config.HOST, requestedPort));
  }
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/graphql`;
  log.info({ url }, `${service.name} subgraph listening`);

  let closed: Promise<void> | null = null;
  return {
    name: service.name,
    url,
    port,
    db,
    events,
    close() {
      closed ??= (async () => {
        closing = true;
        const httpClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Idle keep-alive connections go now; busy ones as soon as their response is sent.
        const idleSweep = setInterval(() => server.closeIdleConnections(), 50);
        server.closeIdleConnections();
        const wsTimer = setTimeout(() => wss.clients.forEach((ws: WebSocket) => ws.terminate()), WS_CLOSE_TIMEOUT_MS);
        try {
          await wsServer.dispose();
        } catch (error) {
          log.warn({ err: error }, 'closing websockets failed');
        }
        clearTimeout(wsTimer);
        const drainTimer = setTimeout(() => server.closeAllConnections(), DRAIN_TIMEOUT_MS);
        await httpClosed;
        clearTimeout(drainTimer);
        clearInterval(idleSweep);
        await apollo.stop();
        // Stop taking work, finish what is in flight (each worker within its bound), then close the pool.
        const stopped = await workers.stop().then(() => null, (error: Error) => error);
        if (!options.db) await db.close();
        if (stopped) throw stopped;
        log.info(`${service.name} subgraph stopped`);
      })();
      return closed;
    },
  };
}

/**
 * For entry points: SIGINT/SIGTERM run `close` once, then exit (1 if it fails or takes
 * longer than `timeoutMs`); a second signal exits at once. Returns an uninstaller.
 */
export function installShutdownHandlers(
  close: () => Promise<void>,
  log?: Pick<Logger, 'info' | 'error'>,
  timeoutMs = 15_000,
): () => void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    log?.info({ signal }, 'shutting down');
    setTimeout(() => {
      log?.error(`shutdown took longer than ${timeoutMs} ms`);
      process.exit(1);
    }, timeoutMs).unref();
    close().then(
      () => process.exit(0),
      (error) => {
        log?.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/**
 * A subgraph's `main.ts` in one line: validated config, start on PORT or the registry's default
 * port for `service.name` (packages/shared/src/registry.ts), shutdown on signals.
 */
export async function runSubgraph<C extends RequestContext>(service: SubgraphService<C>): Promise<RunningService> {
  const config = loadConfigOrExit();
  const { defaultPort } = registeredSubgraph(service.name);
  const running = await startSubgraph(service, { config, port: config.PORT ?? defaultPort }).catch(exitOnStartupError);
  installShutdownHandlers(running.close, createLogger(service.name, config));
  return running;
}

/** A service that could not start: its name and the reason, without a stack trace. */
export class StartupError extends Error {
  override name = 'StartupError';
  constructor(
    readonly service: string,
    reason: string,
  ) {
    super(`${service} cannot start: ${reason}`);
  }
}

export function startupProblem(error: NodeJS.ErrnoException, host: string, port: number): string {
  if (error.code === 'EADDRINUSE') return `port ${port} on ${host} is already in use (is another hub running? set PORT to move it)`;
  if (error.code === 'EADDRNOTAVAIL') return `HOST ${host} is not an address of this machine`;
  if (error.code === 'EACCES') return `port ${port} needs privileges this process does not have`;
  if (error.code === 'ECONNREFUSED' || error.code === '3D000' || error.code === '28P01') {
    return `the database is not reachable (${error.message}); check DATABASE_URL`;
  }
  return error.message;
}

/** For entry points: print a StartupError's message and exit 1; anything else is rethrown. */
export function exitOnStartupError(error: unknown): never {
  if (error instanceof StartupError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}
