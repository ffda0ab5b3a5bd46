/**
 * `latest` through the gateway: all 7,290 seeded light points in pages of 1,000, each with its
 * latest power, against the same pages without `latest` (the baseline: equipment alone), in one
 * run on one fresh seeded database with one latest power loaded per light point (through the
 * real Ingestor).
 *
 * The hub runs in this process (territory, equipment, telemetry and the gateway), so that the SQL
 * statements the telemetry subgraph runs per page can be counted (every query of its pool's
 * clients, the event bus's background reads left out; a background worker's statement that falls
 * within a request still counts, hence the median). Pages are measured in turns (latest,
 * baseline, latest, ...) so that both see the same machine.
 *
 *   npm run bench:latest                 # 10 rounds of the 8 pages
 *   npm run bench:latest -- --rounds 20
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createTestDatabase, gql, startHub, tokenFor } from '@connecte/testkit';
import { telemetryResourcesFor } from '../subgraphs/telemetry/src/context.js';
import { countStatements } from '../subgraphs/telemetry/test/statement-counter.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '10' } } });
const ROUNDS = Number(args.rounds);
const PAGE = 1000;
const LIGHT_POINTS = 7290;
/** Records per ingest message (below INGEST_MAX_RECORDS). */
const CHUNK = 2000;

const page = (withLatest: boolean, after: string | null) =>
  `{ equipmentSearch(filter: { kinds: [LIGHT_POINT] }, first: ${PAGE}${after ? `, after: "${after}"` : ''}) {
    edges { node { id status ${withLatest ? 'latest(metrics: ["power"]) { value time }' : ''} } } pageInfo { endCursor } } }`;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

const database = await createTestDatabase();
const hub = await startHub(database.url, { LOG_LEVEL: 'warn' });
try {
  const token = await tokenFor(hub.config, ['agent'], ['chalons', 'fagnieres', 'saint-martin-sur-le-pre', 'chalons-agglo']);
  const ask = async (query: string) => {
    const response = await gql(hub.gatewayUrl, query, { token });
    if (response.errors) throw new Error(JSON.stringify(response.errors));
    return response.data;
  };

  // The pages' cursors and ids, then one power reading per light point.
  const cursors: (string | null)[] = [null];
  const ids: string[] = [];
  /** Decommissioned light points take no readings: they keep no latest value. */
  const decommissioned = new Set<string>();
  for (;;) {
    const data = await ask(page(false, cursors.at(-1)!));
    for (const { node } of data.equipmentSearch.edges as { node: { id: string; status: string } }[]) {
      ids.push(node.id);
      if (node.status === 'DECOMMISSIONED') decommissioned.add(node.id);
    }
    if (data.equipmentSearch.edges.length < PAGE) break;
    cursors.push(data.equipmentSearch.pageInfo.endCursor);
  }
  if (ids.length !== LIGHT_POINTS) throw new Error(`the seed has ${ids.length} light points, not ${LIGHT_POINTS}`);
  const r = telemetryResourcesFor(hub.subgraphs.telemetry.db);
  const devices = await r.directory.lookup(ids);
  const byCollectivity = new Map<string, string[]>();
  for (const id of ids) {
    if (decommissioned.has(id)) continue;
    const collectivityId = devices.get(id)!.collectivityId;
    byCollectivity.set(collectivityId, [...(byCollectivity.get(collectivityId) ?? []), id]);
  }
  const time = Math.floor(Date.now() / 1000) - 60;
  const loaded = performance.now();
  let accepted = 0;
  for (const [collectivityId, list] of byCollectivity) {
    for (let i = 0; i < list.length; i += CHUNK) {
      const pack = list.slice(i, i + CHUNK).map((id, j) => ({ bn: `urn:dev:connecte:${id}:`, bt: time, n: 'power', u: 'W', v: 10 + ((i + j) % 90) }));
      const [result] = await r.ingestor.ingest([
        { transport: 'http', topic: null, principal: { kind: 'ingest-key', keyId: 'bench', collectivityId }, payload: Buffer.from(JSON.stringify(pack)) },
      ]);
      if (result.rejected.length > 0) throw new Error(JSON.stringify(result.rejected.slice(0, 3)));
      accepted += result.accepted;
    }
  }
  console.log(`loaded ${accepted.toLocaleString('en')} latest power values (${decommissioned.size} light points are decommissioned) in ${((performance.now() - loaded) / 1000).toFixed(1)} s`);

  const counter = countStatements(hub.subgraphs.telemetry.db.pool);
  const timings = { latest: [] as number[], baseline: [] as number[] };
  const statements = { latest: [] as number[], baseline: [] as number[] };
  let checked = 0;
  const run = async (kind: 'latest' | 'baseline', after: string | null, record: boolean) => {
    counter.reset();
    const started = performance.now();
    const data = await ask(page(kind === 'latest', after));
    const ms = performance.now() - started;
    if (kind === 'latest') {
      for (const { node } of data.equipmentSearch.edges) {
        if (node.latest.length !== (decommissioned.has(node.id) ? 0 : 1)) throw new Error(`${node.id}: latest ${JSON.stringify(node.latest)}`);
        checked++;
      }
    }
    if (record) {
      timings[kind].push(ms);
      statements[kind].push(counter.statements.length);
    }
  };
  // One warm-up round (JIT, plan caches, the pool's connections), then the measured ones.
  for (let round = 0; round <= ROUNDS; round++) {
    for (const after of cursors) {
      await run('latest', after, round > 0);
      await run('baseline', after, round > 0);
    }
  }
  counter.restore();

  const p50 = { latest: percentile(timings.latest, 50), baseline: percentile(timings.baseline, 50) };
  const p95 = { latest: percentile(timings.latest, 95), baseline: percentile(timings.baseline, 95) };
  // Background workers (the alarm sweep, durable consumers) use the same pool: a statement of theirs
  // that falls within a page's request counts there, as the baseline (no telemetry field at all) shows.
  const range = (values: number[]) => `median ${percentile(values, 50)} (min ${Math.min(...values)}, max ${Math.max(...values)})`;
  console.log(`\nlatest(metrics: ["power"]) for ${LIGHT_POINTS.toLocaleString('en')} light points, ${cursors.length} pages of ${PAGE}, ${ROUNDS} rounds (${checked.toLocaleString('en')} values checked)`);
  console.log(`  with latest   p50 ${p50.latest.toFixed(1)} ms/page  p95 ${p95.latest.toFixed(1)} ms  telemetry SQL statements per page: ${range(statements.latest)}`);
  console.log(`  baseline      p50 ${p50.baseline.toFixed(1)} ms/page  p95 ${p95.baseline.toFixed(1)} ms  telemetry SQL statements per page: ${range(statements.baseline)}`);
  console.log(`  ratio latest/baseline: p50 ×${(p50.latest / p50.baseline).toFixed(2)}  (latest adds ${(p50.latest - p50.baseline).toFixed(1)} ms per page of ${PAGE})`);
} finally {
  await hub.close();
  await database.drop();
}
