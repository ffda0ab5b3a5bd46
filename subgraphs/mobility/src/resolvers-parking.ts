import type { Resolvers } from './generated/graphql.js';

/** Thin: the rules (listing, validation, who may write, opening in Paris time) live in ParkingService (`ctx.parking`). */
export const parkingResolvers: Resolvers = {
  Query: {
    parkingFacilities: (_, args, ctx) => ctx.parking.facilities(args),
    parkingFacility: (_, { id }, ctx) => ctx.parking.facility(id),
  },
  Mutation: {
    updateParkingFacilityInfo: (_, args, ctx) => ctx.parking.update(args),
  },
  Subscription: {
    parkingAvailabilityChanged: {
      subscribe: (_, args, ctx) => ctx.parking.availabilityChanged(args),
    },
  },
  Equipment: {
    parkingFacility: (equipment, _, ctx) => ctx.parking.facility(equipment.id),
  },
  ParkingFacility: {
    __resolveReference: ({ id }, ctx) => ctx.parking.facility(id),
    id: (facility) => facility.equipmentId,
    equipment: (facility) => ({ id: facility.equipmentId }),
    location: (facility) => (facility.location ? { type: 'Point', coordinates: facility.location } : null),
    freeSpaces: (facility) => (facility.occupied === null ? null : facility.capacity - facility.occupied),
    reportedOccupied: (facility) => facility.reported,
    occupancyRate: (facility) => (facility.occupied === null || facility.capacity === 0 ? null : facility.occupied / facility.capacity),
    occupancyStatus: (facility, _, ctx) => ctx.parking.occupancyStatus(facility),
    occupancySource: (facility) => facility.source,
    isOpen: (facility, { at }, ctx) => ctx.parking.isOpen(facility, at),
  },
};
