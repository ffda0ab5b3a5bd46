/**
 * Limits of a graphql-ws connection, the same at the gateway and at every subgraph.
 *
 * Token lifetime. A connection authenticates once, at connection_init, so its token is
 * re-checked by the clock instead: from `tokenRefusedAfter(viewer)` (the token's `exp` plus the
 * 5 s clock skew the verifier tolerates, the moment the same token would be refused at
 * connection_init) every running subscription ends with a graphql-ws `error` message
 * (UNAUTHENTICATED, `extensions.reason` TOKEN_EXPIRED), any later operation on the connection is
 * refused the same way, and the socket closes with 4403 "token expired" once those errors are
 * sent (graphql-ws clients retry 4403, asking their `connectionParams` for a fresh token).
 *
 * Resuming. An error that ends a subscription carries `extensions.cursor`: the `cursor` of the
 * last event delivered on it (null before the first one, or when the operation does not select
 * `cursor`). Subscribing again with `after` set to it loses and repeats nothing.
 *
 * Send buffers. graphql-ws waits for each event to be written before taking the next one, so a
 * subscription holds at most one unsent event; but answers to a client's own messages (pongs,
 * query results) are not bounded by it: a client that sends and never reads makes them pile up
 * in the process. A socket with more than SEND_BUFFER_LIMIT_BYTES unsent is terminated.
 */
import { GraphQLError, type ExecutionResult } from 'graphql';
import type { WebSocket, WebSocketServer } from 'ws';
import { tokenRefusedAfter, type Viewer } from './auth.js';

export const TOKEN_EXPIRED_CLOSE_CODE = 4403;
export const TOKEN_EXPIRED_CLOSE_REASON = 'token expired';
/** `extensions.reason` of the error ending the operations of an expired token. */
export const TOKEN_EXPIRED = 'TOKEN_EXPIRED';
export const SEND_BUFFER_LIMIT_BYTES = 16 * 1024 * 1024;
/** How long the errors ending an expired connection's operations may take to be sent before its socket goes anyway. */
const EXPIRY_FLUSH_MS = 2_000;
/** setTimeout's longest delay (about 24.8 days; longer ones fire at once): longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function tokenExpiredError(): GraphQLError {
  return new GraphQLError(
    'token expired: connect again with a fresh token, and resume a subscription with `after` set to extensions.cursor',
    { extensions: { code: 'UNAUTHENTICATED', reason: TOKEN_EXPIRED } },
  );
}

/**
 * True when a subscription of ours (the gateway's, to a subgraph) ended because its token
 * expired there: the error ending it, or the socket's 4403 close.
 */
export function isTokenExpiry(error: unknown): boolean {
  if (Array.isArray(error)) {
    return error.some((e) => e?.extensions?.code === 'UNAUTHENTICATED' && e.extensions.reason === TOKEN_EXPIRED);
  }
  const close = error as { code?: unknown; reason?: unknown } | null;
  return close?.code === TOKEN_EXPIRED_CLOSE_CODE && close.reason === TOKEN_EXPIRED_CLOSE_REASON;
}

/** The `cursor` of a subscription event's root field, if it selects one. */
function cursorOf(result: ExecutionResult): string | null {
  const root = result.data ? Object.values(result.data)[0] : undefined;
  const cursor = (root as { cursor?: unknown } | null | undefined)?.cursor;
  return typeof cursor === 'string' ? cursor : null;
}

function withCursor(error: unknown, cursor: string | null): unknown {
  if (!(error instanceof GraphQLError)) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    originalError: error.originalError,
    extensions: { ...error.extensions, cursor },
  });
}

/**
 * A subscription's stream that can be ended from outside with an error (graphql-ws then sends
 * it as the operation's `error` message), even while waiting for an event; every error ending it
 * carries the cursor of the last event it delivered.
 */
class ResumableStream implements AsyncIterableIterator<ExecutionResult> {
  private cursor: string | null = null;
  private failure: GraphQLError | null = null;
  private finished = false;
  private interrupt?: (error: GraphQLError) => void;

  constructor(private readonly inner: AsyncIterator<ExecutionResult>) {}

  async next(): Promise<IteratorResult<ExecutionResult>> {
    if (this.failure) {
      const failure = this.failure;
      this.failure = null;
      throw withCursor(failure, this.cursor);
    }
    if (this.finished) return { value: undefined, done: true };
    const interrupted = new Promise<never>((_, reject) => (this.interrupt = reject));
    let result: IteratorResult<ExecutionResult>;
    try {
      result = await Promise.race([this.inner.next(), interrupted]);
    } catch (error) {
      this.failure = null;
      this.finish();
      throw withCursor(error, this.cursor);
    } finally {
      this.interrupt = undefined;
    }
    if (result.done) this.finished = true;
    else this.cursor = cursorOf(result.value) ?? this.cursor;
    return result;
  }

  /** Ends the stream: the pending or next `next()` throws `error` (with the cursor), then it is done. */
  fail(error: GraphQLError): void {
    if (this.finished) return;
    this.finish();
    if (this.interrupt) this.interrupt(error);
    else this.failure = error;
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.failure = null;
    this.finish();
    return { value: undefined, done: true };
  }

  async throw(error: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    // The source (an upstream subscription, a bus subscriber) stops now, not at its next event.
    Promise.resolve(this.inner.return?.()).catch(() => {});
  }
}

/**
 * One graphql-ws connection's token lifetime: made in onConnect with the connection's viewer;
 * its `refusal`, `track`, `ended` and `dispose` go in onSubscribe, onOperation, onComplete and
 * onClose.
 */
export class ConnectionLifetime {
  private readonly streams = new Map<string, ResumableStream>();
  private timer: NodeJS.Timeout | null = null;
  private expired = false;
  private closeTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly socket: WebSocket,
    viewer: Viewer,
  ) {
    const refusedAfter = tokenRefusedAfter(viewer);
    if (refusedAfter !== null) this.expireAt(refusedAfter);
  }

  /** For onSubscribe: the errors refusing an operation on an expired connection, null otherwise. */
  refusal(): GraphQLError[] | null {
    return this.expired ? [tokenExpiredError()] : null;
  }

  /** For onOperation: a subscription's stream, made resumable and ended with the token. */
  track(id: string, result: unknown): ResumableStream | undefined {
    if (typeof (result as AsyncIterable<unknown>)?.[Symbol.asyncIterator] !== 'function') return undefined;
    const stream = new ResumableStream(result as AsyncIterator<ExecutionResult>);
    this.streams.set(id, stream);
    if (this.expired) stream.fail(tokenExpiredError());
    return stream;
  }

  /** For onComplete: the operation's last message has been sent (or the socket is gone). */
  ended(id: string): void {
    this.streams.delete(id);
    if (this.expired && this.streams.size === 0) this.close();
  }

  /** Ends every subscription of the connection with the token-expired error, then the socket. */
  expire(): void {
    if (this.expired) return;
    this.expired = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.streams.size === 0) return this.close();
    for (const stream of this.streams.values()) stream.fail(tokenExpiredError());
    // A client that does not read its errors does not keep the socket.
    this.closeTimer = setTimeout(() => this.socket.terminate(), EXPIRY_FLUSH_MS);
    this.closeTimer.unref();
  }

  /** For onClose. */
  dispose(): void {
    for (const timer of [this.timer, this.closeTimer]) if (timer) clearTimeout(timer);
    this.timer = this.closeTimer = null;
    this.streams.clear();
  }

  private expireAt(at: number): void {
    const delay = at - Date.now();
    this.timer = delay > MAX_TIMER_MS ? setTimeout(() => this.expireAt(at), MAX_TIMER_MS) : setTimeout(() => this.expire(), Math.max(0, delay));
    this.timer.unref();
  }

  private close(): void {
    if (this.closeTimer) clearTimeout(this.closeTimer);
    this.closeTimer = null;
    if (this.socket.readyState === this.socket.OPEN) this.socket.close(TOKEN_EXPIRED_CLOSE_CODE, TOKEN_EXPIRED_CLOSE_REASON);
  }
}

/**
 * Terminates any socket of `server` whose unsent output passes `limitBytes`. Checked on each
 * message and ping received: outside of subscriptions (bounded above), output only grows in
 * answer to those.
 */
export function limitSendBuffers(server: WebSocketServer, limitBytes = SEND_BUFFER_LIMIT_BYTES): void {
  server.on('connection', (socket: WebSocket) => {
    const check = () => {
      if (socket.bufferedAmount > limitBytes) socket.terminate();
    };
    socket.on('message', check);
    socket.on('ping', check);
  });
}
