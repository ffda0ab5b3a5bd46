/** The territory subgraph on an ephemeral port over a database of its own, and GraphQL to it. */
import { startSubgraph } from '@connecte/shared/server';
import { createTestDatabase } from '../../../test/harness.js';
import { testConfig } from '../../../test/graphql.js';
import { territoryService } from '../src/index.js';
import { territoryServiceFor, type TerritoryService } from '../src/territory-service.js';

export interface TerritoryServer {
  url: string;
  /** The service behind the server: its store counts the SQL statements issued. */
  territory: TerritoryService;
  close(): Promise<void>;
}

export async function startTerritoryServer(): Promise<TerritoryServer> {
  const database = await createTestDatabase({ seed: true });
  try {
    const config = testConfig(database.url);
    const running = await startSubgraph(territoryService, { config, port: 0 });
    return {
      url: running.url,
      territory: territoryServiceFor(running.db),
      async close() {
        await running.close();
        await database.drop();
      },
    };
  } catch (error) {
    await database.drop();
    throw error;
  }
}

export interface GraphQLError {
  message: string;
  extensions?: { code?: string; field?: string } & Record<string, unknown>;
}

export async function gql<T = any>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<{ status: number; data?: T; errors?: GraphQLError[] }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, ...((await response.json()) as { data?: T; errors?: GraphQLError[] }) };
}
