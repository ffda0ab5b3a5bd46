-- The mobility domain (subgraphs/mobility): the static GTFS network of Châlons Agglo's buses,
-- vehicles' live state and their daily assignment to blocks of trips, transit-signal priority
-- requests and their answers, and parking facilities' tariffs, opening hours and live occupancy.
-- docs/mobility.md describes each table's use; docs/personal-data.md registers the personal
-- columns (a test checks every column is classified in prisma/personal-data-register.json).
--
-- Mobility never reads equipment's tables: `mobility_assets` is its copy of the assets it needs
-- (buses, stops, parking facilities and sensors, traffic-signal controllers), kept from
-- `equipment.changed` events as telemetry's directory is.

-- CreateTable: the assets mobility follows, from `equipment.changed` (guarded by the event id).
CREATE TABLE "mobility_assets" (
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "reference" TEXT NOT NULL,
    "name" TEXT,
    "status" TEXT NOT NULL,
    "geom" geometry(Point, 4326),
    "parent_id" TEXT,
    "details" JSONB NOT NULL DEFAULT '{}',
    "event_id" BIGINT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "mobility_assets_pkey" PRIMARY KEY ("equipment_id"),
    CONSTRAINT "mobility_assets_kind_check" CHECK ("kind" IN ('BUS', 'BUS_STOP', 'PARKING_FACILITY', 'PARKING_SENSOR', 'TRAFFIC_SIGNAL_CONTROLLER'))
);
CREATE INDEX "mobility_assets_kind_idx" ON "mobility_assets" ("kind", "collectivity_id");
CREATE INDEX "mobility_assets_parent_idx" ON "mobility_assets" ("parent_id") WHERE "parent_id" IS NOT NULL;
CREATE INDEX "mobility_assets_geom_idx" ON "mobility_assets" USING GIST ("geom");

-- CreateTable: every GTFS import (the network tables hold the newest successful one only). A
-- failed import writes nothing, not even this row: its report is the answer to the caller.
CREATE TABLE "gtfs_feeds" (
    "id" BIGSERIAL NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "source" TEXT NOT NULL,
    "feed_version" TEXT,
    "sha256" TEXT NOT NULL,
    "imported_by" TEXT NOT NULL,
    "imported_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "counts" JSONB NOT NULL,
    "warnings" JSONB NOT NULL DEFAULT '[]',
    -- First and last day any of its services runs (calendar and added calendar_dates).
    "valid_from" DATE,
    "valid_to" DATE,

    CONSTRAINT "gtfs_feeds_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "gtfs_agencies" (
    "agency_id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "timezone" TEXT NOT NULL,
    "lang" TEXT,
    "phone" TEXT,

    CONSTRAINT "gtfs_agencies_pkey" PRIMARY KEY ("agency_id")
);

CREATE TABLE "gtfs_routes" (
    "route_id" TEXT NOT NULL,
    "agency_id" TEXT NOT NULL,
    "short_name" TEXT,
    "long_name" TEXT,
    "description" TEXT,
    "route_type" INTEGER NOT NULL,
    "color" TEXT,
    "text_color" TEXT,
    "sort_order" INTEGER,

    CONSTRAINT "gtfs_routes_pkey" PRIMARY KEY ("route_id"),
    CONSTRAINT "gtfs_routes_agency_fkey" FOREIGN KEY ("agency_id") REFERENCES "gtfs_agencies" ("agency_id") ON DELETE CASCADE
);

-- Each GTFS stop is a BUS_STOP equipment (registered through the equipment domain, found by its
-- reference = stop_id); `equipment_id` is that asset's id.
CREATE TABLE "gtfs_stops" (
    "stop_id" TEXT NOT NULL,
    "equipment_id" TEXT NOT NULL,
    "code" TEXT,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "geom" geometry(Point, 4326) NOT NULL,
    "wheelchair_boarding" INTEGER,

    CONSTRAINT "gtfs_stops_pkey" PRIMARY KEY ("stop_id"),
    CONSTRAINT "gtfs_stops_equipment_key" UNIQUE ("equipment_id")
);
CREATE INDEX "gtfs_stops_geom_idx" ON "gtfs_stops" USING GIST ("geom");

CREATE TABLE "gtfs_calendar" (
    "service_id" TEXT NOT NULL,
    "monday" BOOLEAN NOT NULL,
    "tuesday" BOOLEAN NOT NULL,
    "wednesday" BOOLEAN NOT NULL,
    "thursday" BOOLEAN NOT NULL,
    "friday" BOOLEAN NOT NULL,
    "saturday" BOOLEAN NOT NULL,
    "sunday" BOOLEAN NOT NULL,
    "start_date" DATE NOT NULL,
    "end_date" DATE NOT NULL,

    CONSTRAINT "gtfs_calendar_pkey" PRIMARY KEY ("service_id"),
    CONSTRAINT "gtfs_calendar_dates_check" CHECK ("start_date" <= "end_date")
);

-- exception_type 1: service added on that date; 2: removed (GTFS calendar_dates.txt).
CREATE TABLE "gtfs_calendar_dates" (
    "service_id" TEXT NOT NULL,
    "date" DATE NOT NULL,
    "exception_type" INTEGER NOT NULL,

    CONSTRAINT "gtfs_calendar_dates_pkey" PRIMARY KEY ("service_id", "date"),
    CONSTRAINT "gtfs_calendar_dates_exception_check" CHECK ("exception_type" IN (1, 2))
);

-- A shape's line, and each of its points' distance from the start in metres (geodesic), so that
-- a position is projected on it and compared with stop_times' shape_dist_traveled.
CREATE TABLE "gtfs_shapes" (
    "shape_id" TEXT NOT NULL,
    "geom" geometry(LineString, 4326) NOT NULL,
    "distances" DOUBLE PRECISION[] NOT NULL,
    "length_m" DOUBLE PRECISION NOT NULL,

    CONSTRAINT "gtfs_shapes_pkey" PRIMARY KEY ("shape_id")
);

CREATE TABLE "gtfs_trips" (
    "trip_id" TEXT NOT NULL,
    "route_id" TEXT NOT NULL,
    "service_id" TEXT NOT NULL,
    "shape_id" TEXT NOT NULL,
    "headsign" TEXT,
    "short_name" TEXT,
    "direction_id" INTEGER,
    "block_id" TEXT,

    CONSTRAINT "gtfs_trips_pkey" PRIMARY KEY ("trip_id"),
    CONSTRAINT "gtfs_trips_route_fkey" FOREIGN KEY ("route_id") REFERENCES "gtfs_routes" ("route_id") ON DELETE CASCADE,
    CONSTRAINT "gtfs_trips_shape_fkey" FOREIGN KEY ("shape_id") REFERENCES "gtfs_shapes" ("shape_id") ON DELETE CASCADE
);
CREATE INDEX "gtfs_trips_block_idx" ON "gtfs_trips" ("block_id");

-- Times in seconds after noon minus 12 h of the service day (GTFS: may exceed 24:00:00);
-- shape_dist_traveled in metres along the trip's shape.
CREATE TABLE "gtfs_stop_times" (
    "trip_id" TEXT NOT NULL,
    "stop_sequence" INTEGER NOT NULL,
    "stop_id" TEXT NOT NULL,
    "arrival_seconds" INTEGER NOT NULL,
    "departure_seconds" INTEGER NOT NULL,
    "shape_dist_traveled" DOUBLE PRECISION NOT NULL,
    "timepoint" BOOLEAN NOT NULL DEFAULT true,

    CONSTRAINT "gtfs_stop_times_pkey" PRIMARY KEY ("trip_id", "stop_sequence"),
    CONSTRAINT "gtfs_stop_times_trip_fkey" FOREIGN KEY ("trip_id") REFERENCES "gtfs_trips" ("trip_id") ON DELETE CASCADE,
    CONSTRAINT "gtfs_stop_times_stop_fkey" FOREIGN KEY ("stop_id") REFERENCES "gtfs_stops" ("stop_id") ON DELETE CASCADE,
    CONSTRAINT "gtfs_stop_times_order_check" CHECK ("arrival_seconds" <= "departure_seconds")
);
CREATE INDEX "gtfs_stop_times_stop_idx" ON "gtfs_stop_times" ("stop_id", "departure_seconds");

-- CreateTable: which bus runs which block of trips on a service day (Europe/Paris). Filled each
-- day for the blocks the day's services run, by the `vehicle-assignments` worker (buses in
-- service by fleet number), changeable by an operator of the buses' collectivity.
CREATE TABLE "vehicle_assignments" (
    "service_date" DATE NOT NULL,
    "block_id" TEXT NOT NULL,
    "equipment_id" TEXT NOT NULL,
    "assigned_by" TEXT NOT NULL,
    "assigned_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "vehicle_assignments_pkey" PRIMARY KEY ("service_date", "block_id"),
    CONSTRAINT "vehicle_assignments_vehicle_key" UNIQUE ("service_date", "equipment_id")
);

-- CreateTable: each bus's live state, recomputed from its position readings: the trip it runs,
-- its progress along the trip's shape, its delay against the schedule and the predicted arrival
-- at its next stops (`predictions`: [[stop_sequence, predicted arrival in epoch seconds], …]; the stop
-- and the scheduled time are the trip's stop_times').
-- `route_id` is the trip's route, kept so that a route's buses are found without the network.
CREATE TABLE "vehicle_states" (
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "observed_at" TIMESTAMPTZ(3) NOT NULL,
    "geom" geometry(Point, 4326) NOT NULL,
    "speed_mps" DOUBLE PRECISION,
    "bearing" DOUBLE PRECISION,
    "service_date" DATE,
    "trip_id" TEXT,
    "route_id" TEXT,
    "shape_dist_m" DOUBLE PRECISION,
    "delay_seconds" INTEGER,
    "current_status" TEXT NOT NULL,
    "stop_sequence" INTEGER,
    "stop_id" TEXT,
    "predictions" JSONB NOT NULL DEFAULT '[]',
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "vehicle_states_pkey" PRIMARY KEY ("equipment_id"),
    CONSTRAINT "vehicle_states_status_check" CHECK ("current_status" IN ('INCOMING_AT', 'STOPPED_AT', 'IN_TRANSIT_TO', 'NOT_IN_SERVICE'))
) WITH (fillfactor = 50);
-- Each row is rewritten every 15 s: room in each page lets the update stay on its page (HOT),
-- without touching the indexes, as long as the trip and route do not change.
CREATE INDEX "vehicle_states_trip_idx" ON "vehicle_states" ("trip_id") WHERE "trip_id" IS NOT NULL;
CREATE INDEX "vehicle_states_route_idx" ON "vehicle_states" ("route_id") WHERE "route_id" IS NOT NULL;

-- CreateTable: positions that were not taken as truth (a speed a bus cannot reach, a jump the
-- time between two positions cannot explain, a position far from every route): flagged here,
-- the vehicle's state left as it was. Kept 30 days.
CREATE TABLE "vehicle_outliers" (
    "id" BIGSERIAL NOT NULL,
    "equipment_id" TEXT NOT NULL,
    "observed_at" TIMESTAMPTZ(3) NOT NULL,
    "reason" TEXT NOT NULL,
    "lon" DOUBLE PRECISION,
    "lat" DOUBLE PRECISION,
    "speed_mps" DOUBLE PRECISION,
    "recorded_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "vehicle_outliers_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "vehicle_outliers_vehicle_idx" ON "vehicle_outliers" ("equipment_id", "observed_at" DESC);

-- CreateTable: transit-signal priority. One request per bus, trip and intersection it approaches
-- late; `id` is the downlink's correlation id (`cid`). `collectivity_id` is the controller's.
-- REQUESTED until the controller's ack: GRANTED (ok) or DENIED (ok false); EXPIRED when no ack
-- came within the downlink's ttl. `seconds_saved`: the estimate for a grant (docs/mobility.md).
CREATE TABLE "signal_priority_requests" (
    "id" UUID NOT NULL,
    "controller_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "vehicle_id" TEXT NOT NULL,
    "trip_id" TEXT NOT NULL,
    "route_id" TEXT NOT NULL,
    "service_date" DATE NOT NULL,
    "requested_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    "distance_m" DOUBLE PRECISION NOT NULL,
    "delay_seconds" INTEGER NOT NULL,
    "eta_seconds" DOUBLE PRECISION NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'REQUESTED',
    "answered_at" TIMESTAMPTZ(3),
    "error" TEXT,
    "seconds_saved" DOUBLE PRECISION,
    -- The bus's collectivity (who may read the request, beside the controller's).
    "vehicle_collectivity_id" TEXT NOT NULL,
    -- Outbox: the `signal-priority` worker publishes the downlink after this row committed and
    -- sets `sent_at` once the broker acknowledged it (PUBACK); `send_lease_until` keeps a row
    -- another instance is sending from being sent again meanwhile.
    "sent_at" TIMESTAMPTZ(3),
    "send_lease_until" TIMESTAMPTZ(3),
    -- The request whose expiry (or fault answer) raised the controller's SIGNAL_PRIORITY_FAULT,
    -- and when the controller's next normal answer cleared it (one open fault per controller).
    "fault_raised_at" TIMESTAMPTZ(3),
    "fault_cleared_at" TIMESTAMPTZ(3),

    CONSTRAINT "signal_priority_requests_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "signal_priority_requests_pass_key" UNIQUE ("vehicle_id", "service_date", "trip_id", "controller_id"),
    CONSTRAINT "signal_priority_requests_status_check" CHECK ("status" IN ('REQUESTED', 'GRANTED', 'DENIED', 'EXPIRED'))
);
CREATE INDEX "signal_priority_requests_controller_idx" ON "signal_priority_requests" ("controller_id", "requested_at");
CREATE INDEX "signal_priority_requests_route_idx" ON "signal_priority_requests" ("route_id", "requested_at");
CREATE INDEX "signal_priority_requests_open_idx" ON "signal_priority_requests" ("expires_at") WHERE "status" = 'REQUESTED';
CREATE INDEX "signal_priority_requests_unsent_idx" ON "signal_priority_requests" ("requested_at") WHERE "status" = 'REQUESTED' AND "sent_at" IS NULL;
CREATE INDEX "signal_priority_requests_vehicle_collectivity_idx" ON "signal_priority_requests" ("vehicle_collectivity_id", "requested_at");
CREATE INDEX "signal_priority_requests_fault_idx" ON "signal_priority_requests" ("controller_id") WHERE "fault_raised_at" IS NOT NULL AND "fault_cleared_at" IS NULL;

-- CreateTable: a parking facility's static information mobility owns (the asset itself, its
-- position and capacity are equipment's): tariffs and opening hours.
-- `opening_hours`: [{ days: [1..7] (ISO, 1 = Monday), opens: "HH:MM", closes: "HH:MM" }], empty = always open.
-- `tariffs`: [{ label, upToMinutes (null = any longer stay), priceEur }], in ascending durations.
CREATE TABLE "parking_facility_info" (
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "opening_hours" JSONB NOT NULL DEFAULT '[]',
    "tariffs" JSONB NOT NULL DEFAULT '[]',
    "free_minutes" INTEGER NOT NULL DEFAULT 0,
    "updated_by" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "parking_facility_info_pkey" PRIMARY KEY ("equipment_id"),
    CONSTRAINT "parking_facility_info_free_minutes_check" CHECK ("free_minutes" BETWEEN 0 AND 1440)
);

-- CreateTable: each facility's live occupancy, from its entry/exit counter (`occupancy` of the
-- PARKING_FACILITY) or from its bays' sensors (PARKING_SENSOR children, 0/1). A count above the
-- capacity is kept as reported (`reported`) but flagged (`status` OVER_CAPACITY) and `occupied`
-- is capped at the capacity: free spaces never go negative.
CREATE TABLE "parking_occupancy" (
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "capacity" INTEGER NOT NULL,
    "occupied" INTEGER NOT NULL,
    "reported" INTEGER NOT NULL,
    "source" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "observed_at" TIMESTAMPTZ(3) NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "parking_occupancy_pkey" PRIMARY KEY ("equipment_id"),
    CONSTRAINT "parking_occupancy_source_check" CHECK ("source" IN ('COUNTER', 'SENSORS')),
    CONSTRAINT "parking_occupancy_status_check" CHECK ("status" IN ('OK', 'OVER_CAPACITY')),
    CONSTRAINT "parking_occupancy_range_check" CHECK ("occupied" BETWEEN 0 AND "capacity" AND "reported" >= 0)
);

-- CreateTable: the last state of each bay sensor of an on-street sector.
CREATE TABLE "parking_bays" (
    "sensor_id" TEXT NOT NULL,
    "facility_id" TEXT NOT NULL,
    "occupied" BOOLEAN NOT NULL,
    "observed_at" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "parking_bays_pkey" PRIMARY KEY ("sensor_id")
);
CREATE INDEX "parking_bays_facility_idx" ON "parking_bays" ("facility_id");
