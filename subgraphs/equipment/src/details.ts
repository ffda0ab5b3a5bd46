import { z } from 'zod';
import { badInput } from '@connecte/shared/errors';
import type { EquipmentKind } from '@connecte/shared/db';

/**
 * Static attributes per kind, as stored in `equipment.details` (JSONB). Writes are
 * validated against these schemas; reads pass the stored object through untouched, so
 * an attribute recorded before a schema tightened still shows.
 *
 * Strict objects: a misspelt attribute (`powrW`) is an error, not silently stored.
 */
const text = z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters');

const lightPoint = z.strictObject({
  powerW: z.number().positive('must be > 0').max(2000, 'must be at most 2000 W'),
  lampType: text,
  dimmable: z.boolean(),
  colorTemperatureK: z.number().int().min(1500).max(7000).optional(),
  poleHeightM: z.number().positive('must be > 0').max(40).optional(),
});

const camera = z.strictObject({
  model: text,
  ptz: z.boolean(),
  // French video-protection recordings may be kept 30 days at most (Code de la sécurité intérieure, L252-5).
  retentionDays: z.number().int().min(1).max(30, 'must be at most 30 days (legal maximum)'),
});

const bus = z.strictObject({
  fleetNumber: z.union([text, z.number().int().nonnegative()]).transform(String),
  capacity: z.number().int().positive('must be > 0').max(300),
  energy: text,
  signalPriority: z.boolean(),
});

const building = z.strictObject({
  name: text,
  use: z.enum(['SCHOOL', 'SPORTS_HALL']),
  heatedAreaM2: z.number().positive('must be > 0').max(100_000).optional(),
});

const parkingFacility = z.strictObject({
  name: text,
  capacity: z.number().int().nonnegative().max(20_000),
  type: text,
});

const busStop = z.strictObject({
  name: text,
  shelter: z.boolean(),
});

const trafficSignalController = z.strictObject({
  intersectionName: text,
  phases: z.number().int().min(1).max(32),
  busPriority: z.boolean(),
});

const presenceDetector = z.strictObject({
  detectionRangeM: z.number().positive('must be > 0').max(200),
  lightPointId: text.optional(),
});

/** Kinds without a dedicated schema keep free-form attributes (an object of any keys). */
const generic = z.record(z.string(), z.unknown());

export const DETAILS_SCHEMAS: Record<EquipmentKind, z.ZodType<Record<string, unknown>>> = {
  LIGHT_POINT: lightPoint,
  PRESENCE_DETECTOR: presenceDetector,
  CAMERA: camera,
  TRAFFIC_SIGNAL_CONTROLLER: trafficSignalController,
  BUS: bus,
  BUS_STOP: busStop,
  PARKING_FACILITY: parkingFacility,
  PARKING_SENSOR: generic,
  AIR_QUALITY_SENSOR: generic,
  HEATING_CONTROLLER: generic,
  ENERGY_METER: generic,
  WIFI_HOTSPOT: generic,
  ELECTRICAL_CABINET: generic,
  BUILDING: building,
};

/** GraphQL type of the `details` union member for each kind. */
export const DETAILS_TYPENAME: Record<EquipmentKind, string> = {
  LIGHT_POINT: 'LightPointDetails',
  PRESENCE_DETECTOR: 'PresenceDetectorDetails',
  CAMERA: 'CameraDetails',
  TRAFFIC_SIGNAL_CONTROLLER: 'TrafficSignalControllerDetails',
  BUS: 'BusDetails',
  BUS_STOP: 'BusStopDetails',
  PARKING_FACILITY: 'ParkingFacilityDetails',
  PARKING_SENSOR: 'GenericDetails',
  AIR_QUALITY_SENSOR: 'GenericDetails',
  HEATING_CONTROLLER: 'GenericDetails',
  ENERGY_METER: 'GenericDetails',
  WIFI_HOTSPOT: 'GenericDetails',
  ELECTRICAL_CABINET: 'GenericDetails',
  BUILDING: 'BuildingDetails',
};

const MAX_DETAILS_BYTES = 16 * 1024;

/**
 * Validates `value` as the details of `kind`; throws BAD_USER_INPUT naming the first
 * attribute at fault under `field` (e.g. `input.details.powerW`).
 */
export function validateDetails(kind: EquipmentKind, value: unknown, field: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw badInput(field, 'must be an object');
  }
  if (JSON.stringify(value).length > MAX_DETAILS_BYTES) {
    throw badInput(field, `must be at most ${MAX_DETAILS_BYTES} bytes of JSON`);
  }
  const parsed = DETAILS_SCHEMAS[kind].safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  // An unknown key is reported on the key itself, not on the object holding it.
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]] : issue.path;
  const reason = issue.code === 'unrecognized_keys' ? `is not an attribute of ${kind}` : issue.message;
  throw badInput([field, ...path.map(String)].join('.'), reason);
}
