-- Contract published by the tickets domain for the open-data module's GTFS-Realtime alerts
-- (opendata/src/feeds/gtfs-rt-alerts.ts): the interventions and planned works that name bus
-- stops or routes of the network (`stop_ids`, `route_ids`: GTFS ids), with their public facts
-- only — origin, status, the period they are scheduled for, what they affect. No title,
-- description or notes (free text written by agents: addresses, names), no assignee, team,
-- ticket, alarm, equipment or position, no account.
--
-- Done and cancelled ones stay in the view (the feed publishes the open ones): the feed's header
-- timestamp moves when one leaves the published set.
CREATE VIEW "opendata_transit_alerts" AS
SELECT i.id AS intervention_id,
       i.collectivity_id,
       i.origin,
       i.status,
       coalesce(i.scheduled_start, i.started_at) AS active_from,
       i.scheduled_end AS active_until,
       i.affects_carriageway,
       i.stop_ids,
       i.route_ids,
       i.updated_at
FROM "interventions" i
WHERE cardinality(i.stop_ids) > 0 OR cardinality(i.route_ids) > 0;
