/**
 * Issuing and revoking device credentials and ingest keys (per request: it holds the caller).
 *
 * Each change is one transaction that also updates the broker (broker-auth.ts) before it
 * commits, under a lock on the broker account (so concurrent rotations of one device, on any
 * instance, apply in one order in the database and on the broker alike):
 * - issuing: if the broker cannot be updated, nothing is issued (rolled back) and the mutation
 *   fails with SERVICE_UNAVAILABLE, saying why. A rotation deletes the previous broker account
 *   first, which disconnects the device at once.
 * - revoking: the revocation is committed even when the broker cannot be updated, because a
 *   credential its owner wants dead must stop working over HTTP whatever the broker's state; the
 *   mutation then fails with SERVICE_UNAVAILABLE saying so, a retry completes it (revoking is
 *   idempotent), and broker-auth removes the account anyway on its next connection.
 * On the anonymous development broker there is no broker account to change.
 *
 * Secrets are returned once, by the issuing mutation, and never logged.
 */
import DataLoader from 'dataloader';
import { GraphQLError } from 'graphql';
import type pg from 'pg';
import { actsIn, COLLECTIVITY_IDS, isPublic, requireRoleIn, type Role, type Viewer } from '@connecte/shared/auth';
import { badInput, forbidden, notFound, unauthenticated } from '@connecte/shared/errors';
import { inTransaction } from '@connecte/shared/db';
import type { RequestContext } from '@connecte/shared/server';
import { BrokerUpdateError, deviceAccount, deviceRole, deviceTopics, ingestKeyAccount, ingestKeyTopics, lockBrokerAccount, type TopicGrant } from './broker-auth.js';
import { isCredentialId, newToken } from './credentials.js';
import type { TelemetryResources } from './resources.js';
import type { DeviceInfo } from './types.js';

/** Who issues and revokes a device's credential, and sees it. */
const DEVICE_MANAGERS: Role[] = ['operator', 'admin'];
/** Who issues, revokes and lists a collectivity's ingest keys. */
const KEY_MANAGERS: Role[] = ['admin'];
const MAX_LABEL = 200;
/** An MQTT user name and topic level: none of MQTT's separators or wildcards. */
const TOPIC_LEVEL = /^[^/+#\s\u0000]+$/;

export interface DeviceCredentialRow {
  id: string;
  equipmentId: string;
  collectivityId: string;
  createdAt: Date;
  createdBy: string;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  revokedBy: string | null;
}

export interface IngestKeyRow {
  id: string;
  collectivityId: string;
  label: string;
  createdAt: Date;
  createdBy: string;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  revokedBy: string | null;
}

/** `IssuedSecret`: the token, shown once, and how to use it. */
export interface IssuedSecretValue {
  token: string;
  mqttUsername: string;
  publishTopics: string[];
  subscribeTopics: string[];
}

const DEVICE_COLUMNS = `id, equipment_id AS "equipmentId", collectivity_id AS "collectivityId", created_at AS "createdAt",
  created_by AS "createdBy", last_used_at AS "lastUsedAt", revoked_at AS "revokedAt", revoked_by AS "revokedBy"`;
const KEY_COLUMNS = `id, collectivity_id AS "collectivityId", label, created_at AS "createdAt", created_by AS "createdBy",
  last_used_at AS "lastUsedAt", revoked_at AS "revokedAt", revoked_by AS "revokedBy"`;

/** A dependency (the MQTT broker) could not do its part: a client may retry. */
const unavailable = (message: string, field: string) => new GraphQLError(message, { extensions: { code: 'SERVICE_UNAVAILABLE', field } });

const secretOf = (token: string, mqttUsername: string, topics: TopicGrant): IssuedSecretValue => ({
  token,
  mqttUsername,
  publishTopics: topics.publish,
  subscribeTopics: topics.subscribe,
});

export class CredentialService {
  private readonly viewer: Viewer;
  /** An asset's current (else latest) credential, for the assets whose collectivity the caller manages. */
  private readonly byEquipment: DataLoader<string, DeviceCredentialRow | null>;

  constructor(
    private readonly base: RequestContext,
    private readonly r: TelemetryResources,
  ) {
    this.viewer = base.viewer;
    this.byEquipment = new DataLoader((ids) => this.loadCredentials(ids));
  }

  /** `Equipment.deviceCredential`: null for a caller who is not operator or admin of the asset's collectivity. */
  deviceCredential(equipmentId: string): Promise<DeviceCredentialRow | null> {
    return this.byEquipment.load(equipmentId);
  }

  private async loadCredentials(ids: readonly string[]): Promise<(DeviceCredentialRow | null)[]> {
    if (!DEVICE_MANAGERS.some((role) => this.viewer.roles.includes(role))) return ids.map(() => null);
    const devices = await this.r.directory.lookup(ids);
    const allowed = ids.filter((id) => {
      const device = devices.get(id);
      return device !== undefined && actsIn(this.viewer, device.collectivityId, DEVICE_MANAGERS);
    });
    if (allowed.length === 0) return ids.map(() => null);
    const { rows } = await this.r.db.pool.query<DeviceCredentialRow>(
      `SELECT DISTINCT ON (equipment_id) ${DEVICE_COLUMNS} FROM device_credentials
       WHERE equipment_id = ANY($1::text[])
       ORDER BY equipment_id, (revoked_at IS NULL) DESC, created_at DESC, id DESC`,
      [allowed],
    );
    const found = new Map(rows.map((row) => [row.equipmentId, row]));
    return ids.map((id) => found.get(id) ?? null);
  }

  async issueDeviceCredential(equipmentId: string): Promise<{ credential: DeviceCredentialRow; secret: IssuedSecretValue }> {
    const device = await this.managedDevice(equipmentId);
    if (device.status === 'DECOMMISSIONED') throw badInput('equipmentId', `equipment '${equipmentId}' is decommissioned: it gets no credential`);
    if (!TOPIC_LEVEL.test(equipmentId) || /^(cdt|cik)_/.test(equipmentId) || equipmentId === this.r.config.MQTT_USERNAME) {
      throw badInput('equipmentId', `'${equipmentId}' cannot be an MQTT user name and topic level`);
    }
    const fresh = newToken('device');
    const actor = this.viewer.sub!;
    let revoked: string[] = [];
    let credential: DeviceCredentialRow;
    try {
      credential = await this.transaction(async (client) => {
        await lockBrokerAccount(client, equipmentId);
        const previous = await client.query<{ id: string }>(
          'UPDATE device_credentials SET revoked_at = now(), revoked_by = $2 WHERE equipment_id = $1 AND revoked_at IS NULL RETURNING id',
          [equipmentId, actor],
        );
        revoked = previous.rows.map((row) => row.id);
        const { rows } = await client.query<DeviceCredentialRow>(
          `INSERT INTO device_credentials (id, equipment_id, collectivity_id, secret_hash, created_by)
           VALUES ($1, $2, $3, $4, $5) RETURNING ${DEVICE_COLUMNS}`,
          [fresh.id, equipmentId, device.collectivityId, fresh.hash, actor],
        );
        await this.r.brokerAuth.grant(deviceAccount(equipmentId, device.collectivityId, fresh.token));
        return rows[0];
      });
    } catch (error) {
      if (!(error instanceof BrokerUpdateError)) throw error;
      this.base.log.warn({ equipmentId, reason: error.message }, 'device credential not issued: broker not updated');
      throw unavailable(
        `issueDeviceCredential: the broker could not be updated (${error.message}); no credential was issued` +
          (revoked.length > 0 ? ', and the current one is still active (the broker may already refuse it: issue again once the broker answers)' : ''),
        'equipmentId',
      );
    }
    for (const id of revoked) this.r.credentials.forget(id);
    this.base.log.info({ equipmentId, credentialId: credential.id, revoked }, 'device credential issued');
    return { credential, secret: secretOf(fresh.token, equipmentId, deviceTopics(device.collectivityId, equipmentId)) };
  }

  async revokeDeviceCredential(equipmentId: string): Promise<DeviceCredentialRow> {
    await this.managedDevice(equipmentId);
    const actor = this.viewer.sub!;
    const broker: { error: BrokerUpdateError | null } = { error: null };
    const credential = await this.transaction(async (client) => {
      await lockBrokerAccount(client, equipmentId);
      const { rows } = await client.query<DeviceCredentialRow>(
        `UPDATE device_credentials SET revoked_at = now(), revoked_by = $2 WHERE equipment_id = $1 AND revoked_at IS NULL RETURNING ${DEVICE_COLUMNS}`,
        [equipmentId, actor],
      );
      // Already revoked: the latest one, and the broker's account removed again (a retry after a broker failure).
      const row =
        rows[0] ??
        (await client.query<DeviceCredentialRow>(`SELECT ${DEVICE_COLUMNS} FROM device_credentials WHERE equipment_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1`, [equipmentId])).rows[0];
      if (!row) throw notFound(`equipment '${equipmentId}' has no device credential`, 'equipmentId');
      broker.error = await this.r.brokerAuth.revoke(equipmentId, deviceRole(equipmentId)).then(
        () => null,
        (error: unknown) => {
          if (error instanceof BrokerUpdateError) return error;
          throw error;
        },
      );
      return row;
    });
    this.r.credentials.forget(credential.id);
    this.base.log.info({ equipmentId, credentialId: credential.id, broker: broker.error ? 'pending' : 'updated' }, 'device credential revoked');
    if (broker.error) throw this.revokedButBrokerPending('revokeDeviceCredential', 'equipmentId', broker.error);
    return credential;
  }

  async issueIngestKey(collectivityId: string, label: string): Promise<{ key: IngestKeyRow; secret: IssuedSecretValue }> {
    this.requireKeyManager(collectivityId);
    const text = label.trim();
    if (text.length === 0) throw badInput('label', 'must not be empty');
    if (text.length > MAX_LABEL) throw badInput('label', `must be at most ${MAX_LABEL} characters`);
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(text)) throw badInput('label', 'must not contain control characters');
    const fresh = newToken('ingest-key');
    let key: IngestKeyRow;
    try {
      key = await this.transaction(async (client) => {
        await lockBrokerAccount(client, fresh.id);
        const { rows } = await client.query<IngestKeyRow>(
          `INSERT INTO ingest_keys (id, collectivity_id, label, secret_hash, created_by) VALUES ($1, $2, $3, $4, $5) RETURNING ${KEY_COLUMNS}`,
          [fresh.id, collectivityId, text, fresh.hash, this.viewer.sub!],
        );
        await this.r.brokerAuth.grant(ingestKeyAccount(fresh.id, collectivityId, fresh.token));
        return rows[0];
      });
    } catch (error) {
      if (!(error instanceof BrokerUpdateError)) throw error;
      this.base.log.warn({ collectivityId, reason: error.message }, 'ingest key not issued: broker not updated');
      throw unavailable(`issueIngestKey: the broker could not be updated (${error.message}); no key was issued`, 'collectivityId');
    }
    this.base.log.info({ collectivityId, keyId: key.id }, 'ingest key issued');
    return { key, secret: secretOf(fresh.token, fresh.id, ingestKeyTopics(collectivityId)) };
  }

  async revokeIngestKey(id: string): Promise<IngestKeyRow> {
    this.requireSomeRole(KEY_MANAGERS);
    const found = isCredentialId('ingest-key', id) ? (await this.r.db.pool.query<IngestKeyRow>(`SELECT ${KEY_COLUMNS} FROM ingest_keys WHERE id = $1`, [id])).rows[0] : undefined;
    if (!found) throw notFound(`no ingest key with id '${id}'`, 'id');
    requireRoleIn(this.viewer, found.collectivityId, KEY_MANAGERS, 'id');
    const broker: { error: BrokerUpdateError | null } = { error: null };
    const key = await this.transaction(async (client) => {
      await lockBrokerAccount(client, id);
      const { rows } = await client.query<IngestKeyRow>(
        `UPDATE ingest_keys SET revoked_at = COALESCE(revoked_at, now()), revoked_by = COALESCE(revoked_by, $2) WHERE id = $1 RETURNING ${KEY_COLUMNS}`,
        [id, this.viewer.sub!],
      );
      broker.error = await this.r.brokerAuth.revoke(id, null).then(
        () => null,
        (error: unknown) => {
          if (error instanceof BrokerUpdateError) return error;
          throw error;
        },
      );
      return rows[0];
    });
    this.r.credentials.forget(id);
    this.base.log.info({ keyId: id, broker: broker.error ? 'pending' : 'updated' }, 'ingest key revoked');
    if (broker.error) throw this.revokedButBrokerPending('revokeIngestKey', 'id', broker.error);
    return key;
  }

  async ingestKeys(collectivityId: string): Promise<IngestKeyRow[]> {
    this.requireKeyManager(collectivityId);
    const { rows } = await this.r.db.pool.query<IngestKeyRow>(
      `SELECT ${KEY_COLUMNS} FROM ingest_keys WHERE collectivity_id = $1 ORDER BY created_at DESC, id DESC`,
      [collectivityId],
    );
    return rows;
  }

  // --- checks ------------------------------------------------------------------------------

  /** The asset, if the caller manages its collectivity: UNAUTHENTICATED, FORBIDDEN or NOT_FOUND otherwise. */
  private async managedDevice(equipmentId: string): Promise<DeviceInfo> {
    this.requireSomeRole(DEVICE_MANAGERS);
    const device = (await this.r.directory.lookup([equipmentId])).get(equipmentId);
    if (!device) throw notFound(`no equipment with id '${equipmentId}'`, 'equipmentId');
    requireRoleIn(this.viewer, device.collectivityId, DEVICE_MANAGERS, 'equipmentId');
    return device;
  }

  private requireKeyManager(collectivityId: string): void {
    this.requireSomeRole(KEY_MANAGERS);
    if (!(COLLECTIVITY_IDS as readonly string[]).includes(collectivityId)) {
      throw notFound(`no collectivity '${collectivityId}' (known: ${COLLECTIVITY_IDS.join(', ')})`, 'collectivityId');
    }
    requireRoleIn(this.viewer, collectivityId, KEY_MANAGERS, 'collectivityId');
  }

  /** Before anything is looked up: the public, and tokens without the role anywhere, learn nothing. */
  private requireSomeRole(roles: Role[]): void {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: needs role ${roles.join(' or ')}`);
    if (!roles.some((role) => this.viewer.roles.includes(role))) throw forbidden(`needs role ${roles.join(' or ')}`);
  }

  private revokedButBrokerPending(field: string, argument: string, error: BrokerUpdateError): GraphQLError {
    return unavailable(
      `${field}: revoked (HTTP ingest refuses it from now on), but the broker could not be updated (${error.message}): ` +
        'retry to disconnect it from the broker now; broker-auth also removes it when it next connects',
      argument,
    );
  }

  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.r.db.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }
}

/** Who a decommissioning revokes the credential on behalf of (`revoked_by`). */
export const DECOMMISSIONED_BY = 'equipment.decommissioned';

/**
 * A decommissioned asset's device credential stops working: revoked in the database (HTTP ingest
 * refuses it once the authentication cache forgets it, within its TTL) and its broker account
 * removed, which disconnects the device. Applied by every telemetry instance's directory on the
 * asset's `equipment.changed` event: the second finds nothing to revoke. When the broker does not
 * answer, the revocation still commits and broker-auth's reconciliation removes the account.
 * Returns the ids of the credentials revoked now.
 */
export async function revokeDecommissionedCredential(r: TelemetryResources, equipmentId: string): Promise<string[]> {
  const revoked = await inTransaction(r.db.pool, async (client) => {
    await lockBrokerAccount(client, equipmentId);
    const { rows } = await client.query<{ id: string }>(
      'UPDATE device_credentials SET revoked_at = now(), revoked_by = $2 WHERE equipment_id = $1 AND revoked_at IS NULL RETURNING id',
      [equipmentId, DECOMMISSIONED_BY],
    );
    if (rows.length > 0) {
      await r.brokerAuth.revoke(equipmentId, deviceRole(equipmentId)).catch((error: unknown) => {
        if (!(error instanceof BrokerUpdateError)) throw error;
        r.log.warn({ equipmentId, reason: error.message }, 'decommissioned device: broker account not removed yet (the reconciliation will)');
      });
    }
    return rows.map((row) => row.id);
  });
  for (const id of revoked) r.credentials.forget(id);
  if (revoked.length > 0) r.log.info({ equipmentId, revoked }, 'device credential revoked: the asset is decommissioned');
  return revoked;
}
