/**
 * Per-address rate limiting of the open data: a burst, then the sustained rate; 429 with
 * Retry-After as problem details; an allow-list (exact addresses, CIDR ranges) never throttled;
 * client addresses believed from TRUSTED_PROXIES only, so that a client can neither spread a
 * flood over forged addresses nor pass as an allow-listed harvester.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { loadConfig } from '@connecte/shared/config';
import { createOpendataHandler } from '@connecte/opendata';
import { createAddressRateLimit } from '@connecte/opendata/rate-limit';
import { createTestDatabase, type TestDatabase } from '@connecte/testkit';
import { rawRequest, serveOpendata, type ServedOpendata } from './serve.js';

/** A request as the limiter sees it: a socket peer and headers. */
const from = (peer: string, headers: Record<string, string> = {}) =>
  ({ socket: { remoteAddress: peer }, headers }) as unknown as Pick<IncomingMessage, 'headers' | 'socket'>;

describe('open data: rate limiting', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  const servers: ServedOpendata[] = [];
  const serve = async (options: Parameters<typeof serveOpendata>[0]) => {
    const served = await serveOpendata(options);
    servers.push(served);
    return served;
  };

  before(async () => {
    db = await createTestDatabase({ seed: true });
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
  });
  after(async () => {
    for (const served of servers) await served.close();
    await pool?.end();
    await db?.drop();
  });

  it('lets a burst through, then one request per 1/rate seconds, with the wait in Retry-After', () => {
    const limit = createAddressRateLimit({ perSecond: 2, burst: 3 });
    const t0 = 1_000_000;
    for (let i = 0; i < 3; i++) assert.equal(limit.take(from('192.0.2.1'), t0).allowed, true, `burst request ${i + 1}`);
    const refused = limit.take(from('192.0.2.1'), t0);
    assert.deepEqual(refused, { allowed: false, retryAfterSeconds: 1 });
    // Another address has its own bucket.
    assert.equal(limit.take(from('192.0.2.2'), t0).allowed, true);
    // 2 per second: one token back after 500 ms, not before.
    assert.equal(limit.take(from('192.0.2.1'), t0 + 400).allowed, false);
    assert.equal(limit.take(from('192.0.2.1'), t0 + 500).allowed, true);
    assert.equal(limit.take(from('192.0.2.1'), t0 + 500).allowed, false);
    // A long pause refills the burst, never more.
    for (let i = 0; i < 3; i++) assert.equal(limit.take(from('192.0.2.1'), t0 + 3_600_000).allowed, true);
    assert.equal(limit.take(from('192.0.2.1'), t0 + 3_600_000).allowed, false);
    // A slow rate says how long to wait, in whole seconds rounded up.
    const slow = createAddressRateLimit({ perSecond: 0.1, burst: 1 });
    slow.take(from('192.0.2.9'), t0);
    assert.deepEqual(slow.take(from('192.0.2.9'), t0 + 1), { allowed: false, retryAfterSeconds: 10 });
  });

  it('counts an IPv6 client per /64 and an IPv4-mapped peer as its IPv4 address', () => {
    const limit = createAddressRateLimit({ perSecond: 1, burst: 2 });
    const t = 5_000;
    assert.equal(limit.take(from('2001:db8:1:2::1'), t).allowed, true);
    assert.equal(limit.take(from('2001:db8:1:2:ffff::9'), t).allowed, true);
    assert.equal(limit.take(from('2001:db8:1:2:abcd:1:2:3'), t).allowed, false, 'the same /64: one bucket');
    assert.equal(limit.take(from('2001:db8:1:3::1'), t).allowed, true, 'another /64');
    assert.equal(limit.take(from('::ffff:198.51.100.7'), t).allowed, true);
    assert.equal(limit.take(from('198.51.100.7'), t).allowed, true);
    assert.equal(limit.take(from('::ffff:198.51.100.7'), t).allowed, false, 'one client, whatever the socket family');
  });

  it('never throttles allow-listed addresses and ranges, and believes X-Forwarded-For only from a trusted proxy', () => {
    const limit = createAddressRateLimit({ perSecond: 1, burst: 1, allowlist: ['192.0.2.10', '203.0.113.0/24', '2001:db8:aaaa::/48'] }, ['10.0.0.1']);
    const t = 9_000;
    for (let i = 0; i < 100; i++) {
      assert.deepEqual(limit.take(from('192.0.2.10'), t), { allowed: true, allowlisted: true });
      assert.equal(limit.take(from('203.0.113.77'), t).allowed, true);
      assert.equal(limit.take(from('2001:db8:aaaa:1::5'), t).allowed, true);
      // Through the trusted proxy, the harvester it names is the client.
      assert.equal(limit.take(from('10.0.0.1', { 'x-forwarded-for': '192.0.2.10' }), t).allowed, true);
    }
    assert.equal(limit.size(), 0, 'allow-listed callers hold no bucket');
    // An untrusted peer that claims to be the harvester is itself.
    assert.equal(limit.take(from('198.51.100.1', { 'x-forwarded-for': '192.0.2.10' }), t).allowed, true);
    assert.equal(limit.take(from('198.51.100.1', { 'x-forwarded-for': '192.0.2.10' }), t).allowed, false);
    // Nor can it spread a flood over addresses it makes up.
    assert.equal(limit.take(from('198.51.100.1', { 'x-forwarded-for': '198.51.100.200' }), t).allowed, false);
    assert.equal(limit.take(from('198.51.100.1', { 'x-forwarded-for': 'garbage, 10.0.0.1' }), t).allowed, false);
    // Behind the trusted proxy, each forwarded client has its own bucket; a forged hop left of it is ignored.
    assert.equal(limit.take(from('10.0.0.1', { 'x-forwarded-for': '198.51.100.50' }), t).allowed, true);
    assert.equal(limit.take(from('10.0.0.1', { 'x-forwarded-for': '192.0.2.10, 198.51.100.50' }), t).allowed, false);
    assert.equal(limit.take(from('10.0.0.1', { 'x-forwarded-for': '198.51.100.51' }), t).allowed, true);
  });

  it('remembers a bounded number of addresses, and refuses a malformed configuration by name', () => {
    const limit = createAddressRateLimit({ perSecond: 1, burst: 1, maxKeys: 100 });
    for (let i = 0; i < 1_000; i++) limit.take(from(`10.${i >> 8}.${i & 255}.1`), 0);
    assert.equal(limit.size(), 100);
    for (const entry of ['harvester.example', '10.0.0.0/33', '::/129', '10.0.0.0/8/1', '1.2.3.4/x', '']) {
      assert.throws(() => createAddressRateLimit({ perSecond: 1, burst: 1, allowlist: [entry] }), /OPENDATA_RATE_ALLOWLIST/, entry);
    }
    assert.throws(() => createAddressRateLimit({ perSecond: -1, burst: 1 }), /OPENDATA_RATE_PER_SECOND/);
    assert.throws(() => createAddressRateLimit({ perSecond: 1, burst: 0 }), /OPENDATA_RATE_BURST/);
    assert.throws(() => createOpendataHandler({ pool, publicUrl: 'http://localhost:4000', rateLimit: { perSecond: 1, burst: 1, allowlist: ['nope'] } }), /OPENDATA_RATE_ALLOWLIST/);
    // 0 per second: no limit at all.
    const off = createAddressRateLimit({ perSecond: 0, burst: 1 });
    for (let i = 0; i < 1_000; i++) assert.equal(off.take(from('192.0.2.1'), 0).allowed, true);
  });

  it('reads OPENDATA_RATE_* from the environment: at least 1 per second by default, bad entries refused by name', () => {
    const defaults = loadConfig({});
    assert.ok(defaults.OPENDATA_RATE_PER_SECOND >= 1, 'never below 1 request/s per address by default');
    assert.ok(defaults.OPENDATA_RATE_BURST >= defaults.OPENDATA_RATE_PER_SECOND);
    assert.deepEqual(defaults.OPENDATA_RATE_ALLOWLIST, []);
    const set = loadConfig({ OPENDATA_RATE_PER_SECOND: '5', OPENDATA_RATE_BURST: '20', OPENDATA_RATE_ALLOWLIST: '192.0.2.10, 2001:db8::/32' });
    assert.equal(set.OPENDATA_RATE_PER_SECOND, 5);
    assert.equal(set.OPENDATA_RATE_BURST, 20);
    assert.deepEqual(set.OPENDATA_RATE_ALLOWLIST, ['192.0.2.10', '2001:db8::/32']);
    assert.throws(() => loadConfig({ OPENDATA_RATE_ALLOWLIST: '192.0.2.10,harvester.example' }), /OPENDATA_RATE_ALLOWLIST/);
    assert.throws(() => loadConfig({ OPENDATA_RATE_PER_SECOND: '-3' }), /OPENDATA_RATE_PER_SECOND/);
    assert.throws(() => loadConfig({ OPENDATA_RATE_BURST: '0' }), /OPENDATA_RATE_BURST/);
  });

  it('answers a flood from one address with 429 problem details and Retry-After, errors and 304s counted too', async () => {
    const served = await serve({ pool, rateLimit: { perSecond: 1, burst: 5 } });
    const statuses: number[] = [];
    let refusal: Awaited<ReturnType<typeof rawRequest>> | undefined;
    const etag = (await rawRequest(`${served.base}/opendata/datasets/equipment`)).headers.etag as string;
    statuses.push(200);
    for (const path of ['/opendata/datasets/equipment', '/opendata/nothing-here', '/opendata/equipment.geojson?kind=CAMERA', '/opendata/datasets/equipment', '/opendata/catalog.jsonld', '/opendata/catalog.jsonld']) {
      const response = await rawRequest(`${served.base}${path}`, { 'if-none-match': etag });
      statuses.push(response.status);
      if (response.status === 429) refusal ??= response;
    }
    assert.deepEqual(statuses, [200, 304, 404, 400, 304, 429, 429], 'five requests, whatever they were, then refusals');
    assert.ok(refusal);
    assert.match(String(refusal.headers['content-type']), /^application\/problem\+json/);
    assert.match(String(refusal.headers['retry-after']), /^[1-9]\d*$/);
    assert.equal(refusal.headers['access-control-allow-origin'], '*');
    assert.match(String(refusal.headers['access-control-expose-headers']), /retry-after/i);
    const problem = JSON.parse(refusal.body.toString());
    assert.equal(problem.status, 429);
    assert.equal(problem.code, 'RATE_LIMITED');
    assert.match(problem.detail, /1 per second/);
    assert.equal(problem.instance, '/opendata/catalog.jsonld');
    // A write or a preflight is a request too.
    assert.equal((await rawRequest(`${served.base}/opendata/catalog.jsonld`, {}, 'OPTIONS')).status, 429);
    // Waiting as told is enough.
    await new Promise((resolve) => setTimeout(resolve, Number(refusal!.headers['retry-after']) * 1000));
    assert.equal((await rawRequest(`${served.base}/opendata/catalog.jsonld`)).status, 200);
  });

  it('serves an allow-listed harvester every time, and a forged X-Forwarded-For does not make a client one', async () => {
    const harvester = await serve({ pool, rateLimit: { perSecond: 1, burst: 2, allowlist: ['127.0.0.0/8', '::1'] } });
    for (let i = 0; i < 40; i++) assert.equal((await rawRequest(`${harvester.base}/opendata/nothing-here`)).status, 404, `request ${i + 1}`);
    const cat = await rawRequest(`${harvester.base}/opendata/catalog.jsonld`);
    assert.equal(cat.status, 200);

    // The allow-list names 192.0.2.10; this client (127.0.0.1, not a trusted proxy) says it is that address.
    const other = await serve({ pool, rateLimit: { perSecond: 1, burst: 2, allowlist: ['192.0.2.10'] } });
    const forged = { 'x-forwarded-for': '192.0.2.10', forwarded: 'for=192.0.2.10' };
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await rawRequest(`${other.base}/opendata/nothing-here`, forged)).status);
    assert.deepEqual(statuses, [404, 404, 429, 429]);

    // Behind a trusted proxy (here, loopback), the harvester it names is never throttled, and other clients are counted apart.
    const proxied = await serve({ pool, trustedProxies: ['127.0.0.1', '::1'], rateLimit: { perSecond: 1, burst: 2, allowlist: ['192.0.2.10'] } });
    for (let i = 0; i < 20; i++) assert.equal((await rawRequest(`${proxied.base}/opendata/nothing-here`, { 'x-forwarded-for': '192.0.2.10' })).status, 404);
    const a = [];
    const b = [];
    for (let i = 0; i < 3; i++) {
      a.push((await rawRequest(`${proxied.base}/opendata/nothing-here`, { 'x-forwarded-for': '198.51.100.1' })).status);
      b.push((await rawRequest(`${proxied.base}/opendata/nothing-here`, { 'x-forwarded-for': '198.51.100.2' })).status);
    }
    assert.deepEqual(a, [404, 404, 429]);
    assert.deepEqual(b, [404, 404, 429]);
  });

  it('limits nothing when the handler is given no rate limit (tests, benches) and concurrent floods are counted exactly', async () => {
    const open = await serve({ pool });
    const burst = await Promise.all(Array.from({ length: 30 }, () => rawRequest(`${open.base}/opendata/nothing-here`)));
    assert.ok(burst.every((response) => response.status === 404));
    const limited = await serve({ pool, rateLimit: { perSecond: 0.5, burst: 10 } });
    const flood = await Promise.all(Array.from({ length: 40 }, () => rawRequest(`${limited.base}/opendata/nothing-here`)));
    assert.equal(flood.filter((response) => response.status === 404).length, 10);
    assert.equal(flood.filter((response) => response.status === 429).length, 30);
  });
});
