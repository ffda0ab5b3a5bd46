/**
 * Parking's rules, per request (it holds the caller and its DataLoader): the facilities and their
 * availability (public: open data publishes them), the listing with its filters, who may set a
 * facility's tariffs and hours (`operator` or `admin` of its collectivity) and what valid tariffs
 * and hours are, opening at an instant (Europe/Paris), and the availability stream.
 *
 * A facility is a PARKING_FACILITY asset of the directory (not decommissioned): name, type,
 * position and capacity are the asset's (`details.name`, `details.type`, `details.capacity`);
 * tariffs, hours and occupancy are mobility's (parking-store.ts).
 */
import DataLoader from 'dataloader';
import { requireRoleIn } from '@connecte/shared/auth';
import { badInput, notFound } from '@connecte/shared/errors';
import { mapEvents } from '@connecte/shared/events';
import { checkNear } from '@connecte/shared/geo';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import type { MobilityContext } from './context.js';
import type {
  MutationUpdateParkingFacilityInfoArgs,
  ParkingFacilityInfoInput,
  QueryParkingFacilitiesArgs,
  SubscriptionParkingAvailabilityChangedArgs,
} from './generated/graphql.js';
import { capacityOf, facilityIdOfSensor, facilityOfPayload, facilityRow, occupancyStatusOf } from './parking-occupancy.js';
import { facilitiesWithin, loadFacilityStates, writeInfo } from './parking-store.js';
import type { MobilityResources } from './resources.js';
import { PARKING_TOPIC, type AssetRow, type OccupancyStatus, type OpeningHoursValue, type ParkingFacilityRow, type ParkingTariffValue } from './types.js';

// --- Limits of an update (docs/mobility.md) -----------------

/** Each ISO day at most once over the whole list, so at most 7 entries. */
export const MAX_OPENING_HOURS = 7;
export const MAX_TARIFFS = 20;
export const MAX_TARIFF_LABEL = 60;
export const MAX_TARIFF_MINUTES = 10_080;
export const MAX_PRICE_EUR = 1_000;
export const MAX_FREE_MINUTES = 1_440;
/** Lists given to a filter or the stream. */
const MAX_FILTER_IDS = 1_000;
const TIME_ZONE = 'Europe/Paris';
const WRITERS = ['operator', 'admin'] as const;

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A value quoted in an error message: JSON text, at most 40 characters (control characters escaped). */
function shown(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : String(value);
  return text;
}

/** `HH:MM` → minutes of the day (`24:00` → 1,440 when `closing`); null when not such a time. */
export function minutesOf(time: unknown, closing: boolean): number | null {
  if (typeof time !== 'string') return null;
  if (closing && time === '24:00') return 1_440;
  if (!HHMM.test(time)) return null;
  return Number(time.slice(0, 2)) * 60 + Number(time.slice(3, 5));
}

/**
 * Checks opening hours and returns them normalised (days sorted). Errors name the field as the
 * schema spells it, `input.openingHours.2.closes` (indices as the project's argument paths).
 */
export function validateOpeningHours(list: unknown, field = 'input.openingHours'): OpeningHoursValue[] {
  if (!Array.isArray(list)) throw badInput(field, 'must be a list (an empty list means always open)');
  if (list.length > MAX_OPENING_HOURS) {
    throw badInput(field, `has ${list.length} entries, at most ${MAX_OPENING_HOURS} (each day of the week at most once over the whole list)`);
  }
  const seen = new Map<number, number>();
  return list.map((entry: unknown, i) => {
    const at = `${field}.${i}`;
    if (typeof entry !== 'object' || entry === null) throw badInput(at, 'must be an object { days, opens, closes }');
    const { days, opens, closes } = entry as Record<string, unknown>;
    if (!Array.isArray(days) || days.length === 0) throw badInput(`${at}.days`, 'must name at least one day (1 = Monday … 7 = Sunday)');
    if (days.length > 7) throw badInput(`${at}.days`, `has ${days.length} days, at most 7 (each day at most once)`);
    days.forEach((day: unknown, d) => {
      if (typeof day !== 'number' || !Number.isInteger(day) || day < 1 || day > 7) {
        throw badInput(`${at}.days.${d}`, `must be an ISO day of the week, 1 (Monday) to 7 (Sunday), not ${shown(day)}`);
      }
      const before = seen.get(day);
      if (before !== undefined) {
        throw badInput(`${at}.days.${d}`, `day ${day} is already given${before === i ? ' in this entry' : ` in input.openingHours.${before}`}: each day at most once over the whole list`);
      }
      seen.set(day, i);
    });
    const open = minutesOf(opens, false);
    if (open === null) throw badInput(`${at}.opens`, `must be a time HH:MM (00:00 to 23:59), not ${shown(opens)}`);
    const close = minutesOf(closes, true);
    if (close === null) throw badInput(`${at}.closes`, `must be a time HH:MM (00:01 to 23:59, or 24:00 for midnight), not ${shown(closes)}`);
    if (close <= open) {
      throw badInput(`${at}.closes`, `must be after opens (${opens as string}); a facility open past midnight takes two entries, one closing at 24:00`);
    }
    return { days: [...(days as number[])].sort((a, b) => a - b), opens: opens as string, closes: closes as string };
  });
}

/** Checks tariffs: ascending durations, prices 0..1,000 with at most two decimals, only the last open-ended. */
export function validateTariffs(list: unknown, field = 'input.tariffs'): ParkingTariffValue[] {
  if (!Array.isArray(list)) throw badInput(field, 'must be a list (an empty list means free)');
  if (list.length > MAX_TARIFFS) throw badInput(field, `has ${list.length} prices, at most ${MAX_TARIFFS}`);
  let previous: number | null = null;
  return list.map((entry: unknown, i) => {
    const at = `${field}.${i}`;
    if (typeof entry !== 'object' || entry === null) throw badInput(at, 'must be an object { label, upToMinutes, priceEur }');
    const { label, upToMinutes, priceEur } = entry as Record<string, unknown>;
    if (typeof label !== 'string' || label.trim() === '') throw badInput(`${at}.label`, 'must be a non-empty text');
    if (label.length > MAX_TARIFF_LABEL) throw badInput(`${at}.label`, `has ${label.length} characters, at most ${MAX_TARIFF_LABEL}`);
    if (CONTROL.test(label)) throw badInput(`${at}.label`, 'must not contain control characters (NUL, line breaks…)');
    let minutes: number | null = null;
    if (upToMinutes !== null && upToMinutes !== undefined) {
      if (typeof upToMinutes !== 'number' || !Number.isInteger(upToMinutes) || upToMinutes < 1 || upToMinutes > MAX_TARIFF_MINUTES) {
        throw badInput(`${at}.upToMinutes`, `must be a whole number of minutes from 1 to ${MAX_TARIFF_MINUTES.toLocaleString('en-US')} (or null for any longer stay), not ${shown(upToMinutes)}`);
      }
      if (previous !== null && upToMinutes <= previous) {
        throw badInput(`${at}.upToMinutes`, `must be greater than the previous price's (${previous}): prices go by ascending length of stay`);
      }
      minutes = upToMinutes;
      previous = upToMinutes;
    } else if (i !== list.length - 1) {
      throw badInput(`${at}.upToMinutes`, 'only the last price may be for any longer stay (null)');
    }
    if (typeof priceEur !== 'number' || !Number.isFinite(priceEur)) throw badInput(`${at}.priceEur`, `must be a finite number of euros, not ${shown(priceEur)}`);
    if (priceEur < 0 || priceEur > MAX_PRICE_EUR) throw badInput(`${at}.priceEur`, `must be from 0 to ${MAX_PRICE_EUR.toLocaleString('en-US')} euros, not ${priceEur}`);
    const cents = Math.round(priceEur * 100);
    if (Math.abs(priceEur * 100 - cents) > 1e-6) throw badInput(`${at}.priceEur`, `must have at most two decimals (cents), not ${priceEur}`);
    return { label: label.trim(), upToMinutes: minutes, priceEur: cents / 100 };
  });
}

/** Checks an update's input; returns what to write (`undefined`: left as it is). */
export function validateInfoInput(input: ParkingFacilityInfoInput): { openingHours?: OpeningHoursValue[]; tariffs?: ParkingTariffValue[]; freeMinutes?: number } {
  const change: { openingHours?: OpeningHoursValue[]; tariffs?: ParkingTariffValue[]; freeMinutes?: number } = {};
  const given = (key: keyof ParkingFacilityInfoInput) => Object.hasOwn(input, key) && input[key] !== undefined;
  if (!given('openingHours') && !given('tariffs') && !given('freeMinutes')) {
    throw badInput('input', 'changes nothing: give openingHours, tariffs or freeMinutes');
  }
  if (given('openingHours')) {
    if (input.openingHours === null) throw badInput('input.openingHours', 'must not be null: omit it to leave the hours as they are, [] means always open');
    change.openingHours = validateOpeningHours(input.openingHours);
  }
  if (given('tariffs')) {
    if (input.tariffs === null) throw badInput('input.tariffs', 'must not be null: omit it to leave the prices as they are, [] means free');
    change.tariffs = validateTariffs(input.tariffs);
  }
  if (given('freeMinutes')) {
    const free = input.freeMinutes;
    if (typeof free !== 'number' || !Number.isInteger(free) || free < 0 || free > MAX_FREE_MINUTES) {
      throw badInput('input.freeMinutes', `must be a whole number of minutes from 0 to ${MAX_FREE_MINUTES.toLocaleString('en-US')}, not ${shown(free)}`);
    }
    change.freeMinutes = free;
  }
  return change;
}

const PARIS = new Intl.DateTimeFormat('en-GB', { timeZone: TIME_ZONE, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
const ISO_DAY: Record<string, number> = { Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6, Sun: 7 };

/** The ISO day of the week and the minute of the day of an instant, in Europe/Paris (summer time included). */
export function parisDayAndMinute(at: Date): { day: number; minute: number } {
  let weekday = '';
  let hour = 0;
  let minute = 0;
  for (const part of PARIS.formatToParts(at)) {
    if (part.type === 'weekday') weekday = part.value;
    else if (part.type === 'hour') hour = Number(part.value);
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return { day: ISO_DAY[weekday], minute: hour * 60 + minute };
}

/** Open at `at`: always when it has no hours; otherwise when the day's entry covers the time (opens inclusive, closes exclusive). */
export function isOpenAt(hours: readonly OpeningHoursValue[], at: Date): boolean {
  if (hours.length === 0) return true;
  const { day, minute } = parisDayAndMinute(at);
  return hours.some((entry) => entry.days.includes(day) && minute >= minutesOf(entry.opens, false)! && minute < minutesOf(entry.closes, true)!);
}

const collator = new Intl.Collator('fr', { sensitivity: 'base', numeric: true });

/** The listing's cursor key: the sort value (name, or distance with `near`) and the id. */
type ListKey = [string | number, string];

function decodeListCursor(after: string | null | undefined, byDistance: boolean): ListKey | null {
  const key = decodeCursor(after);
  if (key === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(key);
  } catch {
    throw badInput('after', 'is not a cursor returned by this API');
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[1] !== 'string' || typeof parsed[0] !== (byDistance ? 'number' : 'string')) {
    throw badInput('after', `is not a cursor of this listing${byDistance ? ' (ordered by distance: pass the same near)' : ''}`);
  }
  return parsed as ListKey;
}

function checkIdList(list: readonly string[] | null | undefined, field: string): Set<string> | null {
  if (list === null || list === undefined) return null;
  if (list.length === 0) throw badInput(field, 'must name at least one (or be omitted)');
  if (list.length > MAX_FILTER_IDS) throw badInput(field, `names ${list.length}, at most ${MAX_FILTER_IDS}`);
  return new Set(list);
}

export class ParkingService {
  private readonly r: MobilityResources;
  /** Facility rows by asset id (null: not a live parking facility), for this request. */
  readonly byId: DataLoader<string, ParkingFacilityRow | null>;

  constructor(private readonly context: MobilityContext) {
    this.r = context.resources;
    this.byId = new DataLoader((ids) => this.load(ids), { maxBatchSize: 1_000 });
  }

  /** `Query.parkingFacility` and `Equipment.parkingFacility`: null for anything but a live facility. */
  facility(id: string): Promise<ParkingFacilityRow | null> {
    return this.byId.load(id);
  }

  /** `OccupancyStatus` of a row, now. */
  occupancyStatus(row: ParkingFacilityRow): OccupancyStatus {
    return occupancyStatusOf(row, Date.now(), this.r.config.MOBILITY_PARKING_STALE_S);
  }

  isOpen(row: ParkingFacilityRow, at: Date | null | undefined): boolean {
    return isOpenAt(row.openingHours, at ?? new Date());
  }

  /** `Query.parkingFacilities`: every filter, by name (by distance with `near`), keyset pages. */
  async facilities(args: QueryParkingFacilitiesArgs): Promise<Connection<ParkingFacilityRow>> {
    const limit = pageSize(args.first);
    const filter = args.filter ?? {};
    const ids = checkIdList(filter.ids, 'filter.ids');
    const collectivities = checkIdList(filter.collectivityIds, 'filter.collectivityIds');
    const types = filter.types === null || filter.types === undefined ? null : new Set<string>(filter.types);
    if (types && types.size === 0) throw badInput('filter.types', 'must name at least one type (or be omitted)');
    const near = filter.near ? checkNear(filter.near, 'filter.near.') : null;
    const minFree = filter.minFreeSpaces;
    if (minFree !== null && minFree !== undefined && minFree < 0) throw badInput('filter.minFreeSpaces', `must be a whole number ≥ 0, not ${minFree}`);
    const cursor = decodeListCursor(args.after, near !== null);

    let assets = (await this.liveFacilities()).filter(
      (asset) =>
        (!ids || ids.has(asset.equipmentId)) &&
        (!collectivities || collectivities.has(asset.collectivityId)) &&
        (!types || types.has(String(asset.details.type))),
    );
    let distances: Map<string, number> | null = null;
    if (near) {
      distances = await facilitiesWithin(this.r.db.pool, assets.map((a) => a.equipmentId), near);
      assets = assets.filter((asset) => distances!.has(asset.equipmentId));
    }
    let rows = (await this.byId.loadMany(assets.map((a) => a.equipmentId))).filter((row): row is ParkingFacilityRow => row !== null && !(row instanceof Error));
    const now = new Date();
    if (minFree !== null && minFree !== undefined) {
      // Only a count that can be believed now: never reported and STALE facilities are left out.
      rows = rows.filter((row) => row.occupied !== null && this.occupancyStatus(row) !== 'STALE' && row.capacity - row.occupied >= minFree);
    }
    if (filter.openNow === true || filter.openNow === false) rows = rows.filter((row) => isOpenAt(row.openingHours, now) === filter.openNow);

    const keyOf = (row: ParkingFacilityRow): ListKey => [distances ? distances.get(row.equipmentId)! : row.name, row.equipmentId];
    const compare = (a: ListKey, b: ListKey) => {
      const first = typeof a[0] === 'number' ? (a[0] as number) - (b[0] as number) : collator.compare(a[0] as string, b[0] as string);
      return first !== 0 ? first : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
    };
    rows.sort((a, b) => compare(keyOf(a), keyOf(b)));
    const total = rows.length;
    const start = cursor ? rows.findIndex((row) => compare(keyOf(row), cursor) > 0) : 0;
    const page = start === -1 ? [] : rows.slice(start, start + limit + 1);
    return connection(page, limit, (row) => JSON.stringify(keyOf(row)), cursor !== null, async () => total);
  }

  /** `Mutation.updateParkingFacilityInfo`: operator or admin of the facility's collectivity. */
  async update(args: MutationUpdateParkingFacilityInfoArgs): Promise<ParkingFacilityRow> {
    const asset = (await this.liveFacilities()).find((a) => a.equipmentId === args.id);
    if (!asset) throw notFound(`no parking facility ${shown(args.id)}`, 'id');
    requireRoleIn(this.context.viewer, asset.collectivityId, [...WRITERS], 'id');
    const change = validateInfoInput(args.input);
    await this.r.inTransaction((client) => writeInfo(client, asset.equipmentId, asset.collectivityId, change, this.context.viewer.sub!));
    this.byId.clear(asset.equipmentId);
    return (await this.byId.load(asset.equipmentId))!;
  }

  /** `Subscription.parkingAvailabilityChanged`: public; each event carries the facility after the change. */
  availabilityChanged(args: SubscriptionParkingAvailabilityChangedArgs): AsyncIterableIterator<{ parkingAvailabilityChanged: { cursor: string; facility: ParkingFacilityRow } }> {
    const facilities = checkIdList(args.facilityIds, 'facilityIds');
    const collectivities = checkIdList(args.collectivityIds, 'collectivityIds');
    return mapEvents(
      this.context.events,
      { topics: [PARKING_TOPIC], after: args.after ?? undefined, collectivityIds: collectivities ? [...collectivities] : null },
      (event) => {
        const facility = facilityOfPayload(event.payload);
        if (!facility || (facilities && !facilities.has(facility.equipmentId))) return null;
        return { parkingAvailabilityChanged: { cursor: event.id, facility } };
      },
    );
  }

  private async liveFacilities(): Promise<AssetRow[]> {
    return (await this.r.directory.ofKind('PARKING_FACILITY')).filter((asset) => asset.status !== 'DECOMMISSIONED');
  }

  private async load(ids: readonly string[]): Promise<(ParkingFacilityRow | null)[]> {
    const facilities = new Map((await this.liveFacilities()).map((asset) => [asset.equipmentId, asset]));
    const wanted = [...new Set(ids.filter((id) => facilities.has(id)))];
    if (wanted.length === 0) return ids.map(() => null);
    const states = await loadFacilityStates(this.r.db.pool, wanted);
    // Capacity falls back to the live sensors of a facility that declares none.
    let sensors: Map<string, number> | null = null;
    const sensorCount = async () => {
      if (sensors) return sensors;
      sensors = new Map();
      for (const sensor of await this.r.directory.ofKind('PARKING_SENSOR')) {
        const id = sensor.status === 'DECOMMISSIONED' ? null : facilityIdOfSensor(sensor);
        if (id) sensors.set(id, (sensors.get(id) ?? 0) + 1);
      }
      return sensors;
    };
    const needsCount = wanted.some((id) => capacityOf(facilities.get(id)!, () => -1) === -1);
    const counts = needsCount ? await sensorCount() : new Map<string, number>();
    return ids.map((id) => {
      const asset = facilities.get(id);
      if (!asset) return null;
      const state = states.get(id);
      return facilityRow(asset, capacityOf(asset, () => counts.get(id) ?? 0), state?.occupancy ?? null, state?.info ?? null);
    });
  }
}

