/** The URLs the open-data module itself owns, around those of its feeds. They are published: they never change. */
export const OPENDATA_PREFIX = '/opendata';

export const CATALOG_PATH = `${OPENDATA_PREFIX}/catalog.jsonld`;

/** The same DCAT graph in Turtle. */
export const CATALOG_TURTLE_PATH = `${OPENDATA_PREFIX}/catalog.ttl`;

/** The human-readable index page (`Accept: text/html`; the JSON-LD catalogue for other clients). */
export const INDEX_PAGE_PATH = `${OPENDATA_PREFIX}/`;

export const DATASETS_PREFIX = `${OPENDATA_PREFIX}/datasets/`;

/** Where a dataset's `@id` dereferences: its own DCAT description. */
export const datasetPath = (id: string) => `${DATASETS_PREFIX}${id}`;
