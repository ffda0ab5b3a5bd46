-- Contracts the equipment domain publishes for the open-data module (issue #11), beside
-- `opendata_equipment`: one view per published kind, with the kind's public attributes as
-- columns. Never cameras (their positions are for operators only), never buses, never a
-- decommissioned asset, never an asset without a position. No personal column: these are street
-- furniture, and nothing of who uses them (no Wi-Fi client, no occupancy) is here.

-- Light points, with the attributes of the CNIG géostandard d'éclairage extérieur (EclExt):
-- type of light source, nominal power, colour temperature, operating regime, light height.
-- The operating regime follows from the asset: a presence detector on its pole → 'DETECTION'
-- (lit low, raised on detection), remotely dimmable → 'ABAISSEMENT' (night dimming by the
-- remote-management schedule), otherwise 'PERMANENT'. `updated_at` is the latest change of the
-- light point or of a detector mounted on it (a detector added or removed changes the regime).
CREATE VIEW "opendata_light_points" AS
SELECT
    e.id,
    e.status::text AS status,
    e.collectivity_id,
    e.insee_code,
    e.installed_on,
    e.location,
    greatest(e.updated_at, d.updated_at) AS updated_at,
    upper(e.details->>'lampType') AS type_source,
    (e.details->>'powerW')::float8 AS puissance_nominale_w,
    (e.details->>'colorTemperatureK')::int AS temperature_couleur_k,
    CASE
        WHEN d.active > 0 THEN 'DETECTION'
        WHEN (e.details->>'dimmable')::boolean THEN 'ABAISSEMENT'
        ELSE 'PERMANENT'
    END AS regime_fonctionnement,
    coalesce((e.details->>'dimmable')::boolean, false) AS telegestion,
    (e.details->>'poleHeightM')::float8 AS hauteur_feu_m
FROM "equipment" e
-- One grouped pass over the detectors and a hash join (a per-row lookup costs ~10 µs a light
-- point and, past PostgreSQL's JIT threshold, a JIT compilation on every version read).
LEFT JOIN (
    SELECT p.parent_id, count(*) FILTER (WHERE p.status <> 'DECOMMISSIONED') AS active, max(p.updated_at) AS updated_at
      FROM "equipment" p
     WHERE p.kind = 'PRESENCE_DETECTOR' AND p.parent_id IS NOT NULL
     GROUP BY p.parent_id
) d ON d.parent_id = e.id
WHERE e.kind = 'LIGHT_POINT'
  AND e.status <> 'DECOMMISSIONED'
  AND e.location IS NOT NULL;

-- Public Wi-Fi hotspots: where, which network name and band, how many clients at most. Nothing
-- of the clients (no MAC address, no session, no count of connected devices).
CREATE VIEW "opendata_wifi_hotspots" AS
SELECT
    e.id,
    e.name,
    e.status::text AS status,
    e.collectivity_id,
    e.insee_code,
    e.installed_on,
    e.location,
    e.updated_at,
    e.details->>'ssid' AS ssid,
    e.details->>'band' AS band,
    (e.details->>'maxClients')::int AS max_clients
FROM "equipment" e
WHERE e.kind = 'WIFI_HOTSPOT'
  AND e.status <> 'DECOMMISSIONED'
  AND e.location IS NOT NULL;

-- Traffic-signal controllers: the intersection, its number of phases, whether buses get priority.
CREATE VIEW "opendata_traffic_signals" AS
SELECT
    e.id,
    e.status::text AS status,
    e.collectivity_id,
    e.insee_code,
    e.installed_on,
    e.location,
    e.updated_at,
    e.details->>'intersectionName' AS intersection_name,
    (e.details->>'phases')::int AS phases,
    (e.details->>'busPriority')::boolean AS bus_priority
FROM "equipment" e
WHERE e.kind = 'TRAFFIC_SIGNAL_CONTROLLER'
  AND e.status <> 'DECOMMISSIONED'
  AND e.location IS NOT NULL;

-- Bus stops (Châlons Agglo's network): name and shelter.
CREATE VIEW "opendata_bus_stops" AS
SELECT
    e.id,
    e.status::text AS status,
    e.collectivity_id,
    e.insee_code,
    e.installed_on,
    e.location,
    e.updated_at,
    e.details->>'name' AS name,
    (e.details->>'shelter')::boolean AS shelter
FROM "equipment" e
WHERE e.kind = 'BUS_STOP'
  AND e.status <> 'DECOMMISSIONED'
  AND e.location IS NOT NULL;
