import { createRemoteJWKSet, decodeJwt, errors as jose, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { Config } from './config.js';
import { forbidden, tokenRefused, unauthenticated } from './errors.js';

export const ROLES = ['citizen', 'agent', 'operator', 'admin', 'partner'] as const;
export type Role = (typeof ROLES)[number];

const isRole = (value: unknown): value is Role => (ROLES as readonly unknown[]).includes(value);

/**
 * The collectivities of the territory (the `collectivities` rows of the seed): the only ids a
 * token's `collectivities` claim may name.
 */
export const COLLECTIVITY_IDS = ['chalons', 'fagnieres', 'saint-martin-sur-le-pre', 'chalons-agglo'] as const;

const isCollectivityId = (value: unknown): boolean => (COLLECTIVITY_IDS as readonly unknown[]).includes(value);

/** Who is calling. `sub === null` means public (no token). `token` is forwarded as is. */
export interface Viewer {
  sub: string | null;
  roles: Role[];
  collectivities: string[];
  token: string | null;
  /** The token's `exp` in epoch milliseconds (null for the public): long-lived operations end by then, see `tokenRefusedAfter`. */
  expiresAt: number | null;
}

export const PUBLIC_VIEWER: Viewer = Object.freeze({
  sub: null,
  roles: Object.freeze([]) as unknown as Role[],
  collectivities: Object.freeze([]) as unknown as string[],
  token: null,
  expiresAt: null,
});

/** Clock skew tolerated between the issuer and the hub, on `exp` and `iat`. */
export const TOKEN_CLOCK_TOLERANCE_SECONDS = 5;

/**
 * The moment (epoch ms) from which the viewer's token is refused: `exp` plus the tolerated skew.
 * A subscription made with the token ends then, so that reconnecting with the same token is
 * refused instead of being accepted and ended again. Null for the public: nothing expires.
 */
export const tokenRefusedAfter = (viewer: Viewer): number | null =>
  viewer.expiresAt === null ? null : viewer.expiresAt + TOKEN_CLOCK_TOLERANCE_SECONDS * 1000;

/** A verified token is remembered until its expiry (at most this long), so a burst of
 * requests carrying the same token (the gateway forwards it to every subgraph) verifies it once. */
const CACHE_TTL_MS = 60_000;
const CACHE_SIZE = 1000;
const BEARER = /^Bearer\s+(\S+)$/i;
export type Authenticator = (authorization: string | undefined | null) => Promise<Viewer>;

export type AuthConfig = Pick<Config, 'JWT_SECRET' | 'JWT_JWKS_URL' | 'JWT_MAX_LIFETIME_SECONDS' | 'JWT_ISSUER' | 'JWT_AUDIENCE'>;

/**
 * Verifies `Authorization: Bearer <jwt>` per the auth contract. With JWT_JWKS_URL set only
 * RS256/ES256 keys of that set are accepted: the HS256 secret (possibly the development
 * default) must then never open a door. `exp` is mandatory and bounded by
 * JWT_MAX_LIFETIME_SECONDS; `iss`/`aud` must match JWT_ISSUER/JWT_AUDIENCE when those are set.
 */
export function createAuthenticator(config: AuthConfig): Authenticator {
  const options = {
    requiredClaims: ['exp'],
    clockTolerance: TOKEN_CLOCK_TOLERANCE_SECONDS,
    ...(config.JWT_ISSUER ? { issuer: config.JWT_ISSUER } : {}),
    ...(config.JWT_AUDIENCE ? { audience: config.JWT_AUDIENCE } : {}),
  };
  let verify: (token: string) => Promise<{ payload: JWTPayload }>;
  if (config.JWT_JWKS_URL) {
    const jwks = createRemoteJWKSet(new URL(config.JWT_JWKS_URL));
    verify = (token) => jwtVerify(token, jwks, { ...options, algorithms: ['RS256', 'ES256'] });
  } else {
    const secret = new TextEncoder().encode(config.JWT_SECRET);
    verify = (token) => jwtVerify(token, secret, { ...options, algorithms: ['HS256'] });
  }
  const cache = new Map<string, { viewer: Viewer; until: number }>();

  return async (authorization) => {
    if (authorization === undefined || authorization === null || authorization.trim() === '') return PUBLIC_VIEWER;
    const match = BEARER.exec(authorization.trim());
    if (!match) throw tokenRefused('authorization header must be "Bearer <token>"');
    const token = match[1];

    const cached = cache.get(token);
    if (cached && cached.until > Date.now()) return cached.viewer;
    if (cached) cache.delete(token);

    let payload: JWTPayload;
    try {
      ({ payload } = await verify(token));
    } catch (error) {
      throw tokenRefused(explain(error));
    }
    const viewer = viewerFromClaims(payload, token, config.JWT_MAX_LIFETIME_SECONDS);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
    cache.set(token, { viewer, until: Math.min(Date.now() + CACHE_TTL_MS, payload.exp! * 1000) });
    return viewer;
  };
}

function explain(error: unknown): string {
  if (error instanceof jose.JWTExpired) return 'token expired';
  if (error instanceof jose.JWTClaimValidationFailed) return `token claim '${error.claim}' ${error.reason === 'missing' ? 'is missing' : `is invalid (${error.message})`}`;
  if (error instanceof jose.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (error instanceof jose.JOSEAlgNotAllowed) return 'token algorithm is not accepted';
  if (error instanceof jose.JWKSNoMatchingKey) return 'token signing key is unknown';
  if (error instanceof jose.JWSInvalid || error instanceof jose.JWTInvalid) return `malformed token: ${error.message}`;
  return `token could not be verified: ${(error as Error)?.message ?? String(error)}`;
}

/**
 * Checks the claims the contract relies on; each message names the claim and the reason.
 * jose has checked that `exp` (and `iat` if present) are numbers and that `exp` has not passed,
 * but a number may be 1e309 (Infinity once parsed) or an `iat` in the future that would make a
 * far `exp` look short-lived.
 */
function viewerFromClaims(payload: JWTPayload, token: string, maxLifetimeSeconds: number): Viewer {
  const now = Date.now() / 1000;
  const exp = payload.exp!;
  if (payload.iat !== undefined && payload.iat > now + TOKEN_CLOCK_TOLERANCE_SECONDS) {
    throw tokenRefused('token claim iat: is in the future');
  }
  const lifetime = exp - (payload.iat ?? now);
  if (!(lifetime <= maxLifetimeSeconds)) {
    throw tokenRefused(
      `token claim exp: lifetime of ${Number.isFinite(lifetime) ? Math.ceil(lifetime) : lifetime} s ${payload.iat === undefined ? 'from now ' : 'from iat '}exceeds the maximum of ${maxLifetimeSeconds} s`,
    );
  }
  const { sub, roles, collectivities } = payload as Record<string, unknown>;
  if (typeof sub !== 'string' || sub === '') throw tokenRefused('token claim sub: must be a non-empty string');
  if (!Array.isArray(roles)) throw tokenRefused('token claim roles: must be an array');
  const unknownRole = roles.find((role) => !isRole(role));
  if (unknownRole !== undefined) {
    throw tokenRefused(`token claim roles: unknown role '${String(unknownRole)}' (known: ${ROLES.join(', ')})`);
  }
  if (!Array.isArray(collectivities) || !collectivities.every((id) => typeof id === 'string' && id !== '')) {
    throw tokenRefused('token claim collectivities: must be an array of collectivity ids');
  }
  const unknownCollectivity = collectivities.find((id) => !isCollectivityId(id));
  if (unknownCollectivity !== undefined) {
    throw tokenRefused(
      `token claim collectivities: unknown collectivity '${String(unknownCollectivity)}' (known: ${COLLECTIVITY_IDS.join(', ')})`,
    );
  }
  return {
    sub,
    roles: [...new Set(roles as Role[])],
    collectivities: [...new Set(collectivities as string[])],
    token,
    expiresAt: exp * 1000,
  };
}

export const isPublic = (viewer: Viewer) => viewer.sub === null;

function hasRole(viewer: Viewer, ...roles: Role[]): boolean {
  return roles.some((role) => viewer.roles.includes(role));
}

/** True when the viewer holds one of `roles` AND acts for `collectivityId` (roles are scoped to collectivities). */
export function actsIn(viewer: Viewer, collectivityId: string, roles: Role[]): boolean {
  return hasRole(viewer, ...roles) && viewer.collectivities.includes(collectivityId);
}

/** Guard for resolvers: UNAUTHENTICATED for the public (a token might help), FORBIDDEN otherwise. */
export function requireRoleIn(viewer: Viewer, collectivityId: string, roles: Role[], field?: string): void {
  if (actsIn(viewer, collectivityId, roles)) return;
  const need = `role ${roles.join(' or ')} in collectivity '${collectivityId}'`;
  if (isPublic(viewer)) throw unauthenticated(`authentication required: needs ${need}`);
  throw forbidden(`${field ? `${field}: ` : ''}needs ${need}`, field);
}

export interface DevelopmentTokenClaims {
  sub: string;
  roles: Role[];
  collectivities: string[];
  /** jose time span ('12h', '30m', '-1m' for an already expired token) or seconds from now. */
  expiresIn?: string | number;
}

/**
 * HS256 token signed with JWT_SECRET, for `npm run token` and tests. Never in production. It
 * carries JWT_ISSUER/JWT_AUDIENCE when configured and refuses what the authenticator would
 * refuse (unknown role or collectivity, a lifetime over JWT_MAX_LIFETIME_SECONDS).
 */
export async function signDevelopmentToken(
  claims: DevelopmentTokenClaims,
  config: Pick<Config, 'JWT_SECRET' | 'NODE_ENV' | 'JWT_MAX_LIFETIME_SECONDS' | 'JWT_ISSUER' | 'JWT_AUDIENCE'>,
): Promise<string> {
  if (config.NODE_ENV === 'production') throw new Error('development tokens are not minted when NODE_ENV=production');
  const unknownRole = claims.roles.find((role) => !isRole(role));
  if (unknownRole !== undefined) throw new Error(`unknown role '${unknownRole}' (known: ${ROLES.join(', ')})`);
  const unknownCollectivity = claims.collectivities.find((id) => !isCollectivityId(id));
  if (unknownCollectivity !== undefined) {
    throw new Error(`unknown collectivity '${unknownCollectivity}' (known: ${COLLECTIVITY_IDS.join(', ')})`);
  }
  const expiresIn = claims.expiresIn ?? '12h';
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ roles: claims.roles, collectivities: claims.collectivities })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt(now)
    .setExpirationTime(typeof expiresIn === 'number' ? now + expiresIn : expiresIn);
  if (config.JWT_ISSUER) jwt.setIssuer(config.JWT_ISSUER);
  if (config.JWT_AUDIENCE) jwt.setAudience(config.JWT_AUDIENCE);
  const token = await jwt.sign(new TextEncoder().encode(config.JWT_SECRET));
  const lifetime = decodeJwt(token).exp! - now;
  if (lifetime > config.JWT_MAX_LIFETIME_SECONDS) {
    throw new Error(`a lifetime of ${lifetime} s exceeds the maximum of ${config.JWT_MAX_LIFETIME_SECONDS} s (JWT_MAX_LIFETIME_SECONDS)`);
  }
  return token;
}
