/**
 * The city simulator (scripts/simulator.ts): its profiles as pure functions on fixed dates, then
 * the simulator itself against a hub (territory, equipment, telemetry) and a broker requiring
 * credentials, run fast on chosen clocks: what the control room sees must follow the profiles —
 * readings in telemetry, light power by night and by day, a classroom's CO2 during a lesson, a
 * lamp failure raising an alarm that puts the light point in FAULT until it is repaired.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { METRICS, type MetricName } from '@connecte/shared/senml';
import { createTestDatabase, gql, startHub, startTestBroker, tokenFor, type Hub, type TestBroker, type TestDatabase } from '@connecte/testkit';
import {
  batteryLevel,
  co2After,
  DIMMED_LEVEL,
  heatingSetpoint,
  illuminance,
  INGEST_KEY_LABEL,
  isNight,
  lightEnergyWh,
  lightLevel,
  lightPower,
  parisInstant,
  parisOffsetHours,
  parisTime,
  parkingShare,
  schoolPeriod,
  startSimulator,
  sunTimes,
  type DeviceSummary,
  type RunningSimulator,
  type SimulatedKind,
} from '../scripts/simulator.ts';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const at = parisInstant;

describe('the simulator\'s profiles', () => {
  it('reads the Europe/Paris clock as Intl does, across summer-time changes', () => {
    const format = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: 'numeric', minute: 'numeric', weekday: 'short', hourCycle: 'h23' });
    const weekdays = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
    for (let ms = Date.UTC(2025, 0, 1); ms < Date.UTC(2027, 0, 1); ms += 47 * MINUTE) {
      const parts = Object.fromEntries(format.formatToParts(ms).map((p) => [p.type, p.value]));
      const paris = parisTime(ms);
      assert.equal(weekdays[paris.weekday], parts.weekday, new Date(ms).toISOString());
      assert.equal(Math.floor(paris.hour), Number(parts.hour), new Date(ms).toISOString());
      assert.equal(Math.round((paris.hour % 1) * 60) % 60, Number(parts.minute), new Date(ms).toISOString());
    }
    assert.equal(parisOffsetHours(Date.UTC(2026, 2, 29, 0, 59)), 1, 'winter time until 01:00 UTC on the last Sunday of March');
    assert.equal(parisOffsetHours(Date.UTC(2026, 2, 29, 1, 0)), 2);
    assert.equal(parisOffsetHours(Date.UTC(2026, 9, 25, 0, 59)), 2);
    assert.equal(parisOffsetHours(Date.UTC(2026, 9, 25, 1, 0)), 1);
    assert.equal(at('2026-07-01', 12), Date.UTC(2026, 6, 1, 10));
    assert.equal(parisTime(at('2026-03-01', 0)).dayOfYear, 60);
  });

  it('lights a winter night from sunset to sunrise, dimming dimmable light points to 40 % from 23:00 to 05:00', () => {
    const { sunrise, sunset } = sunTimes(at('2026-01-15', 12));
    // Châlons, mid-January: sunrise about 08:30, sunset about 17:10.
    assert.ok(sunrise > 8.2 && sunrise < 8.8, `sunrise ${sunrise}`);
    assert.ok(sunset > 16.9 && sunset < 17.5, `sunset ${sunset}`);
    assert.equal(isNight(at('2026-01-15', 22)), true);
    assert.equal(lightLevel(true, at('2026-01-15', 22)), 100);
    assert.equal(lightLevel(true, at('2026-01-15', 23.5)), DIMMED_LEVEL);
    assert.equal(lightLevel(true, at('2026-01-16', 2)), DIMMED_LEVEL);
    assert.equal(lightLevel(true, at('2026-01-16', 6)), 100, 'lit again, undimmed, from 05:00 until sunrise');
    assert.equal(lightLevel(false, at('2026-01-16', 2)), 100, 'a light point that cannot dim stays at full output');
    assert.equal(lightLevel(true, at('2026-01-15', 12)), 0);
    assert.equal(lightPower(75, true, at('2026-01-16', 2)), 30);
    assert.equal(lightPower(75, false, at('2026-01-16', 2)), 75);
    // The luminaire's light meter: bright by day, its lamp's light at night.
    assert.ok(illuminance(at('2026-01-15', 12), 0) > 5_000);
    assert.ok(illuminance(at('2026-01-16', 2), 100) < 40);
  });

  it('keeps a summer evening unlit until sunset, about 21:50', () => {
    const { sunrise, sunset } = sunTimes(at('2026-06-21', 12));
    assert.ok(sunset > 21.6 && sunset < 22.1, `sunset ${sunset}`);
    assert.ok(sunrise > 5.4 && sunrise < 5.9, `sunrise ${sunrise}`);
    assert.equal(lightLevel(false, at('2026-06-21', 21)), 0, 'daylight at 21:00 in June');
    assert.equal(lightLevel(false, at('2026-06-21', 22.5)), 100);
    assert.equal(lightLevel(true, at('2026-06-21', 22.5)), 100);
    assert.equal(lightLevel(true, at('2026-06-21', 23.5)), DIMMED_LEVEL);
    assert.equal(lightLevel(true, at('2026-06-22', 5.5)), 100);
    assert.equal(lightLevel(true, at('2026-06-22', 6.5)), 0);
  });

  it('derives energy counters from the time: never back, and power × time between two readings', () => {
    const from = at('2026-01-15', 18);
    const to = at('2026-01-15', 22);
    // Four hours at full power, a dimmable 75 W light point: 300 Wh.
    assert.ok(Math.abs(lightEnergyWh(75, true, to) - lightEnergyWh(75, true, from) - 300) < 1e-6);
    // 23:00–03:00: at 40 %.
    assert.ok(Math.abs(lightEnergyWh(75, true, at('2026-01-16', 3)) - lightEnergyWh(75, true, at('2026-01-15', 23)) - 120) < 1e-6);
    assert.equal(lightEnergyWh(75, true, at('2026-01-15', 14)), lightEnergyWh(75, true, at('2026-01-15', 12)), 'no energy by day');
    let previous = 0;
    for (let ms = at('2026-03-28', 0); ms < at('2026-03-31', 0); ms += 7 * MINUTE) {
      const energy = lightEnergyWh(60, true, ms);
      assert.ok(energy >= previous, `monotonic at ${new Date(ms).toISOString()} (summer-time change included)`);
      previous = energy;
    }
    // About 4,100 hours of darkness a year, fewer at full power once dimmed.
    const year = lightEnergyWh(100, false, at('2026-01-01', 0)) - lightEnergyWh(100, false, at('2025-01-01', 0));
    assert.ok(year > 380_000 && year < 450_000, `a 100 W light point's year: ${year} Wh`);
  });

  it('follows the school timetable: Tuesday lessons and recess, Wednesday afternoon and Sunday closed', () => {
    // 2026-03-03 is a Tuesday, 2026-03-04 a Wednesday, 2026-03-08 a Sunday.
    assert.equal(parisTime(at('2026-03-03', 9)).weekday, 2);
    assert.equal(schoolPeriod(at('2026-03-03', 8.25)), 'CLOSED');
    assert.equal(schoolPeriod(at('2026-03-03', 9)), 'LESSON');
    assert.equal(schoolPeriod(at('2026-03-03', 10.1)), 'RECESS');
    assert.equal(schoolPeriod(at('2026-03-03', 12)), 'LUNCH');
    assert.equal(schoolPeriod(at('2026-03-03', 14)), 'LESSON');
    assert.equal(schoolPeriod(at('2026-03-03', 16.75)), 'CLOSED');
    assert.equal(schoolPeriod(at('2026-03-04', 9)), 'LESSON', 'Wednesday morning');
    assert.equal(schoolPeriod(at('2026-03-04', 14)), 'CLOSED', 'Wednesday afternoon');
    assert.equal(schoolPeriod(at('2026-03-08', 9)), 'CLOSED', 'Sunday');
    assert.equal(schoolPeriod(at('2026-03-07', 9)), 'CLOSED', 'Saturday');
  });

  it('raises a classroom\'s CO2 with its pupils and brings it down with fresh air', () => {
    const room = { volumeM3: 165, people: 26, litresPerSecond: 0.0045, airChangesPerHour: 1 };
    const afterLesson = co2After(450, room, 90 * 60);
    assert.ok(afterLesson > 1_800 && afterLesson < 2_600, `a poorly ventilated classroom after 90 min: ${afterLesson} ppm`);
    const aired = co2After(afterLesson, { ...room, people: 0, airChangesPerHour: 6 }, 15 * 60);
    assert.ok(aired < 900, `15 minutes of recess with the windows open: ${aired} ppm`);
    assert.ok(co2After(450, { ...room, airChangesPerHour: 3 }, 90 * 60) < afterLesson, 'a better ventilated room stays lower');
  });

  it('fills car parks with a daily pattern: empty at night, busy on a Tuesday afternoon, quiet on Sunday', () => {
    for (const type of ['UNDERGROUND', 'SURFACE', 'ON_STREET']) {
      const night = parkingShare(type, at('2026-03-03', 3));
      const tuesday = parkingShare(type, at('2026-03-03', 15));
      const sunday = parkingShare(type, at('2026-03-08', 15));
      assert.ok(night < 0.2, `${type} at 03:00: ${night}`);
      assert.ok(tuesday > 0.55, `${type} on Tuesday at 15:00: ${tuesday}`);
      assert.ok(sunday < tuesday / 2, `${type} on Sunday at 15:00: ${sunday} against ${tuesday}`);
      for (let ms = at('2026-03-02', 0); ms < at('2026-03-09', 0); ms += 10 * MINUTE) {
        const share = parkingShare(type, ms, 0.3);
        assert.ok(share >= 0 && share <= 1);
      }
    }
    assert.ok(parkingShare('UNDERGROUND', at('2026-03-07', 16)) > parkingShare('SURFACE', at('2026-03-07', 16)), 'Saturday shoppers go underground, in the centre');
    assert.notEqual(parkingShare('SURFACE', at('2026-03-03', 8.5), 0.1), parkingShare('SURFACE', at('2026-03-03', 8.5), 0.9), 'each facility its own curve');
  });

  it('sets heating back at night and at weekends', () => {
    assert.equal(heatingSetpoint('SCHOOL', at('2026-01-13', 10)), 19);
    assert.equal(heatingSetpoint('SCHOOL', at('2026-01-13', 7)), 19, 'an hour ahead of opening');
    assert.equal(heatingSetpoint('SCHOOL', at('2026-01-13', 3)), 16);
    assert.equal(heatingSetpoint('SCHOOL', at('2026-01-14', 15)), 16, 'Wednesday afternoon');
    assert.equal(heatingSetpoint('SCHOOL', at('2026-01-18', 10)), 16, 'Sunday');
    assert.equal(heatingSetpoint('SPORTS_HALL', at('2026-01-17', 20)), 19, 'a sports hall on Saturday evening');
  });

  it('drains batteries slowly, the same on every run', () => {
    const now = at('2026-03-03', 12);
    const level = batteryLevel('pd-chalons-00001', now, 4 * 365);
    assert.ok(level > 3 && level <= 100);
    assert.equal(batteryLevel('pd-chalons-00001', now, 4 * 365), level);
    const week = batteryLevel('pd-chalons-00001', now + 7 * DAY, 4 * 365);
    assert.ok(week < level || week > 99, 'lower a week later, unless the battery was replaced');
    assert.ok(level - week < 3 || week > 99, 'slowly');
  });
});

// --- the simulator against a hub --------------------------------------------------------------

/** The Paris calendar date of `ms`, `YYYY-MM-DD`. */
const parisDate = (ms: number) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(ms);

/** The latest past instant at `hour` (Paris) whose simulated window of `windowMs` is over 5 minutes before now, on a day `accept` accepts. */
function latestPast(hour: number, windowMs: number, accept: (ms: number) => boolean = () => true): number {
  for (let back = 0; back < 10; back++) {
    const candidate = at(parisDate(Date.now() - back * DAY), hour);
    if (candidate + windowMs < Date.now() - 5 * MINUTE && accept(candidate)) return candidate;
  }
  throw new Error(`no past ${hour} h within ten days`);
}


describe('the simulator against the hub', { timeout: 120_000 }, () => {
  let broker: TestBroker;
  let database: TestDatabase;
  let hub: Hub;
  let admin: string;
  let dimmable: string[];
  let plain: string[];
  const classroom = 'aq-chalons-00001';
  const broken = 'lp-chalons-00002';
  const signal = 'tsc-chalons-00001';
  const powers = new Map<string, number>();

  before(async () => {
    broker = await startTestBroker();
    database = await createTestDatabase({ seed: true });
    hub = await startHub(database.url, { MQTT_URL: broker.url, ...broker.env }, { subgraphs: ['territory', 'equipment', 'telemetry'] });
    admin = await tokenFor(hub.config, ['admin'], ['chalons', 'fagnieres', 'saint-martin-sur-le-pre', 'chalons-agglo']);
    const lights = async (value: boolean) => {
      const response = await query<{ equipmentSearch: { edges: { node: { id: string; details: { powerW: number } } }[] } }>(
        `query($d: Boolean) { equipmentSearch(filter: { kinds: [LIGHT_POINT], status: [IN_SERVICE], dimmable: $d, collectivityIds: ["chalons"] }, first: 3) {
          edges { node { id details { ... on LightPointDetails { powerW } } } } } }`,
        { d: value },
      );
      for (const { node } of response.equipmentSearch.edges) powers.set(node.id, node.details.powerW);
      return response.equipmentSearch.edges.map((e) => e.node.id);
    };
    dimmable = await lights(true);
    plain = await lights(false);
    assert.ok(dimmable.includes(broken), `${broken} is among the first dimmable light points`);
  });

  after(async () => {
    await hub?.close();
    await database?.drop();
    await broker?.stop();
  });

  async function query<T>(text: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await gql<T>(hub.gatewayUrl, text, { token: admin, variables });
    assert.equal(response.errors, undefined, JSON.stringify(response.errors));
    return response.data!;
  }

  /** The chosen assets, and two of every other simulated kind (so every kind's uplinks go through the real ingest). */
  function selection(): (device: DeviceSummary) => boolean {
    const wanted = new Set([...dimmable, ...plain, classroom]);
    const perKind = new Map<SimulatedKind, number>();
    return (device) => {
      if (wanted.has(device.id)) return true;
      // Not the chosen light points' presence detectors: their raises would blur the dimming profile.
      if (device.kind === 'LIGHT_POINT' || (device.kind === 'PRESENCE_DETECTOR' && wanted.has(String(device.details.lightPointId)))) return false;
      const count = perKind.get(device.kind) ?? 0;
      perKind.set(device.kind, count + 1);
      return count < 2;
    };
  }

  /** Runs the simulator from simulated `start`, `speed` times faster, until `until` says so. */
  async function run(start: number, speed: number, options: { breakDown?: string[]; repairSeconds?: number }, until: (simulator: RunningSimulator) => Promise<boolean>, limitMs: number) {
    const shift = Date.now() - start;
    const simulator = await startSimulator({
      config: hub.config,
      gatewayUrl: hub.gatewayUrl,
      now: () => Date.now() - shift,
      speed,
      faults: { lightMeanSeconds: 0, signalMeanSeconds: 0, repairSeconds: options.repairSeconds ?? 3_600 },
      breakDown: options.breakDown,
      select: selection(),
      clientIdPrefix: `connecte-simulator-test-${process.pid}`,
      seed: 7,
      log: () => {},
    });
    try {
      const deadline = Date.now() + limitMs;
      while (!(await until(simulator))) {
        assert.ok(Date.now() < deadline, `the simulation did not get there within ${limitMs / 1000} s (${simulator.published()} uplinks acknowledged)`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return simulator;
    } finally {
      await simulator.stop();
    }
  }

  async function readings(id: string, metric: MetricName, from: number, to: number) {
    const data = await query<{ equipment: { readings: { edges: { node: { time: string; value: number } }[] } } }>(
      `query($id: ID!, $m: String!, $from: DateTime!, $to: DateTime!) { equipment(id: $id) { readings(metric: $m, from: $from, to: $to, first: 1000) { edges { node { time value } } } } }`,
      { id, m: metric, from: new Date(from).toISOString(), to: new Date(to).toISOString() },
    );
    return data.equipment.readings.edges.map(({ node }) => ({ time: Date.parse(node.time), value: node.value }));
  }

  // A night: 22:40 to 00:10, Paris time, the most recent one over.
  const NIGHT_WINDOW = 90 * MINUTE;
  let night: number;

  it('plays a night: readings reach telemetry, with the light points\' power following the dimming profile', async () => {
    night = latestPast(22 + 40 / 60, NIGHT_WINDOW);
    // 1,200 times faster: a light point's ten-minute period every half second.
    const simulator = await run(night, 1_200, {}, async (s) => s.time() > night + NIGHT_WINDOW, 30_000);
    assert.deepEqual(simulator.ownCredentialDevices, [...dimmable, ...plain].sort().slice(0, 3), 'the first three light points publish with credentials of their own');

    // What the control room reads: the latest values, through the gateway.
    const data = await query<{ equipment: { latest: { metric: string; unit: string | null; value: number; time: string }[]; deviceCredential: { username: string } | null } }>(
      `query($id: ID!) { equipment(id: $id) { latest(metrics: ["power", "energy", "dim_level", "illuminance", "fault"]) { metric unit value time } deviceCredential { username } } }`,
      { id: simulator.ownCredentialDevices[0] },
    );
    assert.deepEqual(data.equipment.latest.map((r) => r.metric).sort(), ['dim_level', 'energy', 'fault', 'illuminance', 'power']);
    for (const reading of data.equipment.latest) assert.equal(reading.unit, METRICS[reading.metric as MetricName].unit);
    assert.equal(data.equipment.latest.find((r) => r.metric === 'fault')!.value, 0);
    assert.ok(data.equipment.deviceCredential, 'a device credential was issued to it');

    for (const id of [...dimmable, ...plain]) {
      const power = await readings(id, 'power', night, night + NIGHT_WINDOW + HOUR);
      assert.ok(power.length >= 5, `${id}: ${power.length} power readings over 90 simulated minutes (one per 10 min)`);
      for (const { time, value } of power) {
        assert.equal(value, lightPower(powers.get(id)!, dimmable.includes(id), time), `${id} at ${new Date(time).toISOString()}`);
      }
      const levels = new Set(power.map((r) => Math.round((r.value / powers.get(id)!) * 100)));
      assert.deepEqual([...levels].sort((a, b) => a - b), dimmable.includes(id) ? [DIMMED_LEVEL, 100] : [100], `${id}: full power before 23:00, then ${dimmable.includes(id) ? 'dimmed' : 'still full'}`);
    }
  });

  it('plays a school morning: CO2 rises in a classroom during the lesson, light points go off with daylight, a lamp failure puts its light point in FAULT until repaired, a signal controller flashes amber', async () => {
    // 08:15 to 10:00 of the latest school day over (any weekday: Wednesday has its morning lessons).
    const morning = latestPast(8.25, 105 * MINUTE, (ms) => parisTime(ms).weekday >= 1 && parisTime(ms).weekday <= 5);
    const statuses = new Set<string>();
    let repaired = false;
    const simulator = await run(
      morning,
      900,
      { breakDown: [broken, signal], repairSeconds: 5_400 },
      async (s) => {
        const { equipment } = await query<{ equipment: { status: string } }>(`query($id: ID!) { equipment(id: $id) { status } }`, { id: broken });
        statuses.add(equipment.status);
        repaired ||= statuses.has('FAULT') && equipment.status === 'IN_SERVICE';
        return repaired && s.time() > morning + 105 * MINUTE;
      },
      60_000,
    );

    // The classroom: empty before 08:30, then its pupils breathing with the windows shut.
    const co2 = await readings(classroom, 'co2', morning, morning + 105 * MINUTE);
    const occupancy = await readings(classroom, 'occupancy', morning, morning + 105 * MINUTE);
    const lessonStart = at(parisDate(morning), 8.5);
    const before = co2.filter((r) => r.time < lessonStart);
    const lesson = co2.filter((r) => r.time >= lessonStart + 20 * MINUTE && r.time < lessonStart + 90 * MINUTE);
    assert.ok(before.length > 0 && lesson.length > 5, `co2 readings every 5 minutes (${co2.length})`);
    assert.ok(Math.max(...lesson.map((r) => r.value)) > Math.max(...before.map((r) => r.value)) + 400, `CO2 rises during the lesson: ${co2.map((r) => r.value).join(', ')}`);
    assert.ok(occupancy.filter((r) => r.time < lessonStart).every((r) => r.value === 0), 'nobody before 08:30');
    assert.ok(occupancy.filter((r) => r.time > lessonStart + 5 * MINUTE && r.time < at(parisDate(morning), 10)).every((r) => r.value >= 18), 'a class during the lesson');

    // The light points by day: whatever the season, off after 09:30.
    for (const id of plain) {
      const power = await readings(id, 'power', morning, morning + 105 * MINUTE);
      for (const { time, value } of power) assert.equal(value, lightPower(powers.get(id)!, false, time));
      assert.ok(power.some((r) => r.time > at(parisDate(morning), 9.5) && r.value === 0));
    }

    // The lamp failure: reported at once with no power, an alarm raised and then cleared, the light point FAULT in between.
    assert.ok(statuses.has('FAULT') && repaired, `statuses seen: ${[...statuses].join(', ')}`);
    const fault = await readings(broken, 'fault', morning, morning + 2 * HOUR);
    assert.equal(fault[0].value, 1, 'the failure is reported when it happens');
    assert.ok(fault.some((r) => r.value === 0 && r.time >= morning + 5_400_000), 'and its end once repaired');
    const power = await readings(broken, 'power', morning, morning + 2 * HOUR);
    assert.ok(power.filter((r) => r.time < morning + 5_400_000).every((r) => r.value === 0), 'no power while failed');
    const { alarms } = await query<{ alarms: { edges: { node: { state: string; equipment: { id: string }; history: { action: string }[] } }[] } }>(
      `{ alarms(filter: { codes: ["LAMP_FAILURE"], collectivityIds: ["chalons"] }, first: 10) { edges { node { state equipment { id } history { action } } } } }`,
    );
    const mine = alarms.edges.map((e) => e.node).filter((alarm) => alarm.equipment.id === broken);
    assert.equal(mine.length, 1, 'one alarm for the failure');
    assert.equal(mine[0].state, 'CLEARED');
    const actions = mine[0].history.map((h) => h.action);
    assert.equal(actions[0], 'RAISED');
    assert.equal(actions.at(-1), 'CLEARED');
    assert.equal(actions.filter((a) => a === 'CLEARED').length, 1);

    // A hub without the mobility service: buses go from stop to stop at 7–12 m/s, dwelling at each.
    assert.equal(simulator.busMode(), 'STOP_TO_STOP');
    const buses = simulator.deviceIds('BUS');
    assert.equal(buses.length, 2);
    for (const bus of buses) {
      const speeds = await readings(bus, 'speed', morning, morning + 105 * MINUTE);
      const lats = await readings(bus, 'lat', morning, morning + 105 * MINUTE);
      // Every 15 s simulated; a loaded machine makes the simulator skip rounds it cannot keep up with.
      assert.ok(speeds.length > 100, `${bus}: ${speeds.length} speeds over 105 minutes (every 15 s)`);
      assert.ok(speeds.every((r) => r.value >= 0 && r.value <= 12), `${bus}: speeds of a bus in town`);
      assert.ok(speeds.some((r) => r.value === 0) && speeds.some((r) => r.value > 6), `${bus}: it dwells and it drives`);
      assert.ok(new Set(lats.map((r) => r.value)).size > 20, `${bus} moves`);
    }
    // Car parks: their counts within their capacity.
    for (const facility of simulator.deviceIds('PARKING_FACILITY')) {
      const { equipment } = await query<{ equipment: { details: { capacity: number } } }>(`query($id: ID!) { equipment(id: $id) { details { ... on ParkingFacilityDetails { capacity } } } }`, { id: facility });
      const counts = await readings(facility, 'occupancy', morning, morning + 105 * MINUTE);
      assert.ok(counts.length > 30, `${facility}: a count a minute (${counts.length})`);
      assert.ok(counts.every((r) => Number.isInteger(r.value) && r.value >= 0 && r.value <= equipment.details.capacity), `${facility}: ${counts.map((r) => r.value).join(', ')} of ${equipment.details.capacity}`);
    }

    // The traffic-signal controller: flashing amber with a fault, then its normal cycle again.
    const states = await readings(signal, 'signal_state', morning, morning + 2 * HOUR);
    assert.ok(states.filter((r) => r.time < morning + 5_400_000).every((r) => r.value === 2), 'flashing amber while failed');
    assert.ok(states.some((r) => r.time >= morning + 5_400_000 && r.value !== 2), 'its cycle once repaired');
    const deadline = Date.now() + 15_000;
    for (;;) {
      const { alarms: signals } = await query<{ alarms: { edges: { node: { state: string; equipment: { id: string } } }[] } }>(
        `{ alarms(filter: { codes: ["SIGNAL_FAULT"], collectivityIds: ["chalons"] }, first: 10) { edges { node { state equipment { id } } } } }`,
      );
      const states = signals.edges.filter((e) => e.node.equipment.id === signal).map((e) => e.node.state);
      assert.equal(states.length, 1, `one SIGNAL_FAULT alarm for ${signal}`);
      if (states[0] === 'CLEARED') break;
      assert.ok(Date.now() < deadline, `the SIGNAL_FAULT alarm of ${signal} is still ${states[0]}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  it('survives its restarts: energy counters never go back, the previous ingest keys are revoked, and every uplink was valid', async () => {
    for (const id of [...dimmable, ...plain]) {
      // Both runs' readings, in the order of their times (the night may be before or after the morning).
      const energy = await readings(id, 'energy', Date.now() - 11 * DAY, Date.now());
      assert.ok(energy.length > 10);
      for (let i = 1; i < energy.length; i++) assert.ok(energy[i].value >= energy[i - 1].value, `${id}: energy ${energy[i - 1].value} then ${energy[i].value}`);
    }
    const { ingestKeys } = await query<{ ingestKeys: { label: string; revokedAt: string | null }[] }>(`{ ingestKeys(collectivityId: "chalons") { label revokedAt } }`);
    const simulators = ingestKeys.filter((k) => k.label === INGEST_KEY_LABEL);
    assert.equal(simulators.length, 2, 'one key per run');
    assert.equal(simulators.filter((k) => k.revokedAt === null).length, 1, 'the first run\'s key revoked by the second');
    const { deadLetters } = await query<{ deadLetters: { totalCount: number; edges: { node: { topic: string; reasons: { reason: string }[] } }[] } }>(
      `{ deadLetters(first: 5) { totalCount edges { node { topic reasons { reason } } } } }`,
    );
    assert.equal(deadLetters.totalCount, 0, `uplinks the ingest refused: ${JSON.stringify(deadLetters.edges)}`);
  });
});
