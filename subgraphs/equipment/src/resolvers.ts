import type { GraphQLResolverMap } from '@apollo/subgraph/dist/schema-helper/index.js';
import type { EquipmentRow } from './equipment-store.js';
import type { EquipmentContext } from './index.js';
import { DateScalar, DateTimeScalar, GeoJSONGeometryScalar, JSONScalar } from './scalars.js';

/** Thin: every rule lives in EquipmentService (`ctx.equipment`). */
export const resolvers: GraphQLResolverMap<EquipmentContext> = {
  Date: DateScalar,
  DateTime: DateTimeScalar,
  JSON: JSONScalar,
  GeoJSONGeometry: GeoJSONGeometryScalar,

  Query: {
    equipment: (_, { id }, ctx) => ctx.equipment.byId(id),
    equipmentSearch: (_, args, ctx) => ctx.equipment.search(args),
    nearestEquipment: (_, args, ctx) => ctx.equipment.nearest(args),
    equipmentCountsByKind: (_, args, ctx) => ctx.equipment.countsByKind(args),
  },

  Mutation: {
    registerEquipment: (_, { input }, ctx) => ctx.equipment.register(input),
    updateEquipment: (_, { id, input }, ctx) => ctx.equipment.update(id, input),
    decommissionEquipment: (_, { id, reason }, ctx) => ctx.equipment.decommission(id, reason),
  },

  Subscription: {
    equipmentChanged: {
      subscribe: (_, args, ctx) => ctx.equipment.changes(ctx.events, args),
    },
  },

  Equipment: {
    __resolveReference: (reference: { id: string }, ctx: EquipmentContext) => ctx.equipment.byId(reference.id),
    name: (row: EquipmentRow, _, ctx) => (ctx.equipment.canSee(row) ? row.name : null),
    collectivity: (row: EquipmentRow) => ({ id: row.collectivityId }),
    communeInseeCode: (row: EquipmentRow, _, ctx) => (ctx.equipment.canSee(row) ? row.inseeCode : null),
    location: (row: EquipmentRow, _, ctx) =>
      row.lon !== null && ctx.equipment.canSee(row) ? { type: 'Point', coordinates: [row.lon, row.lat] } : null,
    details: (row: EquipmentRow, _, ctx) => ctx.equipment.detailsOf(row),
    parent: (row: EquipmentRow, _, ctx) => ctx.equipment.parentOf(row),
    children: (row: EquipmentRow, args, ctx) => ctx.equipment.children(row, args),
  } as GraphQLResolverMap<EquipmentContext>[string],

  EquipmentDetails: {
    __resolveType: (details: { __typename: string }) => details.__typename,
  } as GraphQLResolverMap<EquipmentContext>[string],

  LightPointDetails: {
    cabinet: (details: { parentId: string | null }, _, ctx) => (details.parentId ? ctx.equipment.byId(details.parentId) : null),
  },

  PresenceDetectorDetails: {
    lightPoint: (details: { lightPointId?: unknown }, _, ctx) =>
      typeof details.lightPointId === 'string' ? ctx.equipment.byId(details.lightPointId) : null,
  },
};
