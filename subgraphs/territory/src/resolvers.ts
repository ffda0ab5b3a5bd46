import { GeoJSONGeometryScalar } from '@connecte/shared/scalars';
import type { Resolvers } from './generated/graphql.js';
import { required } from './loaders.js';

/** Thin: arguments in, the service's answers out; relations go through the request's loaders. */
export const resolvers: Resolvers = {
  GeoJSONGeometry: GeoJSONGeometryScalar,
  Query: {
    collectivities: (_, __, { territory }) => territory.collectivities(),
    collectivity: (_, { id }, { loaders }) => loaders.collectivity.load(id),
    communes: (_, { filter, first, after }, { territory }) => territory.communes(filter, first, after),
    commune: (_, { inseeCode }, { loaders }) => loaders.commune.load(inseeCode),
    districts: (_, { inseeCode, first, after }, { territory }) => territory.districts(inseeCode, first, after),
    district: (_, { id }, { loaders }) => loaders.district.load(id),
    streets: (_, { filter, first, after }, { territory }) => territory.streets(filter, first, after),
    street: (_, { id }, { loaders }) => loaders.street.load(id),
    territory: (_, __, { territory }) => territory.territory(),
    locate: (_, { lon, lat }, { territory }) => territory.locate(lon, lat),
    serviceCategories: (_, __, { territory }) => territory.serviceCategories(),
    competentCollectivity: (_, { category, lon, lat }, { territory }) => territory.competentCollectivity(category, lon, lat),
  },
  Collectivity: {
    __resolveReference: ({ id }, { loaders }) => loaders.collectivity.load(id),
    communes: ({ id }, _, { loaders }) => loaders.communesOfCollectivity.load(id),
  },
  Commune: {
    __resolveReference: ({ inseeCode }, { loaders }) => loaders.commune.load(inseeCode),
    collectivity: ({ collectivityId }, _, { loaders }) => (collectivityId ? loaders.collectivity.load(collectivityId) : null),
    inProject: ({ collectivityId }) => collectivityId !== null,
    geometry: ({ inseeCode }, _, { loaders }) => required(loaders.communeGeometry.load(inseeCode), `the geometry of commune ${inseeCode}`),
    districts: ({ inseeCode }, { first, after }, { territory }) => territory.districtsOfCommune(inseeCode, first, after),
    streets: ({ inseeCode }, args, { territory }) => territory.streetsOfCommune(inseeCode, args),
  },
  District: {
    __resolveReference: ({ id }, { loaders }) => loaders.district.load(id),
    commune: ({ inseeCode }, _, { loaders }) => required(loaders.commune.load(inseeCode), `commune ${inseeCode}`),
    geometry: ({ id }, _, { loaders }) => required(loaders.districtGeometry.load(id), `the geometry of district ${id}`),
  },
  Street: {
    __resolveReference: ({ id }, { loaders }) => loaders.street.load(id),
    commune: ({ inseeCode }, _, { loaders }) => required(loaders.commune.load(inseeCode), `commune ${inseeCode}`),
    geometry: ({ id }, _, { loaders }) => required(loaders.streetGeometry.load(id), `the geometry of street ${id}`),
  },
  ServiceCategory: {
    __resolveReference: ({ code }, { loaders }) => loaders.serviceCategory.load(code),
  },
  Location: {
    commune: ({ inseeCode }, _, { loaders }) => (inseeCode ? loaders.commune.load(inseeCode) : null),
    district: ({ districtId }, _, { loaders }) => (districtId ? loaders.district.load(districtId) : null),
  },
  NearestStreet: {
    street: ({ streetId }, _, { loaders }) => required(loaders.street.load(streetId), `street ${streetId}`),
  },
  CompetenceAnswer: {
    collectivity: ({ collectivityId }, _, { loaders }) => required(loaders.collectivity.load(collectivityId), `collectivity ${collectivityId}`),
    commune: ({ inseeCode }, _, { loaders }) => required(loaders.commune.load(inseeCode), `commune ${inseeCode}`),
  },
};
