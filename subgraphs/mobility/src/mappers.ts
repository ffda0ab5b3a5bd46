// What the resolvers of each GraphQL type receive and return instead of its GraphQL shape
// (`<Type>Mapper`; scripts/codegen.ts reads this file). One line per type; the rows are in types.ts.
type Connection<T> = import('@connecte/shared/pagination').Connection<T>;
export type EquipmentMapper = { id: string };
// network (GTFS)
export type GtfsFeedMapper = import('./types.js').GtfsFeedRow;
export type TransitRouteMapper = import('./types.js').RouteRow;
export type TransitRouteConnectionMapper = Connection<import('./types.js').RouteRow>;
export type TransitStopMapper = import('./types.js').StopRow;
export type TransitStopConnectionMapper = Connection<import('./types.js').StopRow>;
export type TripMapper = import('./types.js').TripRow;
export type StopTimeMapper = import('./types.js').StopTimeRow;
export type StopArrivalMapper = import('./types.js').StopArrivalValue;
// vehicles
export type VehicleMapper = import('./types.js').VehicleRow;
export type VehicleConnectionMapper = Connection<import('./types.js').VehicleRow>;
export type VehicleMoveMapper = { cursor: string; vehicle: import('./types.js').VehicleRow };
export type VehicleAssignmentMapper = import('./types.js').VehicleAssignmentRow;
export type PredictedStopMapper = import('./types.js').PredictedStopValue;
export type VehicleOutlierMapper = import('./types.js').VehicleOutlierRow;
// signal priority
export type SignalPriorityRequestMapper = import('./types.js').SignalPriorityRequestRow;
export type SignalPriorityRequestConnectionMapper = Connection<import('./types.js').SignalPriorityRequestRow>;
export type IntersectionPriorityStatsMapper = { controllerId: string; stats: import('./types.js').SignalPriorityStatsValue };
export type RoutePriorityStatsMapper = { routeId: string; stats: import('./types.js').SignalPriorityStatsValue };
// parking
export type ParkingFacilityMapper = import('./types.js').ParkingFacilityRow;
export type ParkingFacilityConnectionMapper = Connection<import('./types.js').ParkingFacilityRow>;
export type ParkingAvailabilityChangeMapper = { cursor: string; facility: import('./types.js').ParkingFacilityRow };
