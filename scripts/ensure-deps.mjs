// Plain Node (no dependencies): runs before anything is installed, from `npm start`/`npm test`.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const at = (...parts) => path.join(ROOT, ...parts);
const mtime = (file) => (existsSync(file) ? statSync(file).mtimeMs : 0);

function run(command, args, env = {}) {
  execFileSync(command, args, { cwd: ROOT, stdio: 'inherit', env: { ...process.env, ...env } });
}

/** npm install when node_modules is missing or older than the lockfile. */
export function ensureNodeModules() {
  const installed = at('node_modules', '.package-lock.json');
  if (existsSync(installed) && mtime(installed) >= mtime(at('package-lock.json'))) return;
  console.log('[setup] installing npm dependencies…');
  run('npm', existsSync(at('package-lock.json')) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund']);
}

/**
 * `prisma generate` offline: the CLI only needs PRISMA_SCHEMA_ENGINE_BINARY to point to an
 * existing file. Ours explains and exits 1, so `migrate`/`db push` fail loudly instead of
 * silently applying nothing.
 */
export function generatePrismaClient({ force = false } = {}) {
  const client = at('packages', 'shared', 'src', 'generated', 'prisma', 'client.ts');
  const schemaDir = at('prisma', 'schema');
  // tsconfig.json too: Prisma picks the client's import extensions from it (`.ts`, which the
  // build rewrites to `.js`, under rewriteRelativeImportExtensions).
  const inputs = [...readdirSync(schemaDir).map((f) => path.join(schemaDir, f)), at('tsconfig.json')];
  if (!force && mtime(client) >= Math.max(...inputs.map(mtime))) return;
  console.log('[setup] generating the Prisma client…');
  run(process.execPath, [at('node_modules', '.bin', 'prisma'), 'generate'], {
    PRISMA_SCHEMA_ENGINE_BINARY: at('scripts', 'bin', 'no-schema-engine.sh'),
    CHECKPOINT_DISABLE: '1',
    PRISMA_HIDE_UPDATE_MESSAGE: '1',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  ensureNodeModules();
  generatePrismaClient({ force: process.argv.includes('--force') });
}
