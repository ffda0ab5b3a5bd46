/**
 * Open311 API keys (GeoReport v2 asks one for `POST requests` only).
 *
 * - A client key is issued by an admin of a collectivity to one client application:
 *   `o311_<prefix>_<secret>`, 12 hex characters of prefix (stored, shown in the admin list, to
 *   find the row) and 256 random bits of secret. Only its SHA-256 is stored (`key_hash`): it is
 *   shown once, at issue. A random 256-bit key needs no slow hash: nothing can be guessed from it.
 *   Checked in constant time; a revoked key is refused.
 * - A collectivity's public key (`o311pub_<random>`) is meant to be published (e.g. in an app), so
 *   it is stored as is; POSTs with it are accepted only while the collectivity's admins keep it
 *   enabled.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';

type Queryable = Pick<pg.Pool, 'query'> | pg.ClientBase;

const CLIENT_KEY = /^o311_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const PUBLIC_KEY = /^o311pub_[A-Za-z0-9_-]{32}$/;
/** Longer than any key: refused before any pattern is tried. */
const MAX_KEY_LENGTH = 200;

export const hashKey = (apiKey: string) => createHash('sha256').update(apiKey, 'utf8').digest('hex');

/** A new client key: the key to show once, the prefix to store and show, the hash to store. */
export function newClientKey(): { apiKey: string; prefix: string; hash: string } {
  const prefix = randomBytes(6).toString('hex');
  const apiKey = `o311_${prefix}_${randomBytes(32).toString('base64url')}`;
  return { apiKey, prefix: `o311_${prefix}`, hash: hashKey(apiKey) };
}

/** A new public key for a collectivity (192 random bits). */
export const newPublicKey = () => `o311pub_${randomBytes(24).toString('base64url')}`;

/** Who a key speaks for, or why it is refused. */
export type KeyCheck =
  | { ok: true; kind: 'client'; clientId: string; collectivityId: string; name: string }
  | { ok: true; kind: 'public'; clientId: null; collectivityId: string; name: null }
  | { ok: false; reason: 'unknown' | 'revoked' | 'disabled' };

/** Checks an `api_key` against the stored keys (one indexed lookup). */
export async function checkApiKey(db: Queryable, apiKey: string): Promise<KeyCheck> {
  if (apiKey.length > MAX_KEY_LENGTH) return { ok: false, reason: 'unknown' };
  const client = CLIENT_KEY.exec(apiKey);
  if (client) {
    const { rows } = await db.query<{ id: string; collectivityId: string; name: string; keyHash: string; revoked: boolean }>(
      `SELECT id::text AS id, collectivity_id AS "collectivityId", name, key_hash AS "keyHash", revoked_at IS NOT NULL AS revoked
       FROM open311_clients WHERE key_prefix = $1`,
      [`o311_${client[1]}`],
    );
    const row = rows[0];
    if (!row) return { ok: false, reason: 'unknown' };
    const expected = Buffer.from(row.keyHash, 'hex');
    const given = Buffer.from(hashKey(apiKey), 'hex');
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'unknown' };
    if (row.revoked) return { ok: false, reason: 'revoked' };
    return { ok: true, kind: 'client', clientId: row.id, collectivityId: row.collectivityId, name: row.name };
  }
  if (PUBLIC_KEY.test(apiKey)) {
    const { rows } = await db.query<{ collectivityId: string; enabled: boolean }>(
      `SELECT collectivity_id AS "collectivityId", enabled FROM open311_public_keys WHERE api_key = $1`,
      [apiKey],
    );
    const row = rows[0];
    if (!row) return { ok: false, reason: 'unknown' };
    if (!row.enabled) return { ok: false, reason: 'disabled' };
    return { ok: true, kind: 'public', clientId: null, collectivityId: row.collectivityId, name: null };
  }
  return { ok: false, reason: 'unknown' };
}

/** Records that a client key was just used to post a request. */
export async function touchClient(db: Queryable, clientId: string): Promise<void> {
  await db.query(`UPDATE open311_clients SET last_used_at = CURRENT_TIMESTAMP WHERE id = $1`, [clientId]);
}
