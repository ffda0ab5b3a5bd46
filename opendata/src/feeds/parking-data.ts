/**
 * What the parking feeds (DATEX II table and status, BNLS CSV, GeoJSON) read of
 * `opendata_parking_facilities`, the view the mobility domain publishes, and what they derive
 * from it as mobility's API does (docs/mobility.md, "Parking"): the availability status
 * (`STALE` once a count is older than the threshold, `UNKNOWN` when never reported), whether a
 * facility is open at an instant in Europe/Paris, the price of a stay.
 *
 * Availability and opening change with the clock, not only with the rows: the version of a live
 * feed is computed from the rows and those derived states at the snapshot's instant, so a
 * facility going STALE or closing for the night gives a new ETag without any write.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { FeedVersion } from '../feed.js';

/** mobility's MOBILITY_PARKING_STALE_S default: a count older than this is no longer believed. */
export const PARKING_STALE_AFTER_S = 900;

export type FacilityType = 'UNDERGROUND' | 'SURFACE' | 'ON_STREET';
export type Availability = 'OK' | 'OVER_CAPACITY' | 'STALE' | 'UNKNOWN';

export interface OpeningHours {
  /** ISO days, 1 = Monday … 7 = Sunday. */
  days: number[];
  opens: string;
  /** `HH:MM`, `24:00` for midnight. */
  closes: string;
}

export interface Tariff {
  label: string;
  /** null: any longer stay (the last price only). */
  upToMinutes: number | null;
  priceEur: number;
}

export interface ParkingFacility {
  id: string;
  name: string;
  type: FacilityType;
  collectivityId: string;
  inseeCode: string | null;
  operatorSiren: string | null;
  lon: number;
  lat: number;
  capacity: number;
  openingHours: OpeningHours[];
  tariffs: Tariff[];
  freeMinutes: number;
  occupied: number | null;
  freeSpaces: number | null;
  /** Stored status: OK / OVER_CAPACITY, null when never reported. */
  status: 'OK' | 'OVER_CAPACITY' | null;
  observedAt: Date | null;
  descriptionUpdatedAt: Date;
  updatedAt: Date;
}

export interface ParkingSelection {
  collectivityId: string | null;
  /** Sorted, without repeats; null = every type. */
  types: FacilityType[] | null;
}

export const WHOLE_PARKING: ParkingSelection = { collectivityId: null, types: null };

/** A version that remembers the instant its derived states were computed at, for `render`. */
export interface ParkingVersion extends FeedVersion {
  at: Date;
}

/** The selected facilities, ordered by id (stable documents). */
export async function readFacilities(db: pg.ClientBase, selection: ParkingSelection): Promise<ParkingFacility[]> {
  const { rows } = await db.query(
    `SELECT id, name, type, collectivity_id, insee_code, operator_siren, lon, lat, capacity, opening_hours, tariffs,
            free_minutes, occupied, free_spaces, status, observed_at, description_updated_at, updated_at
     FROM opendata_parking_facilities
     WHERE ($1::text IS NULL OR collectivity_id = $1) AND ($2::text[] IS NULL OR type = ANY($2::text[]))
     ORDER BY id`,
    [selection.collectivityId, selection.types],
  );
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    type: r.type,
    collectivityId: r.collectivity_id,
    inseeCode: r.insee_code,
    operatorSiren: r.operator_siren,
    lon: r.lon,
    lat: r.lat,
    capacity: r.capacity,
    openingHours: r.opening_hours,
    tariffs: r.tariffs,
    freeMinutes: r.free_minutes,
    occupied: r.occupied,
    freeSpaces: r.free_spaces,
    status: r.status,
    observedAt: r.observed_at,
    descriptionUpdatedAt: r.description_updated_at,
    updatedAt: r.updated_at,
  }));
}

/** The database's clock (the snapshot's `now()`), so that every reader of one version agrees. */
export async function snapshotNow(db: pg.ClientBase): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>('SELECT now() AS now');
  return rows[0].now;
}

export function availabilityOf(facility: Pick<ParkingFacility, 'status' | 'observedAt'>, at: Date, staleAfterS = PARKING_STALE_AFTER_S): Availability {
  if (facility.status === null || facility.observedAt === null) return 'UNKNOWN';
  if (at.getTime() - facility.observedAt.getTime() > staleAfterS * 1000) return 'STALE';
  return facility.status;
}

const PARIS = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
const ISO_DAY: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

const minutesOf = (time: string) => (time === '24:00' ? 1440 : Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5)));

/** Open at `at` (Europe/Paris wall clock): always without hours; else an entry of that day covers the minute (opens ≤ t < closes). */
export function isOpenAt(hours: readonly OpeningHours[], at: Date): boolean {
  if (hours.length === 0) return true;
  let day = 0;
  let minute = 0;
  for (const part of PARIS.formatToParts(at)) {
    if (part.type === 'weekday') day = ISO_DAY[part.value];
    else if (part.type === 'hour') minute += Number(part.value) * 60;
    else if (part.type === 'minute') minute += Number(part.value);
  }
  return hours.some((entry) => entry.days.includes(day) && minute >= minutesOf(entry.opens) && minute < minutesOf(entry.closes));
}

/**
 * The price of a stay of `minutes`: free within the free minutes, else the first price whose
 * duration covers the stay, else the open-ended last one; null when no price covers it (the
 * facility does not allow such a stay) — an empty list of prices is free.
 */
export function priceOfStay(facility: Pick<ParkingFacility, 'tariffs' | 'freeMinutes'>, minutes: number): number | null {
  if (facility.tariffs.length === 0 || minutes <= facility.freeMinutes) return 0;
  const covering = facility.tariffs.find((t) => t.upToMinutes !== null && t.upToMinutes >= minutes) ?? facility.tariffs.find((t) => t.upToMinutes === null);
  return covering ? covering.priceEur : null;
}

export const isFree = (facility: Pick<ParkingFacility, 'tariffs'>) => facility.tariffs.every((t) => t.priceEur === 0);

/**
 * The version of a parking document: a digest of what it shows of each facility (`parts`), the
 * latest change as Last-Modified. `parts` names what the document depends on, derived states included.
 */
export function parkingVersion(facilities: readonly ParkingFacility[], at: Date, parts: (f: ParkingFacility) => unknown[], lastModified: (f: ParkingFacility) => Date): ParkingVersion {
  const hash = createHash('sha256');
  let latest: Date | null = null;
  for (const facility of facilities) {
    hash.update(JSON.stringify(parts(facility)));
    hash.update('\n');
    const modified = lastModified(facility);
    if (latest === null || modified > latest) latest = modified;
  }
  return { tag: `${facilities.length}|${hash.digest('base64url').slice(0, 27)}`, lastModified: latest, at };
}
