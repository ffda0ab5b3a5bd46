// What the resolvers of each GraphQL type receive and return instead of its GraphQL shape
// (`<Type>Mapper`; scripts/codegen.ts reads this file): the store's row, whose restricted
// fields `Equipment`'s resolvers hide, and the service's values built from it.
import type { Connection } from '@connecte/shared/pagination';
import type { DetailsValue, EquipmentChangeValue, SnapshotValue } from './equipment-service.js';
import type { EquipmentRow } from './equipment-store.js';

export type EquipmentMapper = EquipmentRow;
export type EquipmentConnectionMapper = Connection<EquipmentRow>;
export type EquipmentDistanceMapper = { equipment: EquipmentRow; distanceMeters: number };
export type EquipmentChangeMapper = EquipmentChangeValue;
export type EquipmentSnapshotMapper = SnapshotValue;
// Every member of the `EquipmentDetails` union is resolved from `EquipmentService.detailsOf`.
export type LightPointDetailsMapper = DetailsValue;
export type CameraDetailsMapper = DetailsValue;
export type BusDetailsMapper = DetailsValue;
export type BuildingDetailsMapper = DetailsValue;
export type ParkingFacilityDetailsMapper = DetailsValue;
export type BusStopDetailsMapper = DetailsValue;
export type TrafficSignalControllerDetailsMapper = DetailsValue;
export type PresenceDetectorDetailsMapper = DetailsValue;
export type GenericDetailsMapper = DetailsValue;
