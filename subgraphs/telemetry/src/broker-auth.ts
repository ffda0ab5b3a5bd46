/**
 * The broker's side of device credentials: Mosquitto 2's dynamic-security plugin, administered
 * at run time over MQTT (`$CONTROL/dynamic-security/v1`) with the hub's service account
 * (MQTT_USERNAME / MQTT_PASSWORD, the plugin's admin). Chosen over a generated password/ACL file
 * because a change applies at once without reloading the broker or sharing a file between the
 * hub's containers and the broker's, and because deleting a client (or changing its password)
 * disconnects its connections at once, so a revocation or a rotation takes effect on MQTT too.
 *
 * What the broker holds, per account:
 * - a device: client `<equipmentId>` (password: its token) with a role of its own,
 *   `connecte-device-<equipmentId>`: publish `connecte/<c>/<id>/up` and `…/ack`, subscribe to
 *   (exactly) and read `connecte/<c>/<id>/down`. Mosquitto 2.0's plugin has no `%u` substitution in
 *   ACLs, hence one role per device.
 * - an ingest key: client `<keyId>` with its collectivity's role `connecte-ingest-<c>`: publish
 *   `connecte/<c>/+/up` and `…/+/ack`, subscribe to and read `connecte/<c>/+/down`.
 * - the hub: role `connecte-hub` on the service account: shared subscriptions to the uplinks and
 *   acknowledgements of every collectivity, reading `connecte/#`, publishing downlinks.
 * Nothing else is allowed by default (the plugin's default ACL access, with reading turned off too).
 *
 * The database is the source of truth: the credential service changes the broker inside its
 * transaction, and this worker reconciles on every connection (and every few minutes) what it
 * can: it removes from the broker every account whose credential is not active in the database.
 * It cannot restore a password (only hashes are stored), so an active credential the broker does
 * not know (issued while the broker was anonymous, or its state lost) is reported, to reissue.
 *
 * The machine's development broker has no plugin and lets anyone in: then nothing answers on the
 * control topic, and the worker says so (`anonymous broker: …`) while HTTP credentials still work.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type pg from 'pg';
import { COLLECTIVITY_IDS } from '@connecte/shared/auth';
import type { Config } from '@connecte/shared/config';
import { ackTopic, downlinkTopic, uplinkTopic } from '@connecte/shared/senml';
import type { Worker, WorkerStatus } from '@connecte/shared/workers';
import type { TelemetryResources } from './resources.js';

export const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
const RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;
/** The role the hub's service account holds (besides the plugin's `admin`). */
export const HUB_ROLE = 'connecte-hub';
const DEVICE_ROLE_PREFIX = 'connecte-device-';
const INGEST_ROLE_PREFIX = 'connecte-ingest-';
export const deviceRole = (equipmentId: string) => `${DEVICE_ROLE_PREFIX}${equipmentId}`;
export const ingestRole = (collectivityId: string) => `${INGEST_ROLE_PREFIX}${collectivityId}`;

export const ANONYMOUS_STATE = 'anonymous broker: devices not authenticated by the broker';

/** A command's answer: the broker answers at once; longer means it is not answering. */
const COMMAND_TIMEOUT_MS = 5_000;
/** How long a broker that has the plugin takes to answer the first command: it answers at once. */
const PROBE_TIMEOUT_MS = 2_000;
/** Time allowed to connect and settle at start (the workers' start timeout is 10 s). */
const START_DEADLINE_MS = 9_000;
const RECONCILE_EVERY_MS = 10 * 60_000;

/** The MQTT account the ingestor (mqtt-ingest.ts) connects with: the hub's service account, when configured. */
export function ingestorCredentials(config: Pick<Config, 'MQTT_USERNAME' | 'MQTT_PASSWORD'>): { username?: string; password?: string } {
  return config.MQTT_USERNAME && config.MQTT_PASSWORD ? { username: config.MQTT_USERNAME, password: config.MQTT_PASSWORD } : {};
}

/** What an account may publish and subscribe to (MQTT filter syntax), as `IssuedSecret` shows it. */
export interface TopicGrant {
  publish: string[];
  subscribe: string[];
}

export const deviceTopics = (collectivityId: string, equipmentId: string): TopicGrant => ({
  publish: [uplinkTopic(collectivityId, equipmentId), ackTopic(collectivityId, equipmentId)],
  subscribe: [downlinkTopic(collectivityId, equipmentId)],
});

export const ingestKeyTopics = (collectivityId: string): TopicGrant => ({
  publish: [uplinkTopic(collectivityId, '+'), ackTopic(collectivityId, '+')],
  subscribe: [downlinkTopic(collectivityId, '+')],
});

type AclType = 'publishClientSend' | 'publishClientReceive' | 'subscribeLiteral' | 'subscribePattern';
interface Acl {
  acltype: AclType;
  topic: string;
  allow: boolean;
}
const allow = (acltype: AclType, topic: string): Acl => ({ acltype, topic, allow: true });

/** A device subscribes to its own downlink literally: `subscribeLiteral` refuses any filter with a wildcard. */
function deviceAcls(collectivityId: string, equipmentId: string): Acl[] {
  const { publish, subscribe } = deviceTopics(collectivityId, equipmentId);
  return [
    ...publish.map((topic) => allow('publishClientSend', topic)),
    ...subscribe.map((topic) => allow('subscribeLiteral', topic)),
    ...subscribe.map((topic) => allow('publishClientReceive', topic)),
  ];
}

function ingestAcls(collectivityId: string): Acl[] {
  const { publish, subscribe } = ingestKeyTopics(collectivityId);
  return [
    ...publish.map((topic) => allow('publishClientSend', topic)),
    ...subscribe.map((topic) => allow('subscribePattern', topic)),
    ...subscribe.map((topic) => allow('publishClientReceive', topic)),
  ];
}

/**
 * The hub's own needs. The plugin checks a subscription against its whole filter, `$share/…`
 * included, and `#` never matches a `$` topic: the shared subscriptions are granted as such.
 */
const HUB_ACLS: Acl[] = [
  allow('subscribePattern', '$share/+/connecte/+/+/up'),
  allow('subscribePattern', '$share/+/connecte/+/+/ack'),
  allow('subscribePattern', 'connecte/#'),
  allow('publishClientReceive', 'connecte/#'),
  allow('publishClientSend', 'connecte/+/+/down'),
];

/** A broker account to create (or replace): user name, password, and its role. */
export interface BrokerAccount {
  username: string;
  password: string;
  /** A device's own role (replaced with the account), or its collectivity's ingest role (shared, kept). */
  role: { name: string; acls: Acl[]; shared: boolean };
}

export const deviceAccount = (equipmentId: string, collectivityId: string, password: string): BrokerAccount => ({
  username: equipmentId,
  password,
  role: { name: deviceRole(equipmentId), acls: deviceAcls(collectivityId, equipmentId), shared: false },
});

export const ingestKeyAccount = (keyId: string, collectivityId: string, password: string): BrokerAccount => ({
  username: keyId,
  password,
  role: { name: ingestRole(collectivityId), acls: ingestAcls(collectivityId), shared: true },
});

/** The broker could not be updated: the mutation that needed it fails with this reason. */
export class BrokerUpdateError extends Error {
  override name = 'BrokerUpdateError';
}

/**
 * Serialises changes to one broker account across the hub's instances: the credential service
 * holds it from its database change to its commit, broker update included, and the reconciler
 * takes it before removing an account, so it never removes one whose credential is being issued.
 */
export async function lockBrokerAccount(client: pg.ClientBase, username: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`connecte.broker-account:${username}`]);
}

interface Command {
  command: string;
  [key: string]: unknown;
}
interface CommandResponse {
  command: string;
  error?: string;
  data?: unknown;
  correlationData?: string;
}
interface ListedClient {
  username: string;
  roles?: { rolename: string }[];
}

type Mode =
  | { kind: 'connecting' }
  | { kind: 'dynsec'; unknownToBroker: number }
  | { kind: 'anonymous' }
  | { kind: 'disconnected' }
  | { kind: 'failed'; reason: string }
  | { kind: 'stopped' };

/** Errors an idempotent step may meet and ignore: what it removes is gone, what it creates is there. */
const HARMLESS = new Set(['Client not found', 'Role not found', 'Role already exists']);

export class BrokerAuth {
  private client: MqttClient | null = null;
  private mode: Mode = { kind: 'connecting' };
  private readonly pending = new Map<string, { resolve: (response: CommandResponse) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();
  /** One settling (probe, hub access, reconciliation) at a time, in connection order. */
  private settling: Promise<void> = Promise.resolve();
  private settled: (() => void) | null = null;
  /** While starting: a refusal that retrying will not cure (not the plugin's admin). */
  private unfit: ((error: Error) => void) | null = null;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private connections = 0;

  constructor(private readonly r: TelemetryResources) {}

  /** Whether the broker authenticates devices (it has the dynamic-security plugin and answers). */
  get enforcing(): boolean {
    return this.mode.kind === 'dynsec';
  }

  worker(): Worker {
    return {
      name: 'broker-auth',
      start: () => this.start(),
      stop: () => this.stop(),
      status: () => this.status(),
    };
  }

  status(): WorkerStatus {
    switch (this.mode.kind) {
      case 'dynsec':
        return {
          ready: true,
          state:
            this.mode.unknownToBroker > 0
              ? `connected; ${this.mode.unknownToBroker} active credential(s) unknown to the broker: reissue them`
              : 'connected',
        };
      case 'anonymous':
        return { ready: true, state: ANONYMOUS_STATE };
      case 'failed':
        return { ready: false, state: this.mode.reason };
      default:
        return { ready: false, state: this.mode.kind };
    }
  }

  /**
   * Creates (or replaces) an account: any previous account of that user name is deleted first,
   * which disconnects its connections, so a rotated credential stops working at once. On an
   * anonymous broker there is nothing to do. Throws BrokerUpdateError when the broker is not
   * reachable or refuses.
   */
  async grant(account: BrokerAccount): Promise<void> {
    if (this.skip()) return;
    const commands: Command[] = [{ command: 'deleteClient', username: account.username }];
    if (account.role.shared) {
      commands.push({ command: 'createRole', rolename: account.role.name, acls: account.role.acls });
    } else {
      commands.push({ command: 'deleteRole', rolename: account.role.name }, { command: 'createRole', rolename: account.role.name, acls: account.role.acls });
    }
    commands.push({
      command: 'createClient',
      username: account.username,
      password: account.password,
      textname: account.role.shared ? 'connecte ingest key' : 'connecte device',
      roles: [{ rolename: account.role.name }],
    });
    await this.run(commands, `cannot give ${account.username} its broker account`);
  }

  /** Deletes an account (and a device's own role): its connections are closed at once. */
  async revoke(username: string, ownRole: string | null): Promise<void> {
    if (this.skip()) return;
    const commands: Command[] = [{ command: 'deleteClient', username }];
    if (ownRole) commands.push({ command: 'deleteRole', rolename: ownRole });
    await this.run(commands, `cannot remove ${username}'s broker account`);
  }

  /** True on an anonymous broker (nothing to update); throws when the broker cannot be updated now. */
  private skip(): boolean {
    if (this.mode.kind === 'anonymous') return true;
    if (this.mode.kind === 'dynsec' && this.client?.connected) return false;
    throw new BrokerUpdateError(`the broker is not reachable (broker-auth: ${this.status().state})`);
  }

  private async run(commands: Command[], what: string): Promise<void> {
    let responses: CommandResponse[];
    try {
      responses = await this.send(commands);
    } catch (error) {
      throw new BrokerUpdateError(`${what}: ${(error as Error).message}`);
    }
    const failed = responses.filter((response) => response.error && !HARMLESS.has(response.error));
    if (failed.length > 0) throw new BrokerUpdateError(`${what}: ${failed.map((f) => `${f.command}: ${f.error}`).join('; ')}`);
  }

  // --- connection -------------------------------------------------------------------------

  private async start(): Promise<void> {
    const { config, log } = this.r;
    const credentials = ingestorCredentials(config);
    const options: IClientOptions = {
      clientId: `connecte-broker-auth-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`,
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: 1_000,
      connectTimeout: 5_000,
      ...credentials,
    };
    this.mode = { kind: 'connecting' };
    const client = mqtt.connect(config.MQTT_URL, options);
    this.client = client;
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('connect', () => {
      this.connections++;
      this.settling = this.settling.then(() => this.settle(client)).catch(() => {});
    });
    client.on('close', () => {
      this.failPending(new Error('the connection to the broker closed'));
      if (this.mode.kind === 'dynsec' || this.mode.kind === 'anonymous' || this.mode.kind === 'connecting') this.mode = { kind: 'disconnected' };
    });
    client.on('error', (error) => {
      const refused = refusal(error);
      if (refused) this.mode = { kind: 'failed', reason: refused };
      log.warn({ worker: 'broker-auth', err: error.message }, 'broker connection error');
    });

    const settledOnce = new Promise<void>((resolve) => (this.settled = resolve));
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, START_DEADLINE_MS, 'timeout').unref());
    const failure = new Promise<Error>((resolve) => {
      const onError = (error: Error) => {
        // A refused account is a configuration error: say so instead of retrying forever.
        if (refusal(error)) resolve(new Error(refusal(error)!));
      };
      this.unfit = resolve;
      client.on('error', onError);
      settledOnce.then(() => client.off('error', onError));
    });
    const outcome = await Promise.race([settledOnce.then(() => 'ok' as const), deadline, failure]);
    this.unfit = null;
    if (outcome === 'ok') {
      this.reconcileTimer = setInterval(() => {
        if (this.mode.kind !== 'dynsec') return;
        this.settling = this.settling.then(async () => void (await this.reconcile())).catch((error) => log.warn({ worker: 'broker-auth', err: (error as Error).message }, 'broker reconciliation failed'));
      }, RECONCILE_EVERY_MS);
      this.reconcileTimer.unref();
      return;
    }
    await this.stop();
    if (outcome === 'timeout') throw new Error(`could not connect to the broker at ${redacted(config.MQTT_URL)} and settle its accounts within ${START_DEADLINE_MS} ms (${this.lastState})`);
    throw outcome;
  }

  private lastState = 'no answer';

  private async stop(): Promise<void> {
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.reconcileTimer = null;
    const client = this.client;
    this.client = null;
    this.mode = { kind: 'stopped' };
    this.failPending(new Error('broker-auth stopped'));
    await this.settling.catch(() => {});
    await client?.endAsync(true);
  }

  /**
   * After each connection: is this a broker with the plugin (it answers a command), and may the
   * service account administer it? Then the hub's role and the collectivities' ingest roles, and
   * the removal of accounts whose credential is no longer active.
   */
  private async settle(client: MqttClient): Promise<void> {
    const { log } = this.r;
    if (client !== this.client || !client.connected) return;
    const notAdmin = (what: string) => {
      // The broker refused a $CONTROL topic: this account is not the plugin's admin; retrying will not help.
      const reason = `MQTT_USERNAME '${this.r.config.MQTT_USERNAME ?? ''}' may not administer the broker's dynamic-security plugin (${what} is not authorised)`;
      this.mode = { kind: 'failed', reason };
      this.lastState = reason;
      log.error({ worker: 'broker-auth' }, reason);
      this.unfit?.(new Error(reason));
    };
    try {
      try {
        await client.subscribeAsync(RESPONSE_TOPIC, { qos: 1 });
      } catch (error) {
        if (/Not authorized/i.test((error as Error).message)) return notAdmin(`subscribing to ${RESPONSE_TOPIC}`);
        throw error;
      }
      let probe: CommandResponse[];
      try {
        probe = await this.send([{ command: 'getDefaultACLAccess' }, { command: 'getClient', username: this.r.config.MQTT_USERNAME ?? '' }, { command: 'getRole', rolename: HUB_ROLE }, { command: 'listRoles' }], PROBE_TIMEOUT_MS);
      } catch (error) {
        if ((error as Error).name === 'CommandTimeout') {
          // Nothing answers on the control topic: no dynamic-security plugin (the development broker).
          this.mode = { kind: 'anonymous' };
          this.lastState = ANONYMOUS_STATE;
          log.warn({ worker: 'broker-auth' }, `${ANONYMOUS_STATE}: the broker has no dynamic-security plugin; device credentials work for HTTP ingest only`);
          this.settled?.();
          return;
        }
        // MQTT 5: the broker refused the publish to $CONTROL.
        if ((error as { code?: number }).code === 135) return notAdmin(`publishing to ${CONTROL_TOPIC}`);
        throw error;
      }
      const [defaults, self, hubRole, roles] = probe;
      await this.ensureHubAccess(defaults, self, hubRole, roles);
      const unknownToBroker = await this.reconcile();
      this.mode = { kind: 'dynsec', unknownToBroker };
      this.lastState = 'connected';
      log.info({ worker: 'broker-auth', connections: this.connections }, 'broker authenticates devices (dynamic-security plugin)');
      this.settled?.();
    } catch (error) {
      // A connection lost midway (the broker drops the service account's connections when its
      // roles change): the next connection settles again.
      this.lastState = (error as Error).message;
      const level = (error as { expected?: boolean }).expected ? 'info' : 'warn';
      log[level]({ worker: 'broker-auth', err: (error as Error).message }, 'broker accounts not settled yet; retrying on the next connection');
    }
  }

  /** Creates what is missing only: changing a role's ACLs or a client's roles disconnects its clients. */
  private async ensureHubAccess(defaults: CommandResponse, self: CommandResponse, hubRole: CommandResponse, roles: CommandResponse): Promise<void> {
    const commands: Command[] = [];
    // Reading is off by default too: an account reads only what a role of its own grants.
    const access = ((defaults.data as { acls?: { acltype: string; allow: boolean }[] } | undefined)?.acls ?? []);
    const wanted: Record<string, boolean> = { publishClientSend: false, publishClientReceive: false, subscribe: false };
    const changes = Object.entries(wanted)
      .filter(([acltype, value]) => access.find((acl) => acl.acltype === acltype)?.allow !== value)
      .map(([acltype, value]) => ({ acltype, allow: value }));
    if (changes.length > 0) commands.push({ command: 'setDefaultACLAccess', acls: changes });

    const existingRoles = new Set(((roles.data as { roles?: string[] } | undefined)?.roles ?? []));
    for (const collectivityId of COLLECTIVITY_IDS) {
      if (!existingRoles.has(ingestRole(collectivityId))) commands.push({ command: 'createRole', rolename: ingestRole(collectivityId), acls: ingestAcls(collectivityId) });
    }
    if (hubRole.error === 'Role not found') {
      commands.push({ command: 'createRole', rolename: HUB_ROLE, textname: 'connecte hub service account', acls: HUB_ACLS });
    } else {
      const have = ((hubRole.data as { role?: { acls?: Acl[] } } | undefined)?.role?.acls ?? []);
      for (const acl of HUB_ACLS) {
        if (!have.some((h) => h.acltype === acl.acltype && h.topic === acl.topic && h.allow)) commands.push({ command: 'addRoleACL', rolename: HUB_ROLE, ...acl });
      }
    }
    if (commands.length > 0) await this.run(commands, 'cannot set up the hub’s roles on the broker');

    if (self.error) throw new Error(`the broker has no client '${this.r.config.MQTT_USERNAME ?? ''}': ${self.error}`);
    const held = ((self.data as { client?: { roles?: { rolename: string }[] } } | undefined)?.client?.roles ?? []).map((role) => role.rolename);
    if (!held.includes(HUB_ROLE)) {
      // The broker disconnects the account to apply its new role, this connection included: the
      // next connection finds it done.
      this.r.log.info({ worker: 'broker-auth' }, `giving the service account the ${HUB_ROLE} role (its connections are dropped once)`);
      await this.send([{ command: 'addClientRole', username: this.r.config.MQTT_USERNAME, rolename: HUB_ROLE }]).catch(() => {});
      throw Object.assign(new Error(`the service account was given the ${HUB_ROLE} role; reconnecting`), { expected: true });
    }
  }

  /**
   * Removes from the broker every device or ingest-key account (and device role) whose credential
   * is not active in the database; returns how many active credentials the broker does not know.
   */
  async reconcile(): Promise<number> {
    const [listedClients, listedRoles] = await this.send([{ command: 'listClients', verbose: true }, { command: 'listRoles' }]);
    const clients = ((listedClients.data as { clients?: ListedClient[] } | undefined)?.clients ?? []).filter((client) => client.username !== this.r.config.MQTT_USERNAME);
    const ours = clients.filter((client) => (client.roles ?? []).some((role) => role.rolename.startsWith(DEVICE_ROLE_PREFIX) || role.rolename.startsWith(INGEST_ROLE_PREFIX)));
    const deviceRoles = ((listedRoles.data as { roles?: string[] } | undefined)?.roles ?? []).filter((name) => name.startsWith(DEVICE_ROLE_PREFIX));
    const known = new Set(clients.map((client) => client.username));

    const { rows: active } = await this.r.db.pool.query<{ username: string }>(
      `SELECT equipment_id AS username FROM device_credentials WHERE revoked_at IS NULL
       UNION ALL SELECT id FROM ingest_keys WHERE revoked_at IS NULL`,
    );
    const activeNames = new Set(active.map((row) => row.username));
    const stale = new Set(ours.filter((client) => !activeNames.has(client.username)).map((client) => client.username));
    for (const role of deviceRoles) {
      const equipmentId = role.slice(DEVICE_ROLE_PREFIX.length);
      if (!activeNames.has(equipmentId)) stale.add(equipmentId);
    }
    for (const username of stale) await this.removeIfInactive(username);
    if (stale.size > 0) this.r.log.info({ worker: 'broker-auth', removed: stale.size }, 'removed broker accounts whose credential is no longer active');

    const unknown = active.filter((row) => !known.has(row.username)).length;
    if (unknown > 0) {
      this.r.log.warn({ worker: 'broker-auth', count: unknown }, 'active credentials unknown to the broker (issued while it was anonymous, or its state was lost): reissue them');
    }
    if (this.mode.kind === 'dynsec') this.mode = { kind: 'dynsec', unknownToBroker: unknown };
    return unknown;
  }

  /** Under the account's lock, so that a credential being issued right now is not removed. */
  private async removeIfInactive(username: string): Promise<void> {
    const client = await this.r.db.pool.connect();
    try {
      await client.query('BEGIN');
      await lockBrokerAccount(client, username);
      const { rowCount } = await client.query(
        `SELECT 1 FROM device_credentials WHERE equipment_id = $1 AND revoked_at IS NULL
         UNION ALL SELECT 1 FROM ingest_keys WHERE id = $1 AND revoked_at IS NULL`,
        [username],
      );
      if (!rowCount) await this.run([{ command: 'deleteClient', username }, { command: 'deleteRole', rolename: deviceRole(username) }], `cannot remove ${username}'s broker account`);
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  // --- the control API ---------------------------------------------------------------------

  /** Sends commands in one message (the plugin runs them in order) and resolves with their answers, in order. */
  private async send(commands: Command[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<CommandResponse[]> {
    const client = this.client;
    if (!client?.connected) throw new Error('not connected to the broker');
    const batch = randomBytes(6).toString('hex');
    const tagged = commands.map((command, index) => ({ ...command, correlationData: `${batch}-${index}` }));
    const answers = tagged.map(
      (command) =>
        new Promise<CommandResponse>((resolve, reject) => {
          const timer = setTimeout(() => {
            this.pending.delete(command.correlationData);
            reject(Object.assign(new Error(`the broker did not answer ${command.command} within ${timeoutMs} ms`), { name: 'CommandTimeout' }));
          }, timeoutMs);
          this.pending.set(command.correlationData, { resolve, reject, timer });
        }),
    );
    // Every answer settles (or times out) even when another fails: no rejection is left unheard.
    const settled = Promise.allSettled(answers);
    try {
      await client.publishAsync(CONTROL_TOPIC, JSON.stringify({ commands: tagged }), { qos: 1 });
    } catch (error) {
      for (const command of tagged) this.settle1(command.correlationData, error as Error);
      await settled;
      throw error;
    }
    const outcomes = await settled;
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return outcomes.map((outcome) => (outcome as PromiseFulfilledResult<CommandResponse>).value);
  }

  private settle1(correlationData: string, error: Error): void {
    const waiting = this.pending.get(correlationData);
    if (!waiting) return;
    clearTimeout(waiting.timer);
    this.pending.delete(correlationData);
    waiting.reject(error);
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic !== RESPONSE_TOPIC) return;
    let responses: CommandResponse[];
    try {
      responses = (JSON.parse(payload.toString('utf8')) as { responses?: CommandResponse[] }).responses ?? [];
    } catch {
      return;
    }
    for (const response of responses) {
      const waiting = response.correlationData ? this.pending.get(response.correlationData) : undefined;
      if (!waiting) continue;
      clearTimeout(waiting.timer);
      this.pending.delete(response.correlationData!);
      waiting.resolve(response);
    }
  }

  private failPending(error: Error): void {
    for (const correlationData of [...this.pending.keys()]) this.settle1(correlationData, error);
  }
}

/** A CONNACK refusal (bad user name or password, not authorised), as a sentence for /readyz and start errors. */
function refusal(error: Error & { code?: number }): string | null {
  if (error.code === 4 || error.code === 5 || error.code === 134 || error.code === 135) {
    return `the broker refused the service account (${error.message}): check MQTT_USERNAME and MQTT_PASSWORD${error.code === 5 || error.code === 135 ? ', or set them if the broker refuses anonymous clients' : ''}`;
  }
  return null;
}

/** A URL for a message, without any password it carries. */
function redacted(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}
