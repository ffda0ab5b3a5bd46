import { GraphQLError, type ASTNode } from 'graphql';

export type ErrorCode = 'BAD_USER_INPUT' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'RATE_LIMITED';

/**
 * A client error whose `extensions.field` names the argument or input field at fault. Raised by
 * resolvers, it is a field error: the answer keeps its data and its 200, at a subgraph as
 * through the gateway (which does not relay a subgraph's status for one field).
 */
export function userError(code: ErrorCode, message: string, field?: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code, ...(field ? { field } : {}) } });
}

export const badInput = (field: string, reason: string) =>
  userError('BAD_USER_INPUT', `${field}: ${reason}`, field);
export const unauthenticated = (message: string) => userError('UNAUTHENTICATED', message);
/** A token that does not verify: the whole request is refused, 401, before anything runs. */
export const tokenRefused = (message: string) =>
  new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
export const forbidden = (message: string, field?: string) => userError('FORBIDDEN', message, field);
export const notFound = (message: string, field?: string) => userError('NOT_FOUND', message, field);

/**
 * BAD_USER_INPUT found before execution (a request error, like a variable that fails coercion),
 * located at the value at fault. Not `badInput`: that one is raised by resolvers, during
 * execution, where the response keeps its data and its 200.
 */
export const rejectedInput = (field: string, reason: string, node?: ASTNode) =>
  new GraphQLError(`${field}: ${reason}`, { nodes: node, extensions: { code: 'BAD_USER_INPUT', field } });
