/**
 * The registry of subgraphs (packages/shared/src/registry.ts) is the one declaration every place
 * follows: what reads it is right by construction; what cannot (docker-compose.yml, the
 * Dockerfile, the subgraphs' folders and services) is checked against it here, and bad
 * registries and bad schemas are refused with a message naming the entry and the reason.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defineRegistry, fromRoot, GATEWAY, RegistryError, SUBGRAPHS, subgraphUrlVariable, type SubgraphEntry } from '@connecte/shared/registry';
import gql from 'graphql-tag';
import { startSubgraph, StartupError, type RunningService } from '@connecte/shared/server';
import { CompositionError, composeSupergraph } from '../gateway/src/compose.js';
import { SUBGRAPHS as COMPOSED } from '../gateway/src/subgraphs.js';
import { createTestDatabase, ROOT, type TestDatabase, loadSubgraphService, startSubgraphs, testConfig } from '@connecte/testkit';

const entry = (name: string, defaultPort: number): SubgraphEntry => ({
  name,
  defaultPort,
  schema: `subgraphs/${name}/src/schema.graphql`,
  entry: `subgraphs/${name}/src/main.ts`,
  package: `@connecte/subgraph-${name}`,
  workers: ['event-bus'],
  routes: [],
});

describe('a registry entry', () => {
  it('with a duplicate name is refused, naming both entries', () => {
    assert.throws(
      () => defineRegistry([entry('territory', 4001), entry('territory', 4009)]),
      (error: unknown) => error instanceof RegistryError && /entry 2 \("territory"\): name "territory" is already used by entry 1/.test(error.message),
    );
  });

  it('with a duplicate port is refused, naming the holder (another subgraph or the gateway)', () => {
    assert.throws(() => defineRegistry([entry('territory', 4001), entry('tickets', 4001)]), /entry 2 \("tickets"\): defaultPort 4001 is already used by "territory"/);
    assert.throws(() => defineRegistry([entry('tickets', GATEWAY.defaultPort)]), /defaultPort 4000 is already used by the gateway/);
  });

  it('with a route another subgraph (or every service) already serves, or a route that is not a path, is refused', () => {
    const tickets = { ...entry('tickets', 4004), routes: ['/open311/v2'] };
    assert.throws(() => defineRegistry([tickets, { ...entry('control', 4006), routes: ['/open311/v2'] }]), /entry 2 \("control"\): route "\/open311\/v2" is already served by "tickets"/);
    assert.throws(() => defineRegistry([{ ...tickets, routes: ['/readyz'] }]), /route "\/readyz" is already served by every service/);
    assert.throws(() => defineRegistry([{ ...tickets, routes: ['open311/'] }]), /route "open311\/" must be a path such as \/open311\/v2/);
  });

  it('with a bad name, port or twice the same worker is refused, every problem at once', () => {
    try {
      defineRegistry([entry('Bad-Name', 70000), { ...entry('ok', 4010), workers: ['mqtt', 'mqtt'] }]);
      assert.fail('should throw');
    } catch (error) {
      assert.ok(error instanceof RegistryError);
      assert.equal(error.problems.length, 3);
      assert.match(error.message, /name must be lower-case letters and digits/);
      assert.match(error.message, /defaultPort 70000 must be a whole number between 1 and 65535/);
      assert.match(error.message, /worker "mqtt" is declared twice/);
    }
  });
});

describe('a subgraph’s own HTTP routes', () => {
  it('a service serving a reserved path or a malformed prefix is refused at start, naming the route', async () => {
    const service = (prefix: string) => ({ name: 'tickets', typeDefs: gql`type Query { ping: String }`, resolvers: {}, routes: { [prefix]: () => {} } });
    const config = testConfig('postgresql://127.0.0.1:5432/not_used_before_the_check');
    await assert.rejects(startSubgraph(service('/metrics'), { config }), (error: unknown) => error instanceof StartupError && /tickets cannot start: route "\/metrics"/.test(error.message));
    await assert.rejects(startSubgraph(service('open311'), { config }), /route "open311" must be a path/);
  });
});

describe('a subgraph whose schema fails composition', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'connecte-registry-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const withSchema = (name: string, sdl: string) => {
    const schemaPath = path.join(dir, `${name}.graphql`);
    writeFileSync(schemaPath, sdl);
    return [...COMPOSED, { name, defaultPort: 4099, schemaPath }];
  };

  it('that conflicts with another subgraph is refused, naming the subgraphs and the field', () => {
    // `Collectivity` is territory's entity; redefining a field with another type cannot compose.
    const subgraphs = withSchema('weather', 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])\ntype Collectivity @key(fields: "id") { id: ID! name: Int }\ntype Query { weather: String }\n');
    assert.throws(
      () => composeSupergraph(subgraphs),
      (error: unknown) => error instanceof CompositionError && /Collectivity\.name/.test(error.message) && /weather/.test(error.message),
    );
  });

  it('that does not parse is refused, naming the subgraph and its file', () => {
    const subgraphs = withSchema('broken', 'type Query { nope(: String }');
    assert.throws(() => composeSupergraph(subgraphs), (error: unknown) => error instanceof CompositionError && /broken \(.*broken\.graphql\): Syntax Error/.test(error.message));
  });
});

describe('the registered subgraphs', () => {
  it('are exactly the folders of subgraphs/, each with its schema, entry point and package', () => {
    const folders = readdirSync(path.join(ROOT, 'subgraphs'), { withFileTypes: true })
      .filter((item) => item.isDirectory() && existsSync(path.join(ROOT, 'subgraphs', item.name, 'package.json')))
      .map((item) => item.name)
      .sort();
    assert.deepEqual(SUBGRAPHS.map((s) => s.name).sort(), folders, 'a folder under subgraphs/ needs one registry entry, and an entry its folder');
    for (const subgraph of SUBGRAPHS) {
      assert.ok(existsSync(fromRoot(subgraph.schema)), `${subgraph.name}: ${subgraph.schema} exists`);
      assert.ok(existsSync(fromRoot(subgraph.entry)), `${subgraph.name}: ${subgraph.entry} exists`);
      const manifest = JSON.parse(readFileSync(path.join(ROOT, 'subgraphs', subgraph.name, 'package.json'), 'utf8')) as { name: string };
      assert.equal(manifest.name, subgraph.package, `${subgraph.name}: package name`);
    }
  });

  it('entry points take their default port from the registry, never a number of their own', () => {
    for (const subgraph of SUBGRAPHS) {
      const source = readFileSync(fromRoot(subgraph.entry), 'utf8');
      assert.match(source, /runSubgraph\(\w+\)/, `${subgraph.entry} runs its service with the registry's port`);
      assert.doesNotMatch(source, /\b\d{4}\b/, `${subgraph.entry} writes no port`);
    }
  });

  describe('running', () => {
    let db: TestDatabase;
    let running: Record<string, RunningService>;
    before(async () => {
      db = await createTestDatabase({ seed: false });
      running = await startSubgraphs(testConfig(db.url));
    });
    after(async () => {
      await Promise.all(Object.values(running ?? {}).map((service) => service.close()));
      await db?.drop();
    });

    it('each package exports its service under the registry name, serving exactly the routes its entry declares', async () => {
      for (const subgraph of SUBGRAPHS) {
        const service = await loadSubgraphService(subgraph);
        assert.equal(service.name, subgraph.name);
        assert.deepEqual(Object.keys(service.routes ?? {}), [...subgraph.routes], `${subgraph.name}: routes`);
      }
    });

    it('each reports on /readyz exactly the workers its registry entry declares', async () => {
      for (const subgraph of SUBGRAPHS) {
        const response = await fetch(running[subgraph.name].url.replace(/\/graphql$/, '/readyz'));
        const body = (await response.json()) as { status: string; checks: Record<string, string> };
        assert.equal(response.status, 200, `${subgraph.name}: ${JSON.stringify(body)}`);
        assert.deepEqual(Object.keys(body.checks), ['database', ...subgraph.workers], subgraph.name);
      }
    });
  });
});

// --- docker-compose.yml and the Dockerfile, which are not code and cannot read the registry ---

type Yaml = string | Yaml[] | { [key: string]: Yaml };

/**
 * Reads what `docker-compose config` prints: its normal form is block YAML only (two-space
 * mappings, `- ` sequences, plain or quoted scalars), anchors and merges already resolved.
 */
function readNormalisedYaml(text: string): Yaml {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  let index = 0;
  const indentOf = (line: string) => line.length - line.trimStart().length;
  const scalar = (raw: string): string => {
    const value = raw.trim();
    if (value.startsWith("'")) return value.slice(1, -1).replaceAll("''", "'");
    if (value.startsWith('"')) return JSON.parse(value) as string;
    return value;
  };
  const block = (indent: number): Yaml => {
    const first = lines[index];
    // docker-compose writes a sequence at its parent key's indentation.
    if (first.trimStart().startsWith('- ')) {
      const items: Yaml[] = [];
      while (index < lines.length && indentOf(lines[index]) === indent && lines[index].trimStart().startsWith('- ')) {
        const item = lines[index].trimStart().slice(2);
        if (/^[\w.-]+:( |$)/.test(item)) {
          // A mapping inside a sequence: re-read it as a block indented past the dash.
          lines[index] = `${' '.repeat(indent + 2)}${item}`;
          items.push(block(indent + 2));
        } else {
          items.push(scalar(item));
          index++;
        }
      }
      return items;
    }
    const map: Record<string, Yaml> = {};
    while (index < lines.length && indentOf(lines[index]) === indent && !lines[index].trimStart().startsWith('- ')) {
      const line = lines[index].trim();
      const colon = line.match(/^("[^"]*"|'[^']*'|[^:]+):( |$)/);
      assert.ok(colon, `unexpected line in docker-compose config: ${line}`);
      const key = scalar(colon[1]);
      const rest = line.slice(colon[0].length);
      index++;
      if (rest.trim() !== '') map[key] = scalar(rest);
      else if (index < lines.length && (indentOf(lines[index]) > indent || (indentOf(lines[index]) === indent && lines[index].trimStart().startsWith('- ')))) {
        map[key] = block(indentOf(lines[index]));
      } else map[key] = '';
    }
    return map;
  };
  return block(0);
}

const asMap = (value: Yaml | undefined) => (value && typeof value === 'object' && !Array.isArray(value) ? value : {});
const asWords = (value: Yaml | undefined): string[] => (Array.isArray(value) ? value.map(String) : typeof value === 'string' ? value.split(/\s+/).filter(Boolean) : []);

/** `subgraphs/x/src/main.ts` run by tsx, or its compiled `dist/.../main.js` (with or without `src/`) run by node. */
function runsEntryPoint(command: string[], entryPoint: string): boolean {
  const shape = (file: string) => file.replace(/(^|\/)(dist|src)\//g, '$1').replace(/\.(ts|js)$/, '');
  return command.some((word) => {
    if (word === entryPoint || word.endsWith(`/${entryPoint}`)) return command.some((w) => /(^|\/)tsx$/.test(w));
    return /(^|\/)dist\/.*\.js$/.test(word) && shape(word).endsWith(shape(entryPoint));
  });
}

describe('docker-compose.yml and the Dockerfile agree with the registry', () => {
  let services: Record<string, Yaml>;
  before(() => {
    const text = execFileSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', JWT_SECRET: 'a-compose-test-secret-of-at-least-32-chars' },
      encoding: 'utf8',
    });
    services = asMap(asMap(readNormalisedYaml(text)).services);
  });

  it('each subgraph has a service of its name on its port, running its entry point', () => {
    for (const subgraph of SUBGRAPHS) {
      const service = asMap(services[subgraph.name]);
      assert.ok(services[subgraph.name], `docker-compose.yml has a "${subgraph.name}" service`);
      assert.equal(asMap(service.environment).PORT, String(subgraph.defaultPort), `${subgraph.name}: PORT`);
      const command = asWords(service.command);
      assert.ok(runsEntryPoint(command, subgraph.entry), `${subgraph.name}: command "${command.join(' ')}" runs ${subgraph.entry} (tsx) or its compiled dist/…js`);
      const healthcheck = asWords(asMap(service.healthcheck).test).join(' ');
      if (healthcheck) assert.match(healthcheck, new RegExp(`:${subgraph.defaultPort}/`), `${subgraph.name}: healthcheck probes its port`);
    }
  });

  it('the gateway service runs the gateway on its port, finds every subgraph by SUBGRAPH_<NAME>_URL and waits for it', () => {
    const gateway = asMap(services[GATEWAY.name]);
    const environment = asMap(gateway.environment);
    assert.equal(environment.PORT, String(GATEWAY.defaultPort));
    assert.ok(runsEntryPoint(asWords(gateway.command), GATEWAY.entry), `gateway command runs ${GATEWAY.entry}`);
    const dependsOn = Object.keys(asMap(gateway.depends_on));
    for (const subgraph of SUBGRAPHS) {
      assert.equal(environment[subgraphUrlVariable(subgraph.name)], `http://${subgraph.name}:${subgraph.defaultPort}/graphql`, subgraphUrlVariable(subgraph.name));
      assert.ok(dependsOn.includes(subgraph.name), `gateway depends on ${subgraph.name}`);
    }
    const unknown = Object.keys(environment).filter((key) => /^SUBGRAPH_\w+_URL$/.test(key) && !SUBGRAPHS.some((s) => subgraphUrlVariable(s.name) === key));
    assert.deepEqual(unknown, [], 'no URL for a subgraph the registry does not have');
  });

  it('the Dockerfile installs every registered subgraph’s workspace, and no other', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const copied = [...dockerfile.matchAll(/^COPY\s+subgraphs\/([\w-]+)\/package\.json\b/gm)].map((match) => match[1]).sort();
    // Copying the whole folder before installing covers every subgraph at once.
    if (/^COPY\s+(\.\s|subgraphs\/?\s)/m.test(dockerfile.split(/^RUN\s+npm\s+(ci|install)\b/m)[0]) && copied.length === 0) return;
    assert.deepEqual(copied, SUBGRAPHS.map((s) => s.name).sort());
  });

  it('the reader of docker-compose config and the entry-point matcher are sound', () => {
    assert.deepEqual(readNormalisedYaml("a:\n  b: '1'\n  c:\n  - x\n  - 'y z'\n  d:\n  - e: f\n    g: h\n"), { a: { b: '1', c: ['x', 'y z'], d: [{ e: 'f', g: 'h' }] } });
    assert.ok(runsEntryPoint(['npx', 'tsx', 'subgraphs/territory/src/main.ts'], 'subgraphs/territory/src/main.ts'));
    assert.ok(runsEntryPoint(['node', 'dist/subgraphs/territory/src/main.js'], 'subgraphs/territory/src/main.ts'));
    assert.ok(runsEntryPoint(['node', 'subgraphs/territory/dist/main.js'], 'subgraphs/territory/src/main.ts'));
    assert.ok(!runsEntryPoint(['node', 'dist/subgraphs/equipment/src/main.js'], 'subgraphs/territory/src/main.ts'));
    assert.ok(!runsEntryPoint(['node', 'subgraphs/territory/src/main.ts'], 'subgraphs/territory/src/main.ts'), 'a .ts file needs tsx');
  });
});
