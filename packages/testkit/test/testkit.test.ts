/**
 * The test kit keeps its promises: a service started by registry name serves GraphQL over a
 * database it owns and drops, or over the caller's which it leaves alone; an unknown name says
 * which names exist; `gql` sends the token and reports a body that is not JSON; every MQTT
 * client has an id of its own and is ended with its owner.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { MqttClient } from 'mqtt';
import { ADMIN_URL, connectTestBroker, createTestDatabase, gql, startService, type TestDatabase } from '@connecte/testkit';

async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    return ((await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount ?? 0) > 0;
  } finally {
    await client.end();
  }
}

describe('startService', () => {
  it('starts a subgraph by registry name over a seeded database of its own, dropped on close', async () => {
    const service = await startService('territory');
    try {
      const response = await service.gql('{ collectivities { id } }');
      assert.equal(response.errors, undefined, JSON.stringify(response.errors));
      assert.equal(response.data.collectivities.length, 4);
      assert.ok(await databaseExists(service.database.name));
    } finally {
      await service.close();
    }
    assert.equal(await databaseExists(service.database.name), false, 'the database it created is dropped');
  });

  describe('over the caller’s database', () => {
    let db: TestDatabase;
    before(async () => {
      db = await createTestDatabase({ seed: false });
    });
    after(() => db?.drop());

    it('serves it with the given configuration and leaves it in place on close', async () => {
      const service = await startService('equipment', { db, env: { GRAPHQL_INTROSPECTION: 'true' } });
      try {
        assert.equal(service.database, db);
        assert.equal(service.config.GRAPHQL_INTROSPECTION, true, 'env reaches the configuration');
        const schema = await service.gql('{ __schema { queryType { name } } }');
        assert.equal(schema.data?.__schema.queryType.name, 'Query', JSON.stringify(schema.errors));
        const response = await service.gql('{ equipmentSearch(filter: {}) { totalCount } }');
        assert.equal(response.errors, undefined, JSON.stringify(response.errors));
        assert.equal(response.data.equipmentSearch.totalCount, 0, 'the unseeded database');
      } finally {
        await service.close();
      }
      assert.ok(await databaseExists(db.name), 'a database the caller gave is the caller’s to drop');
    });
  });

  it('refuses an unknown subgraph, naming the registered ones', async () => {
    await assert.rejects(startService('nosuchdomain'), /Unknown subgraph "nosuchdomain" \(known: territory, equipment/);
  });
});

describe('gql', () => {
  let seen: IncomingHttpHeaders | undefined;
  let body = '{"data":{"ok":true}}';
  const server = createServer((request, response) => {
    seen = request.headers;
    request.resume();
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end(body));
  });
  let url: string;
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('sends the token as a bearer authorization and returns the status beside the body', async () => {
    const response = await gql(url, '{ ok }', { token: 'abc', headers: { 'x-request-id': 'r1' } });
    assert.deepEqual(response, { status: 200, data: { ok: true } });
    assert.equal(seen?.authorization, 'Bearer abc');
    assert.equal(seen?.['x-request-id'], 'r1');
  });

  it('reports a body that is not JSON with the URL and the status', async () => {
    body = '<html>bad gateway</html>';
    await assert.rejects(gql(url, '{ ok }'), (error: Error) => error.message.includes(url) && /200 with a body that is not JSON: <html>/.test(error.message));
  });
});

describe('connectTestBroker', () => {
  const clients: MqttClient[] = [];
  it('connects each client with an id of its own', async (t) => {
    clients.push(await connectTestBroker(t), await connectTestBroker(t));
    const [a, b] = clients;
    assert.notEqual(a.options.clientId, b.options.clientId);
    // Two clients sharing an id would have the broker drop the first: both must stay connected.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(a.connected && b.connected);
  });

  it('ends the clients once their owner (the test above) has ended', () => {
    assert.equal(clients.length, 2);
    for (const client of clients) assert.ok(client.disconnected, `${client.options.clientId} is still open`);
  });
});
