/**
 * Gateway throughput: the same equipment query sent to the equipment subgraph directly, through a
 * stock Apollo gateway, and through ours, in one run on one fresh seeded database.
 *
 *   npm run bench:gateway                          # 10 s per target after a 3 s warm-up
 *   npm run bench:gateway -- --duration 5 --rounds 2
 *   npm run bench:gateway -- --profile --targets ours   # --cpu-prof of our gateway, into bench/results/
 *   npm run bench:gateway -- --query '{ equipmentSearch(first: 20) { edges { node { id } } } }'
 *
 * Layout: every service runs in a process of its own (subgraphs in one, each gateway in one);
 * autocannon (50 connections, no pipelining) runs in this process, which does nothing else while
 * it measures. All of them share the machine's cores with PostgreSQL, so the ratios, not the
 * absolute figures, are what this measures. "stock" is what Apollo's documentation sets up:
 * `startStandaloneServer` + `ApolloGateway` with its default `RemoteGraphQLDataSource`
 * (make-fetch-happen); "ours" is `startGateway` (node:http, undici pool, token check).
 * Every request really reaches the subgraph: nothing is cached.
 *
 * "CPU/request" is the CPU time (user + system, from /proc) each service process spent per
 * request while measured. When the subgraph and PostgreSQL are the bottleneck (the default
 * query counts 7,290 light points on every request), the throughput ratio says little about the
 * gateway; its CPU per request is its own cost, whatever the bottleneck.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** The part of autocannon's API used here (the package ships no types). */
interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (options: {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  pipelining: number;
  duration: number;
}) => Promise<AutocannonResult>;

const DEFAULT_QUERY =
  '{ equipmentSearch(filter: { kinds: [LIGHT_POINT] }, first: 20) { totalCount edges { node { id reference status location { coordinates } } } } }';
const CONNECTIONS = 50;
const THIS_FILE = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(THIS_FILE), '..');
/** Services run as in production (graphql-js skips its development checks), quietly. */
const SERVICE_ENV = {
  NODE_ENV: 'production',
  JWT_SECRET: 'bench-only-secret-not-used-anywhere-else',
  LOG_LEVEL: 'warn',
  PORT: '0',
  // One load generator on one address: the per-address and per-token limits would measure themselves.
  RATE_LIMIT_PER_ADDRESS: '0',
  RATE_LIMIT_PER_TOKEN: '0',
  // The stock gateway is measured as configured here: no usage reports to Apollo, no cloud probes.
  APOLLO_TELEMETRY_DISABLED: '1',
};

const { values: args } = parseArgs({
  options: {
    role: { type: 'string', default: 'orchestrator' },
    kind: { type: 'string' },
    db: { type: 'string' },
    /** JSON of every registered subgraph's URL by name, from the subgraphs' child. */
    subgraphs: { type: 'string' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '1' },
    profile: { type: 'boolean', default: false },
    /** Comma-separated subset of direct,stock,ours (e.g. `--targets ours` with `--profile`). */
    targets: { type: 'string', default: 'direct,stock,ours' },
    /** Another operation to drive (it must return 20 `equipmentSearch` edges). */
    query: { type: 'string', default: DEFAULT_QUERY },
    /** Node binary the subgraphs and gateways run on (e.g. Node 20 against Node 24); default: this one. */
    node: { type: 'string' },
  },
});
const QUERY = args.query!;

/** A child announces its URLs with one `READY <json>` line on stdout. */
function announce(urls: Record<string, string>): void {
  process.stdout.write(`READY ${JSON.stringify(urls)}\n`);
}

async function runSubgraphs(): Promise<void> {
  const { loadConfig } = await import('@connecte/shared/config');
  const { installShutdownHandlers } = await import('@connecte/shared/server');
  // Every registered subgraph (packages/shared/src/registry.ts), each on a port of its own.
  const { startSubgraphs, urlsOf } = await import('@connecte/testkit');
  const config = loadConfig({ ...process.env, DATABASE_URL: args.db! });
  const subgraphs = await startSubgraphs(config);
  installShutdownHandlers(async () => {
    await Promise.all(Object.values(subgraphs).map((subgraph) => subgraph.close()));
  });
  announce(urlsOf(subgraphs));
}

async function runGateway(): Promise<void> {
  const { loadConfig } = await import('@connecte/shared/config');
  const { installShutdownHandlers } = await import('@connecte/shared/server');
  const config = loadConfig({ ...process.env, DATABASE_URL: args.db! });
  const subgraphUrls = JSON.parse(args.subgraphs!) as Record<string, string>;
  if (args.kind === 'ours') {
    const { startGateway } = await import('@connecte/gateway');
    const gateway = await startGateway({ config, port: 0, subgraphUrls });
    installShutdownHandlers(() => gateway.close());
    announce({ url: gateway.url });
    return;
  }
  const { ApolloGateway } = await import('@apollo/gateway');
  const { ApolloServer } = await import('@apollo/server');
  const { startStandaloneServer } = await import('@apollo/server/standalone');
  const { readCommittedSupergraph, withSubgraphUrls } = await import('../gateway/src/compose.js');
  const gateway = new ApolloGateway({ supergraphSdl: withSubgraphUrls(readCommittedSupergraph(), subgraphUrls) });
  const server = new ApolloServer({ gateway });
  const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
  installShutdownHandlers(() => server.stop());
  announce({ url });
}

interface Child {
  process: ChildProcess;
  urls: Record<string, string>;
}

function startChild(role: string, extra: string[], nodeFlags: string[] = []): Promise<Child> {
  const child = spawn(args.node ?? process.execPath, [...nodeFlags, '--import', 'tsx', THIS_FILE, '--role', role, ...extra], {
    cwd: ROOT,
    env: { ...process.env, ...SERVICE_ENV },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.startsWith('READY ')) resolve({ process: child, urls: JSON.parse(line.slice(6)) });
      else process.stdout.write(`[${role}] ${line}\n`);
    });
    child.once('exit', (code) => reject(new Error(`${role} exited (${code}) before it was ready`)));
  });
}

async function stopChild(child: Child): Promise<void> {
  if (child.process.exitCode !== null) return;
  const exited = new Promise((resolve) => child.process.once('exit', resolve));
  child.process.kill('SIGTERM');
  await exited;
}

const body = JSON.stringify({ query: QUERY });
const headers = { 'content-type': 'application/json' };

/**
 * Every target must give the real answer — data, no errors, and the same data as every other
 * target — or the figures would measure errors.
 */
let reference: string | undefined;
async function check(name: string, url: string): Promise<void> {
  const response = await fetch(url, { method: 'POST', headers, body });
  const result = (await response.json()) as { data?: Record<string, unknown> | null; errors?: unknown };
  const data = JSON.stringify(result.data ?? null);
  reference ??= data;
  if (response.status !== 200 || result.errors || !result.data || data !== reference) {
    throw new Error(`${name} does not answer the benchmark query properly: ${response.status} ${JSON.stringify(result).slice(0, 500)}`);
  }
}

/** CPU seconds a process has used so far (Linux /proc; null elsewhere). */
function cpuSeconds(pid: number | undefined): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime and stime, fields 14 and 15 of stat(5), counted from the state field (3).
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return null;
  }
}
const CLOCK_TICKS_PER_SECOND = 100;

interface Measure {
  requestsPerSecond: number;
  /** CPU milliseconds per request spent in the subgraphs' process, and in the gateway's (if any). */
  subgraphCpuMs: number | null;
  gatewayCpuMs: number | null;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(url: string, seconds: number, subgraphs?: Child, gateway?: Child): Promise<Measure> {
  const before = [cpuSeconds(subgraphs?.process.pid), cpuSeconds(gateway?.process.pid)];
  const result = await autocannon({ url, method: 'POST', headers, body, connections: CONNECTIONS, pipelining: 1, duration: seconds });
  const after = [cpuSeconds(subgraphs?.process.pid), cpuSeconds(gateway?.process.pid)];
  const perRequest = (i: number) =>
    before[i] === null || after[i] === null ? null : (1000 * (after[i]! - before[i]!)) / (result.requests.average * seconds);
  return {
    requestsPerSecond: result.requests.average,
    subgraphCpuMs: perRequest(0),
    gatewayCpuMs: perRequest(1),
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

async function orchestrate(): Promise<void> {
  const duration = Number(args.duration);
  const warmup = Number(args.warmup);
  const rounds = Number(args.rounds);
  const { createTestDatabase } = await import('@connecte/testkit/databases');
  const database = await createTestDatabase({ seed: true });
  const children: Child[] = [];
  try {
    const subgraphs = await startChild('subgraphs', ['--db', database.url]);
    children.push(subgraphs);
    const gatewayArgs = ['--db', database.url, '--subgraphs', JSON.stringify(subgraphs.urls)];
    const profileDir = path.join(ROOT, 'bench', 'results');
    if (args.profile) mkdirSync(profileDir, { recursive: true });
    const stock = await startChild('gateway', ['--kind', 'stock', ...gatewayArgs]);
    children.push(stock);
    const ours = await startChild(
      'gateway',
      ['--kind', 'ours', ...gatewayArgs],
      args.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    );
    children.push(ours);

    const wanted = new Set(args.targets!.split(','));
    const targets = [
      { key: 'direct', name: 'direct (equipment subgraph)', url: subgraphs.urls.equipment, gateway: undefined },
      { key: 'stock', name: 'stock Apollo gateway', url: stock.urls.url, gateway: stock },
      { key: 'ours', name: 'our gateway', url: ours.urls.url, gateway: ours },
    ].filter((target) => wanted.has(target.key));
    for (const target of targets) await check(target.name, target.url);

    console.log(
      `gateway throughput — services on node ${args.node ? execFileSync(args.node, ['--version'], { encoding: 'utf8' }).trim() : process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), ` +
        `${CONNECTIONS} connections, ${warmup} s warm-up + ${duration} s per target, ${rounds} round(s)\n` +
        'processes: subgraphs | stock gateway | our gateway | autocannon (this one) | PostgreSQL — all on the same cores\n' +
        `query: ${QUERY}\n`,
    );
    for (let round = 1; round <= rounds; round++) {
      const results: Record<string, Measure> = {};
      for (const target of targets) {
        await load(target.url, warmup);
        results[target.name] = await load(target.url, duration, subgraphs, target.gateway);
      }

      console.log(`round ${round}`);
      for (const target of targets) {
        const m = results[target.name];
        const cpu = (ms: number | null) => (ms === null ? '   ?' : ms.toFixed(2).padStart(5));
        console.log(
          `  ${target.name.padEnd(28)} ${m.requestsPerSecond.toFixed(0).padStart(7)} req/s   p50 ${String(m.p50).padStart(4)} ms   p99 ${String(m.p99).padStart(4)} ms` +
            `   CPU/request: subgraphs ${cpu(m.subgraphCpuMs)} ms` +
            (target.gateway ? `, gateway ${cpu(m.gatewayCpuMs)} ms` : '') +
            (m.non2xx || m.errors ? `   non-2xx ${m.non2xx}, errors ${m.errors}` : ''),
        );
      }
      const rate = (key: string) => results[targets.find((target) => target.key === key)?.name ?? '']?.requestsPerSecond;
      const ratio = (key: string) => `${((100 * rate(key)) / rate('direct')).toFixed(1)} %`;
      if (rate('direct') && rate('ours')) console.log(`  ours/direct  ${ratio('ours')}   (target ≥ 45 %)`);
      if (rate('direct') && rate('stock')) console.log(`  stock/direct ${ratio('stock')}`);
      console.log('');
    }
  } finally {
    for (const child of children.reverse()) await stopChild(child);
    await database.drop();
    if (args.profile) console.log(`CPU profile of our gateway: bench/results/*.cpuprofile`);
  }
}

if (args.role === 'subgraphs') await runSubgraphs();
else if (args.role === 'gateway') await runGateway();
else await orchestrate();
