/** The URLs the open-data module itself owns, around those of its feeds. They are published: they never change. */
export const OPENDATA_PREFIX = '/opendata';

export const CATALOG_PATH = `${OPENDATA_PREFIX}/catalog.jsonld`;

export const DATASETS_PREFIX = `${OPENDATA_PREFIX}/datasets/`;

/** Where a dataset's `@id` dereferences: its own DCAT description. */
export const datasetPath = (id: string) => `${DATASETS_PREFIX}${id}`;
