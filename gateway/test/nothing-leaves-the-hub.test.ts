/**
 * Nothing leaves the hub unless configured: @apollo/gateway sends usage telemetry to Apollo's
 * servers and probes cloud metadata endpoints (169.254.169.254, metadata.google.internal) unless
 * told not to. Every outgoing connection and name lookup made while the hub starts and serves is
 * recorded here; all of them must stay on this machine's loopback.
 */
import assert from 'node:assert/strict';
import dns from 'node:dns';
import net from 'node:net';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestDatabase, type TestDatabase, gql, startHub, type Hub } from '@connecte/testkit';

const destinations: string[] = [];
const originalConnect = net.Socket.prototype.connect;
const originalLookup = dns.lookup;
const originalPromisesLookup = dns.promises.lookup;

before(() => {
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const [first, second] = args as [unknown, unknown];
    const options = typeof first === 'object' && first !== null && !Array.isArray(first) ? (first as net.TcpNetConnectOpts & net.IpcNetConnectOpts) : null;
    if (options?.path === undefined) {
      const host = options ? (options.host ?? 'localhost') : typeof second === 'string' ? second : 'localhost';
      destinations.push(String(host));
    }
    return (originalConnect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof net.Socket.prototype.connect;
  (dns as { lookup: unknown }).lookup = (hostname: string, ...rest: unknown[]) => {
    destinations.push(hostname);
    return (originalLookup as (...a: unknown[]) => unknown)(hostname, ...rest);
  };
  (dns.promises as { lookup: unknown }).lookup = (hostname: string, ...rest: unknown[]) => {
    destinations.push(hostname);
    return (originalPromisesLookup as (...a: unknown[]) => unknown)(hostname, ...rest);
  };
});

let db: TestDatabase;
let hub: Hub;
after(async () => {
  net.Socket.prototype.connect = originalConnect;
  (dns as { lookup: unknown }).lookup = originalLookup;
  (dns.promises as { lookup: unknown }).lookup = originalPromisesLookup;
  await hub?.close();
  await db?.drop();
});

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127\./.test(host) || /^\[?::1\]?$/.test(host);

it('starts, serves queries and stays on loopback (no telemetry, no cloud metadata probes)', { timeout: 60_000 }, async () => {
  const previous = process.env.APOLLO_TELEMETRY_DISABLED;
  delete process.env.APOLLO_TELEMETRY_DISABLED; // the hub's own default must do it, not the environment
  try {
    db = await createTestDatabase({ seed: false });
    hub = await startHub(db.url);
  } finally {
    if (previous !== undefined) process.env.APOLLO_TELEMETRY_DISABLED = previous;
  }
  const response = await gql(hub.gatewayUrl, '{ collectivities { id } }');
  assert.equal(response.status, 200);
  // The cloud detectors run asynchronously after start: give them time to try.
  await sleep(3_000);
  const outside = destinations.filter((host) => !isLoopback(host));
  assert.ok(destinations.length > 0, 'the recorder saw the hub’s own connections');
  assert.deepEqual(outside, [], `connections or lookups outside the machine: ${[...new Set(outside)].join(', ')}`);
});
