/**
 * The device protocol's one table of metrics (docs/devices.md): SenML name, unit
 * (RFC 8428 / IANA SenML units) and the period a device is expected to report at.
 * An uplink whose unit differs from the table's is rejected.
 */
export const METRICS = {
  power: { unit: 'W', periodSeconds: 600, description: 'Instantaneous electrical power' },
  energy: { unit: 'Wh', periodSeconds: 600, description: 'Cumulative energy counter' },
  dim_level: { unit: '%', periodSeconds: 600, description: 'Light output as a share of full power' },
  co2: { unit: 'ppm', periodSeconds: 300, description: 'Indoor CO2 concentration' },
  temperature: { unit: 'Cel', periodSeconds: 300, description: 'Air temperature' },
  humidity: { unit: '%RH', periodSeconds: 300, description: 'Relative humidity' },
  pm2_5: { unit: 'ug/m3', periodSeconds: 300, description: 'Fine particulate matter (PM2.5)' },
  occupancy: { unit: 'count', periodSeconds: 60, description: 'Occupied places (parking) or people (rooms)' },
  presence: { unit: 'count', periodSeconds: 60, description: 'Detections since the previous report' },
  speed: { unit: 'm/s', periodSeconds: 15, description: 'Vehicle speed' },
  lat: { unit: 'lat', periodSeconds: 15, description: 'Latitude (WGS84)' },
  lon: { unit: 'lon', periodSeconds: 15, description: 'Longitude (WGS84)' },
  battery: { unit: '%', periodSeconds: 3600, description: 'Battery level' },
} as const;

export type MetricName = keyof typeof METRICS;

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

/** Builds a SenML pack for one device at one time (seconds since the epoch). */
export function senmlPack(deviceUrn: string, time: number, values: Partial<Record<MetricName, number>>): SenmlRecord[] {
  return Object.entries(values).map(([name, value], index) => ({
    ...(index === 0 ? { bn: `${deviceUrn}:`, bt: time } : {}),
    n: name,
    u: METRICS[name as MetricName].unit,
    v: value,
  }));
}

export const uplinkTopic = (collectivityId: string, equipmentId: string) => `connecte/${collectivityId}/${equipmentId}/up`;
