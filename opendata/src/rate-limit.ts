/**
 * Per-address rate limiting of the open data: a token bucket per client address (IPv6 per /64,
 * as the gateway counts), `burst` requests at once, then `perSecond`. Every request under
 * /opendata counts, errors and 304s included (a flood of bad requests is a flood). Addresses of
 * the allow-list (exact or CIDR: the national access point's harvester, a partner's mirror) are
 * never throttled: they harvest without authentication and must not be cut off mid-harvest.
 *
 * Who the client is comes from the socket's peer, or, when that peer is one of TRUSTED_PROXIES,
 * from the X-Forwarded-For hops it appended (`clientAddressResolver` of
 * `@connecte/shared/client-address`, the logic behind `believableClientAddress`). A client that
 * is not a trusted proxy cannot name another address, neither to spread a flood over many
 * buckets nor to pass as an allow-listed harvester: its own X-Forwarded-For is not read.
 * (`believableClientAddress` answers null for such a request, since a subgraph behind an
 * untrusted gateway cannot tell its clients apart; here the module runs in the gateway itself,
 * whose peer is the client, so the peer is counted.)
 *
 * Buckets refill lazily (no timer), and at most `maxKeys` addresses are remembered: the least
 * recently seen is forgotten first, which only ever gives that address a full bucket back.
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { addressBucketKey, clientAddressResolver } from '@connecte/shared/client-address';

export interface RateLimitOptions {
  /** Sustained requests per second per address (OPENDATA_RATE_PER_SECOND); 0 disables the limit. */
  perSecond: number;
  /** Requests one address may send at once (OPENDATA_RATE_BURST); at least 1. */
  burst: number;
  /** Addresses or CIDR ranges never throttled (OPENDATA_RATE_ALLOWLIST). */
  allowlist?: readonly string[];
  /** Addresses remembered at most (memory bound under a flood from many addresses). */
  maxKeys?: number;
}

export type RateDecision =
  | { allowed: true; allowlisted: boolean }
  | { allowed: false; retryAfterSeconds: number };

export interface AddressRateLimit {
  /** Counts one request of the caller of `req`. */
  take(req: Pick<IncomingMessage, 'headers' | 'socket'>, now?: number): RateDecision;
  /** Addresses currently remembered. */
  size(): number;
  readonly perSecond: number;
  readonly burst: number;
}

/** An OPENDATA_RATE_ALLOWLIST entry that is neither an address nor a CIDR range: start-up stops. */
function allowlistOf(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address);
    const prefix = bits === undefined ? undefined : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (family === 0 || extra !== undefined || (prefix !== undefined && !(prefix <= (family === 4 ? 32 : 128)))) {
      throw new Error(`OPENDATA_RATE_ALLOWLIST: '${entry}' is not an IP address or a CIDR range such as 192.0.2.0/24 or 2001:db8::/32`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, prefix, type);
  }
  return list;
}

const ALLOWED = Object.freeze({ allowed: true, allowlisted: false }) as RateDecision;
const ALLOWLISTED = Object.freeze({ allowed: true, allowlisted: true }) as RateDecision;

export function createAddressRateLimit(options: RateLimitOptions, trustedProxies: readonly string[] = []): AddressRateLimit {
  const { perSecond, burst, maxKeys = 100_000 } = options;
  if (!Number.isFinite(perSecond) || perSecond < 0) throw new Error(`OPENDATA_RATE_PER_SECOND must be a number ≥ 0, got ${perSecond}`);
  if (!Number.isInteger(burst) || burst < 1) throw new Error(`OPENDATA_RATE_BURST must be a whole number ≥ 1, got ${burst}`);
  const allowlist = allowlistOf(options.allowlist ?? []);
  const hasAllowlist = (options.allowlist ?? []).length > 0;
  const addressOf = clientAddressResolver(trustedProxies);
  const refillPerMs = perSecond / 1000;
  const buckets = new Map<string, { tokens: number; at: number }>();
  return {
    perSecond,
    burst,
    size: () => buckets.size,
    take(req, now = Date.now()) {
      const address = addressOf(req);
      const family = isIP(address);
      if (hasAllowlist && family !== 0 && allowlist.check(address, family === 4 ? 'ipv4' : 'ipv6')) return ALLOWLISTED;
      if (perSecond === 0) return ALLOWED;
      const key = addressBucketKey(address);
      let bucket = buckets.get(key);
      if (bucket) {
        buckets.delete(key); // re-inserted below: the map's order is least recently seen first
        bucket.tokens = Math.min(burst, bucket.tokens + Math.max(0, now - bucket.at) * refillPerMs);
        bucket.at = now;
      } else {
        if (buckets.size >= maxKeys) buckets.delete(buckets.keys().next().value!);
        bucket = { tokens: burst, at: now };
      }
      buckets.set(key, bucket);
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return ALLOWED;
      }
      // Whole seconds (Retry-After's unit), rounded up: coming back then is never refused.
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerMs / 1000)) };
    },
  };
}
