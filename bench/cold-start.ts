/**
 * Cold start of the whole hub, the compiled build against tsx, in the same run: `npm start`'s
 * hub (scripts/hub.ts: database check, every registered subgraph, the gateway) from its spawn
 * until the gateway's /readyz answers 200, on a seeded database with dependencies installed.
 *
 *   npm run bench:cold-start [-- --rounds 3] [-- --no-build]
 *
 * Runs `npm run build` first (unless --no-build), then alternates tsx and compiled rounds so
 * that both see the same machine load. Each round uses fresh ephemeral ports.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SUBGRAPHS, subgraphUrlVariable } from '@connecte/shared/registry';
import { createTestDatabase, freePort, ROOT } from '@connecte/testkit';

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, 'no-build': { type: 'boolean', default: false } },
});
const rounds = Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a whole number of at least 1, not ${args.rounds}`);

type Mode = 'tsx' | 'compiled';
const MODES: Record<Mode, { args: string[]; nodeOptions: string }> = {
  tsx: { args: ['--import', 'tsx', path.join(ROOT, 'scripts', 'hub.ts')], nodeOptions: '' },
  compiled: { args: [path.join(ROOT, 'dist', 'scripts', 'hub.js')], nodeOptions: '--conditions=connecte-compiled' },
};

/** Milliseconds from spawning the hub to the gateway's first /readyz 200; the hub is stopped after. */
async function coldStart(mode: Mode, databaseUrl: string): Promise<number> {
  const gatewayPort = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: databaseUrl, PORT: String(gatewayPort), LOG_LEVEL: 'warn', NODE_OPTIONS: MODES[mode].nodeOptions };
  for (const subgraph of SUBGRAPHS) env[subgraphUrlVariable(subgraph.name)] = `http://127.0.0.1:${await freePort()}/graphql`;
  const output: string[] = [];
  const started = performance.now();
  const hub = spawn(process.execPath, MODES[mode].args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  hub.stdout.on('data', (chunk) => output.push(String(chunk)));
  hub.stderr.on('data', (chunk) => output.push(String(chunk)));
  const exited = new Promise<void>((resolve) => hub.once('exit', () => resolve()));
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      if (hub.exitCode !== null) throw new Error(`the ${mode} hub exited early:\n${output.join('').slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`the ${mode} hub was not ready within 120 s:\n${output.join('').slice(-2000)}`);
      const ready = await fetch(`http://127.0.0.1:${gatewayPort}/readyz`).then((r) => r.status === 200, () => false);
      if (ready) return performance.now() - started;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    hub.kill('SIGTERM');
    await exited;
  }
}

if (!args['no-build']) {
  console.log('[cold-start] npm run build');
  const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) process.exit(1);
}
const database = await createTestDatabase();
const times: Record<Mode, number[]> = { tsx: [], compiled: [] };
try {
  for (let round = 1; round <= rounds; round++) {
    for (const mode of ['tsx', 'compiled'] as const) {
      const ms = await coldStart(mode, database.url);
      times[mode].push(ms);
      console.log(`[cold-start] round ${round} ${mode.padEnd(8)} ${ms.toFixed(0)} ms`);
    }
  }
} finally {
  await database.drop();
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
console.log(`
cold start of the hub until /readyz 200, Node ${process.versions.node}, ${rounds} round(s), median (min)
  tsx       ${median(times.tsx).toFixed(0)} ms (${Math.min(...times.tsx).toFixed(0)})
  compiled  ${median(times.compiled).toFixed(0)} ms (${Math.min(...times.compiled).toFixed(0)})
  compiled/tsx ${(median(times.compiled) / median(times.tsx)).toFixed(2)}`);
