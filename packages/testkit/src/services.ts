/**
 * The hub's services in-process on ephemeral ports: one subgraph over a database of its own, or
 * the hub (every registered subgraph, or the ones a test names, then the gateway). Subgraphs are
 * found through the registry (packages/shared/src/registry.ts), so a new domain is testable as
 * soon as it is registered, alone or beside the others.
 */
import type { Config } from '@connecte/shared/config';
import type { Logger } from '@connecte/shared/log';
import { registeredSubgraph, SUBGRAPHS, type SubgraphEntry } from '@connecte/shared/registry';
import { startSubgraph, type RunningService, type SubgraphService } from '@connecte/shared/server';
import type { Role } from '@connecte/shared/auth';
import { startGateway, type RunningGateway } from '@connecte/gateway';
import { selectSubgraphs } from '@connecte/gateway/subgraphs';
import { testConfig, tokenFor } from './config.js';
import { createTestDatabase, type TestDatabase } from './databases.js';
import { gql, type GqlOptions, type GraphQLResponse } from './graphql.js';

const isServiceNamed = (name: string) => (value: unknown): value is SubgraphService =>
  typeof value === 'object' && value !== null && (value as SubgraphService).name === name && 'typeDefs' in value && 'resolvers' in value;

/** The `SubgraphService` a registry entry's package exports (whatever its export is called). */
export async function loadSubgraphService(entry: SubgraphEntry): Promise<SubgraphService> {
  const exports: Record<string, unknown> = await import(entry.package);
  const services = Object.values(exports).filter(isServiceNamed(entry.name));
  if (services.length !== 1) {
    throw new Error(`${entry.package} must export exactly one SubgraphService named "${entry.name}" (found ${services.length}): see packages/shared/src/registry.ts`);
  }
  return services[0];
}

export interface StartServiceOptions {
  /** The database to serve; by default one of its own (seeded unless `seed: false`), dropped on `close()`. */
  db?: TestDatabase;
  seed?: boolean;
  /** Configuration variables on top of `testConfig`'s. */
  env?: Record<string, string>;
  /** By default the service logs nothing (LOG_LEVEL=silent). */
  log?: Logger;
}

export interface TestService extends RunningService {
  config: Config;
  /** The database it serves. */
  database: TestDatabase;
  gql<T = any>(query: string, options?: GqlOptions): Promise<GraphQLResponse<T>>;
  /** A development token its configuration accepts. */
  token(roles: Role[], collectivities: string[]): Promise<string>;
}

/** One subgraph, by registry name or as a `SubgraphService`, on an ephemeral port. */
export async function startService(subgraph: string | SubgraphService, options: StartServiceOptions = {}): Promise<TestService> {
  const service = typeof subgraph === 'string' ? await loadSubgraphService(registeredSubgraph(subgraph)) : subgraph;
  const own = options.db === undefined;
  const database = options.db ?? (await createTestDatabase({ seed: options.seed ?? true }));
  try {
    const config = testConfig(database.url, options.env);
    const running = await startSubgraph(service, { config, port: 0, log: options.log });
    return {
      ...running,
      config,
      database,
      gql: (query, gqlOptions) => gql(running.url, query, gqlOptions),
      token: (roles, collectivities) => tokenFor(config, roles, collectivities),
      async close() {
        await running.close();
        if (own) await database.drop();
      },
    };
  } catch (error) {
    if (own) await database.drop();
    throw error;
  }
}

/** Starts every registered subgraph (or those of `registry`) on an ephemeral port; returns them by name. */
export async function startSubgraphs(config: Config, registry: readonly SubgraphEntry[] = SUBGRAPHS): Promise<Record<string, RunningService>> {
  const running: Record<string, RunningService> = {};
  try {
    // In the registry's order, each knowing the URLs of those started before it (tickets asks territory and equipment).
    for (const entry of registry) running[entry.name] = await startSubgraph(await loadSubgraphService(entry), { config, port: 0, peers: urlsOf(running) });
  } catch (error) {
    await Promise.all(Object.values(running).map((service) => service.close()));
    throw error;
  }
  return running;
}

export const urlsOf = (subgraphs: Record<string, RunningService>) =>
  Object.fromEntries(Object.entries(subgraphs).map(([name, service]) => [name, service.url]));

export interface Hub {
  config: Config;
  gateway: RunningGateway;
  gatewayUrl: string;
  /** By registry name. A test may replace a subgraph (stop it, start it again): `close()` closes what is here then. */
  subgraphs: Record<string, RunningService>;
  close(): Promise<void>;
}

export interface StartHubOptions {
  /**
   * The registered subgraphs to start, by name (default: all). The gateway then composes their
   * supergraph and serves only them: a field of another subgraph is a validation error.
   */
  subgraphs?: readonly string[];
}

/**
 * The hub over one database: every registered subgraph, or those `options.subgraphs` names, then
 * the gateway. By default the gateway serves the committed supergraph; with named subgraphs, the
 * one they compose at start (a set that does not compose fails the start, naming it).
 */
export async function startHub(databaseUrl: string, env: Record<string, string> = {}, options: StartHubOptions = {}): Promise<Hub> {
  const config = testConfig(databaseUrl, env);
  // The gateway's own check, before anything starts: an unknown name is refused with the known ones.
  const registry = options.subgraphs && selectSubgraphs(options.subgraphs);
  const subgraphs = await startSubgraphs(config, registry);
  try {
    const gateway = await startGateway({ config, port: 0, subgraphs: options.subgraphs, subgraphUrls: urlsOf(subgraphs) });
    return {
      config,
      gateway,
      gatewayUrl: gateway.url,
      subgraphs,
      async close() {
        await gateway.close();
        await Promise.all(Object.values(subgraphs).map((service) => service.close()));
      },
    };
  } catch (error) {
    await Promise.all(Object.values(subgraphs).map((service) => service.close()));
    throw error;
  }
}

/** `/graphql` requests the hub's subgraphs have served so far (from their own metrics): proof that a refused query reached none. */
export async function subgraphRequests(hub: Hub): Promise<number> {
  let total = 0;
  for (const subgraph of Object.values(hub.subgraphs)) {
    const text = await (await fetch(subgraph.url.replace(/\/graphql$/, '/metrics'))).text();
    for (const line of text.split('\n')) {
      if (line.startsWith('http_request_duration_seconds_count{') && line.includes('route="/graphql"')) total += Number(line.split(' ').at(-1));
    }
  }
  return total;
}
