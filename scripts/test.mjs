// `npm test`: moves to Node 24 when the system Node is older, installs what is missing,
// typechecks, then runs every test file against the real PostgreSQL/PostGIS and Mosquitto of
// the machine. Extra args filter test files by path. Every step runs on this same Node
// (process.execPath), so the tests exercise the runtime the hub ships on.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ensureNodeModules, generatePrismaClient, ROOT } from './ensure-deps.mjs';
import { runOnSupportedNode } from './node-runtime.mjs';

await runOnSupportedNode();
ensureNodeModules();
generatePrismaClient();

const bin = (name) => path.join(ROOT, 'node_modules', '.bin', name);
const step = (label, args) => {
  console.log(`[test] ${label}`);
  const result = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, CHECKPOINT_DISABLE: '1' } });
  return result.status ?? 1;
};

function testFiles(dir = ROOT) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) return [];
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return testFiles(full);
    return entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

const filters = process.argv.slice(2);
const files = testFiles()
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort();
if (files.length === 0) {
  console.error('[test] no test file matches');
  process.exit(1);
}

if (filters.length === 0 && step('typecheck (tsc --noEmit)', [bin('tsc'), '-p', 'tsconfig.json']) !== 0) process.exit(1);
if (step('dropping databases left by an earlier run', [bin('tsx'), 'scripts/test-databases.ts', 'drop']) !== 0) process.exit(1);
const status = step(`running ${files.length} test files on Node ${process.versions.node}`, [
  '--import',
  'tsx',
  '--test',
  '--test-concurrency=2',
  '--test-reporter=spec',
  ...files.map((file) => path.relative(ROOT, file)),
]);
step('dropping this run\'s databases', [bin('tsx'), 'scripts/test-databases.ts', 'drop']);
process.exit(status);
