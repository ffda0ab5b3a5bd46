/** Traffic-signal controllers (intersections with lights) as GeoJSON. From `opendata_traffic_signals`. */
import { LICENCE_OUVERTE } from '../catalog.js';
import { assetFeed } from './asset-geojson.js';

export const trafficSignalsGeojson = assetFeed({
  id: 'traffic-signals',
  view: 'opendata_traffic_signals',
  dataset: {
    title: 'Carrefours à feux — Châlons-en-Champagne et Fagnières',
    description:
      "Les contrôleurs de carrefours à feux tricolores : carrefour, nombre de phases et priorité accordée aux bus. L'état publié est celui de l'équipement (en service, en panne, en maintenance).",
    keywords: ['feux tricolores', 'carrefours', 'circulation', 'priorité bus', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GeoJSON',
    frequency: 'continuous',
  },
  properties: { intersectionName: 't.intersection_name', phases: 't.phases', busPriority: 't.bus_priority' },
});
