/**
 * Every open-data feed: a request served from the representation cache, p50, against a static
 * file of the same bytes served by the same HTTP server in the same run — with the version reuse
 * the hub runs with (OPENDATA_VERSION_REUSE_MS, default 1,000 ms: a request within it after
 * another needs no database round trip) and without it (every request reads its version in a
 * REPEATABLE READ snapshot).
 *
 *   npx tsx bench/opendata-feeds.ts [--requests 300]
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadConfig } from '@connecte/shared/config';
import { createTestDatabase } from '@connecte/testkit';
import { createOpendataHandler, FEEDS } from '../opendata/src/index.js';
import { rawRequest } from '../opendata/test/serve.js';

const { values: args } = parseArgs({ options: { requests: { type: 'string', default: '300' } } });
const REQUESTS = Math.max(50, Number(args.requests));
const REUSE_MS = loadConfig({ DATABASE_URL: 'postgresql://unused', NODE_ENV: 'test' }).OPENDATA_VERSION_REUSE_MS;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ms = (value: number) => `${value.toFixed(3)} ms`;

const db = await createTestDatabase({ seed: true });
const pool = new pg.Pool({ connectionString: db.url, max: 4 });
const reusing = createOpendataHandler({ pool, publicUrl: 'http://127.0.0.1', versionReuseMs: REUSE_MS });
const reading = createOpendataHandler({ pool, publicUrl: 'http://127.0.0.1' });
const statics = new Map<string, { bytes: Buffer; type: string }>();
const server = http.createServer((req, res) => {
  const url = req.url ?? '/';
  const file = url.startsWith('/static') ? statics.get(url.slice('/static'.length)) : undefined;
  if (file) {
    res.writeHead(200, { 'content-type': file.type, 'content-length': String(file.bytes.length), 'cache-control': 'public, max-age=60' });
    res.end(file.bytes);
    return;
  }
  const handle = url.startsWith('/read') ? reading : reusing;
  if (url.startsWith('/read')) req.url = url.slice('/read'.length);
  handle(req, res).then((handled) => {
    if (!handled) res.writeHead(404).end();
  });
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

async function p50(url: string, size: number): Promise<number> {
  for (let i = 0; i < 10; i++) await rawRequest(url);
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    const res = await rawRequest(url);
    times.push(performance.now() - started);
    if (res.status !== 200 || res.body.length !== size) throw new Error(`${url}: ${res.status}, ${res.body.length} bytes (expected ${size})`);
  }
  return median(times);
}

console.log(`open-data feeds: a cached request p50 (${REQUESTS} requests each, identity coding) against static bytes on the same server`);
console.log(`${'feed'.padEnd(46)}${'bytes'.padStart(11)}  ${'static'.padStart(10)}  ${`reuse ${REUSE_MS} ms`.padStart(14)}  ratio  ${'no reuse'.padStart(10)}  ratio`);
for (const feed of FEEDS) {
  const first = await rawRequest(`${base}${feed.path}`);
  if (first.status !== 200) throw new Error(`${feed.path}: ${first.status}`);
  statics.set(feed.path, { bytes: first.body, type: String(first.headers['content-type']) });
  const file = await p50(`${base}/static${feed.path}`, first.body.length);
  const reused = await p50(`${base}${feed.path}`, first.body.length);
  const read = await p50(`${base}/read${feed.path}`, first.body.length);
  console.log(
    `${feed.path.padEnd(46)}${first.body.length.toLocaleString('en').padStart(11)}  ${ms(file).padStart(10)}  ${ms(reused).padStart(14)}  ${(reused / file).toFixed(1).padStart(4)}×  ${ms(read).padStart(10)}  ${(read / file).toFixed(1).padStart(4)}×`,
  );
}
await new Promise<void>((resolve) => server.close(() => resolve()));
await pool.end();
await db.drop();
