/**
 * The city simulator's mobility (scripts/simulator.ts): buses playing the blocks of the shipped
 * GTFS feed (`subgraphs/mobility/gtfs/chalons-agglo`) with their delay model — pure functions on
 * fixed dates —, traffic-signal controllers' answers to priority requests, and the car parks'
 * counts; then the controllers against a hub and a broker requiring credentials: requests sent on
 * a controller's downlink as the hub sends them, answers read on its ack topic.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { connectTestBroker, createTestDatabase, gql, ROOT, startHub, startTestBroker, tokenFor, type Hub, type TestBroker, type TestDatabase } from '@connecte/testkit';
import { mobilityResourcesFor } from '../subgraphs/mobility/src/context.ts';
import { easterSunday } from '@connecte/shared/calendar';
import { parseGtfs } from '../subgraphs/mobility/src/gtfs-parse.ts';
import {
  approachAxis,
  busStateAt,
  callDelays,
  dayTypeOf,
  dwellSeconds,
  EARLY_TOLERANCE_S,
  facilityCapacity,
  facilityOccupancy,
  findDepot,
  hash01,
  MIN_LAYOVER_S,
  parisInstant,
  parkingShare,
  parseDownlink,
  parseGtfsTime,
  planBusDay,
  pointAlong,
  PriorityController,
  PRIORITY_RECOVERY_S,
  serviceDayOrigin,
  startSimulator,
  trafficFactor,
  type BlockAssignment,
  type BusDay,
  type PlannedTrip,
  type PriorityRequest,
} from '../scripts/simulator.ts';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const at = parisInstant;

// --- the shipped feed, as blocks ---------------------------------------------------------------

const FEED = path.join(ROOT, 'subgraphs', 'mobility', 'gtfs', 'chalons-agglo');

function loadFeed() {
  const files = parseGtfs({ folder: FEED });
  assert.deepEqual(files.problems, []);
  const rows = (file: string) => files.tables.get(file)!.records.map((r) => r.values);
  const stops = new Map(rows('stops.txt').map((s) => [s.stop_id, { lon: Number(s.stop_lon), lat: Number(s.stop_lat) }]));
  const shapes = new Map<string, { seq: number; point: [number, number] }[]>();
  for (const p of rows('shapes.txt')) shapes.set(p.shape_id, [...(shapes.get(p.shape_id) ?? []), { seq: Number(p.shape_pt_sequence), point: [Number(p.shape_pt_lon), Number(p.shape_pt_lat)] }]);
  const calls = new Map<string, PlannedTrip['calls']>();
  for (const st of rows('stop_times.txt')) {
    calls.set(st.trip_id, [
      ...(calls.get(st.trip_id) ?? []),
      { stopSequence: Number(st.stop_sequence), stopId: st.stop_id, arrival: parseGtfsTime(st.arrival_time), departure: parseGtfsTime(st.departure_time), dist: Number(st.shape_dist_traveled) },
    ]);
  }
  const trips = rows('trips.txt').map((t) => ({
    serviceId: t.service_id,
    blockId: t.block_id,
    trip: {
      id: t.trip_id,
      routeId: t.route_id,
      shape: shapes.get(t.shape_id)!.sort((a, b) => a.seq - b.seq).map((p) => p.point),
      calls: calls.get(t.trip_id)!.sort((a, b) => a.stopSequence - b.stopSequence),
    } satisfies PlannedTrip,
  }));
  /** The blocks of a service on a date, each given to a bus `bus-<n>`. */
  const blocks = (serviceId: string, serviceDate: string): BlockAssignment[] => {
    const byBlock = new Map<string, PlannedTrip[]>();
    for (const t of trips.filter((t) => t.serviceId === serviceId)) byBlock.set(t.blockId, [...(byBlock.get(t.blockId) ?? []), t.trip]);
    return [...byBlock.entries()].sort().map(([blockId, list], i) => ({ serviceDate, blockId, vehicleId: `bus-${201 + i}`, trips: list }));
  };
  return { stops, blocks };
}

const feed = loadFeed();
/** The depot of the seed: the Châlons street where the spare buses stand. */
const HOME = { lon: 4.3631, lat: 48.9566 };
// 2026-03-03 is a Tuesday, 2026-03-07 a Saturday, 2026-03-08 a Sunday.
const TUESDAY = '2026-03-03';
const weekday = feed.blocks('WEEKDAY', TUESDAY);

function metres(a: { lon: number; lat: number }, b: { lon: number; lat: number }) {
  return Math.hypot((b.lon - a.lon) * 111_320 * Math.cos((a.lat * Math.PI) / 180), (b.lat - a.lat) * 111_320);
}

/** The planned state every 15 s over the whole day. */
function sample(day: BusDay, date: string, stepMs = 15_000) {
  const states = [];
  for (let ms = serviceDayOrigin(date) + 4 * HOUR; ms < serviceDayOrigin(date) + 26 * HOUR; ms += stepMs) states.push({ ms, ...busStateAt(day, ms) });
  return states;
}

describe('the simulator\'s buses on their GTFS blocks', () => {
  it('reads GTFS times, service days, day types and public holidays', () => {
    assert.equal(parseGtfsTime('05:30:00'), 5.5 * 3600);
    assert.equal(parseGtfsTime('25:10:05'), 25 * 3600 + 10 * 60 + 5);
    assert.equal(parseGtfsTime('7:05:00'), 7 * 3600 + 300);
    for (const bad of ['7:5:00', '12:60:00', 'noon', '']) assert.throws(() => parseGtfsTime(bad), /not a GTFS time/);
    assert.equal(serviceDayOrigin(TUESDAY), Date.UTC(2026, 2, 2, 23), 'midnight in Paris (winter time)');
    // The day summer time starts: GTFS times count from noon minus 12 h, an hour before midnight.
    assert.equal(serviceDayOrigin('2026-03-29'), Date.UTC(2026, 2, 28, 22));
    assert.deepEqual([easterSunday(2025), easterSunday(2026), easterSunday(2027)], ['2025-04-20', '2026-04-05', '2027-03-28']);
    assert.equal(dayTypeOf(TUESDAY), 'WEEKDAY');
    assert.equal(dayTypeOf('2026-03-07'), 'SATURDAY');
    assert.equal(dayTypeOf('2026-03-08'), 'SUNDAY');
    for (const holiday of ['2026-01-01', '2026-04-06', '2026-05-14', '2026-05-25', '2026-07-14', '2026-12-25']) assert.equal(dayTypeOf(holiday), 'SUNDAY', holiday);
  });

  it('has rush hours on weekdays, shoppers on Saturday and quiet Sundays, and longer dwells at the rush hours', () => {
    assert.ok(trafficFactor(8, 'WEEKDAY') > 1.1 && trafficFactor(17.5, 'WEEKDAY') > 1.15);
    assert.ok(trafficFactor(10.5, 'WEEKDAY') < 1.02 && trafficFactor(21, 'WEEKDAY') < 1);
    assert.ok(trafficFactor(16, 'SATURDAY') > trafficFactor(9, 'SATURDAY'));
    for (let hour = 5; hour < 24; hour += 0.5) assert.ok(trafficFactor(hour, 'SUNDAY') < 1, `Sunday ${hour} h`);
    const dwells = (hour: number) => Array.from({ length: 400 }, (_, i) => dwellSeconds(`BS-AGG-${String(i % 150).padStart(5, '0')}`, hour, 'WEEKDAY', ((i * 0.6180339887) % 1)));
    const mean = (xs: (number | null)[]) => xs.reduce((s: number, x) => s + (x ?? 0), 0) / xs.length;
    assert.ok(mean(dwells(8)) > mean(dwells(21)) * 1.5, `dwell at 08:00 ${mean(dwells(8))} s against 21:00 ${mean(dwells(21))} s`);
    assert.ok(dwells(21).some((d) => d === null), 'in the evening a bus passes stops nobody asked for');
    assert.ok([...dwells(8), ...dwells(21)].every((d) => d === null || (d >= 10.5 && d <= 90)));
  });

  it('plays a weekday block: out of the depot in time, every stop on the shape, never leaving early, back to the depot', () => {
    const block = weekday[0];
    const day = planBusDay(block.vehicleId, HOME, [block]);
    const first = block.trips.map((t) => t.calls[0].departure).sort((a, b) => a - b)[0];
    const origin = serviceDayOrigin(TUESDAY);
    assert.equal(busStateAt(day, origin + (first - 3600) * 1000).phase, 'DEPOT');
    assert.deepEqual(busStateAt(day, origin + (first - 3600) * 1000).speed, 0);
    assert.equal(day.trips.length, block.trips.length);
    for (const played of day.trips) {
      const firstCall = played.actual[0];
      assert.ok(firstCall.departure >= played.origin + played.trip.calls[0].departure * 1000, `${played.trip.id} never leaves its terminus early`);
      played.trip.calls.forEach((call, i) => {
        const actual = played.actual[i];
        if (!actual.stopped) return;
        if (i < played.trip.calls.length - 1) {
          assert.ok(actual.departure >= played.origin + (call.departure - EARLY_TOLERANCE_S) * 1000 - 1, `${played.trip.id} #${call.stopSequence} leaves at most ${EARLY_TOLERANCE_S} s early`);
        }
        // Standing at the stop: on the shape at its distance, by the stop itself.
        const standing = busStateAt(day, (actual.arrival + actual.departure) / 2);
        if (actual.departure > actual.arrival + 1000) {
          assert.equal(standing.speed, 0);
          assert.equal(standing.tripId, played.trip.id);
          assert.ok(metres(standing, feed.stops.get(call.stopId)!) < 40, `${played.trip.id} stands by ${call.stopId}: ${metres(standing, feed.stops.get(call.stopId)!)} m`);
        }
      });
    }
    const lastArrival = day.trips.at(-1)!.actual.at(-1)!.arrival;
    const later = busStateAt(day, lastArrival + 2 * HOUR);
    assert.equal(later.phase, 'DEPOT');
    assert.ok(metres(later, HOME) < 1, 'back at its depot after its last trip');
  });

  it('moves like a bus: speeds a bus can reach, positions 15 s apart that a bus can cover, on its shape while in service', () => {
    for (const block of weekday.slice(0, 6)) {
      const day = planBusDay(block.vehicleId, HOME, [block]);
      const states = sample(day, TUESDAY);
      for (let i = 1; i < states.length; i++) {
        const { speed } = states[i];
        assert.ok(speed >= 0 && speed <= 20.01, `${block.vehicleId}: ${speed} m/s`);
        const step = metres(states[i - 1], states[i]);
        assert.ok(step <= 15 * 20 + 1, `${block.vehicleId} at ${new Date(states[i].ms).toISOString()}: ${step} m in 15 s`);
      }
      for (const s of states.filter((s) => s.phase === 'IN_TRANSIT')) {
        const played = day.trips[s.trip!];
        const onShape = pointAlong(played.trip.shape, played.lengths, s.dist!);
        assert.ok(metres(s, onShape) < 0.01);
      }
      const phases = new Set(states.map((s) => s.phase));
      for (const phase of ['DEPOT', 'PULL_OUT', 'IN_TRANSIT', 'DWELL', 'LAYOVER', 'PULL_IN']) assert.ok(phases.has(phase as never), `${block.vehicleId}: ${phase} in ${[...phases]}`);
    }
  });

  it('runs late at the rush hours, on time in the evening, catches up on its layovers, and the same on every run', () => {
    const peak: number[] = [];
    const evening: number[] = [];
    let incidents = 0;
    for (const block of weekday) {
      const day = planBusDay(block.vehicleId, HOME, [block]);
      incidents += day.pieces.filter((p) => p.kind === 'stand' && p.phase === 'INCIDENT').length;
      day.trips.forEach((played, k) => {
        const delays = callDelays(played);
        const end = delays.at(-1)!.arrival;
        const hour = played.trip.calls[0].departure / 3600;
        if (hour >= 16.75 && hour < 18) peak.push(end);
        if (hour >= 20) evening.push(end);
        for (const d of delays) assert.ok(d.arrival > -15 * 60 && d.arrival < 25 * 60, `${played.trip.id}: ${d.arrival} s at #${d.stopSequence}`);
        // The next trip leaves on time unless this one came in too late for its layover.
        const next = day.trips[k + 1];
        if (next) {
          const arrivedAt = played.actual.at(-1)!.arrival;
          const scheduled = next.origin + next.trip.calls[0].departure * 1000;
          const departed = next.actual[0].departure;
          const sameTerminus = metres(pointAlong(played.trip.shape, played.lengths, played.trip.calls.at(-1)!.dist), pointAlong(next.trip.shape, next.lengths, next.trip.calls[0].dist)) < 1;
          if (sameTerminus) {
            assert.ok(departed <= Math.max(scheduled, arrivedAt + 90_000 + MIN_LAYOVER_S * 1000), `${next.trip.id} leaves ${(departed - scheduled) / 1000} s late`);
            if (arrivedAt + 120_000 + MIN_LAYOVER_S * 1000 < scheduled) assert.ok(departed - scheduled < 1, `${next.trip.id}: on time after a long enough layover`);
          }
        }
      });
    }
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(peak.length > 10 && evening.length > 10);
    assert.ok(mean(peak) > 120, `trips of 16:45–18:00 end ${mean(peak)} s late on average`);
    assert.ok(mean(evening) < 60, `trips after 20:00 end ${mean(evening)} s late on average`);
    assert.ok(mean(peak) > mean(evening) + 90);
    assert.ok(incidents >= 3 && incidents <= 80, `${incidents} incidents over the day's ${weekday.length} blocks`);
    // Deterministic from the bus and the day.
    const again = planBusDay(weekday[3].vehicleId, HOME, [weekday[3]]);
    assert.deepEqual(again, planBusDay(weekday[3].vehicleId, HOME, [weekday[3]]));
    const otherBus = planBusDay('bus-999', HOME, [{ ...weekday[3], vehicleId: 'bus-999' }]);
    assert.notDeepEqual(callDelays(otherBus.trips[2]), callDelays(again.trips[2]), 'another bus, other delays');
  });

  it('turns the delay model off part by part: without traffic, noise, passengers and incidents a bus keeps its timetable', () => {
    const block = weekday[5];
    const exact = planBusDay(block.vehicleId, HOME, [block], { traffic: 0, noise: 0, incidents: 0, dwell: false });
    assert.equal(exact.pieces.filter((p) => p.kind === 'stand' && p.phase === 'INCIDENT').length, 0);
    for (const played of exact.trips) {
      for (const d of callDelays(played)) assert.ok(d.arrival > -60 && d.arrival < 90, `${played.trip.id} #${d.stopSequence}: ${d.arrival} s`);
    }
    const incidents = weekday.reduce((n, b) => n + planBusDay(b.vehicleId, HOME, [b], { incidents: 5 }).pieces.filter((p) => p.kind === 'stand' && p.phase === 'INCIDENT').length, 0);
    const none = weekday.reduce((n, b) => n + planBusDay(b.vehicleId, HOME, [b], { incidents: 0 }).pieces.filter((p) => p.kind === 'stand' && p.phase === 'INCIDENT').length, 0);
    assert.equal(none, 0);
    assert.ok(incidents > 20, `${incidents} incidents at five times the rate`);
  });

  it('chains yesterday\'s late block and today\'s, stands a spare bus at its depot, and finds the depot', () => {
    const saturday = feed.blocks('SATURDAY', '2026-03-07');
    const sunday = feed.blocks('SUNDAY', '2026-03-08');
    const both = planBusDay('bus-201', HOME, [saturday[0], { ...sunday[0], vehicleId: 'bus-201' }]);
    assert.equal(both.trips.length, saturday[0].trips.length + sunday[0].trips.length);
    const gapStart = both.trips[saturday[0].trips.length - 1].actual.at(-1)!.arrival;
    const gapEnd = both.trips[saturday[0].trips.length].actual[0].departure;
    assert.equal(busStateAt(both, (gapStart + gapEnd) / 2).phase, 'DEPOT', 'the night at the depot');
    const spare = planBusDay('bus-230', HOME, []);
    for (const ms of [at(TUESDAY, 3), at(TUESDAY, 12), at(TUESDAY, 23)]) assert.deepEqual(busStateAt(spare, ms), { ...HOME, speed: 0, bearing: 0, phase: 'DEPOT', trip: null, tripId: null, dist: null });
    const buses = [{ lon: 4.37, lat: 48.95 }, { lon: 4.35, lat: 48.97 }, ...[0, 1, 2, 3].map((i) => ({ lon: 4.36 + i * 0.0002, lat: 48.96 }))];
    const depot = findDepot(buses)!;
    assert.ok(metres(depot, { lon: 4.3603, lat: 48.96 }) < 5);
    assert.equal(findDepot(buses.slice(0, 3)), null);
  });
});

// --- priority requests, pure ---------------------------------------------------------------------

const request = (over: Partial<PriorityRequest> = {}): PriorityRequest => ({
  cid: `c-${Math.random()}`,
  vehicleId: 'bus-201',
  tripId: 'WK-L1-0-0530',
  routeId: 'L1',
  etaSeconds: 12,
  delaySeconds: 140,
  ttl: 20,
  ...over,
});

describe('the controllers\' answers to priority requests', () => {
  it('reads a downlink: a request, a refusal naming what is wrong, or nothing to answer', () => {
    const good = { cid: 'c1', op: 'priority_request', vehicleId: 'bus-201', tripId: 'T1', routeId: 'L1', etaSeconds: 12, delaySeconds: 140, ttl: 20 };
    const { op: _op, ...request } = good;
    assert.deepEqual(parseDownlink(JSON.stringify(good)), { kind: 'priority_request', request });
    assert.deepEqual(parseDownlink(JSON.stringify({ ...good, tripId: undefined, routeId: '', delaySeconds: undefined })), { kind: 'priority_request', request: { ...request, tripId: null, routeId: null, delaySeconds: null } });
    assert.equal(parseDownlink('{not json').kind, 'ignore');
    assert.equal(parseDownlink('[1,2]').kind, 'ignore');
    assert.equal(parseDownlink(JSON.stringify({ ...good, cid: 42 })).kind, 'ignore');
    assert.equal(parseDownlink(JSON.stringify({ ...good, cid: 'x'.repeat(201) })).kind, 'ignore');
    const refusal = (body: unknown) => {
      const parsed = parseDownlink(JSON.stringify(body), Date.UTC(2026, 2, 3, 12));
      assert.equal(parsed.kind, 'refuse', JSON.stringify(body));
      return (parsed as { cid: string; error: string }).error;
    };
    assert.match(refusal({ ...good, op: 'dim' }), /unsupported op "dim"/);
    assert.match(refusal({ cid: 'c1' }), /unsupported op null/);
    assert.match(refusal({ ...good, ttl: 0 }), /expired/);
    assert.match(refusal({ ...good, ttl: '20' }), /invalid ttl/);
    assert.match(refusal({ ...good, expiresAt: '2026-03-03T11:59:00Z' }), /expired/);
    assert.match(refusal({ ...good, sentAt: Date.UTC(2026, 2, 3, 11, 59) / 1000 }), /expired/);
    assert.match(refusal({ ...good, vehicleId: null }), /invalid vehicleId/);
    assert.match(refusal({ ...good, etaSeconds: -3 }), /invalid etaSeconds/);
    assert.match(refusal({ ...good, etaSeconds: 'soon' }), /invalid etaSeconds/);
    assert.match(refusal({ ...good, delaySeconds: 'late' }), /invalid delaySeconds/);
    assert.equal(parseDownlink(JSON.stringify({ ...good, expiresAt: '2026-03-03T12:00:10Z' }), Date.UTC(2026, 2, 3, 12)).kind, 'priority_request');
  });

  it('grants, extends for a bus on the same axis, refuses a conflicting approach and during its recovery, and answers a redelivery the same', () => {
    const controller = new PriorityController({ enabled: true, denyShare: 0 });
    const t0 = at(TUESDAY, 8);
    const first = request({ etaSeconds: 10 });
    assert.deepEqual(controller.decide(first, t0, 0, false, 0.5), { ok: true });
    assert.ok(controller.running(t0 + 17_000), 'held for the bus\'s eta and 8 s more');
    assert.deepEqual(controller.decide(request(), t0 + 5_000, 1, false, 0.5), { ok: false, error: 'a priority is already running on a conflicting approach' });
    assert.deepEqual(controller.decide(request({ etaSeconds: 20 }), t0 + 10_000, 0, false, 0.5), { ok: true }, 'a second bus on the same axis');
    assert.ok(controller.running(t0 + 37_000) && !controller.running(t0 + 38_001), 'extended to its eta and 8 s more');
    assert.deepEqual(controller.decide(first, t0 + 60_000, 1, false, 0.5), { ok: true }, 'a redelivery: the same answer, not a second priority');
    assert.equal(controller.running(t0 + 60_000), false);
    assert.match(controller.decide(request(), t0 + 38_000 + (PRIORITY_RECOVERY_S - 5) * 1000, 1, false, 0.5).error!, /recovering/);
    assert.deepEqual(controller.decide(request(), t0 + 38_000 + (PRIORITY_RECOVERY_S + 1) * 1000, 1, false, 0.5), { ok: true });
    assert.match(new PriorityController({ enabled: true, denyShare: 0.1 }).decide(request(), t0, 0, false, 0.05).error!, /pedestrian/);
    assert.match(new PriorityController({ enabled: false, denyShare: 0 }).decide(request(), t0, 0, false, 0.5).error!, /not enabled/);
    assert.match(new PriorityController({ enabled: true, denyShare: 0 }).decide(request(), t0, 0, true, 0.5).error!, /flashing amber/);
    const cancelled = new PriorityController({ enabled: true, denyShare: 0 });
    cancelled.decide(request(), t0, 0, false, 0.5);
    cancelled.cancel(t0 + 1_000);
    assert.equal(cancelled.running(t0 + 1_000), false);
    assert.deepEqual([0, 45, 90, 135, 180, 270, 359].map(approachAxis), [0, 1, 1, 0, 0, 1, 0]);
  });
});

describe('the simulator\'s car parks', () => {
  it('never counts more cars than places, nor fewer than none, and follows the day', () => {
    for (const capacity of [0, 12, 180, 420]) {
      for (const noise of [-0.5, -0.03, 0, 0.03, 0.5]) {
        for (let ms = at('2026-03-02', 0); ms < at('2026-03-09', 0); ms += 17 * MINUTE) {
          for (const type of ['UNDERGROUND', 'SURFACE', 'ON_STREET']) {
            const count = facilityOccupancy(capacity, parkingShare(type, ms, 0.8), noise);
            assert.ok(Number.isInteger(count) && count >= 0 && count <= capacity, `${type} ${capacity}: ${count}`);
          }
        }
      }
    }
    assert.equal(facilityOccupancy(100, 0.98, 0.5), 100);
    assert.deepEqual([{ capacity: 320 }, { capacity: '45' }, { capacity: 'many' }, { capacity: -3 }, {}, { capacity: null }].map(facilityCapacity), [320, 45, 200, 200, 200, 200]);
    // A commuters' car park on a Tuesday: empty at dawn, full at 10:00, empty again at 21:00.
    const share = (hour: number) => parkingShare('SURFACE', at(TUESDAY, hour), 0.5);
    assert.ok(share(5) < 0.2 && share(10) > 0.7 && share(21) < 0.25, `${share(5)} ${share(10)} ${share(21)}`);
  });
});

// --- controllers against a hub ---------------------------------------------------------------------

describe('the simulator\'s controllers against the hub', { timeout: 120_000 }, () => {
  let broker: TestBroker;
  let database: TestDatabase;
  let hub: Hub;
  let device: MqttClient;
  const acks: { topic: string; body: Record<string, unknown> }[] = [];
  const controller = 'tsc-chalons-00001';
  const other = 'tsc-chalons-00002';

  const cleanups: (() => unknown)[] = [];
  before(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase({ seed: true });
    hub = await startHub(database.url, { MQTT_URL: broker.url, ...broker.env }, { subgraphs: ['territory', 'equipment', 'telemetry'] });
    // The tests' own account stands for the hub's priority worker: it publishes downlinks and reads the acks.
    device = await connectTestBroker({ after: (fn) => cleanups.push(fn) }, {
      url: broker.url,
      onMessage: (topic, payload) => acks.push({ topic, body: JSON.parse(payload.toString()) }),
    });
    await device.subscribeAsync('connecte/+/+/ack', { qos: 1 });
  });

  after(async () => {
    for (const cleanup of cleanups) await cleanup();
    await hub?.close();
    await database?.drop();
    await broker?.stop();
  });

  const send = (id: string, body: unknown, collectivity = 'chalons') =>
    device.publishAsync(`connecte/${collectivity}/${id}/down`, typeof body === 'string' ? body : JSON.stringify(body), { qos: 1 });

  async function ackOf(cid: string, withinMs = 5_000) {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const found = acks.find((a) => a.body.cid === cid);
      if (found) return found;
      if (Date.now() > deadline) return null;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** A trip id whose approach axis (for a bus the simulator does not play) is `axis`. */
  const tripOnAxis = (axis: number, n = 0) => {
    for (let i = 0; ; i++) {
      const id = `T-${axis}-${n}-${i}`;
      if ((hash01(id) < 0.5 ? 0 : 1) === axis) return id;
    }
  };

  it('answers priority requests on the ingest key\'s connection: grants (signal_state 4), refuses a conflicting approach and bad downlinks, and stays silent in fault', async () => {
    const lines: string[] = [];
    const simulator = await startSimulator({
      config: hub.config,
      gatewayUrl: hub.gatewayUrl,
      faults: { lightMeanSeconds: 0, signalMeanSeconds: 0 },
      citizens: { reportMeanSeconds: 0 },
      signals: { denyShare: 0, ackDelayMs: 50 },
      select: (d) => d.id === controller || d.id === other || d.id === 'lp-chalons-00002',
      ownCredentials: 0,
      clientIdPrefix: `connecte-simulator-signals-${process.pid}`,
      seed: 5,
      log: (line) => lines.push(line),
    });
    try {
      const base = { op: 'priority_request', vehicleId: 'bus-unplayed', routeId: 'L1', delaySeconds: 150, ttl: 20 };
      const started = Date.now();
      await send(controller, { ...base, cid: 'grant-1', tripId: tripOnAxis(0), etaSeconds: 20 });
      assert.deepEqual((await ackOf('grant-1'))?.body, { cid: 'grant-1', ok: true });
      assert.equal((await ackOf('grant-1'))!.topic, `connecte/chalons/${controller}/ack`);
      // A bus on the cross street while the priority runs.
      await send(controller, { ...base, cid: 'cross-1', tripId: tripOnAxis(1), etaSeconds: 10 });
      const cross = await ackOf('cross-1');
      assert.equal(cross?.body.ok, false);
      assert.match(String(cross?.body.error), /conflicting approach/);
      // Another controller is free.
      await send(other, { ...base, cid: 'other-1', tripId: tripOnAxis(1), etaSeconds: 10 });
      assert.equal((await ackOf('other-1'))?.body.ok, true);

      // What the control room sees: the priority in progress, at once.
      const admin = await tokenFor(hub.config, ['admin'], ['chalons']);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const response = await gql<{ equipment: { latest: { metric: string; value: number; time: string }[] } }>(
          hub.gatewayUrl,
          `query($id: ID!) { equipment(id: $id) { latest(metrics: ["signal_state"]) { metric value time } } }`,
          { token: admin, variables: { id: controller } },
        );
        const latest = response.data?.equipment.latest[0];
        if (latest?.value === 4 && Date.parse(latest.time) >= started - 1_000) break;
        assert.ok(Date.now() < deadline, `signal_state 4 not seen: ${JSON.stringify(response)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }

      // Bad downlinks: refused with the reason, or ignored; the simulator goes on.
      await send(controller, { cid: 'op-1', op: 'reboot', ttl: 20 });
      assert.deepEqual((await ackOf('op-1'))?.body, { cid: 'op-1', ok: false, error: 'unsupported op "reboot"' });
      await send(controller, { ...base, cid: 'ttl-1', tripId: tripOnAxis(0), etaSeconds: 5, ttl: 0 });
      assert.match(String((await ackOf('ttl-1'))?.body.error), /expired/);
      await send(controller, '{"cid": "broken-1", "op": ');
      await send(controller, JSON.stringify({ op: 'priority_request', ttl: 20 }));
      await send('lp-chalons-00002', { cid: 'dim-1', op: 'dim', level: 40, ttl: 60 });
      assert.deepEqual((await ackOf('dim-1'))?.body, { cid: 'dim-1', ok: false, error: 'unsupported op "dim"' });
      await send('lp-chalons-00099', { cid: 'unplayed-1', op: 'dim', level: 40, ttl: 60 });
      assert.equal(await ackOf('broken-1', 500), null);
      assert.equal(await ackOf('unplayed-1', 300), null);
      assert.ok(lines.some((l) => /ignored: not JSON/.test(l)), lines.join('\n'));
      assert.ok(lines.some((l) => /ignored: no usable cid/.test(l)), lines.join('\n'));
      assert.ok(lines.some((l) => /lp-chalons-00099, which this simulator does not play/.test(l)), lines.join('\n'));

      // In fault: nothing at all; repaired: answers again.
      simulator.breakDown(other, null);
      await send(other, { ...base, cid: 'fault-1', tripId: tripOnAxis(0), etaSeconds: 10 });
      assert.equal(await ackOf('fault-1', 1_500), null, 'no answer from a controller in fault');
      assert.ok(lines.some((l) => l.includes(`${other} is in fault: priority request fault-1 left unanswered`)));
      simulator.repair(other);
      await send(other, { ...base, cid: 'fault-2', tripId: tripOnAxis(0), etaSeconds: 10 });
      assert.ok((await ackOf('fault-2'))?.body.ok !== undefined, 'answers once repaired');
      assert.deepEqual(simulator.downlinks().unanswered, 1);
      assert.ok(simulator.downlinks().granted >= 2);
      assert.equal(simulator.busMode(), 'STOP_TO_STOP');
    } finally {
      await simulator.stop();
    }
  });
});

// --- buses on their blocks against a hub with the mobility service ------------------------------------

/** The GTFS service of a date in the shipped feed (its calendar: weekday, Saturday, Sunday and public holidays). */
const serviceOf = (date: string) => ({ WEEKDAY: 'WEEKDAY', SATURDAY: 'SATURDAY', SUNDAY: 'SUNDAY' })[dayTypeOf(date)];

describe('the simulator\'s buses against a hub with the mobility service', { timeout: 180_000 }, () => {
  let broker: TestBroker;
  let database: TestDatabase;
  let hub: Hub;
  let operator: string;

  before(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase({ seed: true });
    hub = await startHub(database.url, { MQTT_URL: broker.url, ...broker.env }, { subgraphs: ['territory', 'equipment', 'telemetry', 'mobility'] });
    // Mobility learns of the buses from equipment's events once it has started.
    await mobilityResourcesFor(hub.subgraphs.mobility.db).directory.caughtUp();
    operator = await tokenFor(hub.config, ['operator'], ['chalons-agglo']);
  });

  after(async () => {
    await hub?.close();
    await database?.drop();
    await broker?.stop();
  });

  async function query<T>(text: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await gql<T>(hub.gatewayUrl, text, { token: operator, variables });
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    return response.data!;
  }

  it('follow the blocks the hub assigned them, reporting where their plan puts them; a spare bus stays at the depot', async () => {
    // The morning rush of today if it is over, else of yesterday (the earliest day a bus may be assigned).
    const parisToday = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(Date.now());
    const yesterday = new Date(Date.parse(`${parisToday}T12:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
    const date = at(parisToday, 8.5) < Date.now() - 5 * MINUTE ? parisToday : yesterday;
    const start = at(date, 7.75);
    const windowMs = 20 * MINUTE;
    const blocks = feed.blocks(serviceOf(date), date).slice(0, 3);
    const { equipmentSearch } = await query<{ equipmentSearch: { edges: { node: { id: string; status: string } }[] } }>(
      `{ equipmentSearch(filter: { kinds: [BUS], status: [IN_SERVICE], collectivityIds: ["chalons-agglo"] }, first: 100) { edges { node { id status } } } }`,
    );
    const buses = equipmentSearch.edges.map((e) => e.node.id).sort();
    const assigned = new Map<string, string>();
    for (const [i, block] of blocks.entries()) {
      const { assignVehicle } = await query<{ assignVehicle: { blockId: string; vehicle: { id: string } } }>(
        `mutation($v: ID!, $b: String!, $d: Date) { assignVehicle(vehicleId: $v, blockId: $b, serviceDate: $d) { blockId vehicle { id } } }`,
        { v: buses[i], b: block.blockId, d: date },
      );
      assigned.set(assignVehicle.vehicle.id, assignVehicle.blockId);
    }
    const { vehicleAssignments } = await query<{ vehicleAssignments: { blockId: string; vehicle: { id: string } }[] }>(
      `query($d: Date) { vehicleAssignments(serviceDate: $d) { blockId vehicle { id } } }`,
      { d: date },
    );
    const assignedThere = new Map(vehicleAssignments.map((a) => [a.vehicle.id, a.blockId]));
    const spare = buses.find((id) => !assignedThere.has(id))!;
    assert.ok(spare, 'a bus without a block');

    const lines: string[] = [];
    const shift = Date.now() - start;
    const played = [...assigned.keys(), spare];
    const simulator = await startSimulator({
      config: hub.config,
      gatewayUrl: hub.gatewayUrl,
      now: () => Date.now() - shift,
      speed: 60,
      faults: { lightMeanSeconds: 0, signalMeanSeconds: 0 },
      citizens: { reportMeanSeconds: 0 },
      select: (d) => played.includes(d.id),
      ownCredentials: 0,
      clientIdPrefix: `connecte-simulator-buses-${process.pid}`,
      seed: 3,
      log: (line) => {
        lines.push(line);
        if (process.env.SIMULATOR_LOG) console.log(new Date().toISOString(), line);
      },
    });
    const days = new Map<string, BusDay>();
    try {
      assert.equal(simulator.busMode(), 'BLOCKS', lines.join('\n'));
      for (const id of played) days.set(id, simulator.busDay(id)!);
      while (simulator.time() < start + windowMs) await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      await simulator.stop();
    }
    for (const [id, blockId] of assigned) {
      const day = days.get(id)!;
      assert.deepEqual(new Set(day.trips.map((t) => t.trip.id)), new Set(blocks.find((b) => b.blockId === blockId)!.trips.map((t) => t.id)), `${id} plays block ${blockId}`);
    }

    // What telemetry received: each bus where its plan puts it, every 15 s.
    const readings = async (id: string, metric: string) => {
      const data = await query<{ equipment: { readings: { edges: { node: { time: string; value: number } }[] } } }>(
        `query($id: ID!, $m: String!, $from: DateTime!, $to: DateTime!) { equipment(id: $id) { readings(metric: $m, from: $from, to: $to, first: 1000) { edges { node { time value } } } } }`,
        { id, m: metric, from: new Date(start).toISOString(), to: new Date(start + windowMs + MINUTE).toISOString() },
      );
      return new Map(data.equipment.readings.edges.map(({ node }) => [Date.parse(node.time), node.value]));
    };
    let moving = 0;
    for (const id of played) {
      const [lats, lons, speeds] = await Promise.all([readings(id, 'lat'), readings(id, 'lon'), readings(id, 'speed')]);
      assert.ok(lats.size >= (windowMs / 15_000) * 0.8, `${id}: ${lats.size} positions over 20 minutes`);
      for (const [time, lat] of lats) {
        const planned = busStateAt(days.get(id)!, time);
        const off = metres(planned, { lon: lons.get(time)!, lat });
        assert.ok(off < 5, `${id} at ${new Date(time).toISOString()}: ${off} m from its plan (${planned.phase})`);
        assert.ok(Math.abs(speeds.get(time)! - planned.speed) < 0.06);
        if (id === spare) assert.equal(planned.phase, 'DEPOT');
        if (planned.speed > 0) moving++;
      }
    }
    assert.ok(moving > 50, `${moving} positions on the move`);

    // What the hub makes of them: each bus on the trip its plan runs, about as late, the spare one not in service.
    for (const id of played) {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const { vehicle } = await query<{ vehicle: { trip: { id: string } | null; currentStatus: string; observedAt: string | null; delaySeconds: number | null; outliers: unknown[] } | null }>(
          `query($id: ID!) { vehicle(id: $id) { trip { id } currentStatus observedAt delaySeconds outliers(first: 3) { reason observedAt lon lat speedMetersPerSecond } } }`,
          { id },
        );
        const observed = vehicle?.observedAt ? Date.parse(vehicle.observedAt) : 0;
        if (observed >= start + windowMs - MINUTE) {
          assert.deepEqual(vehicle!.outliers, [], `${id}: no position of the simulator is an outlier`);
          const day = days.get(id)!;
          const planned = busStateAt(day, observed);
          if (id === spare) assert.equal(vehicle!.currentStatus, 'NOT_IN_SERVICE');
          else if (planned.phase === 'IN_TRANSIT' || planned.phase === 'DWELL') {
            assert.equal(vehicle!.trip?.id, planned.tripId, `${id}: ${JSON.stringify(vehicle)}`);
            // The plan's delay there: the time against the timetable interpolated at its distance along the shape.
            const played = day.trips[planned.trip!];
            const calls = played.trip.calls;
            const next = calls.findIndex((c) => c.dist >= planned.dist!);
            const previous = calls[Math.max(0, next - 1)];
            const following = calls[Math.max(0, next)];
            const f = following.dist > previous.dist ? (planned.dist! - previous.dist) / (following.dist - previous.dist) : 0;
            const scheduled = played.origin + (previous.departure + f * (following.arrival - previous.departure)) * 1000;
            const delay = (observed - scheduled) / 1000;
            assert.ok(Math.abs(vehicle!.delaySeconds! - delay) < 60, `${id}: the hub says ${vehicle!.delaySeconds} s late, the plan ${delay} s`);
          }
          break;
        }
        assert.ok(Date.now() < deadline, `${id}: the hub's vehicle is ${JSON.stringify(vehicle)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  });
});
