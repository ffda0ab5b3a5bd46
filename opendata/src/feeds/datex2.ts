/**
 * Writing DATEX II v3.7 XML (the `d2:payload` root of `DATEXII_3_D2Payload.xsd`): escaping, the
 * payload envelope shared by the three publications, and the pieces they repeat (multilingual
 * strings, WGS84 points). Element order follows the XSD sequences: a type's inherited elements
 * first, then its own (the tests validate every publication with xmllint against the official set
 * in `opendata/reference/datex2/v3.7/`).
 */

/** Who publishes: DATEX II's `publicationCreator` (country + national identifier). */
export const DATEX_COUNTRY = 'FR';
export const DATEX_NATIONAL_IDENTIFIER = 'CHALONS-AGGLO';

/** The id of the ParkingTable the status publication refers to. */
export const PARKING_TABLE_ID = 'chalons-agglo-parking';

const NAMESPACES: Record<string, string> = {
  d2: 'http://datex2.eu/schema/3/d2Payload',
  com: 'http://datex2.eu/schema/3/common',
  fac: 'http://datex2.eu/schema/3/facilities',
  loc: 'http://datex2.eu/schema/3/locationReferencing',
  prk: 'http://datex2.eu/schema/3/parking',
  sit: 'http://datex2.eu/schema/3/situation',
  xsi: 'http://www.w3.org/2001/XMLSchema-instance',
};

/** XML text or attribute value; characters XML 1.0 cannot carry at all are dropped. */
export function esc(value: string | number): string {
  return String(value)
    .replace(/[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/** xs:dateTime in UTC. */
export const dateTime = (at: Date) => at.toISOString();

/** A `com:MultilingualString` in French. */
export const multilingual = (text: string) => `<com:values><com:value lang="fr">${esc(text)}</com:value></com:values>`;

/** Decimal degrees, at most 6 decimals (~10 cm), never in exponent notation. */
export const degrees = (value: number) => String(Number(value.toFixed(6)));

/** The content of a `loc:PointLocation` (the element itself carries `xsi:type="loc:PointLocation"`). */
export const pointByCoordinates = (lon: number, lat: number) =>
  `<loc:pointByCoordinates><loc:pointCoordinates><loc:latitude>${degrees(lat)}</loc:latitude><loc:longitude>${degrees(lon)}</loc:longitude></loc:pointCoordinates></loc:pointByCoordinates>`;

/**
 * The `d2:payload` document of one publication: `xsiType` is `prk:ParkingTablePublication`,
 * `prk:ParkingStatusPublication` or `sit:SituationPublication`; `body` what follows the common
 * `publicationTime` and `publicationCreator`.
 */
export function payload(xsiType: string, publicationTime: Date, prefixes: readonly string[], body: string): string {
  const xmlns = ['d2', 'com', ...prefixes, 'xsi'].map((p) => ` xmlns:${p}="${NAMESPACES[p]}"`).join('');
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<d2:payload${xmlns} xsi:type="${xsiType}" lang="fr" modelBaseVersion="3">` +
    `<com:publicationTime>${dateTime(publicationTime)}</com:publicationTime>` +
    `<com:publicationCreator><com:country>${DATEX_COUNTRY}</com:country><com:nationalIdentifier>${DATEX_NATIONAL_IDENTIFIER}</com:nationalIdentifier></com:publicationCreator>` +
    body +
    `</d2:payload>\n`
  );
}
