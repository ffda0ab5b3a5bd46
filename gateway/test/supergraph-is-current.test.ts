import assert from 'node:assert/strict';
import { test } from 'node:test';
import { composeSupergraph, readCommittedSupergraph, urlPlaceholder, withSubgraphUrls } from '../src/compose.js';
import { SUBGRAPHS, subgraphUrl } from '../src/subgraphs.js';

test('the committed supergraph is the composition of the subgraphs as they are now', () => {
  const fresh = composeSupergraph();
  assert.ok(
    readCommittedSupergraph() === fresh,
    'gateway/supergraph.graphql is stale: run npm run compose and commit the result',
  );
});

test('the committed supergraph names no host: each subgraph URL is a placeholder', () => {
  const committed = readCommittedSupergraph();
  for (const { name } of SUBGRAPHS) assert.ok(committed.includes(JSON.stringify(urlPlaceholder(name))), name);
  assert.doesNotMatch(committed, /127\.0\.0\.1|localhost/);
  const sdl = withSubgraphUrls(committed, { territory: 'http://territory:4001/graphql' });
  assert.match(sdl, /name: "territory", url: "http:\/\/territory:4001\/graphql"/);
});

test('SUBGRAPH_<NAME>_URL overrides a subgraph URL, else its default port', () => {
  assert.equal(subgraphUrl('equipment', {}), 'http://127.0.0.1:4002/graphql');
  assert.equal(subgraphUrl('territory', {}), 'http://127.0.0.1:4001/graphql');
  assert.equal(subgraphUrl('equipment', { SUBGRAPH_EQUIPMENT_URL: 'http://equipment:4002/graphql' }), 'http://equipment:4002/graphql');
  assert.throws(() => subgraphUrl('weather', {}), /Unknown subgraph "weather"/);
});
