/**
 * MQTT for tests: a client of the machine's broker (`MQTT_URL`, else 127.0.0.1:1883), and a
 * Mosquitto of a test's own, with the repository's configuration (no anonymous clients; the
 * dynamic-security plugin, set up with a service account), for tests that restart the broker or
 * authenticate devices (docs/devices.md, last section: the machine's broker is left alone).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ROOT } from './databases.js';
import { freePort } from './ports.js';
import { cleanUpOnExit, logTail } from './process-guard.js';

export const TEST_MQTT_URL = process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883';

/** The broker configuration docker-compose mounts; a test broker takes its settings from it. */
export const BROKER_CONFIG = path.join(ROOT, 'config', 'mosquitto', 'mosquitto.conf');

/** Whose end closes the client: a test's context (`it(name, (t) => ...)`) or a file's (`before((t) => ...)` at top level). */
export interface Owner {
  after(fn: () => unknown): void;
}

/** Options of `connectTestBroker`: mqtt.js's, plus the broker and a message listener. */
export interface TestClientOptions extends IClientOptions {
  /**
   * The broker, e.g. a `startTestBroker()` one; default `MQTT_URL`. A client of a kit broker
   * connects as its test account (`testCredentials`: publish and subscribe to anything) unless
   * it gives a `username` or asks to be `anonymous`.
   */
  url?: string;
  /** Connect without a user name, even to a kit broker (which then refuses it). */
  anonymous?: boolean;
  /**
   * Attached before connecting: a persistent session's queued messages arrive right after
   * CONNACK, before a listener added once the connection resolves could hear them.
   */
  onMessage?: (topic: string, payload: Buffer) => void;
}

/**
 * Connects to the test broker with a client id of its own (a broker drops the older of two
 * clients sharing an id, so parallel test files must never share one), and ends it when `owner`
 * ends. An open MQTT socket keeps a test process alive: the owner is required, not optional.
 */
export async function connectTestBroker(owner: Owner, options: TestClientOptions = {}): Promise<MqttClient> {
  const { url = TEST_MQTT_URL, onMessage, anonymous = false, ...rest } = options;
  const account = anonymous || rest.username !== undefined ? undefined : testAccounts.get(url);
  const client = mqtt.connect(url, {
    clientId: `connecte-test-${process.pid}-${randomBytes(6).toString('hex')}`,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...account,
    ...rest,
  });
  if (onMessage) client.on('message', onMessage);
  try {
    await new Promise<void>((resolve, reject) => {
      const settle = (error?: Error) => {
        client.off('connect', onConnect).off('error', settle).off('close', onClose);
        if (error) reject(error);
        else resolve();
      };
      const onConnect = () => settle();
      const onClose = () => settle(new Error(`the connection to ${url} closed before the broker accepted it`));
      client.once('connect', onConnect).once('error', settle).once('close', onClose);
    });
  } catch (error) {
    await client.endAsync(true);
    throw error;
  }
  owner.after(() => client.endAsync(true));
  return client;
}

/** Where Debian (per architecture) and other installs put the dynamic-security plugin; the image's path is the first of the repository's configuration. */
const DYNSEC_PLUGIN_PATHS = [
  '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so',
  '/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so',
  '/usr/lib/mosquitto_dynamic_security.so',
  '/usr/local/lib/mosquitto_dynamic_security.so',
];

/** This machine's dynamic-security plugin (Debian's `mosquitto` package installs it). */
export function localDynsecPlugin(): string {
  const found = DYNSEC_PLUGIN_PATHS.find((file) => existsSync(file));
  if (!found) throw new Error(`Mosquitto's dynamic-security plugin is not installed (looked for ${DYNSEC_PLUGIN_PATHS.join(', ')}): install the mosquitto package`);
  return found;
}

const DYNSEC_PLUGIN_LINE = /^\s*plugin\s+\S*mosquitto_dynamic_security\.so\s*$/;
const DYNSEC_FILE_LINE = /^\s*plugin_opt_config_file\s/;

/**
 * The repository's broker configuration for a test broker: the same settings (persistence,
 * queue limits, no anonymous clients, the dynamic-security plugin), but its one listener on
 * 127.0.0.1:`port`, its persistence, plugin state and log in `dir`, and the plugin's path of this
 * machine instead of the eclipse-mosquitto image's. Running as root, Mosquitto would switch to
 * the `mosquitto` user, who cannot write a directory the test created: `user root` keeps it as
 * the test's user.
 */
export function testBrokerConfig(
  repositoryConfig: string,
  { port, dir, asRoot, dynsecPlugin }: { port: number; dir: string; asRoot: boolean; dynsecPlugin?: string },
): string {
  const lines = repositoryConfig.split('\n');
  const listeners = lines.filter((line) => /^\s*listener\s/.test(line));
  if (listeners.length !== 1) {
    throw new Error(`the broker configuration must have exactly one "listener" line for a test broker to replace, found ${listeners.length}`);
  }
  const derived = lines
    .filter((line) => !/^\s*(persistence_location|log_dest|user)\s/.test(line))
    .map((line) => {
      if (/^\s*listener\s/.test(line)) return `listener ${port} 127.0.0.1`;
      if (DYNSEC_PLUGIN_LINE.test(line)) return `plugin ${dynsecPlugin ?? localDynsecPlugin()}`;
      if (DYNSEC_FILE_LINE.test(line)) return `plugin_opt_config_file ${dynsecFileIn(dir)}`;
      return line;
    });
  return [
    '# A test broker (@connecte/testkit), derived from config/mosquitto/mosquitto.conf.',
    ...derived,
    `persistence_location ${dir}/data/`,
    `log_dest file ${dir}/mosquitto.log`,
    ...(asRoot ? ['user root'] : []),
    '',
  ].join('\n');
}

/** The dynamic-security plugin's state, in the persistence directory as in docker-compose. */
const dynsecFileIn = (dir: string) => path.join(dir, 'data', 'dynamic-security.json');

/** The test account of a kit broker, by URL: `connectTestBroker` uses it unless told otherwise. */
const testAccounts = new Map<string, { username: string; password: string }>();

/** What a test account may do: anything but administer the broker (`#` matches no `$CONTROL` topic). */
const TEST_ROLE = {
  rolename: 'connecte-test-client',
  acls: ['publishClientSend', 'publishClientReceive', 'subscribePattern', 'unsubscribePattern'].map((acltype) => ({ acltype, topic: '#', allow: true })),
};

/**
 * The plugin's first state, made as docker-compose makes it (`mosquitto_ctrl dynsec init` with
 * the service account as its admin), plus a test account for the tests' own publishers and
 * subscribers, whose password hash `mosquitto_ctrl` computes the same way in a scratch file.
 */
function initDynsec(file: string, service: { username: string; password: string }, test: { username: string; password: string }): void {
  const init = (target: string, account: { username: string; password: string }) => {
    try {
      execFileSync('mosquitto_ctrl', ['dynsec', 'init', target, account.username, account.password], { stdio: 'pipe' });
    } catch (error) {
      const { stderr, message } = error as { stderr?: Buffer; message: string };
      throw new Error(`cannot set up the test broker's dynamic-security state with mosquitto_ctrl (Debian's mosquitto package): ${stderr?.toString().trim() || message}`);
    }
  };
  init(file, service);
  const scratch = `${file}.test-account`;
  init(scratch, test);
  type State = { clients: Record<string, unknown>[]; roles: Record<string, unknown>[] };
  const state = JSON.parse(readFileSync(file, 'utf8')) as State;
  const [testClient] = (JSON.parse(readFileSync(scratch, 'utf8')) as State).clients;
  rmSync(scratch);
  state.clients.push({ ...testClient, textname: 'connecte test client', roles: [{ rolename: TEST_ROLE.rolename }] });
  state.roles.push(TEST_ROLE);
  writeFileSync(file, JSON.stringify(state, null, 2));
}

export interface TestBroker {
  /** `mqtt://127.0.0.1:<port>`, for `connectTestBroker(t, { url })` or a service's `MQTT_URL`. */
  url: string;
  port: number;
  /**
   * The hub's service account, made the dynamic-security plugin's admin when the broker was set
   * up (as docker-compose does from MQTT_USERNAME / MQTT_PASSWORD); null when the repository's
   * configuration has no such plugin.
   */
  serviceCredentials: { username: string; password: string } | null;
  /**
   * An account of the tests' own that may publish and subscribe to anything (not administer the
   * broker): `connectTestBroker(t, { url })` connects with it by default. Null without the plugin.
   */
  testCredentials: { username: string; password: string } | null;
  /** What a service needs to use this broker as the hub's: `MQTT_URL`, and `MQTT_USERNAME` / `MQTT_PASSWORD` when there is an account. */
  env: Record<string, string>;
  /** Stops the broker (SIGTERM: it saves its sessions, as in a real restart) and starts it again on the same port and persistence. */
  restart(): Promise<void>;
  /** Stops the broker and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * Runs `mosquitto` (from PATH) with the repository's configuration on a free port of 127.0.0.1
 * and a temporary persistence directory, and resolves once it accepts connections.
 */
export async function startTestBroker(): Promise<TestBroker> {
  const dir = mkdtempSync(path.join(tmpdir(), 'connecte-mqtt-'));
  mkdirSync(path.join(dir, 'data'));
  const configFile = path.join(dir, 'mosquitto.conf');
  const logFile = path.join(dir, 'mosquitto.log');
  const port = await freePort();
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const config = testBrokerConfig(readFileSync(BROKER_CONFIG, 'utf8'), { port, dir, asRoot });
  writeFileSync(configFile, config);
  const url = `mqtt://127.0.0.1:${port}`;
  let serviceCredentials: TestBroker['serviceCredentials'] = null;
  let testCredentials: TestBroker['testCredentials'] = null;
  if (config.split('\n').some((line) => DYNSEC_FILE_LINE.test(line))) {
    serviceCredentials = { username: 'connecte-hub', password: randomBytes(18).toString('base64url') };
    testCredentials = { username: 'connecte-test', password: randomBytes(18).toString('base64url') };
    try {
      initDynsec(dynsecFileIn(dir), serviceCredentials, testCredentials);
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
    testAccounts.set(url, testCredentials);
  }

  let child: ChildProcess | undefined;
  let stopped = false;

  const forget = cleanUpOnExit(() => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const launch = async () => {
    const running = spawn('mosquitto', ['-c', configFile], { cwd: dir, stdio: 'ignore' });
    // A broker the test forgot to stop must not keep the test process alive: the exit clean-up ends it.
    running.unref();
    child = running;
    const failed = new Promise<never>((_, reject) => {
      running.once('error', (error) => reject(new Error(`cannot run mosquitto (is it on PATH?): ${error.message}`)));
      running.once('exit', (code, signal) =>
        reject(new Error(`mosquitto exited (${signal ?? `code ${code}`}) before accepting connections on port ${port}\n--- mosquitto.log ---\n${logTail(logFile)}`)),
      );
    });
    failed.catch(() => {}); // only awaited while starting
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await Promise.race([accepts(port), failed]))) {
      if (Date.now() > deadline) {
        running.kill('SIGKILL');
        throw new Error(`mosquitto did not accept connections on port ${port} within ${READY_TIMEOUT_MS} ms\n--- mosquitto.log ---\n${logTail(logFile)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  const halt = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    const timer = setTimeout(() => running.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };

  const broker: TestBroker = {
    url,
    port,
    serviceCredentials,
    testCredentials,
    env: { MQTT_URL: url, ...(serviceCredentials ? { MQTT_USERNAME: serviceCredentials.username, MQTT_PASSWORD: serviceCredentials.password } : {}) },
    async restart() {
      if (stopped) throw new Error(`the test broker on port ${port} was stopped`);
      await halt();
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      forget();
      testAccounts.delete(url);
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await launch();
  } catch (error) {
    await broker.stop();
    throw error;
  }
  return broker;
}

/** Whether something accepts a TCP connection on 127.0.0.1:`port`. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
