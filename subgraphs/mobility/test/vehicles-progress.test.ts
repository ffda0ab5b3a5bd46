/**
 * The live-vehicle computation, pure, on the fixture network in memory: projection with and
 * without the window, delay against the known schedule (between stops, at a stop within its
 * dwell, before the first departure), predictions carried through dwells, the trip of a block a
 * bus runs, outliers, and the services of a date.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildNetwork, parisDate, serviceDayStartMs } from '../src/network.js';
import type { VehicleState } from '../src/types.js';
import { chooseTrip, projectNaive, projectOnShape, trackPosition, type PositionInput } from '../src/vehicle-progress.js';
import { alongTrip, fixtureNetworkData, fixtureTripId } from './network-fixture.js';

const network = buildNetwork(fixtureNetworkData());
const DAY = '2026-03-10';
const day0 = serviceDayStartMs(DAY);
const config = { maxSpeedMps: 36, offRouteM: 120 };
const T8 = 8 * 3600; // trip F1-0800-O (block F-B1) starts at 08:00
const assignment = [{ serviceDate: DAY, blockId: 'F-B1' }];

const position = (seconds: number, metres: number, options: { north?: number; speed?: number | null; direction?: 0 | 1 } = {}): PositionInput => {
  const [lon, lat] = alongTrip(options.direction ?? 0, metres, options.north ?? 0);
  return { equipmentId: 'bus-1', collectivityId: 'chalons-agglo', observedAt: new Date(day0 + seconds * 1000), lon, lat, speedMps: options.speed === undefined ? 8 : options.speed };
};

function track(p: PositionInput, previous: VehicleState | null = null) {
  const outcome = trackPosition(network, p, previous, assignment, config);
  return outcome;
}
function stateOf(p: PositionInput, previous: VehicleState | null = null): VehicleState {
  const outcome = track(p, previous);
  assert.equal(outcome.kind, 'state', JSON.stringify(outcome));
  return (outcome as { state: VehicleState }).state;
}

describe('service days', () => {
  it('counts GTFS time from noon minus 12 h in Europe/Paris, DST days included', () => {
    assert.equal(new Date(serviceDayStartMs('2026-03-10')).toISOString(), '2026-03-09T23:00:00.000Z');
    assert.equal(new Date(serviceDayStartMs('2026-07-10')).toISOString(), '2026-07-09T22:00:00.000Z');
    // 29 March 2026: clocks go forward at 02:00; noon is 10:00Z, so time 0 is 22:00Z the day before.
    assert.equal(new Date(serviceDayStartMs('2026-03-29')).toISOString(), '2026-03-28T22:00:00.000Z');
    assert.equal(parisDate(new Date('2026-03-09T23:30:00Z')), '2026-03-10');
  });

  it('runs the services of the calendar, less the removed dates, plus the added ones', () => {
    assert.deepEqual([...network.servicesOn(DAY)], ['DAILY']);
    assert.deepEqual([...network.servicesOn('2030-05-01')], ['EXTRA']);
    assert.deepEqual([...network.servicesOn('2100-01-01')], []);
    assert.equal(network.blocksOn(DAY).get('F-B1')?.length, 48);
    assert.equal(network.blocksOn('2030-05-01').size, 0);
    assert.deepEqual(network.validity, { from: '2020-01-01', to: '2099-12-31' });
  });
});

describe('projection', () => {
  it('finds the same distance with the window as over the whole shape, and the offset from the line', () => {
    const shape = network.shapes.get('F1-0')!;
    const [lon, lat] = alongTrip(0, 730, 40);
    const px = (lon - network.frame.lon0) * network.frame.kx;
    const py = (lat - network.frame.lat0) * network.frame.ky;
    const whole = projectOnShape(shape, px, py);
    const windowed = projectOnShape(shape, px, py, 600, 900);
    const naive = projectNaive(shape, lon, lat);
    for (const p of [whole, windowed, naive]) {
      assert.ok(Math.abs(p.distanceAlong - 730) < 1.5, `distance ${p.distanceAlong}`);
      assert.ok(Math.abs(p.offsetM - 40) < 1, `offset ${p.offsetM}`);
    }
    // A window that does not reach the point answers its nearest end.
    assert.ok(Math.abs(projectOnShape(shape, px, py, 0, 300).distanceAlong - 300) < 1);
  });
});

describe('delay and status against the schedule', () => {
  it('is on time half way to B at +1:00, IN_TRANSIT_TO B, with predictions for B, C and D', () => {
    const state = stateOf(position(T8 + 60, 300));
    assert.equal(state.tripId, fixtureTripId(T8, 0));
    assert.equal(state.routeId, 'F1');
    assert.equal(state.serviceDate, DAY);
    assert.ok(Math.abs(state.shapeDistM! - 300) < 1.5);
    assert.equal(state.delaySeconds, 0);
    assert.equal(state.currentStatus, 'IN_TRANSIT_TO');
    assert.equal(state.stopId, 'FB');
    assert.equal(state.stopSequence, 2);
    assert.deepEqual(
      state.predictions.map((p) => [p.stopId, (p.scheduledArrival.getTime() - day0) / 1000 - T8, (p.predictedArrival.getTime() - day0) / 1000 - T8]),
      [
        ['FB', 120, 120],
        ['FC', 270, 270],
        ['FD', 390, 390],
      ],
    );
  });

  it('is 40 s late at 300 m at +1:40; B’s 30 s dwell absorbs 30 of them', () => {
    const state = stateOf(position(T8 + 100, 300));
    assert.equal(state.delaySeconds, 40);
    assert.deepEqual(
      state.predictions.map((p) => (p.predictedArrival.getTime() - day0) / 1000 - T8),
      [160, 280, 400],
    );
  });

  it('is 30 s late between B and C (schedule interpolated from B’s departure), INCOMING_AT C within 100 m', () => {
    assert.equal(stateOf(position(T8 + 240, 900)).delaySeconds, 30);
    const incoming = stateOf(position(T8 + 400, 1150));
    assert.equal(incoming.delaySeconds, 140);
    assert.equal(incoming.currentStatus, 'INCOMING_AT');
    assert.equal(incoming.stopId, 'FC');
    assert.equal((incoming.predictions[0].predictedArrival.getTime() - day0) / 1000 - T8, 410);
  });

  it('is on time at B between its arrival and departure, late after, early before; then predicts from the stop after', () => {
    const within = stateOf(position(T8 + 130, 605, { speed: 0 }));
    assert.equal(within.currentStatus, 'STOPPED_AT');
    assert.equal(within.stopId, 'FB');
    assert.equal(within.delaySeconds, 0);
    assert.deepEqual(within.predictions.map((p) => p.stopId), ['FC', 'FD']);
    assert.equal(stateOf(position(T8 + 200, 600, { speed: 0 })).delaySeconds, 50);
    assert.equal(stateOf(position(T8 + 100, 600, { speed: 0 })).delaySeconds, -20);
    // Early: it waits at B (a dwell) until its departure, so C is predicted on time.
    const early = stateOf(position(T8 + 40, 350));
    assert.ok(early.delaySeconds! < 0);
    assert.equal((early.predictions[1].predictedArrival.getTime() - day0) / 1000 - T8, 270);
  });

  it('waits at the first stop before departure on time, and is late once the departure is past', () => {
    const waiting = stateOf(position(T8 - 120, 0, { speed: 0 }));
    assert.equal(waiting.tripId, fixtureTripId(T8, 0));
    assert.equal(waiting.currentStatus, 'STOPPED_AT');
    assert.equal(waiting.delaySeconds, 0);
    assert.equal(stateOf(position(T8 + 45, 0, { speed: 0 })).delaySeconds, 45);
  });
});

describe('the trip of the block', () => {
  it('keeps a late bus on its trip past the scheduled end, then takes the next trip once at the end', () => {
    const before = stateOf(position(T8 + 300, 1000));
    const late = stateOf(position(T8 + 600, 1500), before);
    assert.equal(late.tripId, fixtureTripId(T8, 0), 'still the 08:00 although the 08:20 is due');
    assert.equal(late.delaySeconds, 600 - 330);
    const atEnd = stateOf(position(T8 + 700, 1795, { speed: 0 }), late);
    assert.equal(atEnd.tripId, fixtureTripId(T8, 0));
    const next = stateOf(position(T8 + 720, 1795, { speed: 0 }), atEnd);
    assert.equal(next.tripId, fixtureTripId(T8 + 1200, 1));
    assert.equal(next.currentStatus, 'STOPPED_AT');
    assert.equal(next.stopId, 'FD');
  });

  it('without a previous state, takes the trip the time says; none outside the block’s hours or without a block', () => {
    assert.equal(chooseTrip(network, assignment, day0 + (T8 + 1300) * 1000, null)?.trip.tripId, fixtureTripId(T8 + 1200, 1));
    assert.equal(chooseTrip(network, [{ serviceDate: DAY, blockId: 'F-B2' }], day0 + (T8 + 60) * 1000, null)?.trip.tripId, fixtureTripId(T8 + 1800, 0));
    // Past its trip's scheduled end with no state before: the position tells the late trip from the next one.
    const late = stateOf(position(T8 + 600, 1500));
    assert.equal(late.tripId, fixtureTripId(T8, 0));
    assert.equal(late.delaySeconds, 600 - 330);
    assert.equal(chooseTrip(network, [], day0 + T8 * 1000, null), null);
    assert.equal(chooseTrip(network, [{ serviceDate: '2030-05-01', blockId: 'F-B1' }], serviceDayStartMs('2030-05-01') + T8 * 1000, null), null);
    const off = trackPosition(network, position(T8, 0), null, [], config);
    assert.equal(off.kind, 'state');
    assert.equal((off as { state: VehicleState }).state.currentStatus, 'NOT_IN_SERVICE');
    assert.equal((off as { state: VehicleState }).state.tripId, null);
  });
});

describe('outliers', () => {
  const previous = stateOf(position(T8 + 60, 300));
  const reason = (p: PositionInput) => {
    const outcome = track(p, previous);
    return outcome.kind === 'outlier' ? outcome.outlier.reason : outcome.kind;
  };

  it('flags 140 m/s, a jump, a position off the route and one older than the state; takes a plausible one', () => {
    assert.equal(reason(position(T8 + 75, 400, { speed: 140 })), 'SPEED_IMPLAUSIBLE');
    assert.equal(reason(position(T8 + 75, 1700)), 'JUMP_IMPLAUSIBLE');
    assert.equal(reason(position(T8 + 120, 400, { north: 300 })), 'OFF_ROUTE');
    assert.equal(reason(position(T8 + 30, 200)), 'OUT_OF_ORDER');
    assert.equal(reason(position(T8 + 60, 300)), 'duplicate');
    assert.equal(reason(position(T8 + 75, 400)), 'state');
    // Long after the last position believed, a far move is no jump.
    assert.equal(reason(position(T8 + 60 + 301, 1700)), 'state');
  });

  it('computes the bearing from the previous position', () => {
    const next = stateOf(position(T8 + 75, 400), previous);
    assert.ok(Math.abs(next.bearing! - 90) < 1, `east: ${next.bearing}`);
  });
});

describe('a shape that comes back on itself', () => {
  // Out 1,000 m east and back along the same street: every point but the turn is on it twice.
  const coordinates: [number, number][] = [];
  for (let m = 0; m <= 2000; m += 100) coordinates.push(alongTrip(0, m <= 1000 ? m : 2000 - m));
  const distances = coordinates.map((_, i) => i * 100);
  const calls = [0, 500, 1000, 1500, 2000];
  const loop = buildNetwork({
    feedId: null,
    collectivityId: 'chalons-agglo',
    routes: [{ routeId: 'L', agencyId: 'A', agencyName: 'A', shortName: 'L', longName: null, description: null, routeType: 3, color: null, textColor: null, sortOrder: null }],
    stops: calls.map((m, i) => ({ stopId: `L${i}`, equipmentId: `L${i}`, code: null, name: `L${i}`, description: null, lon: alongTrip(0, m <= 1000 ? m : 2000 - m)[0], lat: alongTrip(0, 0)[1], wheelchairBoarding: null })),
    shapes: [{ shapeId: 'LS', coordinates, distances, lengthM: 2000 }],
    trips: [{ tripId: 'L-0800', routeId: 'L', serviceId: 'S', shapeId: 'LS', headsign: null, shortName: null, directionId: 0, blockId: 'LB' }],
    stopTimes: calls.map((m, i) => ({ tripId: 'L-0800', stopSequence: i + 1, stopId: `L${i}`, arrivalSeconds: T8 + i * 60, departureSeconds: T8 + i * 60, shapeDistTraveled: m })),
    calendar: [{ serviceId: 'S', days: [true, true, true, true, true, true, true], startDate: '2020-01-01', endDate: '2099-12-31' }],
    calendarDates: [],
  });
  const block = [{ serviceDate: DAY, blockId: 'LB' }];
  const at = (seconds: number, eastM: number): PositionInput => {
    const [lon, lat] = alongTrip(0, eastM);
    return { equipmentId: 'bus-l', collectivityId: 'chalons-agglo', observedAt: new Date(day0 + (T8 + seconds) * 1000), lon, lat, speedMps: 8 };
  };
  const run = (p: PositionInput, previous: VehicleState | null) => {
    const outcome = trackPosition(loop, p, previous, block, config);
    assert.equal(outcome.kind, 'state');
    return (outcome as { state: VehicleState }).state;
  };

  it('takes, of the two passes, the one the schedule explains', () => {
    assert.ok(Math.abs(run(at(40, 300), null).shapeDistM! - 300) < 2);
    assert.ok(Math.abs(run(at(200, 400), null).shapeDistM! - 1600) < 2);
  });

  it('moves a bus running against its pass to the other one, and keeps one running along it', () => {
    const first = run(at(100, 300), null);
    assert.ok(Math.abs(first.shapeDistM! - 300) < 2, 'by the schedule: the way out, 64 s late');
    const west = run(at(115, 200), first);
    assert.ok(Math.abs(west.shapeDistM! - 1800) < 2, `heading west: the way back (${west.shapeDistM})`);
    const east = run(at(115, 420), first);
    assert.ok(Math.abs(east.shapeDistM! - 420) < 2, `heading east: the way out (${east.shapeDistM})`);
  });
});
