-- CreateIndex: the GRC outbox's purge of delivered rows (they hold personal data: deleted 7 days
-- after delivery by the `grc-outbox` worker, in batches, oldest first) finds them without a scan.
CREATE INDEX "ticket_outbox_delivered_idx" ON "ticket_outbox" ("delivered_at") WHERE "delivered_at" IS NOT NULL;
