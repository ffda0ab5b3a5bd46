-- Contract published by the telemetry domain for the open-data module (DATEX II situations):
-- the open alarms of traffic-signal controllers, SIGNAL_FAULT (the controller reports a fault:
-- the lights may be dark or flashing) and SIGNAL_PRIORITY_FAULT (bus priority is not answered;
-- the lights run their normal cycle). Cleared alarms leave the view.
--
-- Telemetry holds no positions and joins nothing of equipment's: the reader takes the position
-- of `equipment_id` from `opendata_equipment`. Public fields only: never the alarm's message,
-- value, who acknowledged or cleared it, nor their notes.
CREATE VIEW "opendata_signal_faults" AS
SELECT
    a.id,
    a.code,
    a.severity,
    a.state,
    a.equipment_id,
    a.collectivity_id,
    a.raised_at,
    a.last_raised_at,
    a.updated_at
FROM "alarms" a
WHERE a.code IN ('SIGNAL_FAULT', 'SIGNAL_PRIORITY_FAULT')
  AND a.state <> 'CLEARED';
