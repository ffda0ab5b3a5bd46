-- CreateExtension
CREATE EXTENSION IF NOT EXISTS "postgis";

-- CreateTable: the event bus (append-only; id is every subscription's resume cursor)
CREATE TABLE "events" (
    "id" BIGSERIAL NOT NULL,
    "topic" TEXT NOT NULL,
    "collectivity_id" TEXT,
    "payload" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "events_topic_id_idx" ON "events"("topic", "id");
