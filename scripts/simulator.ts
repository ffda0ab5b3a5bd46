/**
 * The live city simulator run by `npm start`: plays the territory's devices. Each device
 * publishes SenML uplinks over MQTT at its metric's period (night-time lighting, classroom
 * CO2, car-park occupancy, buses moving between stops), and now and then a light point
 * breaks down and is repaired through the gateway, so the control room sees a living city.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { loadConfigOrExit, type Config } from '@connecte/shared/config';
import { COLLECTIVITY_IDS, signDevelopmentToken } from '@connecte/shared/auth';
import { METRICS, senmlPack, uplinkTopic, type MetricName } from '@connecte/shared/senml';

const SIMULATED_KINDS = [
  'LIGHT_POINT',
  'PRESENCE_DETECTOR',
  'AIR_QUALITY_SENSOR',
  'HEATING_CONTROLLER',
  'ENERGY_METER',
  'PARKING_FACILITY',
  'BUS',
  'BUS_STOP',
] as const;

interface Device {
  id: string;
  kind: (typeof SIMULATED_KINDS)[number];
  collectivityId: string;
  lon: number;
  lat: number;
  powerW: number;
  capacity: number;
  energyWh: number;
  nextDueMs: number;
  periodMs: number;
  targetStop: number;
}

const SEARCH = `query Devices($after: String, $kinds: [EquipmentKind!]) {
  equipmentSearch(filter: { kinds: $kinds, status: [IN_SERVICE] }, first: 1000, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id kind collectivity { id } location { coordinates }
      details { ... on LightPointDetails { powerW } ... on ParkingFacilityDetails { capacity } } } }
  }
}`;

async function graphql(url: string, token: string, query: string, variables: Record<string, unknown>) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: { message: string }[] };
  if (body.errors?.length) throw new Error(body.errors.map((e) => e.message).join('; '));
  return body.data;
}

const KIND_PERIOD: Record<Device['kind'], MetricName> = {
  LIGHT_POINT: 'power',
  PRESENCE_DETECTOR: 'presence',
  AIR_QUALITY_SENSOR: 'co2',
  HEATING_CONTROLLER: 'temperature',
  ENERGY_METER: 'energy',
  PARKING_FACILITY: 'occupancy',
  BUS: 'speed',
  BUS_STOP: 'presence',
};

async function loadDevices(gatewayUrl: string, token: string): Promise<Device[]> {
  const devices: Device[] = [];
  let after: string | null = null;
  const now = Date.now();
  do {
    const data: any = await graphql(gatewayUrl, token, SEARCH, { after, kinds: SIMULATED_KINDS });
    for (const { node } of data.equipmentSearch.edges) {
      if (!node.location) continue;
      const periodMs = METRICS[KIND_PERIOD[node.kind as Device['kind']]].periodSeconds * 1000;
      devices.push({
        id: node.id,
        kind: node.kind,
        collectivityId: node.collectivity.id,
        lon: node.location.coordinates[0],
        lat: node.location.coordinates[1],
        powerW: node.details?.powerW ?? 40,
        capacity: node.details?.capacity ?? 200,
        energyWh: 0,
        // Spread first reports over one period so the broker sees a steady stream.
        nextDueMs: now + Math.random() * periodMs,
        periodMs,
        targetStop: 0,
      });
    }
    after = data.equipmentSearch.pageInfo.hasNextPage ? data.equipmentSearch.pageInfo.endCursor : null;
  } while (after);
  return devices;
}

/** Hour of day in Europe/Paris: lighting and occupancy follow the territory's clock. */
function parisHour(date: Date): number {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: 'numeric', minute: 'numeric', hourCycle: 'h23' }).formatToParts(date);
  const hour = Number(parts.find((p) => p.type === 'hour')?.value ?? 0);
  return hour + Number(parts.find((p) => p.type === 'minute')?.value ?? 0) / 60;
}

function reading(device: Device, stops: Device[], now: Date): Partial<Record<MetricName, number>> {
  const hour = parisHour(now);
  const night = hour >= 17.5 || hour < 7.5;
  const schoolHours = hour >= 8 && hour < 17;
  const round = (value: number, digits = 1) => Number(value.toFixed(digits));
  switch (device.kind) {
    case 'LIGHT_POINT': {
      // Lights dim to 40 % in the middle of the night, the territory's energy-saving profile.
      const dim = !night ? 0 : hour >= 23 || hour < 5 ? 40 : 100;
      const power = (device.powerW * dim) / 100;
      device.energyWh += (power * device.periodMs) / 3_600_000;
      return { power: round(power), energy: round(device.energyWh), dim_level: dim };
    }
    case 'PRESENCE_DETECTOR':
    case 'BUS_STOP':
      return { presence: Math.round(Math.random() * (night ? 2 : 12)) };
    case 'AIR_QUALITY_SENSOR':
      return {
        co2: Math.round(schoolHours ? 650 + Math.random() * 900 : 420 + Math.random() * 80),
        temperature: round(schoolHours ? 19 + Math.random() * 2.5 : 16 + Math.random() * 2),
        humidity: round(40 + Math.random() * 15),
        pm2_5: round(4 + Math.random() * 12),
      };
    case 'HEATING_CONTROLLER':
      return { temperature: round(schoolHours ? 19.5 + Math.random() : 16 + Math.random()) };
    case 'ENERGY_METER': {
      const power = schoolHours ? 8_000 + Math.random() * 12_000 : 1_500 + Math.random() * 1_000;
      device.energyWh += (power * device.periodMs) / 3_600_000;
      return { power: Math.round(power), energy: Math.round(device.energyWh) };
    }
    case 'PARKING_FACILITY': {
      const busy = hour >= 9 && hour < 19 ? 0.55 + Math.random() * 0.4 : 0.1 + Math.random() * 0.2;
      return { occupancy: Math.round(device.capacity * busy) };
    }
    case 'BUS': {
      if (stops.length === 0) return { speed: 0, lat: device.lat, lon: device.lon };
      const stop = stops[device.targetStop % stops.length];
      const metresPerDegLat = 111_320;
      const metresPerDegLon = 111_320 * Math.cos((device.lat * Math.PI) / 180);
      const dx = (stop.lon - device.lon) * metresPerDegLon;
      const dy = (stop.lat - device.lat) * metresPerDegLat;
      const distance = Math.hypot(dx, dy);
      const speed = 6 + Math.random() * 5;
      const step = speed * (device.periodMs / 1000);
      if (distance <= step) {
        device.lon = stop.lon;
        device.lat = stop.lat;
        device.targetStop = Math.floor(Math.random() * stops.length);
        return { speed: 0, lat: round(device.lat, 6), lon: round(device.lon, 6) };
      }
      device.lon += (dx / distance) * (step / metresPerDegLon);
      device.lat += (dy / distance) * (step / metresPerDegLat);
      return { speed: round(speed), lat: round(device.lat, 6), lon: round(device.lon, 6) };
    }
  }
}

export interface SimulatorOptions {
  config: Config;
  gatewayUrl: string;
  /** Faults: how often a light point breaks down (ms); 0 disables them. */
  faultEveryMs?: number;
  repairAfterMs?: number;
  /** Multiplies the pace of reports (tests run the city faster). */
  speed?: number;
  log?: (message: string) => void;
}

export async function startSimulator(options: SimulatorOptions) {
  const { config, gatewayUrl, faultEveryMs = 120_000, repairAfterMs = 300_000, speed = 1, log = console.log } = options;
  // A token lives at most JWT_MAX_LIFETIME_SECONDS: a fresh one replaces it halfway (at least twice a day).
  const mint = () =>
    signDevelopmentToken(
      { sub: 'city-simulator', roles: ['operator'], collectivities: [...COLLECTIVITY_IDS], expiresIn: config.JWT_MAX_LIFETIME_SECONDS },
      config,
    );
  let token = await mint();
  const devices = await loadDevices(gatewayUrl, token);
  const stops = devices.filter((d) => d.kind === 'BUS_STOP');
  const client: MqttClient = await mqtt.connectAsync(config.MQTT_URL, { clientId: `connecte-simulator-${process.pid}`, reconnectPeriod: 2_000 });
  let published = 0;
  log(`[simulator] playing ${devices.length} devices over ${config.MQTT_URL}`);

  const tick = setInterval(() => {
    const now = Date.now();
    for (const device of devices) {
      if (device.nextDueMs > now) continue;
      device.nextDueMs = now + device.periodMs / speed;
      const pack = senmlPack(`urn:dev:connecte:${device.id}`, Math.floor(now / 1000), reading(device, stops, new Date(now)));
      client.publish(uplinkTopic(device.collectivityId, device.id), JSON.stringify(pack), { qos: 1 });
      published++;
    }
  }, 1000);

  const lights = devices.filter((d) => d.kind === 'LIGHT_POINT');
  const repairs = new Set<NodeJS.Timeout>();
  const setStatus = (id: string, status: string) =>
    graphql(gatewayUrl, token, 'mutation($id: ID!, $status: EquipmentStatus) { updateEquipment(id: $id, input: { status: $status }) { id status } }', { id, status }).catch(
      (error: Error) => log(`[simulator] could not set ${id} to ${status}: ${error.message}`),
    );
  const faults =
    faultEveryMs > 0 && lights.length > 0
      ? setInterval(() => {
          const light = lights[Math.floor(Math.random() * lights.length)];
          log(`[simulator] light point ${light.id} breaks down`);
          void setStatus(light.id, 'FAULT');
          const repair = setTimeout(() => {
            repairs.delete(repair);
            log(`[simulator] light point ${light.id} repaired`);
            void setStatus(light.id, 'IN_SERVICE');
          }, repairAfterMs);
          repairs.add(repair);
        }, faultEveryMs)
      : null;
  const renewal = setInterval(
    () => void mint().then((fresh) => (token = fresh), (error: Error) => log(`[simulator] could not renew its token: ${error.message}`)),
    Math.min(config.JWT_MAX_LIFETIME_SECONDS * 500, 12 * 3_600_000),
  );

  return {
    devices: devices.length,
    published: () => published,
    async stop() {
      clearInterval(tick);
      clearInterval(renewal);
      if (faults) clearInterval(faults);
      for (const repair of repairs) clearTimeout(repair);
      await client.endAsync();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const config = loadConfigOrExit();
  const simulator = await startSimulator({ config, gatewayUrl: process.env.GATEWAY_URL ?? 'http://localhost:4000/graphql' });
  const stop = async () => {
    await simulator.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
