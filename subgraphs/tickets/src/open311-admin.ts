/**
 * The admin side of Open311 (GraphQL): client keys issued per application, revoked, listed, and
 * each collectivity's public key switched on or off. Only admins of the collectivity concerned:
 * the public is UNAUTHENTICATED, anyone else FORBIDDEN, and lists show only the collectivities
 * the caller is admin of.
 */
import { actsIn, COLLECTIVITY_IDS, isPublic, requireRoleIn, type Role } from '@connecte/shared/auth';
import { badInput, forbidden, notFound, unauthenticated } from '@connecte/shared/errors';
import type { TicketsContext } from './context.js';
import { newClientKey, newPublicKey } from './open311-keys.js';

const ADMIN: Role[] = ['admin'];
const MAX_NAME_LENGTH = 200;
const EMAIL = /^[^\s@<>()[\],;:"\\]+@[^\s@<>()[\],;:"\\]+\.[^\s@<>()[\],;:"\\]+$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** A row of `open311_clients`, as the GraphQL `Open311Client` resolvers receive it (never the key or its hash). */
export interface Open311ClientRow {
  id: string;
  name: string;
  collectivityId: string;
  keyPrefix: string;
  contactEmail: string | null;
  createdBy: string;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

/** A row of `open311_public_keys`. */
export interface Open311PublicKeyRow {
  collectivityId: string;
  apiKey: string;
  enabled: boolean;
  updatedBy: string;
  updatedAt: Date;
}

const CLIENT_COLUMNS = `id::text AS id, name, collectivity_id AS "collectivityId", key_prefix AS "keyPrefix", contact_email AS "contactEmail",
  created_by AS "createdBy", created_at AS "createdAt", revoked_at AS "revokedAt", last_used_at AS "lastUsedAt"`;
const PUBLIC_KEY_COLUMNS = `collectivity_id AS "collectivityId", api_key AS "apiKey", enabled, updated_by AS "updatedBy", updated_at AS "updatedAt"`;

export class Open311AdminService {
  constructor(readonly context: TicketsContext) {}

  private get viewer() {
    return this.context.viewer;
  }

  /** The collectivities the caller is admin of; UNAUTHENTICATED for the public, FORBIDDEN when none. */
  private adminCollectivities(field: string): string[] {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: ${field} needs role admin`);
    const mine = this.viewer.collectivities.filter((id) => actsIn(this.viewer, id, ADMIN));
    if (mine.length === 0) throw forbidden(`${field}: needs role admin in a collectivity`);
    return mine;
  }

  /** Client applications of the caller's collectivities, newest first. */
  async clients(): Promise<Open311ClientRow[]> {
    const mine = this.adminCollectivities('open311Clients');
    const { rows } = await this.context.db.pool.query<Open311ClientRow>(
      `SELECT ${CLIENT_COLUMNS} FROM open311_clients WHERE collectivity_id = ANY($1::text[]) ORDER BY created_at DESC, id DESC`,
      [mine],
    );
    return rows;
  }

  /** The public keys of the caller's collectivities that exist (one is created by `setPublicKey`). */
  async publicKeys(): Promise<Open311PublicKeyRow[]> {
    const mine = this.adminCollectivities('open311PublicKeys');
    const { rows } = await this.context.db.pool.query<Open311PublicKeyRow>(
      `SELECT ${PUBLIC_KEY_COLUMNS} FROM open311_public_keys WHERE collectivity_id = ANY($1::text[]) ORDER BY collectivity_id`,
      [mine],
    );
    return rows;
  }

  /** Issues a key for an application: the key is returned once, only its hash is kept. */
  async issue(args: { name: string; collectivityId: string; contactEmail?: string | null }): Promise<{ client: Open311ClientRow; apiKey: string }> {
    const collectivityId = knownCollectivity(args.collectivityId);
    requireRoleIn(this.viewer, collectivityId, ADMIN, 'collectivityId');
    const name = args.name.trim();
    if (name.length === 0) throw badInput('name', 'must not be empty');
    if (name.length > MAX_NAME_LENGTH) throw badInput('name', `must be at most ${MAX_NAME_LENGTH} characters (got ${name.length})`);
    if (CONTROL.test(name)) throw badInput('name', 'must not contain control characters (NUL, line breaks...)');
    let contactEmail: string | null = null;
    if (args.contactEmail !== undefined && args.contactEmail !== null && args.contactEmail.trim() !== '') {
      contactEmail = args.contactEmail.trim();
      if (contactEmail.length > 254 || CONTROL.test(contactEmail) || !EMAIL.test(contactEmail)) {
        throw badInput('contactEmail', 'must be an e-mail address such as dev@example.org (at most 254 characters)');
      }
    }
    const key = newClientKey();
    const { rows } = await this.context.db.pool.query<Open311ClientRow>(
      `INSERT INTO open311_clients (name, collectivity_id, key_prefix, key_hash, contact_email, created_by)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${CLIENT_COLUMNS}`,
      [name, collectivityId, key.prefix, key.hash, contactEmail, this.viewer.sub],
    );
    this.context.log.info({ open311ClientId: rows[0].id, collectivityId, by: this.viewer.sub }, 'Open311 key issued');
    return { client: rows[0], apiKey: key.apiKey };
  }

  /** Revokes a client's key (idempotent: a revoked client keeps its first revocation time). */
  async revoke(id: string): Promise<Open311ClientRow> {
    if (!/^[1-9][0-9]{0,17}$/.test(id)) throw badInput('id', `'${id.slice(0, 40)}' is not an Open311 client id`);
    if (isPublic(this.viewer)) throw unauthenticated('authentication required: revokeOpen311Key needs role admin');
    const found = await this.context.db.pool.query<{ collectivityId: string }>(`SELECT collectivity_id AS "collectivityId" FROM open311_clients WHERE id = $1`, [id]);
    if (found.rows.length === 0) throw notFound(`no Open311 client ${id}`, 'id');
    requireRoleIn(this.viewer, found.rows[0].collectivityId, ADMIN, 'id');
    const { rows } = await this.context.db.pool.query<Open311ClientRow>(
      `UPDATE open311_clients SET revoked_at = COALESCE(revoked_at, CURRENT_TIMESTAMP) WHERE id = $1 RETURNING ${CLIENT_COLUMNS}`,
      [id],
    );
    this.context.log.info({ open311ClientId: id, by: this.viewer.sub }, 'Open311 key revoked');
    return rows[0];
  }

  /** Enables or disables a collectivity's public key, creating it on first use (the key stays the same afterwards). */
  async setPublicKey(collectivityIdArg: string, enabled: boolean): Promise<Open311PublicKeyRow> {
    const collectivityId = knownCollectivity(collectivityIdArg);
    requireRoleIn(this.viewer, collectivityId, ADMIN, 'collectivityId');
    const { rows } = await this.context.db.pool.query<Open311PublicKeyRow>(
      `INSERT INTO open311_public_keys (collectivity_id, api_key, enabled, updated_by) VALUES ($1, $2, $3, $4)
       ON CONFLICT (collectivity_id) DO UPDATE SET enabled = EXCLUDED.enabled, updated_by = EXCLUDED.updated_by, updated_at = CURRENT_TIMESTAMP
       RETURNING ${PUBLIC_KEY_COLUMNS}`,
      [collectivityId, newPublicKey(), enabled, this.viewer.sub],
    );
    this.context.log.info({ collectivityId, enabled, by: this.viewer.sub }, 'Open311 public key set');
    return rows[0];
  }
}

function knownCollectivity(id: string): string {
  if (!(COLLECTIVITY_IDS as readonly string[]).includes(id)) {
    throw badInput('collectivityId', `unknown collectivity '${id.slice(0, 60)}' (known: ${COLLECTIVITY_IDS.join(', ')})`);
  }
  return id;
}
