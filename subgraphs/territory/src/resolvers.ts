import { GraphQLScalarType, Kind, valueFromASTUntyped } from 'graphql';
import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/index.js';
import type { RequestContext } from '@connecte/shared/server';
import type { TerritoryLoaders } from './loaders.js';
import type { CompetenceDecision, Location, TerritoryService } from './territory-service.js';
import type {
  CollectivityRecord,
  CommuneFilter,
  CommuneRecord,
  DistrictRecord,
  StreetFilter,
  StreetRecord,
} from './territory-store.js';

export interface TerritoryContext extends RequestContext {
  territory: TerritoryService;
  loaders: TerritoryLoaders;
}

type PageArgs = { first?: number | null; after?: string | null };

function isGeometry(value: unknown): value is { type: string } {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}

const GeoJSON = new GraphQLScalarType({
  name: 'GeoJSON',
  description: 'A GeoJSON geometry object (RFC 7946) in WGS84 longitude/latitude.',
  serialize: (value) => value,
  parseValue(value) {
    if (!isGeometry(value)) throw new TypeError('GeoJSON must be an object with a string `type`');
    return value;
  },
  parseLiteral(ast, variables) {
    const value = ast.kind === Kind.OBJECT ? valueFromASTUntyped(ast, variables) : null;
    if (!isGeometry(value)) throw new TypeError('GeoJSON must be an object with a string `type`');
    return value;
  },
});

/** Thin: arguments in, the service's answers out; relations go through the request's loaders. */
export const resolvers: GraphQLResolverMap<TerritoryContext> = {
  GeoJSON,
  Query: {
    collectivities: (_: unknown, __: unknown, { territory }: TerritoryContext) => territory.collectivities(),
    collectivity: (_: unknown, { id }: { id: string }, { loaders }: TerritoryContext) => loaders.collectivity.load(id),
    communes: (_: unknown, args: { filter?: CommuneFilter | null } & PageArgs, { territory }: TerritoryContext) =>
      territory.communes(args.filter, args.first, args.after),
    commune: (_: unknown, { inseeCode }: { inseeCode: string }, { loaders }: TerritoryContext) =>
      loaders.commune.load(inseeCode),
    districts: (_: unknown, args: { inseeCode?: string | null } & PageArgs, { territory }: TerritoryContext) =>
      territory.districts(args.inseeCode, args.first, args.after),
    district: (_: unknown, { id }: { id: string }, { loaders }: TerritoryContext) => loaders.district.load(id),
    streets: (_: unknown, args: { filter?: StreetFilter | null } & PageArgs, { territory }: TerritoryContext) =>
      territory.streets(args.filter, args.first, args.after),
    street: (_: unknown, { id }: { id: string }, { loaders }: TerritoryContext) => loaders.street.load(id),
    territory: (_: unknown, __: unknown, { territory }: TerritoryContext) => territory.territory(),
    locate: (_: unknown, { lon, lat }: { lon: number; lat: number }, { territory }: TerritoryContext) =>
      territory.locate(lon, lat),
    serviceCategories: (_: unknown, __: unknown, { territory }: TerritoryContext) => territory.serviceCategories(),
    competentCollectivity: (
      _: unknown,
      { category, lon, lat }: { category: string; lon: number; lat: number },
      { territory, loaders }: TerritoryContext,
    ) => territory.competentCollectivity(loaders, category, lon, lat),
  },
  Collectivity: {
    __resolveReference: ({ id }: { id: string }, { loaders }: TerritoryContext) => loaders.collectivity.load(id),
    communes: ({ id }: CollectivityRecord, _: unknown, { loaders }: TerritoryContext) =>
      loaders.communesOfCollectivity.load(id),
  },
  Commune: {
    __resolveReference: ({ inseeCode }: { inseeCode: string }, { loaders }: TerritoryContext) =>
      loaders.commune.load(inseeCode),
    collectivity: ({ collectivityId }: CommuneRecord, _: unknown, { loaders }: TerritoryContext) =>
      collectivityId ? loaders.collectivity.load(collectivityId) : null,
    inProject: ({ collectivityId }: CommuneRecord) => collectivityId !== null,
    geometry: ({ inseeCode }: CommuneRecord, _: unknown, { loaders }: TerritoryContext) =>
      loaders.communeGeometry.load(inseeCode),
    districts: ({ inseeCode }: CommuneRecord, args: PageArgs, { territory, loaders }: TerritoryContext) =>
      territory.districtsOfCommune(loaders, inseeCode, args.first, args.after),
    streets: (
      { inseeCode }: CommuneRecord,
      args: PageArgs & { nameContains?: string | null },
      { territory, loaders }: TerritoryContext,
    ) => territory.streetsOfCommune(loaders, inseeCode, args),
  },
  District: {
    __resolveReference: ({ id }: { id: string }, { loaders }: TerritoryContext) => loaders.district.load(id),
    commune: ({ inseeCode }: DistrictRecord, _: unknown, { loaders }: TerritoryContext) => loaders.commune.load(inseeCode),
    geometry: ({ id }: DistrictRecord, _: unknown, { loaders }: TerritoryContext) => loaders.districtGeometry.load(id),
  },
  Street: {
    __resolveReference: ({ id }: { id: string }, { loaders }: TerritoryContext) => loaders.street.load(id),
    commune: ({ inseeCode }: StreetRecord, _: unknown, { loaders }: TerritoryContext) => loaders.commune.load(inseeCode),
    geometry: ({ id }: StreetRecord, _: unknown, { loaders }: TerritoryContext) => loaders.streetGeometry.load(id),
  },
  ServiceCategory: {
    __resolveReference: ({ code }: { code: string }, { loaders }: TerritoryContext) => loaders.serviceCategory.load(code),
  },
  Location: {
    commune: ({ inseeCode }: Location, _: unknown, { loaders }: TerritoryContext) =>
      inseeCode ? loaders.commune.load(inseeCode) : null,
    district: ({ districtId }: Location, _: unknown, { loaders }: TerritoryContext) =>
      districtId ? loaders.district.load(districtId) : null,
  },
  NearestStreet: {
    street: ({ streetId }: { streetId: string }, _: unknown, { loaders }: TerritoryContext) => loaders.street.load(streetId),
  },
  CompetenceAnswer: {
    collectivity: ({ collectivityId }: CompetenceDecision, _: unknown, { loaders }: TerritoryContext) =>
      loaders.collectivity.load(collectivityId),
    commune: ({ inseeCode }: CompetenceDecision, _: unknown, { loaders }: TerritoryContext) =>
      loaders.commune.load(inseeCode),
  },
};
