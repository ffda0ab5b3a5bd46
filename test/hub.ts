/** Starts the hub's services in-process on ephemeral ports: every registered subgraph, then the gateway. */
import type { Config } from '@connecte/shared/config';
import { SUBGRAPHS, type SubgraphEntry } from '@connecte/shared/registry';
import { startSubgraph, type RunningService, type SubgraphService } from '@connecte/shared/server';
import { startGateway, type RunningGateway } from '@connecte/gateway';
import { testConfig } from './graphql.js';

export { gql, testConfig, tokenFor, type GraphQLResponse } from './graphql.js';

export interface Hub {
  config: Config;
  gateway: RunningGateway;
  gatewayUrl: string;
  /** By registry name. A test may replace a subgraph (stop it, start it again): `close()` closes what is here then. */
  subgraphs: Record<string, RunningService>;
  close(): Promise<void>;
}

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

/** Starts every registered subgraph on an ephemeral port; returns them by name. */
export async function startSubgraphs(config: Config, registry: readonly SubgraphEntry[] = SUBGRAPHS): Promise<Record<string, RunningService>> {
  const running: Record<string, RunningService> = {};
  try {
    for (const entry of registry) running[entry.name] = await startSubgraph(await loadSubgraphService(entry), { config, port: 0 });
  } catch (error) {
    await Promise.all(Object.values(running).map((service) => service.close()));
    throw error;
  }
  return running;
}

export const urlsOf = (subgraphs: Record<string, RunningService>) =>
  Object.fromEntries(Object.entries(subgraphs).map(([name, service]) => [name, service.url]));

export async function startHub(databaseUrl: string, env: Record<string, string> = {}): Promise<Hub> {
  const config = testConfig(databaseUrl, env);
  const subgraphs = await startSubgraphs(config);
  const gateway = await startGateway({ config, port: 0, subgraphUrls: urlsOf(subgraphs) });
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
}
