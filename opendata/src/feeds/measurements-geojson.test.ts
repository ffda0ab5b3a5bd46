/**
 * The measurement feeds (indoor air quality per building and hour, energy savings per
 * collectivity and month) through HTTP, on roll-ups written here as telemetry's ingest would:
 * the figures published are the aggregates of those rows, never a room's occupancy, and the
 * versions move when a roll-up does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from '../../test/serve.js';

describe('open-data feeds: air quality and energy savings GeoJSON', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let served: ServedOpendata;
  let building: { id: string; sensors: string[]; collectivity: string };

  const hourly = (equipment: string, collectivity: string, metric: string, hour: string, values: number[]) =>
    pool.query(
      `INSERT INTO reading_rollups_hourly (equipment_id, metric, hour, collectivity_id, count, sum, min, max, first_time, first_value, last_time, last_value)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $3::timestamptz + interval '1 minute', $9, $3::timestamptz + interval '59 minutes', $10)
       ON CONFLICT (equipment_id, metric, hour) DO UPDATE SET count = EXCLUDED.count, sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max`,
      [equipment, metric, hour, collectivity, values.length, values.reduce((a, b) => a + b, 0), Math.min(...values), Math.max(...values), values[0], values.at(-1)],
    );
  const daily = (equipment: string, collectivity: string, kind: string, day: string, first: number, last: number) =>
    pool.query(
      `INSERT INTO reading_rollups_daily (equipment_id, metric, day, collectivity_id, kind, count, sum, min, max, first_time, first_value, last_time, last_value)
       VALUES ($1, 'energy', $2, $3, $4, 2, $5::float8 + $6::float8, $5, $6, $2::date + time '00:10', $5, $2::date + time '23:50', $6)`,
      [equipment, day, collectivity, kind, first, last],
    );
  const get = async (path: string) => {
    const response = await rawRequest(`${served.base}${path}`);
    return { response, body: response.status === 200 ? (JSON.parse(response.body.toString()) as any) : JSON.parse(response.body.toString()) };
  };

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    served = await serveOpendata({ pool });
    const { rows } = await pool.query<{ id: string; collectivity_id: string; sensors: string[] }>(`
      SELECT b.id, b.collectivity_id, array_agg(s.id ORDER BY s.id) AS sensors
        FROM equipment b JOIN equipment s ON s.parent_id = b.id AND s.kind = 'AIR_QUALITY_SENSOR'
       WHERE b.kind = 'BUILDING' GROUP BY b.id HAVING count(*) >= 2 ORDER BY b.id LIMIT 1`);
    building = { id: rows[0].id, sensors: rows[0].sensors, collectivity: rows[0].collectivity_id };
    const [a, b] = building.sensors;
    for (const [sensor, co2, pm] of [[a, [800, 1200], [5, 7]], [b, [600, 1000], [9, 11]]] as const) {
      await hourly(sensor, building.collectivity, 'co2', '2026-11-30T09:00:00Z', [...co2]);
      await hourly(sensor, building.collectivity, 'pm2_5', '2026-11-30T09:00:00Z', [...pm]);
      await hourly(sensor, building.collectivity, 'temperature', '2026-11-30T09:00:00Z', [19, 21]);
      await hourly(sensor, building.collectivity, 'humidity', '2026-11-30T09:00:00Z', [40, 50]);
      await hourly(sensor, building.collectivity, 'occupancy', '2026-11-30T09:00:00Z', [24, 26]);
      await hourly(sensor, building.collectivity, 'co2', '2026-11-30T10:00:00Z', [700]);
    }
    await hourly(a, building.collectivity, 'co2', '2026-12-01T10:00:00Z', [500]);
  });
  after(async () => {
    await served?.close();
    await pool?.end();
    await db?.drop();
  });

  it('publishes per building and hour the aggregates of its sensors, placed at the building, without occupancy', async () => {
    const { response, body } = await get(`/opendata/geojson/air-quality.geojson?building=${building.id}&from=2026-11-30&to=2026-11-30`);
    assert.equal(response.status, 200);
    assert.deepEqual(body.features.map((f: any) => f.properties.hour), ['2026-11-30T09:00:00Z', '2026-11-30T10:00:00Z']);
    const [nine] = body.features;
    assert.equal(nine.id, `${building.id}@2026-11-30T09:00:00Z`);
    const { rows } = await pool.query(`SELECT ST_X(location) AS x, ST_Y(location) AS y FROM equipment WHERE id = $1`, [building.id]);
    assert.deepEqual(nine.geometry.coordinates, [Number(rows[0].x.toFixed(6)), Number(rows[0].y.toFixed(6))]);
    assert.equal(nine.properties.sensors, 2);
    assert.equal(nine.properties.co2PpmMean, 900, 'mean of every reading of both sensors');
    assert.equal(nine.properties.co2PpmMax, 1200);
    assert.equal(nine.properties.pm25UgM3Mean, 8);
    assert.equal(nine.properties.pm25UgM3Max, 11);
    assert.equal(nine.properties.temperatureCMean, 20);
    assert.equal(nine.properties.humidityPercentMean, 45);
    assert.ok(!JSON.stringify(body).includes('occupancy'), 'occupancy is never published');
    const whole = await get('/opendata/geojson/air-quality.geojson');
    assert.equal(whole.body.features.length, 3);
    for (const [query, field] of [['from=2026-13-01', 'from'], ['from=2026-11-30&to=2026-11-29', 'to'], ['building=x', 'building'], ['hour=1', 'hour']]) {
      const bad = await get(`/opendata/geojson/air-quality.geojson?${query}`);
      assert.equal(bad.response.status, 400, query);
      assert.equal(bad.body.field, field, query);
    }
  });

  it('moves the air-quality version when a roll-up of the selection changes, not otherwise', async () => {
    const etag = async (query: string) => (await rawRequest(`${served.base}/opendata/geojson/air-quality.geojson?${query}`, {}, 'HEAD')).headers.etag;
    const november = await etag('to=2026-11-30');
    const december = await etag('from=2026-12-01');
    await hourly(building.sensors[0], building.collectivity, 'co2', '2026-12-01T10:00:00Z', [500, 900]);
    assert.notEqual(await etag('from=2026-12-01'), december);
    assert.equal(await etag('to=2026-11-30'), november);
  });

  it('publishes energy consumed, baseline and saved per collectivity and month on its area', async () => {
    const { rows } = await pool.query<{ equipment_id: string; baseline_kwh_per_year: number }>(
      `SELECT equipment_id, baseline_kwh_per_year FROM energy_baselines WHERE collectivity_id = 'fagnieres' AND kind = 'LIGHT_POINT' ORDER BY equipment_id LIMIT 1`,
    );
    const lp = rows[0];
    // 2026 has 365 days: each reading day after the first counts one day of baseline.
    await daily(lp.equipment_id, 'fagnieres', 'LIGHT_POINT', '2026-10-31', 10_000, 10_200); // first day ever: 0.2 kWh
    await daily(lp.equipment_id, 'fagnieres', 'LIGHT_POINT', '2026-11-01', 10_200, 10_500); // 0.3 kWh
    await daily(lp.equipment_id, 'fagnieres', 'LIGHT_POINT', '2026-11-03', 10_500, 11_100); // 0.6 kWh, 2 days of baseline
    const { response, body } = await get('/opendata/geojson/energy-savings.geojson');
    assert.equal(response.status, 200);
    assert.deepEqual(body.features.map((f: any) => f.id), ['chalons', 'chalons-agglo', 'fagnieres', 'saint-martin-sur-le-pre']);
    const fagnieres = body.features.find((f: any) => f.id === 'fagnieres');
    assert.equal(fagnieres.geometry.type, 'MultiPolygon');
    assert.equal(fagnieres.properties.commune, '51242');
    const perDay = lp.baseline_kwh_per_year / 365;
    const [october, november] = fagnieres.properties.months;
    assert.equal(october.month, '2026-10');
    assert.equal(october.consumedKwh, 0.2);
    assert.equal(october.baselineKwh, Number(perDay.toFixed(3)));
    assert.equal(november.month, '2026-11');
    assert.equal(november.consumedKwh, 0.9);
    assert.equal(november.lightingKwh, 0.9);
    assert.equal(november.buildingsKwh, 0);
    assert.equal(november.baselineKwh, Number((3 * perDay).toFixed(3)));
    assert.equal(november.savedKwh, Number((3 * perDay - 0.9).toFixed(3)));
    assert.equal(november.reportingAssets, 1);
    assert.equal(fagnieres.properties.total.consumedKwh, 1.1);
    const chalons = body.features.find((f: any) => f.id === 'chalons');
    assert.deepEqual(chalons.properties.months, []);
    assert.equal(chalons.properties.total, null);
    const narrowed = await get('/opendata/geojson/energy-savings.geojson?collectivity=fagnieres&from=2026-11');
    assert.deepEqual(narrowed.body.features.map((f: any) => f.id), ['fagnieres']);
    assert.deepEqual(narrowed.body.features[0].properties.months.map((m: any) => m.month), ['2026-11']);
    for (const [query, field] of [['from=2026-13', 'from'], ['collectivity=reims', 'collectivity'], ['from=2026-11&to=2026-10', 'to']]) {
      const bad = await get(`/opendata/geojson/energy-savings.geojson?${query}`);
      assert.equal(bad.response.status, 400, query);
      assert.equal(bad.body.field, field, query);
    }
  });
});
