/**
 * Database timeouts: the options every pool of the hub opens with, and the words a client reads
 * when one fires. A statement is bounded (`statement_timeout`: PostgreSQL cancels it, SQLSTATE
 * 57014) and so is the wait for a connection (`connectionTimeoutMillis`); the caller then learns
 * that the database did not answer in time, with the code TIMEOUT, not a masked internal error.
 * No Prisma here: the gateway's pools use these options too.
 */
import type { GraphQLFormattedError } from 'graphql';
import type pg from 'pg';
import type { Config } from './config.js';
import type { Logger } from './log.js';

export const TIMEOUT_CODE = 'TIMEOUT';

export type DatabaseConfig = Pick<Config, 'DATABASE_URL' | 'DB_POOL_SIZE'> &
  // Benchmarks measure a query as long as it takes; every service passes its whole Config.
  Partial<Pick<Config, 'DB_STATEMENT_TIMEOUT_MS' | 'DB_CONNECTION_TIMEOUT_MS'>>;

/**
 * The client waits this much longer than the server's own statement timeout before giving up on
 * an answer itself: normally PostgreSQL cancels the statement first (the connection stays usable,
 * the error says 57014); this one only fires when the server or the network stopped answering.
 */
export const QUERY_TIMEOUT_GRACE_MS = 2_000;

/**
 * Options of every pool a service opens on DATABASE_URL. The event bus builds its LISTEN
 * connection from them too, which is safe: none of them ends a session that is merely idle, and
 * LISTEN itself is a statement of an instant.
 *  - `statement_timeout`: PostgreSQL cancels a statement that runs, or waits for a lock, longer.
 *    (No separate `lock_timeout`: a lock wait is part of the statement and already bounded.)
 *  - `idle_in_transaction_session_timeout`: a transaction left open and idle (a forgotten BEGIN,
 *    a caller that died between statements) would hold its locks, and block every statement
 *    that needs them, forever; PostgreSQL ends such a session after the same delay.
 *  - `query_timeout`: see QUERY_TIMEOUT_GRACE_MS.
 *  - `connectionTimeoutMillis`: waiting for a free connection, or to open one, fails the request.
 * The migration runner and the seed open their own connections without these: a migration or a
 * seed batch may rightly run for minutes.
 */
export function poolOptions(config: DatabaseConfig): pg.PoolConfig {
  const statementTimeout = config.DB_STATEMENT_TIMEOUT_MS;
  return {
    connectionString: config.DATABASE_URL,
    max: config.DB_POOL_SIZE,
    ...(statementTimeout
      ? {
          statement_timeout: statementTimeout,
          idle_in_transaction_session_timeout: statementTimeout,
          query_timeout: statementTimeout + QUERY_TIMEOUT_GRACE_MS,
        }
      : {}),
    ...(config.DB_CONNECTION_TIMEOUT_MS ? { connectionTimeoutMillis: config.DB_CONNECTION_TIMEOUT_MS } : {}),
  };
}

type TimeoutConfig = Pick<Config, 'DB_STATEMENT_TIMEOUT_MS' | 'DB_CONNECTION_TIMEOUT_MS'>;

export interface DatabaseTimeout {
  /** `statement`: a statement (or a transaction) ran out of time; `connection`: no connection in time. */
  kind: 'statement' | 'connection';
  /** The limit that was reached. */
  timeoutMs: number;
  /** The driver's or PostgreSQL's own words, for the log. */
  cause: string;
  /** What the client reads. */
  message: string;
}

/** SQLSTATE query_canceled: nothing in the hub cancels statements except `statement_timeout`. */
const QUERY_CANCELED = '57014';
// pg-pool's and pg's own messages (fixed strings in their code, not localised by the server).
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';
const CONNECT_TIMEOUT = 'Connection terminated due to connection timeout';
const QUERY_READ_TIMEOUT = 'Query read timeout';
/** Prisma's interactive-transaction errors (maxWait and timeout of `transactionOptions`). */
const PRISMA_TRANSACTION_ERROR = 'P2028';
const PRISMA_TRANSACTION_NOT_STARTED = 'Unable to start a transaction in the given time';

interface ErrorLike {
  code?: unknown;
  message?: unknown;
  meta?: { timeout?: unknown; driverAdapterError?: { cause?: { code?: unknown; originalCode?: unknown; originalMessage?: unknown } } };
  cause?: unknown;
  originalError?: unknown;
}

const statement = (timeoutMs: number, cause: string): DatabaseTimeout => ({
  kind: 'statement',
  timeoutMs,
  cause,
  message: `The database did not answer within ${timeoutMs} ms`,
});

const connection = (timeoutMs: number, cause: string): DatabaseTimeout => ({
  kind: 'connection',
  timeoutMs,
  cause,
  message: `No database connection was available within ${timeoutMs} ms`,
});

/**
 * The timeout behind `error`, or null when it is not one. Looks through the wrappers an error
 * crosses on its way up: a resolver's GraphQLError (`originalError`), Prisma's known request
 * error (`meta.driverAdapterError.cause`) and `cause` chains.
 */
export function databaseTimeoutOf(error: unknown, config: TimeoutConfig): DatabaseTimeout | null {
  for (let current = error as ErrorLike | undefined, depth = 0; current && typeof current === 'object' && depth < 8; depth++) {
    const message = typeof current.message === 'string' ? current.message : '';
    const driver = current.meta?.driverAdapterError?.cause;
    if (current.code === QUERY_CANCELED) return statement(config.DB_STATEMENT_TIMEOUT_MS, message);
    if (driver && (driver.originalCode === QUERY_CANCELED || driver.code === QUERY_CANCELED)) {
      return statement(config.DB_STATEMENT_TIMEOUT_MS, String(driver.originalMessage ?? message));
    }
    if (message === QUERY_READ_TIMEOUT) return statement(config.DB_STATEMENT_TIMEOUT_MS, message);
    if (message === POOL_WAIT_TIMEOUT || message === CONNECT_TIMEOUT) return connection(config.DB_CONNECTION_TIMEOUT_MS, message);
    if (current.code === PRISMA_TRANSACTION_ERROR) {
      if (message.includes(PRISMA_TRANSACTION_NOT_STARTED)) return connection(config.DB_CONNECTION_TIMEOUT_MS, message);
      const timeout = current.meta?.timeout;
      if (typeof timeout === 'number') return statement(timeout, message);
    }
    current = (current.originalError ?? current.cause) as ErrorLike | undefined;
  }
  return null;
}

/** The error a client sees for a database timeout: where it happened, the code, no internals. */
export function timeoutError(formatted: GraphQLFormattedError, timeout: DatabaseTimeout): GraphQLFormattedError {
  return {
    message: timeout.message,
    ...(formatted.locations ? { locations: formatted.locations } : {}),
    ...(formatted.path ? { path: formatted.path } : {}),
    extensions: { code: TIMEOUT_CODE },
  };
}

/** The operator's line: what ran out of time, in which operation and field, after how long. */
export function warnDatabaseTimeout(
  log: Pick<Logger, 'warn'>,
  timeout: DatabaseTimeout,
  where: { path?: readonly (string | number)[]; operationName?: string | null; elapsedMs?: number },
): void {
  log.warn(
    { timeout: timeout.kind, timeoutMs: timeout.timeoutMs, cause: timeout.cause, ...where },
    `database timeout: ${timeout.message}`,
  );
}
