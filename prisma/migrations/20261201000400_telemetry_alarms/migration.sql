-- Telemetry alarms (subgraphs/telemetry/src/alarm-engine.ts raises and clears them,
-- alarm-service.ts serves them and their rules).

-- CreateTable: the rules that raise alarms. A row with `collectivity_id` NULL is the territory's
-- default for its code; a row with a collectivity is that collectivity's own version of the same
-- code (a full copy: the default's type, kinds, metric and topics, with the collectivity's
-- threshold, duration, periods, severity, setsFault and enabled), which replaces the default for
-- that collectivity's assets. Only the defaults' codes exist (configureAlarmRule refuses others).
CREATE TABLE "alarm_rules" (
    "id" BIGSERIAL NOT NULL,
    "code" TEXT NOT NULL,
    "collectivity_id" TEXT,
    "type" TEXT NOT NULL,
    "kinds" TEXT[] NOT NULL,
    "metric" TEXT,
    "comparison" TEXT,
    "threshold" DOUBLE PRECISION,
    "for_seconds" INTEGER,
    "requires_occupancy" BOOLEAN NOT NULL DEFAULT false,
    "silence_periods" INTEGER,
    "event_topic" TEXT,
    "clear_event_topic" TEXT,
    "severity" TEXT NOT NULL,
    "sets_fault" BOOLEAN NOT NULL DEFAULT false,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    -- What its alarms' messages call the condition (`lamp failure`, `CO2`).
    "label" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_by" TEXT NOT NULL DEFAULT 'system',

    CONSTRAINT "alarm_rules_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "alarm_rules_type_check" CHECK ("type" IN ('THRESHOLD', 'FLAG', 'SILENCE', 'EVENT')),
    CONSTRAINT "alarm_rules_severity_check" CHECK ("severity" IN ('INFO', 'MINOR', 'MAJOR', 'CRITICAL')),
    CONSTRAINT "alarm_rules_kinds_check" CHECK (cardinality("kinds") > 0),
    -- Each type carries exactly the fields that apply to it (the service validates the same).
    CONSTRAINT "alarm_rules_threshold_check" CHECK (
        ("type" = 'THRESHOLD') = ("comparison" IS NOT NULL AND "threshold" IS NOT NULL AND "for_seconds" IS NOT NULL)
        AND ("comparison" IS NULL OR "comparison" IN ('ABOVE', 'BELOW'))
        AND ("threshold" IS NULL OR "threshold" NOT IN ('NaN', 'Infinity', '-Infinity'))
        AND ("for_seconds" IS NULL OR "for_seconds" BETWEEN 0 AND 604800)
        AND ("type" = 'THRESHOLD' OR NOT "requires_occupancy")),
    CONSTRAINT "alarm_rules_metric_check" CHECK (("type" IN ('THRESHOLD', 'FLAG')) = ("metric" IS NOT NULL)),
    CONSTRAINT "alarm_rules_silence_check" CHECK (
        ("type" = 'SILENCE') = ("silence_periods" IS NOT NULL) AND ("silence_periods" IS NULL OR "silence_periods" BETWEEN 2 AND 1000)),
    CONSTRAINT "alarm_rules_event_check" CHECK (("type" = 'EVENT') = ("event_topic" IS NOT NULL) AND ("type" = 'EVENT' OR "clear_event_topic" IS NULL))
);

-- One default per code, one version per collectivity and code (NULLS NOT DISTINCT: the defaults' NULL too).
CREATE UNIQUE INDEX "alarm_rules_code_collectivity_id_key" ON "alarm_rules"("code", "collectivity_id") NULLS NOT DISTINCT;

-- The territory's defaults (issue #7): expected periods come from the metric table
-- (packages/shared/src/senml.ts, `expectedPeriodSeconds`), not from here.
INSERT INTO "alarm_rules" ("code", "type", "kinds", "metric", "comparison", "threshold", "for_seconds", "requires_occupancy",
                           "silence_periods", "event_topic", "clear_event_topic", "severity", "sets_fault", "label") VALUES
    -- CO2 above 1,500 ppm for 10 minutes in an occupied classroom.
    ('CO2_HIGH', 'THRESHOLD', ARRAY['AIR_QUALITY_SENSOR'], 'co2', 'ABOVE', 1500, 600, true, NULL, NULL, NULL, 'MAJOR', false, 'CO2'),
    -- An occupied room below 16 °C for 30 minutes: the heating is not keeping up.
    ('TEMPERATURE_LOW', 'THRESHOLD', ARRAY['AIR_QUALITY_SENSOR'], 'temperature', 'BELOW', 16, 1800, true, NULL, NULL, NULL, 'MINOR', false, 'room temperature'),
    -- A lamp failure reported by the light point: the asset is put in FAULT.
    ('LAMP_FAILURE', 'FLAG', ARRAY['LIGHT_POINT'], 'fault', NULL, NULL, NULL, false, NULL, NULL, NULL, 'MAJOR', true, 'lamp failure'),
    -- A traffic-signal controller reporting a fault: safety at stake.
    ('SIGNAL_FAULT', 'FLAG', ARRAY['TRAFFIC_SIGNAL_CONTROLLER'], 'fault', NULL, NULL, NULL, false, NULL, NULL, NULL, 'CRITICAL', true, 'signal controller fault'),
    -- Any reporting device silent for longer than three of its expected periods.
    ('DEVICE_SILENT', 'SILENCE',
     ARRAY['LIGHT_POINT', 'PRESENCE_DETECTOR', 'AIR_QUALITY_SENSOR', 'HEATING_CONTROLLER', 'ENERGY_METER', 'PARKING_FACILITY',
           'PARKING_SENSOR', 'BUS', 'BUS_STOP', 'TRAFFIC_SIGNAL_CONTROLLER'],
     NULL, NULL, NULL, NULL, false, 3, NULL, NULL, 'MINOR', false, 'no reading'),
    -- Battery-powered sensors below 15 %.
    ('BATTERY_LOW', 'THRESHOLD', ARRAY['PRESENCE_DETECTOR', 'AIR_QUALITY_SENSOR', 'PARKING_SENSOR'], 'battery', 'BELOW', 15, 0, false,
     NULL, NULL, NULL, 'MINOR', false, 'battery'),
    -- Published by another domain (control: a command the device did not acknowledge).
    ('COMMAND_NOT_ACKNOWLEDGED', 'EVENT',
     ARRAY['LIGHT_POINT', 'PRESENCE_DETECTOR', 'AIR_QUALITY_SENSOR', 'HEATING_CONTROLLER', 'ENERGY_METER', 'PARKING_FACILITY',
           'PARKING_SENSOR', 'BUS', 'BUS_STOP', 'TRAFFIC_SIGNAL_CONTROLLER'],
     NULL, NULL, NULL, NULL, false, NULL, 'device.fault', 'device.fault.cleared', 'MINOR', false, 'command not acknowledged');

-- CreateTable: alarms. One alarm per (asset, code) is open (not CLEARED) at a time: a recurring
-- fault updates it (`occurrences`, `last_raised_at`, `value`) instead of opening another.
-- `collectivity_id` and `kind` are the asset's when it was raised (who may read it, filters).
CREATE TABLE "alarms" (
    "id" BIGSERIAL NOT NULL,
    "code" TEXT NOT NULL,
    "severity" TEXT NOT NULL,
    "state" TEXT NOT NULL DEFAULT 'RAISED',
    "message" TEXT NOT NULL,
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "metric" TEXT,
    "value" DOUBLE PRECISION,
    -- The rule's setsFault when it was last raised: the equipment domain puts the asset in FAULT.
    "sets_fault" BOOLEAN NOT NULL DEFAULT false,
    "raised_at" TIMESTAMPTZ(3) NOT NULL,
    "last_raised_at" TIMESTAMPTZ(3) NOT NULL,
    "occurrences" INTEGER NOT NULL DEFAULT 1,
    "acknowledged_at" TIMESTAMPTZ(3),
    "acknowledged_by" TEXT,
    "acknowledgement_note" TEXT,
    "cleared_at" TIMESTAMPTZ(3),
    "cleared_by" TEXT,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "alarms_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "alarms_state_check" CHECK ("state" IN ('RAISED', 'ACKNOWLEDGED', 'CLEARED')),
    CONSTRAINT "alarms_severity_check" CHECK ("severity" IN ('INFO', 'MINOR', 'MAJOR', 'CRITICAL')),
    CONSTRAINT "alarms_cleared_check" CHECK (("state" = 'CLEARED') = ("cleared_at" IS NOT NULL)),
    CONSTRAINT "alarms_acknowledged_check" CHECK ("state" <> 'ACKNOWLEDGED' OR "acknowledged_at" IS NOT NULL),
    CONSTRAINT "alarms_occurrences_check" CHECK ("occurrences" >= 1)
);

-- The one open alarm per asset and code; ingest's upsert targets it (ON CONFLICT ... WHERE state <> 'CLEARED').
CREATE UNIQUE INDEX "alarms_open_equipment_id_code_key" ON "alarms"("equipment_id", "code") WHERE "state" <> 'CLEARED';

-- Most recently raised first: per asset (Equipment.alarms), per collectivity and overall (Query.alarms).
CREATE INDEX "alarms_equipment_id_raised_at_id_idx" ON "alarms"("equipment_id", "raised_at" DESC, "id" DESC);
CREATE INDEX "alarms_collectivity_id_raised_at_id_idx" ON "alarms"("collectivity_id", "raised_at" DESC, "id" DESC);
CREATE INDEX "alarms_raised_at_id_idx" ON "alarms"("raised_at" DESC, "id" DESC);

-- CreateTable: what happened to each alarm, oldest first.
CREATE TABLE "alarm_history" (
    "id" BIGSERIAL NOT NULL,
    "alarm_id" BIGINT NOT NULL,
    "action" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "actor" TEXT NOT NULL,
    "note" TEXT,
    "value" DOUBLE PRECISION,

    CONSTRAINT "alarm_history_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "alarm_history_action_check" CHECK ("action" IN ('RAISED', 'RECURRED', 'ACKNOWLEDGED', 'CLEARED')),
    CONSTRAINT "alarm_history_alarm_id_fkey" FOREIGN KEY ("alarm_id") REFERENCES "alarms"("id") ON DELETE CASCADE
);

CREATE INDEX "alarm_history_alarm_id_id_idx" ON "alarm_history"("alarm_id", "id");

-- CreateTable: the state of duration rules (THRESHOLD) per asset and code: the condition has held
-- from `since` to `last_time` (reading times), and `raised` once its alarm was raised for this run
-- of readings (a manual clear does not re-raise it until the condition ends and starts again).
-- A reading that ends the condition deletes the row.
CREATE TABLE "alarm_conditions" (
    "equipment_id" TEXT NOT NULL,
    "code" TEXT NOT NULL,
    "since" TIMESTAMPTZ(3) NOT NULL,
    "last_time" TIMESTAMPTZ(3) NOT NULL,
    "raised" BOOLEAN NOT NULL DEFAULT false,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "alarm_conditions_pkey" PRIMARY KEY ("equipment_id", "code")
) WITH (fillfactor = 70);
