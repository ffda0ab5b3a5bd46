/**
 * DCAT catalogue (JSON-LD) of the hub's open datasets, in the shape data.gouv.fr's DCAT
 * harvester reads: title, description, keywords, licence on distributions, Dublin Core
 * frequency, spatial coverage as a GeoJSON literal.
 */
export const LICENCE_OUVERTE = 'https://www.etalab.gouv.fr/licence-ouverte-open-licence';

// The territory's extent (the 30 communes of the project), as published coverage.
const TERRITORY_BBOX = [4.2, 48.85, 4.53, 49.07] as const;

export interface DatasetEntry {
  id: string;
  title: string;
  description: string;
  keywords: string[];
  path: string;
  mediaType: string;
  format: string;
  frequency: 'continuous' | 'daily';
  modified: Date | null;
}

export const DATASETS: Omit<DatasetEntry, 'modified'>[] = [
  {
    id: 'equipment',
    title: 'Équipements publics connectés — Châlons-en-Champagne et agglomération',
    description:
      "Points lumineux LED, détecteurs de présence, carrefours à feux, arrêts de bus, parkings, bâtiments (écoles, gymnases) et leurs capteurs, bornes Wi-Fi et armoires électriques des collectivités de Châlons-en-Champagne, Fagnières, Saint-Martin-sur-le-Pré et Châlons Agglo. Les caméras ne sont jamais publiées.",
    keywords: ['éclairage public', 'smart city', 'équipements', 'Châlons-en-Champagne', 'Marne'],
    path: '/opendata/equipment.geojson',
    mediaType: 'application/geo+json',
    format: 'GeoJSON',
    frequency: 'continuous',
  },
];

const CONTEXT = {
  dcat: 'http://www.w3.org/ns/dcat#',
  dct: 'http://purl.org/dc/terms/',
  foaf: 'http://xmlns.com/foaf/0.1/',
  locn: 'http://www.w3.org/ns/locn#',
  xsd: 'http://www.w3.org/2001/XMLSchema#',
};

const PUBLISHER = { '@type': 'foaf:Agent', 'foaf:name': 'Châlons Agglo — connecte-hub' };

export const CATALOG_PATH = '/opendata/catalog.jsonld';

/** Where a dataset's `@id` dereferences: its own DCAT description. */
export const datasetPath = (id: string) => `/opendata/datasets/${id}`;

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
function datasetNode(baseUrl: string, dataset: Omit<DatasetEntry, 'modified'>, modified: Date | null) {
  return {
    '@id': `${baseUrl}${datasetPath(dataset.id)}`,
    '@type': 'dcat:Dataset',
    'dct:identifier': dataset.id,
    'dct:title': dataset.title,
    'dct:description': dataset.description,
    'dcat:keyword': dataset.keywords,
    'dct:publisher': PUBLISHER,
    'dct:accrualPeriodicity': { '@id': `http://purl.org/cld/freq/${dataset.frequency}` },
    'dct:spatial': spatialCoverage(),
    ...(modified ? { 'dct:modified': { '@type': 'xsd:dateTime', '@value': modified.toISOString() } } : {}),
    'dcat:distribution': [
      {
        '@id': `${baseUrl}${dataset.path}`,
        '@type': 'dcat:Distribution',
        'dct:title': `${dataset.title} (${dataset.format})`,
        'dcat:accessURL': { '@id': `${baseUrl}${dataset.path}` },
        'dcat:downloadURL': { '@id': `${baseUrl}${dataset.path}` },
        'dcat:mediaType': { '@id': `https://www.iana.org/assignments/media-types/${dataset.mediaType}` },
        'dct:format': dataset.format,
        'dct:license': { '@id': LICENCE_OUVERTE },
      },
    ],
  };
}

export function dcatCatalog(baseUrl: string, modified: Record<string, Date | null>) {
  return {
    '@context': CONTEXT,
    '@id': `${baseUrl}${CATALOG_PATH}`,
    '@type': 'dcat:Catalog',
    'dct:title': 'connecte-hub — données ouvertes du territoire connecté de Châlons',
    'dct:description': 'Jeux de données ouverts et anonymisés publiés par le hub du territoire connecté.',
    'dct:publisher': PUBLISHER,
    'dct:language': 'http://publications.europa.eu/resource/authority/language/FRA',
    'dcat:dataset': DATASETS.map((dataset) => datasetNode(baseUrl, dataset, modified[dataset.id] ?? null)),
  };
}

/** The JSON-LD document a dataset's `@id` answers with, or null for an id the hub does not publish. */
export function dcatDataset(baseUrl: string, id: string, modified: Date | null) {
  const dataset = DATASETS.find((entry) => entry.id === id);
  if (!dataset) return null;
  return { '@context': CONTEXT, ...datasetNode(baseUrl, dataset, modified), 'dct:isPartOf': { '@id': `${baseUrl}${CATALOG_PATH}` } };
}
