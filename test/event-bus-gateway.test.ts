/**
 * The event bus end to end: a live `equipmentChanged` subscription at the gateway (graphql-ws)
 * while hundreds of `updateEquipment` mutations run concurrently through the gateway. Each one
 * locks its asset (`SELECT … FOR UPDATE`, which takes the transaction's xid) before publishing,
 * so writers that started later routinely draw lower event ids and commit in any order: the
 * subscriber must still get every change exactly once, in cursor order.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type Client } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { createTestDatabase, type TestDatabase, gql, startHub, tokenFor, type Hub } from '@connecte/testkit';

const UPDATES = 480;
const CHANGES = 'subscription Changes { equipmentChanged(collectivityIds: ["chalons"], kinds: [LIGHT_POINT]) { cursor change equipment { id } } }';
const LIGHT_POINTS = `{ equipmentSearch(filter: { kinds: [LIGHT_POINT], collectivityIds: ["chalons"], status: [IN_SERVICE, FAULT, MAINTENANCE] }, first: ${UPDATES}) { edges { node { id location { coordinates } } } } }`;
const UPDATE = 'mutation Update($id: ID!, $input: UpdateEquipmentInput!) { updateEquipment(id: $id, input: $input) { id } }';

interface Change {
  cursor: string;
  change: string;
  equipment: { id: string } | null;
}

async function until(condition: () => boolean, what: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await sleep(20);
  }
}

describe('event bus through the gateway', () => {
  let db: TestDatabase;
  let hub: Hub;
  let client: Client | undefined;

  before(async () => {
    db = await createTestDatabase({ seed: true });
    hub = await startHub(db.url, { RATE_LIMIT_PER_TOKEN: '0', RATE_LIMIT_PER_ADDRESS: '0', DB_POOL_SIZE: '40' });
  });
  after(async () => {
    await client?.dispose();
    await hub?.close();
    await db?.drop();
  });

  it(`a live subscriber receives each of ${UPDATES} concurrent updates exactly once, in cursor order`, async () => {
    const token = await tokenFor(hub.config, ['operator'], ['chalons']);
    const search = await gql(hub.gatewayUrl, LIGHT_POINTS, { token });
    assert.equal(search.errors, undefined, JSON.stringify(search.errors));
    const lightPoints: { id: string; location: { coordinates: [number, number] } }[] = search.data.equipmentSearch.edges.map(
      (edge: { node: unknown }) => edge.node,
    );
    const ids = lightPoints.map((lightPoint) => lightPoint.id);
    assert.equal(ids.length, UPDATES);

    client = createClient({
      url: hub.gatewayUrl.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
      retryAttempts: 0,
    });
    const received: Change[] = [];
    const problems: unknown[] = [];
    client.subscribe<{ equipmentChanged: Change }>(
      { query: CHANGES },
      {
        next: (result) => (result.errors ? problems.push(result.errors) : received.push(result.data!.equipmentChanged)),
        error: (error) => problems.push(error),
        complete: () => problems.push('the subscription completed'),
      },
    );
    // Once the equipment subgraph's bus holds the subscriber, every later commit reaches it.
    const busSubscribers = () => [...(hub.subgraphs.equipment.events as unknown as { subscribers: Set<{ topics: Set<string> }> }).subscribers].filter((s) => s.topics.has('equipment.changed')).length;
    await until(() => hub.gateway.upstreamSubscriptions() === 1 && busSubscribers() === 1, () => 'the subscription to reach the bus', 10_000);

    const responses = await Promise.all(
      // Moving an asset (by ~10 cm) checks its commune in PostGIS between the row lock and the
      // event: a window of varying length in which writers that started later draw their ids.
      lightPoints.map(({ id, location: { coordinates: [lon, lat] } }, n) =>
        gql(hub.gatewayUrl, UPDATE, {
          token,
          variables: { id, input: n % 2 ? { name: `Bus test ${n}` } : { location: { lon, lat: lat + 1e-6 } } },
        }),
      ),
    );
    const failed = responses.filter((response) => response.errors || response.status !== 200);
    assert.deepEqual(failed.slice(0, 3), [], `${failed.length} updates failed`);

    await until(() => received.length >= UPDATES || problems.length > 0, () => `${UPDATES} changes (got ${received.length})`, 30_000);
    await sleep(500); // a duplicate would arrive now
    assert.deepEqual(problems, []);

    const cursors = received.map((change) => BigInt(change.cursor));
    for (let n = 1; n < cursors.length; n++) {
      assert.ok(cursors[n] > cursors[n - 1], `cursor ${cursors[n]} after ${cursors[n - 1]}`);
    }
    assert.ok(received.every((change) => change.change === 'UPDATED'));
    const changed = received.map((change) => change.equipment?.id);
    assert.deepEqual([...changed].sort(), [...ids].sort(), 'each updated light point once');
    assert.equal(received.length, UPDATES);

    // The cursors are exactly the committed events, as the table holds them.
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    try {
      const { rows } = await pool.query<{ id: string }>(
        `SELECT id::text FROM events WHERE topic = 'equipment.changed' AND payload->>'change' = 'UPDATED' AND payload->>'equipmentId' = ANY($1) ORDER BY events.id`,
        [ids],
      );
      assert.deepEqual(
        received.map((change) => change.cursor),
        rows.map((row) => row.id),
      );
    } finally {
      await pool.end();
    }
  });
});
