/** The hub's configuration as tests run it, and development tokens signed for it. */
import { signDevelopmentToken, type Role } from '@connecte/shared/auth';
import { loadConfig, type Config } from '@connecte/shared/config';

export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  // Tests call the hub many times from 127.0.0.1: rate limits only where a test sets them.
  const unlimited = { RATE_LIMIT_PER_ADDRESS: '0', RATE_LIMIT_PER_TOKEN: '0', TICKETS_REPORTS_PER_HOUR: '0', OPENDATA_RATE_PER_SECOND: '0', OPENDATA_VERSION_REUSE_MS: '0' };
  return loadConfig({ ...process.env, NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: databaseUrl, PORT: '0', ...unlimited, ...env });
}

export function tokenFor(config: Config, roles: Role[], collectivities: string[], expiresIn = '1h'): Promise<string> {
  return signDevelopmentToken({ sub: `test-${roles.join('-')}-${collectivities.join('-')}`, roles, collectivities, expiresIn }, config);
}
