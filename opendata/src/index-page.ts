/**
 * The human-readable index of the open data at `/opendata/`, for a browser (`Accept: text/html`;
 * other clients get the JSON-LD catalogue there, as before): every dataset with its description,
 * format, licence, freshness, links, and a small map preview — an inline SVG of the territory's
 * outline with a sample of the dataset's positions. Self-contained: no script, no external tile,
 * font or stylesheet (the page is served with a Content-Security-Policy that allows none).
 */
import { landingPageOf, LICENCE_OUVERTE } from './catalog.js';
import type { Feed } from './feed.js';
import { CATALOG_PATH, CATALOG_TURTLE_PATH, datasetPath } from './paths.js';
import { TERRITORY_BBOX, TERRITORY_OUTLINE } from './territory.js';

export const HTML = 'text/html; charset=utf-8';

/** What the page is served with: nothing but its own inline style and SVG. */
export const INDEX_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Positions drawn per dataset at most. */
export const PREVIEW_POINTS = 400;

export interface IndexEntry {
  feed: Feed;
  modified: Date | null;
  maxAgeSeconds: number;
  /** [lon, lat] positions of the dataset to draw (already sampled), possibly none. */
  points: readonly (readonly [number, number])[];
}

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Every `limit`-th element, spread over the whole list, so that the sample covers the dataset (stable: same data, same sample). */
export function evenSample<T>(items: readonly T[], limit: number): T[] {
  if (items.length <= limit) return [...items];
  return Array.from({ length: limit }, (_, i) => items[Math.floor((i * items.length) / limit)]);
}

const isPosition = (value: unknown): value is [number, number] =>
  Array.isArray(value) && value.length >= 2 && typeof value[0] === 'number' && typeof value[1] === 'number' && Number.isFinite(value[0]) && Number.isFinite(value[1]);

/** The first position of any GeoJSON geometry (a line's start, a polygon's first vertex). */
function firstPosition(coordinates: unknown): [number, number] | null {
  let current = coordinates;
  for (let depth = 0; depth < 4 && Array.isArray(current); depth++) {
    if (isPosition(current)) return [current[0], current[1]];
    current = current[0];
  }
  return null;
}

/** A sample of the positions of a GeoJSON FeatureCollection's features; none when the text is not one. */
export function geojsonPreviewPoints(text: string, limit = PREVIEW_POINTS): [number, number][] {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return [];
  }
  const features = (document as { features?: unknown })?.features;
  if (!Array.isArray(features)) return [];
  const points: [number, number][] = [];
  for (const feature of features) {
    const geometry = (feature as { geometry?: { coordinates?: unknown; geometries?: { coordinates?: unknown }[] } })?.geometry;
    const position = firstPosition(geometry?.coordinates ?? geometry?.geometries?.[0]?.coordinates);
    if (position) points.push(position);
  }
  return evenSample(points, limit);
}

// The map's projection: equirectangular, x stretched by cos(latitude) so that the territory keeps its shape.
const [MIN_LON, MIN_LAT, MAX_LON, MAX_LAT] = TERRITORY_BBOX;
const MAP_WIDTH = 240;
const X_SCALE = Math.cos((((MIN_LAT + MAX_LAT) / 2) * Math.PI) / 180);
const MAP_HEIGHT = Math.round((MAP_WIDTH * (MAX_LAT - MIN_LAT)) / ((MAX_LON - MIN_LON) * X_SCALE));
const PAD = 6;

function project([lon, lat]: readonly [number, number]): [number, number] {
  const x = PAD + ((lon - MIN_LON) / (MAX_LON - MIN_LON)) * MAP_WIDTH;
  const y = PAD + ((MAX_LAT - lat) / (MAX_LAT - MIN_LAT)) * MAP_HEIGHT;
  return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
}

const OUTLINE_PATH = `M${TERRITORY_OUTLINE.map((position) => project(position).join(' ')).join('L')}Z`;

/** The territory with the dataset's positions as dots (one path of zero-length round-capped segments). */
function previewMap(entry: IndexEntry): string {
  const inside = entry.points.filter(([lon, lat]) => lon >= MIN_LON && lon <= MAX_LON && lat >= MIN_LAT && lat <= MAX_LAT);
  const dots = inside.map((position) => `M${project(position).join(' ')}h0`).join('');
  const label = inside.length
    ? `Carte : ${inside.length} positions du jeu de données sur le territoire`
    : 'Carte du territoire couvert (ce format ne donne pas de positions à prévisualiser)';
  return `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="${escapeHtml(label)}" width="${MAP_WIDTH + 2 * PAD}" height="${MAP_HEIGHT + 2 * PAD}" viewBox="0 0 ${MAP_WIDTH + 2 * PAD} ${MAP_HEIGHT + 2 * PAD}">
<title>${escapeHtml(label)}</title>
<path d="${OUTLINE_PATH}" fill="#eef3e8" stroke="#6b7f5a" stroke-width="1"/>
${dots ? `<path d="${dots}" stroke="#c0392b" stroke-width="3" stroke-linecap="round" fill="none"/>` : ''}
</svg>`;
}

const FREQUENCY_LABELS: Record<Feed['dataset']['frequency'], string> = {
  continuous: 'en continu',
  daily: 'quotidienne',
  weekly: 'hebdomadaire',
  monthly: 'mensuelle',
};

function freshness(seconds: number): string {
  if (seconds === 0) return 'revalidée à chaque requête';
  if (seconds < 120) return `${seconds} s`;
  return `${Math.round(seconds / 60)} min`;
}

function datasetSection(baseUrl: string, entry: IndexEntry): string {
  const { feed, modified } = entry;
  const { dataset } = feed;
  const licence = dataset.licence === LICENCE_OUVERTE ? 'Licence Ouverte 2.0 (Etalab)' : dataset.licence;
  const anchor = landingPageOf('', feed.id).split('#')[1];
  return `<section id="${escapeHtml(anchor)}">
<div class="map">${previewMap(entry)}</div>
<div class="text">
<h2>${escapeHtml(dataset.title)}</h2>
<p>${escapeHtml(dataset.description)}</p>
<dl>
<dt>Téléchargement</dt><dd><a href="${escapeHtml(`${baseUrl}${feed.path}`)}">${escapeHtml(feed.path)}</a> (${escapeHtml(dataset.format)}, <code>${escapeHtml(feed.contentType.split(';')[0])}</code>)</dd>
<dt>Description DCAT</dt><dd><a href="${escapeHtml(`${baseUrl}${datasetPath(feed.id)}`)}">${escapeHtml(datasetPath(feed.id))}</a></dd>
<dt>Licence</dt><dd><a href="${escapeHtml(dataset.licence)}">${escapeHtml(licence)}</a></dd>
<dt>Mise à jour</dt><dd>${FREQUENCY_LABELS[dataset.frequency]}; réponses réutilisables ${freshness(entry.maxAgeSeconds)}${modified ? `; dernière modification <time datetime="${modified.toISOString()}">${escapeHtml(modified.toISOString().replace('T', ' ').slice(0, 19))} UTC</time>` : ''}</dd>
<dt>Mots-clés</dt><dd>${dataset.keywords.map(escapeHtml).join(', ')}</dd>
</dl>
</div>
</section>`;
}

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:62rem;padding:1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin:.2rem 0}section{display:flex;gap:1rem;border-top:1px solid #ddd;padding:1rem 0}
.map{flex:none}.text{min-width:0}dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .8rem;margin:.5rem 0}
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere}code{font-size:.9em}@media(max-width:40rem){section{flex-direction:column}}`;

/** The whole page. Every text comes from the feeds' declarations, escaped. */
export function renderIndexPage(baseUrl: string, entries: readonly IndexEntry[]): string {
  return `<!DOCTYPE html>
<html lang="fr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Données ouvertes — territoire connecté de Châlons</title>
<link rel="alternate" type="application/ld+json" href="${escapeHtml(`${baseUrl}${CATALOG_PATH}`)}">
<link rel="alternate" type="text/turtle" href="${escapeHtml(`${baseUrl}${CATALOG_TURTLE_PATH}`)}">
<style>${STYLE}</style>
</head>
<body>
<h1>Données ouvertes du territoire connecté de Châlons</h1>
<p>${entries.length} jeux de données ouverts et anonymisés de Châlons-en-Champagne, Fagnières, Saint-Martin-sur-le-Pré et Châlons Agglo, sans authentification, sous <a href="${LICENCE_OUVERTE}">Licence Ouverte 2.0</a>.
Catalogue DCAT-AP : <a href="${escapeHtml(`${baseUrl}${CATALOG_PATH}`)}">JSON-LD</a>, <a href="${escapeHtml(`${baseUrl}${CATALOG_TURTLE_PATH}`)}">Turtle</a>.</p>
<main>
${entries.map((entry) => datasetSection(baseUrl, entry)).join('\n')}
</main>
</body>
</html>
`;
}
