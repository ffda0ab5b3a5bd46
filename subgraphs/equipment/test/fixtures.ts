/**
 * A small, known territory for the equipment tests: three collectivities, three box-shaped
 * communes (territory's tables, written here only because these tests run without the
 * territory seed), and a few hundred assets placed around Châlons' town hall.
 */
import pg from 'pg';
import type { Role } from '@connecte/shared/auth';
import type { Config } from '@connecte/shared/config';
import { createLogger } from '@connecte/shared/log';
import { createTestDatabase, startService, type GqlOptions, type GraphQLResponse, type TestDatabase, type TestService } from '@connecte/testkit';
import { mulberry32 } from '../../../prisma/seed/rng.js';

export const CENTRE = { lon: 4.365, lat: 48.957 };
/** Fagnières' box: west of Châlons' box. */
export const FAGNIERES_POINT = { lon: 4.305, lat: 48.96 };
export const OUTSIDE_TERRITORY = { lon: 2.35, lat: 48.85 };

const box = (minLon: number, minLat: number, maxLon: number, maxLat: number) =>
  `MULTIPOLYGON(((${minLon} ${minLat},${maxLon} ${minLat},${maxLon} ${maxLat},${minLon} ${maxLat},${minLon} ${minLat})))`;


interface FixtureRow {
  id: string;
  kind: string;
  collectivityId: string;
  status?: string;
  inseeCode: string | null;
  lon: number | null;
  lat: number | null;
  parentId?: string;
  details?: Record<string, unknown>;
  name?: string;
}

export const LIGHT_POINTS = 120;

function rows(): FixtureRow[] {
  const random = mulberry32(51108);
  const out: FixtureRow[] = [
    { id: 'cab-1', kind: 'ELECTRICAL_CABINET', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3655, lat: 48.9572 },
    { id: 'cab-2', kind: 'ELECTRICAL_CABINET', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3700, lat: 48.9600 },
    { id: 'cam-1', kind: 'CAMERA', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3652, lat: 48.9568, name: 'Caméra place Foch', details: { model: 'Axis Q6135', ptz: true, retentionDays: 30 } },
    { id: 'cam-2', kind: 'CAMERA', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3665, lat: 48.9575, details: { model: 'Axis P3245', ptz: false, retentionDays: 15 } },
    { id: 'cam-3', kind: 'CAMERA', collectivityId: 'fagnieres', inseeCode: '51242', lon: FAGNIERES_POINT.lon, lat: FAGNIERES_POINT.lat, details: { model: 'Bosch', ptz: false, retentionDays: 10 } },
    { id: 'cam-4', kind: 'CAMERA', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3600, lat: 48.9550, parentId: 'bldg-1', details: { model: 'Hikvision', ptz: false, retentionDays: 7 } },
    { id: 'bldg-1', kind: 'BUILDING', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3600, lat: 48.9550, details: { name: 'École Jean Jaurès', use: 'SCHOOL', heatedAreaM2: 2400 } },
    { id: 'aq-1', kind: 'AIR_QUALITY_SENSOR', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3600, lat: 48.9550, parentId: 'bldg-1', details: { room: 'CM2' } },
    { id: 'heat-1', kind: 'HEATING_CONTROLLER', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3600, lat: 48.9550, parentId: 'bldg-1' },
    { id: 'bus-1', kind: 'BUS', collectivityId: 'chalons-agglo', inseeCode: null, lon: null, lat: null, details: { fleetNumber: '212', capacity: 90, energy: 'HYBRID', signalPriority: true } },
    { id: 'pd-1', kind: 'PRESENCE_DETECTOR', collectivityId: 'chalons', inseeCode: '51108', lon: 4.3651, lat: 48.9571, details: { detectionRangeM: 12, lightPointId: 'lp-0001' } },
  ];
  for (let i = 1; i <= LIGHT_POINTS; i++) {
    // Within ~1 km of the centre.
    const lon = CENTRE.lon + (random() - 0.5) * 0.026;
    const lat = CENTRE.lat + (random() - 0.5) * 0.018;
    const dimmable = i % 3 === 0;
    out.push({
      id: `lp-${String(i).padStart(4, '0')}`,
      kind: 'LIGHT_POINT',
      collectivityId: 'chalons',
      inseeCode: '51108',
      status: i % 25 === 0 ? 'DECOMMISSIONED' : i % 10 === 0 ? 'FAULT' : i % 7 === 0 ? 'MAINTENANCE' : 'IN_SERVICE',
      lon,
      lat,
      parentId: i <= 40 ? 'cab-1' : 'cab-2',
      details: { powerW: 30 + (i % 4) * 10, lampType: 'LED', dimmable, colorTemperatureK: 3000, poleHeightM: 6 },
    });
  }
  for (let i = 1; i <= 10; i++) {
    out.push({
      id: `lpf-${String(i).padStart(3, '0')}`,
      kind: 'LIGHT_POINT',
      collectivityId: 'fagnieres',
      inseeCode: '51242',
      lon: FAGNIERES_POINT.lon + (random() - 0.5) * 0.01,
      lat: FAGNIERES_POINT.lat + (random() - 0.5) * 0.01,
      details: { powerW: 50, lampType: 'LED', dimmable: true },
    });
  }
  return out;
}

export async function insertFixtures(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(`INSERT INTO collectivity (id, name, kind, insee_code, siren) VALUES
      ('chalons', 'Châlons-en-Champagne', 'COMMUNE', '51108', '215101088'),
      ('fagnieres', 'Fagnières', 'COMMUNE', '51242', '215102425'),
      ('saint-martin-sur-le-pre', 'Saint-Martin-sur-le-Pré', 'COMMUNE', '51504', '215105048'),
      ('chalons-agglo', 'Châlons Agglo', 'AGGLOMERATION', NULL, '200066934')`);
    await client.query(
      `INSERT INTO commune (insee_code, name, collectivity_id, geom) VALUES
       ('51108', 'Châlons-en-Champagne', 'chalons', ST_GeomFromText($1, 4326)),
       ('51242', 'Fagnières', 'fagnieres', ST_GeomFromText($2, 4326)),
       ('51504', 'Saint-Martin-sur-le-Pré', 'saint-martin-sur-le-pre', ST_GeomFromText($3, 4326))`,
      [box(4.33, 48.93, 4.40, 48.99), box(4.28, 48.93, 4.33, 48.99), box(4.33, 48.99, 4.40, 49.02)],
    );
    const all = rows();
    await client.query(
      `INSERT INTO equipment (id, kind, reference, name, status, collectivity_id, insee_code, location, parent_id, details, installed_on)
       SELECT id, kind::equipment_kind, upper(id), name, status::equipment_status, collectivity_id, insee_code,
              CASE WHEN lon IS NULL THEN NULL ELSE ST_SetSRID(ST_MakePoint(lon, lat), 4326) END, parent_id, details, '2021-06-15'
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::float8[], $9::text[], $10::jsonb[])
         AS t(id, kind, name, status, collectivity_id, insee_code, lon, lat, parent_id, details)`,
      [
        all.map((r) => r.id),
        all.map((r) => r.kind),
        all.map((r) => r.name ?? null),
        all.map((r) => r.status ?? 'IN_SERVICE'),
        all.map((r) => r.collectivityId),
        all.map((r) => r.inseeCode),
        all.map((r) => r.lon),
        all.map((r) => r.lat),
        all.map((r) => r.parentId ?? null),
        all.map((r) => JSON.stringify(r.details ?? {})),
      ],
    );
    await client.query('COMMIT');
  } finally {
    await client.end();
  }
}

export type { GraphQLResponse };

export interface EquipmentTestEnv {
  db: TestDatabase;
  pool: pg.Pool;
  service: TestService;
  config: Config;
  /** Every line the subgraph logged at info level or above, parsed. */
  logLines: Record<string, any>[];
  gql<T = any>(query: string, options?: GqlOptions): Promise<GraphQLResponse<T>>;
  token(roles: Role[], collectivities: string[]): Promise<string>;
  close(): Promise<void>;
}

/** A database of its own with the fixtures, and the equipment subgraph on an ephemeral port. */
export async function startEquipment(): Promise<EquipmentTestEnv> {
  const db = await createTestDatabase({ seed: false });
  await insertFixtures(db.url);
  const logLines: Record<string, any>[] = [];
  const log = createLogger('equipment', { LOG_LEVEL: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line)) });
  const service = await startService('equipment', { db, log });
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  return {
    db,
    pool,
    service,
    config: service.config,
    logLines,
    gql: service.gql,
    token: service.token,
    async close() {
      await pool.end();
      await service.close();
      await db.drop();
    },
  };
}
