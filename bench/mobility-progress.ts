/**
 * Live vehicles: the time to recompute progress, delay and predictions after a round of positions
 * — 32 buses (the seed's fleet), then 2,000 synthetic vehicles on the same network (target
 * ≤ 200 ms) — against a baseline measured in the same run: the naive projection (every segment of
 * the whole shape, geodesic arithmetic per segment, no window near the previous progress).
 *
 * The network is the seed's when the test database has one (gtfs_* tables), else the test
 * fixture's (subgraphs/mobility/test/network-fixture.ts) in memory. Vehicles are placed on the
 * trips running at the busiest quarter-hour of a service day, each with a delay of its own (−1 to
 * +8 minutes) and 5 m of GPS noise, and move on by 15 s per round; each round is computed from
 * the states the previous one left (the window needs them). No hub runs: the computation is the
 * tracker's (`computeRound`), the store's write is timed on a fresh test database: the states'
 * one statement (binary unnest arrays; the buses' rows exist, as in the steady state) and the
 * insert of their events, in transactions rolled back.
 *
 *   npm run bench:mobility-progress                  # 20 rounds
 *   npm run bench:mobility-progress -- --rounds 50
 */
import { mulberry32 } from '../prisma/seed/rng.js';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createDatabase } from '@connecte/shared/db';
import { createTestDatabase, testConfig } from '@connecte/testkit';
import { addDays, buildNetwork, loadNetwork, parisDate, serviceDayStartMs, type Network } from '../subgraphs/mobility/src/network.js';
import type { NetworkTrip, VehicleState } from '../subgraphs/mobility/src/types.js';
import { trackPosition, type BlockAssignment, type PositionInput, type ProgressConfig } from '../subgraphs/mobility/src/vehicle-progress.js';
import { publishVehicleEvents, upsertStates } from '../subgraphs/mobility/src/vehicle-store.js';
import { computeRound } from '../subgraphs/mobility/src/vehicle-tracker.js';
import { fixtureNetworkData } from '../subgraphs/mobility/test/network-fixture.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '20' } } });
const ROUNDS = Math.max(3, Number(args.rounds));
const CONFIG: ProgressConfig = { maxSpeedMps: 36, offRouteM: 120 };
const STEP_S = 15;


const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ms = (value: number) => `${value.toFixed(1)} ms`;

/** Metres along the trip where the schedule puts it at `s` seconds of the service day. */
function scheduledDistance(trip: NetworkTrip, s: number): number {
  const st = trip.stopTimes;
  if (s <= st[0].departureSeconds) return st[0].shapeDistTraveled;
  for (let k = 0; k < st.length - 1; k++) {
    const a = st[k];
    const b = st[k + 1];
    if (s <= a.departureSeconds) return a.shapeDistTraveled;
    if (s <= b.arrivalSeconds) return a.shapeDistTraveled + ((s - a.departureSeconds) / Math.max(1, b.arrivalSeconds - a.departureSeconds)) * (b.shapeDistTraveled - a.shapeDistTraveled);
  }
  return st[st.length - 1].shapeDistTraveled;
}

/** The point at `d` metres along a shape. */
function pointAlong(network: Network, shapeId: string, d: number): [number, number] {
  const shape = network.shapes.get(shapeId)!;
  const { coordinates: c, distances } = shape;
  let i = 0;
  while (i < distances.length - 2 && distances[i + 1] < d) i++;
  const span = distances[i + 1] - distances[i];
  const t = span > 0 ? Math.max(0, Math.min(1, (d - distances[i]) / span)) : 0;
  return [c[i][0] + t * (c[i + 1][0] - c[i][0]), c[i][1] + t * (c[i + 1][1] - c[i][1])];
}

interface Vehicle {
  id: string;
  trip: NetworkTrip;
  delayS: number;
  assignments: BlockAssignment[];
}

/** The service day and quarter-hour with the most trips running, from today on. */
function busiest(network: Network): { date: string; seconds: number; running: NetworkTrip[] } {
  let best = { date: parisDate(new Date()), seconds: 8 * 3600, running: [] as NetworkTrip[] };
  for (let offset = 0; offset < 14; offset++) {
    const date = addDays(parisDate(new Date()), offset);
    const services = network.servicesOn(date);
    const trips = [...network.trips.values()].filter((trip) => services.has(trip.serviceId) && trip.blockId !== null);
    for (let s = 5 * 3600; s <= 22 * 3600; s += 900) {
      const running = trips.filter((trip) => trip.startSeconds <= s - 60 && s + 9 * 60 < trip.endSeconds);
      if (running.length > best.running.length) best = { date, seconds: s, running };
    }
    if (best.running.length > 0 && offset >= 1) break;
  }
  return best;
}

function vehiclesOn(count: number, running: NetworkTrip[], date: string, seed: number): Vehicle[] {
  const rand = mulberry32(seed);
  return Array.from({ length: count }, (_, i) => {
    const trip = running[i % running.length];
    return { id: `bench-bus-${String(i).padStart(5, '0')}`, trip, delayS: Math.round(-60 + rand() * 540), assignments: [{ serviceDate: date, blockId: trip.blockId! }] };
  });
}

function positionsAt(network: Network, vehicles: Vehicle[], dayStartMs: number, s: number, rand: () => number): Map<string, PositionInput[]> {
  const positions = new Map<string, PositionInput[]>();
  for (const vehicle of vehicles) {
    const d = scheduledDistance(vehicle.trip, s - vehicle.delayS);
    const [lon, lat] = pointAlong(network, vehicle.trip.shapeId, d);
    const noise = () => (rand() - 0.5) * 10;
    positions.set(vehicle.id, [
      { equipmentId: vehicle.id, collectivityId: 'chalons-agglo', observedAt: new Date(dayStartMs + s * 1000), lon: lon + noise() / 73_000, lat: lat + noise() / 111_000, speedMps: 8 },
    ]);
  }
  return positions;
}

interface Measure {
  windowed: number[];
  naive: number[];
  states: number;
  outliers: number;
  lastStates: VehicleState[];
  /** The round before the last. */
  previousStates: VehicleState[];
}

/** Rounds of positions for the vehicles, each computed with the window and with the baseline, in turns. */
function measure(network: Network, vehicles: Vehicle[], date: string, startS: number): Measure {
  const dayStartMs = serviceDayStartMs(date);
  const assignments = new Map(vehicles.map((v) => [v.id, v.assignments]));
  const rand = mulberry32(7);
  const windowedPrevious = new Map<string, VehicleState>();
  const naivePrevious = new Map<string, VehicleState>();
  const result: Measure = { windowed: [], naive: [], states: 0, outliers: 0, lastStates: [], previousStates: [] };
  for (let round = 0; round <= ROUNDS; round++) {
    const positions = positionsAt(network, vehicles, dayStartMs, startS + round * STEP_S, rand);
    // Windowed (the tracker's computation).
    let started = performance.now();
    const windowed = computeRound(network, positions, windowedPrevious, assignments, CONFIG);
    const windowedMs = performance.now() - started;
    // Baseline: the same positions, the naive projection over the whole shape.
    started = performance.now();
    const naiveStates: VehicleState[] = [];
    for (const [id, list] of positions) {
      let state = naivePrevious.get(id) ?? null;
      for (const position of list) {
        const outcome = trackPosition(network, position, state, assignments.get(id)!, CONFIG, { projector: 'naive' });
        if (outcome.kind === 'state') naiveStates.push((state = outcome.state));
      }
    }
    const naiveMs = performance.now() - started;
    for (const state of windowed.states) windowedPrevious.set(state.equipmentId, state);
    for (const state of naiveStates) naivePrevious.set(state.equipmentId, state);
    // Round 0 only builds the states the window starts from (and warms the JIT).
    if (round === 0) continue;
    result.windowed.push(windowedMs);
    result.naive.push(naiveMs);
    result.states = windowed.states.length;
    result.outliers = windowed.outliers.length;
    result.previousStates = result.lastStates;
    result.lastStates = windowed.states;
  }
  return result;
}

const database = await createTestDatabase();
const db = createDatabase(testConfig(database.url, { DB_POOL_SIZE: '2' }));
try {
  const seeded = await loadNetwork(db.pool);
  const network = seeded.trips.size > 0 ? seeded : buildNetwork(fixtureNetworkData());
  const source = seeded.trips.size > 0 ? `the seeded network (feed ${seeded.feedId})` : 'the test fixture network (the seed has none yet)';
  const points = [...network.shapes.values()].reduce((sum, shape) => sum + shape.coordinates.length, 0);
  const { date, seconds, running } = busiest(network);
  if (running.length === 0) throw new Error('no trip of a block runs on the next 14 days');
  console.log(`network: ${source}: ${network.routes.size} routes, ${network.trips.size} trips, ${network.shapes.size} shapes (${points} points, ${Math.round(points / network.shapes.size)} per shape)`);
  console.log(`service day ${date}, from ${String(Math.floor(seconds / 3600)).padStart(2, '0')}:${String((seconds % 3600) / 60).padStart(2, '0')}: ${running.length} trips running; ${ROUNDS} rounds of ${STEP_S} s`);

  const rows: string[][] = [];
  for (const count of [32, 2000]) {
    const vehicles = vehiclesOn(count, running, date, count);
    const result = measure(network, vehicles, date, seconds);
    // The store's write of the last round over the round before (committed: the steady state is
    // an update of every bus), its states and its events, in transactions rolled back.
    await db.pool.query('TRUNCATE vehicle_states');
    {
      const client = await db.pool.connect();
      await upsertStates(client, result.previousStates);
      client.release();
    }
    const storeMs: number[] = [];
    const upsertMs: number[] = [];
    const eventsMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const client = await db.pool.connect();
      try {
        await client.query('BEGIN');
        const started = performance.now();
        await upsertStates(client, result.lastStates);
        const upserted = performance.now();
        await publishVehicleEvents(client, result.lastStates);
        const published = performance.now();
        upsertMs.push(upserted - started);
        eventsMs.push(published - upserted);
        storeMs.push(published - started);
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
    }
    const windowed = median(result.windowed);
    const naive = median(result.naive);
    rows.push([
      String(count),
      ms(windowed),
      ms(Math.max(...result.windowed)),
      ms(naive),
      `${(naive / windowed).toFixed(1)}×`,
      `${ms(median(storeMs))} (${ms(median(upsertMs))} + ${ms(median(eventsMs))})`,
      ms(windowed + median(storeMs)),
      `${result.states} states, ${result.outliers} outliers`,
    ]);
  }
  const header = ['vehicles', 'compute (median)', 'compute (max)', 'baseline naive (median)', 'ratio', 'store: states + events (median of 5)', 'compute + store', 'last round'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  console.log('');
  console.log(line(header));
  for (const row of rows) console.log(line(row));
  const target = rows[1];
  console.log('');
  const verdict = (value: string) => (Number.parseFloat(value) <= 200 ? 'met' : 'NOT met');
  console.log(`2,000 vehicles, target ≤ 200 ms: recomputing progress, delay and predictions ${target[1]} (median): ${verdict(target[1])}; with the store's write of the round ${target[6]}: ${verdict(target[6])}`);
} finally {
  await db.close();
  await database.drop();
}
