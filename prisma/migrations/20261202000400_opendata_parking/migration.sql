-- Contract published by the mobility domain for the open-data module (which never reads raw
-- tables): the live parking facilities, as the GraphQL API shows them (docs/mobility.md,
-- "Parking"). DATEX II ParkingTable/ParkingStatus, the BNLS CSV and the parking GeoJSON read it.
--
-- A facility is a PARKING_FACILITY of mobility's asset directory that is not decommissioned and
-- has a position. Name, type and capacity follow the rules of subgraphs/mobility/src/parking-occupancy.ts
-- (`details.name` else the asset's name else its reference; `details.type` else SURFACE;
-- `details.capacity` when a whole number ≥ 0, else the count of its live bay sensors). A count
-- above the capacity is capped (`occupied`), never negative free spaces; `status` is the stored
-- OK / OVER_CAPACITY compared with the capacity in force, NULL when never reported. STALE is a
-- matter of time (MOBILITY_PARKING_STALE_S): the reader derives it from `observed_at`.
--
-- Public only: nothing of `updated_by` (who set the tariffs), of bay sensors or of counts as
-- reported above the capacity. `insee_code` is the commune whose territory holds the facility
-- (territory's reference `commune`), else its collectivity's; `operator_siren` is the SIREN of the
-- collectivity that runs it (a public register number of an authority, not a person's).
CREATE VIEW "opendata_parking_facilities" AS
SELECT
    f.id,
    f.name,
    f.type,
    f.collectivity_id,
    f.insee_code,
    f.operator_siren,
    f.location,
    ST_X(f.location) AS lon,
    ST_Y(f.location) AS lat,
    f.capacity,
    f.opening_hours,
    f.tariffs,
    f.free_minutes,
    CASE WHEN f.reported IS NULL THEN NULL ELSE LEAST(f.reported, f.capacity) END AS occupied,
    CASE WHEN f.reported IS NULL THEN NULL ELSE f.capacity - LEAST(f.reported, f.capacity) END AS free_spaces,
    CASE WHEN f.reported IS NULL THEN NULL WHEN f.reported > f.capacity THEN 'OVER_CAPACITY' ELSE 'OK' END AS status,
    f.observed_at,
    f.description_updated_at,
    GREATEST(f.description_updated_at, f.occupancy_updated_at) AS updated_at
FROM (
    SELECT
        a.equipment_id AS id,
        CASE WHEN jsonb_typeof(a.details->'name') = 'string' AND a.details->>'name' <> '' THEN a.details->>'name'
             ELSE COALESCE(a.name, a.reference) END AS name,
        CASE WHEN a.details->>'type' IN ('UNDERGROUND', 'SURFACE', 'ON_STREET') THEN a.details->>'type' ELSE 'SURFACE' END AS type,
        a.collectivity_id,
        COALESCE(
            (SELECT c.insee_code FROM "commune" c WHERE ST_Covers(c.geom, a.geom) ORDER BY c.insee_code LIMIT 1),
            col.insee_code) AS insee_code,
        col.siren AS operator_siren,
        a.geom AS location,
        CASE WHEN jsonb_typeof(a.details->'capacity') = 'number'
                  AND (a.details->>'capacity')::numeric >= 0
                  AND (a.details->>'capacity')::numeric <= 2147483647
                  AND (a.details->>'capacity')::numeric = trunc((a.details->>'capacity')::numeric)
             THEN (a.details->>'capacity')::numeric::integer
             ELSE (SELECT count(*)::integer FROM "mobility_assets" s
                   WHERE s.kind = 'PARKING_SENSOR' AND s.status <> 'DECOMMISSIONED'
                     AND COALESCE(s.parent_id, s.details->>'facilityId') = a.equipment_id)
        END AS capacity,
        COALESCE(i.opening_hours, '[]'::jsonb) AS opening_hours,
        COALESCE(i.tariffs, '[]'::jsonb) AS tariffs,
        COALESCE(i.free_minutes, 0) AS free_minutes,
        o.reported,
        o.observed_at,
        o.updated_at AS occupancy_updated_at,
        GREATEST(a.updated_at, i.updated_at) AS description_updated_at
    FROM "mobility_assets" a
    LEFT JOIN "collectivity" col ON col.id = a.collectivity_id
    LEFT JOIN "parking_facility_info" i ON i.equipment_id = a.equipment_id
    LEFT JOIN "parking_occupancy" o ON o.equipment_id = a.equipment_id
    WHERE a.kind = 'PARKING_FACILITY'
      AND a.status <> 'DECOMMISSIONED'
      AND a.geom IS NOT NULL
) f;
