/**
 * Every feed the hub publishes, in the catalogue's order. Adding a feed: its file beside these
 * (with its test), one line here; the router and the catalogue follow.
 */
import type { Feed } from '../feed.js';
import { equipmentGeojson } from './equipment-geojson.js';

export const FEEDS: readonly Feed[] = [equipmentGeojson];
