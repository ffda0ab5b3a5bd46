/**
 * Token buckets over a minute: a caller may send `perMinute` requests in a burst, and one more
 * every 60/perMinute seconds after that. Buckets refill lazily on use (no timers), and the map
 * holds at most `maxKeys` callers: the least recently seen is forgotten first, which only ever
 * gives that caller a full bucket back, never someone else's budget.
 */
import { GraphQLError } from 'graphql';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { addressBucketKey, clientAddressResolver } from './client-address.js';
import type { Config } from './config.js';
import { sendJson } from './http.js';

export interface RateLimitDecision {
  allowed: boolean;
  /** Whole seconds until one request is allowed again (0 when allowed). */
  retryAfterSeconds: number;
}

export interface RateLimiter {
  take(key: string, now?: number): RateLimitDecision;
  /** Callers currently remembered (for tests and metrics). */
  size(): number;
}

const ALLOWED: RateLimitDecision = Object.freeze({ allowed: true, retryAfterSeconds: 0 });

export function createRateLimiter({ perMinute, maxKeys = 50_000 }: { perMinute: number; maxKeys?: number }): RateLimiter {
  if (!Number.isInteger(perMinute) || perMinute < 1) throw new Error(`rate limit must be a whole number of requests per minute ≥ 1, got ${perMinute}`);
  const refillPerMs = perMinute / 60_000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    take(key, now = Date.now()) {
      let bucket = buckets.get(key);
      if (bucket) {
        buckets.delete(key); // re-inserted below: the map's order is least recently seen first
        bucket.tokens = Math.min(perMinute, bucket.tokens + Math.max(0, now - bucket.at) * refillPerMs);
        bucket.at = now;
      } else {
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value!);
        bucket = { tokens: perMinute, at: now };
      }
      buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return ALLOWED;
      }
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerMs / 1000)) };
    },
    size: () => buckets.size,
  };
}

/** The 429 body: the caller's budget, and when to come back. */
export function rateLimitedBody(scope: 'address' | 'token', perMinute: number, retryAfterSeconds: number) {
  const who = scope === 'token' ? 'this token' : 'this client address';
  return {
    errors: [
      {
        message: `Too many requests from ${who}: at most ${perMinute} per minute; retry after ${retryAfterSeconds} s`,
        extensions: { code: 'RATE_LIMITED', scope, limit: perMinute, retryAfterSeconds },
      },
    ],
  };
}

/**
 * The gateway's limits per caller: a verified token's `sub` has its own bucket
 * (RATE_LIMIT_PER_TOKEN), and everyone else (no token, or one that does not verify) shares the
 * bucket of their client address (RATE_LIMIT_PER_ADDRESS, IPv6 per /64). 0 disables either.
 */
export function createCallerRateLimits(config: Pick<Config, 'RATE_LIMIT_PER_ADDRESS' | 'RATE_LIMIT_PER_TOKEN' | 'TRUSTED_PROXIES'>) {
  const perAddress = config.RATE_LIMIT_PER_ADDRESS > 0 ? createRateLimiter({ perMinute: config.RATE_LIMIT_PER_ADDRESS }) : null;
  const perToken = config.RATE_LIMIT_PER_TOKEN > 0 ? createRateLimiter({ perMinute: config.RATE_LIMIT_PER_TOKEN }) : null;
  const addressOf = clientAddressResolver(config.TRUSTED_PROXIES);
  /** Counts one request of this caller; the refusal (scope, budget, wait) when over the limit, else null. */
  const take = (request: Pick<IncomingMessage, 'headers' | 'socket'>, subject: string | null) => {
    const [limiter, key, scope, perMinute] =
      subject !== null
        ? [perToken, subject, 'token' as const, config.RATE_LIMIT_PER_TOKEN]
        : [perAddress, addressBucketKey(addressOf(request)), 'address' as const, config.RATE_LIMIT_PER_ADDRESS];
    if (!limiter) return null;
    const decision = limiter.take(key);
    return decision.allowed ? null : rateLimitedBody(scope, perMinute, decision.retryAfterSeconds);
  };
  return {
    /** Counts the request; true when it was refused with 429 (the response is sent). */
    refuse(request: IncomingMessage, response: ServerResponse, subject: string | null): boolean {
      const refusal = take(request, subject);
      if (!refusal) return false;
      response.setHeader('retry-after', String(refusal.errors[0].extensions.retryAfterSeconds));
      sendJson(response, 429, refusal);
      return true;
    },
    /**
     * The same budget for an operation sent over graphql-ws (a `subscribe` message): the error
     * that refuses it, or null. The socket's upgrade request tells the address.
     */
    refuseOperation(request: Pick<IncomingMessage, 'headers' | 'socket'>, subject: string | null): GraphQLError[] | null {
      const refusal = take(request, subject);
      if (!refusal) return null;
      const [{ message, extensions }] = refusal.errors;
      return [new GraphQLError(message, { extensions })];
    },
  };
}
