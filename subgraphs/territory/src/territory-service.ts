import { checkCoordinates, checkNear } from '@connecte/shared/geo';
import { badInput } from '@connecte/shared/errors';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import type { CommuneFilter, StreetFilter } from './generated/graphql.js';
import type { TerritoryLoaders } from './loaders.js';
import type {
  CollectivityRecord,
  CommuneRecord,
  Competence,
  DistrictRecord,
  NamedKey,
  ServiceCategoryRecord,
  StreetCriteria,
  StreetRecord,
  TerritoryStore,
  TerritorySummary,
} from './territory-store.js';

/** How far `locate` looks for a street: beyond this a point is not "on" any street. */
export const NEAREST_STREET_RADIUS_METERS = 500;
const MAX_NAME_FILTER_LENGTH = 200;

function checkNameFilter(text: string | null | undefined, field: string): string | null {
  if (text == null || text === '') return null;
  if (text.length > MAX_NAME_FILTER_LENGTH) throw badInput(field, `must be at most ${MAX_NAME_FILTER_LENGTH} characters`);
  return text;
}

/*
 * Cursors carry the list they come from, so a cursor of one list passed to another is
 * rejected instead of silently positioning somewhere.
 */
const communeCursorKey = (row: CommuneRecord) => JSON.stringify(['Commune', row.inseeCode]);
const districtCursorKey = (row: DistrictRecord) => JSON.stringify(['District', row.name, row.id]);
const streetCursorKey = (row: StreetRecord) => JSON.stringify(['Street', row.name, row.id]);

function cursorParts(after: string | null | undefined, list: string, field: string): unknown[] | null {
  const raw = decodeCursor(after, field);
  if (raw === null) return null;
  try {
    const parts: unknown = JSON.parse(raw);
    // JSON's \u0000 escape decodes to a NUL that PostgreSQL text cannot hold: a forged cursor.
    if (Array.isArray(parts) && parts[0] === list && parts.slice(1).every((part) => typeof part === 'string' && !part.includes('\u0000'))) {
      return parts.slice(1);
    }
  } catch {
    // Falls through to the same answer as any other foreign cursor.
  }
  throw badInput(field, `is not a cursor of this list of ${list.toLowerCase()}s`);
}

function namedKeyAfter(after: string | null | undefined, list: 'District' | 'Street', field = 'after'): NamedKey | null {
  const parts = cursorParts(after, list, field);
  if (parts === null) return null;
  if (parts.length !== 2) throw badInput(field, `is not a cursor of this list of ${list.toLowerCase()}s`);
  return { name: parts[0] as string, id: parts[1] as string };
}

function communeAfter(after: string | null | undefined, field = 'after'): string | null {
  const parts = cursorParts(after, 'Commune', field);
  if (parts === null) return null;
  if (parts.length !== 1) throw badInput(field, 'is not a cursor of this list of communes');
  return parts[0] as string;
}

/** A point's place in the territory, with references the resolvers turn into entities. */
export interface Location {
  lon: number;
  lat: number;
  inTerritory: boolean;
  inseeCode: string | null;
  districtId: string | null;
  nearestStreet: { streetId: string; distanceMeters: number } | null;
}

export interface CompetenceQuestion {
  /** The category code asked about. */
  category: string;
  /** Every known category. */
  categories: readonly ServiceCategoryRecord[];
  /** The commune containing the point; null outside the territory. */
  commune: Pick<CommuneRecord, 'inseeCode' | 'name' | 'collectivityId'> | null;
  /** The communes the project handles municipal services in (a municipal collectivity governs them). */
  projectCommunes: readonly { name: string }[];
  /** The collectivity that answers for agglomeration categories (`chalons-agglo`). */
  agglomerationId: string;
  lon: number;
  lat: number;
}

export interface CompetenceDecision {
  category: ServiceCategoryRecord;
  competence: Competence;
  collectivityId: string;
  inseeCode: string;
}

/**
 * The competence rule (docs/architecture.md), free of I/O so that the tickets domain applies exactly
 * the same one: municipal categories go to the commune's own collectivity and only inside
 * the project's communes; agglomeration categories go to the agglomeration anywhere in the
 * territory; a point outside the territory has no competent collectivity.
 */
export function decideCompetence(question: CompetenceQuestion): CompetenceDecision {
  const category = question.categories.find((candidate) => candidate.code === question.category);
  if (!category) {
    const codes = question.categories.map((candidate) => candidate.code).sort();
    throw badInput('category', `unknown service category '${question.category}'; valid codes are ${codes.join(', ')}`);
  }
  const { commune } = question;
  if (!commune) {
    throw badInput(
      'lon',
      `the point (lon ${question.lon}, lat ${question.lat}) is outside the territory: it lies in none of its communes`,
    );
  }
  if (category.competence === 'AGGLOMERATION') {
    return { category, competence: 'AGGLOMERATION', collectivityId: question.agglomerationId, inseeCode: commune.inseeCode };
  }
  if (!commune.collectivityId) {
    const project = question.projectCommunes.map((c) => c.name).join(', ');
    throw badInput(
      'category',
      `${category.code} (${category.label}) is a municipal service and the point is in ${commune.name} (${commune.inseeCode}); ` +
        `the project only handles municipal services in ${project}`,
    );
  }
  return { category, competence: 'MUNICIPAL', collectivityId: commune.collectivityId, inseeCode: commune.inseeCode };
}

/**
 * The territory's rules, over its store and the request's loaders. One per request (see
 * context.ts); the store it reads through lives as long as the database.
 */
export class TerritoryService {
  constructor(
    private readonly store: TerritoryStore,
    private readonly loaders: TerritoryLoaders,
  ) {}

  collectivities(): Promise<CollectivityRecord[]> {
    return this.store.collectivities();
  }

  async communes(filter: CommuneFilter | null | undefined, first?: number | null, after?: string | null): Promise<Connection<CommuneRecord>> {
    const limit = pageSize(first);
    const afterInsee = communeAfter(after);
    const rows = await this.store.communes(filter ?? {}, afterInsee, limit + 1);
    return connection(rows, limit, communeCursorKey, afterInsee !== null, () => this.store.communeCount(filter ?? {}));
  }

  async districts(inseeCode: string | null | undefined, first?: number | null, after?: string | null): Promise<Connection<DistrictRecord>> {
    const limit = pageSize(first);
    const afterKey = namedKeyAfter(after, 'District');
    const rows = await this.store.districts(inseeCode ?? null, afterKey, limit + 1);
    return connection(rows, limit, districtCursorKey, afterKey !== null, () => this.store.districtCount(inseeCode ?? null));
  }

  async streets(filter: StreetFilter | null | undefined, first?: number | null, after?: string | null): Promise<Connection<StreetRecord>> {
    const limit = pageSize(first);
    const afterKey = namedKeyAfter(after, 'Street');
    const checked: StreetCriteria = {
      inseeCode: filter?.inseeCode ?? null,
      nameContains: checkNameFilter(filter?.nameContains, 'filter.nameContains'),
      near: filter?.near ? checkNear(filter.near, 'filter.near.') : null,
    };
    const rows = await this.store.streets(checked, afterKey, limit + 1);
    return connection(rows, limit, streetCursorKey, afterKey !== null, () => this.store.streetCount(checked));
  }

  /** A commune's districts, batched with its siblings' through the request's loaders. */
  async districtsOfCommune(
    inseeCode: string,
    first?: number | null,
    after?: string | null,
  ): Promise<Connection<DistrictRecord>> {
    const limit = pageSize(first);
    const afterKey = namedKeyAfter(after, 'District');
    const rows = await this.loaders.districtsOfCommune.load({ inseeCode, after: afterKey, limit: limit + 1 });
    return connection(rows, limit, districtCursorKey, afterKey !== null, () => this.loaders.districtCount.load(inseeCode));
  }

  /** A commune's streets, batched with its siblings' through the request's loaders. */
  async streetsOfCommune(
    inseeCode: string,
    args: { first?: number | null; after?: string | null; nameContains?: string | null },
  ): Promise<Connection<StreetRecord>> {
    const limit = pageSize(args.first);
    const afterKey = namedKeyAfter(args.after, 'Street');
    const nameContains = checkNameFilter(args.nameContains, 'nameContains');
    const rows = await this.loaders.streetsOfCommune.load({ inseeCode, after: afterKey, limit: limit + 1, nameContains });
    return connection(rows, limit, streetCursorKey, afterKey !== null, () =>
      this.loaders.streetCount.load({ inseeCode, nameContains }),
    );
  }

  /** Computed once per database (the store keeps it). */
  territory(): Promise<TerritorySummary> {
    return this.store.territory();
  }

  async locate(lon: number, lat: number): Promise<Location> {
    checkCoordinates(lon, lat);
    const found = await this.store.locate(lon, lat, NEAREST_STREET_RADIUS_METERS);
    return {
      lon,
      lat,
      inTerritory: found.inseeCode !== null,
      inseeCode: found.inseeCode,
      districtId: found.districtId,
      nearestStreet:
        found.streetId !== null && found.streetDistanceMeters !== null
          ? { streetId: found.streetId, distanceMeters: found.streetDistanceMeters }
          : null,
    };
  }

  serviceCategories(): Promise<ServiceCategoryRecord[]> {
    return this.store.serviceCategories();
  }

  async competentCollectivity(category: string, lon: number, lat: number): Promise<CompetenceDecision> {
    checkCoordinates(lon, lat);
    const [categories, collectivities, projectCommunes, commune] = await Promise.all([
      this.store.serviceCategories(),
      this.store.collectivities(),
      this.store.projectCommunes(),
      this.store.communeAt(lon, lat),
    ]);
    const agglomeration = collectivities.find((collectivity) => collectivity.kind === 'AGGLOMERATION');
    if (!agglomeration) throw new Error('the territory has no AGGLOMERATION collectivity: is it seeded?');
    for (const collectivity of collectivities) this.loaders.collectivity.prime(collectivity.id, collectivity);
    if (commune) this.loaders.commune.prime(commune.inseeCode, commune);
    return decideCompetence({ category, categories, commune, projectCommunes, agglomerationId: agglomeration.id, lon, lat });
  }
}
