-- The territory domain's contract for the open-data module (issue #11), on its own tables:
-- each collectivity with the area it covers — a commune its own commune, the agglomeration the
-- union of its member communes. Public institutional data (names, SIREN, INSEE codes).
CREATE VIEW "opendata_collectivities" AS
SELECT
    c.id,
    c.name,
    c.kind::text AS kind,
    c.siren,
    c.insee_code,
    ST_Multi(ST_Union(m.geom))::geometry(MultiPolygon, 4326) AS geom
FROM "collectivity" c
JOIN "commune" m
  ON (c.kind = 'COMMUNE' AND m.collectivity_id = c.id)
  OR (c.kind = 'AGGLOMERATION' AND m.agglomeration)
GROUP BY c.id, c.name, c.kind, c.siren, c.insee_code;
