-- Telemetry readings (subgraphs/telemetry/src/ingest.ts writes them, partitions.ts maintains them).
-- Keys are COLLATE "C": ids and metric names are ASCII, and byte-wise comparison makes every index
-- probe of ingest cheaper than the database's linguistic collation would (equality is the same).

-- CreateTable: every reading, partitioned by UTC day (`readings_pYYYYMMDD`, created ahead and on
-- demand by the `partitions` worker, dropped by retention). Idempotent on (equipment, metric, time):
-- ingest inserts ON CONFLICT DO NOTHING. Booleans are stored as 1 and 0.
CREATE TABLE "readings" (
    "equipment_id" TEXT COLLATE "C" NOT NULL,
    "metric" TEXT COLLATE "C" NOT NULL,
    "time" TIMESTAMPTZ(3) NOT NULL,
    "value" DOUBLE PRECISION NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "readings_pkey" PRIMARY KEY ("equipment_id", "metric", "time")
) PARTITION BY RANGE ("time");

-- CreateTable: the most recent value of each metric of each asset (constant-time current state);
-- only ever moved forward in time. Every row is updated over and over: half of each page is left free
-- so that a batch updating every row of a page keeps its updates HOT (no index entry, no bloat).
CREATE TABLE "latest_readings" (
    "equipment_id" TEXT COLLATE "C" NOT NULL,
    "metric" TEXT COLLATE "C" NOT NULL,
    "time" TIMESTAMPTZ(3) NOT NULL,
    "value" DOUBLE PRECISION NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "latest_readings_pkey" PRIMARY KEY ("equipment_id", "metric")
) WITH (fillfactor = 50);

-- CreateTable: per asset, metric and UTC hour, kept up to date incrementally from the readings
-- each ingest actually inserted. `first_*` / `last_*`: the earliest and latest reading by time.
-- Fill factor 70: room for the next versions of a page's rows until the previous ones are pruned.
CREATE TABLE "reading_rollups_hourly" (
    "equipment_id" TEXT COLLATE "C" NOT NULL,
    "metric" TEXT COLLATE "C" NOT NULL,
    "hour" TIMESTAMPTZ(3) NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "count" INTEGER NOT NULL,
    "sum" DOUBLE PRECISION NOT NULL,
    "min" DOUBLE PRECISION NOT NULL,
    "max" DOUBLE PRECISION NOT NULL,
    "first_time" TIMESTAMPTZ(3) NOT NULL,
    "first_value" DOUBLE PRECISION NOT NULL,
    "last_time" TIMESTAMPTZ(3) NOT NULL,
    "last_value" DOUBLE PRECISION NOT NULL,

    CONSTRAINT "reading_rollups_hourly_pkey" PRIMARY KEY ("equipment_id", "metric", "hour")
) WITH (fillfactor = 70);

-- Hourly roll-ups older than the longest retention are deleted (partitions.ts): rows arrive roughly in
-- time order, so a BRIN index finds them for almost nothing at ingest.
CREATE INDEX "reading_rollups_hourly_hour_idx" ON "reading_rollups_hourly" USING BRIN ("hour");

-- CreateTable: the same per Europe/Paris calendar day, with the asset's kind (energy figures split
-- light points from buildings' meters without another table).
CREATE TABLE "reading_rollups_daily" (
    "equipment_id" TEXT COLLATE "C" NOT NULL,
    "metric" TEXT COLLATE "C" NOT NULL,
    "day" DATE NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "count" INTEGER NOT NULL,
    "sum" DOUBLE PRECISION NOT NULL,
    "min" DOUBLE PRECISION NOT NULL,
    "max" DOUBLE PRECISION NOT NULL,
    "first_time" TIMESTAMPTZ(3) NOT NULL,
    "first_value" DOUBLE PRECISION NOT NULL,
    "last_time" TIMESTAMPTZ(3) NOT NULL,
    "last_value" DOUBLE PRECISION NOT NULL,

    CONSTRAINT "reading_rollups_daily_pkey" PRIMARY KEY ("equipment_id", "metric", "day")
) WITH (fillfactor = 70);

-- Energy per collectivity and day or month: a range of days of one metric of one collectivity.
CREATE INDEX "reading_rollups_daily_collectivity_id_metric_day_idx" ON "reading_rollups_daily"("collectivity_id", "metric", "day");

-- CreateTable: MQTT messages that could not be stored (whole or in part), with their reasons, for
-- operators (`Query.deadLetters`). At most 64 KiB of the payload is kept, as text.
CREATE TABLE "ingest_dead_letters" (
    "id" BIGSERIAL NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "transport" TEXT NOT NULL,
    "topic" TEXT,
    "collectivity_id" TEXT,
    "equipment_id" TEXT,
    "payload" TEXT NOT NULL,
    "payload_bytes" INTEGER NOT NULL,
    "reasons" JSONB NOT NULL,

    CONSTRAINT "ingest_dead_letters_pkey" PRIMARY KEY ("id")
);

-- Newest first, per collectivity (and overall for a caller of several).
CREATE INDEX "ingest_dead_letters_collectivity_id_id_idx" ON "ingest_dead_letters"("collectivity_id", "id" DESC);

-- CreateTable: which metric's rows have been deleted from which daily partition by a per-metric
-- retention shorter than the longest (partitions.ts), so that each partition is scanned once per metric.
CREATE TABLE "reading_partition_purges" (
    "partition_name" TEXT NOT NULL,
    "metric" TEXT NOT NULL,
    "purged_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "reading_partition_purges_pkey" PRIMARY KEY ("partition_name", "metric")
);
