-- Contract published by the tickets domain for the open-data module (DATEX II situations): the
-- interventions and planned works that affect the carriageway and are not over (PLANNED,
-- ASSIGNED, IN_PROGRESS). Done or cancelled works leave the view (the situation has ended).
--
-- Public fields only: when, where, in which state. Never the title, description or closing notes
-- (free text an agent wrote), the assignee or team, who created it, the ticket or alarm it came
-- from, nor `origin` itself (an intervention from a citizen's report must not say so: O5's
-- anonymisation of reports would be undone). `works` is PLANNED_WORKS for works planned ahead
-- (origin PLANNED), REPAIR for the others. `location` is the works' own position only for works
-- planned ahead or raised from an alarm: an intervention created from a citizen's report copies the
-- report's exact point, which would publish where a citizen stood, so its `location` is NULL. The
-- reader then takes the position of `equipment_id` from `opendata_equipment` (which never publishes
-- cameras), or leaves the works out.
CREATE VIEW "opendata_roadworks" AS
SELECT
    i.id,
    i.collectivity_id,
    i.status,
    CASE WHEN i.origin = 'PLANNED' THEN 'PLANNED_WORKS' ELSE 'REPAIR' END AS works,
    CASE WHEN i.origin = 'TICKET' THEN NULL ELSE i.geom END AS location,
    i.equipment_id,
    i.scheduled_start,
    i.scheduled_end,
    i.started_at,
    i.created_at,
    i.updated_at,
    i.version
FROM "interventions" i
WHERE i.affects_carriageway
  AND i.status IN ('PLANNED', 'ASSIGNED', 'IN_PROGRESS');
