/**
 * Device credentials and ingest keys as HTTP ingest uses them: a bearer token becomes a
 * Principal, or null (401). Issuing and revoking them is credential-service.ts's.
 *
 * A token is `cdt_<16 hex>_<secret>` (a device) or `cik_<16 hex>_<secret>` (an ingest key),
 * the secret 32 random bytes in base64url; its id is the part before the secret (`cdt_<hex>`,
 * `cik_<hex>`), which finds its row. Only the SHA-256 of the whole token is stored. A password
 * hash (bcrypt, scrypt, Argon2) exists to make guessing a low-entropy human password slow; a
 * 256-bit random secret cannot be guessed at any speed, so a slow hash would only cost every
 * ingest request time for nothing, while SHA-256 keeps a stolen table useless (preimage
 * resistance). The comparison is constant-time all the same.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TelemetryResources } from './resources.js';
import type { Principal } from './types.js';

export type CredentialKind = 'device' | 'ingest-key';

const PREFIX: Record<CredentialKind, string> = { device: 'cdt', 'ingest-key': 'cik' };
const TOKEN = /^(cdt|cik)_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

/** A verified (or refused) token is remembered this long: a burst of requests checks it once. */
export const CACHE_TTL_MS = 10_000;
const CACHE_SIZE = 10_000;
/** `last_used_at` is written at most this often per credential (not on every request). */
export const LAST_USED_EVERY_MS = 60_000;

export interface NewToken {
  /** The credential's id: `cdt_<hex>` or `cik_<hex>` (an ingest key's is also its MQTT user name). */
  id: string;
  /** Shown once, to the caller who issued it. */
  token: string;
  /** What is stored. */
  hash: Buffer;
}

export const hashToken = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** A fresh credential: 8 random bytes of id, 32 of secret. */
export function newToken(kind: CredentialKind): NewToken {
  const id = `${PREFIX[kind]}_${randomBytes(8).toString('hex')}`;
  const token = `${id}_${randomBytes(32).toString('base64url')}`;
  return { id, token, hash: hashToken(token) };
}

const ID: Record<CredentialKind, RegExp> = { device: /^cdt_[0-9a-f]{16}$/, 'ingest-key': /^cik_[0-9a-f]{16}$/ };

/** Whether `id` has the shape of a credential id of this kind (before any query). */
export const isCredentialId = (kind: CredentialKind, id: string): boolean => ID[kind].test(id);

/** The kind and id a token names, or null when it is not one of ours. */
export function parseToken(token: string): { kind: CredentialKind; id: string } | null {
  const match = TOKEN.exec(token);
  if (!match) return null;
  return { kind: match[1] === 'cdt' ? 'device' : 'ingest-key', id: `${match[1]}_${match[2]}` };
}

interface Cached {
  principal: Principal | null;
  /** The credential the token names (to forget it on revoke). */
  id: string;
  until: number;
}

interface DeviceRow {
  id: string;
  equipment_id: string;
  collectivity_id: string;
  secret_hash: Buffer;
}
interface KeyRow {
  id: string;
  collectivity_id: string;
  secret_hash: Buffer;
}

export class CredentialStore {
  /** By the token's hash (the token itself is not kept). */
  private readonly cache = new Map<string, Cached>();
  /** Bumped by `forget`: a lookup that started before a revocation does not cache its answer. */
  private generation = 0;
  private readonly lastWritten = new Map<string, number>();
  private readonly touched: Record<CredentialKind, Set<string>> = { device: new Set(), 'ingest-key': new Set() };
  private flushing = false;

  constructor(private readonly r: TelemetryResources) {}

  /** The principal a device token or an ingest key stands for; null when it is unknown, malformed or revoked. */
  async authenticate(token: string): Promise<Principal | null> {
    if (typeof token !== 'string') return null;
    const parsed = parseToken(token);
    if (!parsed) return null;
    const hash = hashToken(token);
    const key = hash.toString('base64');
    const now = Date.now();
    const cached = this.cache.get(key);
    if (cached && cached.until > now) {
      if (cached.principal) this.touch(parsed.kind, parsed.id, now);
      return cached.principal;
    }
    if (cached) this.cache.delete(key);

    const generation = this.generation;
    const principal = await this.verify(parsed.kind, parsed.id, hash);
    if (generation === this.generation) {
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(key, { principal, id: parsed.id, until: now + CACHE_TTL_MS });
    }
    if (principal) this.touch(parsed.kind, parsed.id, now);
    return principal;
  }

  /**
   * Drops what this process remembers of a credential (called on revoke and rotation). Other
   * instances of the hub stop accepting it within CACHE_TTL_MS.
   */
  forget(id: string): void {
    this.generation++;
    for (const [key, entry] of this.cache) if (entry.id === id) this.cache.delete(key);
  }

  private async verify(kind: CredentialKind, id: string, hash: Buffer): Promise<Principal | null> {
    if (kind === 'device') {
      const { rows } = await this.r.db.pool.query<DeviceRow>(
        'SELECT id, equipment_id, collectivity_id, secret_hash FROM device_credentials WHERE id = $1 AND revoked_at IS NULL',
        [id],
      );
      const row = rows[0];
      if (!row || !sameHash(row.secret_hash, hash)) return null;
      return { kind: 'device', credentialId: row.id, equipmentId: row.equipment_id, collectivityId: row.collectivity_id };
    }
    const { rows } = await this.r.db.pool.query<KeyRow>('SELECT id, collectivity_id, secret_hash FROM ingest_keys WHERE id = $1 AND revoked_at IS NULL', [id]);
    const row = rows[0];
    if (!row || !sameHash(row.secret_hash, hash)) return null;
    return { kind: 'ingest-key', keyId: row.id, collectivityId: row.collectivity_id };
  }

  /** Records a use, written at most once a minute per credential, in one statement per kind for all of them. */
  private touch(kind: CredentialKind, id: string, now: number): void {
    const last = this.lastWritten.get(id);
    if (last !== undefined && now - last < LAST_USED_EVERY_MS) return;
    this.lastWritten.set(id, now);
    this.touched[kind].add(id);
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    const work: [string, string[]][] = [
      ['device_credentials', [...this.touched.device]],
      ['ingest_keys', [...this.touched['ingest-key']]],
    ];
    this.touched.device.clear();
    this.touched['ingest-key'].clear();
    this.flushing = false;
    for (const [table, ids] of work) {
      if (ids.length === 0) continue;
      try {
        await this.r.db.pool.query(`UPDATE ${table} SET last_used_at = now() WHERE id = ANY($1::text[])`, [ids]);
      } catch (error) {
        // Only a use record: the request it came with is served all the same; the next use retries.
        for (const id of ids) this.lastWritten.delete(id);
        this.r.log.warn({ err: (error as Error).message, table }, 'could not record credential use');
      }
    }
  }
}

/** Constant-time equality of two SHA-256 digests (a stored one of the wrong length never matches). */
function sameHash(stored: Buffer, computed: Buffer): boolean {
  return stored.length === computed.length && timingSafeEqual(stored, computed);
}
