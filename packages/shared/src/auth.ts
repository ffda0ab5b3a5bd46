import { createRemoteJWKSet, errors as jose, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { Config } from './config.js';
import { forbidden, unauthenticated } from './errors.js';

export const ROLES = ['citizen', 'agent', 'operator', 'admin', 'partner'] as const;
export type Role = (typeof ROLES)[number];

const isRole = (value: unknown): value is Role => (ROLES as readonly unknown[]).includes(value);

/** Who is calling. `sub === null` means public (no token). `token` is forwarded as is. */
export interface Viewer {
  sub: string | null;
  roles: Role[];
  collectivities: string[];
  token: string | null;
}

export const PUBLIC_VIEWER: Viewer = Object.freeze({
  sub: null,
  roles: Object.freeze([]) as unknown as Role[],
  collectivities: Object.freeze([]) as unknown as string[],
  token: null,
});

/** A verified token is remembered until its expiry (at most this long), so a burst of
 * requests carrying the same token (the gateway forwards it to every subgraph) verifies it once. */
const CACHE_TTL_MS = 60_000;
const CACHE_SIZE = 1000;
const BEARER = /^Bearer\s+(\S+)$/i;
/** `exp` is mandatory; 5 s of clock skew between issuer and hub is tolerated. */
const VERIFY_OPTIONS = { requiredClaims: ['exp'], clockTolerance: 5 };

export type Authenticator = (authorization: string | undefined | null) => Promise<Viewer>;

/**
 * Verifies `Authorization: Bearer <jwt>` per the auth contract. With JWT_JWKS_URL set only
 * RS256/ES256 keys of that set are accepted: the HS256 secret (possibly the development
 * default) must then never open a door.
 */
export function createAuthenticator(config: Pick<Config, 'JWT_SECRET' | 'JWT_JWKS_URL'>): Authenticator {
  let verify: (token: string) => Promise<{ payload: JWTPayload }>;
  if (config.JWT_JWKS_URL) {
    const jwks = createRemoteJWKSet(new URL(config.JWT_JWKS_URL));
    verify = (token) => jwtVerify(token, jwks, { ...VERIFY_OPTIONS, algorithms: ['RS256', 'ES256'] });
  } else {
    const secret = new TextEncoder().encode(config.JWT_SECRET);
    verify = (token) => jwtVerify(token, secret, { ...VERIFY_OPTIONS, algorithms: ['HS256'] });
  }
  const cache = new Map<string, { viewer: Viewer; until: number }>();

  return async (authorization) => {
    if (authorization === undefined || authorization === null || authorization.trim() === '') return PUBLIC_VIEWER;
    const match = BEARER.exec(authorization.trim());
    if (!match) throw unauthenticated('authorization header must be "Bearer <token>"');
    const token = match[1];

    const cached = cache.get(token);
    if (cached && cached.until > Date.now()) return cached.viewer;
    if (cached) cache.delete(token);

    let payload: JWTPayload;
    try {
      ({ payload } = await verify(token));
    } catch (error) {
      throw unauthenticated(explain(error));
    }
    const viewer = viewerFromClaims(payload, token);
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

/** Checks the claims the contract relies on; each message names the claim and the reason. */
function viewerFromClaims(payload: JWTPayload, token: string): Viewer {
  const { sub, roles, collectivities } = payload as Record<string, unknown>;
  if (typeof sub !== 'string' || sub === '') throw unauthenticated('token claim sub: must be a non-empty string');
  if (!Array.isArray(roles)) throw unauthenticated('token claim roles: must be an array');
  const unknownRole = roles.find((role) => !isRole(role));
  if (unknownRole !== undefined) {
    throw unauthenticated(`token claim roles: unknown role '${String(unknownRole)}' (known: ${ROLES.join(', ')})`);
  }
  if (!Array.isArray(collectivities) || !collectivities.every((id) => typeof id === 'string' && id !== '')) {
    throw unauthenticated('token claim collectivities: must be an array of collectivity ids');
  }
  return { sub, roles: [...new Set(roles as Role[])], collectivities: [...new Set(collectivities as string[])], token };
}

export const isPublic = (viewer: Viewer) => viewer.sub === null;

export function hasRole(viewer: Viewer, ...roles: Role[]): boolean {
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

/** Camera positions are for operators and admins of at least one collectivity. */
export function canSeeCameraPositions(viewer: Viewer): boolean {
  return hasRole(viewer, 'operator', 'admin') && viewer.collectivities.length > 0;
}

export interface DevelopmentTokenClaims {
  sub: string;
  roles: Role[];
  collectivities: string[];
  /** jose time span ('12h', '30m', '-1m' for an already expired token) or seconds from now. */
  expiresIn?: string | number;
}

/** HS256 token signed with JWT_SECRET, for `npm run token` and tests. Never in production. */
export async function signDevelopmentToken(
  claims: DevelopmentTokenClaims,
  config: Pick<Config, 'JWT_SECRET' | 'NODE_ENV'>,
): Promise<string> {
  if (config.NODE_ENV === 'production') throw new Error('development tokens are not minted when NODE_ENV=production');
  const unknownRole = claims.roles.find((role) => !isRole(role));
  if (unknownRole !== undefined) throw new Error(`unknown role '${unknownRole}' (known: ${ROLES.join(', ')})`);
  const expiresIn = claims.expiresIn ?? '12h';
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ roles: claims.roles, collectivities: claims.collectivities })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuedAt(now)
    .setExpirationTime(typeof expiresIn === 'number' ? now + expiresIn : expiresIn)
    .sign(new TextEncoder().encode(config.JWT_SECRET));
}
