/**
 * The device protocol's one table of metrics (docs/devices.md): SenML name, unit
 * (RFC 8428 / IANA SenML units; null for a boolean, which carries no unit), the value's
 * type (`v` for numbers, `vb` for booleans), the period a device is expected to report at,
 * and the value's domain: `min` and `max` inclusive (`-Infinity` / `Infinity` when the
 * quantity has no bound on that side), `integer` for counts and modes. An uplink whose unit
 * differs from the table's is rejected, and so is a value outside its domain (a latitude of
 * 200, a negative speed or count, a percentage above 100); nothing is converted or clamped.
 *
 * The bounds are those of the quantity, not of plausibility: a speed of 140 m/s is in the
 * domain (mobility flags it as an outlier), a temperature below absolute zero is not.
 */
const ANY = { min: -Infinity, max: Infinity, integer: false } as const;
const NON_NEGATIVE = { min: 0, max: Infinity, integer: false } as const;
const PERCENT = { min: 0, max: 100, integer: false } as const;
const COUNT = { min: 0, max: Infinity, integer: true } as const;
/** Absolute zero, in °C. */
const ABOVE_ABSOLUTE_ZERO = { min: -273.15, max: Infinity, integer: false } as const;

export const METRICS = {
  power: { unit: 'W', type: 'number', periodSeconds: 600, description: 'Instantaneous electrical power', ...NON_NEGATIVE },
  energy: { unit: 'Wh', type: 'number', periodSeconds: 600, description: 'Cumulative energy counter', ...NON_NEGATIVE },
  dim_level: { unit: '%', type: 'number', periodSeconds: 600, description: 'Light output as a share of full power', ...PERCENT },
  illuminance: { unit: 'lx', type: 'number', periodSeconds: 600, description: 'Light level measured at the luminaire', ...NON_NEGATIVE },
  fault: { unit: null, type: 'boolean', periodSeconds: 600, description: 'A fault is present (lamp failure, controller fault); false when it is over', ...ANY },
  co2: { unit: 'ppm', type: 'number', periodSeconds: 300, description: 'Indoor CO2 concentration', min: 0, max: 1_000_000, integer: false },
  temperature: { unit: 'Cel', type: 'number', periodSeconds: 300, description: 'Air temperature (room temperature for a heating controller)', ...ABOVE_ABSOLUTE_ZERO },
  setpoint: { unit: 'Cel', type: 'number', periodSeconds: 300, description: 'Heating setpoint temperature', ...ABOVE_ABSOLUTE_ZERO },
  humidity: { unit: '%RH', type: 'number', periodSeconds: 300, description: 'Relative humidity', ...PERCENT },
  pm2_5: { unit: 'ug/m3', type: 'number', periodSeconds: 300, description: 'Fine particulate matter (PM2.5)', ...NON_NEGATIVE },
  occupancy: { unit: 'count', type: 'number', periodSeconds: 60, description: 'Occupied places (parking) or people (rooms)', ...COUNT },
  presence: { unit: 'count', type: 'number', periodSeconds: 60, description: 'Detections since the previous report', ...COUNT },
  speed: { unit: 'm/s', type: 'number', periodSeconds: 15, description: 'Vehicle speed', ...NON_NEGATIVE },
  lat: { unit: 'lat', type: 'number', periodSeconds: 15, description: 'Latitude (WGS84)', min: -90, max: 90, integer: false },
  lon: { unit: 'lon', type: 'number', periodSeconds: 15, description: 'Longitude (WGS84)', min: -180, max: 180, integer: false },
  signal_state: { unit: null, type: 'number', periodSeconds: 60, description: 'Traffic-signal controller mode: 0 off, 1 normal cycle, 2 flashing amber, 3 manual, 4 priority in progress', min: 0, max: 4, integer: true },
  battery: { unit: '%', type: 'number', periodSeconds: 3600, description: 'Battery level', ...PERCENT },
} as const satisfies Record<
  string,
  { unit: string | null; type: 'number' | 'boolean'; periodSeconds: number; description: string; min: number; max: number; integer: boolean }
>;

/** A metric's domain as a phrase: `[-90, 90]`, `≥ 0`, `whole numbers 0 to 4` (for reasons and docs). */
export function metricDomain(name: MetricName): string {
  const { min, max, integer } = METRICS[name];
  const range =
    min === -Infinity && max === Infinity ? 'any value' : max === Infinity ? `≥ ${min}` : min === -Infinity ? `≤ ${max}` : `[${min}, ${max}]`;
  return integer ? `whole numbers ${range}` : range;
}

export type MetricName = keyof typeof METRICS;

export const isMetricName = (name: string): name is MetricName => Object.hasOwn(METRICS, name);

/**
 * What each kind of device reports (docs/devices.md): the simulator plays it, and a device's
 * expected reporting period (for the silence alarm) is the shortest period of its metrics.
 */
export const METRICS_BY_KIND = {
  LIGHT_POINT: ['power', 'energy', 'dim_level', 'illuminance', 'fault'],
  PRESENCE_DETECTOR: ['presence', 'battery'],
  AIR_QUALITY_SENSOR: ['co2', 'temperature', 'humidity', 'pm2_5', 'occupancy', 'battery'],
  HEATING_CONTROLLER: ['temperature', 'setpoint'],
  ENERGY_METER: ['power', 'energy'],
  PARKING_FACILITY: ['occupancy'],
  PARKING_SENSOR: ['occupancy', 'battery'],
  BUS: ['speed', 'lat', 'lon'],
  BUS_STOP: ['presence'],
  TRAFFIC_SIGNAL_CONTROLLER: ['signal_state', 'fault'],
} as const satisfies Record<string, readonly MetricName[]>;

/** The period, in seconds, a device of `kind` is expected to report at; null for a kind that reports nothing. */
export function expectedPeriodSeconds(kind: string): number | null {
  const metrics: readonly MetricName[] | undefined = (METRICS_BY_KIND as Record<string, readonly MetricName[]>)[kind];
  if (!metrics) return null;
  return Math.min(...metrics.map((metric) => METRICS[metric].periodSeconds));
}

/** One SenML record (RFC 8428 JSON): base name/time on the first record, then name/unit/value. */
export interface SenmlRecord {
  bn?: string;
  bt?: number;
  n?: string;
  u?: string;
  v?: number;
  vb?: boolean;
  vs?: string;
  t?: number;
}

/** Builds a SenML pack for one device at one time (seconds since the epoch): `v` and the table's unit, or `vb` for a boolean metric. */
export function senmlPack(deviceUrn: string, time: number, values: Partial<Record<MetricName, number | boolean>>): SenmlRecord[] {
  return Object.entries(values).map(([name, value], index) => {
    const metric = METRICS[name as MetricName];
    return {
      ...(index === 0 ? { bn: `${deviceUrn}:`, bt: time } : {}),
      n: name,
      ...(metric.unit === null ? {} : { u: metric.unit }),
      ...(metric.type === 'boolean' ? { vb: Boolean(value) } : { v: Number(value) }),
    };
  });
}

/** The SenML base name of a device: `urn:dev:connecte:<equipmentId>:`. */
export const deviceBaseName = (equipmentId: string) => `urn:dev:connecte:${equipmentId}:`;

export const uplinkTopic = (collectivityId: string, equipmentId: string) => `connecte/${collectivityId}/${equipmentId}/up`;
export const downlinkTopic = (collectivityId: string, equipmentId: string) => `connecte/${collectivityId}/${equipmentId}/down`;
export const ackTopic = (collectivityId: string, equipmentId: string) => `connecte/${collectivityId}/${equipmentId}/ack`;
