/**
 * Every feed the hub publishes, in the catalogue's order. Adding a feed: its file beside these
 * (with its test), one line here; the router and the catalogue follow.
 */
import type { Feed } from '../feed.js';
import { equipmentGeojson } from './equipment-geojson.js';
import { citizenReportsGeojson } from './citizen-reports-geojson.js';
import { lightPointsGeojson } from './light-points-geojson.js';
import { wifiHotspotsGeojson } from './wifi-hotspots-geojson.js';
import { trafficSignalsGeojson } from './traffic-signals-geojson.js';
import { busStopsGeojson } from './bus-stops-geojson.js';
import { airQualityGeojson } from './air-quality-geojson.js';
import { energySavingsGeojson } from './energy-savings-geojson.js';
import { gtfsStatic } from './gtfs-static.js';
import { gtfsRtVehiclePositions } from './gtfs-rt-vehicle-positions.js';
import { gtfsRtTripUpdates } from './gtfs-rt-trip-updates.js';
import { gtfsRtAlerts } from './gtfs-rt-alerts.js';
import { datex2ParkingTable } from './datex2-parking-table.js';
import { datex2ParkingStatus } from './datex2-parking-status.js';
import { datex2Situations } from './datex2-situations.js';
import { parkingBnls } from './parking-bnls.js';
import { parkingGeojson } from './parking-geojson.js';

export const FEEDS: readonly Feed[] = [
  equipmentGeojson,
  citizenReportsGeojson,
  lightPointsGeojson,
  wifiHotspotsGeojson,
  trafficSignalsGeojson,
  busStopsGeojson,
  airQualityGeojson,
  energySavingsGeojson,
  gtfsStatic,
  gtfsRtVehiclePositions,
  gtfsRtTripUpdates,
  gtfsRtAlerts,
  datex2ParkingTable,
  datex2ParkingStatus,
  datex2Situations,
  parkingBnls,
  parkingGeojson,
];
