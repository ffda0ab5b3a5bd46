-- Telemetry's alarm for transit-signal priority (issue #9): the mobility domain publishes
-- `mobility.signal-fault` when a traffic-signal controller leaves MOBILITY_PRIORITY_FAULT_AFTER
-- consecutive priority requests unanswered, or answers one saying it is in fault, and
-- `mobility.signal-fault.cleared` on the controller's next normal answer (a grant, or a denial
-- that is not a fault). Payload `{ equipmentId, code: 'SIGNAL_PRIORITY_FAULT', message }`.
-- It does not put the asset in FAULT: the lights may run their normal cycle, only priority is
-- lost, and mobility keeps asking the controller so that its next answer clears the alarm.
INSERT INTO "alarm_rules" ("code", "type", "kinds", "metric", "comparison", "threshold", "for_seconds", "requires_occupancy",
                           "silence_periods", "event_topic", "clear_event_topic", "severity", "sets_fault", "label") VALUES
    ('SIGNAL_PRIORITY_FAULT', 'EVENT', ARRAY['TRAFFIC_SIGNAL_CONTROLLER'],
     NULL, NULL, NULL, NULL, false, NULL, 'mobility.signal-fault', 'mobility.signal-fault.cleared', 'MAJOR', false, 'signal priority not answered');
