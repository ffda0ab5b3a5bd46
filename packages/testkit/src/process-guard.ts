/** What the test kit's own servers (a PostgreSQL cluster, a broker) need around their processes. */
import { readFileSync } from 'node:fs';

/**
 * Runs `cleanUp` (synchronous: it may run while the process exits) if the test process ends
 * before the server is stopped — a crash, Ctrl-C, the runner's SIGTERM on a timeout — so that
 * the server never outlives it. Returns the function that forgets it, for a normal stop.
 */
export function cleanUpOnExit(cleanUp: () => void): () => void {
  const onSignal = (signal: NodeJS.Signals) => {
    cleanUp();
    process.kill(process.pid, signal); // this handler is gone: the default action now applies
  };
  process.once('exit', cleanUp);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.off('exit', cleanUp);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/** The last lines of a server's log, for an error saying why it did not start. */
export function logTail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}
