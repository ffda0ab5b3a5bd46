/**
 * The static network's resolvers: the feed, routes, stops, trips, stop times and shapes, and
 * `Equipment.transitStop`. Public (open data publishes the network). `TransitRoute.vehicles`
 * and `TransitStop.nextArrivals` are the vehicles area's (resolvers-vehicles.ts).
 */
import type { Resolvers, RouteType } from './generated/graphql.js';
import type { StopRow } from './types.js';

const ROUTE_TYPES: Record<number, RouteType> = {
  0: 'TRAM',
  1: 'SUBWAY',
  2: 'RAIL',
  3: 'BUS',
  4: 'FERRY',
  5: 'CABLE_TRAM',
  6: 'AERIAL_LIFT',
  7: 'FUNICULAR',
  11: 'TROLLEYBUS',
  12: 'MONORAIL',
};

const hms = (t: number) =>
  `${String(Math.floor(t / 3600)).padStart(2, '0')}:${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`;

const point = (s: StopRow) => ({ type: 'Point', coordinates: [s.lon, s.lat] });
const line = (coordinates: [number, number][]) => ({ type: 'LineString', coordinates });

export const networkResolvers: Resolvers = {
  Query: {
    gtfsFeed: (_root, _args, { network }) => network.currentFeed(),
    routes: (_root, { first, after }, { network }) => network.routes(first, after),
    route: (_root, { id }, { network }) => network.route(id),
    stops: (_root, { filter, first, after }, { network }) => network.stops(filter, first, after),
    stop: (_root, { id }, { network }) => network.stop(id),
    trip: (_root, { id }, { network }) => network.trip(id),
  },
  GtfsFeed: {
    counts: (feed) => Object.entries(feed.counts).map(([file, rows]) => ({ file, rows })).sort((a, b) => a.file.localeCompare(b.file)),
    warnings: (feed) => feed.warnings,
    validFrom: (feed) => feed.validFrom,
    validTo: (feed) => feed.validTo,
  },
  TransitRoute: {
    __resolveReference: ({ id }, { network }) => network.route(id),
    id: (r) => r.routeId,
    type: (r) => ROUTE_TYPES[r.routeType] ?? 'BUS',
    color: (r) => r.color,
    textColor: (r) => r.textColor,
    agencyName: (r) => r.agencyName,
    stops: (r, _args, { network }) => network.stopsOfRoute(r.routeId),
    shapes: async (r, _args, { network }) => (await network.shapesOfRoute(r.routeId)).map(line),
    trips: (r, { serviceDate, directionId }, { network }) => network.tripsOfRoute(r.routeId, serviceDate, directionId),
  },
  TransitStop: {
    __resolveReference: ({ id }, { network }) => network.stop(id),
    id: (s) => s.stopId,
    equipment: (s) => ({ id: s.equipmentId }),
    location: point,
    wheelchairBoarding: (s) => s.wheelchairBoarding,
    routes: (s, _args, { network }) => network.routesOfStop(s.stopId),
  },
  Trip: {
    __resolveReference: ({ id }, { network }) => network.trip(id),
    id: (t) => t.tripId,
    route: async (t, _args, { network }) => (await network.route(t.routeId))!,
    directionId: (t) => t.directionId,
    blockId: (t) => t.blockId,
    serviceId: (t) => t.serviceId,
    shape: async (t, _args, { network }) => line(await network.shape(t.shapeId)),
    stopTimes: (t, _args, { network }) => network.stopTimes(t.tripId),
  },
  StopTime: {
    stop: async (st, _args, { network }) => (await network.stop(st.stopId))!,
    arrivalTime: (st) => hms(st.arrivalSeconds),
    departureTime: (st) => hms(st.departureSeconds),
    shapeDistTraveled: (st) => st.shapeDistTraveled,
  },
  Equipment: {
    transitStop: ({ id }, _args, { network }) => network.stopOfEquipment(id),
  },
};
