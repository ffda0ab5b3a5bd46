/**
 * Sending a streamed feed body (`FeedStream`, `feed.ts`): each piece is written as the feed
 * produces it, through brotli or gzip when negotiated, with the socket's backpressure (a slow
 * client slows the cursor down, memory stays flat), as a chunked response (no Content-Length:
 * the size is not known before the end). A copy is kept only while it stays within `keepBytes`,
 * so that a representation small enough for the cache is cached after its first sending; a
 * larger one is never held whole.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createBrotliCompress, createGzip } from 'node:zlib';
import type { ContentCoding } from './content-coding.js';
import type { FeedStream } from './feed.js';

/** What `representation.body` throws through the cache when the body is a stream (not cached as such). */
export const STREAMED = Symbol('streamed body');

export interface StreamedCopies {
  /** The whole identity body, when it stayed within the budget. */
  identity: Buffer | null;
  /** The whole encoded body (br/gzip), when it stayed within the budget. */
  coded: Buffer | null;
}

/** Collects what passes, up to `limit` bytes; past that it drops what it held and keeps nothing. */
class Copy {
  private chunks: Buffer[] | null = [];
  private size = 0;
  constructor(private readonly limit: number) {}
  add(chunk: Buffer) {
    if (this.chunks === null) return;
    this.size += chunk.length;
    if (this.size > this.limit) this.chunks = null;
    else this.chunks.push(chunk);
  }
  result(): Buffer | null {
    return this.chunks === null ? null : Buffer.concat(this.chunks, this.size);
  }
}

const toBuffer = (piece: string | Uint8Array) =>
  typeof piece === 'string' ? Buffer.from(piece) : Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);

function compressor(coding: Exclude<ContentCoding, 'identity'>) {
  // The same settings as `encode` (content-coding.ts): equal bytes whichever way they were built.
  if (coding === 'gzip') return createGzip({ level: 6 });
  return createBrotliCompress({
    params: { [constants.BROTLI_PARAM_QUALITY]: 6, [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT },
  });
}

/**
 * Writes `head` then the stream's pieces to `res`, encoded with `coding`, and ends it. Resolves
 * with the copies kept (none for HEAD; null when the client went away before the end: the stream
 * was stopped, its cursor may still be open);
 * rejects when the feed's stream failed (the response is destroyed: a truncated body must not
 * look complete).
 */
export async function sendStreamed(
  req: IncomingMessage,
  res: ServerResponse,
  head: Record<string, string>,
  stream: FeedStream,
  coding: ContentCoding,
  keepBytes: number,
): Promise<StreamedCopies | null> {
  res.writeHead(200, head);
  if (req.method === 'HEAD') {
    // GET's headers, no body: the stream is never started (it has read nothing yet).
    res.end();
    return { identity: null, coded: null };
  }
  const identity = new Copy(keepBytes);
  const coded = new Copy(keepBytes);
  let failed: unknown = null;
  async function* pieces() {
    try {
      for await (const piece of stream) {
        const bytes = toBuffer(piece);
        if (bytes.length === 0) continue;
        identity.add(bytes);
        yield bytes;
      }
    } catch (error) {
      failed = error;
      throw error;
    }
  }
  const source = Readable.from(pieces(), { objectMode: false, highWaterMark: 64 * 1024 });
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      coded.add(chunk);
      callback(null, chunk);
    },
  });
  try {
    if (coding === 'identity') await pipeline(source, res);
    else await pipeline(source, compressor(coding), tap, res);
  } catch (error) {
    // The client went away: not an error of ours, whatever the stream threw as it was torn down
    // (a cursor closed under it).
    if (res.destroyed || req.destroyed) {
      res.destroy();
      return null;
    }
    // The headers are sent: the response can only be cut short (the client sees a truncated body).
    res.destroy();
    throw failed ?? error;
  }
  return { identity: identity.result(), coded: coding === 'identity' ? null : coded.result() };
}
