/**
 * Light points of the territory as GeoJSON, with the attributes of the CNIG géostandard
 * d'éclairage extérieur (EclExt): `typeSource`, `puissanceNominale` (W), `temperatureCouleur`
 * (K), `regimeFonctionnement`, `hauteurFeu` (m), plus `telegestion` (remotely dimmable).
 * From `opendata_light_points`. ~7,300 features; streamed, so a territory of any size is served
 * with flat memory (bench/opendata-geojson.ts: 1,000,000 features).
 */
import { LICENCE_OUVERTE } from '../catalog.js';
import { assetFeed } from './asset-geojson.js';

export const lightPointsGeojson = assetFeed({
  id: 'light-points',
  view: 'opendata_light_points',
  dataset: {
    title: "Points lumineux de l'éclairage public — Châlons-en-Champagne, Fagnières, Saint-Martin-sur-le-Pré",
    description:
      "Chaque point lumineux de l'éclairage public des trois communes, avec les attributs du géostandard CNIG d'éclairage extérieur (EclExt) : type de source (typeSource), puissance nominale en watts (puissanceNominale), température de couleur en kelvins (temperatureCouleur), régime de fonctionnement (regimeFonctionnement : DETECTION, ABAISSEMENT ou PERMANENT), hauteur de feu en mètres (hauteurFeu) et télégestion.",
    keywords: ['éclairage public', 'EclExt', 'points lumineux', 'LED', 'trame noire', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'GeoJSON',
    frequency: 'continuous',
  },
  properties: {
    typeSource: 't.type_source',
    puissanceNominale: 't.puissance_nominale_w',
    temperatureCouleur: 't.temperature_couleur_k',
    regimeFonctionnement: 't.regime_fonctionnement',
    hauteurFeu: 't.hauteur_feu_m',
    telegestion: 't.telegestion',
  },
});
