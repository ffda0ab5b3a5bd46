import { GraphQLError, type ASTNode } from 'graphql';

export type ErrorCode = 'BAD_USER_INPUT' | 'UNAUTHENTICATED' | 'FORBIDDEN' | 'NOT_FOUND' | 'RATE_LIMITED';

const HTTP_STATUS: Partial<Record<ErrorCode, number>> = { UNAUTHENTICATED: 401 };

/** A client error whose `extensions.field` names the argument or input field at fault. */
export function userError(code: ErrorCode, message: string, field?: string): GraphQLError {
  const status = HTTP_STATUS[code];
  return new GraphQLError(message, {
    extensions: { code, ...(field ? { field } : {}), ...(status ? { http: { status } } : {}) },
  });
}

export const badInput = (field: string, reason: string) =>
  userError('BAD_USER_INPUT', `${field}: ${reason}`, field);
export const unauthenticated = (message: string) => userError('UNAUTHENTICATED', message);
export const forbidden = (message: string, field?: string) => userError('FORBIDDEN', message, field);
export const notFound = (message: string, field?: string) => userError('NOT_FOUND', message, field);

/**
 * BAD_USER_INPUT found before execution (a request error, like a variable that fails coercion),
 * located at the value at fault. Not `badInput`: that one is raised by resolvers, during
 * execution, where the response keeps its data and its 200.
 */
export const rejectedInput = (field: string, reason: string, node?: ASTNode) =>
  new GraphQLError(`${field}: ${reason}`, { nodes: node, extensions: { code: 'BAD_USER_INPUT', field } });
