-- Contract published by the tickets domain for the open-data module (which never reads raw
-- tables): citizens' reports reduced to the inputs of the anonymised publication
-- (opendata/src/feeds/citizen-reports-geojson.ts applies the policy: cells of at least k reports,
-- rare categories, statuses and weeks suppressed).
--
-- One row per report, and only: its category, its status generalised to a stage, the ISO week
-- (Europe/Paris) it was reported in, and the 200 m square of the INSPIRE / INSEE grid (ETRS89-LAEA,
-- EPSG:3035, the grid of INSEE's "données carroyées") holding it. Never the ticket's id (the public
-- API would link it back to the ticket), the exact point, the exact time, the reporter (account,
-- name, e-mail, phone), the description, photos, the address, the asset or the history.
CREATE VIEW "opendata_citizen_reports" AS
SELECT
    t.category_code AS category,
    CASE
        WHEN t.status IN ('NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS') THEN 'OPEN'
        WHEN t.status IN ('RESOLVED', 'CLOSED') THEN 'RESOLVED'
        ELSE t.status -- REJECTED, DUPLICATE
    END AS stage,
    to_char(t.created_at AT TIME ZONE 'Europe/Paris', 'IYYY-"W"IW') AS iso_week,
    date_trunc('week', t.created_at AT TIME ZONE 'Europe/Paris')::date AS week_start,
    cell.east AS cell_east,
    cell.north AS cell_north,
    'CRS3035RES200mN' || cell.north || 'E' || cell.east AS cell
FROM "tickets" t
CROSS JOIN LATERAL (
    SELECT (floor(ST_X(p.geom) / 200) * 200)::bigint AS east, (floor(ST_Y(p.geom) / 200) * 200)::bigint AS north
    FROM (SELECT ST_Transform(t.geom, 3035) AS geom) p
) cell;
