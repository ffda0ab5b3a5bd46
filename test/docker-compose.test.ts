import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { ROOT } from '@connecte/testkit';

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

it('docker-compose publishes PostgreSQL and Mosquitto on the host’s loopback only, unless told otherwise', () => {
  const text = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
  assert.match(text, /- "127\.0\.0\.1:\$\{POSTGRES_HOST_PORT:-5432\}:5432"/);
  assert.match(text, /- "\$\{MQTT_HOST_BIND:-127\.0\.0\.1\}:\$\{MQTT_HOST_PORT:-1883\}:1883"/);
  const resolved = execFileSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', JWT_SECRET: 'a-compose-test-secret-of-at-least-32-chars', POSTGRES_HOST_PORT: '15432' },
    encoding: 'utf8',
  });
  assert.match(resolved, /127\.0\.0\.1:15432:5432|host_ip: 127\.0\.0\.1[\s\S]*published: "?15432/);
});
