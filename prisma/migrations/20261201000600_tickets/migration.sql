-- The tickets domain (subgraphs/tickets): citizen reports, their history, photos, interventions
-- (work orders, planned works included), Open311 clients, the GRC webhook's outbox, the personal
-- data register's audit trail and retention log. docs/tickets.md describes each table's use;
-- docs/personal-data.md registers every column holding personal data (a test checks it).

-- CreateTable: what a citizen can report. `service_category` is territory's category code
-- (STREET_LIGHTING, CLEANLINESS, ...), whose competence decides who answers (territory's
-- `competentCollectivity`); `service` names the department that handles it; `equipment_kinds`
-- the assets a report of it is linked to (the nearest within `equipment_radius_m`); the service
-- levels are in hours.
CREATE TABLE "ticket_categories" (
    "code" TEXT NOT NULL,
    "label" TEXT NOT NULL,
    "description" TEXT NOT NULL,
    "service_category" TEXT NOT NULL,
    "service" TEXT NOT NULL,
    "group_label" TEXT NOT NULL,
    "keywords" TEXT[] NOT NULL DEFAULT '{}',
    "equipment_kinds" TEXT[] NOT NULL DEFAULT '{}',
    "equipment_radius_m" INTEGER NOT NULL DEFAULT 50,
    "ack_hours" INTEGER NOT NULL,
    "resolve_hours" INTEGER NOT NULL,
    "position" INTEGER NOT NULL,

    CONSTRAINT "ticket_categories_pkey" PRIMARY KEY ("code"),
    CONSTRAINT "ticket_categories_code_check" CHECK ("code" ~ '^[A-Z][A-Z0-9_]{1,39}$'),
    CONSTRAINT "ticket_categories_hours_check" CHECK ("ack_hours" > 0 AND "resolve_hours" >= "ack_hours"),
    CONSTRAINT "ticket_categories_radius_check" CHECK ("equipment_radius_m" BETWEEN 1 AND 500)
);

INSERT INTO "ticket_categories" ("code", "label", "description", "service_category", "service", "group_label", "keywords", "equipment_kinds", "equipment_radius_m", "ack_hours", "resolve_hours", "position") VALUES
    ('LIGHT_OUT', 'Light out', 'A street light that stays off at night, flickers or stays on by day.', 'STREET_LIGHTING', 'Éclairage public', 'Éclairage public', ARRAY['lamp','light','éclairage','lampadaire'], ARRAY['LIGHT_POINT'], 30, 24, 72, 1),
    ('OPEN_CABINET', 'Open electrical cabinet', 'An electrical cabinet left open or damaged: a danger for passers-by.', 'STREET_LIGHTING', 'Éclairage public', 'Éclairage public', ARRAY['cabinet','armoire','electricity'], ARRAY['ELECTRICAL_CABINET'], 50, 2, 24, 2),
    ('TAG', 'Tag or graffiti', 'A tag or graffiti on a public wall, building or street furniture.', 'CLEANLINESS', 'Propreté urbaine', 'Propreté', ARRAY['tag','graffiti'], ARRAY[]::TEXT[], 50, 48, 240, 3),
    ('ILLEGAL_DUMPING', 'Illegal dumping', 'Waste, rubble or bulky items left on the public space.', 'CLEANLINESS', 'Propreté urbaine', 'Propreté', ARRAY['dumping','dépôt sauvage','waste'], ARRAY[]::TEXT[], 50, 24, 120, 4),
    ('DAMAGED_FURNITURE', 'Damaged street furniture', 'A broken bench, bollard, barrier, sign or other street furniture.', 'STREET_FURNITURE', 'Voirie et mobilier urbain', 'Voirie', ARRAY['bench','bollard','mobilier'], ARRAY[]::TEXT[], 50, 48, 336, 5),
    ('POTHOLE', 'Pothole or damaged pavement', 'A hole, crack or raised slab on a road, cycle path or pavement.', 'ROADS', 'Voirie et mobilier urbain', 'Voirie', ARRAY['pothole','nid de poule','trottoir'], ARRAY[]::TEXT[], 50, 24, 336, 6),
    ('BUS_STOP_DAMAGED', 'Damaged bus stop', 'A bus shelter, pole or timetable display that is broken or missing.', 'BUS_NETWORK', 'Transports urbains', 'Transports', ARRAY['bus','arrêt','abribus'], ARRAY['BUS_STOP'], 50, 24, 168, 7),
    ('FULL_BIN', 'Full or overflowing bin', 'A public bin or a collection point that is full or overflowing.', 'WASTE_COLLECTION', 'Collecte des déchets', 'Déchets', ARRAY['bin','poubelle','container'], ARRAY[]::TEXT[], 50, 12, 48, 8);

-- CreateTable: a citizen's report. The public sees category, status, coarse location and dates;
-- the reporter's identity and contact (`reporter_*`) only the reporter and the responsible
-- collectivity's agents and operators (every staff read is audited in `personal_data_access_log`).
-- `duplicate_of`: a report of the same category within 50 m and 7 days of an open one, attached to
-- it (its status is DUPLICATE; its reporter follows the original). `known_alarm_id`: the linked
-- asset had this active telemetry alarm when the report came (the problem was already known).
CREATE TABLE "tickets" (
    "id" BIGSERIAL NOT NULL,
    "category_code" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "service" TEXT NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'NEW',
    "description" TEXT NOT NULL,
    "geom" geometry(Point, 4326) NOT NULL,
    "insee_code" TEXT,
    "address" TEXT,
    "equipment_id" TEXT,
    "known_alarm_id" TEXT,
    "duplicate_of" BIGINT,
    "source" TEXT NOT NULL,
    "open311_client_id" BIGINT,
    "reporter_sub" TEXT,
    "reporter_name" TEXT,
    "reporter_email" TEXT,
    "reporter_phone" TEXT,
    "reporter_erased_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "acknowledged_at" TIMESTAMPTZ(3),
    "resolved_at" TIMESTAMPTZ(3),
    "closed_at" TIMESTAMPTZ(3),
    "ack_due_at" TIMESTAMPTZ(3) NOT NULL,
    "resolve_due_at" TIMESTAMPTZ(3) NOT NULL,
    "version" INTEGER NOT NULL DEFAULT 1,

    CONSTRAINT "tickets_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "tickets_category_fkey" FOREIGN KEY ("category_code") REFERENCES "ticket_categories"("code"),
    CONSTRAINT "tickets_duplicate_of_fkey" FOREIGN KEY ("duplicate_of") REFERENCES "tickets"("id"),
    CONSTRAINT "tickets_status_check" CHECK ("status" IN ('NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS', 'RESOLVED', 'CLOSED', 'REJECTED', 'DUPLICATE')),
    CONSTRAINT "tickets_source_check" CHECK ("source" IN ('APP', 'OPEN311', 'STAFF')),
    CONSTRAINT "tickets_description_check" CHECK (char_length("description") BETWEEN 1 AND 4000),
    CONSTRAINT "tickets_duplicate_check" CHECK (("status" = 'DUPLICATE') = ("duplicate_of" IS NOT NULL))
);
CREATE INDEX "tickets_geom_idx" ON "tickets" USING GIST ("geom");
-- The duplicate lookup: open tickets near a point on the spheroid (`ST_DWithin(geom::geography, ...)`),
-- a partial GiST index on the geography of open tickets only; category and age filter the few found.
CREATE INDEX "tickets_open_geog_idx" ON "tickets" USING GIST (("geom"::geography))
    WHERE "status" IN ('NEW', 'ACKNOWLEDGED', 'ASSIGNED', 'IN_PROGRESS');
CREATE INDEX "tickets_collectivity_created_idx" ON "tickets" ("collectivity_id", "created_at" DESC, "id" DESC);
CREATE INDEX "tickets_equipment_idx" ON "tickets" ("equipment_id", "created_at" DESC) WHERE "equipment_id" IS NOT NULL;
CREATE INDEX "tickets_reporter_idx" ON "tickets" ("reporter_sub") WHERE "reporter_sub" IS NOT NULL;
CREATE INDEX "tickets_duplicate_of_idx" ON "tickets" ("duplicate_of") WHERE "duplicate_of" IS NOT NULL;
CREATE INDEX "tickets_closed_idx" ON "tickets" ("closed_at") WHERE "closed_at" IS NOT NULL AND "reporter_erased_at" IS NULL;
CREATE INDEX "tickets_updated_idx" ON "tickets" ("updated_at", "id");
-- Every collectivity's newest first (`tickets` without a collectivity filter, Open311 `GET requests`).
CREATE INDEX "tickets_created_idx" ON "tickets" ("created_at" DESC, "id" DESC);

-- CreateTable: every change of a ticket (created, each transition, duplicates attached, notes):
-- who (`actor_sub`, null for the public or the system), with which roles, when, and the note.
CREATE TABLE "ticket_history" (
    "id" BIGSERIAL NOT NULL,
    "ticket_id" BIGINT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "action" TEXT NOT NULL,
    "from_status" TEXT,
    "to_status" TEXT,
    "actor_sub" TEXT,
    "actor_roles" TEXT[] NOT NULL DEFAULT '{}',
    "note" TEXT,

    CONSTRAINT "ticket_history_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "ticket_history_ticket_fkey" FOREIGN KEY ("ticket_id") REFERENCES "tickets"("id") ON DELETE CASCADE,
    CONSTRAINT "ticket_history_action_check" CHECK ("action" IN ('CREATED', 'TRANSITION', 'DUPLICATE_ATTACHED', 'NOTE', 'REPORTER_ERASED')),
    CONSTRAINT "ticket_history_note_check" CHECK ("note" IS NULL OR char_length("note") <= 4000)
);
CREATE INDEX "ticket_history_ticket_idx" ON "ticket_history" ("ticket_id", "id");

-- CreateTable: photos, decoded and re-encoded (no metadata survives) before they are stored. An
-- upload belongs to whoever sent it (`uploader_sub`, or for the public the hash of the upload's
-- secret) until a report takes it (`ticket_id`); an upload no report took is deleted after a day.
CREATE TABLE "ticket_photos" (
    "id" UUID NOT NULL,
    "ticket_id" BIGINT,
    "uploader_sub" TEXT,
    "upload_secret_hash" TEXT,
    "content_type" TEXT NOT NULL,
    "width" INTEGER NOT NULL,
    "height" INTEGER NOT NULL,
    "bytes" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ticket_photos_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "ticket_photos_ticket_fkey" FOREIGN KEY ("ticket_id") REFERENCES "tickets"("id") ON DELETE CASCADE,
    CONSTRAINT "ticket_photos_type_check" CHECK ("content_type" IN ('image/jpeg', 'image/png', 'image/webp'))
);
CREATE INDEX "ticket_photos_ticket_idx" ON "ticket_photos" ("ticket_id") WHERE "ticket_id" IS NOT NULL;
CREATE INDEX "ticket_photos_unattached_idx" ON "ticket_photos" ("created_at") WHERE "ticket_id" IS NULL;

-- CreateTable: telemetry's active alarms per asset, as this domain knows them from
-- `telemetry.alarm` events (the `known-alarms` durable consumer): a report about an asset with an
-- active alarm says the problem is already known; an intervention can be created from an alarm.
CREATE TABLE "ticket_known_alarms" (
    "alarm_id" TEXT NOT NULL,
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "code" TEXT NOT NULL,
    "severity" TEXT,
    "message" TEXT,
    "raised_at" TIMESTAMPTZ(3) NOT NULL,
    "event_id" BIGINT NOT NULL,

    CONSTRAINT "ticket_known_alarms_pkey" PRIMARY KEY ("alarm_id")
);
CREATE INDEX "ticket_known_alarms_equipment_idx" ON "ticket_known_alarms" ("equipment_id");

-- CreateTable: work orders, from a ticket, from an alarm or planned (maintenance, works on the
-- public space). An agent sees and changes only those assigned to him (`assignee_sub`); a team
-- assignment is seen by the collectivity's operators. `affects_carriageway`, `stop_ids` and
-- `route_ids` are what open data publishes of planned works (DATEX II situations, GTFS-RT alerts).
CREATE TABLE "interventions" (
    "id" BIGSERIAL NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "origin" TEXT NOT NULL,
    "ticket_id" BIGINT,
    "alarm_id" TEXT,
    "equipment_id" TEXT,
    "title" TEXT NOT NULL,
    "description" TEXT,
    "geom" geometry(Point, 4326),
    "status" TEXT NOT NULL DEFAULT 'PLANNED',
    "assignee_sub" TEXT,
    "team" TEXT,
    "scheduled_start" TIMESTAMPTZ(3),
    "scheduled_end" TIMESTAMPTZ(3),
    "started_at" TIMESTAMPTZ(3),
    "closed_at" TIMESTAMPTZ(3),
    "close_notes" TEXT,
    "minutes_spent" INTEGER,
    "affects_carriageway" BOOLEAN NOT NULL DEFAULT false,
    "stop_ids" TEXT[] NOT NULL DEFAULT '{}',
    "route_ids" TEXT[] NOT NULL DEFAULT '{}',
    "created_by" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "version" INTEGER NOT NULL DEFAULT 1,

    CONSTRAINT "interventions_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "interventions_ticket_fkey" FOREIGN KEY ("ticket_id") REFERENCES "tickets"("id"),
    CONSTRAINT "interventions_origin_check" CHECK ("origin" IN ('TICKET', 'ALARM', 'PLANNED')),
    CONSTRAINT "interventions_origin_ref_check" CHECK (
        ("origin" = 'TICKET') = ("ticket_id" IS NOT NULL) AND ("origin" = 'ALARM') = ("alarm_id" IS NOT NULL)),
    CONSTRAINT "interventions_status_check" CHECK ("status" IN ('PLANNED', 'ASSIGNED', 'IN_PROGRESS', 'DONE', 'CANCELLED')),
    CONSTRAINT "interventions_schedule_check" CHECK ("scheduled_end" IS NULL OR "scheduled_start" IS NULL OR "scheduled_end" > "scheduled_start"),
    CONSTRAINT "interventions_minutes_check" CHECK ("minutes_spent" IS NULL OR "minutes_spent" BETWEEN 0 AND 100000),
    CONSTRAINT "interventions_title_check" CHECK (char_length("title") BETWEEN 1 AND 200)
);
CREATE INDEX "interventions_collectivity_idx" ON "interventions" ("collectivity_id", "created_at" DESC, "id" DESC);
CREATE INDEX "interventions_assignee_idx" ON "interventions" ("assignee_sub", "created_at" DESC) WHERE "assignee_sub" IS NOT NULL;
CREATE INDEX "interventions_equipment_idx" ON "interventions" ("equipment_id", "created_at" DESC) WHERE "equipment_id" IS NOT NULL;
CREATE INDEX "interventions_ticket_idx" ON "interventions" ("ticket_id") WHERE "ticket_id" IS NOT NULL;
CREATE INDEX "interventions_geom_idx" ON "interventions" USING GIST ("geom");

-- CreateTable: every change of an intervention (who, when, what, note).
CREATE TABLE "intervention_history" (
    "id" BIGSERIAL NOT NULL,
    "intervention_id" BIGINT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "action" TEXT NOT NULL,
    "from_status" TEXT,
    "to_status" TEXT,
    "actor_sub" TEXT,
    "actor_roles" TEXT[] NOT NULL DEFAULT '{}',
    "note" TEXT,

    CONSTRAINT "intervention_history_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "intervention_history_fkey" FOREIGN KEY ("intervention_id") REFERENCES "interventions"("id") ON DELETE CASCADE
);
CREATE INDEX "intervention_history_intervention_idx" ON "intervention_history" ("intervention_id", "id");

-- CreateTable: Open311 client applications. An admin issues a key per application (stored
-- hashed, shown once); `collectivity_id` NULL for the public key rows is not allowed: the public
-- key of a collectivity is `open311_public_keys`.
CREATE TABLE "open311_clients" (
    "id" BIGSERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "key_prefix" TEXT NOT NULL,
    "key_hash" TEXT NOT NULL,
    "contact_email" TEXT,
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "revoked_at" TIMESTAMPTZ(3),
    "last_used_at" TIMESTAMPTZ(3),

    CONSTRAINT "open311_clients_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "open311_clients_key_prefix_key" UNIQUE ("key_prefix")
);

-- CreateTable: per collectivity, whether anonymous POSTs are accepted with its published public key.
CREATE TABLE "open311_public_keys" (
    "collectivity_id" TEXT NOT NULL,
    "api_key" TEXT NOT NULL,
    "enabled" BOOLEAN NOT NULL DEFAULT false,
    "updated_by" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "open311_public_keys_pkey" PRIMARY KEY ("collectivity_id"),
    CONSTRAINT "open311_public_keys_api_key_key" UNIQUE ("api_key")
);

-- CreateTable: the transactional outbox of the GRC (citizen-relations) webhook: one row per ticket
-- change, written in the change's transaction; the `grc-outbox` worker delivers them signed, in
-- order per ticket, with retries and backoff.
CREATE TABLE "ticket_outbox" (
    "id" BIGSERIAL NOT NULL,
    "ticket_id" BIGINT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "payload" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "delivered_at" TIMESTAMPTZ(3),
    "last_error" TEXT,

    CONSTRAINT "ticket_outbox_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "ticket_outbox_pending_idx" ON "ticket_outbox" ("ticket_id", "id") WHERE "delivered_at" IS NULL;
CREATE INDEX "ticket_outbox_due_idx" ON "ticket_outbox" ("next_attempt_at") WHERE "delivered_at" IS NULL;

-- CreateTable: every staff read of a reporter's identity or contact (who, when, which ticket, how).
CREATE TABLE "personal_data_access_log" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor_sub" TEXT NOT NULL,
    "actor_roles" TEXT[] NOT NULL,
    "ticket_id" BIGINT NOT NULL,
    "fields" TEXT[] NOT NULL,
    "channel" TEXT NOT NULL,
    "request_id" TEXT,

    CONSTRAINT "personal_data_access_log_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "personal_data_access_log_ticket_idx" ON "personal_data_access_log" ("ticket_id", "at");
CREATE INDEX "personal_data_access_log_actor_idx" ON "personal_data_access_log" ("actor_sub", "at");

-- CreateTable: what the retention worker and the erasure requests did (no personal data: counts,
-- ticket ids and who asked).
CREATE TABLE "personal_data_erasures" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "reason" TEXT NOT NULL,
    "requested_by" TEXT,
    "ticket_ids" BIGINT[] NOT NULL,
    "photos_deleted" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "personal_data_erasures_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "personal_data_erasures_reason_check" CHECK ("reason" IN ('RETENTION', 'REPORTER_REQUEST', 'OPERATOR_REQUEST'))
);
