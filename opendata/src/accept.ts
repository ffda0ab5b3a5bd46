/**
 * `Accept` (RFC 9110 §12.5.1): which of the media types a URL can send the client takes.
 *
 * Every media range is matched with its q-value; the most specific range that matches a type
 * decides its q (`application/geo+json;q=0, *\/*` refuses GeoJSON). A range names a
 * structured-syntax suffix's base type too, less specifically than the exact type: a client
 * asking for `application/json` reads `application/geo+json` and `application/ld+json`, one
 * asking for `application/xml` reads DATEX II's XML. Parameters other than `q` are ignored.
 * No header, or an empty one, accepts anything. A header none of whose elements is a media range
 * accepts nothing: the client asked for something, and it is not here.
 */

interface MediaRange {
  type: string;
  subtype: string;
  q: number;
}

const TOKEN = /^(?:\*|[a-z0-9!#$&^_.+-]+)$/;
/** More are not read: no client needs them, and each costs a comparison per type offered. */
const MAX_RANGES = 64;

function parseRanges(header: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const element of header.split(',').slice(0, MAX_RANGES)) {
    const [range, ...parameters] = element.split(';').map((part) => part.trim().toLowerCase());
    const [type, subtype, extra] = range.split('/');
    if (extra !== undefined || !type || !subtype || !TOKEN.test(type) || !TOKEN.test(subtype) || (type === '*' && subtype !== '*')) continue;
    let q = 1;
    let valid = true;
    for (const parameter of parameters) {
      const [name, value] = parameter.split('=').map((part) => part?.trim());
      if (name !== 'q') continue;
      // RFC 9110 §12.4.2: 0 to 1, at most three decimals.
      if (value === undefined || !/^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(value)) valid = false;
      else q = Number(value);
    }
    if (valid) ranges.push({ type, subtype, q });
  }
  return ranges;
}

/** How specifically `range` names `mediaType` (3 exact, 2 by its suffix, 1 `type/*`, 0 `*\/*`), or -1. */
function specificity(range: MediaRange, type: string, subtype: string): number {
  if (range.type === '*') return 0;
  if (range.type !== type) return -1;
  if (range.subtype === '*') return 1;
  if (range.subtype === subtype) return 3;
  const plus = subtype.lastIndexOf('+');
  return plus !== -1 && subtype.slice(plus + 1) === range.subtype ? 2 : -1;
}

/** The q-value `ranges` give `mediaType` (`type/subtype`, no parameters): the most specific match's. */
function qualityOf(ranges: readonly MediaRange[], mediaType: string): number {
  const [type, subtype] = mediaType.toLowerCase().split('/');
  let best = -1;
  let q = 0;
  for (const range of ranges) {
    const level = specificity(range, type, subtype);
    // Equally specific ranges: the highest q (`text/html;q=0.5, text/html` is text/html).
    if (level > best || (level === best && range.q > q)) {
      best = level;
      q = range.q;
    }
  }
  return best === -1 ? 0 : q;
}

/** `application/geo+json` of `application/geo+json; charset=utf-8`. */
export const mediaTypeOf = (contentType: string) => contentType.split(';')[0].trim().toLowerCase();

/**
 * The offer (content types, the preferred one first) the client takes best, or null when it
 * takes none (a 406). Ties go to the earlier offer, so no header at all gets the first.
 */
export function negotiateMediaType(header: string | string[] | undefined, offers: readonly string[]): string | null {
  const joined = Array.isArray(header) ? header.join(',') : header;
  if (joined === undefined || joined.trim() === '') return offers[0] ?? null;
  const ranges = parseRanges(joined);
  let chosen: string | null = null;
  let best = 0;
  for (const offer of offers) {
    const q = qualityOf(ranges, mediaTypeOf(offer));
    if (q > best) {
      best = q;
      chosen = offer;
    }
  }
  return chosen;
}
