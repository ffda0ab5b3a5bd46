/**
 * The registry of subgraphs: one declaration per subgraph, which every place that runs, composes,
 * tests or ships the hub follows (entry points, gateway, composition, `npm start`, the test hub,
 * the benchmarks; docker-compose and the Dockerfile are checked against it by test/registry.test.ts).
 *
 * Plain data on purpose: the gateway reads it and must never load a subgraph's code, so an entry
 * names the package that holds the service instead of importing it.
 * Adding a domain: its folder under subgraphs/, one entry here (e.g.
 * `domain('tickets', 4004, { workers: ['outbox'], routes: ['/open311/v2'] })`), then `npm run compose`.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SubgraphEntry {
  /** Federation name, lower-case letters and digits: `SUBGRAPH_<NAME>_URL` moves it, docker-compose names its service so. */
  name: string;
  /** Port it listens on when PORT is not set; unique across the hub (the gateway's included). */
  defaultPort: number;
  /** Its SDL, relative to the repository root: the source of the committed supergraph. */
  schema: string;
  /** Its entry point (runs the service), relative to the repository root. */
  entry: string;
  /** The workspace package whose exports include the subgraph's `SubgraphService` (the test hub and benchmarks load it). */
  package: string;
  /**
   * Names of the background workers its service declares (`SubgraphService.workers`), in start
   * order; each is reported by the subgraph's `/readyz`. The event bus is every subgraph's own.
   */
  workers: readonly string[];
  /**
   * HTTP path prefixes it serves on its own port besides GraphQL (`SubgraphService.routes`), which
   * the gateway forwards to it from its own port: `/open311/v2` for tickets, `/ingest` for telemetry.
   */
  routes: readonly string[];
}

/** The gateway, declared beside the subgraphs: its port is taken too, its entry point is run the same way. */
export const GATEWAY = Object.freeze({ name: 'gateway', defaultPort: 4000, entry: 'gateway/src/main.ts' });

/** The repository root, for the registry's relative paths. */
export const REPOSITORY_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

const NAME = /^[a-z][a-z0-9]*$/;
/** `/name[/name...]`, no trailing slash: a prefix matches itself and what is under it. */
export const ROUTE_PREFIX = /^(\/[A-Za-z0-9._~-]+)+$/;
/** Paths every service answers itself; no route may take them. */
export const RESERVED_PATHS: readonly string[] = ['/graphql', '/healthz', '/readyz', '/metrics'];

export class RegistryError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid subgraph registry:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'RegistryError';
  }
}

/** Checks a registry: names well-formed and unique, ports valid and unique (the gateway's included). */
export function defineRegistry(entries: readonly SubgraphEntry[]): readonly SubgraphEntry[] {
  const problems: string[] = [];
  const names = new Map<string, number>();
  const ports = new Map<number, string>([[GATEWAY.defaultPort, 'the gateway']]);
  const routes = new Map<string, string>(RESERVED_PATHS.map((path) => [path, 'every service']));
  entries.forEach((entry, index) => {
    const label = `entry ${index + 1} (${JSON.stringify(entry.name)})`;
    if (!NAME.test(entry.name)) problems.push(`${label}: name must be lower-case letters and digits, starting with a letter`);
    const sameName = names.get(entry.name);
    if (sameName !== undefined) problems.push(`${label}: name "${entry.name}" is already used by entry ${sameName}`);
    else names.set(entry.name, index + 1);
    if (!Number.isInteger(entry.defaultPort) || entry.defaultPort < 1 || entry.defaultPort > 65535) {
      problems.push(`${label}: defaultPort ${entry.defaultPort} must be a whole number between 1 and 65535`);
    } else {
      const samePort = ports.get(entry.defaultPort);
      if (samePort !== undefined) problems.push(`${label}: defaultPort ${entry.defaultPort} is already used by ${samePort}`);
      else ports.set(entry.defaultPort, `"${entry.name}"`);
    }
    const sameWorker = entry.workers.find((worker, i) => entry.workers.indexOf(worker) !== i);
    if (sameWorker !== undefined) problems.push(`${label}: worker "${sameWorker}" is declared twice`);
    for (const route of entry.routes) {
      const holder = routes.get(route);
      if (!ROUTE_PREFIX.test(route)) problems.push(`${label}: route "${route}" must be a path such as /open311/v2 (no trailing slash)`);
      else if (holder !== undefined) problems.push(`${label}: route "${route}" is already served by ${holder}`);
      else routes.set(route, `"${entry.name}"`);
    }
  });
  if (problems.length > 0) throw new RegistryError(problems);
  return Object.freeze(
    entries.map((entry) => Object.freeze({ ...entry, workers: Object.freeze([...entry.workers]), routes: Object.freeze([...entry.routes]) })),
  );
}

const domain = (name: string, defaultPort: number, own: { workers?: string[]; routes?: string[] } = {}): SubgraphEntry => ({
  name,
  defaultPort,
  schema: `subgraphs/${name}/src/schema.graphql`,
  entry: `subgraphs/${name}/src/main.ts`,
  package: `@connecte/subgraph-${name}`,
  workers: ['event-bus', ...(own.workers ?? [])],
  routes: own.routes ?? [],
});

/** Planned next, with its folder and entry: control 4006. */
export const SUBGRAPHS = defineRegistry([
  domain('territory', 4001),
  domain('equipment', 4002, { workers: ['alarm-status'] }),
  domain('telemetry', 4003, { workers: ['device-directory', 'partitions', 'broker-auth', 'mqtt-ingest', 'alarms'], routes: ['/ingest'] }),
  domain('tickets', 4004, { workers: ['known-alarms', 'grc-outbox', 'retention'], routes: ['/open311/v2', '/tickets'] }),
  domain('mobility', 4005, { workers: ['asset-directory', 'network', 'vehicle-assignments', 'readings', 'signal-priority'], routes: ['/mobility'] }),
]);

/** The registered subgraph of that name; an unknown name is an error naming the known ones. */
export function registeredSubgraph(name: string, registry: readonly SubgraphEntry[] = SUBGRAPHS): SubgraphEntry {
  const entry = registry.find((candidate) => candidate.name === name);
  if (!entry) throw new Error(`Unknown subgraph "${name}" (known: ${registry.map((s) => s.name).join(', ')})`);
  return entry;
}

/** Absolute path of a registry path (`schema`, `entry`). */
export function fromRoot(relative: string): string {
  return path.join(REPOSITORY_ROOT, relative);
}

export function subgraphUrlVariable(name: string): string {
  return `SUBGRAPH_${name.toUpperCase()}_URL`;
}
