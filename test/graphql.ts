/** Talking to the hub in tests: configuration, development tokens, GraphQL over HTTP. */
import { signDevelopmentToken, type Role } from '@connecte/shared/auth';
import { loadConfig, type Config } from '@connecte/shared/config';

export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  // Tests call the hub many times from 127.0.0.1: rate limits only where a test sets them.
  const unlimited = { RATE_LIMIT_PER_ADDRESS: '0', RATE_LIMIT_PER_TOKEN: '0' };
  return loadConfig({ ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: databaseUrl, PORT: '0', ...unlimited, ...env });
}

export function tokenFor(config: Config, roles: Role[], collectivities: string[], expiresIn = '1h'): Promise<string> {
  return signDevelopmentToken({ sub: `test-${roles.join('-')}-${collectivities.join('-')}`, roles, collectivities, expiresIn }, config);
}

export interface GraphQLResponse<T = any> {
  status: number;
  data?: T;
  errors?: { message: string; path?: (string | number)[]; extensions?: { code?: string; field?: string } & Record<string, unknown> }[];
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
