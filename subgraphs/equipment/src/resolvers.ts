import { DateScalar, DateTimeScalar, GeoJSONGeometryScalar, JSONScalar } from '@connecte/shared/scalars';
import type { EquipmentDetailsResolvers, Resolvers } from './generated/graphql.js';

/** Thin: every rule lives in EquipmentService (`ctx.equipment`). */
export const resolvers: Resolvers = {
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
    __resolveReference: ({ id }, ctx) => ctx.equipment.byId(id),
    name: (row, _, ctx) => (ctx.equipment.canSee(row) ? row.name : null),
    collectivity: (row) => ({ id: row.collectivityId }),
    communeInseeCode: (row, _, ctx) => (ctx.equipment.canSee(row) ? row.inseeCode : null),
    location: (row, _, ctx) =>
      row.lon !== null && row.lat !== null && ctx.equipment.canSee(row) ? { type: 'Point', coordinates: [row.lon, row.lat] } : null,
    details: (row, _, ctx) => ctx.equipment.detailsOf(row),
    parent: (row, _, ctx) => ctx.equipment.parentOf(row),
    children: (row, args, ctx) => ctx.equipment.children(row, args),
  },

  EquipmentDetails: {
    // detailsOf sets `__typename` from DETAILS_TYPENAME, whose values are the union's members.
    __resolveType: (details) => details.__typename as ReturnType<NonNullable<EquipmentDetailsResolvers['__resolveType']>>,
  },

  LightPointDetails: {
    cabinet: (details, _, ctx) => (details.parentId ? ctx.equipment.byId(details.parentId) : null),
  },

  PresenceDetectorDetails: {
    lightPoint: (details, _, ctx) => (typeof details.lightPointId === 'string' ? ctx.equipment.byId(details.lightPointId) : null),
  },
};
