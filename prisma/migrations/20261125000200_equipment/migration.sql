-- CreateEnum
CREATE TYPE "equipment_kind" AS ENUM ('LIGHT_POINT', 'PRESENCE_DETECTOR', 'CAMERA', 'TRAFFIC_SIGNAL_CONTROLLER', 'BUS', 'BUS_STOP', 'PARKING_FACILITY', 'PARKING_SENSOR', 'AIR_QUALITY_SENSOR', 'HEATING_CONTROLLER', 'ENERGY_METER', 'WIFI_HOTSPOT', 'ELECTRICAL_CABINET', 'BUILDING');

-- CreateEnum
CREATE TYPE "equipment_status" AS ENUM ('IN_SERVICE', 'FAULT', 'MAINTENANCE', 'DECOMMISSIONED');

-- CreateTable
CREATE TABLE "equipment" (
    "id" TEXT NOT NULL,
    "kind" "equipment_kind" NOT NULL,
    "reference" TEXT NOT NULL,
    "name" TEXT,
    "status" "equipment_status" NOT NULL DEFAULT 'IN_SERVICE',
    "collectivity_id" TEXT NOT NULL,
    "insee_code" TEXT,
    "location" geometry(Point, 4326),
    "installed_on" DATE,
    "parent_id" TEXT,
    "details" JSONB NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "decommissioned_at" TIMESTAMPTZ(3),

    CONSTRAINT "equipment_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "equipment_collectivity_id_reference_key" ON "equipment"("collectivity_id", "reference");

-- CreateIndex
CREATE INDEX "equipment_kind_status_idx" ON "equipment"("kind", "status");

-- CreateIndex
CREATE INDEX "equipment_parent_id_idx" ON "equipment"("parent_id");

-- CreateIndex
CREATE INDEX "equipment_location_idx" ON "equipment" USING GIST ("location");

-- `near` filters are ST_DWithin on geography: this expression index is what serves them.
CREATE INDEX "equipment_location_geography_idx" ON "equipment" USING GIST (("location"::geography));

-- AddForeignKey
ALTER TABLE "equipment" ADD CONSTRAINT "equipment_collectivity_id_fkey" FOREIGN KEY ("collectivity_id") REFERENCES "collectivity"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "equipment" ADD CONSTRAINT "equipment_parent_id_fkey" FOREIGN KEY ("parent_id") REFERENCES "equipment"("id") ON DELETE SET NULL ON UPDATE CASCADE;
