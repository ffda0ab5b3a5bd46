-- Contracts the telemetry domain publishes for the open-data module (issue #11): aggregates only,
-- never a single reading of an identified person's device. Telemetry has no positions and never
-- reads equipment's tables: the views give asset ids (a building, a collectivity) and the feeds
-- place them from the equipment and territory views (`opendata_equipment`,
-- `opendata_collectivities`).

-- Indoor air quality per building and UTC hour, from the hourly roll-ups of the building's
-- air-quality sensors (telemetry's device directory knows each sensor's building as its parent).
-- Only the environmental metrics: CO2, temperature, humidity, PM2.5 — never `occupancy` (people
-- in a room) nor `battery`. `updated_at` is the latest reading the hour holds.
CREATE VIEW "opendata_air_quality_hourly" AS
SELECT
    d.parent_id AS building_id,
    r.hour,
    r.metric,
    count(DISTINCT r.equipment_id)::int AS sensors,
    sum(r.count)::int AS readings,
    sum(r.sum) / nullif(sum(r.count), 0) AS mean,
    min(r.min) AS min,
    max(r.max) AS max,
    max(r.last_time) AS updated_at
FROM "reading_rollups_hourly" r
JOIN "telemetry_devices" d ON d.equipment_id = r.equipment_id
WHERE d.kind = 'AIR_QUALITY_SENSOR'
  AND d.parent_id IS NOT NULL
  AND r.metric IN ('co2', 'temperature', 'humidity', 'pm2_5')
GROUP BY d.parent_id, r.hour, r.metric;

-- Energy per collectivity and calendar month (Europe/Paris days), from the daily roll-ups of the
-- cumulative `energy` counters of light points and buildings' meters, against the recorded
-- pre-renovation baselines: the same reading of a counter as `Query.energy`
-- (subgraphs/telemetry/src/energy.ts) over the whole history — a day consumed its last value minus
-- the previous reading day's last (the first day ever: last − first), a counter that went
-- backwards does not count the drop, and the baseline counts the days since the previous reading
-- day (annual baseline ÷ days of the year). An asset without a baseline counts in consumption,
-- not in savings. Figures of all the collectivity's assets: no asset is named.
CREATE VIEW "opendata_energy_monthly" AS
WITH counters AS (
    SELECT r.equipment_id, r.collectivity_id, r.kind, r.day, r.first_value, r.last_value, r.min, r.max, r.last_time,
           lag(r.day) OVER w AS prev_day, lag(r.last_value) OVER w AS prev_last
      FROM "reading_rollups_daily" r
     WHERE r.metric = 'energy' AND r.kind IN ('LIGHT_POINT', 'ENERGY_METER')
    WINDOW w AS (PARTITION BY r.equipment_id ORDER BY r.day)
),
days AS (
    SELECT c.collectivity_id, c.kind, c.equipment_id, c.last_time,
           date_trunc('month', c.day::timestamp)::date AS month,
           (CASE WHEN c.min < c.first_value THEN (c.max - s.wh) + (c.last_value - c.min) ELSE c.last_value - s.wh END) / 1000.0 AS kwh,
           b.baseline_kwh_per_year * (c.day - coalesce(c.prev_day, c.day - 1))
             / (CASE WHEN extract(year FROM c.day)::int % 4 = 0 AND (extract(year FROM c.day)::int % 100 <> 0 OR extract(year FROM c.day)::int % 400 = 0) THEN 366 ELSE 365 END) AS baseline_kwh,
           b.equipment_id IS NOT NULL AS has_baseline
      FROM counters c
      LEFT JOIN "energy_baselines" b ON b.equipment_id = c.equipment_id
     CROSS JOIN LATERAL (
        SELECT CASE WHEN c.prev_last IS NULL OR c.first_value < c.prev_last THEN c.first_value ELSE c.prev_last END AS wh) s
)
SELECT
    collectivity_id,
    month,
    sum(kwh) AS consumed_kwh,
    coalesce(sum(kwh) FILTER (WHERE kind = 'LIGHT_POINT'), 0) AS lighting_kwh,
    coalesce(sum(kwh) FILTER (WHERE kind = 'ENERGY_METER'), 0) AS buildings_kwh,
    coalesce(sum(baseline_kwh), 0) AS baseline_kwh,
    coalesce(sum(baseline_kwh - kwh) FILTER (WHERE has_baseline), 0) AS saved_kwh,
    count(DISTINCT equipment_id)::int AS reporting_assets,
    max(last_time) AS updated_at
FROM days
GROUP BY collectivity_id, month;
