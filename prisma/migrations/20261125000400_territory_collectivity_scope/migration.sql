-- Contract published by the territory domain (other domains never read its tables): the
-- scope of a collectivity. A municipal collectivity answers for its own commune only;
-- the agglomeration for the whole territory (commune_insee NULL). No row: unknown id.
CREATE FUNCTION "territory_collectivity_scope"(collectivity_id TEXT)
RETURNS TABLE (municipal BOOLEAN, commune_insee TEXT) LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT kind = 'COMMUNE', insee_code FROM collectivity WHERE id = collectivity_id
$$;
