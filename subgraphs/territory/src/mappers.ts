// What the resolvers of each GraphQL type receive and return instead of its GraphQL shape
// (`<Type>Mapper`; scripts/codegen.ts reads this file): store records whose relations and
// geometries the type's own resolvers load.
import type { Connection } from '@connecte/shared/pagination';
import type { CompetenceDecision, Location } from './territory-service.js';
import type {
  CollectivityRecord,
  CommuneRecord,
  DistrictRecord,
  ServiceCategoryRecord,
  StreetRecord,
  TerritorySummary,
} from './territory-store.js';

export type CollectivityMapper = CollectivityRecord;
export type CommuneMapper = CommuneRecord;
export type DistrictMapper = DistrictRecord;
export type StreetMapper = StreetRecord;
export type ServiceCategoryMapper = ServiceCategoryRecord;
export type TerritoryMapper = TerritorySummary;
export type LocationMapper = Location;
export type NearestStreetMapper = { streetId: string; distanceMeters: number };
export type CompetenceAnswerMapper = CompetenceDecision;
export type CommuneConnectionMapper = Connection<CommuneRecord>;
export type DistrictConnectionMapper = Connection<DistrictRecord>;
export type StreetConnectionMapper = Connection<StreetRecord>;
