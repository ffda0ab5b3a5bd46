-- References are unique within a collectivity ignoring case: `lp-cha-00001` beside
-- `LP-CHA-00001` names the same asset to a person. Prisma cannot express an index on an
-- expression, so this one lives here only (see the comment in prisma/schema/equipment.prisma).

-- Existing duplicates would make the index fail with a bare "could not create unique index":
-- name them instead, so an operator knows which references to rename first.
DO $$
DECLARE
    duplicates TEXT;
BEGIN
    SELECT string_agg(format('%s: %s', collectivity_id, refs), '; ') INTO duplicates
    FROM (
        SELECT collectivity_id, string_agg(reference, ', ' ORDER BY reference) AS refs
        FROM "equipment"
        GROUP BY collectivity_id, lower(reference)
        HAVING count(*) > 1
        ORDER BY collectivity_id, lower(reference)
        LIMIT 20
    ) AS d;
    IF duplicates IS NOT NULL THEN
        RAISE EXCEPTION 'equipment references that differ only in case must be renamed before this migration: %', duplicates;
    END IF;
END $$;

-- DropIndex: implied by the case-insensitive one.
DROP INDEX "equipment_collectivity_id_reference_key";

-- CreateIndex
CREATE UNIQUE INDEX "equipment_collectivity_id_lower_reference_key" ON "equipment"("collectivity_id", lower("reference"));
