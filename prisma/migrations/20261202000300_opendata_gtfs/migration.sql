-- Contract published by the mobility domain for the open-data module (which never reads raw
-- tables): the static GTFS network as it was imported (ids identical: `stop_id`, `route_id`,
-- `trip_id`, `shape_id`, `service_id` are the network's), one view per GTFS file with the file's
-- field names and text forms (times `HH:MM:SS` past 24:00 allowed, dates `YYYYMMDD`, booleans
-- 0/1), and the buses' live state for GTFS-Realtime (opendata/src/feeds/gtfs-*.ts).
--
-- Left out: the agency's phone (a number in an open dataset reads as personal data to a
-- scanner, and riders have the agency's URL), the feed's contact e-mail and `imported_by` (an
-- account), stops' equipment ids, vehicles' outliers, assignments to blocks beyond the block the
-- GTFS itself publishes, and decommissioned buses.

CREATE VIEW "opendata_gtfs_agency" AS
SELECT a.agency_id, a.name AS agency_name, a.url AS agency_url, a.timezone AS agency_timezone, a.lang AS agency_lang
FROM "gtfs_agencies" a;

CREATE VIEW "opendata_gtfs_routes" AS
SELECT r.route_id, r.agency_id, r.short_name AS route_short_name, r.long_name AS route_long_name, r.description AS route_desc,
       r.route_type, r.color AS route_color, r.text_color AS route_text_color, r.sort_order AS route_sort_order
FROM "gtfs_routes" r;

-- Coordinates as stored (float8: the imported text's shortest form comes back unchanged).
CREATE VIEW "opendata_gtfs_stops" AS
SELECT s.stop_id, s.code AS stop_code, s.name AS stop_name, s.description AS stop_desc,
       ST_Y(s.geom) AS stop_lat, ST_X(s.geom) AS stop_lon, 0 AS location_type, s.wheelchair_boarding
FROM "gtfs_stops" s;

CREATE VIEW "opendata_gtfs_trips" AS
SELECT t.route_id, t.service_id, t.trip_id, t.headsign AS trip_headsign, t.short_name AS trip_short_name,
       t.direction_id, t.block_id, t.shape_id
FROM "gtfs_trips" t;

-- Seconds after "noon minus 12 h" of the service day back to GTFS's H:MM:SS (two-digit hours, may exceed 24).
CREATE VIEW "opendata_gtfs_stop_times" AS
SELECT st.trip_id,
       lpad((st.arrival_seconds / 3600)::text, 2, '0') || ':' || lpad((st.arrival_seconds % 3600 / 60)::text, 2, '0') || ':' || lpad((st.arrival_seconds % 60)::text, 2, '0') AS arrival_time,
       lpad((st.departure_seconds / 3600)::text, 2, '0') || ':' || lpad((st.departure_seconds % 3600 / 60)::text, 2, '0') || ':' || lpad((st.departure_seconds % 60)::text, 2, '0') AS departure_time,
       st.stop_id, st.stop_sequence, st.shape_dist_traveled, CASE WHEN st.timepoint THEN 1 ELSE 0 END AS timepoint
FROM "gtfs_stop_times" st;

-- One row per point of each shape's line, with its distance from the start as imported (metres).
CREATE VIEW "opendata_gtfs_shapes" AS
SELECT sh.shape_id, ST_Y(p.geom) AS shape_pt_lat, ST_X(p.geom) AS shape_pt_lon, p.path[1] AS shape_pt_sequence,
       sh.distances[p.path[1]] AS shape_dist_traveled
FROM "gtfs_shapes" sh
CROSS JOIN LATERAL ST_DumpPoints(sh.geom) AS p;

CREATE VIEW "opendata_gtfs_calendar" AS
SELECT c.service_id, c.monday::int AS monday, c.tuesday::int AS tuesday, c.wednesday::int AS wednesday, c.thursday::int AS thursday,
       c.friday::int AS friday, c.saturday::int AS saturday, c.sunday::int AS sunday,
       to_char(c.start_date, 'YYYYMMDD') AS start_date, to_char(c.end_date, 'YYYYMMDD') AS end_date
FROM "gtfs_calendar" c;

CREATE VIEW "opendata_gtfs_calendar_dates" AS
SELECT d.service_id, to_char(d.date, 'YYYYMMDD') AS date, d.exception_type
FROM "gtfs_calendar_dates" d;

-- The import the network tables hold (the newest successful one): feed_info.txt's fields, and
-- what versions the published zip (`feed_id`, `sha256` of the imported files, `imported_at`).
-- The publisher is the (first) agency: the tables keep no other.
CREATE VIEW "opendata_gtfs_feed_info" AS
SELECT f.id AS feed_id, f.sha256, f.imported_at,
       a.name AS feed_publisher_name, a.url AS feed_publisher_url, coalesce(a.lang, 'fr') AS feed_lang,
       to_char(f.valid_from, 'YYYYMMDD') AS feed_start_date, to_char(f.valid_to, 'YYYYMMDD') AS feed_end_date,
       coalesce(f.feed_version, left(f.sha256, 12)) AS feed_version
FROM (SELECT * FROM "gtfs_feeds" ORDER BY id DESC LIMIT 1) f
LEFT JOIN LATERAL (SELECT * FROM "gtfs_agencies" ORDER BY agency_id LIMIT 1) a ON true;

-- Every bus (not decommissioned) with a state: its last position taken as truth. The trip
-- columns are null unless the bus runs a trip the network has (after an import that dropped its
-- trip, the bus is published without one rather than with an id the static feed lacks).
-- `start_time` is the trip's first scheduled arrival (GTFS-RT TripDescriptor), `start_date` its
-- service day. The feed keeps the rows observed recently (opendata/src/feeds/gtfs-rt-vehicle-positions.ts);
-- the older ones stay here so that the feed's header timestamp moves when one of them leaves it.
CREATE VIEW "opendata_vehicle_positions" AS
SELECT s.equipment_id AS vehicle_id,
       a.details->>'fleetNumber' AS label,
       s.observed_at,
       s.updated_at,
       ST_Y(s.geom) AS lat,
       ST_X(s.geom) AS lon,
       s.bearing,
       s.speed_mps,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE s.current_status END AS current_status,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE s.stop_sequence END AS stop_sequence,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE s.stop_id END AS stop_id,
       t.trip_id,
       t.route_id,
       t.direction_id,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE to_char(s.service_date, 'YYYYMMDD') END AS start_date,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE
           lpad((first.arrival_seconds / 3600)::text, 2, '0') || ':' || lpad((first.arrival_seconds % 3600 / 60)::text, 2, '0') || ':' || lpad((first.arrival_seconds % 60)::text, 2, '0')
       END AS start_time,
       CASE WHEN t.trip_id IS NULL THEN NULL ELSE s.delay_seconds END AS delay_seconds
FROM "vehicle_states" s
JOIN "mobility_assets" a ON a.equipment_id = s.equipment_id AND a.kind = 'BUS' AND a.status <> 'DECOMMISSIONED'
LEFT JOIN "gtfs_trips" t ON t.trip_id = s.trip_id AND s.service_date IS NOT NULL
LEFT JOIN LATERAL (
    SELECT st.arrival_seconds FROM "gtfs_stop_times" st WHERE st.trip_id = t.trip_id ORDER BY st.stop_sequence LIMIT 1
) first ON true;

-- The buses running a trip, with their predicted arrivals: `stop_time_updates` is
-- [[stop_sequence, stop_id, predicted arrival in epoch seconds], …] in stop_sequence order, the
-- stops being the trip's stop_times (a prediction whose sequence the trip lacks is dropped).
CREATE VIEW "opendata_trip_updates" AS
SELECT p.vehicle_id, p.label, p.observed_at, p.updated_at, p.trip_id, p.route_id, p.direction_id, p.start_date, p.start_time, p.delay_seconds,
       coalesce((
           SELECT jsonb_agg(jsonb_build_array(st.stop_sequence, st.stop_id, (e.value->>1)::bigint) ORDER BY st.stop_sequence)
           FROM jsonb_array_elements(s.predictions) AS e
           JOIN "gtfs_stop_times" st ON st.trip_id = p.trip_id AND st.stop_sequence = (e.value->>0)::int
       ), '[]'::jsonb) AS stop_time_updates
FROM "opendata_vehicle_positions" p
JOIN "vehicle_states" s ON s.equipment_id = p.vehicle_id
WHERE p.trip_id IS NOT NULL;
