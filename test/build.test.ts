/**
 * The compiled build production runs (`npm run build`; the Docker image, docker-compose): every
 * entry point exists compiled, workspace packages resolve to dist/ only under the
 * `connecte-compiled` condition, and a compiled service starts and answers on plain Node.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { GATEWAY, SUBGRAPHS, subgraphUrlVariable } from '@connecte/shared/registry';
import { compiledPath } from '@connecte/shared/runtime';
import { createTestDatabase, freePort, ROOT, type TestDatabase } from '@connecte/testkit';

const COMPILED = '--conditions=connecte-compiled';
let database: TestDatabase;

before(async () => {
  const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(build.status, 0, `npm run build failed:\n${build.stdout}\n${build.stderr}`);
  database = await createTestDatabase({ seed: false });
});
after(() => database?.drop());

it('compiles every entry point the hub and docker-compose run, with the files they read beside them', () => {
  const entries = [...SUBGRAPHS.map((s) => s.entry), GATEWAY.entry, 'scripts/hub.ts', 'scripts/setup.ts', 'scripts/simulator.ts'];
  for (const entry of entries) assert.ok(existsSync(path.join(ROOT, compiledPath(entry))), `${compiledPath(entry)} (from ${entry})`);
  for (const subgraph of SUBGRAPHS) {
    const schema = compiledPath(subgraph.schema.replace(/\.graphql$/, '.ts')).replace(/\.js$/, '.graphql');
    assert.ok(existsSync(path.join(ROOT, schema)), `${schema} is copied beside the compiled ${subgraph.name} subgraph`);
  }
  assert.ok(existsSync(path.join(ROOT, 'dist', 'prisma', 'seed', 'data', 'communes-around-chalons.geojson')), 'the seed data');
});

it('docker-compose runs compiled JavaScript on node, never tsx', () => {
  const text = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
  assert.doesNotMatch(text, /tsx/);
  const commands = [...text.matchAll(/^\s+command: \["node", "([^"]+)"\]$/gm)].map((m) => m[1]);
  assert.ok(commands.length >= SUBGRAPHS.length + 3, `commands: ${commands.join(', ')}`);
  for (const file of commands) assert.ok(existsSync(path.join(ROOT, file)), `${file} is produced by the build`);
  assert.match(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'), /^FROM node:24-/m);
  assert.match(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'), /NODE_OPTIONS=--conditions=connecte-compiled/);
});

it('resolves workspace packages to dist/ under the connecte-compiled condition, and to src/ without it', () => {
  const resolve = (flags: string[]) =>
    spawnSync(process.execPath, [...flags, '--input-type=module', '-e', "console.log(import.meta.resolve('@connecte/shared/config'))"], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    }).stdout.trim();
  assert.match(resolve([COMPILED]), /\/packages\/shared\/dist\/config\.js$/);
  assert.match(resolve([]), /\/packages\/shared\/src\/config\.ts$/);
});

it('a compiled subgraph starts on plain node, answers /healthz and stops cleanly', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const entry = path.join(ROOT, compiledPath(SUBGRAPHS[0].entry));
  const child = spawn(process.execPath, [entry], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: COMPILED, PORT: String(port), DATABASE_URL: database.url, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout.on('data', (chunk) => output.push(String(chunk)));
  child.stderr.on('data', (chunk) => output.push(String(chunk)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      assert.equal(child.exitCode, null, `the compiled ${SUBGRAPHS[0].name} subgraph exited:\n${output.join('')}`);
      assert.ok(Date.now() < deadline, `no /healthz within 30 s:\n${output.join('')}`);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, output.join(''));
});

it('the compiled hub (npm start’s, from dist/) runs every service and the gateway answers /readyz', { timeout: 90_000 }, async () => {
  const seeded = await createTestDatabase({ seed: true });
  const gatewayPort = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: COMPILED, PORT: String(gatewayPort), DATABASE_URL: seeded.url, LOG_LEVEL: 'warn' };
  for (const subgraph of SUBGRAPHS) env[subgraphUrlVariable(subgraph.name)] = `http://127.0.0.1:${await freePort()}/graphql`;
  const child = spawn(process.execPath, [path.join(ROOT, compiledPath('scripts/hub.ts'))], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout.on('data', (chunk) => output.push(String(chunk)));
  child.stderr.on('data', (chunk) => output.push(String(chunk)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 60_000;
    let report: { status?: string } = {};
    for (;;) {
      assert.equal(child.exitCode, null, `the compiled hub exited:\n${output.join('').slice(-3000)}`);
      assert.ok(Date.now() < deadline, `no /readyz 200 within 60 s (${JSON.stringify(report)}):\n${output.join('').slice(-3000)}`);
      const response = await fetch(`http://127.0.0.1:${gatewayPort}/readyz`).catch(() => null);
      if (response?.status === 200) break;
      report = response ? ((await response.json()) as { status?: string }) : {};
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const answer = await fetch(`http://127.0.0.1:${gatewayPort}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ collectivities { id } }' }),
    });
    assert.equal(((await answer.json()) as { data: { collectivities: unknown[] } }).data.collectivities.length, 4);
  } finally {
    child.kill('SIGTERM');
    await exited;
    await seeded.drop();
  }
});
