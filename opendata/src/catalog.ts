/**
 * DCAT-AP catalogue (JSON-LD; `turtle.ts` writes the same graph in Turtle) of the hub's open
 * datasets, one per registered feed, in the shape data.gouv.fr's DCAT harvester reads: per
 * dataset its identifier, title, description, keywords, publisher, contact point, update
 * frequency (EU frequency vocabulary), temporal coverage, spatial coverage (the territory's
 * outline as a GeoJSON literal, its bounding box as WKT), landing page (the index page's entry),
 * and one distribution with its access and download URL, IANA media type, format, licence
 * (Licence Ouverte 2.0) and the standards it conforms to. Everything in it comes from the feeds'
 * declarations (`feed.ts`) and the territory (`territory.ts`).
 *
 * The graph uses only absolute IRIs and blank nodes: every IRI under the hub dereferences
 * (`test/public-links.test.ts`), the others are the vocabularies' and registries' own.
 */
import type { Feed } from './feed.js';
import { CATALOG_PATH, datasetPath, INDEX_PAGE_PATH } from './paths.js';
import { TERRITORY_BBOX, TERRITORY_OUTLINE } from './territory.js';

/** Licence Ouverte / Open Licence 2.0 (Etalab), the version-specific URI data.gouv.fr knows as "lov2". */
export const LICENCE_OUVERTE = 'https://www.etalab.gouv.fr/wp-content/uploads/2017/04/ETALAB-Licence-Ouverte-v2.0.pdf';

/** The day the hub began publishing open data: where a dataset's temporal coverage starts unless it says otherwise. */
export const PUBLISHED_SINCE = '2026-11-25';

export const CONTEXT = {
  dcat: 'http://www.w3.org/ns/dcat#',
  dct: 'http://purl.org/dc/terms/',
  foaf: 'http://xmlns.com/foaf/0.1/',
  locn: 'http://www.w3.org/ns/locn#',
  vcard: 'http://www.w3.org/2006/vcard/ns#',
  gsp: 'http://www.opengis.net/ont/geosparql#',
  xsd: 'http://www.w3.org/2001/XMLSchema#',
} as const;

const FREQUENCIES = { continuous: 'CONT', daily: 'DAILY', weekly: 'WEEKLY', monthly: 'MONTHLY' } as const;
const EU_FREQUENCY = 'http://publications.europa.eu/resource/authority/frequency/';
const GEOJSON_DATATYPE = 'https://www.iana.org/assignments/media-types/application/vnd.geo+json';
const PUBLISHER_NAME = 'Châlons Agglo — connecte-hub';

export interface CatalogOptions {
  /** `vcard:hasEmail` of the contact point (`mailto:`…); without it, the index page is the contact (`vcard:hasURL`). */
  contactEmail?: string;
}

const PUBLISHER = {
  '@type': 'foaf:Agent',
  'foaf:name': PUBLISHER_NAME,
  'dct:type': { '@id': 'http://purl.org/adms/publishertype/LocalAuthority' },
};

function contactPoint(baseUrl: string, options: CatalogOptions) {
  return {
    '@type': 'vcard:Organization',
    'vcard:fn': `${PUBLISHER_NAME} — données ouvertes`,
    ...(options.contactEmail
      ? { 'vcard:hasEmail': { '@id': `mailto:${options.contactEmail}` } }
      : { 'vcard:hasURL': { '@id': `${baseUrl}${INDEX_PAGE_PATH}` } }),
  };
}

function spatialCoverage() {
  const [minLon, minLat, maxLon, maxLat] = TERRITORY_BBOX;
  return {
    '@type': 'dct:Location',
    'locn:geometry': {
      '@type': GEOJSON_DATATYPE,
      '@value': JSON.stringify({ type: 'Polygon', coordinates: [TERRITORY_OUTLINE] }),
    },
    'dcat:bbox': {
      '@type': 'gsp:wktLiteral',
      '@value': `POLYGON((${minLon} ${minLat}, ${maxLon} ${minLat}, ${maxLon} ${maxLat}, ${minLon} ${maxLat}, ${minLon} ${minLat}))`,
    },
  };
}

function temporalCoverage(feed: Feed) {
  const { start, end } = feed.dataset.temporal ?? { start: PUBLISHED_SINCE };
  return {
    '@type': 'dct:PeriodOfTime',
    'dcat:startDate': { '@type': 'xsd:date', '@value': start },
    ...(end !== undefined ? { 'dcat:endDate': { '@type': 'xsd:date', '@value': end } } : {}),
  };
}

/** `application/geo+json` of `application/geo+json; charset=utf-8`: what IANA registers. */
const mediaTypeOf = (contentType: string) => contentType.split(';')[0].trim().toLowerCase();

const dateTime = (date: Date) => ({ '@type': 'xsd:dateTime', '@value': date.toISOString() });

/** Where the index page lists a dataset (its `dcat:landingPage`). */
export const landingPageOf = (baseUrl: string, id: string) => `${baseUrl}${INDEX_PAGE_PATH}#${id}`;

/**
 * `dct:identifier` stays the bare id: harvesters key a dataset on it, and it must not change
 * with the host name the catalogue was read under.
 */
function datasetNode(baseUrl: string, feed: Feed, modified: Date | null, options: CatalogOptions) {
  const { dataset } = feed;
  const download = `${baseUrl}${feed.path}`;
  const conformsTo = (dataset.conformsTo ?? []).map((uri) => ({ '@id': uri }));
  return {
    '@id': `${baseUrl}${datasetPath(feed.id)}`,
    '@type': 'dcat:Dataset',
    'dct:identifier': feed.id,
    'dct:title': dataset.title,
    'dct:description': dataset.description,
    'dcat:keyword': dataset.keywords,
    'dct:publisher': PUBLISHER,
    'dcat:contactPoint': contactPoint(baseUrl, options),
    'dct:accrualPeriodicity': { '@id': `${EU_FREQUENCY}${FREQUENCIES[dataset.frequency]}` },
    'dct:temporal': temporalCoverage(feed),
    'dct:spatial': spatialCoverage(),
    'dcat:landingPage': { '@id': landingPageOf(baseUrl, feed.id) },
    ...(modified ? { 'dct:modified': dateTime(modified) } : {}),
    'dcat:distribution': [
      {
        '@id': download,
        '@type': 'dcat:Distribution',
        'dct:title': `${dataset.title} (${dataset.format})`,
        'dcat:accessURL': { '@id': download },
        'dcat:downloadURL': { '@id': download },
        'dcat:mediaType': { '@id': `https://www.iana.org/assignments/media-types/${mediaTypeOf(feed.contentType)}` },
        'dct:format': dataset.format,
        'dct:license': { '@id': dataset.licence },
        ...(conformsTo.length ? { 'dct:conformsTo': conformsTo } : {}),
        ...(modified ? { 'dct:modified': dateTime(modified) } : {}),
      },
    ],
  };
}

export interface CatalogEntry {
  feed: Feed;
  /** When the whole dataset last changed. */
  modified: Date | null;
}

export function dcatCatalog(baseUrl: string, entries: readonly CatalogEntry[], options: CatalogOptions = {}) {
  const latest = Math.max(...entries.map(({ modified }) => modified?.getTime() ?? Number.NEGATIVE_INFINITY));
  return {
    '@context': CONTEXT,
    '@id': `${baseUrl}${CATALOG_PATH}`,
    '@type': 'dcat:Catalog',
    'dct:title': 'connecte-hub — données ouvertes du territoire connecté de Châlons',
    'dct:description': 'Jeux de données ouverts et anonymisés publiés par le hub du territoire connecté.',
    'dct:publisher': PUBLISHER,
    'dcat:contactPoint': contactPoint(baseUrl, options),
    'dct:language': { '@id': 'http://publications.europa.eu/resource/authority/language/FRA' },
    'dct:license': { '@id': LICENCE_OUVERTE },
    'dct:spatial': spatialCoverage(),
    'foaf:homepage': { '@id': `${baseUrl}${INDEX_PAGE_PATH}` },
    ...(Number.isFinite(latest) ? { 'dct:modified': dateTime(new Date(latest)) } : {}),
    'dcat:dataset': entries.map(({ feed, modified }) => datasetNode(baseUrl, feed, modified, options)),
  };
}

/** The JSON-LD document a dataset's `@id` answers with. */
export function dcatDataset(baseUrl: string, { feed, modified }: CatalogEntry, options: CatalogOptions = {}) {
  return {
    '@context': CONTEXT,
    ...datasetNode(baseUrl, feed, modified, options),
    'dct:isPartOf': { '@id': `${baseUrl}${CATALOG_PATH}` },
  };
}
