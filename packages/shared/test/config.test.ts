import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { ConfigError, DEVELOPMENT_JWT_SECRET, extendConfig, loadConfig } from '@connecte/shared/config';
import { ROOT } from '@connecte/testkit';

describe('configuration', () => {
  it('has working defaults for development', () => {
    const config = loadConfig({});
    assert.equal(config.DATABASE_URL, 'postgresql://postgres:postgres@127.0.0.1:5432/connecte');
    assert.equal(config.MQTT_URL, 'mqtt://127.0.0.1:1883');
    assert.equal(config.JWT_SECRET, DEVELOPMENT_JWT_SECRET);
    assert.equal(config.PORT, undefined);
  });

  it('names every bad variable with its reason, all at once', () => {
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x/y', MQTT_URL: 'nope', LOG_LEVEL: 'loud', JWT_SECRET: 'short' });
      assert.fail('should throw');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      const text = error.message;
      for (const name of ['PORT', 'DATABASE_URL', 'MQTT_URL', 'LOG_LEVEL', 'JWT_SECRET']) assert.match(text, new RegExp(`${name}: `));
      assert.match(text, /JWT_SECRET: must be at least 32 characters/);
      assert.equal(error.problems.length, 5);
    }
  });

  it('refuses bad limits, origins and proxies at start-up, naming each variable', () => {
    try {
      loadConfig({ MAX_QUERY_DEPTH: '0', CORS_ALLOWED_ORIGINS: 'https://ok.example,https://x.example/path', TRUSTED_PROXIES: '10.0.0.0/8,proxy.example', GRAPHQL_INTROSPECTION: 'maybe', DB_STATEMENT_TIMEOUT_MS: '1e3' });
      assert.fail('should throw');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /MAX_QUERY_DEPTH: must be a whole number between 1 and 1000/);
      assert.match(error.message, /CORS_ALLOWED_ORIGINS\.1: must be an origin/);
      assert.match(error.message, /TRUSTED_PROXIES\.1: must be IP addresses or CIDR ranges/);
      assert.match(error.message, /GRAPHQL_INTROSPECTION: must be true or false/);
      assert.match(error.message, /DB_STATEMENT_TIMEOUT_MS: must be a whole number/);
    }
    assert.throws(() => loadConfig({ PERSISTED_OPERATIONS_ONLY: 'true' }), /PERSISTED_OPERATIONS_FILE: is required when PERSISTED_OPERATIONS_ONLY=true/);
    assert.equal(loadConfig({}).GRAPHQL_INTROSPECTION, true);
    assert.equal(loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) }).GRAPHQL_INTROSPECTION, false);
  });

  it('requires a JWT secret in production, and no development secret is ever used there', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'production' }), /JWT_SECRET: is required when NODE_ENV=production/);
    const config = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) });
    assert.equal(config.JWT_SECRET, 'x'.repeat(40));
  });

  it('a service extends the base with its own variables, validated with the base in one pass', () => {
    const ingest = extendConfig({
      INGEST_BATCH_SIZE: z.string().regex(/^[1-9]\d*$/, 'must be a positive whole number').transform(Number).default(100),
      INGEST_TOPIC: z.string().min(1, 'must not be empty').default('connecte/+/+/up'),
    });
    const config = loadConfig({ INGEST_BATCH_SIZE: '250', LOG_LEVEL: 'warn' }, ingest);
    assert.equal(config.INGEST_BATCH_SIZE, 250);
    assert.equal(config.INGEST_TOPIC, 'connecte/+/+/up');
    assert.equal(config.LOG_LEVEL, 'warn');
    assert.equal(config.JWT_SECRET, DEVELOPMENT_JWT_SECRET);
    try {
      loadConfig({ INGEST_BATCH_SIZE: 'lots', PORT: 'eighty', NODE_ENV: 'production' }, ingest);
      assert.fail('should throw');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.problems.toSorted(), [
        'INGEST_BATCH_SIZE: must be a positive whole number',
        'JWT_SECRET: is required when NODE_ENV=production (or set JWT_JWKS_URL)',
        'PORT: must be a whole number between 0 and 65535',
      ]);
    }
    // The base alone ignores a service's variables.
    assert.equal('INGEST_BATCH_SIZE' in loadConfig({ INGEST_BATCH_SIZE: 'lots' }), false);
    assert.throws(() => extendConfig({ PORT: z.string() }), /extendConfig: PORT is a base variable/);
  });

  it('a service started with a bad variable exits 1 with a message naming it, not a stack trace', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'subgraphs', 'equipment', 'src', 'main.ts')], {
      cwd: ROOT,
      env: { ...process.env, PORT: '70000', LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /PORT: must be a whole number between 0 and 65535/);
    assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/);
  });
});
