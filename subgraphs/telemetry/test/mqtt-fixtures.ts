/**
 * What the MQTT ingestion tests share: a tap between a client and the broker that decodes every
 * packet both ways (to see which PUBLISH got which PUBACK, and when) and can cut or freeze the
 * link, the credentials of a test broker, and waiting with a bound.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { ROOT, freePort, type Owner, type TestBroker } from '@connecte/testkit';

/** One decoded packet, in the order the tap saw them (both directions on one timeline). */
export interface TappedPacket {
  /** Which client connection through the tap (1, 2, ...). */
  link: number;
  direction: 'to-broker' | 'to-client';
  packet: Packet;
}

export interface MqttTap {
  /** `mqtt://127.0.0.1:<port>`: connect here instead of to the broker. */
  url: string;
  packets: TappedPacket[];
  /** Client → broker PUBACK packet ids, in order. */
  pubacks(): number[];
  /** Broker → client QoS 1 PUBLISH packet ids, in order. */
  publishIds(): number[];
  /** Ends every link at once, as a network cut would (both sockets destroyed). */
  cut(): void;
  /** Stops forwarding broker → client (the client hears nothing, as from a dead broker); `thaw()` undoes it. */
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

/** A TCP relay to `brokerPort` that decodes MQTT 5 both ways. */
export async function startTap(brokerPort: number): Promise<MqttTap> {
  const packets: TappedPacket[] = [];
  const links = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let frozen = false;
  let count = 0;
  // Half-open on both sides: a client's FIN is passed on, and its socket closes only once the
  // broker's side has (as on a direct connection, where the broker closes after the DISCONNECT).
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const link = ++count;
    const upstream = net.connect({ host: '127.0.0.1', port: brokerPort, allowHalfOpen: true });
    const pair = { client, upstream };
    links.add(pair);
    const decode = (direction: TappedPacket['direction']) => {
      const parser = mqttPacket.parser({ protocolVersion: 5 });
      parser.on('packet', (packet: Packet) => packets.push({ link, direction, packet }));
      parser.on('error', () => {});
      return parser;
    };
    const up = decode('to-broker');
    const down = decode('to-client');
    client.on('data', (chunk: Buffer) => {
      up.parse(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (frozen) return;
      down.parse(chunk);
      client.write(chunk);
    });
    // An end is passed on once what came before it is written; an error, a close, or `cut()`
    // destroys both at once.
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    const kill = () => {
      links.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', kill);
      socket.on('close', kill);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const cut = () => {
    for (const { client, upstream } of links) {
      client.destroy();
      upstream.destroy();
    }
    links.clear();
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    packets,
    pubacks: () =>
      packets.flatMap(({ direction, packet }) => (direction === 'to-broker' && packet.cmd === 'puback' ? [packet.messageId!] : [])),
    publishIds: () =>
      packets.flatMap(({ direction, packet }) => (direction === 'to-client' && packet.cmd === 'publish' && packet.qos === 1 ? [packet.messageId!] : [])),
    cut,
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The hub's service account on a test broker, and the variables a service needs to use it, when
 * the test broker requires authentication (`serviceCredentials` / `env` of `startTestBroker()`);
 * nothing for an anonymous one.
 */
export function brokerAccess(broker: TestBroker): { username?: string; password?: string; env: Record<string, string> } {
  const extra = broker as TestBroker & { serviceCredentials?: { username: string; password: string }; env?: Record<string, string> };
  return { ...(extra.serviceCredentials ?? {}), env: { MQTT_URL: broker.url, ...(extra.env ?? {}) } };
}

/**
 * An account that may publish on any `connecte/…` topic (a gateway's rights, wider than an ingest
 * key's), created on a test broker with the dynamic-security plugin through `mosquitto_ctrl` as
 * the service account; nothing for an anonymous broker. Its role is not one the hub's
 * broker-auth worker manages, so its reconciliation leaves it alone.
 */
export async function publisherAccount(broker: TestBroker): Promise<{ username?: string; password?: string }> {
  const admin = brokerAccess(broker);
  if (!admin.username || !admin.password) return {};
  const username = `test-publisher-${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('base64url');
  const ctrl = (...args: string[]) =>
    new Promise<void>((resolve, reject) =>
      execFile('mosquitto_ctrl', ['-h', '127.0.0.1', '-p', String(broker.port), '-u', admin.username!, '-P', admin.password!, 'dynsec', ...args], (error, _stdout, stderr) =>
        error ? reject(new Error(`mosquitto_ctrl dynsec ${args[0]}: ${stderr || error.message}`)) : resolve(),
      ),
    );
  await ctrl('createRole', username);
  await ctrl('addRoleACL', username, 'publishClientSend', 'connecte/#', 'allow');
  await ctrl('createClient', username, '-p', password);
  await ctrl('addClientRole', username, username);
  return { username, password };
}

/** An owner for `connectTestBroker` whose clients end when `end()` is called (in a file's `after`). */
export function clientsOwner(): Owner & { end(): Promise<void> } {
  const endings: (() => unknown)[] = [];
  return {
    after: (fn) => void endings.push(fn),
    end: async () => {
      await Promise.all(endings.splice(0).map((fn) => fn()));
    },
  };
}

/** Polls `condition` every 20 ms; fails naming `what` after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, what: () => string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await sleep(20);
  }
  return Date.now() - started;
}

/**
 * The telemetry service as a process of its own (`src/main.ts` under tsx), on a free port: to be
 * killed for real (SIGKILL), or kept off the event loop of a benchmark's publishers.
 */
export class TelemetryProcess {
  child: ChildProcess | null = null;
  port = 0;
  private output: string[] = [];

  /** `env` on top of this process's: DATABASE_URL, MQTT_URL, MQTT_CLIENT_ID... */
  constructor(private readonly env: Record<string, string>) {}

  get name(): string {
    return this.env.MQTT_CLIENT_ID ?? 'telemetry';
  }

  get origin() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'subgraphs/telemetry/src/main.ts')], {
      cwd: ROOT,
      env: { ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'warn', ...this.env, PORT: String(this.port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    const keep = (chunk: Buffer) => {
      this.output.push(chunk.toString());
      if (this.output.length > 200) this.output.shift();
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`ingestor ${this.name} exited (${child.exitCode}):\n${this.tail()}`);
        try {
          return (await fetch(`${this.origin}/readyz`, { signal: AbortSignal.timeout(1_000) })).status === 200;
        } catch {
          return false;
        }
      },
      () => `ingestor ${this.name} ready:\n${this.tail()}`,
      60_000,
    );
  }

  /** SIGKILL: no drain, no DISCONNECT, batches in flight abandoned. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  /** MQTT messages this process has ingested (its own Prometheus counter). */
  async ingested(): Promise<number> {
    const text = await (await fetch(`${this.origin}/metrics`)).text();
    let total = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('telemetry_ingest_messages_total{') && line.includes('transport="mqtt"')) total += Number(line.split(' ').at(-1));
    }
    return total;
  }

  tail(): string {
    return this.output.join('').split('\n').slice(-30).join('\n');
  }

  private async signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }
}
