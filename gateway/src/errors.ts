import type { GraphQLFormattedError } from 'graphql';

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
  return { ...formatted, extensions: { ...extensions, code } };
}
