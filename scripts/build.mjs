// `npm run build`: the compiled JavaScript that production runs (the Docker image,
// docker-compose), from one `tsc -p tsconfig.build.json` program, laid out so that every
// compiled file keeps its depth in the repository, which the code's `import.meta.url` paths
// (migrations, supergraph, repository root) rely on:
//   <dir>/src/<file>.ts            → <dir>/dist/<file>.js   (workspace packages: their `connecte-compiled` export)
//   scripts/<file>.ts, prisma/seed → dist/scripts/, dist/prisma/seed/
// Files a module reads beside itself are copied with it: everything but TypeScript in a
// package's src/ (a subgraph's schema.graphql) and the seed's data/.
// Workspace packages resolve to dist/ only under `node --conditions=connecte-compiled`; without
// it they resolve to src/*.ts, so a development or test run never picks up a stale build.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ensureNodeModules, generatePrismaClient, ROOT } from './ensure-deps.mjs';
import { runOnSupportedNode } from './node-runtime.mjs';

await runOnSupportedNode();
ensureNodeModules();
generatePrismaClient();

const OUT = path.join(ROOT, '.tmp', 'build');
const rel = (file) => path.relative(ROOT, file);

/** Top-most `src` directories under `dir`, relative to OUT. */
function sourceRoots(dir = '') {
  return readdirSync(path.join(OUT, dir), { withFileTypes: true }).flatMap((entry) => {
    const child = path.join(dir, entry.name);
    if (!entry.isDirectory()) return [];
    if (entry.name === 'src') return [child];
    return sourceRoots(child);
  });
}

rmSync(OUT, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
  cwd: ROOT,
  stdio: 'inherit',
});
if (tsc.status !== 0) {
  console.error('[build] tsc failed (tsconfig.build.json): nothing was written to dist/');
  process.exit(1);
}

const moved = [];
for (const src of sourceRoots()) {
  const dist = path.join(ROOT, path.dirname(src), 'dist');
  rmSync(dist, { recursive: true, force: true });
  renameSync(path.join(OUT, src), dist);
  cpSync(path.join(ROOT, src), dist, { recursive: true, filter: (from) => !from.endsWith('.ts') });
  moved.push(rel(dist));
}
// What is left is the repository's own top-level code (scripts/, prisma/seed/).
const rootDist = path.join(ROOT, 'dist');
rmSync(rootDist, { recursive: true, force: true });
mkdirSync(rootDist, { recursive: true });
for (const entry of readdirSync(OUT)) renameSync(path.join(OUT, entry), path.join(rootDist, entry));
cpSync(path.join(ROOT, 'prisma', 'seed', 'data'), path.join(rootDist, 'prisma', 'seed', 'data'), { recursive: true });
rmSync(OUT, { recursive: true, force: true });
console.log(`[build] compiled ${[...moved, 'dist'].join(', ')} (run with NODE_OPTIONS=--conditions=connecte-compiled)`);
