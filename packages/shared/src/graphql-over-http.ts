/**
 * How every server of the hub (gateway and subgraphs, HTTP and graphql-ws) tells request errors
 * from field errors, following the GraphQL-over-HTTP specification.
 *
 * A request error (the body is not a GraphQL-over-HTTP request, the document does not parse or
 * validate, the operation cannot be determined, a variable fails coercion, an argument holds a
 * value no resolver can use: see input-guards.ts) stops the request before execution: the answer
 * has `errors` and no `data`, with status 400 (413 for a body over the limit, 401 for a token that
 * does not verify). A field error (a resolver's BAD_USER_INPUT, FORBIDDEN, NOT_FOUND...) happens
 * during execution: the answer keeps `data` (possibly null) and status 200.
 *
 * The statuses are the same for both response media types. For
 * `application/graphql-response+json` they are the specification's. For `application/json` the
 * specification prefers 200 for every well-formed request, but allows 4xx for compatibility; we
 * keep 400 there too, as Apollo Server does, so that a client, a proxy or a dashboard sees the same
 * status for the same error whatever it asked for, and the gateway's statuses are its subgraphs'.
 * Over graphql-ws a request error is an `error` message, a field error a `next` payload.
 */
import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import {
  getOperationAST,
  getVariableValues,
  GraphQLError,
  Kind,
  parse,
  validate,
  type DocumentNode,
  type ExecutionArgs,
  type GraphQLSchema,
} from 'graphql';
import { findInputProblem } from './input-guards.js';

export const REQUEST_ERROR_STATUS = 400;

/** graphql-js' own words for an operation that cannot be determined (GetOperation()). */
export function operationResolutionError(document: DocumentNode, operationName: string | null | undefined): GraphQLError {
  const operations = document.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION).length;
  const message =
    typeof operationName === 'string'
      ? `Unknown operation named "${operationName.slice(0, 100)}".`
      : operations === 0
        ? 'Must provide an operation.'
        : 'Must provide operation name if query contains multiple operations.';
  return new GraphQLError(message, { extensions: { code: 'OPERATION_RESOLUTION_FAILURE' } });
}

const asRequestError = (error: GraphQLError) =>
  new GraphQLError(error.message, {
    nodes: error.nodes,
    extensions: { ...error.extensions, http: { status: REQUEST_ERROR_STATUS } },
  });

/**
 * For Apollo Server, gateway and subgraphs alike: an operation that cannot be determined and an
 * unusable argument are request errors, answered 400 before execution. (Without it the gateway
 * hands an unresolvable operation or an infinite Float to its query planner, which throws: 500.)
 */
export function requestErrorsPlugin<C extends BaseContext>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ document, operation, request }) {
          if (!operation) throw asRequestError(operationResolutionError(document, request.operationName));
          const problem = findInputProblem(document, request.operationName, request.variables);
          if (problem) throw asRequestError(problem);
        },
      };
    },
  };
}

interface SocketPayload {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}

const withCode = (errors: readonly GraphQLError[], code: string) =>
  errors.map((e) => new GraphQLError(e.message, { nodes: e.nodes, source: e.source, positions: e.positions, extensions: { code } }));

/**
 * A graphql-ws `subscribe` message made into execution arguments, or the request errors that
 * refuse it, each with its code (graphql-ws' own parse failure closes the socket with 4500, and
 * its validation errors carry no code). Queries, mutations and subscriptions alike.
 */
export function socketOperation(schema: GraphQLSchema, payload: SocketPayload): ExecutionArgs | GraphQLError[] {
  let document: DocumentNode;
  try {
    document = parse(payload.query);
  } catch (error) {
    return withCode([error as GraphQLError], 'GRAPHQL_PARSE_FAILED');
  }
  const errors = validate(schema, document);
  if (errors.length > 0) return withCode(errors, 'GRAPHQL_VALIDATION_FAILED');
  const operation = getOperationAST(document, payload.operationName);
  if (!operation) return [operationResolutionError(document, payload.operationName)];
  const problem = findInputProblem(document, payload.operationName, payload.variables);
  if (problem) return [problem];
  // Coerced here too, so that a variable failing coercion is an `error` message like any request
  // error, not a `next` payload as graphql-js' execute would make it.
  const coercion = getVariableValues(schema, operation.variableDefinitions ?? [], payload.variables ?? {});
  if (coercion.errors) return withCode(coercion.errors, 'BAD_USER_INPUT');
  return { schema, document, operationName: payload.operationName, variableValues: payload.variables };
}
