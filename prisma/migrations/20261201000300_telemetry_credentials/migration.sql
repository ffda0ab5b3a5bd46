-- Device credentials and per-collectivity ingest keys (subgraphs/telemetry/src/credentials.ts).
-- A token is shown once, when it is issued: only its SHA-256 is kept (32 bytes), so neither a
-- database dump nor a query can give a token back.

-- CreateTable: one row per credential ever issued to an asset; a rotation revokes the previous one.
CREATE TABLE "device_credentials" (
    "id" TEXT NOT NULL,
    "equipment_id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "secret_hash" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT NOT NULL,
    "revoked_at" TIMESTAMPTZ(3),
    "revoked_by" TEXT,
    "last_used_at" TIMESTAMPTZ(3),

    CONSTRAINT "device_credentials_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "device_credentials_secret_hash_check" CHECK (octet_length("secret_hash") = 32),
    CONSTRAINT "device_credentials_revoked_check" CHECK (("revoked_at" IS NULL) = ("revoked_by" IS NULL))
);

-- At most one active credential per asset (the partial index Prisma's schema cannot express).
CREATE UNIQUE INDEX "device_credentials_active_key" ON "device_credentials"("equipment_id") WHERE "revoked_at" IS NULL;

-- An asset's credentials, newest first (`Equipment.deviceCredential`).
CREATE INDEX "device_credentials_equipment_id_created_at_idx" ON "device_credentials"("equipment_id", "created_at" DESC);

-- CreateTable: keys of gateways that relay many devices of one collectivity.
CREATE TABLE "ingest_keys" (
    "id" TEXT NOT NULL,
    "collectivity_id" TEXT NOT NULL,
    "label" TEXT NOT NULL,
    "secret_hash" BYTEA NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_by" TEXT NOT NULL,
    "revoked_at" TIMESTAMPTZ(3),
    "revoked_by" TEXT,
    "last_used_at" TIMESTAMPTZ(3),

    CONSTRAINT "ingest_keys_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "ingest_keys_secret_hash_check" CHECK (octet_length("secret_hash") = 32),
    CONSTRAINT "ingest_keys_revoked_check" CHECK (("revoked_at" IS NULL) = ("revoked_by" IS NULL)),
    CONSTRAINT "ingest_keys_label_check" CHECK (char_length("label") BETWEEN 1 AND 200)
);

-- A collectivity's keys, newest first (`Query.ingestKeys`).
CREATE INDEX "ingest_keys_collectivity_id_created_at_idx" ON "ingest_keys"("collectivity_id", "created_at" DESC);
