/**
 * The absolute base of the links the open data publishes (catalogue, dataset descriptions).
 *
 * Harvesters (data.gouv.fr) store these links and caches replay them, so they never come from
 * the `Host` header, which any client sets: they come from PUBLIC_BASE_URL. A reverse proxy
 * listed in TRUSTED_PROXIES (exact addresses or CIDR ranges, IPv4 or IPv6) may say under which
 * host and scheme the client reached it, with `Forwarded` (RFC 7239) or, when that is absent,
 * `X-Forwarded-Host` / `X-Forwarded-Proto`. Only the last value of each header is read: it is
 * the one written by the proxy that connects to us, the only party we trust; anything before it
 * came from further away and may be the client's own. A forwarded value that is not a plain
 * `host[:port]` or `http`/`https` is ignored and the configured one is used. The path of
 * PUBLIC_BASE_URL (a deployment under `/hub`) is kept either way: proxies do not rewrite it.
 */
import type { IncomingMessage } from 'node:http';
import { TrustedProxies } from '@connecte/shared/client-address';

/** The request headers a link can depend on, for `Vary`. */
export const FORWARDING_HEADERS = ['Forwarded', 'X-Forwarded-Host', 'X-Forwarded-Proto'] as const;

const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(:\d{1,5})?$/;

const lastOf = (value: string | string[] | undefined) => {
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined?.split(',').at(-1)?.trim() || undefined;
};

/**
 * The host and proto of the last element of a `Forwarded` header (quoted strings may hold `,`
 * and `;`), or nothing when the header does not parse to its end: a value we cannot split
 * reliably cannot tell us which element the trusted proxy wrote.
 */
function lastForwardedElement(header: string): { host?: string; proto?: string } {
  const elements: Record<string, string>[] = [{}];
  const pair = /\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)=("(?:[^"\\]|\\.)*"|[^;,\s"]*)\s*([;,]?)/y;
  let match: RegExpExecArray | null;
  while (pair.lastIndex < header.length && (match = pair.exec(header)) !== null) {
    const [, name, raw, separator] = match;
    elements.at(-1)![name.toLowerCase()] = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
    if (separator === ',') elements.push({});
  }
  if (pair.lastIndex !== header.length) return {};
  const last = elements.at(-1)!;
  return { host: last.host, proto: last.proto };
}

export interface PublicBaseUrl {
  /** `https://data.example[/prefix]`, without a trailing slash. */
  of(req: IncomingMessage): string;
  /** Request headers the answer depends on (for `Vary`); empty when no proxy is trusted. */
  readonly varies: readonly string[];
}

export function publicBaseUrl(configured: string, trustedProxies: readonly string[]): PublicBaseUrl {
  const url = new URL(configured);
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username || url.password) {
    throw new Error(`PUBLIC_BASE_URL: '${configured}' must be an http(s) URL without query, fragment or credentials`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  const fallback = `${url.protocol}//${url.host}${path}`;
  const proxies = new TrustedProxies(trustedProxies);
  return {
    varies: proxies.empty ? [] : FORWARDING_HEADERS,
    of(req) {
      if (!proxies.includes(req.socket.remoteAddress)) return fallback;
      const header = req.headers.forwarded;
      const forwarded = header ? lastForwardedElement(header) : undefined;
      const host = forwarded ? forwarded.host : lastOf(req.headers['x-forwarded-host']);
      const proto = (forwarded ? forwarded.proto : lastOf(req.headers['x-forwarded-proto']))?.toLowerCase();
      const scheme = proto === 'http' || proto === 'https' ? `${proto}:` : url.protocol;
      if (host !== undefined && HOST.test(host)) {
        try {
          // The URL parser lower-cases the name, drops the scheme's default port and refuses ports past 65535.
          const parsed = new URL(`${scheme}//${host}`);
          return `${parsed.protocol}//${parsed.host}${path}`;
        } catch {
          // not a usable host: the configured one stands
        }
      }
      return `${scheme}//${url.host}${path}`;
    },
  };
}
