import type { Resolvers } from './generated/graphql.js';

/** Thin: visibility, validation and batching live in SignalPriorityService (`ctx.priority`). */
export const priorityResolvers: Resolvers = {
  Query: {
    signalPriorityRequests: (_, args, ctx) => ctx.priority.requests(args),
    signalPriorityByIntersection: (_, args, ctx) => ctx.priority.byIntersection(args),
    signalPriorityByRoute: (_, args, ctx) => ctx.priority.byRoute(args),
  },
  Equipment: {
    signalPriority: (equipment, args, ctx) => ctx.priority.equipmentStats(equipment.id, args),
  },
  SignalPriorityRequest: {
    controller: (row) => ({ id: row.controllerId }),
    vehicle: (row, _, ctx) => ctx.priority.vehicleOf(row),
    trip: (row, _, ctx) => ctx.priority.tripOf(row),
    route: (row, _, ctx) => ctx.priority.routeOf(row.routeId),
    distanceMeters: (row) => row.distanceM,
  },
  IntersectionPriorityStats: {
    controller: (entry) => ({ id: entry.controllerId }),
  },
  RoutePriorityStats: {
    route: (entry, _, ctx) => ctx.priority.routeOf(entry.routeId),
  },
};
