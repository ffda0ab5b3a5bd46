-- Contract published by the equipment domain for the open-data module (which never reads
-- raw tables): public equipment only. Cameras are never published (their positions are for
-- operators only); buses move and are published as GTFS-Realtime instead; decommissioned
-- assets are gone from the street. Attributes are an explicit allow-list per kind.
CREATE VIEW "opendata_equipment" AS
SELECT
    e.id,
    e.kind::text AS kind,
    e.status::text AS status,
    e.collectivity_id,
    e.insee_code,
    e.installed_on,
    e.location,
    e.updated_at,
    jsonb_strip_nulls(CASE e.kind
        WHEN 'LIGHT_POINT' THEN jsonb_build_object(
            'powerW', e.details->'powerW', 'lampType', e.details->'lampType',
            'dimmable', e.details->'dimmable', 'colorTemperatureK', e.details->'colorTemperatureK')
        WHEN 'PARKING_FACILITY' THEN jsonb_build_object(
            'name', e.details->'name', 'capacity', e.details->'capacity', 'type', e.details->'type')
        WHEN 'BUS_STOP' THEN jsonb_build_object('name', e.details->'name', 'shelter', e.details->'shelter')
        WHEN 'BUILDING' THEN jsonb_build_object('name', e.details->'name', 'use', e.details->'use')
        WHEN 'TRAFFIC_SIGNAL_CONTROLLER' THEN jsonb_build_object('intersectionName', e.details->'intersectionName')
        ELSE '{}'::jsonb
    END) AS attributes
FROM "equipment" e
WHERE e.kind NOT IN ('CAMERA', 'BUS')
  AND e.status <> 'DECOMMISSIONED'
  AND e.location IS NOT NULL;
