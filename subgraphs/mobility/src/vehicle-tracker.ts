/**
 * Buses' live state from their position readings (the readings consumer hands it the BUS
 * readings of each `telemetry.readings` event, in the consumer's transaction).
 *
 * The `lat`, `lon` and `speed` readings of one bus at one time form a position; a position
 * without both coordinates, or with coordinates out of range, is dropped (telemetry refuses those
 * already). For a round: one read of the buses' states and one of their assignments (today's and
 * yesterday's service days, for trips past midnight), then each position is computed in memory
 * against the network (vehicle-progress.ts), in time order per bus; then one upsert of the states,
 * one insert of the outliers, one `mobility.vehicle` event per state taken, and finally the
 * listener (signal priority) is told of the buses' newest states.
 *
 * Outliers — a speed above MOBILITY_MAX_SPEED_MPS, a move the time since the last position
 * cannot explain, a position farther than MOBILITY_OFF_ROUTE_M from the trip's shape, a position
 * older than the state — are written to `vehicle_outliers` and leave the state as it was.
 */
import type pg from 'pg';
import { addDays, parisDate } from './network.js';
import type { MobilityResources } from './resources.js';
import type { Reading, ReadingsHandler, VehicleOutlierRow, VehicleState, VehicleStatesListener } from './types.js';
import { trackPosition, type BlockAssignment, type PositionInput, type ProgressConfig } from './vehicle-progress.js';
import { loadBlockAssignments, loadStates, storeRound } from './vehicle-store.js';

/** The positions of a round's readings, by bus, each bus's in time order. */
export function positionsOf(readings: readonly Reading[], collectivityOf: (equipmentId: string) => string | null): Map<string, PositionInput[]> {
  const byKey = new Map<string, { equipmentId: string; at: number; lat?: number; lon?: number; speed?: number }>();
  for (const reading of readings) {
    if (reading.metric !== 'lat' && reading.metric !== 'lon' && reading.metric !== 'speed') continue;
    const at = reading.time.getTime();
    const key = `${reading.equipmentId}\u0000${at}`;
    let entry = byKey.get(key);
    if (!entry) byKey.set(key, (entry = { equipmentId: reading.equipmentId, at }));
    entry[reading.metric] = reading.value;
  }
  const byBus = new Map<string, PositionInput[]>();
  for (const entry of byKey.values()) {
    const { lat, lon, speed } = entry;
    if (lat === undefined || lon === undefined || !(lat >= -90 && lat <= 90) || !(lon >= -180 && lon <= 180)) continue;
    const collectivityId = collectivityOf(entry.equipmentId);
    if (collectivityId === null) continue;
    const position: PositionInput = { equipmentId: entry.equipmentId, collectivityId, observedAt: new Date(entry.at), lon, lat, speedMps: speed === undefined || speed < 0 ? null : speed };
    const list = byBus.get(entry.equipmentId);
    if (list) list.push(position);
    else byBus.set(entry.equipmentId, [position]);
  }
  for (const list of byBus.values()) list.sort((a, b) => a.observedAt.getTime() - b.observedAt.getTime());
  return byBus;
}

/** The service days a position may belong to: its day, and the day before (trips past midnight). */
export function serviceDatesOf(positions: Iterable<PositionInput[]>): string[] {
  const dates = new Set<string>();
  for (const list of positions) {
    for (const position of list) {
      const day = parisDate(position.observedAt);
      dates.add(day);
      dates.add(addDays(day, -1));
    }
  }
  return [...dates];
}

export interface RoundResult {
  states: VehicleState[];
  outliers: (VehicleOutlierRow & { equipmentId: string })[];
  /** Each state's block (for the events). */
  blocks: Map<VehicleState, string | null>;
}

/** The round in memory: each bus's positions in order, each from the state the previous left. */
export function computeRound(
  network: ReturnType<MobilityResources['network']['current']>,
  positions: Map<string, PositionInput[]>,
  previous: Map<string, VehicleState>,
  assignments: Map<string, BlockAssignment[]>,
  config: ProgressConfig,
): RoundResult {
  const states: VehicleState[] = [];
  const outliers: RoundResult['outliers'] = [];
  const blocks = new Map<VehicleState, string | null>();
  for (const [equipmentId, list] of positions) {
    let state = previous.get(equipmentId) ?? null;
    const own = assignments.get(equipmentId) ?? [];
    for (const position of list) {
      const outcome = trackPosition(network, position, state, own, config);
      if (outcome.kind === 'outlier') outliers.push(outcome.outlier);
      else if (outcome.kind === 'state') {
        state = outcome.state;
        states.push(state);
        const day = state.serviceDate ?? parisDate(state.observedAt);
        blocks.set(state, own.find((a) => a.serviceDate === day)?.blockId ?? null);
      }
    }
  }
  return { states, outliers, blocks };
}

export class VehicleTracker implements ReadingsHandler {
  readonly kinds = ['BUS'] as const;

  constructor(
    private readonly r: MobilityResources,
    private readonly listener: VehicleStatesListener,
  ) {}

  private get progressConfig(): ProgressConfig {
    return { maxSpeedMps: this.r.config.MOBILITY_MAX_SPEED_MPS, offRouteM: this.r.config.MOBILITY_OFF_ROUTE_M };
  }

  async apply(client: pg.PoolClient, readings: Reading[], eventCollectivityId: string | null): Promise<void> {
    const buses = new Map((await this.r.directory.ofKind('BUS')).map((asset) => [asset.equipmentId, asset]));
    const positions = positionsOf(readings, (id) => buses.get(id)?.collectivityId ?? eventCollectivityId);
    if (positions.size === 0) return;
    const ids = [...positions.keys()];
    const previous = await loadStates(client, ids);
    const assignments = await loadBlockAssignments(client, ids, serviceDatesOf(positions.values()));
    const round = computeRound(this.r.network.current(), positions, previous, assignments, this.progressConfig);
    await storeRound(client, round.states, round.outliers, (state) => round.blocks.get(state) ?? null);
    if (round.states.length === 0) return;
    const newest = new Map<string, VehicleState>();
    for (const state of round.states) newest.set(state.equipmentId, state);
    await this.listener.onVehicleStates(client, [...newest.values()]);
  }
}
