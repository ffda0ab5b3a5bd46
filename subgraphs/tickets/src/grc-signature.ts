/**
 * The GRC webhook's signature (docs/tickets.md, "Export to the GRC system"): every delivery carries
 *   X-Connecte-Timestamp: <unix seconds when this attempt was sent>
 *   X-Connecte-Signature: sha256=<lower-case hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 * The timestamp is inside the signed text, so a receiver that refuses timestamps outside its replay
 * window (5 minutes either way by default) refuses a captured request replayed later, and one whose
 * body or timestamp was altered. `verifyGrcSignature` is what a receiver (and the tests) run; it
 * compares in constant time. The body must be the bytes as received, before any JSON parsing.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const GRC_DELIVERY_HEADER = 'x-connecte-delivery';
export const GRC_TIMESTAMP_HEADER = 'x-connecte-timestamp';
export const GRC_SIGNATURE_HEADER = 'x-connecte-signature';
/** How far a timestamp may be from the receiver's clock, in seconds (either way). */
export const GRC_REPLAY_WINDOW_SECONDS = 300;

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;
const TIMESTAMP = /^[0-9]{1,12}$/;

/** The header value for `body` sent at `timestamp` (unix seconds). */
export function signGrcPayload(secret: string, timestamp: number, body: string | Buffer): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new Error('signGrcPayload: timestamp must be whole unix seconds');
  const mac = createHmac('sha256', secret);
  mac.update(`${timestamp}.`);
  mac.update(body);
  return `sha256=${mac.digest('hex')}`;
}

/** The three headers of one delivery attempt (the timestamp is the attempt's, so a retry gets a fresh one). */
export function grcHeaders(secret: string, deliveryId: string, body: string, now: Date = new Date()): Record<string, string> {
  const timestamp = Math.floor(now.getTime() / 1000);
  return {
    'content-type': 'application/json',
    'x-connecte-delivery': deliveryId,
    'x-connecte-timestamp': String(timestamp),
    'x-connecte-signature': signGrcPayload(secret, timestamp, body),
  };
}

export interface GrcVerification {
  /** The secret shared with the hub (GRC_WEBHOOK_SECRET). */
  secret: string;
  /** The raw request body, exactly as received. */
  body: string | Buffer;
  /** The `X-Connecte-Timestamp` header. */
  timestamp: string | string[] | null | undefined;
  /** The `X-Connecte-Signature` header. */
  signature: string | string[] | null | undefined;
  /** The receiver's clock (default: now). */
  now?: Date;
  /** Replay window in seconds (default GRC_REPLAY_WINDOW_SECONDS). */
  toleranceSeconds?: number;
}

export type GrcVerificationResult = { ok: true; timestamp: number } | { ok: false; reason: string };

/**
 * Whether a delivery is authentic and fresh: a well-formed signature header, a timestamp within
 * the replay window of `now`, and an HMAC that matches the body and that timestamp. The reason
 * says which check failed (for the receiver's logs; answer the sender with a plain 401).
 */
export function verifyGrcSignature(input: GrcVerification): GrcVerificationResult {
  const timestamp = single(input.timestamp);
  const signature = single(input.signature);
  if (timestamp === null) return { ok: false, reason: 'X-Connecte-Timestamp is missing or repeated' };
  if (!TIMESTAMP.test(timestamp)) return { ok: false, reason: 'X-Connecte-Timestamp must be unix seconds' };
  if (signature === null) return { ok: false, reason: 'X-Connecte-Signature is missing or repeated' };
  const match = SIGNATURE.exec(signature);
  if (!match) return { ok: false, reason: 'X-Connecte-Signature must be sha256=<64 lower-case hex digits>' };
  const seconds = Number(timestamp);
  const nowSeconds = Math.floor((input.now ?? new Date()).getTime() / 1000);
  const tolerance = input.toleranceSeconds ?? GRC_REPLAY_WINDOW_SECONDS;
  if (Math.abs(nowSeconds - seconds) > tolerance) {
    return { ok: false, reason: `X-Connecte-Timestamp is ${nowSeconds - seconds} s from now, outside the ${tolerance} s replay window` };
  }
  const expected = Buffer.from(signGrcPayload(input.secret, seconds, input.body).slice('sha256='.length), 'hex');
  const given = Buffer.from(match[1], 'hex');
  if (!timingSafeEqual(expected, given)) return { ok: false, reason: 'X-Connecte-Signature does not match the body and timestamp' };
  return { ok: true, timestamp: seconds };
}

function single(value: string | string[] | null | undefined): string | null {
  if (Array.isArray(value)) return value.length === 1 ? value[0] : null;
  return typeof value === 'string' ? value : null;
}
