/**
 * The tickets tests' hub: territory, equipment, telemetry and tickets behind the gateway, over a
 * seeded database of the file's own whose tickets domain starts empty (whatever the seed puts
 * there), tokens for every role, a report helper, and places: a point inside each of the three
 * communes, one in the territory outside them (Compertrix), one outside the territory (Paris),
 * and fresh spots (lamp positions at least 150 m apart, so that reports at different spots are
 * never each other's duplicates).
 */
import assert from 'node:assert/strict';
import { signDevelopmentToken, type Role } from '@connecte/shared/auth';
import type { Config } from '@connecte/shared/config';
import { createTestDatabase, gql, startHub, tokenFor, type GraphQLResponse, type Hub, type TestDatabase } from '@connecte/testkit';
import pg from 'pg';
import { ticketResourcesFor } from '../src/context.js';
import type { TicketResources } from '../src/resources.js';

/** Points checked with territory's `territory_commune_at`. */
export const POINTS = {
  /** Châlons-en-Champagne (51108), collectivity `chalons`. */
  chalons: { lon: 4.365, lat: 48.957 },
  /** Fagnières (51242), collectivity `fagnieres`. */
  fagnieres: { lon: 4.318, lat: 48.963 },
  /** Saint-Martin-sur-le-Pré (51504), collectivity `saint-martin-sur-le-pre`. */
  saintMartin: { lon: 4.345, lat: 48.985 },
  /** Compertrix (51160): in the territory (the agglomeration), outside the three communes. */
  compertrix: { lon: 4.3239, lat: 48.9266 },
  /** Paris: outside the territory. */
  outside: { lon: 2.35, lat: 48.85 },
} as const;

export const INSEE = { chalons: '51108', fagnieres: '51242', saintMartin: '51504', compertrix: '51160' } as const;

export type Place = { lon: number; lat: number };

export const REPORT_MUTATION = `mutation Report($input: ReportInput!) {
  reportProblem(input: $input) {
    notice
    duplicateOf { id status }
    ticket { id status version collectivity { id } service inseeCode address description alreadyKnown equipment { id }
             duplicateOf { id } location { coordinates } coarseLocation { coordinates } reporter { accountId name email phone }
             serviceLevel { acknowledgeDueAt resolveDueAt acknowledgeBreached resolveBreached } createdAt }
  }
}`;

export interface ReportInput {
  category: string;
  location: Place;
  description?: string;
  name?: string | null;
  email?: string | null;
  phone?: string | null;
  photoIds?: string[];
  photoSecrets?: string[];
}

export interface TicketsHub {
  hub: Hub;
  database: TestDatabase;
  config: Config;
  /** The gateway's /graphql. */
  url: string;
  /** The tickets subgraph's resources (its pool, bus, config). */
  resources: TicketResources;
  /** A pool of the test's own on the database (assertions, setup). */
  pool: pg.Pool;
  gql<T = any>(query: string, options?: { token?: string; variables?: Record<string, unknown> }): Promise<GraphQLResponse<T>>;
  /** Like `gql` but fails on any error. */
  ok<T = any>(query: string, options?: { token?: string; variables?: Record<string, unknown> }): Promise<T>;
  /** A token for roles in collectivities (the same `sub` for the same pair). */
  token(roles: Role[], collectivities: string[]): Promise<string>;
  /** A citizen token with this `sub`. */
  citizen(sub: string): Promise<string>;
  /** A token with an explicit `sub`, roles and collectivities. */
  tokenAs(sub: string, roles: Role[], collectivities: string[]): Promise<string>;
  /** `reportProblem` through the gateway; the raw answer. */
  report(input: ReportInput, token?: string): Promise<GraphQLResponse<any>>;
  /** `reportProblem` that must succeed: the `ReportResult`. */
  reportOk(input: ReportInput, token?: string): Promise<any>;
  /** A fresh point inside a commune, at least 150 m from every spot handed out before (a lamp's position). */
  spot(commune: keyof typeof INSEE): Promise<Place>;
  /** How many rows the tickets domain holds (nothing-written checks). */
  counts(): Promise<{ tickets: number; history: number; events: number; outbox: number }>;
  close(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Keep the tickets the seed may have made (default: the tickets domain starts empty). */
  keepSeededTickets?: boolean;
}

export async function startTicketsHub(options: StartOptions = {}): Promise<TicketsHub> {
  const database = await createTestDatabase({ seed: true });
  const pool = new pg.Pool({ connectionString: database.url, max: 4 });
  let hub: Hub | undefined;
  try {
    if (!options.keepSeededTickets) {
      await pool.query(`TRUNCATE ticket_photos, ticket_history, intervention_history, interventions, ticket_outbox, personal_data_access_log,
                                 personal_data_erasures, ticket_known_alarms, tickets RESTART IDENTITY CASCADE`);
    }
    hub = await startHub(database.url, options.env ?? {}, { subgraphs: ['territory', 'equipment', 'telemetry', 'tickets'] });
  } catch (error) {
    await pool.end();
    await database.drop();
    throw error;
  }
  const running = hub;
  const config = running.config;
  const resources = ticketResourcesFor(running.subgraphs.tickets.db);
  const url = running.gatewayUrl;
  const call = <T = any>(query: string, o: { token?: string; variables?: Record<string, unknown> } = {}) => gql<T>(url, query, o);
  const ok = async <T = any>(query: string, o: { token?: string; variables?: Record<string, unknown> } = {}) => {
    const answer = await call<T>(query, o);
    assert.equal(answer.errors, undefined, `unexpected errors: ${JSON.stringify(answer.errors)}`);
    return answer.data as T;
  };
  const tokenAs = (sub: string, roles: Role[], collectivities: string[]) => signDevelopmentToken({ sub, roles, collectivities, expiresIn: '1h' }, config);
  const report = (input: ReportInput, token?: string) =>
    call(REPORT_MUTATION, { token, variables: { input: { description: 'Something is wrong here', ...input } } });
  const used: Place[] = [];
  const candidates = new Map<string, Place[]>();
  const metres = (a: Place, b: Place) => {
    const dy = (a.lat - b.lat) * 111_200;
    const dx = (a.lon - b.lon) * 111_320 * Math.cos((a.lat * Math.PI) / 180);
    return Math.hypot(dx, dy);
  };
  return {
    hub: running,
    database,
    config,
    url,
    resources,
    pool,
    gql: call,
    ok,
    token: (roles, collectivities) => tokenFor(config, roles, collectivities),
    citizen: (sub) => tokenAs(sub, ['citizen'], []),
    tokenAs,
    report,
    async reportOk(input, token) {
      const answer = await report(input, token);
      assert.equal(answer.errors, undefined, `report refused: ${JSON.stringify(answer.errors)}`);
      return answer.data.reportProblem;
    },
    async spot(commune) {
      let list = candidates.get(commune);
      if (!list) {
        const { rows } = await pool.query<{ lon: number; lat: number }>(
          `SELECT ST_X(location) AS lon, ST_Y(location) AS lat FROM equipment
           WHERE kind = 'LIGHT_POINT' AND status = 'IN_SERVICE' AND insee_code = $1 AND location IS NOT NULL ORDER BY id`,
          [INSEE[commune]],
        );
        list = rows;
        candidates.set(commune, list);
      }
      const found = list.find((place) => used.every((other) => metres(place, other) >= 150));
      assert.ok(found, `no fresh spot left in ${commune}`);
      used.push(found);
      return { lon: found.lon, lat: found.lat };
    },
    async counts() {
      const { rows } = await pool.query<{ tickets: number; history: number; events: number; outbox: number }>(
        `SELECT (SELECT count(*)::int FROM tickets) AS tickets, (SELECT count(*)::int FROM ticket_history) AS history,
                (SELECT count(*)::int FROM events WHERE topic = 'tickets.changed') AS events, (SELECT count(*)::int FROM ticket_outbox) AS outbox`,
      );
      return rows[0];
    },
    async close() {
      await running.close();
      await pool.end();
      await database.drop();
    },
  };
}

/** Metres between two points (spherical approximation, good to a few per cent at this scale). */
export function metresBetween(a: Place, b: Place): number {
  const r = 6_371_008.8;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * r * Math.asin(Math.sqrt(h));
}

/** A point `metres` east of `place` (same latitude). */
export function east(place: Place, metres: number): Place {
  return { lon: place.lon + metres / (111_320 * Math.cos((place.lat * Math.PI) / 180)), lat: place.lat };
}

/** A point `metres` north of `place`. */
export function north(place: Place, metres: number): Place {
  return { lon: place.lon, lat: place.lat + metres / 111_195 };
}
