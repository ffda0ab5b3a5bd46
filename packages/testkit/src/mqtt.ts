/** A client of the test broker (Mosquitto): `MQTT_URL`, else 127.0.0.1:1883. */
import { randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export const TEST_MQTT_URL = process.env.MQTT_URL ?? 'mqtt://127.0.0.1:1883';

/** Whose end closes the client: a test's context (`it(name, (t) => ...)`) or a file's (`before((t) => ...)` at top level). */
export interface Owner {
  after(fn: () => unknown): void;
}

/**
 * Connects to the test broker with a client id of its own (a broker drops the older of two
 * clients sharing an id, so parallel test files must never share one), and ends it when `owner`
 * ends. An open MQTT socket keeps a test process alive: the owner is required, not optional.
 */
export async function connectTestBroker(owner: Owner, options: IClientOptions & { url?: string } = {}): Promise<MqttClient> {
  const { url = TEST_MQTT_URL, ...rest } = options;
  const client = await mqtt.connectAsync(url, {
    clientId: `connecte-test-${process.pid}-${randomBytes(6).toString('hex')}`,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...rest,
  });
  owner.after(() => client.endAsync(true));
  return client;
}
