/** Starts the hub's services in-process on ephemeral ports, and talks GraphQL to them. */
import { loadConfig, type Config } from '@connecte/shared/config';
import { signDevelopmentToken, type Role } from '@connecte/shared/auth';
import { startSubgraph, type RunningService } from '@connecte/shared/server';
import { territoryService } from '@connecte/subgraph-territory';
import { equipmentService } from '@connecte/subgraph-equipment';
import { startGateway } from '@connecte/gateway';

export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({ ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: databaseUrl, PORT: '0', ...env });
}

export interface Hub {
  config: Config;
  gatewayUrl: string;
  subgraphs: Record<'territory' | 'equipment', RunningService>;
  close(): Promise<void>;
}

export async function startHub(databaseUrl: string, env: Record<string, string> = {}): Promise<Hub> {
  const config = testConfig(databaseUrl, env);
  const territory = await startSubgraph(territoryService, { config, port: 0 });
  const equipment = await startSubgraph(equipmentService, { config, port: 0 });
  const gateway = await startGateway({ config, port: 0, subgraphUrls: { territory: territory.url, equipment: equipment.url } });
  return {
    config,
    gatewayUrl: gateway.url,
    subgraphs: { territory, equipment },
    async close() {
      await gateway.close();
      await Promise.all([territory.close(), equipment.close()]);
    },
  };
}

export function tokenFor(config: Config, roles: Role[], collectivities: string[], expiresIn = '1h'): Promise<string> {
  return signDevelopmentToken({ sub: `test-${roles.join('-')}`, roles, collectivities, expiresIn }, config);
}

export interface GraphQLResponse<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string; field?: string } & Record<string, unknown> }[];
}

export async function gql<T = any>(
  url: string,
  query: string,
  options: { variables?: Record<string, unknown>; token?: string; headers?: Record<string, string> } = {},
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    body: JSON.stringify({ query, variables: options.variables }),
  });
  const body = (await response.json()) as Omit<GraphQLResponse<T>, 'status'>;
  return { status: response.status, ...body };
}
