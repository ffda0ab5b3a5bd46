/** Starts the hub's services in-process on ephemeral ports: both subgraphs and the gateway. */
import type { Config } from '@connecte/shared/config';
import { startSubgraph, type RunningService } from '@connecte/shared/server';
import { territoryService } from '@connecte/subgraph-territory';
import { equipmentService } from '@connecte/subgraph-equipment';
import { startGateway, type RunningGateway } from '@connecte/gateway';
import { testConfig } from './graphql.js';

export { gql, testConfig, tokenFor, type GraphQLResponse } from './graphql.js';

export interface Hub {
  config: Config;
  gateway: RunningGateway;
  gatewayUrl: string;
  /** A test may replace a subgraph (stop it, start it again): `close()` closes what is here then. */
  subgraphs: Record<'territory' | 'equipment', RunningService>;
  close(): Promise<void>;
}

export async function startHub(databaseUrl: string, env: Record<string, string> = {}): Promise<Hub> {
  const config = testConfig(databaseUrl, env);
  const subgraphs = {
    territory: await startSubgraph(territoryService, { config, port: 0 }),
    equipment: await startSubgraph(equipmentService, { config, port: 0 }),
  };
  const gateway = await startGateway({ config, port: 0, subgraphUrls: { territory: subgraphs.territory.url, equipment: subgraphs.equipment.url } });
  return {
    config,
    gateway,
    gatewayUrl: gateway.url,
    subgraphs,
    async close() {
      await gateway.close();
      await Promise.all([subgraphs.territory.close(), subgraphs.equipment.close()]);
    },
  };
}
