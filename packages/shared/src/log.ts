import { randomUUID } from 'node:crypto';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';

export type { Logger } from 'pino';

/**
 * Structured JSON logs, one line per event, tagged with the service so the lines of
 * every process can be merged. `destination` lets tests capture the lines.
 */
export function createLogger(
  service: string,
  config: Pick<Config, 'LOG_LEVEL'>,
  destination?: DestinationStream,
): Logger {
  return pino(
    {
      level: config.LOG_LEVEL,
      base: { service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level names rather than numbers: readable without pino's tooling.
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export const REQUEST_ID_HEADER = 'x-request-id';
const SANE_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

type HeaderBag = Record<string, string | string[] | undefined> | { get(name: string): string | null | undefined };

/**
 * The caller's `x-request-id` when it is sane (so one id crosses the gateway into every
 * subgraph it calls), otherwise a fresh UUID: a client must not inject log content.
 */
export function requestIdFrom(headers: HeaderBag | undefined | null): string {
  let value: string | string[] | null | undefined;
  if (headers && typeof (headers as { get?: unknown }).get === 'function') {
    value = (headers as { get(name: string): string | null | undefined }).get(REQUEST_ID_HEADER);
  } else if (headers) {
    value = (headers as Record<string, string | string[] | undefined>)[REQUEST_ID_HEADER];
  }
  if (Array.isArray(value)) value = value[0];
  return typeof value === 'string' && SANE_REQUEST_ID.test(value) ? value : randomUUID();
}
