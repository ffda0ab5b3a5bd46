/**
 * Time to refusal at the gateway (issue #5: "one anonymous request cannot exhaust the hub"):
 * the incident query (300 aliases of `equipmentSearch(first: 1000)`, 39 KB, which used to take
 * 11 s and 1.1 GB) and a 20-level-deep query, against a trivial `{ __typename }` that the
 * gateway answers itself, in the same run. Target: a refusal within 2× of the trivial answer.
 * Also checks that no subgraph received a request for the refused queries (their /metrics).
 *
 *   npx tsx bench/query-limits.ts                 # 300 requests per query, after 50 of warm-up
 *   npx tsx bench/query-limits.ts --requests 1000
 *
 * In-process hub (startHub) on its own database, rate limits off (testConfig). Requests are
 * sequential on one keep-alive connection, interleaved in rounds so that drift (JIT, GC, other
 * processes on the machine) falls on every query alike; latency is request sent to body read.
 */
import { parseArgs } from 'node:util';
import { Agent, fetch as keepAliveFetch } from 'undici';
import { createTestDatabase, startHub, subgraphRequests } from '@connecte/testkit';

const { values } = parseArgs({ options: { requests: { type: 'string', default: '300' }, warmup: { type: 'string', default: '50' } } });
const REQUESTS = Number(values.requests);
const WARMUP = Number(values.warmup);
const ROUNDS = 5;

const QUERIES = {
  trivial: '{ __typename }',
  incident: `{ ${Array.from({ length: 300 }, (_, i) => `a${i}: equipmentSearch(first: 1000) { totalCount edges { cursor node { id kind reference name status communeInseeCode location { type coordinates } } } }`).join(' ')} }`,
  deep: `{ equipment(id: "LP-1") { ${'parent { '.repeat(18)}id${' }'.repeat(18)} } }`,
} as const;
type Name = keyof typeof QUERIES;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (value: number) => `${value.toFixed(3)} ms`;

async function main() {
  const db = await createTestDatabase({ seed: false });
  const hub = await startHub(db.url);
  const dispatcher = new Agent({ connections: 1, pipelining: 1 });
  try {
    const bodies = Object.fromEntries(Object.entries(QUERIES).map(([name, query]) => [name, JSON.stringify({ query })])) as Record<Name, string>;
    const once = async (name: Name) => {
      const started = performance.now();
      const response = await keepAliveFetch(hub.gatewayUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[name], dispatcher });
      const body = (await response.json()) as { errors?: { extensions?: Record<string, unknown> }[] };
      return { elapsed: performance.now() - started, status: response.status, body };
    };

    console.log(`gateway ${hub.gatewayUrl}; ${REQUESTS} requests per query after ${WARMUP} of warm-up, ${ROUNDS} interleaved rounds`);
    for (const name of Object.keys(QUERIES) as Name[]) {
      const { status, body } = await once(name);
      const refusal = body.errors?.[0]?.extensions;
      console.log(`  ${name.padEnd(8)} ${Buffer.byteLength(bodies[name]).toLocaleString('en').padStart(7)} B → ${status}${refusal ? ` ${refusal.code} ${refusal.limit} ${refusal.measured} > ${refusal.max}` : ''}`);
    }
    for (let i = 0; i < WARMUP; i++) for (const name of Object.keys(QUERIES) as Name[]) await once(name);

    const samples: Record<Name, number[]> = { trivial: [], incident: [], deep: [] };
    const subgraphCalls: Record<Name, number> = { trivial: 0, incident: 0, deep: 0 };
    const perRound = Math.ceil(REQUESTS / ROUNDS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of Object.keys(QUERIES) as Name[]) {
        const before = await subgraphRequests(hub);
        for (let i = 0; i < perRound; i++) {
          const { elapsed, status } = await once(name);
          if (status !== (name === 'trivial' ? 200 : 400)) throw new Error(`${name} answered ${status}`);
          samples[name].push(elapsed);
        }
        subgraphCalls[name] += (await subgraphRequests(hub)) - before;
      }
    }

    const stats = Object.fromEntries(
      (Object.keys(samples) as Name[]).map((name) => {
        const sorted = [...samples[name]].sort((a, b) => a - b);
        return [name, { p50: percentile(sorted, 50), p99: percentile(sorted, 99) }];
      }),
    ) as Record<Name, { p50: number; p99: number }>;
    console.log('\nquery      requests      p50          p99      p50 ratio  p99 ratio  subgraph requests');
    for (const name of Object.keys(stats) as Name[]) {
      const { p50, p99 } = stats[name];
      console.log(
        `${name.padEnd(9)} ${String(samples[name].length).padStart(8)} ${ms(p50).padStart(12)} ${ms(p99).padStart(12)} ${`${(p50 / stats.trivial.p50).toFixed(2)}×`.padStart(10)} ${`${(p99 / stats.trivial.p99).toFixed(2)}×`.padStart(10)} ${String(subgraphCalls[name]).padStart(18)}`,
      );
    }
    const worst = Math.max(stats.incident.p50 / stats.trivial.p50, stats.deep.p50 / stats.trivial.p50);
    console.log(`\ntarget: refusals within 2× of { __typename } at p50 — ${worst <= 2 ? 'met' : 'NOT met'} (worst ${worst.toFixed(2)}×)`);
    const reached = subgraphCalls.incident + subgraphCalls.deep;
    console.log(`subgraph requests for refused queries: ${reached} ${reached === 0 ? '(none, as required)' : '(REFUSED QUERIES REACHED A SUBGRAPH)'}`);
    if (reached !== 0) process.exitCode = 1;
  } finally {
    await dispatcher.close();
    await hub.close();
    await db.drop();
  }
}

await main();
