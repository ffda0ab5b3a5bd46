/** Bus stops of Châlons Agglo's network (name, shelter) as GeoJSON. From `opendata_bus_stops`. */
import { LICENCE_OUVERTE } from '../catalog.js';
import { assetFeed } from './asset-geojson.js';

export const busStopsGeojson = assetFeed({
  id: 'bus-stops',
  view: 'opendata_bus_stops',
  dataset: {
    title: "Arrêts de bus — réseau de Châlons Agglo",
    description:
      "Les arrêts de bus du réseau de Châlons Agglo dans les communes desservies : nom de l'arrêt et présence d'un abri voyageurs. Les horaires et le temps réel sont publiés en GTFS et GTFS-Realtime.",
    keywords: ['arrêts de bus', 'transport en commun', 'mobilité', 'Châlons Agglo'],
    licence: LICENCE_OUVERTE,
    format: 'GeoJSON',
    frequency: 'weekly',
  },
  properties: { name: 't.name', shelter: 't.shelter' },
});
