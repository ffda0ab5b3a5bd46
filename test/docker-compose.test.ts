import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { ROOT } from './harness.js';

const compose = (env: Record<string, string>) =>
  execFileSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config', '-q'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    stdio: 'pipe',
  });

it('docker-compose.yml is a valid description of the hub (docker-compose config -q)', () => {
  assert.doesNotThrow(() => compose({ JWT_SECRET: 'a-compose-test-secret-of-at-least-32-chars' }));
});

it('docker-compose refuses to start without a JWT secret (services run in production mode)', () => {
  assert.throws(() => compose({}), /JWT_SECRET/);
});

it('docker-compose runs every service of the hub, with subgraph URLs for the gateway', () => {
  const text = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
  for (const service of ['postgis', 'mosquitto', 'setup', 'territory', 'equipment', 'gateway', 'simulator']) {
    assert.match(text, new RegExp(`^  ${service}:`, 'm'), `${service} is described`);
  }
  assert.match(text, /SUBGRAPH_TERRITORY_URL: http:\/\/territory:4001\/graphql/);
  assert.match(text, /SUBGRAPH_EQUIPMENT_URL: http:\/\/equipment:4002\/graphql/);
});
