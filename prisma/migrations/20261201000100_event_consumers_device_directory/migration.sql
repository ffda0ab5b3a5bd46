-- CreateTable: where each durable consumer of the event bus stands (packages/shared/src/durable-consumer.ts);
-- ids <= position are applied, and the row is locked while one is.
CREATE TABLE "event_consumers" (
    "consumer" TEXT NOT NULL,
    "position" BIGINT NOT NULL DEFAULT 0,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "event_consumers_pkey" PRIMARY KEY ("consumer")
);

-- CreateTable: telemetry's directory of assets, fed by equipment's `equipment.changed` events
-- (telemetry never reads equipment's tables): who owns each device and what kind it is.
CREATE TABLE "telemetry_devices" (
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "status" TEXT NOT NULL,
    "parent_id" TEXT,
    "event_id" BIGINT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "telemetry_devices_pkey" PRIMARY KEY ("equipment_id")
);

CREATE INDEX "telemetry_devices_collectivity_id_kind_idx" ON "telemetry_devices"("collectivity_id", "kind");
