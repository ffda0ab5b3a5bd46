/**
 * A QoS 1 subscriber that acknowledges a message only once its batch is committed.
 *
 * Written on `mqtt-packet` rather than mqtt.js on purpose: mqtt.js handles incoming packets
 * strictly one at a time and sends a PUBACK when its message handler calls back, which also
 * gates the next packet, so "acknowledge after commit" would mean one message per commit.
 * Here PUBLISH packets are read as they come, gathered into batches (by size, or a few ms after
 * the first message), a few batches are committed at once, and each PUBACK is written once the
 * batch holding its message is committed, in the order the PUBLISHes were received.
 *
 * What makes it lose nothing:
 *  - MQTT 5, Clean Start off and a session that does not expire: while this client is away
 *    (its restart, a network cut, the broker's restart with persistence) the broker keeps its
 *    session, queues what arrives for it, and on reconnection resends every message it sent
 *    and did not see acknowledged (DUP set, same packet ids).
 *  - A message is acknowledged only after `handle` resolved for its batch. `handle` rejects
 *    only when nothing was committed (the database failed): the batch is retried with backoff
 *    and its acknowledgements are held meanwhile (the broker stops sending once Receive Maximum
 *    messages wait, so memory stays bounded).
 *  - When the connection drops, the unacknowledged messages are forgotten: the broker
 *    redelivers them to the session, and idempotent writes absorb the copies a commit that
 *    finished after the drop already stored.
 *
 * What it cannot make up for: Mosquitto 2.0 saves sessions and their queued messages across its
 * restart, but not shared subscriptions (`persist__subs_save` writes a node's plain subscribers
 * only). Until the subscriber has subscribed again, a device's publish reaches nobody, so it
 * reconnects every few ms for a while after losing the broker (FAST_RETRY_MS) to be back first.
 *
 * Receive Maximum (sent in CONNECT) is the broker's window of unacknowledged messages for this
 * client; Mosquitto applies it to MQTT 5 clients instead of its `max_inflight_messages`.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import mqttPacket, { type IConnackPacket, type IPublishPacket, type ISubackPacket, type Packet } from 'mqtt-packet';
import WebSocket, { createWebSocketStream } from 'ws';
import type { Logger } from '@connecte/shared/log';

/** One message as the broker delivered it. */
export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  /** The broker may have delivered it before (a redelivery after a reconnection). */
  dup: boolean;
}

export interface MqttSubscriberOptions {
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://` host and port. */
  url: string;
  /** Stable across restarts of the same instance: it names the broker's session. */
  clientId: string;
  username?: string;
  password?: string;
  /** Topic filters, each subscribed at QoS 1 (`$share/<group>/connecte/+/+/up`). */
  filters: readonly string[];
  /**
   * Stores a batch. Resolving means committed: the batch's messages are then acknowledged.
   * Rejecting means nothing was stored: the batch is retried (with backoff) and not acknowledged.
   */
  handle(messages: ReceivedMessage[]): Promise<void>;
  log: Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
  /** Messages per batch at most (default 500). */
  batchSize?: number;
  /** A batch that is not full goes this long after its first message (default 5 ms). */
  batchDelayMs?: number;
  /** Batches being committed at once (default 3). */
  concurrency?: number;
  /** The broker's window of unacknowledged messages (default batchSize × (concurrency + 1), at most 65,535). */
  receiveMaximum?: number;
  /** Default 30 s. */
  keepaliveSeconds?: number;
  /** How long the broker keeps the session once disconnected (default: it never expires). */
  sessionExpirySeconds?: number;
  /** Default 5 s. */
  connectTimeoutMs?: number;
  /** After 10 s of quick retries (at once for a refusal), the backoff between attempts: 100 ms doubling to this (default 5 s). */
  reconnectMaxMs?: number;
  /** Backoff between attempts of a failed batch: 100 ms doubling to this (default 5 s). */
  retryMaxMs?: number;
}

/** Counters since the subscriber was created. */
export interface SubscriberStats {
  /** PUBLISH packets received (QoS 0 and 1). */
  received: number;
  /** Of which with the DUP flag. */
  redelivered: number;
  /** PUBACKs written. */
  acknowledged: number;
  /** Batches committed. */
  batches: number;
  /** Failed attempts of a batch (each retried). */
  failures: number;
  /** Successful connections (CONNACK accepted). */
  connections: number;
}

/** The broker refused the connection (credentials, authorisation) or the subscription. */
export class BrokerRefusal extends Error {
  override name = 'BrokerRefusal';
}

/** Session expiry 0xFFFFFFFF: the session never expires (MQTT 5, 3.1.2.11.2). */
export const SESSION_NEVER_EXPIRES = 0xffff_ffff;
const MIN_BACKOFF_MS = 100;
/**
 * After losing its connection, the subscriber tries again this often for FAST_RETRY_WINDOW_MS
 * (a refused TCP connection costs nothing) before backing off: Mosquitto 2.0 does not persist
 * shared subscriptions (only the sessions and their queued messages), so after the broker's
 * restart, what devices publish before the ingestor has subscribed again reaches nobody. Being
 * back first, before devices with their usual reconnection delays of a second or more, is the
 * only defence there is on the ingestor's side.
 */
const FAST_RETRY_MS = 25;
const FAST_RETRY_WINDOW_MS = 10_000;
/** On stop, in-flight batches get this long (their retries included) before being abandoned unacknowledged. */
const STOP_BUDGET_MS = 3_500;
/** After DISCONNECT, the socket gets this long to close before it is destroyed. */
const CLOSE_WAIT_MS = 500;

/** MQTT 5 CONNACK and SUBACK reason codes (3.2.2.2, 3.9.3) a log line names. */
const REASONS: Record<number, string> = {
  0x80: 'unspecified error',
  0x81: 'malformed packet',
  0x82: 'protocol error',
  0x83: 'implementation specific error',
  0x84: 'unsupported protocol version',
  0x85: 'client identifier not valid',
  0x86: 'bad user name or password',
  0x87: 'not authorized',
  0x88: 'server unavailable',
  0x89: 'server busy',
  0x8a: 'banned',
  0x8c: 'bad authentication method',
  0x8e: 'session taken over (another client connected with the same client id)',
  0x8f: 'topic filter invalid',
  0x90: 'topic name invalid',
  0x93: 'receive maximum exceeded',
  0x95: 'packet too large',
  0x97: 'quota exceeded',
  0x9e: 'shared subscriptions not supported',
  0x9f: 'connection rate exceeded',
};
const reasonName = (code: number) => `${REASONS[code] ?? 'error'} (0x${code.toString(16)})`;
/** Refusals that retrying will not cure without an operator: they fail `start()`. */
const FATAL_CONNACK = new Set([0x84, 0x85, 0x86, 0x87, 0x8a, 0x8c]);

interface Connection {
  id: number;
  socket: Duplex;
  /** CONNACK accepted and SUBACK granted. */
  ready: boolean;
  closed: boolean;
  /** Received QoS 1 messages not yet acknowledged, in the order received. */
  ackQueue: Pending[];
  lastWriteAt: number;
  pingSentAt: number | null;
  subscribeId: number;
  /** Until CONNACK. */
  connectTimer: NodeJS.Timeout | null;
}

interface Pending {
  message: ReceivedMessage;
  connection: Connection;
  /** Packet id (QoS 1); 0 for QoS 0. */
  messageId: number;
  committed: boolean;
}

interface Batch {
  items: Pending[];
  /** The batch stopped taking messages (full, or its delay passed). */
  due: boolean;
}

const PROTOCOL = { protocolVersion: 5 } as const;

export class MqttSubscriber {
  private readonly options: Required<Omit<MqttSubscriberOptions, 'username' | 'password'>> & Pick<MqttSubscriberOptions, 'username' | 'password'>;
  private connection: Connection | null = null;
  private connectionCount = 0;
  /** The batch being filled, then batches waiting for a free slot, oldest first. */
  private open: Batch | null = null;
  private openTimer: NodeJS.Timeout | null = null;
  private readonly waiting: Batch[] = [];
  /** Batches being committed (or waiting to retry). */
  private readonly running = new Set<Promise<void>>();
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectDelay = MIN_BACKOFF_MS;
  /** Since when connecting fails (null while connected). */
  private failingSince: number | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private started: Promise<void> | null = null;
  private stopping = false;
  /** `stop()`'s outcome: once it is set, nothing more is started. */
  private stopped: Promise<void> | null = null;
  private halted = false;
  private stopDeadline = Infinity;
  /** Wakes retry waits early when stopping. */
  private readonly wakers = new Set<() => void>();
  /** `start()`'s first outcome. */
  private firstOutcome: { resolve(): void; reject(error: Error): void } | null = null;
  private paused = false;
  readonly stats: SubscriberStats = { received: 0, redelivered: 0, acknowledged: 0, batches: 0, failures: 0, connections: 0 };

  constructor(options: MqttSubscriberOptions) {
    const batchSize = options.batchSize ?? 500;
    const concurrency = options.concurrency ?? 3;
    this.options = {
      batchDelayMs: 5,
      keepaliveSeconds: 30,
      sessionExpirySeconds: SESSION_NEVER_EXPIRES,
      connectTimeoutMs: 5_000,
      reconnectMaxMs: 5_000,
      retryMaxMs: 5_000,
      ...options,
      batchSize,
      concurrency,
      receiveMaximum: Math.min(65_535, options.receiveMaximum ?? batchSize * (concurrency + 1)),
    };
    if (!(batchSize >= 1 && concurrency >= 1 && this.options.receiveMaximum >= 1)) {
      throw new Error('MqttSubscriber: batchSize, concurrency and receiveMaximum must be at least 1');
    }
  }

  /** Connected to the broker and subscribed. */
  get connected(): boolean {
    return this.connection?.ready === true;
  }

  /** QoS 1 messages received on the current connection and not yet acknowledged. */
  get unacknowledged(): number {
    return this.connection?.ackQueue.length ?? 0;
  }

  /**
   * Connects and subscribes. Resolves once subscribed, or once the first attempt failed for a
   * reason that may pass (the broker is down: it keeps trying in the background); rejects when
   * the broker refuses the credentials, the client id or the subscription.
   */
  start(): Promise<void> {
    this.started ??= new Promise<void>((resolve, reject) => {
      this.firstOutcome = { resolve, reject };
      this.connect();
    });
    return this.started;
  }

  /**
   * Stops reading, commits and acknowledges what was received (batches get a few seconds, their
   * retries included; what is left then stays unacknowledged for the broker to redeliver), then
   * disconnects, leaving the session on the broker for the next start.
   */
  stop(): Promise<void> {
    this.stopped ??= this.halt();
    return this.stopped;
  }

  private async halt(): Promise<void> {
    this.stopping = true;
    this.stopDeadline = Date.now() + STOP_BUDGET_MS;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.connection?.socket.pause();
    this.settleStart();
    // What was received is committed now rather than left for a redelivery.
    if (this.open) this.closeOpenBatch();
    for (const batch of this.waiting) batch.due = true;
    this.pump();
    for (const wake of this.wakers) wake();
    // A commit that outlasts the budget (a hung database) is abandoned, unacknowledged.
    let budgetTimer: NodeJS.Timeout | undefined;
    const budget = new Promise<'late'>((resolve) => (budgetTimer = setTimeout(() => resolve('late'), Math.max(0, this.stopDeadline - Date.now()))));
    while (this.running.size > 0 || this.waiting.length > 0) {
      this.pump();
      if ((await Promise.race([...this.running, budget])) === 'late') {
        this.options.log.warn({ batches: this.running.size }, 'mqtt: stopping with batches still being stored; the broker redelivers what was not acknowledged');
        break;
      }
    }
    clearTimeout(budgetTimer);
    this.halted = true;
    const connection = this.connection;
    if (connection && !connection.closed) {
      this.flushAcks(connection);
      // Normal disconnection: the session stays on the broker (its expiry was set in CONNECT).
      this.write(connection, mqttPacket.generate({ cmd: 'disconnect', reasonCode: 0 }, PROTOCOL));
      connection.socket.end();
      // Read (and drop) what still comes, so that the broker's close is seen.
      connection.socket.removeAllListeners('data');
      connection.socket.resume();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_WAIT_MS);
        connection.socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        if (connection.closed) resolve();
      });
      this.dropConnection(connection, null);
    }
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }

  // --- connection --------------------------------------------------------------------

  private connect(): void {
    if (this.stopping) return;
    const id = ++this.connectionCount;
    let socket: Duplex;
    try {
      socket = this.openSocket();
    } catch (error) {
      this.connectFailed(error as Error);
      return;
    }
    const connection: Connection = {
      id,
      socket,
      ready: false,
      closed: false,
      ackQueue: [],
      lastWriteAt: Date.now(),
      pingSentAt: null,
      subscribeId: 1,
      connectTimer: null,
    };
    this.connection = connection;
    const parser = mqttPacket.parser(PROTOCOL);
    parser.on('packet', (packet: Packet) => this.onPacket(connection, packet));
    parser.on('error', (error: Error) => this.dropConnection(connection, new Error(`malformed packet from the broker: ${error.message}`)));
    connection.connectTimer = setTimeout(
      () => this.dropConnection(connection, new Error(`no CONNACK within ${this.options.connectTimeoutMs} ms`)),
      this.options.connectTimeoutMs,
    );
    socket.on('data', (chunk: Buffer) => {
      if (!connection.closed) parser.parse(chunk);
    });
    socket.on('error', (error: Error) => this.dropConnection(connection, error));
    socket.on('close', () => this.dropConnection(connection, new Error('the broker closed the connection')));
    // Written at once: every transport holds writes until it is open.
    const { username, password } = this.options;
    this.write(
      connection,
      mqttPacket.generate(
        {
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: 5,
          clientId: this.options.clientId,
          clean: false,
          keepalive: this.options.keepaliveSeconds,
          ...(username ? { username } : {}),
          ...(password ? { password: Buffer.from(password) } : {}),
          properties: { sessionExpiryInterval: this.options.sessionExpirySeconds, receiveMaximum: this.options.receiveMaximum },
        },
        PROTOCOL,
      ),
    );
  }

  private openSocket(): Duplex {
    const url = new URL(this.options.url);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    switch (url.protocol) {
      case 'mqtt:':
        return net.connect({ host, port: Number(url.port || 1883) }).setNoDelay(true);
      case 'mqtts:':
        return tls.connect({ host, port: Number(url.port || 8883), servername: net.isIP(host) ? undefined : host });
      case 'ws:':
      case 'wss:':
        // mqtt.js's default path, which Mosquitto's websockets listener accepts like any other.
        return createWebSocketStream(new WebSocket(url.pathname === '/' ? new URL('/mqtt', url) : url, 'mqtt'));
      default:
        throw new Error(`unsupported broker URL scheme ${url.protocol}`);
    }
  }

  private onPacket(connection: Connection, packet: Packet): void {
    if (connection.closed) return;
    switch (packet.cmd) {
      case 'publish':
        this.onPublish(connection, packet);
        return;
      case 'connack':
        this.onConnack(connection, packet);
        return;
      case 'suback':
        this.onSuback(connection, packet);
        return;
      case 'pingresp':
        connection.pingSentAt = null;
        return;
      case 'disconnect':
        this.dropConnection(connection, new Error(`the broker disconnected: ${reasonName(packet.reasonCode ?? 0)}`));
        return;
      case 'pubrel':
        // Only for QoS 2, which a QoS 1 subscription never receives: complete it anyway.
        this.write(connection, mqttPacket.generate({ cmd: 'pubcomp', messageId: packet.messageId }, PROTOCOL));
        return;
      default:
        return;
    }
  }

  private onConnack(connection: Connection, packet: IConnackPacket): void {
    if (connection.connectTimer) clearTimeout(connection.connectTimer);
    connection.connectTimer = null;
    const code = packet.reasonCode ?? packet.returnCode ?? 0;
    if (code !== 0) {
      const error = new BrokerRefusal(`the broker refused the connection of ${this.options.clientId}: ${reasonName(code)}`);
      if (FATAL_CONNACK.has(code)) this.settleStart(error);
      this.dropConnection(connection, error);
      return;
    }
    if (!packet.sessionPresent && this.stats.connections > 0) {
      this.options.log.warn(
        { clientId: this.options.clientId },
        'mqtt: the broker had no session for this client any more (expired, or the broker lost its state): messages queued for it meanwhile are gone',
      );
    }
    this.stats.connections++;
    // Subscribed again each time: a session the broker lost, or one that predates a change of filters.
    this.write(
      connection,
      mqttPacket.generate(
        { cmd: 'subscribe', messageId: connection.subscribeId, subscriptions: this.options.filters.map((topic) => ({ topic, qos: 1 as const })) },
        PROTOCOL,
      ),
    );
    this.startKeepalive();
  }

  private onSuback(connection: Connection, packet: ISubackPacket): void {
    if (packet.messageId !== connection.subscribeId) return;
    const codes = (packet.granted as number[]).map((granted) => (typeof granted === 'number' ? granted : 0x80));
    const refused = codes.map((code, i) => [this.options.filters[i], code] as const).filter(([, code]) => code >= 0x80);
    if (refused.length > 0) {
      const error = new BrokerRefusal(`the broker refused the subscription of ${this.options.clientId}: ${refused.map(([filter, code]) => `${filter}: ${reasonName(code)}`).join('; ')}`);
      this.settleStart(error);
      this.dropConnection(connection, error);
      return;
    }
    connection.ready = true;
    this.reconnectDelay = MIN_BACKOFF_MS;
    this.failingSince = null;
    this.options.log.info({ clientId: this.options.clientId, filters: this.options.filters }, 'mqtt: connected and subscribed');
    this.settleStart();
  }

  private onPublish(connection: Connection, packet: IPublishPacket): void {
    if (this.stopping) return; // left unacknowledged: the broker redelivers it to the next start
    if (packet.qos === 2) {
      this.dropConnection(connection, new Error('the broker sent a QoS 2 message to a QoS 1 subscription'));
      return;
    }
    this.stats.received++;
    if (packet.dup) this.stats.redelivered++;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const pending: Pending = {
      message: { topic: packet.topic, payload, qos: packet.qos, dup: packet.dup },
      connection,
      messageId: packet.qos === 1 ? (packet.messageId ?? 0) : 0,
      committed: false,
    };
    if (packet.qos === 1) connection.ackQueue.push(pending);
    this.add(pending);
  }

  /** Writes the PUBACKs at the head of the queue whose batches are committed, in receive order, in one write. */
  private flushAcks(connection: Connection): void {
    if (connection.closed) return;
    let count = 0;
    while (count < connection.ackQueue.length && connection.ackQueue[count].committed) count++;
    if (count === 0) return;
    const acks = connection.ackQueue.splice(0, count).map((pending) => mqttPacket.generate({ cmd: 'puback', messageId: pending.messageId }, PROTOCOL));
    this.write(connection, Buffer.concat(acks));
    this.stats.acknowledged += count;
  }

  private write(connection: Connection, data: Buffer): void {
    if (connection.closed) return;
    connection.lastWriteAt = Date.now();
    connection.socket.write(data);
  }

  /**
   * The connection is gone: its unacknowledged messages are forgotten (the broker resends them
   * on the next connection), QoS 0 ones are still stored. Reconnects with backoff.
   */
  private dropConnection(connection: Connection, error: Error | null): void {
    if (connection.closed) return;
    const wasReady = connection.ready;
    connection.closed = true;
    connection.ready = false;
    if (connection.connectTimer) clearTimeout(connection.connectTimer);
    connection.socket.removeAllListeners('data');
    connection.socket.on('error', () => {}); // a late error of a dead socket must not crash the process
    connection.socket.destroy();
    const forgotten = connection.ackQueue.length;
    connection.ackQueue.length = 0;
    const keep = (pending: Pending) => pending.message.qos === 0 || pending.connection !== connection;
    if (this.open) this.open.items = this.open.items.filter(keep);
    for (const batch of this.waiting) batch.items = batch.items.filter(keep);
    this.waiting.splice(0, this.waiting.length, ...this.waiting.filter((batch) => batch.items.length > 0));
    if (this.connection === connection) this.connection = null;
    this.resume();
    // A batch waiting to retry may now hold nothing worth storing.
    for (const wake of this.wakers) wake();
    if (this.stopping) return;
    // Once per outage: the lost connection, or the first attempt that failed; not every retry.
    if (error && (wasReady || this.failingSince === null)) {
      this.options.log.warn(
        { err: error.message, clientId: this.options.clientId, forgotten },
        `mqtt: connection lost, reconnecting${forgotten ? ` (${forgotten} unacknowledged messages left for the broker to redeliver)` : ''}`,
      );
    }
    this.connectFailed(error);
  }

  private connectFailed(error: Error | null): void {
    if (this.stopping) return;
    // The first attempt failed for a reason that may pass: start() resolves, the retries go on.
    if (!(error instanceof BrokerRefusal)) this.settleStart();
    if (this.reconnectTimer) return;
    const now = Date.now();
    this.failingSince ??= now;
    let delay: number;
    if (!(error instanceof BrokerRefusal) && now - this.failingSince < FAST_RETRY_WINDOW_MS) {
      delay = FAST_RETRY_MS;
    } else {
      // A refusal (credentials, authorisation) or a long outage: backing off spares the broker.
      delay = this.reconnectDelay;
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, this.options.reconnectMaxMs);
    }
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private settleStart(error?: Error): void {
    const outcome = this.firstOutcome;
    if (!outcome) return;
    this.firstOutcome = null;
    if (error) {
      // A refused start does not keep trying.
      this.stopping = true;
      if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
      this.keepaliveTimer = null;
      outcome.reject(error);
    } else {
      outcome.resolve();
    }
  }

  /**
   * PINGREQ when nothing was written for half the keep-alive; a connection whose PINGRESP is
   * a keep-alive late is dead (unless reading is paused, which holds the PINGRESP back too).
   */
  private startKeepalive(): void {
    if (this.keepaliveTimer) return;
    const keepaliveMs = this.options.keepaliveSeconds * 1000;
    if (keepaliveMs === 0) return;
    this.keepaliveTimer = setInterval(() => {
      const connection = this.connection;
      if (!connection || connection.closed) return;
      const now = Date.now();
      if (connection.pingSentAt !== null && now - connection.pingSentAt > keepaliveMs && !this.paused) {
        this.dropConnection(connection, new Error(`no PINGRESP within ${this.options.keepaliveSeconds} s`));
        return;
      }
      if (now - connection.lastWriteAt >= keepaliveMs / 2) {
        if (connection.pingSentAt === null) connection.pingSentAt = now;
        this.write(connection, mqttPacket.generate({ cmd: 'pingreq' }, PROTOCOL));
      }
    }, Math.max(250, keepaliveMs / 4));
    this.keepaliveTimer.unref();
  }

  // --- batches -----------------------------------------------------------------------

  private add(pending: Pending): void {
    if (!this.open) {
      this.open = { items: [], due: false };
      const batch = this.open;
      this.openTimer = setTimeout(() => {
        this.openTimer = null;
        batch.due = true;
        this.pump();
      }, this.options.batchDelayMs);
    }
    this.open.items.push(pending);
    if (this.open.items.length >= this.options.batchSize) this.closeOpenBatch();
    this.pump();
    // QoS 0 messages are not bounded by Receive Maximum: past a few batches waiting, stop reading.
    if (this.buffered() >= this.options.receiveMaximum + 2 * this.options.batchSize) this.pause();
  }

  private closeOpenBatch(): void {
    const batch = this.open;
    if (!batch) return;
    if (this.openTimer) clearTimeout(this.openTimer);
    this.openTimer = null;
    this.open = null;
    batch.due = true;
    if (batch.items.length > 0) this.waiting.push(batch);
  }

  /**
   * Starts batches while slots are free: full ones first, then the open one once its delay
   * passed. While every slot is busy, the open batch keeps growing up to its size.
   */
  private pump(): void {
    if (this.halted) return;
    while (this.running.size < this.options.concurrency) {
      if (this.waiting.length === 0 && this.open?.due) this.closeOpenBatch();
      const batch = this.waiting.shift();
      if (!batch) break;
      const run = this.commit(batch).finally(() => {
        this.running.delete(run);
        this.pump();
      });
      this.running.add(run);
    }
    if (this.buffered() < this.options.receiveMaximum) this.resume();
  }

  /** Commits a batch, retrying while it still holds messages worth storing; then acknowledges them. */
  private async commit(batch: Batch): Promise<void> {
    let delay = MIN_BACKOFF_MS;
    for (;;) {
      // Messages of a connection that dropped will come again: only QoS 0 ones are kept.
      batch.items = batch.items.filter((pending) => pending.message.qos === 0 || !pending.connection.closed);
      if (batch.items.length === 0) return;
      try {
        await this.options.handle(batch.items.map((pending) => pending.message));
        break;
      } catch (error) {
        this.stats.failures++;
        if (this.stopping && Date.now() + delay > this.stopDeadline) {
          this.options.log.warn({ err: (error as Error).message, messages: batch.items.length }, 'mqtt: stopping with a batch not stored; the broker redelivers it');
          return;
        }
        this.options.log.warn({ err: (error as Error).message, messages: batch.items.length }, `mqtt: storing a batch failed, retrying in ${delay} ms`);
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.options.retryMaxMs);
      }
    }
    this.stats.batches++;
    const connections = new Set<Connection>();
    for (const pending of batch.items) {
      pending.committed = true;
      if (pending.message.qos === 1) connections.add(pending.connection);
    }
    for (const connection of connections) this.flushAcks(connection);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, this.stopping ? Math.min(ms, Math.max(0, this.stopDeadline - Date.now())) : ms);
      this.wakers.add(wake);
    });
  }

  private buffered(): number {
    let count = this.open?.items.length ?? 0;
    for (const batch of this.waiting) count += batch.items.length;
    return count;
  }

  private pause(): void {
    if (this.paused || !this.connection) return;
    this.paused = true;
    this.connection.socket.pause();
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    if (!this.stopping) this.connection?.socket.resume();
  }
}

/** A client id of this process's own, for tests and one-off tools that must not share a session. */
export const uniqueClientId = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;
