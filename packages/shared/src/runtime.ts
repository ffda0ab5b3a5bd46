/**
 * How the hub runs its own code: from the TypeScript sources under tsx (development, tests,
 * `npm start`), or as the compiled build (`npm run build`; the Docker image), where
 * NODE_OPTIONS=--conditions=connecte-compiled makes every workspace package resolve to its
 * dist/. scripts/build.mjs lays the build out; this module names the compiled counterpart of a
 * source file by the same rule, so a parent (the hub, a benchmark) starts its children the way
 * it runs itself.
 */
import path from 'node:path';

/** True in the compiled build: this very module was loaded from dist/ as JavaScript. */
export const RUNS_COMPILED = import.meta.url.endsWith('.js');

/**
 * The compiled file of a source file, both relative to the repository root:
 * `<dir>/src/<file>.ts` → `<dir>/dist/<file>.js`; top-level code (`scripts/`, `prisma/seed/`)
 * → `dist/<path>.js`.
 */
export function compiledPath(source: string): string {
  if (path.isAbsolute(source) || !source.endsWith('.ts') || source.split('/').includes('..')) {
    throw new Error(`compiledPath: ${JSON.stringify(source)} is not a TypeScript file relative to the repository root`);
  }
  const js = `${source.slice(0, -'.ts'.length)}.js`;
  const parts = js.split('/');
  const src = parts.indexOf('src');
  if (src === -1) return ['dist', ...parts].join('/');
  return [...parts.slice(0, src), 'dist', ...parts.slice(src + 1)].join('/');
}

/**
 * Node arguments that run a source entry point (relative to `root`) in this process's mode, on
 * this process's Node (process.execPath): its compiled file, or the source under tsx. The child
 * inherits NODE_OPTIONS, hence the export condition, through its environment.
 */
export function nodeArgs(entry: string, root: string): string[] {
  return RUNS_COMPILED ? [path.join(root, compiledPath(entry))] : ['--import', 'tsx', path.join(root, entry)];
}
