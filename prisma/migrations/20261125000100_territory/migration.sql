-- CreateEnum
CREATE TYPE "collectivity_kind" AS ENUM ('COMMUNE', 'AGGLOMERATION');

-- CreateEnum
CREATE TYPE "competence" AS ENUM ('MUNICIPAL', 'AGGLOMERATION');

-- CreateTable
CREATE TABLE "collectivity" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "kind" "collectivity_kind" NOT NULL,
    "insee_code" TEXT,
    "siren" TEXT NOT NULL,

    CONSTRAINT "collectivity_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "commune" (
    "insee_code" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "collectivity_id" TEXT,
    "agglomeration" BOOLEAN NOT NULL DEFAULT true,
    "geom" geometry(MultiPolygon, 4326) NOT NULL,

    CONSTRAINT "commune_pkey" PRIMARY KEY ("insee_code")
);

-- CreateTable
CREATE TABLE "district" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "insee_code" TEXT NOT NULL,
    "geom" geometry(MultiPolygon, 4326) NOT NULL,

    CONSTRAINT "district_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "street" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "insee_code" TEXT NOT NULL,
    "length_m" DOUBLE PRECISION NOT NULL,
    "geom" geometry(LineString, 4326) NOT NULL,

    CONSTRAINT "street_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "service_category" (
    "code" TEXT NOT NULL,
    "label" TEXT NOT NULL,
    "competence" "competence" NOT NULL,

    CONSTRAINT "service_category_pkey" PRIMARY KEY ("code")
);

-- CreateIndex
CREATE UNIQUE INDEX "collectivity_insee_code_key" ON "collectivity"("insee_code");

-- CreateIndex
CREATE UNIQUE INDEX "collectivity_siren_key" ON "collectivity"("siren");

-- CreateIndex
CREATE INDEX "commune_geom_idx" ON "commune" USING GIST ("geom");

-- CreateIndex
CREATE INDEX "district_geom_idx" ON "district" USING GIST ("geom");

-- CreateIndex
CREATE INDEX "district_insee_code_idx" ON "district"("insee_code");

-- CreateIndex
CREATE INDEX "street_geom_idx" ON "street" USING GIST ("geom");

-- CreateIndex
CREATE INDEX "street_insee_code_idx" ON "street"("insee_code");

-- AddForeignKey
ALTER TABLE "commune" ADD CONSTRAINT "commune_collectivity_id_fkey" FOREIGN KEY ("collectivity_id") REFERENCES "collectivity"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "district" ADD CONSTRAINT "district_insee_code_fkey" FOREIGN KEY ("insee_code") REFERENCES "commune"("insee_code") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "street" ADD CONSTRAINT "street_insee_code_fkey" FOREIGN KEY ("insee_code") REFERENCES "commune"("insee_code") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Contract published by the territory domain for the other domains (they never read its
-- tables): the INSEE code of the commune containing a point, null outside the territory.
CREATE FUNCTION "territory_commune_at"(lon DOUBLE PRECISION, lat DOUBLE PRECISION)
RETURNS TEXT LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT insee_code FROM commune
  WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(lon, lat), 4326))
  ORDER BY insee_code LIMIT 1
$$;
