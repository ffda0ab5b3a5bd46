/**
 * Reports through the gateway's GraphQL are limited per client address too, not only per
 * reporter: the gateway forwards the caller's address (X-Forwarded-For, as it does for routes),
 * and the tickets service believes it only from a proxy of its TRUSTED_PROXIES. Attacked: one
 * address with a new e-mail each time (the per-reporter limit never trips), another address
 * beside it, and a subgraph that does not trust the gateway (then no per-address limit rather
 * than one shared by every caller).
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { believableClientAddress } from '@connecte/shared/client-address';
import { gql } from '@connecte/testkit';
import { REPORT_MUTATION, startTicketsHub, type TicketsHub } from './fixtures.js';

let t: TicketsHub;

before(async () => {
  t = await startTicketsHub({ env: { TRUSTED_PROXIES: '127.0.0.1,::1', TICKETS_REPORTS_PER_HOUR: '2' } });
});
after(async () => t?.close());

const reportFrom = async (address: string, email: string) =>
  gql(t.url, REPORT_MUTATION, {
    headers: { 'x-forwarded-for': address },
    variables: { input: { category: 'TAG', location: await t.spot('chalons'), description: 'A tag on the wall', email } },
  });

describe('reports per client address through the gateway', () => {
  it('lets TICKETS_REPORTS_PER_HOUR through from one address whatever the e-mail, then refuses with the wait; another address is not affected', async () => {
    assert.equal((await reportFrom('203.0.113.5', 'a@example.org')).errors, undefined);
    assert.equal((await reportFrom('203.0.113.5', 'b@example.org')).errors, undefined);
    const refused = await reportFrom('203.0.113.5', 'c@example.org');
    assert.equal(refused.errors?.[0]?.extensions?.code, 'RATE_LIMITED', JSON.stringify(refused.errors));
    assert.match(refused.errors![0].message, /too many reports from this address: at most 2 per hour/);
    const wait = refused.errors![0].extensions!.retryAfterSeconds as number;
    assert.ok(wait > 3_500 && wait <= 3_600, `retryAfterSeconds ${wait}`);
    const { rows } = await t.pool.query("SELECT count(*)::int AS n FROM tickets WHERE reporter_email = 'c@example.org'");
    assert.equal(rows[0].n, 0, 'nothing written for the refused report');
    assert.equal((await reportFrom('203.0.113.6', 'd@example.org')).errors, undefined, 'another address has its own budget');
  });
});

describe('the per-address limit under concurrency', () => {
  it('lets exactly TICKETS_REPORTS_PER_HOUR of 8 concurrent reports from one address through, and a refused report takes no slot', async () => {
    const address = '198.51.100.77';
    // A refused report (outside the territory) first: it must not use one of the address's two slots.
    const outside = await gql(t.url, REPORT_MUTATION, {
      headers: { 'x-forwarded-for': address },
      variables: { input: { category: 'TAG', location: { lon: 2.35, lat: 48.85 }, description: 'A tag on the wall', email: 'out@example.org' } },
    });
    assert.equal(outside.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    const places = await Promise.all(Array.from({ length: 8 }, () => t.spot('chalons')));
    const answers = await Promise.all(
      places.map((location, i) =>
        gql(t.url, REPORT_MUTATION, { headers: { 'x-forwarded-for': address }, variables: { input: { category: 'TAG', location, description: 'A tag on the wall', email: `c${i}@example.org` } } }),
      ),
    );
    const codes = answers.map((answer) => answer.errors?.[0]?.extensions?.code ?? 'OK').sort();
    assert.deepEqual(codes, ['OK', 'OK', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED']);
    const { rows } = await t.pool.query("SELECT count(*)::int AS n FROM tickets WHERE reporter_email LIKE 'c_@example.org'");
    assert.equal(rows[0].n, 2);
  });
});

describe('which address a subgraph believes', () => {
  const request = (peer: string, forwardedFor?: string) =>
    ({ socket: { remoteAddress: peer }, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } }) as unknown as IncomingMessage;

  it('a direct caller is its socket peer; through a trusted proxy, the client it names; through an untrusted one, nobody', () => {
    const trusting = believableClientAddress(['10.0.0.0/8']);
    assert.equal(trusting(request('198.51.100.4')), '198.51.100.4');
    assert.equal(trusting(request('::ffff:10.1.2.3', '203.0.113.9')), '203.0.113.9');
    assert.equal(trusting(request('10.1.2.3', '203.0.113.9, 10.9.9.9')), '203.0.113.9');
    assert.equal(trusting(request('198.51.100.4', '203.0.113.9')), null, 'a forwarded request from a peer it does not trust');
    assert.equal(believableClientAddress([])(request('10.1.2.3', '203.0.113.9')), null);
    assert.equal(believableClientAddress([])(request('10.1.2.3')), '10.1.2.3');
  });
});
