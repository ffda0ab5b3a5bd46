import type { ServerResponse } from 'node:http';
import type { ApolloServerPlugin } from '@apollo/server';
import { namingTheArgument } from '@connecte/shared/argument-path';
import { REQUEST_ERROR_STATUS } from '@connecte/shared/graphql-over-http';
import type { GraphQLError, GraphQLFormattedError } from 'graphql';
import type { GatewayContext } from './data-source.js';

/** Codes an error keeps as it is; anything else without a code is the gateway's own fault. */
const INTERNAL = 'INTERNAL_SERVER_ERROR';

export interface ErrorLog {
  error(object: object, message: string): void;
}

/**
 * What a client sees of an error: never a stack trace or an internal message. Subgraph errors
 * (they carry `serviceName`) keep their message, `code` and `field`: the subgraph already chose
 * what to say. The gateway's own unexpected errors are logged and reduced to their code.
 */
export function maskError(formatted: GraphQLFormattedError, original: unknown, log?: ErrorLog): GraphQLFormattedError {
  const { stacktrace: _stacktrace, exception: _exception, http: _http, ...extensions } = (formatted.extensions ?? {}) as Record<string, unknown>;
  const code = extensions.code ?? INTERNAL;
  if (code === INTERNAL && !extensions.serviceName) {
    log?.error({ err: original }, 'unexpected error in the gateway');
    return { ...formatted, message: 'Internal server error', extensions: { code } };
  }
  return namingTheArgument({ ...formatted, extensions: { ...extensions, code } }, original);
}

/** Codes with which a subgraph refuses a whole request before executing any of it. */
const REFUSAL_CODES = new Set(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED', 'OPERATION_RESOLUTION_FAILURE', 'BAD_REQUEST']);

/**
 * A subgraph's request error: one of the codes above, or BAD_USER_INPUT without a path (a
 * variable that failed coercion, an argument its input guard refused), which no resolver raises.
 */
function isRefusal(error: GraphQLFormattedError): boolean {
  if (!error.extensions?.serviceName) return false;
  const code = error.extensions.code;
  return (typeof code === 'string' && REFUSAL_CODES.has(code)) || (code === 'BAD_USER_INPUT' && !error.path);
}

/**
 * The gateway validates an operation against the supergraph, whose custom scalars (Date,
 * GeoJSONGeometry...) accept anything: only the owning subgraph can refuse a bad literal or
 * variable of theirs, and it does so as a request error (400, no data). The client's request was
 * just as invalid as one the gateway refuses itself, so it gets the same answer: 400, the
 * subgraph's errors (code, message, field) and no `data`, rather than 200 with `data: null`.
 */
export const subgraphRefusalsAreRequestErrors: ApolloServerPlugin<GatewayContext> = {
  async requestDidStart() {
    return {
      async willSendResponse({ response }) {
        if (response.body.kind !== 'single') return;
        const refusals = response.body.singleResult.errors?.filter(isRefusal);
        if (!refusals?.length) return;
        response.body.singleResult = { errors: refusals };
        response.http.status = REQUEST_ERROR_STATUS;
      },
    };
  },
};

/** Codes that say a dependency did not answer in time, and the status an answer made only of them gets. */
const TIMEOUT_STATUS: Record<string, number> = { SUBGRAPH_TIMEOUT: 504, TIMEOUT: 503 };

/**
 * An answer with no data because the database or a subgraph did not answer in time is not a
 * success: 504 when a subgraph did not answer the gateway, 503 when a subgraph's database did not
 * answer it (what the subgraph itself says). Partial data stays a 200 answer with its errors.
 */
export const timeoutsAreUnavailable: ApolloServerPlugin<GatewayContext> = {
  async requestDidStart() {
    return {
      async willSendResponse({ response }) {
        if (response.body.kind !== 'single' || response.body.singleResult.data != null) return;
        const statuses = response.body.singleResult.errors?.map((error) => TIMEOUT_STATUS[String(error.extensions?.code)]);
        if (!statuses?.length || statuses.some((status) => status === undefined)) return;
        response.http.status = Math.max(...statuses);
      },
    };
  },
};

const describe = (errors: readonly GraphQLError[]) =>
  errors
    .slice(0, 5)
    .map((e) => {
      const from = e.extensions?.serviceName ? ` from ${String(e.extensions.serviceName)}` : '';
      return `${String(e.extensions?.code ?? INTERNAL)}${from}: ${e.message.slice(0, 300)}`;
    })
    .join('; ');

/**
 * Why an answer is a 5xx, for the gateway's request log line: the GraphQL errors as raised (before
 * masking) or the error a route threw. Keyed weakly by the request objects, so nothing outlives them.
 */
export function createFailureReasons() {
  const byGraphQLRequest = new WeakMap<object, string>();
  const byResponse = new WeakMap<ServerResponse, string>();
  const plugin: ApolloServerPlugin<GatewayContext> = {
    async requestDidStart() {
      return {
        async didEncounterErrors({ request, errors }) {
          if (request.http) byGraphQLRequest.set(request.http, describe(errors));
        },
      };
    },
  };
  return {
    plugin,
    /** After Apollo answered `graphQLRequest` on `response`. */
    answered(response: ServerResponse, graphQLRequest: object): void {
      const reason = byGraphQLRequest.get(graphQLRequest);
      if (reason) byResponse.set(response, reason);
    },
    failed(response: ServerResponse, reason: unknown): void {
      byResponse.set(response, reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason));
    },
    /** `{ reason }` for a 5xx answer, to spread into its log line; nothing otherwise. */
    logFields(response: ServerResponse, path: string): { reason?: string } {
      if (response.statusCode < 500) return {};
      return { reason: byResponse.get(response) ?? `the handler of ${path.slice(0, 200)} answered ${response.statusCode} without a reason` };
    },
  };
}
