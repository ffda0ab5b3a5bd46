/**
 * `npm start`: prepares the database (PostGIS, migrations, seed), then runs every service
 * as its own process — the subgraphs, the gateway and the city simulator — and prints the URLs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { loadConfigOrExit } from '@connecte/shared/config';
import { subgraphUrl } from '@connecte/gateway/subgraphs';
// The registry's root is right whether this file runs from scripts/ (tsx) or dist/scripts/ (compiled).
import { GATEWAY, REPOSITORY_ROOT as ROOT, SUBGRAPHS, subgraphUrlVariable } from '@connecte/shared/registry';
import { nodeArgs } from '@connecte/shared/runtime';
import { setupDatabase } from './setup.js';

const config = loadConfigOrExit();
const GATEWAY_PORT = config.PORT ?? GATEWAY.defaultPort;
const gatewayUrl = `http://localhost:${GATEWAY_PORT}`;

/** A port already taken (often: a hub already running) is said before anything starts. */
function portIsFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer().once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}
const ports: [string, number][] = [
  ['gateway (PORT)', GATEWAY_PORT],
  ...SUBGRAPHS.map((s): [string, number] => [`${s.name} (${subgraphUrlVariable(s.name)})`, Number(new URL(subgraphUrl(s.name)).port)]),
];
for (const [name, port] of ports) {
  if (!(await portIsFree(port, config.HOST))) {
    console.error(`[hub] port ${port} for ${name} is already in use — is another hub running? Stop it, or move the service with the variable named.`);
    process.exit(1);
  }
}

try {
  await setupDatabase(config);
} catch (error) {
  console.error(`[setup] ${(error as Error).message}`);
  process.exit(1);
}

const children: ChildProcess[] = [];
let stopping = false;

function run(name: string, script: string, env: Record<string, string>) {
  // Each child runs the way the hub itself runs: the TypeScript source under tsx, or its compiled file.
  const child = spawn(process.execPath, nodeArgs(script, ROOT), {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  child.on('exit', (code, signal) => {
    if (stopping) return;
    console.error(`[hub] ${name} stopped (${signal ?? `exit ${code}`}); stopping the hub`);
    void stop(1);
  });
  children.push(child);
}

async function waitFor(url: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${url} did not answer within ${timeoutMs / 1000} s`);
}

async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)))));
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

// Every registered subgraph, by its entry point; SUBGRAPH_<NAME>_URL moves one (the gateway reads the same variable).
// Tickets limits reports per client address: it believes the gateway's X-Forwarded-For (all on loopback here).
const OWN_ENV: Record<string, Record<string, string>> = { tickets: { TRUSTED_PROXIES: process.env.TRUSTED_PROXIES ?? '127.0.0.1,::1' } };
for (const subgraph of SUBGRAPHS) {
  run(subgraph.name, subgraph.entry, { PORT: new URL(subgraphUrl(subgraph.name)).port, ...OWN_ENV[subgraph.name] });
}
for (const subgraph of SUBGRAPHS) await waitFor(subgraphUrl(subgraph.name).replace(/\/graphql$/, '/healthz'));
run(GATEWAY.name, GATEWAY.entry, { PORT: String(GATEWAY_PORT) });
await waitFor(`${gatewayUrl}/readyz`);
run('simulator', 'scripts/simulator.ts', { GATEWAY_URL: `${gatewayUrl}/graphql` });

console.log(`
connecte-hub is running
  GraphQL (HTTP + graphql-ws)  ${gatewayUrl}/graphql
  health                       ${gatewayUrl}/healthz   ${gatewayUrl}/readyz
  metrics                      ${gatewayUrl}/metrics
  open data (DCAT catalogue)   ${gatewayUrl}/opendata/catalog.jsonld
  open data (equipment)        ${gatewayUrl}/opendata/equipment.geojson
  HTTP ingest (SenML)          ${gatewayUrl}/ingest   (Authorization: Bearer <device token or ingest key>)
  Open311 GeoReport v2         ${gatewayUrl}/open311/v2/discovery.json
  report photos                ${gatewayUrl}/tickets/photos   (POST a JPEG, PNG or WebP)
  GTFS import                  ${gatewayUrl}/mobility/gtfs   (POST a GTFS zip; ?dryRun=true validates only)
${SUBGRAPHS.map((s) => `  subgraph ${s.name.padEnd(20)}${subgraphUrl(s.name)}`).join('\n')}
  MQTT uplinks (simulator)     ${config.MQTT_URL}  connecte/<collectivityId>/<equipmentId>/up
Development token: npm run token -- --role operator --collectivity chalons
Stop with Ctrl-C.`);
