/**
 * The `mqtt-ingest` worker: devices' uplinks (`connecte/<collectivityId>/<equipmentId>/up`, SenML)
 * into the ingestor, acknowledged only once committed (mqtt-subscriber.ts), with a persistent
 * session of a stable client id and a shared subscription so that several instances split the
 * load (`$share/<MQTT_INGEST_GROUP>/connecte/+/+/up`).
 *
 * Every message goes to the ingestor, whatever its payload: what cannot be stored (not SenML,
 * a unit that does not match, an unknown equipment, a topic pairing an equipment with a
 * collectivity that does not own it...) is written as a dead letter in the same transaction,
 * and the message is acknowledged like the others once that commits. Only a database failure
 * holds acknowledgements back (the batch is retried).
 *
 * A batch the database refuses for what it holds rather than for being unavailable (an error
 * whose SQLSTATE is not of a passing kind: connection, resources, operator intervention,
 * rollback for a conflict) would be retried for ever, and since acknowledgements go in order it
 * would hold every later message back too. Such a batch is split in halves, stored half by half;
 * a single message the database still refuses goes to the dead letters with the database's
 * reason, so that the stream moves on and an operator sees it.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '@connecte/shared/config';
import type { Logger } from '@connecte/shared/log';
import type { Worker, WorkerStatus } from '@connecte/shared/workers';
import { ingestorCredentials } from './broker-auth.js';
import { deadLetterText } from './ingest.js';
import { MqttSubscriber, SESSION_NEVER_EXPIRES, type ReceivedMessage } from './mqtt-subscriber.js';
import type { TelemetryResources } from './resources.js';
import type { IngestMessage, Principal } from './types.js';

/** Where devices publish their uplinks (docs/devices.md). */
export const UPLINK_FILTER = 'connecte/+/+/up';
/** A session of a test instance that disconnected goes after this (see `ingestSettings`). */
const TEST_SESSION_EXPIRY_SECONDS = 60;

export interface IngestSettings {
  clientId: string;
  group: string;
  /** `$share/<group>/connecte/+/+/up`. */
  filter: string;
  sessionExpirySeconds: number;
}

/**
 * Client id, group and session expiry. By default the client id comes from the host name, so
 * that a restarted instance finds its session, and the group is `telemetry`. Under NODE_ENV=test
 * without MQTT_CLIENT_ID, an instance gets an id and a group of its own and a session that
 * expires soon after it disconnects: test services on the machine's broker, in parallel files,
 * never split each other's messages nor leave a session behind to queue for.
 */
export function ingestSettings(config: Config): IngestSettings {
  const isolated = config.NODE_ENV === 'test' && !config.MQTT_CLIENT_ID;
  const clientId = config.MQTT_CLIENT_ID ?? (isolated ? `telemetry-${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}` : `telemetry-${hostname()}`);
  const group = config.MQTT_INGEST_GROUP ?? (isolated ? clientId.replace(/[/+#\s]/g, '_') : 'telemetry');
  return {
    clientId,
    group,
    filter: `$share/${group}/${UPLINK_FILTER}`,
    sessionExpirySeconds: isolated ? TEST_SESSION_EXPIRY_SECONDS : SESSION_NEVER_EXPIRES,
  };
}

/**
 * Who sent a message, from its topic: `connecte/<collectivityId>/<equipmentId>/up`. The broker
 * checked the publisher against the topic (its ACL); the ingestor checks the topic against the
 * directory and the records against the topic. A topic of another shape (an empty level, which
 * `+` matches) keeps its levels as they are, empty or not: no equipment and no collectivity match
 * them, so the ingestor refuses the message and records it as a dead letter with its topic.
 */
export function principalOfTopic(topic: string): Extract<Principal, { kind: 'topic' }> {
  const levels = topic.split('/');
  return { kind: 'topic', collectivityId: levels[1] ?? '', equipmentId: levels.length === 4 && levels[3] === 'up' ? (levels[2] ?? '') : '' };
}

export const toIngestMessage = (message: ReceivedMessage): IngestMessage => ({
  transport: 'mqtt',
  topic: message.topic,
  payload: message.payload,
  principal: principalOfTopic(message.topic),
});

/** SQLSTATE classes of failures that pass: connection, resources, operator intervention, system, rollback for a conflict. */
const PASSING_CLASSES = new Set(['08', '40', '53', '57', '58']);
/** A statement cancelled for taking too long: smaller batches may pass, a single message is retried. */
const QUERY_CANCELED = '57014';

const sqlstateOf = (error: unknown): string | null => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
};

/** Whether `error` comes from the database being unavailable (retry as it is) rather than from what the batch holds. */
export function isPassingFailure(error: unknown): boolean {
  const code = sqlstateOf(error);
  // No SQLSTATE: the socket, the pool, a timeout of the client.
  if (code === null) return true;
  return PASSING_CLASSES.has(code.slice(0, 2)) || code === '55P03' || code === '55006';
}

/**
 * Stores `messages` (see the header): the whole batch; when the database refuses it for what it
 * holds, each half in turn; a single message it still refuses, as a dead letter. Throws when the
 * database is unavailable: the subscriber retries the whole batch (halves already stored come
 * again as duplicates, absorbed).
 */
export async function storeMessages(r: TelemetryResources, messages: ReceivedMessage[], log: Pick<Logger, 'error'>): Promise<void> {
  try {
    await r.ingestor.ingest(messages.map(toIngestMessage));
    return;
  } catch (error) {
    if (sqlstateOf(error) === QUERY_CANCELED) {
      if (messages.length === 1) throw error;
    } else if (isPassingFailure(error)) {
      throw error;
    } else if (messages.length === 1) {
      await refuse(r, messages[0], error as Error, log);
      return;
    }
  }
  const half = Math.ceil(messages.length / 2);
  await storeMessages(r, messages.slice(0, half), log);
  await storeMessages(r, messages.slice(half), log);
}

async function refuse(r: TelemetryResources, message: ReceivedMessage, error: Error & { code?: unknown }, log: Pick<Logger, 'error'>): Promise<void> {
  const principal = principalOfTopic(message.topic);
  const reason = `the database refused to store it (${typeof error.code === 'string' ? `${error.code}: ` : ''}${error.message})`;
  log.error({ topic: message.topic, err: error.message, code: error.code }, 'mqtt: a message the database refuses goes to the dead letters');
  await r.db.pool.query(
    `INSERT INTO ingest_dead_letters (transport, topic, collectivity_id, equipment_id, payload, payload_bytes, reasons)
     VALUES ('mqtt', $1, $2, $3, $4, $5, $6::jsonb)`,
    [message.topic, principal.collectivityId || null, principal.equipmentId || null, deadLetterText(message.payload), message.payload.length, JSON.stringify([{ index: null, field: null, reason }])],
  );
}

export function mqttIngestWorker(r: TelemetryResources): Worker {
  let subscriber: MqttSubscriber | null = null;
  return {
    name: 'mqtt-ingest',
    async start() {
      const { config } = r;
      const settings = ingestSettings(config);
      const url = new URL(config.MQTT_URL);
      const credentials = ingestorCredentials(config);
      const log = r.log.child({ worker: 'mqtt-ingest' });
      subscriber = new MqttSubscriber({
        url: config.MQTT_URL,
        clientId: settings.clientId,
        username: credentials.username ?? (url.username ? decodeURIComponent(url.username) : undefined),
        password: credentials.password ?? (url.password ? decodeURIComponent(url.password) : undefined),
        filters: [settings.filter],
        sessionExpirySeconds: settings.sessionExpirySeconds,
        batchSize: config.MQTT_INGEST_BATCH_SIZE,
        batchDelayMs: config.MQTT_INGEST_BATCH_MS,
        concurrency: config.MQTT_INGEST_CONCURRENCY,
        log,
        // Rejects only when the database is unavailable: the subscriber retries and holds the acknowledgements.
        handle: (messages) => storeMessages(r, messages, log),
      });
      await subscriber.start();
    },
    async stop() {
      await subscriber?.stop();
    },
    status(): WorkerStatus {
      if (!subscriber?.connected) return { ready: false, state: 'disconnected' };
      const waiting = subscriber.unacknowledged;
      return { ready: true, state: waiting > 0 ? `${waiting} unacknowledged` : 'connected' };
    },
  };
}
