/**
 * Parking facilities' live occupancy, from telemetry's readings (called by the readings consumer,
 * in its transaction, once per `telemetry.readings` event):
 *
 * - `occupancy` of a PARKING_FACILITY: its entry/exit counter, the number of cars inside
 *   (source `COUNTER`);
 * - `occupancy` of a PARKING_SENSOR: 0 or 1, one bay of its facility (the sensor's `parentId`,
 *   else `details.facilityId`); the facility's count is the recount of its bays (source `SENSORS`).
 *
 * Rules: a count above the capacity (a counter drifting, more sensors than declared bays) is kept
 * as reported (`reported`) but `occupied` is capped at the capacity and the status is
 * `OVER_CAPACITY`: free spaces never go negative. A reading older than what is stored is ignored
 * (an older count never overwrites a newer one; within one event only a facility's newest count
 * counts). Readings that cannot be placed are skipped, once logged per asset: a facility or
 * sensor the directory does not know (yet), a sensor without a known facility, a value that is
 * not a whole number ≥ 0 (telemetry already refuses negatives and fractions, see
 * docs/devices.md), a bay value other than 0 or 1. `PARKING_TOPIC` gets one event per facility
 * whose free spaces or status (as seen now: `STALE` after `MOBILITY_PARKING_STALE_S`) changed.
 */
import type pg from 'pg';
import { publishEvents, type NewEvent } from '@connecte/shared/events';
import {
  countBays,
  loadInfos,
  lockOccupancy,
  writeBays,
  writeOccupancy,
  type BayWrite,
  type InfoRow,
  type OccupancyRow,
  type OccupancyWrite,
} from './parking-store.js';
import type { MobilityResources } from './resources.js';
import {
  PARKING_TOPIC,
  type AssetRow,
  type OccupancyStatus,
  type ParkingEventPayload,
  type ParkingFacilityRow,
  type Reading,
  type ReadingsHandler,
} from './types.js';

export const PARKING_FACILITY_TYPES = ['UNDERGROUND', 'SURFACE', 'ON_STREET'] as const;
type FacilityType = (typeof PARKING_FACILITY_TYPES)[number];

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value) && value >= 0;

/** The facility a sensor belongs to: its parent, else `details.facilityId`. */
export function facilityIdOfSensor(sensor: AssetRow): string | null {
  if (sensor.parentId) return sensor.parentId;
  const id = sensor.details.facilityId;
  return typeof id === 'string' && id !== '' ? id : null;
}

/**
 * A facility's capacity: the asset's `details.capacity` (a whole number ≥ 0), else the number of
 * its live bay sensors (an on-street sector registered without one), else 0.
 */
export function capacityOf(facility: AssetRow, sensorCount: () => number): number {
  const declared = facility.details.capacity;
  if (isCount(declared)) return declared;
  return sensorCount();
}

/** `OK` / `OVER_CAPACITY` as stored; `STALE` when the count is older than `staleSeconds`; `UNKNOWN` when never reported. */
export function occupancyStatusOf(row: Pick<ParkingFacilityRow, 'status' | 'observedAt'>, now: number, staleSeconds: number): OccupancyStatus {
  if (row.status === null || row.observedAt === null) return 'UNKNOWN';
  if (now - row.observedAt.getTime() > staleSeconds * 1000) return 'STALE';
  return row.status;
}

/** What the GraphQL type and the events show of a facility: the asset's figures, then mobility's. */
export function facilityRow(asset: AssetRow, capacity: number, occupancy: OccupancyRow | null, info: InfoRow | null): ParkingFacilityRow {
  const type = PARKING_FACILITY_TYPES.includes(asset.details.type as FacilityType) ? (asset.details.type as FacilityType) : 'SURFACE';
  const name = typeof asset.details.name === 'string' && asset.details.name !== '' ? asset.details.name : (asset.name ?? asset.reference);
  // The capacity in force is the asset's now; the count is compared with it (it may have changed since).
  const reported = occupancy?.reported ?? null;
  return {
    equipmentId: asset.equipmentId,
    collectivityId: asset.collectivityId,
    name,
    type,
    location: asset.location,
    capacity,
    occupied: reported === null ? null : Math.min(reported, capacity),
    reported,
    source: occupancy?.source ?? null,
    status: reported === null ? null : reported > capacity ? 'OVER_CAPACITY' : 'OK',
    observedAt: occupancy?.observedAt ?? null,
    openingHours: info?.openingHours ?? [],
    tariffs: info?.tariffs ?? [],
    freeMinutes: info?.freeMinutes ?? 0,
  };
}

/** The event payload as JSON carries it (dates as ISO text), and back. */
export function facilityOfPayload(payload: unknown): ParkingFacilityRow | null {
  const facility = (payload as Partial<ParkingEventPayload> | null)?.facility as (ParkingFacilityRow & { observedAt: string | null }) | undefined;
  if (!facility || typeof facility.equipmentId !== 'string') return null;
  return { ...facility, observedAt: facility.observedAt === null ? null : new Date(facility.observedAt) };
}

export class ParkingOccupancy implements ReadingsHandler {
  readonly kinds = ['PARKING_FACILITY', 'PARKING_SENSOR'] as const;
  /** Assets whose readings were skipped, each logged once per process (a sensor reports every minute). */
  private readonly skipped = new Set<string>();

  constructor(private readonly r: MobilityResources) {}

  /** The event's collectivity is not needed: each facility's is the asset's. */
  async apply(client: pg.PoolClient, readings: Reading[], _eventCollectivityId?: string | null): Promise<void> {
    const occupancy = readings.filter((reading) => reading.metric === 'occupancy');
    if (occupancy.length === 0) return;
    const [facilities, sensors] = await Promise.all([this.r.directory.ofKind('PARKING_FACILITY'), this.r.directory.ofKind('PARKING_SENSOR')]);
    const facilityById = new Map(facilities.filter((f) => f.status !== 'DECOMMISSIONED').map((f) => [f.equipmentId, f]));
    const sensorById = new Map(sensors.filter((s) => s.status !== 'DECOMMISSIONED').map((s) => [s.equipmentId, s]));
    let sensorsPerFacility: Map<string, number> | null = null;
    const sensorCount = (facilityId: string) => {
      if (!sensorsPerFacility) {
        sensorsPerFacility = new Map();
        for (const sensor of sensorById.values()) {
          const id = facilityIdOfSensor(sensor);
          if (id) sensorsPerFacility.set(id, (sensorsPerFacility.get(id) ?? 0) + 1);
        }
      }
      return sensorsPerFacility.get(facilityId) ?? 0;
    };

    // Counters: the newest count of each facility in the event; bays: the newest state of each sensor.
    const counts = new Map<string, Reading>();
    const bays = new Map<string, BayWrite>();
    for (const reading of occupancy) {
      if (reading.kind === 'PARKING_FACILITY') {
        if (!facilityById.has(reading.equipmentId)) {
          this.skip(reading.equipmentId, 'a parking facility the directory does not know');
          continue;
        }
        if (!isCount(reading.value)) {
          this.skip(reading.equipmentId, `an occupancy of ${reading.value}, not a whole number ≥ 0`);
          continue;
        }
        const newest = counts.get(reading.equipmentId);
        if (!newest || newest.time < reading.time) counts.set(reading.equipmentId, reading);
      } else {
        const sensor = sensorById.get(reading.equipmentId);
        if (!sensor) {
          this.skip(reading.equipmentId, 'a parking sensor the directory does not know');
          continue;
        }
        const facilityId = facilityIdOfSensor(sensor);
        if (!facilityId || !facilityById.has(facilityId)) {
          this.skip(reading.equipmentId, `a parking sensor whose facility (${facilityId ?? 'none'}) the directory does not know`);
          continue;
        }
        if (reading.value !== 0 && reading.value !== 1) {
          this.skip(reading.equipmentId, `a bay occupancy of ${reading.value}, not 0 or 1`);
          continue;
        }
        const newest = bays.get(reading.equipmentId);
        if (!newest || newest.observedAt < reading.time) {
          bays.set(reading.equipmentId, { sensorId: reading.equipmentId, facilityId, occupied: reading.value === 1, observedAt: reading.time });
        }
      }
    }
    if (counts.size === 0 && bays.size === 0) return;

    const changedSectors = await writeBays(client, [...bays.values()]);
    const sectorCounts = await countBays(client, changedSectors);
    const ids = [...new Set([...counts.keys(), ...changedSectors])].sort();
    const before = await lockOccupancy(client, ids);

    const writes: OccupancyWrite[] = [];
    const write = (facility: AssetRow, reported: number, source: OccupancyWrite['source'], observedAt: Date) => {
      const capacity = capacityOf(facility, () => sensorCount(facility.equipmentId));
      writes.push({
        equipmentId: facility.equipmentId,
        collectivityId: facility.collectivityId,
        capacity,
        occupied: Math.min(reported, capacity),
        reported,
        source,
        status: reported > capacity ? 'OVER_CAPACITY' : 'OK',
        observedAt,
      });
    };
    for (const [id, reading] of counts) write(facilityById.get(id)!, reading.value, 'COUNTER', reading.time);
    for (const [id, sector] of sectorCounts) {
      // A counter reading of the same facility in the same event wins (the sector has both).
      if (!counts.has(id)) write(facilityById.get(id)!, sector.occupied, 'SENSORS', sector.observedAt);
    }
    const written = await writeOccupancy(client, writes);
    if (written.length === 0) return;

    // Events: free spaces or status changed, as a reader sees them now.
    const now = Date.now();
    const stale = this.r.config.MOBILITY_PARKING_STALE_S;
    const events: NewEvent[] = [];
    const infos = await loadInfos(client, written.map((row) => row.equipmentId));
    for (const row of written) {
      const facility = facilityById.get(row.equipmentId)!;
      const capacity = capacityOf(facility, () => sensorCount(facility.equipmentId));
      const after = facilityRow(facility, capacity, row, infos.get(row.equipmentId) ?? null);
      const previous = before.get(row.equipmentId);
      if (previous) {
        const was = facilityRow(facility, capacity, previous, null);
        const sameFree = was.occupied === after.occupied;
        const sameStatus = occupancyStatusOf(was, now, stale) === occupancyStatusOf(after, now, stale);
        if (sameFree && sameStatus) continue;
      }
      const payload: ParkingEventPayload = { facility: after };
      events.push({ topic: PARKING_TOPIC, collectivityId: facility.collectivityId, payload });
    }
    await publishEvents(client, events);
  }

  private skip(equipmentId: string, why: string): void {
    if (this.skipped.has(equipmentId) || this.skipped.size > 10_000) return;
    this.skipped.add(equipmentId);
    this.r.log.warn(`parking: reading of ${equipmentId} skipped: ${why} (logged once per asset)`);
  }
}
