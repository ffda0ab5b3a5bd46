// Plain Node, no dependencies, no syntax newer than Node 18: this runs first, on whatever Node
// the machine has. The hub is developed, tested and shipped on Node.js 24 LTS (package.json
// `engines`); on an older system Node, `npm start` and `npm test` run themselves again on a
// Node 24 taken from the npm registry (the `node` package ships the official binaries), so a
// fresh machine needs nothing installed by hand.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The major the hub runs on: the lowest one `engines.node` (">=24.x.y") admits. */
export const REQUIRED_MAJOR = (() => {
  const range = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).engines.node;
  const match = /^>=(\d+)\.\d+\.\d+$/.exec(range);
  if (!match) throw new Error(`package.json engines.node must read ">=MAJOR.MINOR.PATCH", not ${JSON.stringify(range)}`);
  return Number(match[1]);
})();

/** Where the path of the fetched binary is remembered: resolving it again costs about a second. */
const CACHE = path.join(ROOT, '.tmp', 'node-runtime.json');

const majorOf = (version) => Number(version.replace(/^v/, '').split('.')[0]);

/** The version a binary reports, or null when it is gone (npm's cache was cleaned) or broken. */
function versionOf(binary) {
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().replace(/^v/, '');
  } catch {
    return null;
  }
}

/** A Node binary of the required major: the remembered one, else fetched once through `npm exec`. */
function supportedNode() {
  if (existsSync(CACHE)) {
    const { binary } = JSON.parse(readFileSync(CACHE, 'utf8'));
    const version = typeof binary === 'string' ? versionOf(binary) : null;
    if (version !== null && majorOf(version) === REQUIRED_MAJOR) return { binary, version };
  }
  let binary;
  try {
    binary = execFileSync('npm', ['exec', '--yes', `--package=node@${REQUIRED_MAJOR}`, '--', 'node', '-p', 'process.execPath'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (error) {
    const reason = String(error.stderr ?? error.message).trim().split('\n').slice(-3).join(' ');
    throw new Error(`could not fetch Node ${REQUIRED_MAJOR} from the npm registry (npm exec node@${REQUIRED_MAJOR}): ${reason}`);
  }
  const version = versionOf(binary);
  if (version === null || majorOf(version) !== REQUIRED_MAJOR) {
    throw new Error(`npm exec node@${REQUIRED_MAJOR} gave ${binary}, which does not run as Node ${REQUIRED_MAJOR} (reported: ${version ?? 'nothing'})`);
  }
  mkdirSync(path.dirname(CACHE), { recursive: true });
  writeFileSync(CACHE, `${JSON.stringify({ binary, version })}\n`);
  return { binary, version };
}

/** Node 20 and older, and every odd major below 24, are past their end of life (nodejs.org release schedule). */
const endOfLife = (major) => major <= 20 || (major < 24 && major % 2 === 1);

/**
 * Returns when this process already runs on the required major or a newer one. Otherwise runs
 * this same script with the same arguments on Node 24, says so in one line, and exits with its
 * status: this process only forwards signals. Node 24's directory goes first on PATH, so what the
 * script spawns by name (npm, tsx, tsc, prisma: `#!/usr/bin/env node`) runs on Node 24 too.
 */
export function runOnSupportedNode() {
  const current = process.versions.node;
  if (majorOf(current) >= REQUIRED_MAJOR) return;
  let node;
  try {
    node = supportedNode();
  } catch (error) {
    console.error(`[setup] the hub needs Node ${REQUIRED_MAJOR} (system Node is ${current}) and ${error.message}; install Node.js ${REQUIRED_MAJOR} LTS`);
    process.exit(1);
  }
  const why = endOfLife(majorOf(current)) ? 'is end-of-life' : `is older than the hub's Node ${REQUIRED_MAJOR}`;
  console.log(`[setup] system Node ${current} ${why}; running on Node ${node.version} from the npm registry`);
  const child = spawn(node.binary, [...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, PATH: `${path.dirname(node.binary)}${path.delimiter}${process.env.PATH ?? ''}` },
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  // Nothing else of the calling script may run on the old Node: wait here for the child's exit.
  return new Promise(() => {});
}
