import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { SUBGRAPHS, subgraphUrlVariable, type SubgraphDefinition } from './subgraphs.js';

export const SUPERGRAPH_PATH = fileURLToPath(new URL('../supergraph.graphql', import.meta.url));

/**
 * The committed supergraph names no host: each subgraph's URL is this placeholder, replaced when
 * the gateway starts (see `withSubgraphUrls`), so one file serves localhost, docker-compose and tests.
 */
export function urlPlaceholder(name: string): string {
  return `env://${subgraphUrlVariable(name)}`;
}

export class CompositionError extends Error {
  constructor(readonly problems: string[]) {
    super(`Supergraph composition failed:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'CompositionError';
  }
}

/** Composes the subgraphs' SDL files into the supergraph SDL (URLs left as placeholders). */
export function composeSupergraph(subgraphs: readonly SubgraphDefinition[] = SUBGRAPHS): string {
  const problems: string[] = [];
  const services = subgraphs.flatMap(({ name, schemaPath }) => {
    try {
      return [{ name, url: urlPlaceholder(name), typeDefs: parse(readFileSync(schemaPath, 'utf8')) }];
    } catch (error) {
      problems.push(`${name} (${schemaPath}): ${(error as Error).message}`);
      return [];
    }
  });
  if (problems.length > 0) throw new CompositionError(problems);

  const result = composeServices(services);
  if (result.errors) {
    throw new CompositionError(
      result.errors.map((error) => {
        const code = error.extensions?.code ? `[${String(error.extensions.code)}] ` : '';
        return `${code}${error.message}`;
      }),
    );
  }
  return `${result.supergraphSdl.trimEnd()}\n`;
}

/**
 * The supergraph of some of the registered subgraphs, composed when the gateway starts (the
 * committed one routes to all of them). A subset that does not compose on its own, such as a
 * subgraph whose entities another one resolves, fails the start with the subset named.
 */
export function composeSubset(subgraphs: readonly SubgraphDefinition[]): string {
  try {
    return composeSupergraph(subgraphs);
  } catch (error) {
    if (!(error instanceof CompositionError)) throw error;
    const names = subgraphs.map(({ name }) => name).join(', ');
    throw new CompositionError([`the subgraphs ${names} do not compose on their own: start them with the subgraphs they need`, ...error.problems]);
  }
}

export function readCommittedSupergraph(): string {
  return readFileSync(SUPERGRAPH_PATH, 'utf8');
}

/** Replaces each subgraph's URL placeholder with the URL the gateway must call. */
export function withSubgraphUrls(supergraphSdl: string, urls: Record<string, string>): string {
  let sdl = supergraphSdl;
  for (const [name, url] of Object.entries(urls)) {
    const placeholder = JSON.stringify(urlPlaceholder(name));
    if (!sdl.includes(placeholder)) throw new Error(`The supergraph has no subgraph "${name}": run npm run compose`);
    sdl = sdl.replaceAll(placeholder, JSON.stringify(url));
  }
  return sdl;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  try {
    writeFileSync(SUPERGRAPH_PATH, composeSupergraph());
    console.log(`Wrote ${SUPERGRAPH_PATH} (${SUBGRAPHS.map((s) => s.name).join(', ')})`);
  } catch (error) {
    console.error(error instanceof CompositionError ? error.message : error);
    process.exit(1);
  }
}
