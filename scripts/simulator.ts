/**
 * The live city simulator run by `npm start`: plays the territory's devices (every kind of the
 * metric table's METRICS_BY_KIND) over MQTT with real credentials, so the control room sees a
 * living city: light points following the night and their dimming profile, classrooms' CO2
 * rising during lessons, buildings heated and set back, car parks filling and emptying, buses
 * running the GTFS blocks the hub assigned them (late at the rush hours, now and then held up by
 * an incident), traffic signals cycling and answering the hub's priority requests on their
 * downlinks, batteries draining, and now and then a lamp failing or a controller flashing amber
 * until it is repaired. Faults are only reported as telemetry
 * (`fault: true`, then `false`): the alarms they raise put the asset in FAULT through the
 * equipment domain, the simulator never writes equipment's status itself.
 *
 * Profiles are pure functions of the time (exported and unit-tested); counters (energy) are
 * integrals of them from a fixed epoch, so they keep climbing across restarts of the simulator.
 * docs/devices.md (section "The city simulator") describes what each kind reports.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { loadConfigOrExit, type Config } from '@connecte/shared/config';
import { COLLECTIVITY_IDS, signDevelopmentToken } from '@connecte/shared/auth';
import { frenchPublicHolidays } from '@connecte/shared/calendar';
import { ackTopic, downlinkTopic, METRICS, METRICS_BY_KIND, senmlPack, uplinkTopic, type MetricName } from '@connecte/shared/senml';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Europe/Paris time. The EU rule (summer time from the last Sunday of March, 01:00 UTC, to the
// last Sunday of October, 01:00 UTC) computed directly: Intl is far too slow for the energy
// integrals below, which evaluate the lighting profile hundreds of thousands of times.

function lastSundayAt0100Utc(year: number, month: number): number {
  const lastDay = new Date(Date.UTC(year, month + 1, 0, 1));
  return lastDay.getTime() - lastDay.getUTCDay() * DAY;
}

/** Summer-time starts and ends, sorted, 1996–2199 (the EU rule's years). */
const DST_CHANGES: number[] = [];
for (let year = 1996; year < 2200; year++) DST_CHANGES.push(lastSundayAt0100Utc(year, 2), lastSundayAt0100Utc(year, 9));

/** Hours Europe/Paris is ahead of UTC at `ms`: 2 in summer time, else 1. */
export function parisOffsetHours(ms: number): number {
  // Binary search: the number of changes at or before `ms` is odd in summer time.
  let low = 0;
  let high = DST_CHANGES.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (DST_CHANGES[middle] <= ms) low = middle + 1;
    else high = middle;
  }
  return low % 2 === 1 ? 2 : 1;
}

export interface ParisTime {
  /** 0 Sunday … 6 Saturday. */
  weekday: number;
  /** Hour of the day with its fraction, 0 ≤ hour < 24. */
  hour: number;
  /** 1 for 1 January. */
  dayOfYear: number;
  /** Days since 1970-01-01 of the Paris calendar day (a key for per-day caches and traits). */
  dayNumber: number;
}

/** Days since 1970-01-01 of 1 January of the year `dayNumber` falls in (civil calendar arithmetic, no Date). */
function yearStartDay(dayNumber: number): number {
  // Howard Hinnant's civil_from_days, reduced to the year.
  const z = dayNumber + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const y = year - 1;
  return 365 * y + Math.floor(y / 4) - Math.floor(y / 100) + Math.floor(y / 400) - 719_162;
}

/** The Paris wall clock at `ms`. Arithmetic only: it runs in the energy integrals' inner loops. */
export function parisTime(ms: number): ParisTime {
  const local = ms + parisOffsetHours(ms) * HOUR;
  const dayNumber = Math.floor(local / DAY);
  return {
    weekday: (((dayNumber + 4) % 7) + 7) % 7,
    hour: (local - dayNumber * DAY) / HOUR,
    dayOfYear: dayNumber - yearStartDay(dayNumber) + 1,
    dayNumber,
  };
}

/** The instant of a Paris wall-clock time (`date` `YYYY-MM-DD`, `hour` with its fraction); the first of two in the autumn's repeated hour. */
export function parisInstant(date: string, hour: number): number {
  const naive = Date.parse(`${date}T00:00:00Z`) + hour * HOUR;
  for (const offset of [2, 1]) {
    if (parisOffsetHours(naive - offset * HOUR) === offset) return naive - offset * HOUR;
  }
  return naive - HOUR; // a wall-clock time skipped in spring: the instant an hour later
}

// ---------------------------------------------------------------------------------------------
// The sun over Châlons-en-Champagne (NOAA's approximate solar equations: a minute or two of
// error, well within what a street-lighting astronomical clock needs).

export const CHALONS = { lat: 48.9566, lon: 4.3631 };
const RAD = Math.PI / 180;

function solarAngles(dayOfYear: number, hourUtc: number) {
  const g = ((2 * Math.PI) / 365) * (dayOfYear - 1 + (hourUtc - 12) / 24);
  const equationOfTimeMinutes =
    229.18 * (0.000075 + 0.001868 * Math.cos(g) - 0.032077 * Math.sin(g) - 0.014615 * Math.cos(2 * g) - 0.040849 * Math.sin(2 * g));
  const declination =
    0.006918 - 0.399912 * Math.cos(g) + 0.070257 * Math.sin(g) - 0.006758 * Math.cos(2 * g) + 0.000907 * Math.sin(2 * g) - 0.002697 * Math.cos(3 * g) + 0.00148 * Math.sin(3 * g);
  return { equationOfTimeMinutes, declination };
}

/** Height of the sun above the horizon at `ms`, in degrees (negative at night). */
export function solarElevation(ms: number): number {
  const dayNumber = Math.floor(ms / DAY);
  const hourUtc = (ms - dayNumber * DAY) / HOUR;
  const dayOfYear = dayNumber - yearStartDay(dayNumber) + 1;
  const { equationOfTimeMinutes, declination } = solarAngles(dayOfYear, hourUtc);
  const solarMinutes = hourUtc * 60 + equationOfTimeMinutes + 4 * CHALONS.lon;
  const hourAngle = (solarMinutes / 4 - 180) * RAD;
  const lat = CHALONS.lat * RAD;
  const cosZenith = Math.sin(lat) * Math.sin(declination) + Math.cos(lat) * Math.cos(declination) * Math.cos(hourAngle);
  return 90 - Math.acos(Math.max(-1, Math.min(1, cosZenith))) / RAD;
}

const sunCache = new Map<number, { sunrise: number; sunset: number }>();

/** Sunrise and sunset of a Paris day (the one `ms` falls in), in Paris hours of that day (e.g. 8.6 and 17.1 in January). */
export function sunTimes(ms: number): { sunrise: number; sunset: number } {
  return sunTimesOf(parisTime(ms));
}

function sunTimesOf({ dayNumber, dayOfYear }: ParisTime): { sunrise: number; sunset: number } {
  const cached = sunCache.get(dayNumber);
  if (cached) return cached;
  const noon = dayNumber * DAY + 11 * HOUR;
  const { equationOfTimeMinutes, declination } = solarAngles(dayOfYear, 11);
  const lat = CHALONS.lat * RAD;
  // The sun's centre 0.833° below the horizon: refraction and the disc's radius.
  const cosHourAngle = Math.cos(90.833 * RAD) / (Math.cos(lat) * Math.cos(declination)) - Math.tan(lat) * Math.tan(declination);
  const hourAngle = Math.acos(Math.max(-1, Math.min(1, cosHourAngle))) / RAD;
  const offset = parisOffsetHours(noon);
  const times = {
    sunrise: (720 - 4 * (CHALONS.lon + hourAngle) - equationOfTimeMinutes) / 60 + offset,
    sunset: (720 - 4 * (CHALONS.lon - hourAngle) - equationOfTimeMinutes) / 60 + offset,
  };
  sunCache.set(dayNumber, times);
  return times;
}

/** Whether it is night at `ms` (between sunset and sunrise, Paris time). */
export function isNight(ms: number): boolean {
  const time = parisTime(ms);
  const { sunrise, sunset } = sunTimesOf(time);
  return time.hour < sunrise || time.hour >= sunset;
}

// ---------------------------------------------------------------------------------------------
// Street lighting. A light point's astronomical clock decides its output every five minutes:
// off by day, 100 % at night, and for a dimmable one 40 % between 23:00 and 05:00 (the
// territory's energy-saving profile), raised to 100 % for a while by its presence detector.

export const LIGHT_STEP_MS = 5 * MINUTE;
export const DIMMED_LEVEL = 40;
/** How long a detection keeps a dimmed light point at full output. */
export const PRESENCE_RAISE_MS = 2 * MINUTE;

/** Light output in % that the profile sets at `ms` (constant over each five-minute step). */
export function lightLevel(dimmable: boolean, ms: number): number {
  const time = parisTime(ms - (ms % LIGHT_STEP_MS));
  const { sunrise, sunset } = sunTimesOf(time);
  const hour = time.hour;
  if (hour >= sunrise && hour < sunset) return 0;
  return dimmable && (hour >= 23 || hour < 5) ? DIMMED_LEVEL : 100;
}

/** Electrical power of a light point at `ms`, in W (an LED driver draws in proportion to its output). */
export const lightPower = (powerW: number, dimmable: boolean, ms: number) => (powerW * lightLevel(dimmable, ms)) / 100;

/** The counters' origin: 2024-01-01 00:00 Paris, before the first installation of the seed. */
export const ENERGY_EPOCH_MS = Date.UTC(2023, 11, 31, 23);
const STEPS_PER_DAY = DAY / LIGHT_STEP_MS;

/**
 * ∫ rate dt in rate·hours from ENERGY_EPOCH_MS to `ms`, the rate constant over each five-minute
 * step (evaluated at the step's start). Non-decreasing for a non-negative rate, and the same on
 * every run: the counters derived from it never go back when the simulator restarts.
 */
export class ProfileIntegral {
  /** The integral at the start of each day since the epoch. */
  private readonly days: number[] = [0];
  private prefixDay = -1;
  private prefix = new Float64Array(STEPS_PER_DAY + 1);

  constructor(private readonly rate: (stepStart: number) => number) {}

  at(ms: number): number {
    if (ms <= ENERGY_EPOCH_MS) return 0;
    const day = Math.floor((ms - ENERGY_EPOCH_MS) / DAY);
    while (this.days.length <= day) {
      const start = ENERGY_EPOCH_MS + (this.days.length - 1) * DAY;
      let sum = 0;
      for (let step = 0; step < STEPS_PER_DAY; step++) sum += this.rate(start + step * LIGHT_STEP_MS);
      this.days.push(this.days[this.days.length - 1] + (sum * LIGHT_STEP_MS) / HOUR);
    }
    const dayStart = ENERGY_EPOCH_MS + day * DAY;
    if (this.prefixDay !== day) {
      // Many devices report within the same day: the day's steps are summed once.
      this.prefix[0] = 0;
      for (let step = 0; step < STEPS_PER_DAY; step++) this.prefix[step + 1] = this.prefix[step] + (this.rate(dayStart + step * LIGHT_STEP_MS) * LIGHT_STEP_MS) / HOUR;
      this.prefixDay = day;
    }
    const step = Math.floor((ms - dayStart) / LIGHT_STEP_MS);
    const stepStart = dayStart + step * LIGHT_STEP_MS;
    return this.days[day] + this.prefix[step] + (this.rate(stepStart) * (ms - stepStart)) / HOUR;
  }
}

const LIGHT_HOURS = {
  dimmable: new ProfileIntegral((step) => lightLevel(true, step) / 100),
  plain: new ProfileIntegral((step) => lightLevel(false, step) / 100),
};

/** A light point's energy counter at `ms`, in Wh: its rated power times its profile's hours at full output since the epoch. */
export const lightEnergyWh = (powerW: number, dimmable: boolean, ms: number) => powerW * (dimmable ? LIGHT_HOURS.dimmable : LIGHT_HOURS.plain).at(ms);

/**
 * Light level at the luminaire, in lux: daylight (from the sun's height, with the day's cloud
 * cover) plus the lamp's own light on the ground below it.
 */
export function illuminance(ms: number, lampLevel: number, cloudiness = 0.5): number {
  const elevation = solarElevation(ms);
  const daylight =
    elevation >= 0 ? 400 + 100_000 * Math.sin(elevation * RAD) * (1 - 0.75 * cloudiness) : elevation > -6 ? 400 * Math.exp(elevation * 0.8) : 0.3;
  return daylight + 0.25 * lampLevel;
}

// ---------------------------------------------------------------------------------------------
// Schools, buildings, the weather.

export type SchoolPeriod = 'LESSON' | 'RECESS' | 'LUNCH' | 'CLOSED';

/**
 * The school timetable: lessons 08:30–11:30 and 13:30–16:30 on Monday, Tuesday, Thursday and
 * Friday, Wednesday morning only, with a recess at 10:00–10:15 and 15:00–15:15 (Paris time).
 * School holidays are not modelled.
 */
export function schoolPeriod(ms: number): SchoolPeriod {
  const { weekday, hour } = parisTime(ms);
  if (weekday === 0 || weekday === 6) return 'CLOSED';
  if (hour >= 8.5 && hour < 11.5) return hour >= 10 && hour < 10.25 ? 'RECESS' : 'LESSON';
  if (weekday === 3) return 'CLOSED';
  if (hour >= 11.5 && hour < 13.5) return 'LUNCH';
  if (hour >= 13.5 && hour < 16.5) return hour >= 15 && hour < 15.25 ? 'RECESS' : 'LESSON';
  return 'CLOSED';
}

export const isLesson = (ms: number) => schoolPeriod(ms) === 'LESSON';

/** Whether a sports hall is in use: weekday evenings, Wednesday and Saturday afternoons, Saturday morning. */
function sportsHallInUse(ms: number): boolean {
  const { weekday, hour } = parisTime(ms);
  if (weekday === 0) return false;
  if (weekday === 6) return (hour >= 9 && hour < 12) || (hour >= 14 && hour < 18);
  return (hour >= 17 && hour < 21.5) || (weekday === 3 && hour >= 13.5 && hour < 17.5);
}

/** Whether a building is open: a school on school days from 07:45 to 17:30 (Wednesday until 12:30), a sports hall 08:00–22:00 but Sunday afternoon. */
export function buildingOpen(use: string, ms: number): boolean {
  const { weekday, hour } = parisTime(ms);
  if (use === 'SPORTS_HALL') return weekday === 0 ? hour >= 8 && hour < 13 : hour >= 8 && hour < 22;
  if (weekday === 0 || weekday === 6) return false;
  return hour >= 7.75 && hour < (weekday === 3 ? 12.5 : 17.5);
}

/** The heating setpoint: comfort from an hour before the building opens until it closes, eco otherwise (setback at night and at weekends). */
export const heatingSetpoint = (use: string, ms: number, comfort = 19, eco = 16) =>
  buildingOpen(use, ms) || buildingOpen(use, ms + HOUR) ? comfort : eco;

/** The heating season: 15 October to 15 April. */
export function heatingSeason(ms: number): boolean {
  const { dayOfYear } = parisTime(ms);
  return dayOfYear >= 288 || dayOfYear <= 105;
}

/** A typical outdoor temperature in Châlons, in °C: 3 °C mean in January, 19 °C in July, coldest before dawn. */
export function outdoorTemperature(ms: number): number {
  const { dayOfYear, hour } = parisTime(ms);
  return 11 - 8 * Math.cos((2 * Math.PI * (dayOfYear - 20)) / 365) - 4 * Math.cos((2 * Math.PI * (hour - 4)) / 24);
}

export const OUTDOOR_CO2_PPM = 420;

/**
 * CO2 of a room after `seconds` with `people` breathing (`litresPerSecond` of CO2 each) and
 * `airChangesPerHour` of outdoor air: the well-mixed room's exact solution over a constant step.
 */
export function co2After(co2: number, room: { volumeM3: number; people: number; litresPerSecond: number; airChangesPerHour: number }, seconds: number): number {
  const rate = room.airChangesPerHour / 3600;
  const equilibrium = OUTDOOR_CO2_PPM + (room.people * room.litresPerSecond * 1e3) / (room.volumeM3 * rate);
  return equilibrium + (co2 - equilibrium) * Math.exp(-rate * seconds);
}

// ---------------------------------------------------------------------------------------------
// Car parks.

/**
 * Share of a car park's places occupied at `ms` (0–1): a smooth daily curve by type of facility
 * and day of the week, shifted and scaled a little per facility by `seed` (0–1). Surface car
 * parks fill with commuters on weekdays, underground ones (in the centre) with shoppers in the
 * afternoon and on Saturday, on-street bays at lunch and in the evening; Sunday is quiet.
 */
export function parkingShare(type: string, ms: number, seed = 0.5): number {
  const { weekday, hour } = parisTime(ms);
  const h = hour - (seed - 0.5);
  const rise = (at: number, width: number) => 1 / (1 + Math.exp(-(h - at) / width));
  const bump = (centre: number, width: number, height: number) => height * Math.exp(-(((h - centre) / width) ** 2) / 2);
  const open = (from: number, to: number, height: number) => height * rise(from, 0.5) * (1 - rise(to, 0.7));
  const scale = 0.9 + 0.2 * seed;
  const night = 0.06 + 0.06 * seed;
  let share: number;
  if (weekday === 0) share = night + open(10, 13, 0.25) + bump(16, 1.5, 0.08);
  else if (weekday === 6) share = night + open(9.5, 19, type === 'SURFACE' ? 0.5 : 0.78) + bump(15.5, 1.5, 0.1);
  else if (type === 'SURFACE') share = night + open(8.2, 17.8, 0.78) - bump(12.75, 0.6, 0.1);
  else if (type === 'ON_STREET') share = night + open(8.8, 19.2, 0.55) + bump(12.25, 1, 0.2) + bump(20.5, 1.2, 0.15);
  else share = night + open(9.3, 19, 0.6) + bump(16, 1.5, 0.18);
  return Math.max(0.02, Math.min(0.98, night + (share - night) * scale));
}

// ---------------------------------------------------------------------------------------------
// Batteries.

/** Days a battery lasts, by kind. */
const BATTERY_LIFE_DAYS: Partial<Record<string, number>> = { PRESENCE_DETECTOR: 4 * 365, AIR_QUALITY_SENSOR: 5 * 365, PARKING_SENSOR: 6 * 365 };

/**
 * Battery level in % at `ms` of a device whose battery lasts `lifeDays`: a slow drain to 30 %
 * over 97 % of its life, then a quick fall to 3 % before it is replaced (back to 100 %). Each
 * device is at its own point of the cycle (from its id), the same on every run.
 */
export function batteryLevel(id: string, ms: number, lifeDays: number): number {
  const life = lifeDays * DAY;
  const x = (((ms - ENERGY_EPOCH_MS + hash01(`${id}:battery`) * life) % life) + life) % life / life;
  return x < 0.97 ? 100 - (70 * x) / 0.97 : 30 - (27 * (x - 0.97)) / 0.03;
}

// ---------------------------------------------------------------------------------------------
// Randomness: a device's fixed traits come from its id (the same on every run); noise comes
// from a seeded generator.

/** A number in [0, 1) from a string (FNV-1a). */
export function hash01(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) / 2 ** 32;
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

type Random = () => number;

function poisson(random: Random, mean: number): number {
  if (mean <= 0) return 0;
  if (mean > 30) return Math.max(0, Math.round(mean + Math.sqrt(mean) * gaussian(random)));
  const limit = Math.exp(-mean);
  let count = 0;
  for (let p = random(); p > limit; p *= random()) count++;
  return count;
}

function gaussian(random: Random): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

const round = (value: number, digits = 1) => Number(value.toFixed(digits));
const clamp = (value: number, low: number, high: number) => Math.max(low, Math.min(high, value));

// ---------------------------------------------------------------------------------------------
// The devices.

export type SimulatedKind = keyof typeof METRICS_BY_KIND;
export const SIMULATED_KINDS = Object.keys(METRICS_BY_KIND) as SimulatedKind[];
type Values = Partial<Record<MetricName, number | boolean>>;

/** An asset as loaded from the gateway. */
export interface DeviceSummary {
  id: string;
  kind: SimulatedKind;
  collectivityId: string;
  status: string;
  parentId: string | null;
  lon: number | null;
  lat: number | null;
  /** `details` as the gateway returns them (a generic kind's `attributes`). */
  details: Record<string, unknown>;
}

interface World {
  random: Random;
  buildings: Map<string, Building>;
  /** Light point id → until when its presence detector keeps it at full output. */
  raisedUntil: Map<string, number>;
  stops: { lon: number; lat: number }[];
  buses: BusModel[];
  busById: Map<string, BusModel>;
  parkingSensors: Map<string, ParkingSensorModel[]>;
  /** The buses' blocks from the hub (null: a hub without the mobility service). */
  transit: TransitSchedule | null;
  /** Where each bus stands when not running: its depot slot. */
  homes: Map<string, { lon: number; lat: number }>;
}

interface Model {
  /** Advances the device to `ms` and returns every metric of its kind. */
  read(ms: number): Values;
  /** Whether its state changed since its last report in a way it reports at once (a priority that ended). */
  stateChanged?(ms: number): boolean;
}

/** Whether the model can break down (`fault`), and its state. */
interface Faulty {
  faultSince: number | null;
  breakDown(ms: number): void;
  repair(ms: number): void;
}

const isFaulty = (model: Model): model is Model & Faulty => 'faultSince' in model;

class LightPointModel implements Model, Faulty {
  faultSince: number | null = null;
  /** Energy not drawn while failed: the counter stands still during a fault, and never goes back. */
  private lostWh = 0;
  private readonly powerW: number;
  private readonly dimmable: boolean;

  constructor(private readonly device: DeviceSummary, private readonly world: World) {
    this.powerW = Number(device.details.powerW ?? 40);
    this.dimmable = device.details.dimmable === true;
  }

  breakDown(ms: number) {
    this.faultSince ??= ms;
  }

  repair(ms: number) {
    if (this.faultSince === null) return;
    this.lostWh += lightEnergyWh(this.powerW, this.dimmable, ms) - lightEnergyWh(this.powerW, this.dimmable, this.faultSince);
    this.faultSince = null;
  }

  read(ms: number): Values {
    const scheduled = lightLevel(this.dimmable, ms);
    const raised = scheduled === DIMMED_LEVEL && (this.world.raisedUntil.get(this.device.id) ?? 0) > ms;
    const level = raised ? 100 : scheduled;
    const failed = this.faultSince !== null;
    const energy = lightEnergyWh(this.powerW, this.dimmable, failed ? this.faultSince! : ms) - this.lostWh;
    const cloudiness = hash01(`${parisTime(ms).dayNumber}:clouds`);
    return {
      power: failed ? 0 : round((this.powerW * level) / 100),
      energy: round(energy),
      dim_level: level,
      illuminance: round(illuminance(ms, failed ? 0 : level, cloudiness) * (0.97 + 0.06 * this.world.random())),
      fault: failed,
    };
  }
}

class PresenceDetectorModel implements Model {
  private last: number | null = null;
  private readonly sensitivity: number;

  constructor(private readonly device: DeviceSummary, private readonly world: World) {
    this.sensitivity = 0.4 + 1.2 * hash01(device.id);
  }

  read(ms: number): Values {
    const minutes = this.last === null ? 1 : clamp((ms - this.last) / MINUTE, 0, 60);
    this.last = ms;
    const detections = poisson(this.world.random, presenceRatePerMinute(parisTime(ms).hour) * this.sensitivity * minutes);
    const lightPointId = this.device.details.lightPointId;
    if (detections > 0 && typeof lightPointId === 'string') this.world.raisedUntil.set(lightPointId, ms + PRESENCE_RAISE_MS);
    return { presence: detections, battery: round(batteryLevel(this.device.id, ms, BATTERY_LIFE_DAYS.PRESENCE_DETECTOR!)) };
  }
}

/** Detections per minute of a street presence detector, by Paris hour: quiet in the small hours, busy at the rush hours. */
export function presenceRatePerMinute(hour: number): number {
  if (hour < 5) return 0.15;
  if (hour < 7) return 0.8;
  if (hour < 9.5) return 3;
  if (hour < 16.5) return 2;
  if (hour < 19.5) return 3.5;
  if (hour < 23) return 1.5;
  return 0.4;
}

/** A building's air temperature, shared by its heating controller and its air-quality sensors. */
class Building {
  temperature: number;
  private last: number;
  readonly use: string;
  readonly comfort: number;
  readonly eco: number;

  constructor(readonly id: string, details: Record<string, unknown>, controller: Record<string, unknown>, ms: number) {
    this.use = String(details.use ?? 'SCHOOL');
    this.comfort = Number(controller.comfortSetpointC ?? 19);
    this.eco = Number(controller.ecoSetpointC ?? 16);
    // Two days of history so a restart finds the building as it would be, not at a standstill.
    this.last = ms - 2 * DAY;
    this.temperature = this.eco;
    this.advance(ms);
  }

  setpoint(ms: number) {
    return heatingSetpoint(this.use, ms, this.comfort, this.eco);
  }

  advance(ms: number) {
    while (this.last < ms) {
      const step = Math.min(5 * MINUTE, ms - this.last);
      const at = this.last;
      const setpoint = this.setpoint(at);
      const free = outdoorTemperature(at) + 4;
      const hours = step / HOUR;
      if (!heatingSeason(at) || free >= setpoint) this.temperature += (free + 1 - this.temperature) * (1 - Math.exp(-hours / 8));
      else if (this.temperature < setpoint) this.temperature += (setpoint + 0.3 - this.temperature) * (1 - Math.exp(-hours / 1.2));
      else this.temperature = Math.max(setpoint - 0.1, this.temperature + (free - this.temperature) * (1 - Math.exp(-hours / 10)));
      this.last = at + step;
    }
  }
}

class HeatingControllerModel implements Model {
  constructor(private readonly building: Building, private readonly world: World) {}

  read(ms: number): Values {
    this.building.advance(ms);
    return { temperature: round(this.building.temperature + 0.1 * gaussian(this.world.random)), setpoint: this.building.setpoint(ms) };
  }
}

/** An air-quality sensor: a classroom (CO2 following lessons, breaks and airing) or a sports hall's room. */
class AirQualityModel implements Model {
  private co2 = OUTDOOR_CO2_PPM + 30;
  private last: number;
  private airingUntil = 0;
  private readonly classroom: boolean;
  private readonly volumeM3: number;
  private readonly leakAch: number;
  private readonly pupils: number;
  private readonly airingAbove: number;

  constructor(private readonly device: DeviceSummary, private readonly building: Building | undefined, private readonly world: World, ms: number) {
    this.classroom = /^Classe\b/.test(String(device.details.room ?? '')) || building?.use === 'SCHOOL';
    const trait = hash01(device.id);
    this.volumeM3 = this.classroom ? 150 + 60 * trait : 1500 + 2500 * trait;
    // Closed windows: old classrooms leak 0.7 air changes an hour, renovated ones with ventilation 2.5.
    this.leakAch = 0.7 + 1.8 * hash01(`${device.id}:ach`);
    this.pupils = 20 + Math.floor(9 * hash01(`${device.id}:pupils`));
    // Teachers open the windows when the room's CO2 display passes a threshold of their own.
    this.airingAbove = 1300 + 700 * hash01(`${device.id}:airing`);
    this.last = ms - 6 * HOUR;
    this.advance(ms);
  }

  /** People in the room at `ms`. */
  private occupants(ms: number): number {
    if (this.classroom) {
      if (!isLesson(ms)) return 0;
      const { dayNumber, hour } = parisTime(ms);
      return this.pupils + 1 - Math.floor(3 * hash01(`${this.device.id}:${dayNumber}:${hour < 12}`));
    }
    return sportsHallInUse(ms) ? 8 + Math.floor(18 * hash01(`${this.device.id}:${parisTime(ms).dayNumber}`)) : 0;
  }

  private airChanges(ms: number, people: number): number {
    if (ms < this.airingUntil) return 6;
    if (this.classroom) {
      const period = schoolPeriod(ms);
      if (period === 'RECESS') return 6;
      if (period === 'LUNCH' && parisTime(ms).hour < 11.75) return 6;
    }
    return people > 0 && !this.classroom ? this.leakAch + 1 : this.leakAch;
  }

  private advance(ms: number) {
    while (this.last < ms) {
      const step = Math.min(MINUTE, ms - this.last);
      const at = this.last;
      const people = this.occupants(at);
      if (people > 0 && this.classroom && this.co2 > this.airingAbove && at >= this.airingUntil) this.airingUntil = at + 10 * MINUTE;
      this.co2 = co2After(
        this.co2,
        { volumeM3: this.volumeM3, people, litresPerSecond: this.classroom ? 0.0045 : 0.012, airChangesPerHour: this.airChanges(at, people) },
        step / 1000,
      );
      this.last = at + step;
    }
  }

  read(ms: number): Values {
    this.advance(ms);
    const people = this.occupants(ms);
    const random = this.world.random;
    this.building?.advance(ms);
    const roomTemperature = (this.building?.temperature ?? 19) + (people > 0 ? 0.8 : 0);
    const outdoorPm = 7 + 5 * Math.exp(-(((parisTime(ms).hour - 8.5) / 1.5) ** 2) / 2) + (heatingSeason(ms) ? 4 : 0);
    return {
      co2: Math.round(this.co2 * (1 + 0.01 * gaussian(random))),
      temperature: round(roomTemperature + 0.15 * gaussian(random)),
      humidity: round(clamp(40 + (6 * (this.co2 - OUTDOOR_CO2_PPM)) / 1000 + 1.5 * gaussian(random), 20, 80)),
      pm2_5: round(Math.max(1, 0.6 * outdoorPm + (people > 0 ? 3 : 0) + gaussian(random))),
      occupancy: people,
      battery: round(batteryLevel(this.device.id, ms, BATTERY_LIFE_DAYS.AIR_QUALITY_SENSOR!)),
    };
  }
}

/** Power of a building's meter per m² at `ms`, in W: electricity (lights, equipment) or heat (gas, district heating). */
export function buildingPowerPerM2(use: string, carrier: string, ms: number): number {
  const open = buildingOpen(use, ms);
  if (carrier === 'ELECTRICITY') return 1.5 + (open ? (use === 'SPORTS_HALL' ? 6 : 8) : 0);
  const hotWater = use === 'SPORTS_HALL' ? 3 : 1;
  if (!heatingSeason(ms)) return hotWater;
  const comfort = open || buildingOpen(use, ms + HOUR);
  return hotWater + (comfort ? 45 : 18) * Math.max(0, 18 - outdoorTemperature(ms)) / 15;
}

const meterIntegrals = new Map<string, ProfileIntegral>();

class EnergyMeterModel implements Model {
  private readonly integral: ProfileIntegral;
  private readonly use: string;
  private readonly carrier: string;
  private readonly areaM2: number;

  constructor(device: DeviceSummary, building: Record<string, unknown> | undefined, ms: number) {
    this.use = String(building?.use ?? 'SCHOOL');
    this.carrier = String(device.details.carrier ?? 'ELECTRICITY');
    this.areaM2 = Number(building?.heatedAreaM2 ?? 1000);
    const key = `${this.use}/${this.carrier === 'ELECTRICITY' ? 'ELECTRICITY' : 'HEAT'}`;
    let integral = meterIntegrals.get(key);
    if (!integral) {
      const use = this.use;
      const carrier = this.carrier;
      integral = new ProfileIntegral((step) => buildingPowerPerM2(use, carrier, step));
      meterIntegrals.set(key, integral);
    }
    this.integral = integral;
    this.integral.at(ms);
  }

  read(ms: number): Values {
    const step = ms - (ms % LIGHT_STEP_MS);
    return { power: Math.round(this.areaM2 * buildingPowerPerM2(this.use, this.carrier, step)), energy: Math.round(this.areaM2 * this.integral.at(ms)) };
  }
}

/** A facility's capacity from its details: a whole number ≥ 0, 200 when missing or unreadable. */
export function facilityCapacity(details: Record<string, unknown>): number {
  const capacity = Number(details.capacity ?? 200);
  return Number.isFinite(capacity) && capacity >= 0 ? Math.floor(capacity) : 200;
}

/** A counted car park's occupied places: its curve's share with a relative `noise`, never below 0 nor above `capacity`. */
export const facilityOccupancy = (capacity: number, share: number, noise: number) => Math.round(clamp(share * (1 + noise), 0, 1) * capacity);

class ParkingFacilityModel implements Model {
  private readonly capacity: number;
  private readonly type: string;
  /** The entry/exit counter's drift from the curve: a slow random walk (3 %, a few minutes' memory), not a new draw every minute. */
  private noise = 0;
  private last: number | null = null;

  constructor(private readonly device: DeviceSummary, private readonly world: World) {
    this.capacity = facilityCapacity(device.details);
    this.type = String(device.details.type ?? 'SURFACE');
  }

  read(ms: number): Values {
    // An on-street sector counts its bays' sensors when they are played; otherwise its own curve.
    const sensors = this.world.parkingSensors.get(this.device.id);
    if (sensors?.length) {
      const occupied = sensors.reduce((sum, sensor) => sum + sensor.occupiedAt(ms), 0);
      return { occupancy: Math.min(this.capacity, Math.round((occupied * this.capacity) / sensors.length)) };
    }
    const minutes = this.last === null ? 60 : clamp((ms - this.last) / MINUTE, 0, 60);
    this.last = ms;
    const keep = Math.pow(0.85, minutes);
    this.noise = keep * this.noise + Math.sqrt(1 - keep * keep) * 0.03 * gaussian(this.world.random);
    return { occupancy: facilityOccupancy(this.capacity, parkingShare(this.type, ms, hash01(this.device.id)), this.noise) };
  }
}

/** One bay: a car arrives and leaves at random, at rates that keep its occupancy near its sector's curve. */
class ParkingSensorModel implements Model {
  private occupied: boolean;
  private last: number;
  private readonly type: string;
  private readonly seed: number;

  constructor(private readonly device: DeviceSummary, facility: Record<string, unknown> | undefined, private readonly world: World, ms: number) {
    this.type = String(facility?.type ?? 'ON_STREET');
    this.seed = hash01(String(device.parentId ?? device.id));
    this.occupied = world.random() < parkingShare(this.type, ms, this.seed);
    this.last = ms;
  }

  occupiedAt(ms: number): number {
    while (this.last < ms) {
      const step = Math.min(MINUTE, ms - this.last);
      const share = parkingShare(this.type, this.last, this.seed);
      const leaveRate = 1 / 75; // stays of 75 minutes on average, per minute
      const arriveRate = (leaveRate * share) / (1 - share);
      const rate = this.occupied ? leaveRate : arriveRate;
      if (this.world.random() < 1 - Math.exp((-rate * step) / MINUTE)) this.occupied = !this.occupied;
      this.last += step;
    }
    return this.occupied ? 1 : 0;
  }

  read(ms: number): Values {
    return { occupancy: this.occupiedAt(ms), battery: round(batteryLevel(this.device.id, ms, BATTERY_LIFE_DAYS.PARKING_SENSOR!)) };
  }
}

const METRES_PER_DEGREE_LAT = 111_320;
const metresPerDegreeLon = (lat: number) => 111_320 * Math.cos(lat * RAD);

function distanceMetres(a: { lon: number; lat: number }, b: { lon: number; lat: number }) {
  return Math.hypot((b.lon - a.lon) * metresPerDegreeLon(a.lat), (b.lat - a.lat) * METRES_PER_DEGREE_LAT);
}

// ---------------------------------------------------------------------------------------------
// Buses on their GTFS blocks. The hub assigns each bus a block (a day's chain of trips); the bus
// plays it: out of its depot in time for its first departure, each trip stop to stop along the
// trip's shape with a delay model (traffic by hour and day type, dwell by stop and hour, now and
// then an incident), catching up on layovers, back to the depot after its last trip. The whole
// day is planned at once, a pure function of the block and a seed per bus and day: the same
// positions on every run, and a restart finds each bus where it would be.

/** A call of a trip at a stop, times in seconds from the service day's origin (GTFS: noon minus 12 h). */
export interface PlannedCall {
  stopSequence: number;
  stopId: string;
  arrival: number;
  departure: number;
  /** Distance along the trip's shape (GTFS `shape_dist_traveled`), metres. */
  dist: number;
}

export interface PlannedTrip {
  id: string;
  routeId: string | null;
  /** `[lon, lat]` positions. */
  shape: [number, number][];
  calls: PlannedCall[];
}

/** A bus's block on a service day, as `vehicleAssignments` gives it. */
export interface BlockAssignment {
  serviceDate: string;
  blockId: string;
  vehicleId: string;
  trips: PlannedTrip[];
}

/** `HH:MM:SS` (hours may pass 24) in seconds; throws on anything else. */
export function parseGtfsTime(text: string): number {
  const match = /^(\d{1,3}):([0-5]\d):([0-5]\d)$/.exec(text.trim());
  if (!match) throw new Error(`not a GTFS time: ${JSON.stringify(text)}`);
  return Number(match[1]) * 3600 + Number(match[2]) * 60 + Number(match[3]);
}

/** The instant GTFS times of a service day count from: noon minus 12 hours, Paris time (midnight but on summer-time change days). */
export const serviceDayOrigin = (date: string) => parisInstant(date, 12) - 12 * HOUR;

/** The Paris calendar date of `ms`, `YYYY-MM-DD`. */
export function parisDate(ms: number): string {
  const { dayNumber } = parisTime(ms);
  return new Date(dayNumber * DAY).toISOString().slice(0, 10);
}

const addDays = (date: string, days: number) => new Date(Date.parse(`${date}T00:00:00Z`) + days * DAY).toISOString().slice(0, 10);

export type DayType = 'WEEKDAY' | 'SATURDAY' | 'SUNDAY';

/** How traffic runs on a date: weekday, Saturday, or Sunday (public holidays too). */
export function dayTypeOf(date: string): DayType {
  if (frenchPublicHolidays(Number(date.slice(0, 4))).includes(date)) return 'SUNDAY';
  const weekday = new Date(`${date}T12:00:00Z`).getUTCDay();
  return weekday === 0 ? 'SUNDAY' : weekday === 6 ? 'SATURDAY' : 'WEEKDAY';
}

const bump = (x: number, centre: number, width: number, height: number) => height * Math.exp(-(((x - centre) / width) ** 2) / 2);

/**
 * Running time against the timetable's at a Paris `hour` (1: as scheduled): the timetable is
 * written for an average day, so buses run a little early in the quiet hours and late in the rush
 * hours — on weekdays 07:15–09:00 (+20 %) and 16:30–18:45 (+24 %), a smaller lunch peak; on
 * Saturday late morning and afternoon, shoppers; on Sunday and public holidays, empty streets.
 */
export function trafficFactor(hour: number, dayType: DayType): number {
  if (dayType === 'SUNDAY') return 0.9 + bump(hour, 11.5, 1.5, 0.04) + bump(hour, 17, 1.5, 0.04);
  if (dayType === 'SATURDAY') return 0.93 + bump(hour, 11.25, 1.3, 0.11) + bump(hour, 16, 1.6, 0.13);
  return 0.94 + bump(hour, 8.1, 0.75, 0.2) + bump(hour, 12.4, 0.7, 0.06) + bump(hour, 17.6, 0.95, 0.24);
}

/** Passengers boarding or alighting at an average stop per bus call, by hour and day type. */
export function stopDemand(hour: number, dayType: DayType): number {
  const scale = dayType === 'SUNDAY' ? 0.35 : dayType === 'SATURDAY' ? 0.7 : 1;
  const base = hour < 6.5 || hour >= 20.5 ? 0.6 : 1.6;
  const peaks = dayType === 'WEEKDAY' ? bump(hour, 7.9, 0.7, 3) + bump(hour, 12.2, 0.8, 1.2) + bump(hour, 17.3, 1, 2.6) : bump(hour, 15, 2.5, 1.2);
  return scale * (base + peaks);
}

/** How busy a stop is against the average (0.4–2.2, the same on every run): a few stops in the centre and at the station take most of the passengers. */
export const stopBusyness = (stopId: string) => {
  const u = hash01(`${stopId}:busy`);
  return 0.4 + 1.8 * u * u;
};

/**
 * Seconds a bus stands at a stop: none when nobody is waiting and nobody rings (`null`: it passes
 * without stopping), else doors 8 s and 2.5 s a passenger, at most 90 s. `u` is uniform in [0, 1).
 */
export function dwellSeconds(stopId: string, hour: number, dayType: DayType, u: number): number | null {
  const mean = stopBusyness(stopId) * stopDemand(hour, dayType);
  // P(nobody) for a Poisson count of that mean, then the count drawn from the same `u`.
  if (u < Math.exp(-mean)) return null;
  const passengers = Math.max(1, Math.round(mean * (0.4 + 1.2 * ((u - Math.exp(-mean)) / (1 - Math.exp(-mean))))));
  return Math.min(90, 8 + 2.5 * passengers);
}

/** The delay model's knobs (tests turn parts of it off). */
export interface DelayModel {
  /** Multiplies the deviation of `trafficFactor` from 1 (0: buses run exactly to the timetable between stops). Default 1. */
  traffic?: number;
  /** Multiplies the incident rate (0: none). Default 1. */
  incidents?: number;
  /** Passengers at stops (false: buses stop at every stop for 15 s). Default true. */
  dwell?: boolean;
  /** Standard deviation of the running time's noise per leg (0: none). Default 0.08. */
  noise?: number;
}

/** Incidents (a delivery van in the way, a wheelchair ramp stuck, roadworks) per hour of running, by hour: rarer in the quiet hours. */
export const incidentsPerHour = (hour: number, dayType: DayType) => (dayType === 'WEEKDAY' ? 0.06 + bump(hour, 8, 1, 0.1) + bump(hour, 17.5, 1.2, 0.12) : 0.05);

/** Acceleration and braking of a city bus, m/s². */
const BUS_ACCELERATION = 0.9;
/** Top speed between stops (inter-town roads), m/s. */
const BUS_TOP_SPEED = 20;
/** Driving without passengers (to and from the depot, between trips): straight lines at this speed, m/s, stretched by DEADHEAD_DETOUR for the streets' detours. */
const DEADHEAD_SPEED = 9;
const DEADHEAD_DETOUR = 1.3;
/** A bus leaves a stop at most this early against its timetable: the driver waits. */
export const EARLY_TOLERANCE_S = 20;
/** The least a driver stands at a trip's end before the next departure (doors, sign, ticket machine). */
export const MIN_LAYOVER_S = 90;
/** A bus is at its first stop this long before its first departure. */
const PULL_OUT_MARGIN_S = 300;
/** A layover longer than this with the depot near enough: the bus goes back to the depot in between. */
const DEPOT_BREAK_S = 2 * 3600;

export type BusPhase = 'DEPOT' | 'PULL_OUT' | 'LAYOVER' | 'DWELL' | 'IN_TRANSIT' | 'INCIDENT' | 'DEADHEAD' | 'PULL_IN';

/** One piece of a bus's day: standing, driving along a trip's shape, or driving straight (deadhead). */
type Piece =
  | { kind: 'stand'; from: number; to: number; phase: BusPhase; at: { lon: number; lat: number }; trip: number | null; dist: number | null }
  | { kind: 'shape'; from: number; to: number; trip: number; fromDist: number; toDist: number; cruise: number }
  | { kind: 'straight'; from: number; to: number; phase: BusPhase; a: { lon: number; lat: number }; b: { lon: number; lat: number }; length: number; cruise: number };

/** A trip as played: its calls' actual times (ms). */
export interface PlayedTrip {
  trip: PlannedTrip;
  /** The service day's origin (ms). */
  origin: number;
  /** Per call: when the bus arrived and left (ms), and whether it stopped. */
  actual: { arrival: number; departure: number; stopped: boolean }[];
  /** Cumulative lengths of the shape's segments, metres. */
  lengths: number[];
}

export interface BusDay {
  vehicleId: string;
  home: { lon: number; lat: number };
  trips: PlayedTrip[];
  pieces: Piece[];
}

/** Cumulative lengths of a polyline's vertices from its start, metres. */
export function polylineLengths(line: [number, number][]): number[] {
  const lengths = [0];
  for (let i = 1; i < line.length; i++) {
    lengths.push(lengths[i - 1] + distanceMetres({ lon: line[i - 1][0], lat: line[i - 1][1] }, { lon: line[i][0], lat: line[i][1] }));
  }
  return lengths;
}

/** The point `dist` metres along a polyline (clamped to its ends), and its bearing there (degrees clockwise from north). */
export function pointAlong(line: [number, number][], lengths: number[], dist: number): { lon: number; lat: number; bearing: number } {
  if (line.length === 0) return { lon: CHALONS.lon, lat: CHALONS.lat, bearing: 0 };
  if (line.length === 1) return { lon: line[0][0], lat: line[0][1], bearing: 0 };
  const total = lengths[lengths.length - 1];
  const d = clamp(dist, 0, total);
  let low = 0;
  let high = lengths.length - 1;
  while (high - low > 1) {
    const middle = (low + high) >>> 1;
    if (lengths[middle] <= d) low = middle;
    else high = middle;
  }
  const span = lengths[high] - lengths[low];
  const f = span > 0 ? (d - lengths[low]) / span : 0;
  const [lon1, lat1] = line[low];
  const [lon2, lat2] = line[high];
  return { lon: lon1 + (lon2 - lon1) * f, lat: lat1 + (lat2 - lat1) * f, bearing: bearingOf({ lon: lon1, lat: lat1 }, { lon: lon2, lat: lat2 }) };
}

/** Bearing from `a` to `b`, degrees clockwise from north (0 ≤ b < 360). */
export function bearingOf(a: { lon: number; lat: number }, b: { lon: number; lat: number }): number {
  const east = (b.lon - a.lon) * metresPerDegreeLon(a.lat);
  const north = (b.lat - a.lat) * METRES_PER_DEGREE_LAT;
  return ((Math.atan2(east, north) / RAD) % 360 + 360) % 360;
}

/** The least time to drive `distance` metres from standstill to standstill with a top speed of `top`. */
function leastTime(distance: number, top: number): number {
  if (distance <= 0) return 0;
  return distance > (top * top) / BUS_ACCELERATION ? distance / top + top / BUS_ACCELERATION : 2 * Math.sqrt(distance / BUS_ACCELERATION);
}

/** The cruising speed that drives `distance` metres in `seconds` from standstill to standstill (accelerating and braking at BUS_ACCELERATION); `seconds` at least `leastTime`. */
function cruiseSpeed(distance: number, seconds: number): number {
  if (distance <= 0 || seconds <= 0) return 0;
  const a = BUS_ACCELERATION;
  const discriminant = a * a * seconds * seconds - 4 * a * distance;
  return discriminant <= 0 ? Math.sqrt(a * distance) : (a * seconds - Math.sqrt(discriminant)) / 2;
}

/** Distance covered and speed `t` seconds into a drive of `distance` metres lasting `seconds` at cruising speed `v` (a trapezoid of speeds). */
export function trapezoid(distance: number, seconds: number, v: number, t: number): { covered: number; speed: number } {
  if (distance <= 0 || seconds <= 0 || v <= 0) return { covered: t >= seconds ? distance : 0, speed: 0 };
  const a = BUS_ACCELERATION;
  const ramp = Math.min(v / a, seconds / 2);
  const top = Math.min(v, a * ramp);
  if (t <= 0) return { covered: 0, speed: 0 };
  if (t >= seconds) return { covered: distance, speed: 0 };
  let covered: number;
  let speed: number;
  if (t < ramp) {
    covered = (a * t * t) / 2;
    speed = a * t;
  } else if (t <= seconds - ramp) {
    covered = (a * ramp * ramp) / 2 + top * (t - ramp);
    speed = top;
  } else {
    const left = seconds - t;
    covered = distance - (a * left * left) / 2;
    speed = a * left;
  }
  return { covered: clamp(covered, 0, distance), speed };
}

const planSeed = (vehicleId: string, serviceDate: string) => Math.floor(hash01(`${vehicleId}:${serviceDate}:delays`) * 2 ** 32);

/**
 * Plans a bus's blocks (in time order; usually yesterday's, running past midnight, and today's):
 * every stop's actual arrival and departure, and the pieces of its day between them. A pure
 * function of its arguments: the noise comes from a seed per bus and service day.
 */
export function planBusDay(vehicleId: string, home: { lon: number; lat: number }, blocks: BlockAssignment[], model: DelayModel = {}): BusDay {
  const trafficScale = model.traffic ?? 1;
  const incidentScale = model.incidents ?? 1;
  const noise = model.noise ?? 0.08;
  const pieces: Piece[] = [];
  const played: PlayedTrip[] = [];
  const stand = (from: number, to: number, phase: BusPhase, at: { lon: number; lat: number }, trip: number | null = null, dist: number | null = null) => {
    if (to > from) pieces.push({ kind: 'stand', from, to, phase, at, trip, dist });
  };
  /** Metres and seconds of a deadhead from `a` to `b`: the streets' detours as a longer straight line. */
  const deadhead = (a: { lon: number; lat: number }, b: { lon: number; lat: number }) => {
    const length = distanceMetres(a, b) * DEADHEAD_DETOUR;
    return { length, seconds: length < 1 ? 0 : length / DEADHEAD_SPEED + DEADHEAD_SPEED / BUS_ACCELERATION };
  };
  const straight = (from: number, phase: BusPhase, a: { lon: number; lat: number }, b: { lon: number; lat: number }): number => {
    const { length, seconds } = deadhead(a, b);
    if (seconds === 0) return from;
    const to = from + seconds * 1000;
    pieces.push({ kind: 'straight', from, to, phase, a, b, length, cruise: cruiseSpeed(length, seconds) });
    return to;
  };
  const straightSeconds = (a: { lon: number; lat: number }, b: { lon: number; lat: number }) => deadhead(a, b).seconds;

  let where = home;
  /** When the bus is free to start what comes next (ms); -Infinity at the depot. */
  let free = -Infinity;
  let atDepot = true;
  for (const block of blocks) {
    const origin = serviceDayOrigin(block.serviceDate);
    const dayType = dayTypeOf(block.serviceDate);
    const random = mulberry32(planSeed(vehicleId, block.serviceDate));
    // The driver's day: some run a little faster or slower than others.
    const driver = 1 + 0.04 * gaussian(random);
    const trips = block.trips.filter((t) => t.calls.length >= 2).slice().sort((a, b) => a.calls[0].departure - b.calls[0].departure);
    for (const trip of trips) {
      const lengths = polylineLengths(trip.shape);
      const firstCall = trip.calls[0];
      const start = pointAlong(trip.shape, lengths, firstCall.dist);
      const scheduledStart = origin + firstCall.departure * 1000;
      // Getting to the first stop: from the depot (pull-out), or from the previous trip's end.
      const travel = straightSeconds(where, start) * 1000;
      if (atDepot) {
        const leave = Math.max(free, scheduledStart - PULL_OUT_MARGIN_S * 1000 - travel);
        stand(Number.isFinite(free) ? free : leave - DAY, leave, 'DEPOT', where);
        free = straight(leave, 'PULL_OUT', where, start);
      } else {
        // A gap long enough for a break at the depot, once the trips there and back are counted.
        const toDepot = straightSeconds(where, home) * 1000;
        const fromDepot = straightSeconds(home, start) * 1000;
        if (scheduledStart - free - toDepot - fromDepot - 60_000 > DEPOT_BREAK_S * 1000) {
          stand(free, free + 60_000, 'LAYOVER', where);
          const back = straight(free + 60_000, 'PULL_IN', where, home);
          const leave = scheduledStart - PULL_OUT_MARGIN_S * 1000 - fromDepot;
          stand(back, leave, 'DEPOT', home);
          free = straight(leave, 'PULL_OUT', home, start);
        } else if (travel > 0) {
          stand(free, free + 60_000, 'LAYOVER', where);
          free = straight(free + 60_000, 'DEADHEAD', where, start);
        }
      }
      atDepot = false;
      const index = played.length;
      const actual: PlayedTrip['actual'] = [];
      // At the first stop: the layover, then boarding; never before the timetable.
      const firstHour = parisTime(scheduledStart).hour;
      const boarding = model.dwell === false ? 15 : dwellSeconds(firstCall.stopId, firstHour, dayType, random()) ?? 10;
      let departure = Math.max(scheduledStart, free + Math.max(MIN_LAYOVER_S, boarding) * 1000);
      stand(free, departure, 'LAYOVER', start, index, firstCall.dist);
      actual.push({ arrival: free, departure, stopped: true });
      let legFrom = 0;
      for (let c = 1; c < trip.calls.length; c++) {
        const call = trip.calls[c];
        const last = c === trip.calls.length - 1;
        const hour = parisTime(departure).hour;
        // Does anyone get off or on? A bus passes a stop nobody asked for.
        const dwell = last ? 0 : model.dwell === false ? 15 : dwellSeconds(call.stopId, hour, dayType, random());
        if (dwell === null && !last) {
          actual.push({ arrival: NaN, departure: NaN, stopped: false });
          continue;
        }
        // The leg from the previous stop the bus stood at to this one.
        const from = trip.calls[legFrom];
        const distance = Math.max(0, call.dist - from.dist);
        const scheduled = Math.max(1, call.arrival - from.departure);
        const factor = (1 + trafficScale * (trafficFactor(hour, dayType) - 1)) * driver * Math.exp(noise * gaussian(random));
        let seconds = Math.max(leastTime(distance, BUS_TOP_SPEED), scheduled * factor);
        // An incident on the way: stopped somewhere along the leg for one to six minutes.
        const incident = random() < 1 - Math.exp((-incidentsPerHour(hour, dayType) * incidentScale * seconds) / 3600);
        if (incident && distance > 50) {
          const stoppedFor = 60 + 300 * random();
          const at = 0.2 + 0.6 * random();
          const first = distance * at;
          const firstSeconds = Math.max(leastTime(first, BUS_TOP_SPEED), seconds * at);
          const secondSeconds = Math.max(leastTime(distance - first, BUS_TOP_SPEED), seconds * (1 - at));
          pieces.push({ kind: 'shape', from: departure, to: departure + firstSeconds * 1000, trip: index, fromDist: from.dist, toDist: from.dist + first, cruise: cruiseSpeed(first, firstSeconds) });
          const stuck = departure + firstSeconds * 1000;
          stand(stuck, stuck + stoppedFor * 1000, 'INCIDENT', pointAlong(trip.shape, lengths, from.dist + first), index, from.dist + first);
          const resume = stuck + stoppedFor * 1000;
          pieces.push({ kind: 'shape', from: resume, to: resume + secondSeconds * 1000, trip: index, fromDist: from.dist + first, toDist: call.dist, cruise: cruiseSpeed(distance - first, secondSeconds) });
          seconds = firstSeconds + stoppedFor + secondSeconds;
        } else {
          pieces.push({ kind: 'shape', from: departure, to: departure + seconds * 1000, trip: index, fromDist: from.dist, toDist: call.dist, cruise: cruiseSpeed(distance, seconds) });
        }
        const arrival = departure + seconds * 1000;
        // Early at a stop? The driver waits (a little early is tolerated); the last stop has no departure.
        departure = last ? arrival : Math.max(arrival + (dwell ?? 0) * 1000, origin + (call.departure - EARLY_TOLERANCE_S) * 1000);
        if (!last) stand(arrival, departure, 'DWELL', pointAlong(trip.shape, lengths, call.dist), index, call.dist);
        actual.push({ arrival, departure, stopped: true });
        legFrom = c;
      }
      played.push({ trip, origin, actual, lengths });
      free = departure;
      const lastCall = trip.calls[trip.calls.length - 1];
      where = pointAlong(trip.shape, lengths, lastCall.dist);
    }
    // After the block's last trip: back to the depot.
    if (!atDepot) {
      stand(free, free + 60_000, 'LAYOVER', where);
      free = straight(free + 60_000, 'PULL_IN', where, home);
      where = home;
      atDepot = true;
    }
  }
  stand(Number.isFinite(free) ? free : -8.64e15, 8.64e15, 'DEPOT', where);
  return { vehicleId, home, trips: played, pieces };
}

export interface BusState {
  lon: number;
  lat: number;
  /** m/s. */
  speed: number;
  /** Degrees clockwise from north, when moving (else the last one's). */
  bearing: number;
  phase: BusPhase;
  /** The trip it runs or is about to start (its index in `BusDay.trips`), null at the depot or between blocks. */
  trip: number | null;
  tripId: string | null;
  /** Distance along the trip's shape, when on a trip. */
  dist: number | null;
}

/** Where a bus planned by `planBusDay` is at `ms`, and how fast it goes. */
export function busStateAt(day: BusDay, ms: number): BusState {
  const pieces = day.pieces;
  let low = 0;
  let high = pieces.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >>> 1;
    if (pieces[middle].from <= ms) low = middle;
    else high = middle - 1;
  }
  const piece = pieces[low];
  if (!piece || ms < piece.from) return { ...day.home, speed: 0, bearing: 0, phase: 'DEPOT', trip: null, tripId: null, dist: null };
  const t = (Math.min(ms, piece.to) - piece.from) / 1000;
  const seconds = (piece.to - piece.from) / 1000;
  if (piece.kind === 'stand') {
    const tripId = piece.trip === null ? null : day.trips[piece.trip].trip.id;
    const bearing = piece.trip !== null && piece.dist !== null ? pointAlong(day.trips[piece.trip].trip.shape, day.trips[piece.trip].lengths, piece.dist).bearing : 0;
    return { lon: piece.at.lon, lat: piece.at.lat, speed: 0, bearing, phase: piece.phase, trip: piece.trip, tripId, dist: piece.dist };
  }
  if (piece.kind === 'straight') {
    const { covered, speed } = trapezoid(piece.length, seconds, piece.cruise, t);
    const f = piece.length > 0 ? covered / piece.length : 1;
    return {
      lon: piece.a.lon + (piece.b.lon - piece.a.lon) * f,
      lat: piece.a.lat + (piece.b.lat - piece.a.lat) * f,
      speed,
      bearing: bearingOf(piece.a, piece.b),
      phase: piece.phase,
      trip: null,
      tripId: null,
      dist: null,
    };
  }
  const played = day.trips[piece.trip];
  const distance = piece.toDist - piece.fromDist;
  const { covered, speed } = trapezoid(distance, seconds, piece.cruise, t);
  const point = pointAlong(played.trip.shape, played.lengths, piece.fromDist + covered);
  return { lon: point.lon, lat: point.lat, speed, bearing: point.bearing, phase: 'IN_TRANSIT', trip: piece.trip, tripId: played.trip.id, dist: piece.fromDist + covered };
}

/** Seconds late (negative: early) at each call the bus stopped at, against the timetable (at the first stop, where it lays over, its departure's). */
export function callDelays(played: PlayedTrip): { stopSequence: number; arrival: number; departure: number }[] {
  return played.trip.calls.flatMap((call, i) => {
    const actual = played.actual[i];
    if (!actual.stopped) return [];
    const departure = (actual.departure - played.origin) / 1000 - call.departure;
    return [{ stopSequence: call.stopSequence, arrival: i === 0 ? departure : (actual.arrival - played.origin) / 1000 - call.arrival, departure }];
  });
}

/**
 * The depot: where several buses stand together (within 150 m of one another), from the
 * buses' seeded locations; null when no three buses stand together.
 */
export function findDepot(buses: { lon: number; lat: number }[]): { lon: number; lat: number } | null {
  let best: { lon: number; lat: number }[] = [];
  for (const bus of buses) {
    const near = buses.filter((other) => distanceMetres(bus, other) < 150);
    if (near.length > best.length) best = near;
  }
  if (best.length < 3) return null;
  return { lon: best.reduce((s, b) => s + b.lon, 0) / best.length, lat: best.reduce((s, b) => s + b.lat, 0) / best.length };
}

/** GPS noise of a position, ±2 m, the same for a bus at an instant on every run. */
const gpsJitter = (id: string, ms: number, axis: string) => (hash01(`${id}:${Math.round(ms)}:${axis}`) - 0.5) * 4;

/**
 * A bus. With a block from the hub it plays its planned day (`planBusDay`); a spare bus (no
 * block while others have one) stands at its depot; on a hub without the mobility service, or
 * one that assigned no bus at all, it runs 05:30–21:30 from stop to a nearby stop at 7–12 m/s,
 * dwelling 20–40 s at each, standing still outside those hours.
 */
export class BusModel implements Model {
  lon: number;
  lat: number;
  speed = 0;
  /** Degrees clockwise from north, of its last movement. */
  bearing = 0;
  /** Its planned state at its last report, when it plays a block. */
  state: BusState | null = null;
  private last: number | null = null;
  private target: number | null = null;
  private previous: number | null = null;
  private dwellUntil = 0;

  constructor(private readonly device: DeviceSummary, private readonly world: World) {
    this.lon = device.lon ?? CHALONS.lon;
    this.lat = device.lat ?? CHALONS.lat;
  }

  get id() {
    return this.device.id;
  }

  private nextStop(): number | null {
    const stops = this.world.stops;
    if (stops.length === 0) return null;
    const nearest = stops
      .map((stop, index) => ({ index, distance: distanceMetres(this, stop) }))
      .filter(({ index, distance }) => index !== this.previous && distance > 5)
      .sort((a, b) => a.distance - b.distance)
      .slice(0, 4);
    return nearest.length ? nearest[Math.floor(this.world.random() * nearest.length)].index : null;
  }

  read(ms: number): Values {
    const day = this.world.transit?.dayOf(this.device.id, this.world.homes.get(this.device.id) ?? this, ms);
    if (day) {
      const state = busStateAt(day, ms);
      this.state = state;
      this.last = ms;
      const north = gpsJitter(this.device.id, ms, 'y');
      const east = gpsJitter(this.device.id, ms, 'x');
      this.lon = state.lon + east / metresPerDegreeLon(state.lat);
      this.lat = state.lat + north / METRES_PER_DEGREE_LAT;
      this.speed = state.speed;
      if (state.speed > 0) this.bearing = state.bearing;
      return { speed: round(this.speed), lat: round(this.lat, 6), lon: round(this.lon, 6) };
    }
    this.state = null;
    return this.stopToStop(ms);
  }

  private stopToStop(ms: number): Values {
    let seconds = this.last === null ? 0 : clamp((ms - this.last) / 1000, 0, 3600);
    this.last = ms;
    const { hour } = parisTime(ms);
    let travelled = 0;
    let moving = 0;
    const from = { lon: this.lon, lat: this.lat };
    if (hour >= 5.5 && hour < 21.5) {
      while (seconds > 0) {
        if (ms - seconds * 1000 < this.dwellUntil) {
          const wait = Math.min(seconds, (this.dwellUntil - (ms - seconds * 1000)) / 1000);
          seconds -= wait;
          continue;
        }
        this.target ??= this.nextStop();
        if (this.target === null) break;
        const stop = this.world.stops[this.target];
        const cruise = 7 + 5 * this.world.random();
        const distance = distanceMetres(this, stop);
        const time = Math.min(seconds, distance / cruise);
        const fraction = distance > 0 ? (cruise * time) / distance : 1;
        this.lon += (stop.lon - this.lon) * fraction;
        this.lat += (stop.lat - this.lat) * fraction;
        travelled += cruise * time;
        moving += time;
        seconds -= time;
        if (fraction >= 1 - 1e-9) {
          this.previous = this.target;
          this.target = null;
          this.dwellUntil = ms - seconds * 1000 + (20 + 20 * this.world.random()) * 1000;
        }
      }
    }
    if (distanceMetres(from, this) > 1) this.bearing = bearingOf(from, this);
    // The speed reported is the bus's at the time of the report: zero while it dwells at a stop.
    this.speed = ms < this.dwellUntil || moving === 0 ? 0 : travelled / moving;
    return { speed: round(this.speed), lat: round(this.lat, 6), lon: round(this.lon, 6) };
  }
}

class BusStopModel implements Model {
  private last: number | null = null;

  constructor(private readonly device: DeviceSummary, private readonly world: World) {}

  read(ms: number): Values {
    const minutes = this.last === null ? 1 : clamp((ms - this.last) / MINUTE, 0, 60);
    this.last = ms;
    const { hour } = parisTime(ms);
    const rate = hour < 5.5 || hour >= 21.5 ? 0.02 : 0.5 * presenceRatePerMinute(hour) * (0.5 + hash01(this.device.id));
    return { presence: poisson(this.world.random, rate * minutes) };
  }
}

// ---------------------------------------------------------------------------------------------
// Transit signal priority: the hub asks a controller for priority for a late bus approaching
// (`{ cid, op: 'priority_request', vehicleId, tripId, routeId, etaSeconds, delaySeconds, ttl }`
// on its downlink); the controller answers on its ack topic, `{ cid, ok: true }` when it grants
// (a green extension or an early green for the bus's approach, `signal_state` 4 while it runs),
// `{ cid, ok: false, error }` when it cannot, and nothing at all while it is in fault.

export interface PriorityRequest {
  cid: string;
  vehicleId: string;
  tripId: string | null;
  routeId: string | null;
  /** Seconds until the bus reaches the stop line. */
  etaSeconds: number;
  delaySeconds: number | null;
  /** Seconds after which the request must not be executed any more. */
  ttl: number;
}

export type Downlink =
  | { kind: 'priority_request'; request: PriorityRequest }
  /** Answered `{ cid, ok: false, error }`. */
  | { kind: 'refuse'; cid: string; error: string }
  /** Not answerable (no correlation id): only logged. */
  | { kind: 'ignore'; reason: string };

/** The longest correlation id and error text echoed back. */
const MAX_CID = 200;

/**
 * Reads a downlink (the payload's text; `receivedAt`, the wall clock ms, checks an `expiresAt` or
 * `sentAt` the hub may add): a priority request, a refusal to send back, or something to ignore.
 */
export function parseDownlink(text: string, receivedAt = Date.now()): Downlink {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { kind: 'ignore', reason: `not JSON: ${JSON.stringify(text.slice(0, 60))}` };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { kind: 'ignore', reason: 'not a JSON object' };
  const command = body as Record<string, unknown>;
  const cid = command.cid;
  if (typeof cid !== 'string' || cid.length === 0 || cid.length > MAX_CID) return { kind: 'ignore', reason: 'no usable cid (a non-empty string of at most 200 characters)' };
  const refuse = (error: string): Downlink => ({ kind: 'refuse', cid, error });
  if (command.op !== 'priority_request') return refuse(`unsupported op ${JSON.stringify(typeof command.op === 'string' ? command.op.slice(0, 40) : (command.op ?? null))}`);
  const { ttl, etaSeconds, delaySeconds, vehicleId, tripId, routeId } = command;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl)) return refuse('invalid ttl: a number of seconds is required');
  if (ttl <= 0) return refuse('expired: ttl is over');
  const instant = (value: unknown) => (typeof value === 'number' ? (value < 1e11 ? value * 1000 : value) : typeof value === 'string' ? Date.parse(value) : NaN);
  const expiresAt = command.expiresAt !== undefined ? instant(command.expiresAt) : command.sentAt !== undefined ? instant(command.sentAt) + ttl * 1000 : NaN;
  if (Number.isFinite(expiresAt) && expiresAt < receivedAt) return refuse('expired: received after its ttl');
  if (typeof vehicleId !== 'string' || vehicleId.length === 0) return refuse('invalid vehicleId: a string is required');
  if (typeof etaSeconds !== 'number' || !Number.isFinite(etaSeconds) || etaSeconds < 0) return refuse('invalid etaSeconds: a number ≥ 0 is required');
  if (delaySeconds !== undefined && delaySeconds !== null && (typeof delaySeconds !== 'number' || !Number.isFinite(delaySeconds))) return refuse('invalid delaySeconds: a number is required');
  const optionalText = (value: unknown) => (typeof value === 'string' && value.length > 0 ? value : null);
  return {
    kind: 'priority_request',
    request: { cid, vehicleId, tripId: optionalText(tripId), routeId: optionalText(routeId), etaSeconds, delaySeconds: (delaySeconds as number | null | undefined) ?? null, ttl },
  };
}

/** The road axis a bus comes along (0: north–south, 1: east–west), from its bearing. */
export const approachAxis = (bearing: number) => Math.round((((bearing % 180) + 180) % 180) / 90) % 2;

/** A priority a controller has granted: until when (simulated ms), for which axis. */
interface Grant {
  until: number;
  axis: number;
}

export interface PriorityAnswer {
  ok: boolean;
  error?: string;
}

/** Seconds after a priority ends during which the controller serves the cross street first. */
export const PRIORITY_RECOVERY_S = 40;

/**
 * A controller's priority logic (no I/O): grants a request unless its night flashing mode, a
 * priority running on the other axis, or its recovery after one on the other axis forbids it; a
 * small share of requests is refused for a pedestrian phase that cannot be cut. A grant holds
 * the bus's green for its time to the stop line and 8 s more (6–45 s); a second bus on the same
 * axis extends it. The same `cid` twice gets the same answer (an MQTT redelivery).
 */
export class PriorityController {
  private grant: Grant | null = null;
  private last: Grant | null = null;
  private readonly answers = new Map<string, PriorityAnswer>();

  constructor(private readonly options: { enabled: boolean; denyShare: number }) {}

  /** Whether a priority runs at `ms`. */
  running(ms: number): boolean {
    if (this.grant && this.grant.until <= ms) {
      this.last = this.grant;
      this.grant = null;
    }
    return this.grant !== null;
  }

  /** Ends the running priority (the controller failed). */
  cancel(ms: number) {
    if (this.grant) this.last = { ...this.grant, until: Math.min(ms, this.grant.until) };
    this.grant = null;
  }

  /** Answers `request` at `ms` for a bus on `axis`, in mode `flashing` (night flashing amber); `u` uniform in [0, 1). */
  decide(request: PriorityRequest, ms: number, axis: number, flashing: boolean, u: number): PriorityAnswer {
    const known = this.answers.get(request.cid);
    if (known) return known;
    const answer = this.answer(request, ms, axis, flashing, u);
    this.answers.set(request.cid, answer);
    // Enough to recognise a redelivery; not a growing memory.
    if (this.answers.size > 256) this.answers.delete(this.answers.keys().next().value!);
    return answer;
  }

  private answer(request: PriorityRequest, ms: number, axis: number, flashing: boolean, u: number): PriorityAnswer {
    if (!this.options.enabled) return { ok: false, error: 'bus priority is not enabled at this intersection' };
    if (flashing) return { ok: false, error: 'flashing amber (night mode): no priority' };
    const hold = clamp(request.etaSeconds + 8, 6, 45) * 1000;
    if (this.running(ms)) {
      if (this.grant!.axis !== axis) return { ok: false, error: 'a priority is already running on a conflicting approach' };
      this.grant!.until = Math.max(this.grant!.until, ms + hold);
      return { ok: true };
    }
    if (this.last && this.last.axis !== axis && ms - this.last.until < PRIORITY_RECOVERY_S * 1000) {
      return { ok: false, error: 'recovering from the previous priority: the cross street is served first' };
    }
    if (u < this.options.denyShare) return { ok: false, error: 'pedestrian phase in progress' };
    this.grant = { until: ms + hold, axis };
    return { ok: true };
  }
}

/**
 * A signalised intersection: its normal cycle, flashing amber at night on two-phase crossings
 * (00:30–05:00), bus priority while it grants a priority request (or, on a hub that sends none,
 * while a bus is close), flashing amber with `fault` when it fails — and then it answers nothing.
 */
class TrafficSignalModel implements Model, Faulty {
  faultSince: number | null = null;
  readonly priority: PriorityController;
  private readonly nightFlashing: boolean;
  private readonly busPriority: boolean;
  private reportedPriority = false;

  constructor(private readonly device: DeviceSummary, private readonly world: World, denyShare: number) {
    this.nightFlashing = Number(device.details.phases ?? 4) <= 2;
    this.busPriority = device.details.busPriority !== false;
    this.priority = new PriorityController({ enabled: this.busPriority, denyShare });
  }

  breakDown(ms: number) {
    this.faultSince ??= ms;
    this.priority.cancel(ms);
  }

  repair() {
    this.faultSince = null;
  }

  private flashing(ms: number) {
    const { hour } = parisTime(ms);
    return this.nightFlashing && hour >= 0.5 && hour < 5;
  }

  /** The controller's answer to a request at `ms`; null while it is in fault (it answers nothing). */
  request(request: PriorityRequest, ms: number, u: number): PriorityAnswer | null {
    if (this.faultSince !== null) return null;
    const bus = this.world.busById.get(request.vehicleId);
    // The bus's approach from its heading; a bus the simulator does not play, from its trip.
    const axis = bus ? approachAxis(bus.bearing) : hash01(request.tripId ?? request.vehicleId) < 0.5 ? 0 : 1;
    return this.priority.decide(request, ms, axis, this.flashing(ms), u);
  }

  stateChanged(ms: number): boolean {
    return this.faultSince === null && this.priority.running(ms) !== this.reportedPriority;
  }

  read(ms: number): Values {
    this.reportedPriority = this.faultSince === null && this.priority.running(ms);
    if (this.faultSince !== null) return { signal_state: 2, fault: true };
    if (this.reportedPriority) return { signal_state: 4, fault: false };
    // A hub that sends no priority requests (no mobility service, no buses on blocks): the controller detects buses itself.
    if (!this.world.transit?.active) {
      const here = { lon: this.device.lon ?? 0, lat: this.device.lat ?? 0 };
      if (this.busPriority && this.world.buses.some((bus) => bus.speed > 0 && distanceMetres(here, bus) < 80)) return { signal_state: 4, fault: false };
    }
    return { signal_state: this.flashing(ms) ? 2 : 1, fault: false };
  }
}

// ---------------------------------------------------------------------------------------------
// Loading the territory and getting credentials, through the gateway.

const SEARCH = `query SimulatorDevices($after: String, $kinds: [EquipmentKind!]) {
  equipmentSearch(filter: { kinds: $kinds, status: [IN_SERVICE, FAULT] }, first: 1000, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { id kind status collectivity { id } parent { id } location { coordinates }
      details {
        ... on LightPointDetails { powerW dimmable }
        ... on PresenceDetectorDetails { lightPointId detectionRangeM }
        ... on ParkingFacilityDetails { capacity type }
        ... on BuildingDetails { use heatedAreaM2 }
        ... on TrafficSignalControllerDetails { phases busPriority }
        ... on BusDetails { capacity }
        ... on GenericDetails { attributes }
      } } }
  }
}`;

interface GraphQLAnswer<T> {
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** A failure worth retrying at start: the gateway not answering yet, or a service (the broker) not available. */
class NotYetError extends Error {}

async function graphql<T>(url: string, token: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new NotYetError(`${url} does not answer: ${(error as Error).message}`);
  }
  const text = await response.text();
  let body: GraphQLAnswer<T>;
  try {
    body = JSON.parse(text) as GraphQLAnswer<T>;
  } catch {
    const message = `${url} answered ${response.status}: ${text.slice(0, 200)}`;
    throw response.status >= 502 ? new NotYetError(message) : new Error(message);
  }
  if (body.errors?.length) {
    const message = body.errors.map((e) => e.message).join('; ');
    throw body.errors.every((e) => e.extensions?.code === 'SERVICE_UNAVAILABLE') ? new NotYetError(message) : new Error(message);
  }
  if (!body.data) throw new Error(`${url} answered ${response.status} without data`);
  return body.data;
}

interface SearchNode {
  id: string;
  kind: string;
  status: string;
  collectivity: { id: string };
  parent: { id: string } | null;
  location: { coordinates: [number, number] } | null;
  details: (Record<string, unknown> & { attributes?: Record<string, unknown> }) | null;
}

interface SearchPage {
  equipmentSearch: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { node: SearchNode }[] };
}

/** The simulated kinds' assets in service or in fault, and the buildings (for their use and area). */
async function loadTerritory(gatewayUrl: string, token: string): Promise<{ devices: DeviceSummary[]; buildings: Map<string, Record<string, unknown>> }> {
  const devices: DeviceSummary[] = [];
  const buildings = new Map<string, Record<string, unknown>>();
  let after: string | null = null;
  do {
    const page: SearchPage = await graphql<SearchPage>(gatewayUrl, token, SEARCH, { after, kinds: [...SIMULATED_KINDS, 'BUILDING'] });
    for (const { node } of page.equipmentSearch.edges) {
      const details = node.details?.attributes ?? node.details ?? {};
      if (node.kind === 'BUILDING') {
        buildings.set(node.id, details);
        continue;
      }
      devices.push({
        id: node.id,
        kind: node.kind as SimulatedKind,
        collectivityId: node.collectivity.id,
        status: node.status,
        parentId: node.parent?.id ?? null,
        lon: node.location?.coordinates[0] ?? null,
        lat: node.location?.coordinates[1] ?? null,
        details,
      });
    }
    after = page.equipmentSearch.pageInfo.hasNextPage ? page.equipmentSearch.pageInfo.endCursor : null;
  } while (after);
  devices.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { devices, buildings };
}

// ---------------------------------------------------------------------------------------------
// The buses' blocks, from the hub's mobility service (`vehicleAssignments`).

const ASSIGNMENT_KEYS = `query SimulatorAssignmentKeys($d: Date) { vehicleAssignments(serviceDate: $d) { blockId assignedAt vehicle { id } } }`;
const ASSIGNMENTS = `query SimulatorAssignments($d: Date) {
  vehicleAssignments(serviceDate: $d) {
    serviceDate blockId assignedAt vehicle { id }
    trips { id route { id } shape { coordinates }
      stopTimes { stopSequence arrivalTime departureTime shapeDistTraveled stop { id location { coordinates } } } }
  }
}`;

interface AssignmentNode {
  serviceDate: string;
  blockId: string;
  assignedAt: string;
  vehicle: { id: string };
  trips: {
    id: string;
    route: { id: string } | null;
    shape: { coordinates: [number, number][] } | null;
    stopTimes: { stopSequence: number; arrivalTime: string; departureTime: string; shapeDistTraveled: number; stop: { id: string; location: { coordinates: [number, number] } | null } }[];
  }[];
}

/** `vehicleAssignments` nodes as blocks (trips sorted, calls by sequence); a trip the simulator cannot play is left out, and said. */
export function blocksOf(nodes: AssignmentNode[], serviceDate: string, problems: string[] = []): BlockAssignment[] {
  return nodes.map((node) => ({
    serviceDate: node.serviceDate ?? serviceDate,
    blockId: node.blockId,
    vehicleId: node.vehicle.id,
    trips: node.trips.flatMap((trip) => {
      try {
        const calls = trip.stopTimes
          .map((st) => ({ stopSequence: st.stopSequence, stopId: st.stop.id, arrival: parseGtfsTime(st.arrivalTime), departure: parseGtfsTime(st.departureTime), dist: st.shapeDistTraveled }))
          .sort((a, b) => a.stopSequence - b.stopSequence);
        let shape = trip.shape?.coordinates ?? [];
        if (shape.length < 2) shape = trip.stopTimes.flatMap((st) => (st.stop.location ? [st.stop.location.coordinates] : []));
        if (calls.length < 2 || shape.length < 2) throw new Error('fewer than two stops or shape points');
        return [{ id: trip.id, routeId: trip.route?.id ?? null, shape, calls }];
      } catch (error) {
        problems.push(`trip ${trip.id} of block ${node.blockId}: ${(error as Error).message}`);
        return [];
      }
    }),
  }));
}

/** The field is not in the gateway's schema: a hub without the mobility service. */
const isMissingAssignments = (error: unknown) => /Cannot query field "vehicleAssignments"/.test((error as Error).message);

/**
 * Keeps the blocks of the service days a bus may be running now (today's and yesterday's, whose
 * trips may pass midnight), refreshed every `refreshMs` of the clock (a light query; the trips
 * again only when the assignments changed), and each bus's planned day.
 */
class TransitSchedule {
  /** At least one bus has a block: buses play them and controllers wait for requests. */
  active = false;
  /** The hub has no mobility service. */
  missing = false;
  private readonly dates = new Map<string, { keys: string; blocks: Map<string, BlockAssignment[]> }>();
  private readonly plans = new Map<string, { key: string; day: BusDay }>();
  private refreshing: Promise<void> | null = null;
  private nextRefresh = 0;
  private failing = false;

  constructor(
    private readonly o: { gatewayUrl: string; token: () => Promise<string>; model: DelayModel; refreshMs: number; log: (message: string) => void },
  ) {}

  /** Refreshes when due (never two at once); resolves when done. `strict`: rejects with NotYetError while the service is not available (the first read, at start). */
  refresh(simulatedMs: number, force = false, strict = false): Promise<void> {
    if (this.missing || this.refreshing || (!force && Date.now() < this.nextRefresh)) return this.refreshing ?? Promise.resolve();
    this.nextRefresh = Date.now() + this.o.refreshMs;
    this.refreshing = this.load(simulatedMs, strict).finally(() => (this.refreshing = null));
    return this.refreshing;
  }

  private async load(simulatedMs: number, strict: boolean) {
    const today = parisDate(simulatedMs);
    const wanted = [addDays(today, -1), today];
    try {
      const token = await this.o.token();
      for (const date of wanted) {
        const { vehicleAssignments: keys } = await graphql<{ vehicleAssignments: { blockId: string; assignedAt: string; vehicle: { id: string } }[] }>(this.o.gatewayUrl, token, ASSIGNMENT_KEYS, { d: date });
        const signature = keys.map((k) => `${k.vehicle.id}/${k.blockId}/${k.assignedAt}`).sort().join(',');
        if (this.dates.get(date)?.keys === signature) continue;
        const { vehicleAssignments } = await graphql<{ vehicleAssignments: AssignmentNode[] }>(this.o.gatewayUrl, token, ASSIGNMENTS, { d: date });
        const problems: string[] = [];
        const blocks = new Map<string, BlockAssignment[]>();
        for (const block of blocksOf(vehicleAssignments, date, problems)) blocks.set(block.vehicleId, [...(blocks.get(block.vehicleId) ?? []), block]);
        this.dates.set(date, { keys: signature, blocks });
        this.o.log(`[simulator] ${date}: ${vehicleAssignments.length} buses on blocks (${vehicleAssignments.reduce((n, a) => n + a.trips.length, 0)} trips)`);
        for (const problem of problems.slice(0, 5)) this.o.log(`[simulator] ${problem}: not played`);
      }
      for (const date of [...this.dates.keys()]) if (!wanted.includes(date)) this.dates.delete(date);
      if (this.failing) this.o.log('[simulator] the bus assignments answer again');
      this.failing = false;
    } catch (error) {
      if (strict && error instanceof NotYetError) throw error;
      if (isMissingAssignments(error)) {
        this.missing = true;
        this.o.log('[simulator] the hub has no mobility service: buses go from stop to stop');
      } else if (!this.failing) {
        this.failing = true;
        this.o.log(`[simulator] the bus assignments could not be read (kept as they were): ${(error as Error).message}`);
      }
    }
    const active = [...this.dates.values()].some((d) => d.blocks.size > 0);
    if (active !== this.active) this.o.log(active ? '[simulator] buses follow the blocks the hub assigned them' : '[simulator] no bus is on a block: buses go from stop to stop');
    this.active = active;
  }

  /** The bus's planned day at `ms` (with its blocks of yesterday and today), or null when buses do not play blocks. */
  dayOf(vehicleId: string, home: { lon: number; lat: number }, ms: number): BusDay | null {
    if (!this.active) return null;
    const today = parisDate(ms);
    const blocks = [addDays(today, -1), today].flatMap((date) => this.dates.get(date)?.blocks.get(vehicleId) ?? []);
    const key = blocks.map((b) => `${b.serviceDate}/${b.blockId}/${b.trips.length}`).join(',') + `@${this.dates.get(today)?.keys ?? ''}`;
    const cached = this.plans.get(vehicleId);
    if (cached?.key === key) return cached.day;
    const day = planBusDay(vehicleId, home, blocks, this.o.model);
    this.plans.set(vehicleId, { key, day });
    return day;
  }
}

/** The label of the simulator's ingest keys: a restart revokes the keys of its previous run. */
export const INGEST_KEY_LABEL = 'city simulator';

interface Secret {
  token: string;
  mqttUsername: string;
}

async function issueIngestKey(gatewayUrl: string, token: string, collectivityId: string): Promise<Secret> {
  const { ingestKeys } = await graphql<{ ingestKeys: { id: string; label: string; revokedAt: string | null }[] }>(
    gatewayUrl,
    token,
    'query($c: ID!) { ingestKeys(collectivityId: $c) { id label revokedAt } }',
    { c: collectivityId },
  );
  for (const key of ingestKeys.filter((k) => k.label === INGEST_KEY_LABEL && k.revokedAt === null)) {
    await graphql(gatewayUrl, token, 'mutation($id: ID!) { revokeIngestKey(id: $id) { id revokedAt } }', { id: key.id });
  }
  const { issueIngestKey } = await graphql<{ issueIngestKey: { secret: Secret } }>(
    gatewayUrl,
    token,
    'mutation($c: ID!, $label: String!) { issueIngestKey(collectivityId: $c, label: $label) { key { id } secret { token mqttUsername } } }',
    { c: collectivityId, label: INGEST_KEY_LABEL },
  );
  return issueIngestKey.secret;
}

async function issueDeviceCredential(gatewayUrl: string, token: string, equipmentId: string): Promise<Secret> {
  // Issuing revokes the device's previous credential (the simulator's last run's) at once.
  const { issueDeviceCredential } = await graphql<{ issueDeviceCredential: { secret: Secret } }>(
    gatewayUrl,
    token,
    'mutation($id: ID!) { issueDeviceCredential(equipmentId: $id) { credential { id } secret { token mqttUsername } } }',
    { id: equipmentId },
  );
  return issueDeviceCredential.secret;
}

/** Runs `step` again while it fails with NotYetError (docker-compose starts the simulator with the gateway, not once it is ready), until `deadline`. */
async function whenReady<T>(what: string, step: () => Promise<T>, deadline: number, log: (message: string) => void): Promise<T> {
  let said = false;
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if (!(error instanceof NotYetError) || Date.now() > deadline) throw error;
      if (!said) log(`[simulator] waiting to ${what}: ${error.message}`);
      said = true;
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  }
}

/**
 * One MQTT connection with its credentials: QoS 1 and a persistent session under a stable client
 * id. It retries a refused CONNACK: the broker may learn of a credential just issued a moment later.
 */
async function connect(url: string, clientId: string, secret: Secret, log: (message: string) => void, timeoutMs: number): Promise<MqttClient> {
  const options: IClientOptions = {
    clientId,
    clean: false,
    username: secret.mqttUsername,
    password: secret.token,
    reconnectPeriod: 1_000,
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
  };
  const client = mqtt.connect(url, options);
  let lastError: Error | null = null;
  let reported = false;
  client.on('error', (error) => {
    lastError = error;
    // Said once per outage, not on every retry.
    if (!reported && client.connected === false) log(`[simulator] ${clientId}: ${error.message} (retrying)`);
    reported = true;
  });
  client.on('connect', () => (reported = false));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${clientId} could not connect to ${url} within ${timeoutMs / 1000} s${lastError ? `: ${(lastError as Error).message}` : ''}`)),
        timeoutMs,
      );
      client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  } catch (error) {
    await client.endAsync(true);
    throw error;
  }
  return client;
}

// ---------------------------------------------------------------------------------------------
// Citizens' reports: a citizen reports a problem from the app; an operator of the responsible
// collectivity acknowledges it and makes a work order for one of its agents, who starts it and
// closes it out. Everything goes through the gateway's GraphQL with development tokens, as the
// app, the control room and the field agents' tablets would.

const REPORTS: readonly { category: string; at: 'LIGHT_POINT' | 'BUS_STOP'; descriptions: readonly string[]; work: string; done: readonly string[] }[] = [
  { category: 'TAG', at: 'LIGHT_POINT', descriptions: ['Un tag sur le mur juste à côté.', 'Graffitis sur le mobilier urbain.'], work: 'Effacement de tag', done: ['Tag effacé.'] },
  { category: 'ILLEGAL_DUMPING', at: 'LIGHT_POINT', descriptions: ['Des sacs et un vieux meuble déposés sur le trottoir.', 'Dépôt de gravats au pied du lampadaire.'], work: 'Enlèvement dépôt sauvage', done: ['Dépôt enlevé.'] },
  { category: 'DAMAGED_FURNITURE', at: 'LIGHT_POINT', descriptions: ['Le banc est cassé.', 'Un potelet a été arraché.'], work: 'Réparation mobilier urbain', done: ['Mobilier réparé.'] },
  { category: 'POTHOLE', at: 'LIGHT_POINT', descriptions: ['Un trou dans la chaussée, dangereux pour les vélos.'], work: 'Réparation de chaussée', done: ['Nid de poule rebouché.'] },
  { category: 'FULL_BIN', at: 'LIGHT_POINT', descriptions: ['La corbeille déborde.', 'Le conteneur est plein depuis hier.'], work: 'Vidage point de collecte', done: ['Corbeille vidée.'] },
  { category: 'BUS_STOP_DAMAGED', at: 'BUS_STOP', descriptions: ['La vitre de l’abribus est cassée.', 'Les horaires de l’arrêt sont illisibles.'], work: 'Réparation arrêt de bus', done: ['Arrêt réparé.'] },
];
const LIGHT_OUT = { category: 'LIGHT_OUT', descriptions: ['Le lampadaire ne s’allume plus.', 'La rue est plongée dans le noir, le lampadaire est éteint.'], work: 'Dépannage point lumineux', done: ['Lampe remplacée, point lumineux rallumé.'] };

/** The gateway has no `reportProblem` (a hub without the tickets service): reports stay off. */
const isMissingField = (error: unknown) => /Cannot query field "reportProblem"|Unknown type "ReportInput"/.test((error as Error).message);

interface CitizenReportsOptions {
  config: Config;
  gatewayUrl: string;
  random: Random;
  /** Simulated time runs this many times faster than the clock. */
  speed: number;
  /** Where citizens stand: light points (and bus stops, for a bus stop's report). */
  spots: DeviceSummary[];
  /** The light points out of order now: a citizen passing by sometimes reports one. */
  broken(): DeviceSummary[];
  /** The agent closed out the work order of a light point reported out: it is repaired. */
  repaired(id: string): void;
  log: (message: string) => void;
}

class CitizenReports {
  reported = 0;
  closedOut = 0;
  inFlight = 0;
  disabled = false;
  private stopped = false;
  private readonly running = new Set<Promise<unknown>>();
  private counter = 0;
  private readonly waits = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();

  constructor(private readonly o: CitizenReportsOptions) {}

  /** Waits that many simulated seconds (cut short by `stop`). */
  private sleep(simulatedSeconds: number): Promise<void> {
    return new Promise((resolve) => {
      const wait = { timer: setTimeout(() => (this.waits.delete(wait), resolve()), (simulatedSeconds * 1000) / this.o.speed), resolve };
      this.waits.add(wait);
    });
  }

  private token(sub: string, roles: ('citizen' | 'operator' | 'agent')[], collectivities: string[]) {
    return signDevelopmentToken({ sub, roles, collectivities, expiresIn: Math.min(3_600, this.o.config.JWT_MAX_LIFETIME_SECONDS) }, this.o.config);
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.o.random() * items.length)];
  }

  /** One report and its handling, to the end (or until the simulator stops). */
  play(): Promise<string | null> {
    const story = this.story();
    this.running.add(story);
    this.inFlight++;
    void story.finally(() => {
      this.running.delete(story);
      this.inFlight--;
    }).catch(() => {});
    return story;
  }

  private async story(): Promise<string | null> {
    const { random, gatewayUrl, log } = this.o;
    const n = ++this.counter;
    // A lamp out is what passers-by notice most: reported when one is out, otherwise something else.
    const broken = this.o.broken();
    const lamp = broken.length > 0 && random() < 0.5 ? this.pick(broken) : null;
    const what = lamp ? { ...LIGHT_OUT, at: 'LIGHT_POINT' as const } : this.pick(REPORTS);
    const spot = lamp ?? this.pick(this.o.spots.filter((d) => d.kind === what.at));
    if (!spot) return null;
    // A few metres from the asset, where the citizen stands.
    const metres = 3 + random() * 8;
    const angle = random() * 2 * Math.PI;
    const lon = spot.lon! + (metres * Math.cos(angle)) / (111_320 * Math.cos((spot.lat! * Math.PI) / 180));
    const lat = spot.lat! + (metres * Math.sin(angle)) / 111_195;
    const citizen = await this.token(`simulated-citizen-${1 + Math.floor(random() * 500)}`, ['citizen'], []);
    let report: { ticket: { id: string; status: string; collectivity: { id: string }; alreadyKnown: boolean }; duplicateOf: { id: string } | null };
    try {
      ({ reportProblem: report } = await graphql<{ reportProblem: typeof report }>(
        gatewayUrl,
        citizen,
        'mutation($input: ReportInput!) { reportProblem(input: $input) { ticket { id status alreadyKnown collectivity { id } } duplicateOf { id } } }',
        { input: { category: what.category, location: { lon, lat }, description: this.pick(what.descriptions) } },
      ));
    } catch (error) {
      if (isMissingField(error)) {
        this.disabled = true;
        log('[simulator] the hub has no tickets service: citizens’ reports are off');
      } else {
        log(`[simulator] a citizen's report was refused: ${(error as Error).message}`);
      }
      return null;
    }
    this.reported++;
    const ticketId = report.ticket.id;
    const collectivityId = report.ticket.collectivity.id;
    log(`[simulator] citizen report #${n}: ticket ${ticketId} (${what.category}, ${collectivityId})${report.duplicateOf ? `, a duplicate of ${report.duplicateOf.id}` : ''}${report.ticket.alreadyKnown ? ', already known from an alarm' : ''}`);
    // A duplicate follows its original, which is handled on its own.
    if (report.duplicateOf) return null;

    const operatorSub = `simulated-operator-${collectivityId}`;
    const agentSub = `simulated-agent-${collectivityId}-${1 + Math.floor(random() * 3)}`;
    try {
      await this.sleep(300 + random() * 1_500);
      if (this.stopped) return null;
      const operator = await this.token(operatorSub, ['operator'], [collectivityId]);
      await graphql(gatewayUrl, operator, 'mutation($id: ID!) { transitionTicket(input: { ticketId: $id, to: ACKNOWLEDGED }) { id status } }', { id: ticketId });
      const { createIntervention } = await graphql<{ createIntervention: { id: string } }>(
        gatewayUrl,
        operator,
        'mutation($input: CreateInterventionInput!) { createIntervention(input: $input) { id status } }',
        { input: { ticketId, title: what.work, assignee: agentSub } },
      );
      await this.sleep(1_200 + random() * 4_200);
      if (this.stopped) return null;
      const agent = await this.token(agentSub, ['agent'], [collectivityId]);
      await graphql(gatewayUrl, agent, 'mutation($id: ID!) { updateIntervention(input: { id: $id, status: IN_PROGRESS }) { id } }', { id: createIntervention.id });
      const workSeconds = 900 + random() * 2_700;
      await this.sleep(workSeconds);
      if (this.stopped) return null;
      const agentAgain = await this.token(agentSub, ['agent'], [collectivityId]);
      await graphql(
        gatewayUrl,
        agentAgain,
        'mutation($id: ID!, $notes: String!, $minutes: Int!) { updateIntervention(input: { id: $id, status: DONE, closeNotes: $notes, minutesSpent: $minutes }) { id } }',
        { id: createIntervention.id, notes: this.pick(what.done), minutes: Math.max(1, Math.round(workSeconds / 60)) },
      );
      if (lamp) this.o.repaired(lamp.id);
      this.closedOut++;
      log(`[simulator] ticket ${ticketId}: work order ${createIntervention.id} closed out by ${agentSub}`);
      return ticketId;
    } catch (error) {
      log(`[simulator] ticket ${ticketId} could not be handled: ${(error as Error).message}`);
      return null;
    }
  }

  /** Stops playing: every story ends at its current step (its wait cut short), and is waited for. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.disabled = true;
    for (const wait of this.waits) {
      clearTimeout(wait.timer);
      wait.resolve();
    }
    this.waits.clear();
    await Promise.allSettled([...this.running]);
  }
}

// ---------------------------------------------------------------------------------------------
// The simulator.

export interface FaultRates {
  /** Mean simulated seconds between two lamp failures somewhere in the territory; 0: none. Default 900. */
  lightMeanSeconds?: number;
  /** Mean simulated seconds between two traffic-signal controller faults; 0: none. Default 21,600. */
  signalMeanSeconds?: number;
  /** Simulated seconds a repair takes (random faults: between half and one and a half of it). Default 2,700. */
  repairSeconds?: number;
}

export interface CitizenRates {
  /**
   * Mean simulated seconds between two problems citizens report through the gateway
   * (`reportProblem`); 0: none. Default 1,800. Each is then acknowledged by an operator of the
   * ticket's collectivity, who creates a work order for its agent; the agent starts it and closes
   * it out (a lamp reported out is repaired then). Off by itself when the hub has no tickets service.
   */
  reportMeanSeconds?: number;
  /** At most this many reports handled at once (default 5). */
  concurrent?: number;
}

export interface SimulatorOptions {
  config: Config;
  /** The gateway's `/graphql`: the territory is read, and credentials issued, through it. */
  gatewayUrl: string;
  /** The clock (ms since the epoch); `Date.now` by default. */
  now?: () => number;
  /** Simulated time runs this many times faster than `now()` from the start (tests: give a `now` far enough in the past). */
  speed?: number;
  faults?: FaultRates;
  citizens?: CitizenRates;
  /** Light points or traffic-signal controllers to break down at once (repaired after `faults.repairSeconds`). */
  breakDown?: string[];
  /** Which loaded assets to play (all by default); called in id order. */
  select?: (device: DeviceSummary) => boolean;
  /** How many light points publish with device credentials of their own instead of their collectivity's ingest key (default 3). */
  ownCredentials?: number;
  /** Prefix of the stable MQTT client ids (default `connecte-simulator`). */
  clientIdPrefix?: string;
  /** Seed of the noise (random by default). */
  seed?: number;
  /** How long to wait for each MQTT connection (default 30 s). */
  connectTimeoutMs?: number;
  /** How long to keep trying while the gateway does not answer or the broker is not available (default 120 s). */
  startupTimeoutMs?: number;
  /** The buses' delay model (`planBusDay`); everything on by default. */
  delays?: DelayModel;
  /** How often (clock ms) to look for changed bus assignments (default 60 s; and whenever the simulated day changes). */
  assignmentsRefreshMs?: number;
  /** Traffic-signal controllers' answers to priority requests. */
  signals?: {
    /** Share of requests refused for a pedestrian phase that cannot be cut (default 0.06). */
    denyShare?: number;
    /** Clock ms a controller takes to answer (default 100–400, at random). */
    ackDelayMs?: number;
  };
  log?: (message: string) => void;
}

interface Played {
  device: DeviceSummary;
  model: Model;
  periodMs: number;
  nextDue: number;
  lastSent: Partial<Record<MetricName, number>>;
  client: MqttClient;
  topic: string;
  repairAt: number | null;
}

export interface RunningSimulator {
  /** Number of assets played. */
  devices: number;
  /** Ids of the assets played, by kind. */
  deviceIds(kind?: SimulatedKind): string[];
  /** Light points publishing with credentials of their own. */
  ownCredentialDevices: string[];
  /** Uplinks the broker has acknowledged. */
  published(): number;
  /** The simulated time now (ms). */
  time(): number;
  /** Breaks a light point or a traffic-signal controller down now (reported at once); repaired after `repairAfterSeconds` (simulated) unless null. */
  breakDown(id: string, repairAfterSeconds?: number | null): void;
  /** Repairs it now (reported at once). */
  repair(id: string): void;
  /** Citizens' reports made so far, and those whose work order was closed out. */
  citizenReports(): { reported: number; closedOut: number };
  /** Makes a citizen report a problem now and plays its handling; resolves with the ticket's id once its work order is closed out (null for a duplicate). */
  reportProblem(): Promise<string | null>;
  /** How buses play: the blocks the hub assigned (`BLOCKS`), or from stop to stop (a hub without the mobility service or any assignment). */
  busMode(): 'BLOCKS' | 'STOP_TO_STOP';
  /** A bus's planned state at its last report (null: it goes from stop to stop, or is not played). */
  busState(id: string): BusState | null;
  /** A played bus's planned day (null when buses go from stop to stop). */
  busDay(id: string): BusDay | null;
  /** Looks for changed bus assignments now. */
  refreshAssignments(): Promise<void>;
  /** Priority requests answered so far: granted, refused, and left unanswered (controller in fault); other downlinks refused or ignored. */
  downlinks(): { granted: number; refused: number; unanswered: number; ignored: number };
  stop(): Promise<void>;
}

export async function startSimulator(options: SimulatorOptions): Promise<RunningSimulator> {
  const { config, gatewayUrl, speed = 1, log = console.log, clientIdPrefix = 'connecte-simulator', connectTimeoutMs = 30_000 } = options;
  if (!(speed > 0)) throw new Error('speed must be > 0');
  const clock = options.now ?? Date.now;
  // Simulated time starts when the devices start playing, not while the territory loads.
  let origin = clock();
  const time = () => origin + (clock() - origin) * speed;
  const rates = { lightMeanSeconds: 900, signalMeanSeconds: 21_600, repairSeconds: 2_700, ...options.faults };
  const random = mulberry32(options.seed ?? Math.floor(Math.random() * 2 ** 32));

  // An admin of every collectivity: it reads the territory and issues the collectivities' ingest keys.
  const token = await signDevelopmentToken(
    { sub: 'city-simulator', roles: ['admin'], collectivities: [...COLLECTIVITY_IDS], expiresIn: Math.min(3_600, config.JWT_MAX_LIFETIME_SECONDS) },
    config,
  );
  const loading = Date.now();
  const ready = loading + (options.startupTimeoutMs ?? 120_000);
  const territory = await whenReady('read the territory', () => loadTerritory(gatewayUrl, token), ready, log);
  log(`[simulator] read ${territory.devices.length} assets of the territory in ${((Date.now() - loading) / 1000).toFixed(1)} s`);
  const chosen = territory.devices.filter((device) => options.select?.(device) ?? true);

  let start = origin;
  const world: World = {
    random,
    buildings: new Map(),
    raisedUntil: new Map(),
    stops: chosen.filter((d) => d.kind === 'BUS_STOP' && d.lon !== null).map((d) => ({ lon: d.lon!, lat: d.lat! })),
    buses: [],
    busById: new Map(),
    parkingSensors: new Map(),
    transit: null,
    homes: new Map(),
  };
  // Buses' homes: the depot where several stand together in the territory (each its own slot), or where they stand.
  const fleet = territory.devices.filter((d) => d.kind === 'BUS' && d.lon !== null).map((d) => ({ id: d.id, lon: d.lon!, lat: d.lat! }));
  const depot = findDepot(fleet);
  for (const bus of fleet) {
    const slot = depot && distanceMetres(bus, depot) > 300
      ? { lon: depot.lon + ((hash01(`${bus.id}:slot-x`) - 0.5) * 80) / metresPerDegreeLon(depot.lat), lat: depot.lat + ((hash01(`${bus.id}:slot-y`) - 0.5) * 30) / METRES_PER_DEGREE_LAT }
      : { lon: bus.lon, lat: bus.lat };
    world.homes.set(bus.id, slot);
  }
  let scheduleToken: { token: string; until: number } | null = null;
  const transit = new TransitSchedule({
    gatewayUrl,
    token: async () => {
      if (!scheduleToken || scheduleToken.until < Date.now()) {
        const lifetime = Math.min(3_600, config.JWT_MAX_LIFETIME_SECONDS);
        const fresh = await signDevelopmentToken({ sub: 'city-simulator', roles: ['admin'], collectivities: [...COLLECTIVITY_IDS], expiresIn: lifetime }, config);
        scheduleToken = { token: fresh, until: Date.now() + (lifetime * 1000) / 2 };
      }
      return scheduleToken.token;
    },
    model: options.delays ?? {},
    refreshMs: options.assignmentsRefreshMs ?? 60_000,
    log,
  });
  if (chosen.some((d) => d.kind === 'BUS')) world.transit = transit;
  const buildingOf = (device: DeviceSummary, controller: Record<string, unknown> = {}) => {
    if (!device.parentId || !territory.buildings.has(device.parentId)) return undefined;
    let building = world.buildings.get(device.parentId);
    if (!building) {
      // The building's controller gives its setpoints; a sensor without one played assumes the seed's 19/16 °C.
      const seeded = territory.devices.find((d) => d.kind === 'HEATING_CONTROLLER' && d.parentId === device.parentId);
      building = new Building(device.parentId, territory.buildings.get(device.parentId)!, seeded?.details ?? controller, start);
      world.buildings.set(device.parentId, building);
    }
    return building;
  };
  const modelOf = (device: DeviceSummary): Model | null => {
    switch (device.kind) {
      case 'LIGHT_POINT':
        return new LightPointModel(device, world);
      case 'PRESENCE_DETECTOR':
        return new PresenceDetectorModel(device, world);
      case 'AIR_QUALITY_SENSOR':
        return new AirQualityModel(device, buildingOf(device), world, start);
      case 'HEATING_CONTROLLER': {
        const building = buildingOf(device, device.details);
        return building ? new HeatingControllerModel(building, world) : null;
      }
      case 'ENERGY_METER':
        return new EnergyMeterModel(device, device.parentId ? territory.buildings.get(device.parentId) : undefined, start);
      case 'PARKING_FACILITY':
        return new ParkingFacilityModel(device, world);
      case 'PARKING_SENSOR': {
        const facility = territory.devices.find((d) => d.id === device.parentId);
        const sensor = new ParkingSensorModel(device, facility?.details, world, start);
        if (device.parentId) world.parkingSensors.set(device.parentId, [...(world.parkingSensors.get(device.parentId) ?? []), sensor]);
        return sensor;
      }
      case 'BUS': {
        const bus = new BusModel(device, world);
        world.buses.push(bus);
        world.busById.set(device.id, bus);
        return bus;
      }
      case 'BUS_STOP':
        return new BusStopModel(device, world);
      case 'TRAFFIC_SIGNAL_CONTROLLER':
        return new TrafficSignalModel(device, world, options.signals?.denyShare ?? 0.06);
    }
  };

  // Credentials: one ingest key per collectivity, and a few light points with their own.
  const ownCredentialDevices = chosen
    .filter((d) => d.kind === 'LIGHT_POINT')
    .slice(0, options.ownCredentials ?? 3)
    .map((d) => d.id);
  const clients = new Map<string, MqttClient>();
  const opened: MqttClient[] = [];
  // Downlinks may arrive as soon as a connection subscribes (a persistent session's queue): ignored until the devices play.
  const counts = { granted: 0, refused: 0, unanswered: 0, ignored: 0 };
  const answering = new Set<NodeJS.Timeout>();
  let playing = false;
  let stopping = false;
  let early = 0;
  const stopClients = () => Promise.all(opened.map((client) => client.endAsync(true)));
  try {
    for (const collectivityId of COLLECTIVITY_IDS) {
      const secret = await whenReady('issue its ingest keys', () => issueIngestKey(gatewayUrl, token, collectivityId), ready, log);
      const client = await connect(config.MQTT_URL, `${clientIdPrefix}-${collectivityId}`, secret, log, connectTimeoutMs);
      opened.push(client);
      clients.set(collectivityId, client);
      // The collectivity's downlinks (its ingest key may read `connecte/<c>/+/down`): the controllers' priority requests.
      client.on('message', (topic, payload) => onDownlink(collectivityId, client, topic, payload));
      const granted = await client.subscribeAsync(downlinkTopic(collectivityId, '+'), { qos: 1 });
      if (granted.some((g) => g.qos === 128)) log(`[simulator] the broker refused ${collectivityId}'s downlinks: its controllers will not answer priority requests`);
    }
    for (const id of ownCredentialDevices) {
      const secret = await whenReady('issue device credentials', () => issueDeviceCredential(gatewayUrl, token, id), ready, log);
      const client = await connect(config.MQTT_URL, `${clientIdPrefix}-${id}`, secret, log, connectTimeoutMs);
      opened.push(client);
      clients.set(id, client);
    }
  } catch (error) {
    await stopClients();
    throw new Error(`the simulator could not get its credentials or connect: ${(error as Error).message}`);
  }

  // The buses' blocks for the simulated day, before the first reports.
  if (world.transit) await whenReady('read the bus assignments', () => transit.refresh(time(), true, true), ready, log);

  // The counters' integrals from the epoch take a moment to build: before the clock starts.
  lightEnergyWh(1, true, clock());
  lightEnergyWh(1, false, clock());
  start = origin = clock();

  const played = new Map<string, Played>();
  for (const device of chosen) {
    const model = modelOf(device);
    if (!model) continue;
    const metrics: readonly MetricName[] = METRICS_BY_KIND[device.kind];
    const periodMs = Math.min(...metrics.map((m) => METRICS[m].periodSeconds)) * 1000;
    // A device in FAULT of a kind that can say so reports it, and is repaired in due course; one of
    // another kind is broken beyond reporting: it stays silent.
    if (device.status === 'FAULT' && !isFaulty(model)) continue;
    const entry: Played = {
      device,
      model,
      periodMs,
      // First reports spread over one period, so the broker sees a steady stream.
      nextDue: start + random() * periodMs,
      lastSent: {},
      client: clients.get(device.id) ?? clients.get(device.collectivityId)!,
      topic: uplinkTopic(device.collectivityId, device.id),
      repairAt: null,
    };
    played.set(device.id, entry);
    if (device.status === 'FAULT' && isFaulty(model)) {
      model.breakDown(start);
      // After its first report, which says it has failed.
      entry.repairAt = entry.nextDue + rates.repairSeconds * 1000 * (0.2 + 0.8 * random());
    }
  }

  let published = 0;
  let refused = 0;
  const send = (entry: Played, ms: number, values: Values) => {
    const pack = senmlPack(`urn:dev:connecte:${entry.device.id}`, Math.round(ms) / 1000, values);
    entry.client.publish(entry.topic, JSON.stringify(pack), { qos: 1 }, (error) => {
      if (!error) published++;
      else if (refused++ === 0) log(`[simulator] an uplink was not delivered: ${error.message}`);
    });
  };

  /** A regular report: the metrics whose own period has come round (all of them on the first). */
  const report = (entry: Played, ms: number) => {
    const values = entry.model.read(ms);
    const due: Values = {};
    for (const [metric, value] of Object.entries(values) as [MetricName, number | boolean][]) {
      const last = entry.lastSent[metric];
      if (last === undefined || ms - last >= METRICS[metric].periodSeconds * 1000 - entry.periodMs / 2) {
        due[metric] = value;
        entry.lastSent[metric] = ms;
      }
    }
    if (Object.keys(due).length > 0) send(entry, ms, due);
  };

  /** A change of state a device reports at once, every metric of its kind. */
  const reportNow = (entry: Played, ms: number) => {
    const values = entry.model.read(ms);
    for (const metric of Object.keys(values) as MetricName[]) entry.lastSent[metric] = ms;
    send(entry, ms, values);
  };

  const breakDown = (id: string, repairAfterSeconds: number | null = rates.repairSeconds) => {
    const entry = played.get(id);
    if (!entry || !isFaulty(entry.model)) throw new Error(`${id} is not a light point or traffic-signal controller the simulator plays`);
    const ms = time();
    log(`[simulator] ${id} breaks down`);
    entry.model.breakDown(ms);
    entry.repairAt = repairAfterSeconds === null ? null : ms + repairAfterSeconds * 1000;
    reportNow(entry, ms);
  };
  const repair = (id: string) => {
    const entry = played.get(id);
    if (!entry || !isFaulty(entry.model)) throw new Error(`${id} is not a light point or traffic-signal controller the simulator plays`);
    const ms = time();
    log(`[simulator] ${id} repaired`);
    entry.model.repair(ms);
    entry.repairAt = null;
    reportNow(entry, ms);
  };

  // Downlinks: the controllers answer priority requests; anything else is refused or ignored, with a log line.
  function onDownlink(collectivityId: string, client: MqttClient, topic: string, payload: Buffer) {
    try {
      const [root, topicCollectivity, equipmentId, leaf, ...rest] = topic.split('/');
      if (root !== 'connecte' || topicCollectivity !== collectivityId || leaf !== 'down' || rest.length > 0 || stopping) return;
      if (!playing) {
        // A persistent session delivers what was queued while the simulator was away: stale, and possibly many.
        counts.ignored++;
        early++;
        return;
      }
      const receivedAt = Date.now();
      const entry = played.get(equipmentId);
      if (!entry) {
        counts.ignored++;
        log(`[simulator] a downlink to ${equipmentId}, which this simulator does not play: ignored`);
        return;
      }
      const ack = (body: { cid: string; ok: boolean; error?: string }) => {
        client.publish(ackTopic(collectivityId, equipmentId), JSON.stringify(body), { qos: 1 }, (error) => {
          if (error) log(`[simulator] ${equipmentId}'s acknowledgement was not delivered: ${error.message}`);
        });
      };
      const downlink = parseDownlink(payload.toString('utf8'), receivedAt);
      if (downlink.kind === 'ignore') {
        counts.ignored++;
        log(`[simulator] a downlink to ${equipmentId} ignored: ${downlink.reason}`);
        return;
      }
      if (downlink.kind === 'refuse') {
        counts.refused++;
        log(`[simulator] ${equipmentId} refuses a downlink: ${downlink.error}`);
        ack({ cid: downlink.cid, ok: false, error: downlink.error });
        return;
      }
      const { request } = downlink;
      if (!(entry.model instanceof TrafficSignalModel)) {
        counts.refused++;
        ack({ cid: request.cid, ok: false, error: `unsupported op "priority_request" for a ${entry.device.kind}` });
        return;
      }
      const model = entry.model;
      // A controller takes a moment to decide; it must not execute a request past its ttl.
      const delay = options.signals?.ackDelayMs ?? 100 + 300 * random();
      const timer = setTimeout(() => {
        answering.delete(timer);
        if (stopping) return;
        try {
          if (Date.now() - receivedAt > request.ttl * 1000) {
            counts.refused++;
            ack({ cid: request.cid, ok: false, error: 'expired: ttl over before the controller could act' });
            return;
          }
          const ms = time();
          const was = model.priority.running(ms);
          const answer = model.request(request, ms, random());
          if (answer === null) {
            counts.unanswered++;
            log(`[simulator] ${equipmentId} is in fault: priority request ${request.cid} left unanswered`);
            return;
          }
          if (answer.ok) counts.granted++;
          else counts.refused++;
          ack(answer.ok ? { cid: request.cid, ok: true } : { cid: request.cid, ok: false, error: answer.error! });
          if (answer.ok && !was) reportNow(entry, ms);
        } catch (error) {
          log(`[simulator] ${equipmentId} could not answer ${request.cid}: ${(error as Error).message}`);
        }
      }, delay);
      answering.add(timer);
    } catch (error) {
      log(`[simulator] a downlink on ${topic} could not be handled: ${(error as Error).message}`);
    }
  }

  const faultable = (kind: SimulatedKind) => [...played.values()].filter((e) => e.device.kind === kind && isFaulty(e.model));
  const lights = faultable('LIGHT_POINT');
  const signals = faultable('TRAFFIC_SIGNAL_CONTROLLER');
  const randomFault = (pool: Played[], meanSeconds: number, elapsedMs: number) => {
    if (meanSeconds <= 0 || pool.length === 0 || random() >= 1 - Math.exp(-elapsedMs / 1000 / meanSeconds)) return;
    const working = pool.filter((e) => (e.model as Model & Faulty).faultSince === null);
    if (working.length) breakDown(working[Math.floor(random() * working.length)].device.id, rates.repairSeconds * (0.5 + random()));
  };

  // Citizens' reports and their handling, through the gateway as the app, the control room and the field agents would.
  const citizenRates = { reportMeanSeconds: 1_800, concurrent: 5, ...options.citizens };
  const citizens = new CitizenReports({
    config,
    gatewayUrl,
    random,
    speed,
    spots: territory.devices.filter((d) => (d.kind === 'LIGHT_POINT' || d.kind === 'BUS_STOP') && d.lon !== null),
    broken: () => lights.filter((e) => (e.model as Model & Faulty).faultSince !== null).map((e) => e.device),
    repaired: (id) => {
      const entry = played.get(id);
      if (entry && isFaulty(entry.model) && entry.model.faultSince !== null) repair(id);
    },
    log,
  });
  const randomReport = (elapsedMs: number) => {
    const mean = citizenRates.reportMeanSeconds;
    if (mean <= 0 || citizens.disabled || citizens.inFlight >= citizenRates.concurrent) return;
    if (random() < 1 - Math.exp(-elapsedMs / 1000 / mean)) void citizens.play().catch(() => {});
  };

  // Building the models (and their history) took a moment too: the clock starts now.
  start = origin = clock();
  playing = true;
  if (early > 0) log(`[simulator] ${early} downlinks queued before the devices played were ignored (their requests have expired)`);
  log(`[simulator] playing ${played.size} devices over ${config.MQTT_URL} (${ownCredentialDevices.length} with credentials of their own)`);
  for (const id of options.breakDown ?? []) breakDown(id);

  let lastTick = time();
  let simulatedDay = parisDate(lastTick);
  // Ticks often enough that each covers at most about a simulated second (20 ms at the least).
  const tick = setInterval(
    () => {
      const ms = time();
      if (world.transit) {
        const today = parisDate(ms);
        void transit.refresh(ms, today !== simulatedDay);
        simulatedDay = today;
      }
      for (const entry of played.values()) {
        if (entry.repairAt !== null && entry.repairAt <= ms) repair(entry.device.id);
        if (entry.model.stateChanged?.(ms)) reportNow(entry, ms);
        if (entry.nextDue > ms) continue;
        entry.nextDue = Math.max(entry.nextDue + entry.periodMs, ms);
        report(entry, ms);
      }
      randomFault(lights, rates.lightMeanSeconds, ms - lastTick);
      randomFault(signals, rates.signalMeanSeconds, ms - lastTick);
      randomReport(ms - lastTick);
      lastTick = ms;
    },
    Math.max(20, Math.min(1_000, 1_000 / speed)),
  );

  return {
    devices: played.size,
    deviceIds: (kind) => [...played.values()].filter((e) => kind === undefined || e.device.kind === kind).map((e) => e.device.id),
    ownCredentialDevices,
    published: () => published,
    time,
    breakDown,
    repair,
    citizenReports: () => ({ reported: citizens.reported, closedOut: citizens.closedOut }),
    reportProblem: () => citizens.play(),
    busMode: () => (world.transit?.active ? 'BLOCKS' : 'STOP_TO_STOP'),
    busState: (id) => world.busById.get(id)?.state ?? null,
    busDay: (id) => {
      const bus = world.busById.get(id);
      return bus ? (world.transit?.dayOf(id, world.homes.get(id) ?? bus, time()) ?? null) : null;
    },
    refreshAssignments: () => transit.refresh(time(), true),
    downlinks: () => ({ ...counts }),
    async stop() {
      clearInterval(tick);
      stopping = true;
      for (const timer of answering) clearTimeout(timer);
      answering.clear();
      await citizens.stop();
      // Let the broker acknowledge what is in flight, but do not wait on a broker that is gone.
      const deadline = Date.now() + 3_000;
      const pending = () => opened.some((client) => client.connected && (Object.keys(client.outgoing).length > 0 || client.queue.length > 0));
      while (pending() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      await stopClients();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const config = loadConfigOrExit();
  try {
    const simulator = await startSimulator({ config, gatewayUrl: process.env.GATEWAY_URL ?? 'http://localhost:4000/graphql' });
    const stop = async () => {
      await simulator.stop();
      process.exit(0);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  } catch (error) {
    console.error(`[simulator] ${(error as Error).message}`);
    process.exit(1);
  }
}
