/**
 * Through the gateway, every HTTP error outside GraphQL has one shape, RFC 9457 problem details
 * (`application/problem+json`): the open data's, and the gateway's own unknown path and failed
 * route. GraphQL's errors stay GraphQL-shaped (`errors[].extensions.code`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase, startHub, type Hub } from '@connecte/testkit';

const isProblem = async (response: Response, status: number, code: string) => {
  assert.equal(response.status, status);
  assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const problem = (await response.json()) as Record<string, unknown>;
  assert.equal(problem.type, 'about:blank');
  assert.equal(problem.status, status);
  assert.equal(problem.code, code);
  assert.equal(typeof problem.title, 'string');
  assert.ok(typeof problem.detail === 'string' && problem.detail.length > 10, 'the detail says why');
  return problem;
};

describe('HTTP errors are problem details across the hub', () => {
  let db: TestDatabase;
  let hub: Hub;

  before(async () => {
    db = await createTestDatabase({ seed: false });
    hub = await startHub(db.url);
    hub.gateway.mount('/broken', () => {
      throw new Error('the broken module failed on purpose');
    });
  });
  after(async () => {
    await hub?.close();
    await db?.drop();
  });

  it('open data: a bad parameter, an unknown dataset, a write, a refused coding', async () => {
    const origin = hub.gateway.origin;
    const bad = await fetch(`${origin}/opendata/equipment.geojson?kind=CAMERA`);
    assert.equal(bad.headers.get('access-control-allow-origin'), '*', 'readable cross-origin like the data');
    const problem = await isProblem(bad, 400, 'BAD_USER_INPUT');
    assert.equal(problem.field, 'kind');
    assert.equal(problem.instance, '/opendata/equipment.geojson');
    await isProblem(await fetch(`${origin}/opendata/datasets/unknown`), 404, 'NOT_FOUND');
    await isProblem(await fetch(`${origin}/opendata/catalog.jsonld`, { method: 'DELETE' }), 405, 'METHOD_NOT_ALLOWED');
    const refused = await isProblem(await fetch(`${origin}/opendata/catalog.jsonld`, { headers: { 'accept-encoding': 'identity;q=0' } }), 406, 'NOT_ACCEPTABLE');
    assert.equal(refused.field, 'Accept-Encoding');
  });

  it("the gateway's unknown path and a route that fails, without the failure's message", async () => {
    const missing = await isProblem(await fetch(`${hub.gateway.origin}/nowhere?x=1`), 404, 'NOT_FOUND');
    assert.equal(missing.instance, '/nowhere');
    assert.match(String(missing.detail), /\/graphql/);
    const failed = await isProblem(await fetch(`${hub.gateway.origin}/broken/here`), 500, 'INTERNAL_SERVER_ERROR');
    assert.doesNotMatch(JSON.stringify(failed), /on purpose/, 'the cause is logged, not sent');
  });

  it('GraphQL errors keep their own shape', async () => {
    const response = await fetch(hub.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query": ' });
    assert.equal(response.status, 400);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(((await response.json()) as any).errors[0].extensions.code, 'BAD_REQUEST');
  });
});
