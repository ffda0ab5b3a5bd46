/**
 * Content codings of the published files: Accept-Encoding negotiation (RFC 9110 §12.5.3) and
 * the compressors. The GeoJSON of the whole territory is 2.8 MB of very repetitive text that
 * brotli and gzip bring to ~5 % of that.
 */
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';

export type ContentCoding = 'br' | 'gzip' | 'identity';

/** Preferred first when a client accepts several equally: brotli is the smallest. */
const PREFERENCE: readonly ContentCoding[] = ['br', 'gzip', 'identity'];

const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

/**
 * The coding to send, or null when the client refuses every one we have (`identity;q=0` with
 * no br or gzip): the caller answers 406. No header means the client states no preference and
 * gets the raw bytes, which every client reads. An element whose q-value is malformed is
 * ignored rather than guessed at. `identity` that is not named (directly or by `*`) stays
 * acceptable, but only as the last resort, so that `br;q=0.5` still yields brotli.
 */
export function negotiateContentCoding(header: string | undefined): ContentCoding | null {
  if (header === undefined) return 'identity';
  const weights = new Map<string, number>();
  for (const element of header.split(',')) {
    const [coding, ...params] = element.split(';').map((part) => part.trim().toLowerCase());
    if (!coding) continue;
    let q = 1;
    for (const param of params) {
      const [name, value] = param.split('=').map((part) => part.trim());
      if (name !== 'q') continue;
      q = value !== undefined && QVALUE.test(value) ? Number(value) : Number.NaN;
    }
    if (Number.isNaN(q)) continue;
    // RFC 9110 §8.4.1.3: x-gzip is gzip.
    weights.set(coding === 'x-gzip' ? 'gzip' : coding, q);
  }
  const any = weights.get('*');
  const weightOf = (coding: ContentCoding) =>
    weights.get(coding) ?? any ?? (coding === 'identity' ? Number.MIN_VALUE : 0);
  let best: ContentCoding | null = null;
  for (const coding of PREFERENCE) {
    if (weightOf(coding) > 0 && (best === null || weightOf(coding) > weightOf(best))) best = coding;
  }
  return best;
}

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

/**
 * Moderate levels: a dataset changes whenever an asset does, so its compressed bytes are
 * rebuilt often; brotli 6 / gzip 6 take ~25 ms on the full 2.8 MB (brotli 11 takes seconds)
 * for nearly the same size. zlib runs on the thread pool, off the event loop.
 */
export function encode(coding: Exclude<ContentCoding, 'identity'>, bytes: Buffer): Promise<Buffer> {
  if (coding === 'gzip') return gzipAsync(bytes, { level: 6 });
  return brotli(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 6,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
}
