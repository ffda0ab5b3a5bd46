import assert from 'node:assert/strict';
import { it } from 'node:test';
import { compiledPath, nodeArgs, RUNS_COMPILED } from '../src/runtime.js';

it('names the compiled file of a package source and of top-level code by the build layout', () => {
  assert.equal(compiledPath('subgraphs/territory/src/main.ts'), 'subgraphs/territory/dist/main.js');
  assert.equal(compiledPath('gateway/src/main.ts'), 'gateway/dist/main.js');
  assert.equal(compiledPath('packages/shared/src/generated/prisma/client.ts'), 'packages/shared/dist/generated/prisma/client.js');
  assert.equal(compiledPath('scripts/simulator.ts'), 'dist/scripts/simulator.js');
  assert.equal(compiledPath('prisma/seed/index.ts'), 'dist/prisma/seed/index.js');
});

it('refuses a path that is not TypeScript relative to the repository root, naming it', () => {
  for (const bad of ['/work/gateway/src/main.ts', 'gateway/src/main.js', '../outside/src/main.ts']) {
    assert.throws(() => compiledPath(bad), new RegExp(`compiledPath: "${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}" is not a TypeScript file`));
  }
});

it('runs children from source under tsx when this process runs from source', () => {
  assert.equal(RUNS_COMPILED, false);
  assert.deepEqual(nodeArgs('gateway/src/main.ts', '/repo'), ['--import', 'tsx', '/repo/gateway/src/main.ts']);
});
