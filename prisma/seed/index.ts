/**
 * The deterministic seed of the territory: collectivities, communes, Châlons' districts, the
 * street network, service categories and every piece of equipment (see README.md beside this
 * file for what is generated and why).
 *
 *   seed(pool)                 — library entry (the test harness and `npm start` use it)
 *   tsx prisma/seed/index.ts   — CLI, on DATABASE_URL
 *
 * The whole seed is one transaction under an advisory lock: a failure leaves nothing, two
 * concurrent seeds do not both run, and seeding a database that already holds the territory
 * (any collectivity, commune or equipment row) changes nothing.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { publishEvents } from '@connecte/shared/events';
import { buildEquipment, SEED_COUNTS, type EquipmentKind, type EquipmentPlan } from './equipment.js';
import { buildEnergyBaselines, insertEnergyBaselines } from './energy.js';
import { buildStreets, type StreetSeed } from './streets.js';
import { buildTickets, insertTickets, SEED_TICKETS, TICKET_CHECKS, type TicketPlan } from './tickets.js';
import { lineWkt } from './geo.js';
import { buildGtfs, type GtfsSeedFeed } from './gtfs.js';
import { insertParkingInfo } from './parking.js';
import { parseGtfs } from '@connecte/subgraph-mobility/gtfs-parse';
import { validateGtfs } from '@connecte/subgraph-mobility/gtfs-validate';
import { writeNetwork } from '@connecte/subgraph-mobility/gtfs-write';
import {
  AGGLO_ID,
  buildDistricts,
  COLLECTIVITIES,
  INSEE,
  loadCommunes,
  SERVICE_CATEGORIES,
  type CommuneSeed,
  type DistrictSeed,
} from './territory.js';

export { SEED_COUNTS, LIGHT_POINTS, DIMMABLE_LIGHT_POINTS, PRESENCE_DETECTORS, BUSES } from './equipment.js';
export type { EquipmentKind, EquipmentSeed, EquipmentStatus, LightPointPlan } from './equipment.js';
export { COLLECTIVITIES, SERVICE_CATEGORIES, DISTRICTS, INSEE, AGGLO_ID } from './territory.js';
export { SEED_TICKETS, buildTickets, type TicketPlan } from './tickets.js';
export { buildEnergyBaselines, BUILDING_KWH_PER_M2_YEAR, LIGHTING_HOURS_PER_YEAR, REPLACED_HPS, type EnergyBaselineSeed } from './energy.js';

/** Rows per territory table written by the seed (checked by the seed itself). */
export const SEED_TERRITORY_COUNTS = {
  collectivity: COLLECTIVITIES.length,
  commune: 30,
  district: 10,
  service_category: SERVICE_CATEGORIES.length,
  street: 928,
} as const;

/** Advisory lock held for the whole seed transaction (72707369 is Prisma's migrate lock). */
export const SEED_LOCK = 72707371;

export interface SeedPlan {
  communes: CommuneSeed[];
  districts: DistrictSeed[];
  streets: StreetSeed[];
  equipment: EquipmentPlan;
  /** Citizens' tickets, their history and work orders (prisma/seed/tickets.ts). */
  tickets: TicketPlan;
}

let cachedGtfs: GtfsSeedFeed | undefined;

/** The bus network's GTFS feed, generated from the plan (prisma/seed/gtfs.ts; cached). */
export function buildSeedGtfs(): GtfsSeedFeed {
  if (!cachedGtfs) buildSeedPlan();
  return cachedGtfs!;
}

/** Where the generated feed is committed (`npm run gtfs:generate` rewrites it; a test checks it is current). */
export const SEED_GTFS_SOURCE = 'subgraphs/mobility/gtfs/chalons-agglo';

let cachedPlan: SeedPlan | undefined;

/** Everything the seed writes, computed in memory (pure and deterministic; cached). */
export function buildSeedPlan(): SeedPlan {
  if (!cachedPlan) {
    const communes = loadCommunes();
    const districts = buildDistricts(communes.find((c) => c.code === INSEE.CHALONS)!);
    const streets = buildStreets(communes);
    const equipment = buildEquipment(communes, streets);
    // The network before the tickets: planned works at bus stops name the routes serving them.
    cachedGtfs = buildGtfs({ communes, streets, equipment });
    cachedPlan = { communes, districts, streets, equipment, tickets: buildTickets(communes, streets, equipment.rows, cachedGtfs.routesOfStop) };
  }
  return cachedPlan;
}

export interface SeedResult {
  /** False when the database already held the territory (nothing was written). */
  seeded: boolean;
  /** Rows per territory table, per equipment kind, and `equipment` in total, after the call. */
  counts: Record<string, number>;
}

export async function seed(pool: pg.Pool, options: { log?: (msg: string) => void } = {}): Promise<SeedResult> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [SEED_LOCK]);
    const { rows } = await client.query<{ seeded: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM collectivity) OR EXISTS (SELECT 1 FROM commune) OR EXISTS (SELECT 1 FROM equipment) AS seeded`,
    );
    if (rows[0].seeded) {
      const counts = await countRows(client);
      await client.query('COMMIT');
      log('seed: the territory is already there, nothing to do');
      return { seeded: false, counts };
    }
    const plan = buildSeedPlan();
    await insertTerritory(client, plan);
    await insertEquipment(client, plan.equipment);
    await publishRegistrations(client, plan.equipment);
    await insertEnergyBaselines(client, buildEnergyBaselines(plan.equipment.rows));
    await insertTickets(client, plan.tickets);
    await insertNetwork(client);
    await insertParkingInfo(client, plan.equipment);
    await verify(client);
    const counts = await countRows(client);
    await client.query('COMMIT');
    // Fresh rows have no planner statistics: without them spatial searches pick poor plans.
    await client.query('ANALYZE');
    log(
      `seed: ${counts.commune} communes, ${counts.street} streets, ${counts.equipment} equipment ` +
        `(${counts.LIGHT_POINT} light points), ${counts.tickets} tickets, ${counts.interventions} interventions in ${Math.round(performance.now() - started)} ms`,
    );
    return { seeded: true, counts };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

async function insertTerritory(client: pg.PoolClient, plan: SeedPlan): Promise<void> {
  await client.query(
    `INSERT INTO collectivity (id, name, kind, insee_code, siren)
     SELECT * FROM unnest($1::text[], $2::text[], $3::collectivity_kind[], $4::text[], $5::text[])`,
    [
      COLLECTIVITIES.map((c) => c.id),
      COLLECTIVITIES.map((c) => c.name),
      COLLECTIVITIES.map((c) => c.kind),
      COLLECTIVITIES.map((c) => c.inseeCode),
      COLLECTIVITIES.map((c) => c.siren),
    ],
  );
  await client.query(
    `INSERT INTO service_category (code, label, competence)
     SELECT * FROM unnest($1::text[], $2::text[], $3::competence[])`,
    [SERVICE_CATEGORIES.map((c) => c.code), SERVICE_CATEGORIES.map((c) => c.label), SERVICE_CATEGORIES.map((c) => c.competence)],
  );
  await client.query(
    `INSERT INTO commune (insee_code, name, collectivity_id, agglomeration, geom)
     SELECT code, name, collectivity_id, agglomeration, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(geojson), 4326))
     FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[]) AS t(code, name, collectivity_id, agglomeration, geojson)`,
    [
      plan.communes.map((c) => c.code),
      plan.communes.map((c) => c.name),
      plan.communes.map((c) => c.collectivityId),
      plan.communes.map((c) => c.agglomeration),
      plan.communes.map((c) => JSON.stringify(c.geometry)),
    ],
  );
  // Voronoi cells clipped to the commune: the districts partition it exactly.
  const { rowCount } = await client.query(
    `INSERT INTO district (id, name, insee_code, geom)
     SELECT t.id, t.name, t.insee_code,
            ST_Multi(ST_CollectionExtract(ST_Intersection(c.geom, ST_SetSRID(ST_GeomFromGeoJSON(t.cell), 4326)), 3))
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(id, name, insee_code, cell)
     JOIN commune c ON c.insee_code = t.insee_code`,
    [
      plan.districts.map((d) => d.id),
      plan.districts.map((d) => d.name),
      plan.districts.map((d) => d.inseeCode),
      plan.districts.map((d) => JSON.stringify(d.cell)),
    ],
  );
  if (rowCount !== plan.districts.length) throw new Error(`seed: ${rowCount} districts written, ${plan.districts.length} planned`);
  await client.query(
    `INSERT INTO street (id, name, insee_code, length_m, geom)
     SELECT id, name, insee_code, ST_Length(g::geography), g
     FROM (SELECT id, name, insee_code, ST_GeomFromText(wkt, 4326) AS g
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(id, name, insee_code, wkt)) s`,
    [
      plan.streets.map((s) => s.id),
      plan.streets.map((s) => s.name),
      plan.streets.map((s) => s.inseeCode),
      plan.streets.map((s) => lineWkt(s.line)),
    ],
  );
}

/**
 * The equipment domain announces each seeded asset as it does a registration: one
 * `equipment.changed` REGISTERED event per asset, in the seed's transaction. Other domains keep
 * what they need of an asset from these events (telemetry's device directory), never from
 * equipment's tables.
 */
async function publishRegistrations(client: pg.PoolClient, plan: EquipmentPlan): Promise<void> {
  const at = new Date().toISOString();
  const BATCH = 5000;
  let lastEventId = '0';
  for (let start = 0; start < plan.rows.length; start += BATCH) {
    const batch = plan.rows.slice(start, start + BATCH);
    const ids = await publishEvents(
      client,
      batch.map((r) => ({
        topic: 'equipment.changed',
        collectivityId: r.collectivityId,
        payload: {
          equipmentId: r.id,
          change: 'REGISTERED',
          kind: r.kind,
          status: r.status,
          actor: { sub: 'seed', roles: [] },
          changes: [],
          snapshot: {
            id: r.id,
            kind: r.kind,
            reference: r.reference,
            name: r.name,
            status: r.status,
            collectivityId: r.collectivityId,
            inseeCode: r.inseeCode,
            lon: r.location?.[0] ?? null,
            lat: r.location?.[1] ?? null,
            installedOn: r.installedOn,
            parentId: r.parentId,
            details: r.details,
            createdAt: at,
            updatedAt: at,
            decommissionedAt: r.decommissionedAt,
          },
        },
      })),
    );
    // Telemetry's seed: its directory as it stands once it has applied these events (it resumes
    // after the newest), so that a fresh hub does not replay thousands of registrations first.
    await client.query(
      `INSERT INTO telemetry_devices (equipment_id, collectivity_id, kind, status, parent_id, event_id)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])`,
      [batch.map((r) => r.id), batch.map((r) => r.collectivityId), batch.map((r) => r.kind), batch.map((r) => r.status), batch.map((r) => r.parentId), ids],
    );
    // Mobility's likewise: its directory of the assets it runs, and its consumer's position.
    const own = batch.flatMap((r, i) => (MOBILITY_KINDS.has(r.kind) ? [{ r, eventId: ids[i] }] : []));
    await client.query(
      `INSERT INTO mobility_assets (equipment_id, collectivity_id, kind, reference, name, status, geom, parent_id, details, event_id)
       SELECT id, collectivity_id, kind, reference, name, status,
              CASE WHEN lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END, parent_id, details, event_id
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[], $9::text[], $10::jsonb[], $11::bigint[])
         AS t(id, collectivity_id, kind, reference, name, status, lon, lat, parent_id, details, event_id)`,
      [
        own.map(({ r }) => r.id),
        own.map(({ r }) => r.collectivityId),
        own.map(({ r }) => r.kind),
        own.map(({ r }) => r.reference),
        own.map(({ r }) => r.name),
        own.map(({ r }) => r.status),
        own.map(({ r }) => r.location?.[0] ?? null),
        own.map(({ r }) => r.location?.[1] ?? null),
        own.map(({ r }) => r.parentId),
        own.map(({ r }) => JSON.stringify(r.details)),
        own.map(({ eventId }) => eventId),
      ],
    );
    lastEventId = ids[ids.length - 1] ?? lastEventId;
  }
  await client.query(
    `INSERT INTO event_consumers (consumer, position) VALUES ('mobility.asset-directory', $1)
     ON CONFLICT (consumer) DO UPDATE SET position = GREATEST(event_consumers.position, excluded.position)`,
    [lastEventId],
  );
}

/** The kinds mobility keeps in `mobility_assets` (subgraphs/mobility/src/types.ts `MOBILITY_KINDS`). */
const MOBILITY_KINDS: ReadonlySet<string> = new Set(['BUS', 'BUS_STOP', 'PARKING_FACILITY', 'PARKING_SENSOR', 'TRAFFIC_SIGNAL_CONTROLLER']);

/** Parents before children (the rows come out of the plan in that order already). */
async function insertEquipment(client: pg.PoolClient, plan: EquipmentPlan): Promise<void> {
  const rows = plan.rows;
  const BATCH = 5000;
  for (let start = 0; start < rows.length; start += BATCH) {
    const batch = rows.slice(start, start + BATCH);
    await client.query(
      `INSERT INTO equipment (id, kind, reference, name, status, collectivity_id, insee_code, location,
                              installed_on, parent_id, details, decommissioned_at)
       SELECT id, kind, reference, name, status, collectivity_id, insee_code,
              CASE WHEN lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END,
              installed_on, parent_id, details, decommissioned_at
       FROM unnest($1::text[], $2::equipment_kind[], $3::text[], $4::text[], $5::equipment_status[], $6::text[],
                   $7::text[], $8::float8[], $9::float8[], $10::date[], $11::text[], $12::jsonb[], $13::timestamptz[])
         AS t(id, kind, reference, name, status, collectivity_id, insee_code, lon, lat, installed_on, parent_id, details,
              decommissioned_at)`,
      [
        batch.map((r) => r.id),
        batch.map((r) => r.kind),
        batch.map((r) => r.reference),
        batch.map((r) => r.name),
        batch.map((r) => r.status),
        batch.map((r) => r.collectivityId),
        batch.map((r) => r.inseeCode),
        batch.map((r) => r.location?.[0] ?? null),
        batch.map((r) => r.location?.[1] ?? null),
        batch.map((r) => r.installedOn),
        batch.map((r) => r.parentId),
        batch.map((r) => JSON.stringify(r.details)),
        batch.map((r) => r.decommissionedAt),
      ],
    );
  }
}

/**
 * The bus network, imported as any GTFS feed is (the mobility importer's parse, validation and
 * write), each stop mapped to its seeded BUS_STOP asset.
 */
async function insertNetwork(client: pg.PoolClient): Promise<void> {
  const feed = buildSeedGtfs();
  const files = parseGtfs({ files: feed.files, name: SEED_GTFS_SOURCE });
  const { network, problems, warnings } = validateGtfs(files);
  if (!network) throw new Error(`seed: the generated GTFS feed is invalid:\n  - ${problems.map((p) => `${p.file}:${p.line ?? '-'} ${p.field ?? ''} ${p.message}`).join('\n  - ')}`);
  await writeNetwork(client, network, feed.stopEquipment, { collectivityId: AGGLO_ID, source: SEED_GTFS_SOURCE, sha256: files.sha256, importedBy: 'seed', warnings });
}

/** The seed checks what it wrote; any violation rolls the whole seed back. */
async function verify(client: pg.PoolClient): Promise<void> {
  const problems: string[] = [];
  const counts = await countRows(client);
  for (const [table, expected] of Object.entries(SEED_TERRITORY_COUNTS)) {
    if (counts[table] !== expected) problems.push(`${table}: ${counts[table]} rows, expected ${expected}`);
  }
  for (const [kind, expected] of Object.entries(SEED_COUNTS)) {
    if ((counts[kind] ?? 0) !== expected) problems.push(`${kind}: ${counts[kind] ?? 0} rows, expected ${expected}`);
  }
  const baselines = SEED_COUNTS.LIGHT_POINT + SEED_COUNTS.ENERGY_METER;
  if (counts.energy_baselines !== baselines) problems.push(`energy_baselines: ${counts.energy_baselines} rows, expected ${baselines}`);
  const tickets = SEED_TICKETS.tickets + SEED_TICKETS.duplicates;
  if (counts.tickets !== tickets) problems.push(`tickets: ${counts.tickets} rows, expected ${tickets}`);
  const { rows } = await client.query<{ check: string; n: number }>(`
    SELECT 'equipment outside the commune of its insee_code' AS check, count(*)::int AS n
      FROM equipment e JOIN commune c ON c.insee_code = e.insee_code
     WHERE e.location IS NULL OR NOT ST_Covers(c.geom, e.location)
    UNION ALL
    SELECT 'municipal equipment outside its own commune', count(*)::int
      FROM equipment e JOIN collectivity k ON k.id = e.collectivity_id
     WHERE k.kind = 'COMMUNE' AND e.insee_code IS DISTINCT FROM k.insee_code
    UNION ALL
    SELECT 'streets not inside their commune', count(*)::int
      FROM street s JOIN commune c ON c.insee_code = s.insee_code
     WHERE NOT ST_Covers(c.geom, s.geom)
    UNION ALL
    SELECT 'invalid or empty districts', count(*)::int
      FROM district WHERE ST_IsEmpty(geom) OR NOT ST_IsValid(geom)
    UNION ALL
    SELECT 'energy baselines not of a light point or energy meter of that kind and collectivity', count(*)::int
      FROM energy_baselines b LEFT JOIN equipment e ON e.id = b.equipment_id
     WHERE e.id IS NULL OR e.kind::text <> b.kind OR e.collectivity_id <> b.collectivity_id
    UNION ALL
    SELECT 'GTFS stops that are not the BUS_STOP asset of their reference', count(*)::int
      FROM gtfs_stops g LEFT JOIN equipment e ON e.id = g.equipment_id
     WHERE e.id IS NULL OR e.kind <> 'BUS_STOP' OR e.reference <> g.stop_id
    UNION ALL
    SELECT 'BUS_STOP assets in service that no GTFS stop is', count(*)::int
      FROM equipment e WHERE e.kind = 'BUS_STOP' AND e.status <> 'DECOMMISSIONED'
       AND NOT EXISTS (SELECT 1 FROM gtfs_stops g WHERE g.equipment_id = e.id)
    UNION ALL${TICKET_CHECKS}`);
  for (const row of rows) if (row.n > 0) problems.push(`${row.check}: ${row.n}`);
  if (problems.length) throw new Error(`seed: the generated territory breaks its own rules:\n  - ${problems.join('\n  - ')}`);
}

async function countRows(client: pg.PoolClient): Promise<Record<string, number>> {
  const { rows } = await client.query<{ key: string; n: number }>(`
    SELECT 'collectivity' AS key, count(*)::int AS n FROM collectivity
    UNION ALL SELECT 'commune', count(*)::int FROM commune
    UNION ALL SELECT 'district', count(*)::int FROM district
    UNION ALL SELECT 'street', count(*)::int FROM street
    UNION ALL SELECT 'service_category', count(*)::int FROM service_category
    UNION ALL SELECT 'equipment', count(*)::int FROM equipment
    UNION ALL SELECT 'energy_baselines', count(*)::int FROM energy_baselines
    UNION ALL SELECT 'tickets', count(*)::int FROM tickets
    UNION ALL SELECT 'interventions', count(*)::int FROM interventions
    UNION ALL SELECT kind::text, count(*)::int FROM equipment GROUP BY kind`);
  const counts: Record<string, number> = {};
  for (const row of rows) counts[row.key] = row.n;
  return counts;
}


const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  // Only DATABASE_URL matters here: validate it alone (same rules and default as the services),
  // so that an unrelated variable (e.g. JWT_SECRET in production) cannot stop a seed.
  const { loadConfigOrExit } = await import('@connecte/shared/config');
  const { DATABASE_URL } = loadConfigOrExit({ DATABASE_URL: process.env.DATABASE_URL });
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  try {
    const result = await seed(pool, { log: (msg) => console.log(msg) });
    console.log(JSON.stringify(result));
  } catch (error) {
    console.error((error as Error).message);
    process.exitCode = 1;
  } finally {
    await pool.end();
  }
}
