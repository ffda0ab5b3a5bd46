/**
 * The seed against a real PostgreSQL/PostGIS: exact counts, placement rules checked with SQL
 * (geodesic distances), idempotence, atomicity, concurrency and determinism across processes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { createTestDatabase, ROOT, type TestDatabase } from '@connecte/testkit';
import {
  buildSeedPlan,
  COLLECTIVITIES,
  DIMMABLE_LIGHT_POINTS,
  seed,
  SEED_COUNTS,
  SEED_TERRITORY_COUNTS,
  SERVICE_CATEGORIES,
  SEED_TICKETS,
  type SeedResult,
} from '../index.js';

const luhn = (digits: string) =>
  [...digits].reverse().reduce((sum, c, i) => {
    let d = Number(c);
    if (i % 2 === 1 && (d *= 2) > 9) d -= 9;
    return sum + d;
  }, 0) %
    10 ===
  0;

/** Everything the seed wrote that must be identical from one run to the next, as one hash. */
async function checksum(pool: pg.Pool): Promise<Record<string, string>> {
  const { rows } = await pool.query<{ part: string; hash: string | null }>(`
    SELECT 'equipment' AS part, md5(string_agg(concat_ws('|', id, kind, reference, name, status, collectivity_id, insee_code,
             encode(ST_AsBinary(location), 'hex'), installed_on, parent_id, details::text, decommissioned_at), E'\\n' ORDER BY id)) AS hash
      FROM equipment
    UNION ALL
    SELECT 'street', md5(string_agg(concat_ws('|', id, name, insee_code, length_m, encode(ST_AsBinary(geom), 'hex')), E'\\n' ORDER BY id)) FROM street
    UNION ALL
    SELECT 'district', md5(string_agg(concat_ws('|', id, name, insee_code, encode(ST_AsBinary(geom), 'hex')), E'\\n' ORDER BY id)) FROM district
    UNION ALL
    SELECT 'commune', md5(string_agg(concat_ws('|', insee_code, name, collectivity_id, agglomeration, encode(ST_AsBinary(geom), 'hex')), E'\\n' ORDER BY insee_code)) FROM commune
    UNION ALL
    SELECT 'collectivity', md5(string_agg(concat_ws('|', id, name, kind, insee_code, siren), E'\\n' ORDER BY id)) FROM collectivity
    UNION ALL
    SELECT 'service_category', md5(string_agg(concat_ws('|', code, label, competence), E'\\n' ORDER BY code)) FROM service_category
    UNION ALL
    SELECT 'energy_baselines', md5(string_agg(concat_ws('|', equipment_id, collectivity_id, kind, baseline_kwh_per_year, source, recorded_on, recorded_by),
             E'\\n' ORDER BY equipment_id)) FROM energy_baselines
    UNION ALL
    SELECT 'tickets', md5(string_agg(concat_ws('|', id, category_code, collectivity_id, status, description, encode(ST_AsBinary(geom), 'hex'), address, equipment_id,
             duplicate_of, reporter_sub, reporter_email, reporter_phone, round(extract(epoch FROM resolve_due_at - created_at)), (SELECT count(*) FROM ticket_history h WHERE h.ticket_id = t.id),
             (SELECT string_agg(concat_ws('/', i.id, i.origin, i.status, i.title, i.assignee_sub, i.minutes_spent, i.stop_ids::text), ';' ORDER BY i.id) FROM interventions i WHERE i.ticket_id = t.id)),
             E'\\n' ORDER BY id)) FROM tickets t`);
  return Object.fromEntries(rows.map((r) => [r.part, r.hash ?? 'empty']));
}

async function one<T = Record<string, unknown>>(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await pool.query(sql, params);
  return rows[0] as T;
}

describe('seed', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let first: SeedResult;
  let firstChecksum: Record<string, string>;

  before(async () => {
    db = await createTestDatabase({ seed: false });
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    first = await seed(pool);
    firstChecksum = await checksum(pool);
  });

  after(async () => {
    await pool?.end();
    await db?.drop();
  });

  test('reports what it wrote, and the counts match SEED_COUNTS', () => {
    assert.equal(first.seeded, true);
    for (const [table, n] of Object.entries(SEED_TERRITORY_COUNTS)) assert.equal(first.counts[table], n, table);
    for (const [kind, n] of Object.entries(SEED_COUNTS)) assert.equal(first.counts[kind], n, kind);
    assert.equal(first.counts.equipment, Object.values(SEED_COUNTS).reduce((a, b) => a + b, 0));
  });

  test('exact figures of the territory, counted with no status filter', async () => {
    const counts = await one<Record<string, number>>(
      pool,
      `SELECT count(*) FILTER (WHERE kind = 'LIGHT_POINT')::int AS lp,
              count(*) FILTER (WHERE kind = 'LIGHT_POINT' AND (details->>'dimmable')::boolean)::int AS dimmable,
              count(*) FILTER (WHERE kind = 'PRESENCE_DETECTOR')::int AS pd,
              count(*) FILTER (WHERE kind = 'TRAFFIC_SIGNAL_CONTROLLER')::int AS tsc,
              count(*) FILTER (WHERE kind = 'BUS')::int AS bus,
              count(*) FILTER (WHERE kind = 'CAMERA')::int AS cam
         FROM equipment`,
    );
    assert.deepEqual(counts, { lp: 7290, dimmable: 2170, pd: 510, tsc: 25, bus: 32, cam: SEED_COUNTS.CAMERA });
    assert.equal(DIMMABLE_LIGHT_POINTS, 2170);
    const statuses = await pool.query<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM equipment WHERE kind = 'LIGHT_POINT' GROUP BY status`,
    );
    const inService = statuses.rows.find((r) => r.status === 'IN_SERVICE')!.n;
    assert.ok(inService / 7290 > 0.95 && inService < 7290, `a small share of light points is not in service (${inService})`);
  });

  test('collectivities, communes and service categories', async () => {
    const collectivities = await pool.query(`SELECT id, name, kind, insee_code, siren FROM collectivity ORDER BY id`);
    assert.deepEqual(
      collectivities.rows.map((r) => [r.id, r.kind, r.insee_code]),
      [
        ['chalons', 'COMMUNE', '51108'],
        ['chalons-agglo', 'AGGLOMERATION', null],
        ['fagnieres', 'COMMUNE', '51242'],
        ['saint-martin-sur-le-pre', 'COMMUNE', '51504'],
      ],
    );
    for (const c of collectivities.rows) assert.ok(/^\d{9}$/.test(c.siren) && luhn(c.siren), `SIREN of ${c.id}`);
    assert.equal(COLLECTIVITIES.length, 4);

    const communes = await one<Record<string, unknown>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE GeometryType(geom) = 'MULTIPOLYGON' AND ST_SRID(geom) = 4326 AND ST_IsValid(geom))::int AS multi,
              count(*) FILTER (WHERE agglomeration)::int AS agglo,
              string_agg(insee_code || '=' || collectivity_id, ',' ORDER BY insee_code) FILTER (WHERE collectivity_id IS NOT NULL) AS owned
         FROM commune`,
    );
    assert.deepEqual(communes, { n: 30, multi: 30, agglo: 30, owned: '51108=chalons,51242=fagnieres,51504=saint-martin-sur-le-pre' });
    const names = await pool.query(`SELECT name FROM commune WHERE insee_code IN ('51108', '51242', '51504') ORDER BY insee_code`);
    assert.deepEqual(names.rows.map((r) => r.name), ['Châlons-en-Champagne', 'Fagnières', 'Saint-Martin-sur-le-Pré']);

    const categories = await pool.query(`SELECT code, competence FROM service_category ORDER BY code`);
    assert.deepEqual(
      Object.fromEntries(categories.rows.map((r) => [r.code, r.competence])),
      {
        BUS_NETWORK: 'AGGLOMERATION',
        CLEANLINESS: 'MUNICIPAL',
        ROADS: 'MUNICIPAL',
        STREET_FURNITURE: 'MUNICIPAL',
        STREET_LIGHTING: 'MUNICIPAL',
        WASTE_COLLECTION: 'AGGLOMERATION',
      },
    );
    assert.equal(SERVICE_CATEGORIES.length, 6);
  });

  test('districts partition Châlons without overlapping', async () => {
    // Areas in the lon/lat plane, where splitting a polygon along straight edges is exactly
    // additive (geodesic areas are not: a commune edge cut at a point of its straight lon/lat
    // segment is no longer the same great-circle arc); the overlap in m².
    const r = await one<{ n: number; sum: number; commune: number; union: number; overlap: number }>(
      pool,
      `SELECT (SELECT count(*)::int FROM district WHERE insee_code = '51108') AS n,
              (SELECT sum(ST_Area(geom)) FROM district WHERE insee_code = '51108') AS sum,
              (SELECT ST_Area(geom) FROM commune WHERE insee_code = '51108') AS commune,
              (SELECT ST_Area(ST_Union(geom)) FROM district WHERE insee_code = '51108') AS union,
              (SELECT coalesce(sum(ST_Area(ST_Intersection(a.geom, b.geom)::geography)), 0)
                 FROM district a JOIN district b ON a.id < b.id AND ST_Intersects(a.geom, b.geom)) AS overlap`,
    );
    assert.equal(r.n, 10);
    assert.ok(Math.abs(r.sum - r.commune) / r.commune < 1e-9, `districts' areas add up to the commune's (${r.sum} vs ${r.commune})`);
    assert.ok(Math.abs(r.union - r.commune) / r.commune < 1e-9, 'their union is the commune');
    assert.ok(r.overlap < 1, `no overlap (${r.overlap} m²)`);
    const named = await pool.query(`SELECT name FROM district ORDER BY name`);
    assert.ok(named.rows.some((d) => d.name === 'Centre-ville') && named.rows.some((d) => d.name === 'Rive Gauche'));
  });

  test('streets: named lines inside their commune, geodesic length, enough to light', async () => {
    const r = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE NOT ST_Covers(c.geom, s.geom))::int AS outside,
              count(*) FILTER (WHERE GeometryType(s.geom) <> 'LINESTRING' OR ST_SRID(s.geom) <> 4326)::int AS not_lines,
              count(*) FILTER (WHERE abs(s.length_m - ST_Length(s.geom::geography)) > 1e-6)::int AS bad_length,
              count(*) FILTER (WHERE s.name !~ '^(Rue|Avenue|Boulevard|Allée|Chemin|Impasse|Passage) ')::int AS bad_names,
              count(DISTINCT s.insee_code)::int AS communes,
              sum(s.length_m) FILTER (WHERE s.insee_code IN ('51108', '51242', '51504')) / 1000 AS lit_km,
              sum(s.length_m) FILTER (WHERE s.insee_code = '51108') / 1000 AS chalons_km
         FROM street s JOIN commune c USING (insee_code)`,
    );
    assert.equal(r.n, SEED_TERRITORY_COUNTS.street);
    assert.equal(r.outside, 0);
    assert.equal(r.not_lines, 0);
    assert.equal(r.bad_length, 0);
    assert.equal(r.bad_names, 0);
    assert.ok(r.communes >= 3);
    // 7,290 light points at 25–40 m need 182–292 km of lit streets; denser in Châlons.
    assert.ok(r.lit_km > 7290 * 0.027 && r.lit_km < 7290 * 0.038, `lit streets: ${r.lit_km} km`);
    assert.ok(r.chalons_km > r.lit_km * 0.6, 'most of it in Châlons');
    // A street crossing a border is one row per commune, with the same name.
    const split = await one<{ n: number }>(
      pool,
      `SELECT count(*)::int AS n FROM (SELECT name FROM street GROUP BY name HAVING count(DISTINCT insee_code) > 1) t`,
    );
    assert.ok(split.n > 0);
  });

  test('light points: on a street (≤ 15 m), inside their commune, 25–40 m apart along it', async () => {
    const r = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE NOT ST_Covers(c.geom, e.location))::int AS outside,
              count(*) FILTER (WHERE e.collectivity_id IS DISTINCT FROM c.collectivity_id)::int AS wrong_owner,
              count(*) FILTER (WHERE NOT EXISTS (
                SELECT 1 FROM street s
                 WHERE s.insee_code = e.insee_code AND ST_DWithin(s.geom, e.location, 0.0003)
                   AND ST_DWithin(s.geom::geography, e.location::geography, 15)))::int AS off_street,
              count(*) FILTER (WHERE NOT (e.details ?& array['powerW', 'lampType', 'dimmable', 'colorTemperatureK', 'poleHeightM'])
                                  OR e.details->>'lampType' <> 'LED'
                                  OR (e.details->>'colorTemperatureK')::int NOT IN (2700, 3000))::int AS bad_details
         FROM equipment e JOIN commune c ON c.insee_code = e.insee_code
        WHERE e.kind = 'LIGHT_POINT'`,
    );
    assert.deepEqual(r, { n: 7290, outside: 0, wrong_owner: 0, off_street: 0, bad_details: 0 });

    // Along each street, in the plan's order: the plan names each light point's street, and the
    // database confirms it stands within 8.5 m of that street's line.
    const plan = buildSeedPlan().equipment.lightPoints;
    const spacing = await one<Record<string, number>>(
      pool,
      `WITH p AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int[]) AS t(id, street_id, idx)),
            lp AS (SELECT p.*, e.location, s.geom AS street
                     FROM p JOIN equipment e ON e.id = p.id JOIN street s ON s.id = p.street_id),
            gaps AS (SELECT ST_Distance(location::geography, lag(location::geography) OVER w) AS gap
                       FROM lp WINDOW w AS (PARTITION BY street_id ORDER BY idx))
       SELECT (SELECT max(ST_Distance(location::geography, street::geography)) FROM lp) AS max_offset,
              (SELECT count(*)::int FROM lp) AS n,
              min(gap) AS min_gap, max(gap) AS max_gap
         FROM gaps WHERE gap IS NOT NULL`,
      [plan.map((p) => p.id), plan.map((p) => p.streetId), plan.map((p) => p.index)],
    );
    assert.equal(spacing.n, 7290);
    assert.ok(spacing.max_offset <= 8.5, `offset from the street line ≤ 8 m (${spacing.max_offset})`);
    assert.ok(spacing.min_gap >= 25 && spacing.max_gap <= 40, `25 m ≤ spacing ≤ 40 m (${spacing.min_gap}–${spacing.max_gap})`);
  });

  test('light points hang on the nearest cabinet of their commune, ≤ 60 each', async () => {
    const r = await one<Record<string, number>>(
      pool,
      `WITH lp AS (SELECT e.id, e.insee_code, e.location::geography AS g, p.kind AS parent_kind, p.insee_code AS parent_insee,
                          p.location::geography AS pg
                     FROM equipment e LEFT JOIN equipment p ON p.id = e.parent_id
                    WHERE e.kind = 'LIGHT_POINT'),
            cab AS (SELECT id, insee_code, location::geography AS g FROM equipment WHERE kind = 'ELECTRICAL_CABINET')
       SELECT count(*) FILTER (WHERE parent_kind IS DISTINCT FROM 'ELECTRICAL_CABINET' OR parent_insee <> insee_code)::int AS bad_parent,
              count(*) FILTER (WHERE ST_Distance(pg, g, false) > (SELECT min(ST_Distance(cab.g, lp.g, false)) FROM cab
                                                                  WHERE cab.insee_code = lp.insee_code) + 1)::int AS not_nearest,
              (SELECT max(n) FROM (SELECT count(*) AS n FROM equipment WHERE kind = 'LIGHT_POINT' GROUP BY parent_id) t)::int AS max_load,
              (SELECT count(*)::int FROM cab WHERE NOT EXISTS (SELECT 1 FROM equipment c WHERE c.parent_id = cab.id)) AS idle
         FROM lp`,
    );
    assert.deepEqual(r, { bad_parent: 0, not_nearest: 0, max_load: 60, idle: 0 });
  });

  test('presence detectors sit on 510 distinct dimmable light points', async () => {
    const r = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n, count(DISTINCT d.parent_id)::int AS poles,
              count(*) FILTER (WHERE p.kind = 'LIGHT_POINT' AND (p.details->>'dimmable')::boolean
                                 AND d.details->>'lightPointId' = p.id AND ST_Equals(d.location, p.location)
                                 AND d.collectivity_id = p.collectivity_id AND d.insee_code = p.insee_code
                                 AND (d.details->>'detectionRangeM')::numeric > 0)::int AS ok
         FROM equipment d JOIN equipment p ON p.id = d.parent_id
        WHERE d.kind = 'PRESENCE_DETECTOR'`,
    );
    assert.deepEqual(r, { n: 510, poles: 510, ok: 510 });
  });

  test('traffic signals at 25 distinct junctions; cameras at junctions; buses and stops of the agglomeration', async () => {
    const tsc = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE insee_code NOT IN ('51108', '51242'))::int AS elsewhere,
              count(*) FILTER (WHERE collectivity_id = 'chalons')::int AS chalons,
              count(*) FILTER (WHERE (details->>'busPriority')::boolean AND (details->>'phases')::int BETWEEN 2 AND 4
                                 AND details->>'intersectionName' LIKE '% / %')::int AS ok,
              count(*) FILTER (WHERE (SELECT count(DISTINCT s.name) FROM street s
                                       WHERE ST_DWithin(s.geom, e.location, 0.0003)
                                         AND ST_DWithin(s.geom::geography, e.location::geography, 10)) >= 2)::int AS at_junction,
              (SELECT min(ST_Distance(a.location::geography, b.location::geography))
                 FROM equipment a JOIN equipment b ON a.id < b.id
                WHERE a.kind = 'TRAFFIC_SIGNAL_CONTROLLER' AND b.kind = 'TRAFFIC_SIGNAL_CONTROLLER')::int AS min_apart
         FROM equipment e WHERE kind = 'TRAFFIC_SIGNAL_CONTROLLER'`,
    );
    assert.equal(tsc.n, 25);
    assert.equal(tsc.elsewhere, 0);
    assert.ok(tsc.chalons > 12, 'mostly Châlons');
    assert.equal(tsc.ok, 25);
    assert.equal(tsc.at_junction, 25);
    assert.ok(tsc.min_apart >= 50, `distinct junctions (${tsc.min_apart} m apart at least)`);

    const cam = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE details ?& array['model', 'ptz', 'retentionDays'])::int AS ok,
              count(*) FILTER (WHERE (SELECT count(DISTINCT s.name) FROM street s
                                       WHERE ST_DWithin(s.geom, e.location, 0.0003)
                                         AND ST_DWithin(s.geom::geography, e.location::geography, 12)) >= 2)::int AS at_junction
         FROM equipment e WHERE kind = 'CAMERA'`,
    );
    assert.deepEqual(cam, { n: SEED_COUNTS.CAMERA, ok: SEED_COUNTS.CAMERA, at_junction: SEED_COUNTS.CAMERA });

    const bus = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE collectivity_id = 'chalons-agglo' AND insee_code IS NULL AND location IS NOT NULL
                                 AND (details->>'signalPriority')::boolean
                                 AND details->>'energy' IN ('DIESEL', 'ELECTRIC', 'HYBRID')
                                 AND (details->>'capacity')::int > 0 AND details ? 'fleetNumber')::int AS ok,
              count(*) FILTER (WHERE EXISTS (SELECT 1 FROM commune c WHERE ST_Covers(c.geom, e.location)))::int AS in_territory
         FROM equipment e WHERE kind = 'BUS'`,
    );
    assert.deepEqual(bus, { n: 32, ok: 32, in_territory: 32 });

    const stops = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n, count(DISTINCT insee_code)::int AS communes,
              count(*) FILTER (WHERE collectivity_id = 'chalons-agglo' AND details ? 'name'
                                 AND jsonb_typeof(details->'shelter') = 'boolean')::int AS ok,
              count(*) FILTER (WHERE EXISTS (SELECT 1 FROM street s WHERE s.insee_code = e.insee_code
                                 AND ST_DWithin(s.geom, e.location, 0.0003)
                                 AND ST_DWithin(s.geom::geography, e.location::geography, 10)))::int AS on_street
         FROM equipment e WHERE kind = 'BUS_STOP'`,
    );
    assert.equal(stops.n, SEED_COUNTS.BUS_STOP);
    assert.ok(stops.n >= 120 && stops.n <= 180);
    assert.ok(stops.communes >= 5, 'stops in several communes');
    assert.equal(stops.ok, stops.n);
    assert.equal(stops.on_street, stops.n);
  });

  test('buildings hold one heating controller, one energy meter and ≥ 1 air-quality sensor each', async () => {
    const r = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE details->>'use' = 'SCHOOL')::int AS schools,
              count(*) FILTER (WHERE details->>'use' = 'SPORTS_HALL')::int AS halls,
              count(*) FILTER (WHERE details->>'use' = 'SPORTS_HALL' AND collectivity_id = 'chalons-agglo')::int AS agglo_halls,
              count(*) FILTER (WHERE
                (SELECT count(*) FROM equipment c WHERE c.parent_id = b.id AND c.kind = 'HEATING_CONTROLLER') = 1
                AND (SELECT count(*) FROM equipment c WHERE c.parent_id = b.id AND c.kind = 'ENERGY_METER') = 1
                AND (SELECT count(*) FROM equipment c WHERE c.parent_id = b.id AND c.kind = 'AIR_QUALITY_SENSOR') >= 1
                AND NOT EXISTS (SELECT 1 FROM equipment c WHERE c.parent_id = b.id
                                   AND (NOT ST_Equals(c.location, b.location) OR c.collectivity_id <> b.collectivity_id
                                        OR c.insee_code <> b.insee_code)))::int AS complete,
              count(*) FILTER (WHERE (details->>'heatedAreaM2')::int > 0 AND details ? 'name')::int AS described
         FROM equipment b WHERE kind = 'BUILDING'`,
    );
    assert.deepEqual(r, { n: 52, schools: 40, halls: 12, agglo_halls: 4, complete: 52, described: 52 });
    const orphans = await one<{ n: number }>(
      pool,
      `SELECT count(*)::int AS n FROM equipment c LEFT JOIN equipment b ON b.id = c.parent_id
        WHERE c.kind IN ('HEATING_CONTROLLER', 'ENERGY_METER', 'AIR_QUALITY_SENSOR') AND b.kind IS DISTINCT FROM 'BUILDING'`,
    );
    assert.equal(orphans.n, 0);
  });

  test('parking in Châlons centre: facilities with names and capacities, bay sensors under on-street ones', async () => {
    const r = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE insee_code = '51108' AND details->>'type' IN ('UNDERGROUND', 'SURFACE', 'ON_STREET')
                                 AND (details->>'capacity')::int > 0 AND details ? 'name')::int AS ok,
              count(*) FILTER (WHERE ST_DWithin(location::geography, ST_SetSRID(ST_MakePoint(4.3655, 48.9575), 4326)::geography, 1500))::int AS central
         FROM equipment WHERE kind = 'PARKING_FACILITY'`,
    );
    assert.equal(r.ok, r.n);
    assert.equal(r.central, r.n);
    const sensors = await one<Record<string, number>>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE p.kind = 'PARKING_FACILITY' AND p.details->>'type' = 'ON_STREET')::int AS ok
         FROM equipment s LEFT JOIN equipment p ON p.id = s.parent_id WHERE s.kind = 'PARKING_SENSOR'`,
    );
    assert.deepEqual(sensors, { n: SEED_COUNTS.PARKING_SENSOR, ok: SEED_COUNTS.PARKING_SENSOR });
    const capacities = await one<{ mismatched: number }>(
      pool,
      `SELECT count(*)::int AS mismatched FROM equipment p
        WHERE p.kind = 'PARKING_FACILITY' AND p.details->>'type' = 'ON_STREET'
          AND (p.details->>'capacity')::int <> (SELECT count(*) FROM equipment s WHERE s.parent_id = p.id)`,
    );
    assert.equal(capacities.mismatched, 0);
  });

  test('every located equipment stands in the commune of its insee_code; municipal ones in their own', async () => {
    const r = await one<Record<string, number>>(
      pool,
      `SELECT count(*) FILTER (WHERE e.insee_code IS NULL AND e.kind <> 'BUS')::int AS no_commune,
              count(*) FILTER (WHERE e.location IS NULL)::int AS no_location,
              count(*) FILTER (WHERE c.insee_code IS NOT NULL AND NOT ST_Covers(c.geom, e.location))::int AS outside,
              count(*) FILTER (WHERE k.kind = 'COMMUNE' AND e.insee_code IS DISTINCT FROM k.insee_code)::int AS municipal_elsewhere,
              count(*) FILTER (WHERE e.installed_on NOT BETWEEN '2024-01-01' AND '2026-12-31')::int AS bad_dates,
              count(*) FILTER (WHERE (e.status = 'DECOMMISSIONED') <> (e.decommissioned_at IS NOT NULL))::int AS bad_decommission,
              count(*) FILTER (WHERE e.reference !~ '^[A-Z]+-(CHA|FAG|SMP|AGG)-\\d{5}$'
                                  OR e.id !~ '^[a-z]+-(chalons|fagnieres|saint-martin-sur-le-pre|chalons-agglo)-\\d{5}$')::int AS bad_ids
         FROM equipment e
         JOIN collectivity k ON k.id = e.collectivity_id
         LEFT JOIN commune c ON c.insee_code = e.insee_code`,
    );
    assert.deepEqual(r, { no_commune: 0, no_location: 0, outside: 0, municipal_elsewhere: 0, bad_dates: 0, bad_decommission: 0, bad_ids: 0 });
    const firstLp = await one<Record<string, string>>(pool, `SELECT id, reference FROM equipment WHERE id = 'lp-chalons-00001'`);
    assert.deepEqual(firstLp, { id: 'lp-chalons-00001', reference: 'LP-CHA-00001' });
  });

  test('energy baselines: one per light point and energy meter, by the documented rules', async () => {
    const lights = await pool.query<{ power_w: number; kwh: number; n: number; recorded_on_install: number }>(
      `SELECT (e.details->>'powerW')::int AS power_w, b.baseline_kwh_per_year AS kwh, count(*)::int AS n,
              count(*) FILTER (WHERE b.recorded_on = e.installed_on AND b.recorded_by = 'seed' AND b.collectivity_id = e.collectivity_id)::int AS recorded_on_install
         FROM equipment e JOIN energy_baselines b ON b.equipment_id = e.id
        WHERE e.kind = 'LIGHT_POINT' GROUP BY 1, 2 ORDER BY 1`,
    );
    // The replaced HPS luminaire with its ballast × 4,100 h (README.md, "Energy baselines").
    const hps: Record<number, number> = { 18: 83, 24: 83, 30: 115, 36: 115, 45: 171, 60: 171, 75: 276, 90: 276 };
    for (const row of lights.rows) {
      assert.ok(Math.abs(row.kwh - (hps[row.power_w] * 4100) / 1000) < 1e-9, `${row.power_w} W LED: ${row.kwh} kWh/year`);
      assert.equal(row.recorded_on_install, row.n);
    }
    assert.equal(lights.rows.reduce((n, r) => n + r.n, 0), SEED_COUNTS.LIGHT_POINT);
    const meters = await one<{ n: number; ok: number }>(
      pool,
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE b.kind = 'ENERGY_METER' AND b.baseline_kwh_per_year =
                (bld.details->>'heatedAreaM2')::int * CASE bld.details->>'use' WHEN 'SCHOOL' THEN 150 WHEN 'SPORTS_HALL' THEN 190 END)::int AS ok
         FROM equipment m JOIN energy_baselines b ON b.equipment_id = m.id JOIN equipment bld ON bld.id = m.parent_id
        WHERE m.kind = 'ENERGY_METER'`,
    );
    assert.deepEqual(meters, { n: SEED_COUNTS.ENERGY_METER, ok: SEED_COUNTS.ENERGY_METER });
    assert.equal(first.counts.energy_baselines, SEED_COUNTS.LIGHT_POINT + SEED_COUNTS.ENERGY_METER, 'nothing else has one');
  });

  test('tickets: every category in every status in the four collectivities, duplicates, work orders and planned works', async () => {
    assert.equal(first.counts.tickets, SEED_TICKETS.tickets + SEED_TICKETS.duplicates);
    const r = await one<Record<string, unknown>>(
      pool,
      `SELECT (SELECT count(DISTINCT (category_code, status))::int FROM tickets WHERE status <> 'DUPLICATE') AS pairs,
              (SELECT count(DISTINCT collectivity_id)::int FROM tickets) AS collectivities,
              (SELECT count(*)::int FROM tickets WHERE status = 'DUPLICATE') AS duplicates,
              (SELECT count(*)::int FROM tickets WHERE resolve_due_at < coalesce(resolved_at, now())) > 0 AS breaches,
              (SELECT count(*)::int FROM interventions WHERE origin = 'PLANNED' AND affects_carriageway AND cardinality(stop_ids) > 0) > 0 AS works_at_stops,
              (SELECT count(DISTINCT status)::int FROM interventions) AS intervention_statuses,
              (SELECT count(*)::int FROM tickets t WHERE status IN ('ASSIGNED', 'IN_PROGRESS') AND NOT EXISTS (SELECT 1 FROM interventions i WHERE i.ticket_id = t.id)) AS unhandled`,
    );
    assert.deepEqual(r, { pairs: 8 * 7, collectivities: 4, duplicates: SEED_TICKETS.duplicates, breaches: true, works_at_stops: true, intervention_statuses: 5, unhandled: 0 });
  });

  test('seeding an already seeded database changes nothing', async () => {
    const again = await seed(pool);
    assert.equal(again.seeded, false);
    assert.deepEqual(again.counts, first.counts);
    assert.deepEqual(await checksum(pool), firstChecksum);
  });

  test('a failing seed leaves nothing; concurrent seeds run once; another process writes the same bytes', async () => {
    const other = await createTestDatabase({ seed: false });
    const poolA = new pg.Pool({ connectionString: other.url, max: 1 });
    const poolB = new pg.Pool({ connectionString: other.url, max: 1 });
    try {
      // Atomicity: make the last kinds' inserts fail; nothing of the earlier ones may remain.
      await poolA.query(`ALTER TABLE equipment ADD CONSTRAINT no_air_quality_sensors CHECK (kind <> 'AIR_QUALITY_SENSOR')`);
      await assert.rejects(seed(poolA), /no_air_quality_sensors/);
      const empty = await one<{ n: number }>(
        poolA,
        `SELECT (SELECT count(*) FROM collectivity) + (SELECT count(*) FROM commune) + (SELECT count(*) FROM street)
              + (SELECT count(*) FROM district) + (SELECT count(*) FROM service_category) + (SELECT count(*) FROM equipment)
              + (SELECT count(*) FROM energy_baselines) AS n`,
      );
      assert.equal(Number(empty.n), 0);
      await poolA.query(`ALTER TABLE equipment DROP CONSTRAINT no_air_quality_sensors`);

      // A fresh process (the CLI) computes the territory on its own: same bytes as this one's.
      const cli = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', path.join('prisma', 'seed', 'index.ts')], {
          cwd: ROOT,
          env: { ...process.env, DATABASE_URL: other.url, NODE_ENV: 'test' },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('close', (code) => resolve({ code, out }));
      });
      assert.equal(cli.code, 0, cli.out);
      assert.match(cli.out, /"seeded":true/);
      assert.deepEqual(await checksum(poolA), firstChecksum);

      // Concurrency: on an emptied database, two seeds at once write the territory once.
      await poolA.query(`TRUNCATE equipment, street, district, commune, service_category, collectivity, energy_baselines, telemetry_devices, events, equipment_alarm_faults, tickets, ticket_history, ticket_photos, interventions, intervention_history, mobility_assets, parking_facility_info, event_consumers CASCADE`);
      const results = await Promise.all([seed(poolA), seed(poolB)]);
      assert.deepEqual(results.map((r) => r.seeded).sort(), [false, true]);
      assert.deepEqual(await checksum(poolA), firstChecksum);
    } finally {
      await poolA.end();
      await poolB.end();
      await other.drop();
    }
  });
});
