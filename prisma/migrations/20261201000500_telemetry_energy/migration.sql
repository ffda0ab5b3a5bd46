-- Energy figures (subgraphs/telemetry/src/energy.ts): the recorded pre-renovation consumption of
-- each light point and of each building's energy meter, against which savings are counted.

-- CreateTable: one baseline per asset, in kWh per year, with where the figure comes from. The seed
-- records one for every light point and energy meter (prisma/seed/energy.ts, its README says how);
-- an asset without a row counts in consumption but not in savings. No foreign key: telemetry
-- references assets and collectivities by id, as its other tables do, and never reads theirs.
CREATE TABLE "energy_baselines" (
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "baseline_kwh_per_year" DOUBLE PRECISION NOT NULL,
    "source" TEXT NOT NULL,
    "recorded_on" DATE NOT NULL,
    "recorded_by" TEXT NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "energy_baselines_pkey" PRIMARY KEY ("equipment_id"),
    -- Only assets with an energy counter have a baseline: light points and buildings' meters.
    CONSTRAINT "energy_baselines_kind_check" CHECK ("kind" IN ('LIGHT_POINT', 'ENERGY_METER')),
    -- PostgreSQL orders NaN above every number ('NaN' > 0 is true): the upper bound refuses it with infinity.
    CONSTRAINT "energy_baselines_kwh_check" CHECK ("baseline_kwh_per_year" > 0 AND "baseline_kwh_per_year" < 'Infinity'::float8),
    CONSTRAINT "energy_baselines_source_check" CHECK (length("source") BETWEEN 1 AND 500)
);

-- Each collectivity's share of the contract's savings target is its share of the total baseline.
CREATE INDEX "energy_baselines_collectivity_id_idx" ON "energy_baselines"("collectivity_id");
