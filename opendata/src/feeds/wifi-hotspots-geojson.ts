/** Public Wi-Fi hotspots as GeoJSON (network name, band, maximum clients; nothing of the clients). From `opendata_wifi_hotspots`. */
import { LICENCE_OUVERTE } from '../catalog.js';
import { assetFeed } from './asset-geojson.js';

export const wifiHotspotsGeojson = assetFeed({
  id: 'wifi-hotspots',
  view: 'opendata_wifi_hotspots',
  dataset: {
    title: 'Bornes Wi-Fi publiques — Châlons-en-Champagne, Fagnières, Saint-Martin-sur-le-Pré',
    description:
      "Les bornes d'accès Wi-Fi public gratuites des communes : emplacement, nom du réseau (SSID), bande de fréquences et nombre maximal de clients simultanés. Aucune donnée sur les utilisateurs n'est publiée.",
    keywords: ['Wi-Fi public', 'accès internet', 'smart city', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GeoJSON',
    frequency: 'weekly',
  },
  properties: { name: 't.name', ssid: 't.ssid', band: 't.band', maxClients: 't.max_clients' },
});
