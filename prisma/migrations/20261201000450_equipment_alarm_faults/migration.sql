-- CreateTable: the equipment domain's own knowledge of the alarms that put its assets in FAULT
-- (subgraphs/equipment/src/alarm-status.ts, fed by telemetry's `telemetry.alarm` events): one row
-- per open alarm with setsFault. When the last one of an asset clears, a FAULT asset goes back
-- IN_SERVICE. Telemetry never writes this table, nor `equipment`.
CREATE TABLE "equipment_alarm_faults" (
    "equipment_id" TEXT NOT NULL,
    -- Telemetry's alarm id and code, as the event gave them.
    "alarm_id" TEXT NOT NULL,
    "code" TEXT NOT NULL,
    "raised_at" TIMESTAMPTZ(3) NOT NULL,
    -- The `telemetry.alarm` event that recorded it.
    "event_id" BIGINT NOT NULL,

    CONSTRAINT "equipment_alarm_faults_pkey" PRIMARY KEY ("alarm_id"),
    CONSTRAINT "equipment_alarm_faults_equipment_id_fkey" FOREIGN KEY ("equipment_id") REFERENCES "equipment"("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- Whether an asset has another open fault alarm.
CREATE INDEX "equipment_alarm_faults_equipment_id_idx" ON "equipment_alarm_faults"("equipment_id");
