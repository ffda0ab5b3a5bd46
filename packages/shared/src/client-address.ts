/**
 * Who is calling, by address: the socket's peer, unless that peer is one of TRUSTED_PROXIES,
 * in which case X-Forwarded-For is read from the right, skipping trusted proxies, and the
 * first other address is the client (entries further left were written by the client itself).
 */
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';

export type ClientAddressOf = (request: Pick<IncomingMessage, 'headers' | 'socket'>) => string;

/**
 * The reverse proxies of TRUSTED_PROXIES: exact addresses or CIDR ranges, IPv4 or IPv6. Node
 * reports IPv4 peers of a dual-stack socket as `::ffff:a.b.c.d`; those match the IPv4 rules.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  /** Throws naming TRUSTED_PROXIES and the entry when one is neither an address nor a CIDR range. */
  constructor(entries: readonly string[]) {
    this.empty = entries.length === 0;
    for (const entry of entries) {
      const [address, bits, extra] = entry.split('/');
      const family = isIP(address);
      const prefix = bits === undefined ? undefined : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
      if (family === 0 || extra !== undefined || (prefix !== undefined && !(prefix <= (family === 4 ? 32 : 128)))) {
        throw new Error(`TRUSTED_PROXIES: '${entry}' is not an IP address or a CIDR range such as 10.0.0.0/8 or fd00::/8`);
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (prefix === undefined) this.list.addAddress(address, type);
      else this.list.addSubnet(address, prefix, type);
    }
  }

  includes(address: string | undefined): boolean {
    if (this.empty || !address) return false;
    const family = isIP(address);
    return family !== 0 && this.list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** Builds the resolver; an entry of `trustedProxies` that is neither an IP nor a CIDR range throws, naming it. */
export function clientAddressResolver(trustedProxies: readonly string[]): ClientAddressOf {
  const trusted = new TrustedProxies(trustedProxies);
  const isTrusted = (address: string) => trusted.includes(address);

  return (request) => {
    const peer = normalise(request.socket.remoteAddress ?? '');
    if (trusted.empty || !isTrusted(peer)) return peer;
    const header = request.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((hop) => normalise(hop.trim()));
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i];
      // A malformed hop was not written by a proxy we trust: we cannot know who sent it, so the
      // request counts against the proxy it came through rather than a name the client chose.
      if (isIP(hop) === 0) return peer;
      if (!isTrusted(hop)) return hop;
    }
    return hops.length > 0 && hops[0] !== '' ? hops[0] : peer;
  };
}

/** `::ffff:10.1.2.3` is the IPv4 client 10.1.2.3 on a dual-stack socket. */
function normalise(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped ? mapped[1] : address;
}

/**
 * The rate-limit key of an address. One IPv6 subscriber usually holds a whole /64, so IPv6
 * clients are counted per /64: per address, one client could spread a flood over 2^64 buckets.
 */
export function addressBucketKey(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head, tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * The caller's address when it can be believed, else null: the socket's peer for a request that
 * came directly (no X-Forwarded-For), the client the trusted proxies name, or null for a request a
 * proxy not in TRUSTED_PROXIES forwarded (a subgraph behind a gateway it does not trust sees only
 * the gateway: counting everyone as the gateway would make one client's flood everyone's limit).
 */
export function believableClientAddress(trustedProxies: readonly string[]): (request: Pick<IncomingMessage, 'headers' | 'socket'>) => string | null {
  const trusted = new TrustedProxies(trustedProxies);
  const resolve = clientAddressResolver(trustedProxies);
  return (request) => {
    if (request.headers['x-forwarded-for'] === undefined) return resolve(request);
    return trusted.includes(normalise(request.socket.remoteAddress ?? '')) ? resolve(request) : null;
  };
}
