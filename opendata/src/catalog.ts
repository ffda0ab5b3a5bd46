/**
 * DCAT catalogue (JSON-LD) of the hub's open datasets, one per registered feed, in the shape
 * data.gouv.fr's DCAT harvester reads: title, description, keywords, licence on distributions,
 * Dublin Core frequency, spatial coverage as a GeoJSON literal. Everything in it comes from the
 * feeds' declarations (`feed.ts`).
 */
import type { Feed } from './feed.js';
import { CATALOG_PATH, datasetPath } from './paths.js';

export const LICENCE_OUVERTE = 'https://www.etalab.gouv.fr/licence-ouverte-open-licence';

// The territory's extent (the 30 communes of the project), as published coverage.
const TERRITORY_BBOX = [4.2, 48.85, 4.53, 49.07] as const;

const CONTEXT = {
  dcat: 'http://www.w3.org/ns/dcat#',
  dct: 'http://purl.org/dc/terms/',
  foaf: 'http://xmlns.com/foaf/0.1/',
  locn: 'http://www.w3.org/ns/locn#',
  xsd: 'http://www.w3.org/2001/XMLSchema#',
};

const PUBLISHER = { '@type': 'foaf:Agent', 'foaf:name': 'Châlons Agglo — connecte-hub' };

function spatialCoverage() {
  const [minLon, minLat, maxLon, maxLat] = TERRITORY_BBOX;
  return {
    '@type': 'dct:Location',
    'locn:geometry': {
      '@type': 'https://www.iana.org/assignments/media-types/application/vnd.geo+json',
      '@value': JSON.stringify({
        type: 'Polygon',
        coordinates: [[[minLon, minLat], [maxLon, minLat], [maxLon, maxLat], [minLon, maxLat], [minLon, minLat]]],
      }),
    },
  };
}

/**
 * `dct:identifier` stays the bare id: harvesters key a dataset on it, and it must not change
 * with the host name the catalogue was read under.
 */
function datasetNode(baseUrl: string, feed: Feed, modified: Date | null) {
  const { dataset } = feed;
  const download = `${baseUrl}${feed.path}`;
  return {
    '@id': `${baseUrl}${datasetPath(feed.id)}`,
    '@type': 'dcat:Dataset',
    'dct:identifier': feed.id,
    'dct:title': dataset.title,
    'dct:description': dataset.description,
    'dcat:keyword': dataset.keywords,
    'dct:publisher': PUBLISHER,
    'dct:accrualPeriodicity': { '@id': `http://purl.org/cld/freq/${dataset.frequency}` },
    'dct:spatial': spatialCoverage(),
    ...(modified ? { 'dct:modified': { '@type': 'xsd:dateTime', '@value': modified.toISOString() } } : {}),
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
      },
    ],
  };
}

/** `application/geo+json` of `application/geo+json; charset=utf-8`: what IANA registers. */
const mediaTypeOf = (contentType: string) => contentType.split(';')[0].trim().toLowerCase();

export interface CatalogEntry {
  feed: Feed;
  /** When the whole dataset last changed. */
  modified: Date | null;
}

export function dcatCatalog(baseUrl: string, entries: readonly CatalogEntry[]) {
  return {
    '@context': CONTEXT,
    '@id': `${baseUrl}${CATALOG_PATH}`,
    '@type': 'dcat:Catalog',
    'dct:title': 'connecte-hub — données ouvertes du territoire connecté de Châlons',
    'dct:description': 'Jeux de données ouverts et anonymisés publiés par le hub du territoire connecté.',
    'dct:publisher': PUBLISHER,
    'dct:language': 'http://publications.europa.eu/resource/authority/language/FRA',
    'dcat:dataset': entries.map(({ feed, modified }) => datasetNode(baseUrl, feed, modified)),
  };
}

/** The JSON-LD document a dataset's `@id` answers with. */
export function dcatDataset(baseUrl: string, { feed, modified }: CatalogEntry) {
  return { '@context': CONTEXT, ...datasetNode(baseUrl, feed, modified), 'dct:isPartOf': { '@id': `${baseUrl}${CATALOG_PATH}` } };
}
