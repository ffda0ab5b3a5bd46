import type { Resolvers } from './generated/graphql.js';
import type { VehicleRow } from './types.js';

const point = (lon: number, lat: number) => ({ type: 'Point', coordinates: [lon, lat] });
const state = (vehicle: VehicleRow) => vehicle.state;

/** Thin: the rules (visibility, who assigns, batching) live in VehicleService (`ctx.vehicles`). */
export const vehicleResolvers: Resolvers = {
  Query: {
    vehicles: (_, args, ctx) => ctx.vehicles.vehicles(args),
    vehicle: (_, { id }, ctx) => ctx.vehicles.vehicle(id),
    vehicleAssignments: (_, { serviceDate }, ctx) => ctx.vehicles.assignments(serviceDate),
  },
  Mutation: {
    assignVehicle: (_, args, ctx) => ctx.vehicles.assign(args),
  },
  Subscription: {
    vehicleMoved: {
      subscribe: (_, args, ctx) => ctx.vehicles.vehicleMoved(args),
    },
  },
  Equipment: {
    vehicle: (equipment, _, ctx) => ctx.vehicles.equipmentVehicle(equipment.id),
  },
  TransitStop: {
    nextArrivals: (stop, args, ctx) => ctx.vehicles.nextArrivals(stop.stopId, args),
  },
  TransitRoute: {
    vehicles: (route, _, ctx) => ctx.vehicles.routeVehiclesOf(route.routeId),
  },
  Vehicle: {
    __resolveReference: ({ id }, ctx) => ctx.vehicles.vehicle(id),
    id: (vehicle) => vehicle.equipmentId,
    equipment: (vehicle) => ({ id: vehicle.equipmentId }),
    label: (vehicle) => vehicle.label,
    position: (vehicle) => (vehicle.state ? point(vehicle.state.lon, vehicle.state.lat) : null),
    speedMetersPerSecond: (vehicle) => state(vehicle)?.speedMps ?? null,
    bearing: (vehicle) => state(vehicle)?.bearing ?? null,
    observedAt: (vehicle) => state(vehicle)?.observedAt ?? null,
    serviceDate: (vehicle) => state(vehicle)?.serviceDate ?? null,
    trip: (vehicle, _, ctx) => ctx.vehicles.trip(state(vehicle)?.tripId),
    blockId: (vehicle) => vehicle.blockId,
    currentStatus: (vehicle) => state(vehicle)?.currentStatus ?? 'NOT_IN_SERVICE',
    stop: (vehicle, _, ctx) => ctx.vehicles.stop(state(vehicle)?.stopId),
    stopSequence: (vehicle) => state(vehicle)?.stopSequence ?? null,
    distanceAlongShapeMeters: (vehicle) => state(vehicle)?.shapeDistM ?? null,
    delaySeconds: (vehicle) => state(vehicle)?.delaySeconds ?? null,
    nextStops: (vehicle, { first }, ctx) => ctx.vehicles.nextStops(vehicle, first),
    outliers: (vehicle, { first }, ctx) => ctx.vehicles.outliers(vehicle, first),
  },
  VehicleAssignment: {
    vehicle: (row, _, ctx) => ctx.vehicles.assignmentVehicle(row),
    trips: (row, _, ctx) => ctx.vehicles.assignmentTrips(row),
  },
  PredictedStop: {
    stop: (prediction, _, ctx) => ctx.vehicles.stop(prediction.stopId)!,
  },
  VehicleOutlier: {
    speedMetersPerSecond: (outlier) => outlier.speedMps,
  },
  StopArrival: {
    trip: (value, _, ctx) => ctx.vehicles.trip(value.tripId)!,
    route: (value, _, ctx) => ctx.vehicles.route(value.routeId)!,
    vehicle: (value, _, ctx) => ctx.vehicles.stopArrivalVehicle(value),
  },
};
