/** The spatial inputs of the GraphQL conventions, validated the same way in every subgraph. */
import { badInput } from './errors.js';

/** `near: { lon, lat, radiusMeters }`: a circle on the WGS84 spheroid (ST_DWithin on geography). */
export interface NearCircle {
  lon: number;
  lat: number;
  radiusMeters: number;
}

/** Larger circles are no longer "near": use a commune, a bbox or a polygon instead. */
export const MAX_NEAR_RADIUS_METERS = 50_000;

/** Rejects what is not a WGS84 position, naming the argument (`lon`, `filter.near.lat`, ...). */
export function checkCoordinates(lon: number, lat: number, prefix = ''): void {
  if (!Number.isFinite(lat) || lat < -90 || lat > 90) {
    throw badInput(`${prefix}lat`, `must be a latitude in degrees between -90 and 90 (got ${lat})`);
  }
  if (!Number.isFinite(lon) || lon < -180 || lon > 180) {
    throw badInput(`${prefix}lon`, `must be a longitude in degrees between -180 and 180 (got ${lon})`);
  }
}

export function checkNear(near: NearCircle, prefix: string): NearCircle {
  checkCoordinates(near.lon, near.lat, prefix);
  if (!Number.isFinite(near.radiusMeters) || near.radiusMeters <= 0 || near.radiusMeters > MAX_NEAR_RADIUS_METERS) {
    throw badInput(`${prefix}radiusMeters`, `must be greater than 0 and at most ${MAX_NEAR_RADIUS_METERS} metres`);
  }
  return { lon: near.lon, lat: near.lat, radiusMeters: near.radiusMeters };
}
