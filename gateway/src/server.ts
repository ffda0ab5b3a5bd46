import http, { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import {
  ApolloServerPluginLandingPageDisabled,
  ApolloServerPluginSchemaReportingDisabled,
  ApolloServerPluginUsageReportingDisabled,
} from '@apollo/server/plugin/disabled';
import { GraphQLError, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { createAuthenticator } from '@connecte/shared/auth';
import type { Config } from '@connecte/shared/config';
import { createLogger, requestIdFrom, type Logger } from '@connecte/shared/log';
import { requestErrorsPlugin } from '@connecte/shared/graphql-over-http';
import { renderMetrics } from '@connecte/shared/metrics';
import { headerMapOf, HttpError, httpErrorBody, INTERNAL_ERROR_BODY, readBody, sendJson, splitUrl, writeGraphQLResponse } from '@connecte/shared/http';
import { createCors } from '@connecte/shared/cors';
import { queryLimitsFrom, requestLimitsPlugin } from '@connecte/shared/limits';
import { loadPersistedOperations } from '@connecte/shared/persisted-operations';
import { sendProblem } from '@connecte/shared/problem';
import { createWorkers, type Worker } from '@connecte/shared/workers';
import { GATEWAY, RESERVED_PATHS } from '@connecte/shared/registry';
import { createCallerRateLimits } from '@connecte/shared/rate-limit';
import { screenGraphQLRequest } from '@connecte/shared/request-screen';
import { composeSubset, readCommittedSupergraph, withSubgraphUrls } from './compose.js';
import { AuthForwardingDataSource, forwardedChain, type GatewayContext } from './data-source.js';
import { createFailureReasons, maskError, subgraphRefusalsAreRequestErrors, timeoutsAreUnavailable } from './errors.js';
import { createSubgraphFetcher } from './fetcher.js';
import { createReadiness } from './health.js';
import { createGatewayMetrics } from './metrics.js';
import { checkModules, GATEWAY_MODULES, type GatewayModule, type MountedModule, type RouteHandler } from './modules.js';
import { startSubscriptionServer } from './subscriptions.js';
import { definitionOf, selectSubgraphs, subgraphRoutes, subgraphUrls as resolveSubgraphUrls } from './subgraphs.js';
import { forwardTo } from './forward.js';

/** The registry's gateway port (unique among the subgraphs' ports); PORT overrides it. */
export const DEFAULT_GATEWAY_PORT = GATEWAY.defaultPort;
const GRAPHQL_PATH = '/graphql';

export type { RouteHandler } from './modules.js';

export interface GatewayOptions {
  config: Config;
  /** Defaults to PORT, then 4000; 0 picks a free port. */
  port?: number;
  /**
   * The registered subgraphs to serve, by name (default: all, over the committed supergraph). A
   * subset's supergraph is composed at start; URLs, readiness and forwarded routes are its own.
   */
  subgraphs?: readonly string[];
  /** Subgraph URLs by name; each one missing comes from SUBGRAPH_<NAME>_URL or its default port. */
  subgraphUrls?: Record<string, string>;
  /** Modules served by the gateway's port under a path prefix, e.g. `{ '/opendata': handler }`. */
  routes?: Record<string, RouteHandler>;
  /** Routes that subgraphs serve, forwarded to them (default: the registry entries' `routes`). */
  subgraphRoutes?: readonly { prefix: string; subgraph: string }[];
  /** Declared modules to mount, with their workers (default GATEWAY_MODULES: /opendata). */
  modules?: readonly GatewayModule[];
  /** The gateway's own background workers, started after the modules' ones, reported by /readyz. */
  workers?: Worker[];
  /** How long shutdown waits for each worker to stop (default WORKER_STOP_TIMEOUT_MS). */
  workerStopTimeoutMs?: number;
  /** By default a logger for 'gateway' at config.LOG_LEVEL on stdout. */
  log?: Logger;
}

export interface RunningGateway {
  name: 'gateway';
  /** The GraphQL endpoint (HTTP and graphql-ws). */
  url: string;
  /** The server's root, for health, metrics and mounted modules. */
  origin: string;
  port: number;
  subgraphUrls: Record<string, string>;
  /** Serves `handler` for `prefix` and everything under it (`/opendata`, `/open311/v2`, `/ingest`). */
  mount(prefix: string, handler: RouteHandler): void;
  /** Open subscriptions from the gateway to subgraphs, for tests and metrics. */
  upstreamSubscriptions(): number;
  close(): Promise<void>;
}

/** Starts the federated gateway: GraphQL over HTTP and graphql-ws on `/graphql`, health, metrics. */
export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const { config } = options;
  const log = options.log ?? createLogger('gateway', config);
  const failures = createFailureReasons();
  const metrics = createGatewayMetrics();
  const authenticate = createAuthenticator(config);
  const served = selectSubgraphs(options.subgraphs);
  const urls = resolveSubgraphUrls(options.subgraphUrls, process.env, served);
  const supergraph = options.subgraphs === undefined ? readCommittedSupergraph() : composeSubset(served.map(definitionOf));
  const supergraphSdl = withSubgraphUrls(supergraph, urls);
  const subgraphFetcher = createSubgraphFetcher({ timeoutMs: config.SUBGRAPH_TIMEOUT_MS });
  const dataSources: Record<string, AuthForwardingDataSource> = {};

  // @apollo/gateway reports usage to Apollo and probes cloud metadata endpoints unless this is
  // set when it is constructed (it reads no option). Nothing leaves the hub unless an operator
  // asks for it explicitly (APOLLO_TELEMETRY_DISABLED=false).
  process.env.APOLLO_TELEMETRY_DISABLED ??= '1';
  const gateway = new ApolloGateway({
    supergraphSdl,
    buildService: ({ name, url }) =>
      (dataSources[name] = new AuthForwardingDataSource({ name, url: url ?? urls[name], fetcher: subgraphFetcher.fetcher, log })),
    logger: log,
  });
  const limits = queryLimitsFrom(config);
  const persisted = loadPersistedOperations(config);
  const rateLimits = createCallerRateLimits(config);
  const cors = createCors(config.CORS_ALLOWED_ORIGINS);
  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    logger: log,
    introspection: config.GRAPHQL_INTROSPECTION,
    // Without introspection, "Did you mean ...?" suggestions would spell the schema out instead.
    hideSchemaDetailsFromClientErrors: !config.GRAPHQL_INTROSPECTION,
    includeStacktraceInErrorResponses: false,
    stopOnTerminationSignals: false, // entry points install their own handlers
    formatError: (formatted, error) => maskError(formatted, error, log),
    plugins: [
      metrics.apolloPlugin,
      subscriptionsOverWebSocketOnly,
      requestErrorsPlugin<GatewayContext>(),
      // Before the executor: a refused operation is never planned, and no subgraph is called.
      requestLimitsPlugin<GatewayContext>(limits),
      subgraphRefusalsAreRequestErrors,
      timeoutsAreUnavailable,
      failures.plugin,
      // No Apollo Studio: nothing leaves the machine.
      ApolloServerPluginUsageReportingDisabled(),
      ApolloServerPluginSchemaReportingDisabled(),
      ...(config.NODE_ENV === 'production' ? [ApolloServerPluginLandingPageDisabled()] : []),
    ],
  });
  await apollo.start();

  const routes = new Map<string, RouteHandler>();
  const mount = (prefix: string, handler: RouteHandler) => void routes.set(prefix.replace(/\/+$/, ''), handler);
  for (const [prefix, handler] of Object.entries(options.routes ?? {})) mount(prefix, handler);
  const mountedPrefixOf = (path: string) => [...routes.keys()].find((prefix) => path === prefix || path.startsWith(`${prefix}/`));
  // Declared routes: each subgraph's own (forwarded to it), then the gateway's modules (open data
  // under /opendata...), unless the caller mounts its own on that prefix.
  const forwarding = new http.Agent({ keepAlive: true });
  const forwarded = (options.subgraphRoutes ?? subgraphRoutes(served)).filter(({ prefix }) => !routes.has(prefix));
  for (const { prefix, subgraph } of forwarded) {
    if (!urls[subgraph]) throw new Error(`Route ${prefix} is declared for subgraph "${subgraph}", which the gateway does not know`);
    mount(prefix, forwardTo({ subgraph, url: urls[subgraph], timeoutMs: config.SUBGRAPH_TIMEOUT_MS, log, agent: forwarding }));
  }
  const declared = (options.modules ?? GATEWAY_MODULES).filter(({ prefix }) => !routes.has(prefix));
  checkModules(declared, [...RESERVED_PATHS, ...forwarded.map(({ prefix }) => prefix)]);
  const modules: MountedModule[] = declared.map((module) => {
    const mounted = module.create({ config, log });
    mount(module.prefix, mounted.handle);
    return mounted;
  });
  const workers = createWorkers([...modules.flatMap((module) => module.workers ?? []), ...(options.workers ?? [])], {
    log,
    stopTimeoutMs: options.workerStopTimeoutMs,
  });
  const readiness = createReadiness({ databaseUrl: config.DATABASE_URL, subgraphUrls: urls, fetcher: subgraphFetcher.fetcher, workers: () => workers.report() });
  const release = () =>
    Promise.all([readiness.close(), subgraphFetcher.close(), forwarding.destroy(), ...modules.map((module) => module.close?.())]);

  const handleGraphQL = async (request: IncomingMessage, response: ServerResponse) => {
    const requestId = requestIdFrom(request.headers);
    response.setHeader('x-request-id', requestId);
    if (request.method === 'OPTIONS') return cors.preflight(request, response);
    cors.decorate(request, response);
    const authorization = request.headers.authorization || undefined;
    let subject: string | null;
    try {
      subject = (await authenticate(authorization)).sub;
    } catch (error) {
      // A token that does not verify never reaches a subgraph; its sender counts by address.
      if (rateLimits.refuse(request, response, null)) return;
      return sendJson(response, 401, { errors: [maskError((error as GraphQLError).toJSON(), error, log)] });
    }
    // Before the body is read: a flood costs us the headers only.
    if (rateLimits.refuse(request, response, subject)) {
      request.resume();
      return;
    }
    let body: unknown;
    if (request.method === 'POST') {
      try {
        body = await readJsonBody(request, config.MAX_BODY_BYTES);
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        if (error.status === 413) response.setHeader('connection', 'close');
        return sendJson(response, error.status, httpErrorBody(error));
      }
    }
    const method = request.method ?? 'GET';
    const screened = screenGraphQLRequest({ method, body, search: splitUrl(request.url).search }, { limits, persisted });
    if (screened.refusal) return sendJson(response, screened.refusal.status, screened.refusal.body);
    const httpGraphQLRequest = { method, headers: headerMapOf(request), search: screened.search, body: screened.body };
    const result = await apollo.executeHTTPGraphQLRequest({
      httpGraphQLRequest,
      context: async () => ({ authorization, requestId, forwardedFor: forwardedChain(request) }),
    });
    failures.answered(response, httpGraphQLRequest);
    await writeGraphQLResponse(response, result);
  };

  const route = async (request: IncomingMessage, response: ServerResponse, path: string) => {
    if (path === GRAPHQL_PATH) return handleGraphQL(request, response);
    if (path === '/healthz') return sendJson(response, 200, { status: 'ok' });
    if (path === '/readyz') {
      const report = await readiness.check();
      if (report.status !== 'ready') failures.failed(response, `not ready: ${JSON.stringify(report.checks)}`);
      return sendJson(response, report.status === 'ready' ? 200 : 503, report);
    }
    if (path === '/metrics') {
      const { contentType, body } = await renderMetrics(metrics);
      response.writeHead(200, { 'content-type': contentType });
      return void response.end(body);
    }
    const prefix = mountedPrefixOf(path);
    if (prefix !== undefined) return routes.get(prefix)!(request, response);
    sendProblem(response, 404, { code: 'NOT_FOUND', detail: `No route for ${path.slice(0, 200)}: try /graphql, /healthz, /readyz or /metrics` });
  };

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const started = performance.now();
    const { path } = splitUrl(request.url);
    try {
      await route(request, response, path);
    } catch (error) {
      log.error({ err: error, path }, 'request failed');
      failures.failed(response, error);
      // GraphQL clients read `errors`; every other route answers problem details (RFC 9457).
      if (response.headersSent) response.destroy();
      else if (path === GRAPHQL_PATH) sendJson(response, 500, INTERNAL_ERROR_BODY);
      else sendProblem(response, 500, { code: 'INTERNAL_SERVER_ERROR', detail: 'the request failed on the server; it is logged' });
    }
    const seconds = (performance.now() - started) / 1000;
    const method = request.method === 'GET' || request.method === 'POST' ? request.method : 'other';
    // Metric labels stay few: a mounted module is labelled by its prefix, never by the full path.
    const routeName = path === GRAPHQL_PATH || path === '/healthz' || path === '/readyz' || path === '/metrics' ? path : (mountedPrefixOf(path) ?? 'other');
    metrics.httpRequestDuration.observe({ method, route: routeName, status: response.statusCode }, seconds);
    if (routeName === GRAPHQL_PATH || response.statusCode >= 500) {
      log[response.statusCode >= 500 ? 'error' : 'info'](
        {
          requestId: response.getHeader('x-request-id'),
          method,
          path: routeName,
          status: response.statusCode,
          durationMs: Math.round(seconds * 1e5) / 100,
          ...failures.logFields(response, path),
        },
        'request',
      );
    }
  };

  const httpServer = createServer((request, response) => void handle(request, response));

  const subscriptions = startSubscriptionServer({
    httpServer,
    path: GRAPHQL_PATH,
    supergraphSdl,
    dataSources,
    authenticate,
    queueLimit: config.SUBSCRIPTION_QUEUE_LIMIT,
    admission: { limits, introspection: config.GRAPHQL_INTROSPECTION, persisted },
    refuseOperation: (request, subject) => rateLimits.refuseOperation(request, subject),
    requestIdFrom: (request) => requestIdFrom(request.headers),
    execute: (args, context) => executeOverSocket(apollo, args, context),
    formatError: (formatted, error) => maskError(formatted, error, log),
  });
  metrics.observeUpstreamSubscriptions(() => subscriptions.upstreamCount());

  const port = options.port ?? config.PORT ?? DEFAULT_GATEWAY_PORT;
  try {
    await workers.start();
    await new Promise<void>((resolve, reject) => {
      httpServer.once('error', reject);
      httpServer.listen(port, config.HOST, () => {
        httpServer.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    // Leave nothing open behind a failed start; the caller says why (StartupError).
    await subscriptions.close().catch(() => {});
    await apollo.stop().catch(() => {});
    await workers.stop().catch(() => {});
    await release().catch(() => {});
    throw error;
  }
  const address = httpServer.address() as AddressInfo;
  // Listening on every interface: advertise the loopback address, which always reaches it.
  const bound = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  const host = bound.includes(':') ? `[${bound}]` : bound;
  const origin = `http://${host}:${address.port}`;

  let closing: Promise<void> | undefined;
  return {
    name: 'gateway',
    url: `${origin}${GRAPHQL_PATH}`,
    origin,
    port: address.port,
    subgraphUrls: urls,
    mount,
    upstreamSubscriptions: () => subscriptions.upstreamCount(),
    close() {
      closing ??= (async () => {
        await subscriptions.close();
        const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections();
        await apollo.stop();
        httpServer.closeAllConnections();
        await closed;
        // Stop taking work, finish what is in flight (each worker within its bound), then close the pools.
        const stopped = await workers.stop().then(() => null, (error: Error) => error);
        await release();
        if (stopped) throw stopped;
      })();
      return closing;
    },
  };
}

/** @apollo/gateway cannot execute a subscription: over HTTP, say where subscriptions are served. */
const subscriptionsOverWebSocketOnly: ApolloServerPlugin<GatewayContext> = {
  async requestDidStart() {
    return {
      async didResolveOperation({ operation }) {
        if (operation?.operation !== 'subscription') return;
        throw new GraphQLError('Subscriptions are served over graphql-ws (graphql-transport-ws protocol) on this same URL', {
          extensions: { code: 'BAD_REQUEST', http: { status: 400 } },
        });
      },
    };
  },
};

/** Queries and mutations sent over graphql-ws take the same path as over HTTP. */
async function executeOverSocket(
  apollo: ApolloServer<GatewayContext>,
  args: ExecutionArgs,
  context: GatewayContext,
): Promise<ExecutionResult> {
  const response = await apollo.executeOperation(
    {
      query: args.document,
      variables: (args.variableValues ?? undefined) as Record<string, unknown> | undefined,
      operationName: args.operationName ?? undefined,
    },
    { contextValue: context },
  );
  if (response.body.kind !== 'single') throw new Error('incremental delivery is not served over graphql-ws');
  return response.body.singleResult as ExecutionResult;
}

/** JSON bodies are parsed here; any other content type goes to Apollo, which answers it (CSRF prevention, 415/400). */
async function readJsonBody(request: IncomingMessage, maxBytes: number): Promise<unknown> {
  const text = await readBody(request, maxBytes);
  if (!(request.headers['content-type'] ?? '').includes('json')) return text;
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'Request body is not valid JSON');
  }
}
