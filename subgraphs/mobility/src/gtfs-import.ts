/**
 * Importing a GTFS feed: parse (gtfs-parse.ts), validate with a full report (gtfs-validate.ts),
 * make sure every stop is a BUS_STOP asset of the owning collectivity (found through the
 * equipment domain by reference = stop_id, ignoring case; the missing ones registered there with
 * the caller's token), then replace the network in one transaction (gtfs-write.ts). Any problem
 * and nothing is written: the report is the answer.
 */
import { PeerUnavailableError, type PeerResponse } from '@connecte/shared/peers';
import type { GtfsProblem, GtfsSource } from './gtfs-parse.js';
import { GtfsSourceError, parseGtfs } from './gtfs-parse.js';
import { validateGtfs, type GtfsNetwork } from './gtfs-validate.js';
import { writeNetwork } from './gtfs-write.js';
import type { MobilityResources } from './resources.js';
import type { GtfsFeedRow } from './types.js';

export interface GtfsImportOptions {
  collectivityId: string;
  dryRun: boolean;
  /** The caller's `Authorization` header, forwarded to equipment. */
  authorization: string;
  /** The caller's `sub`, recorded as `imported_by`. */
  importedBy: string;
  requestId?: string;
}

export type GtfsImportResult =
  | { ok: true; dryRun: boolean; feed: GtfsFeedRow | null; counts: Record<string, number>; warnings: string[]; stopsRegistered: string[]; stopsToRegister: string[] }
  | { ok: false; status: 422 | 503; problems: GtfsProblem[]; moreProblems: number; warnings: string[] };

const SEARCH = `query GtfsStops($c: ID!, $after: String) {
  equipmentSearch(filter: { kinds: [BUS_STOP], collectivityIds: [$c] }, first: 1000, after: $after) {
    edges { node { id reference status } }
    pageInfo { hasNextPage endCursor }
  }
}`;

const REGISTER = `mutation GtfsRegisterStop($input: RegisterEquipmentInput!) {
  registerEquipment(input: $input) { id reference }
}`;

interface SearchData {
  equipmentSearch: { edges: { node: { id: string; reference: string; status: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
}

/** BUS_STOP assets of the collectivity by lower-cased reference. */
async function existingStops(r: MobilityResources, options: GtfsImportOptions): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  let after: string | null = null;
  for (let page = 0; page < 100; page++) {
    const res: PeerResponse<SearchData> = await r.peers.query<SearchData>('equipment', SEARCH, { c: options.collectivityId, after }, { authorization: options.authorization, requestId: options.requestId });
    if (!res.data?.equipmentSearch) throw new PeerUnavailableError('equipment', res.errors?.[0]?.message ?? 'no data');
    for (const { node } of res.data.equipmentSearch.edges) if (node.status !== 'DECOMMISSIONED') found.set(node.reference.toLowerCase(), node.id);
    if (!res.data.equipmentSearch.pageInfo.hasNextPage) break;
    after = res.data.equipmentSearch.pageInfo.endCursor;
  }
  return found;
}

/** Parses, validates and (unless a dry run) imports a feed. Throws PeerUnavailableError when equipment does not answer. */
export async function importGtfs(r: MobilityResources, source: GtfsSource, options: GtfsImportOptions): Promise<GtfsImportResult> {
  let files;
  try {
    files = parseGtfs(source);
  } catch (error) {
    if (!(error instanceof GtfsSourceError)) throw error;
    return { ok: false, status: 422, problems: [error.problem], moreProblems: 0, warnings: [] };
  }
  const validation = validateGtfs(files);
  if (!validation.network) return { ok: false, status: 422, problems: validation.problems, moreProblems: validation.moreProblems, warnings: validation.warnings };
  const network = validation.network;

  const existing = await existingStops(r, options);
  const missing = network.stops.filter((s) => !existing.has(s.stopId.toLowerCase()));
  if (options.dryRun) {
    return { ok: true, dryRun: true, feed: null, counts: network.counts, warnings: validation.warnings, stopsRegistered: [], stopsToRegister: missing.map((s) => s.stopId) };
  }
  const registered = await registerStops(r, network, missing, options, files.tables.get('stops.txt')!.records);
  if ('problems' in registered) return { ok: false, status: 422, problems: registered.problems, moreProblems: 0, warnings: validation.warnings };
  for (const [ref, id] of registered.ids) existing.set(ref, id);

  const stopEquipment = new Map(network.stops.map((s) => [s.stopId, existing.get(s.stopId.toLowerCase())!]));
  const feedId = await r.inTransaction((client) =>
    writeNetwork(client, network, stopEquipment, {
      collectivityId: options.collectivityId,
      source: files.source,
      sha256: files.sha256,
      importedBy: options.importedBy,
      warnings: validation.warnings,
    }),
  );
  const { rows } = await r.db.pool.query<{ imported_at: Date }>('SELECT imported_at FROM gtfs_feeds WHERE id = $1', [feedId]);
  return {
    ok: true,
    dryRun: false,
    feed: {
      id: feedId,
      source: files.source,
      feedVersion: network.feedVersion,
      sha256: files.sha256,
      importedAt: rows[0].imported_at,
      counts: network.counts,
      warnings: validation.warnings,
      validFrom: network.validFrom,
      validTo: network.validTo,
    },
    counts: network.counts,
    warnings: validation.warnings,
    stopsRegistered: missing.map((s) => s.stopId),
    stopsToRegister: [],
  };
}

async function registerStops(
  r: MobilityResources,
  network: GtfsNetwork,
  missing: GtfsNetwork['stops'],
  options: GtfsImportOptions,
  records: { line: number; values: Record<string, string> }[],
): Promise<{ ids: Map<string, string> } | { problems: GtfsProblem[] }> {
  const ids = new Map<string, string>();
  const problems: GtfsProblem[] = [];
  const lineOf = new Map(records.map((rec) => [rec.values.stop_id, rec.line]));
  void network;
  for (const stop of missing) {
    const res = await r.peers.query<{ registerEquipment: { id: string; reference: string } }>(
      'equipment',
      REGISTER,
      {
        input: {
          kind: 'BUS_STOP',
          reference: stop.stopId,
          name: stop.name,
          collectivityId: options.collectivityId,
          location: { lon: stop.lon, lat: stop.lat },
          details: { name: stop.name, shelter: false },
        },
      },
      { authorization: options.authorization, requestId: options.requestId },
    );
    if (res.data?.registerEquipment) {
      ids.set(stop.stopId.toLowerCase(), res.data.registerEquipment.id);
      continue;
    }
    const error = res.errors?.[0];
    if (!error) throw new PeerUnavailableError('equipment', 'registerEquipment gave no answer');
    const field = error.extensions?.field ?? '';
    problems.push({
      file: 'stops.txt',
      line: lineOf.get(stop.stopId) ?? null,
      field: /location|lat|lon/.test(field) ? 'stop_lat' : /reference/.test(field) ? 'stop_id' : /name/.test(field) ? 'stop_name' : 'stop_id',
      code: error.extensions?.code === 'FORBIDDEN' ? 'FORBIDDEN' : 'STOP_NOT_REGISTERED',
      message: `stop “${stop.stopId}” cannot be registered as a BUS_STOP: ${error.message}`,
    });
  }
  return problems.length ? { problems } : { ids };
}
