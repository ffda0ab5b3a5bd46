/**
 * Background workers of a service (an MQTT consumer, a poller, a scheduler, an outbox sender,
 * the event bus's LISTEN connection): started with the server, in order, before it listens;
 * stopped on shutdown in the reverse order, after the server has stopped taking requests and
 * before the pool closes; reported by `/readyz`.
 */
import type { Logger } from './log.js';

export interface WorkerStatus {
  /** Whether the service can do this worker's job now: `/readyz` is 503 while any is not. */
  ready: boolean;
  /** What `/readyz` shows for it: `connected`, `disconnected`, `listening`, `3 pending`... */
  state: string;
}

export interface Worker {
  /** Unique within a service: names it in `/readyz` and in start and stop errors. */
  name: string;
  /** Connects and begins. Throwing (or rejecting) refuses the whole service's start. */
  start(): Promise<void>;
  /** Stops taking new work, then finishes what is in flight; the pool is still open meanwhile. */
  stop(): Promise<void>;
  status(): WorkerStatus;
}

export const WORKER_START_TIMEOUT_MS = 10_000;
export const WORKER_STOP_TIMEOUT_MS = 5_000;

/** A worker could not start: which one, and why. */
export class WorkerStartError extends Error {
  override name = 'WorkerStartError';
  constructor(
    readonly worker: string,
    readonly reason: string,
  ) {
    super(`worker "${worker}" failed to start: ${reason}`);
  }
}

/** Some workers did not stop cleanly (each named with why); everything else was still stopped. */
export class WorkerStopError extends Error {
  override name = 'WorkerStopError';
  constructor(readonly problems: string[]) {
    super(`shutdown incomplete: ${problems.join('; ')}`);
  }
}

export interface Workers {
  /** Starts each worker in order; on a failure, stops those already started and throws a WorkerStartError. */
  start(): Promise<void>;
  /** Stops the started workers in reverse order, each within the stop timeout; throws a WorkerStopError naming any that failed or hung. */
  stop(): Promise<void>;
  /** Each worker's state, by name, for `/readyz`. */
  report(): { ready: boolean; checks: Record<string, string>; failed: string[] };
}

function reasonOf(error: unknown): string {
  const { code, message } = error as { code?: unknown; message?: unknown };
  const text = typeof message === 'string' && message ? message : String(error);
  return typeof code === 'string' && !text.includes(code) ? `${code}: ${text}` : text;
}

/** Resolves with the outcome, or `timeout` once `ms` has passed (the work itself is left to finish or not). */
async function within(work: () => Promise<void>, ms: number): Promise<{ error?: unknown; timedOut?: true }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ timedOut: true }>((resolve) => {
    timer = setTimeout(() => resolve({ timedOut: true }), ms);
  });
  try {
    return await Promise.race([
      Promise.resolve().then(work).then(
        () => ({}),
        (error: unknown) => ({ error: error ?? new Error('rejected without a reason') }),
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function createWorkers(
  workers: readonly Worker[],
  options: { log: Pick<Logger, 'info' | 'warn' | 'error'>; startTimeoutMs?: number; stopTimeoutMs?: number },
): Workers {
  const seen = new Set<string>();
  for (const { name } of workers) {
    if (seen.has(name)) throw new Error(`worker "${name}" is declared twice`);
    seen.add(name);
  }
  const startTimeoutMs = options.startTimeoutMs ?? WORKER_START_TIMEOUT_MS;
  const stopTimeoutMs = options.stopTimeoutMs ?? WORKER_STOP_TIMEOUT_MS;
  const started: Worker[] = [];
  let stopping: Promise<void> | null = null;

  const stop = () =>
    (stopping ??= (async () => {
      const problems: string[] = [];
      for (const worker of started.splice(0).reverse()) {
        const outcome = await within(() => worker.stop(), stopTimeoutMs);
        if (outcome.timedOut) problems.push(`worker "${worker.name}" did not stop within ${stopTimeoutMs} ms`);
        else if (outcome.error) problems.push(`worker "${worker.name}" failed to stop: ${reasonOf(outcome.error)}`);
      }
      for (const problem of problems) options.log.error(problem);
      if (problems.length > 0) throw new WorkerStopError(problems);
    })());

  return {
    async start() {
      for (const worker of workers) {
        const outcome = await within(() => worker.start(), startTimeoutMs);
        if (outcome.timedOut || outcome.error) {
          // It may have half-started (a socket opened): it is stopped with the others.
          started.push(worker);
          await stop().catch(() => {});
          throw new WorkerStartError(worker.name, outcome.timedOut ? `did not start within ${startTimeoutMs} ms` : reasonOf(outcome.error));
        }
        started.push(worker);
      }
      if (workers.length > 0) options.log.info({ workers: workers.map((w) => w.name) }, 'workers started');
    },
    stop,
    report() {
      const checks: Record<string, string> = {};
      const failed: string[] = [];
      for (const worker of workers) {
        let status: WorkerStatus;
        try {
          status = worker.status();
        } catch (error) {
          status = { ready: false, state: `status failed: ${reasonOf(error)}` };
        }
        checks[worker.name] = status.state;
        if (!status.ready) failed.push(worker.name);
      }
      return { ready: failed.length === 0, checks, failed };
    },
  };
}
