-- Personal-data rights exercised by staff on a written request (docs/personal-data.md): the
-- request's reference (a letter's or a ticket's number in the collectivity's own records) is kept
-- with what was done, so that each export and erasure can be traced back to the request that
-- asked for it. A reporter's own requests (through his account) carry none.

-- AlterTable: the reference of the written request an operator exported a reporter's data for (channel `export`).
ALTER TABLE "personal_data_access_log" ADD COLUMN "request_reference" TEXT;
ALTER TABLE "personal_data_access_log" ADD CONSTRAINT "personal_data_access_log_reference_check"
    CHECK ("request_reference" IS NULL OR char_length("request_reference") BETWEEN 1 AND 200);

-- AlterTable: the reference of the written request an operator erased a reporter's data for (reason OPERATOR_REQUEST).
ALTER TABLE "personal_data_erasures" ADD COLUMN "request_reference" TEXT;
ALTER TABLE "personal_data_erasures" ADD CONSTRAINT "personal_data_erasures_reference_check"
    CHECK ("request_reference" IS NULL OR char_length("request_reference") BETWEEN 1 AND 200);
ALTER TABLE "personal_data_erasures" ADD CONSTRAINT "personal_data_erasures_operator_reference_check"
    CHECK (("reason" = 'OPERATOR_REQUEST') = ("request_reference" IS NOT NULL));
-- The erasures of one ticket (what happened to its reporter's data, and when).
CREATE INDEX "personal_data_erasures_tickets_idx" ON "personal_data_erasures" USING GIN ("ticket_ids");
