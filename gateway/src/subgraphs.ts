import { fileURLToPath } from 'node:url';

/**
 * The subgraphs the gateway composes, in the order their default ports were given.
 * Planned (not composed yet): telemetry 4003, tickets 4004, mobility 4005, control 4006.
 */
export interface SubgraphDefinition {
  /** Federation name of the subgraph, lower-case; `SUBGRAPH_<NAME>_URL` overrides its URL. */
  name: string;
  defaultPort: number;
  /** Absolute path of the subgraph's SDL, the source of the committed supergraph. */
  schemaPath: string;
}

const schemaOf = (domain: string) =>
  fileURLToPath(new URL(`../../subgraphs/${domain}/src/schema.graphql`, import.meta.url));

export const SUBGRAPHS: readonly SubgraphDefinition[] = [
  { name: 'territory', defaultPort: 4001, schemaPath: schemaOf('territory') },
  { name: 'equipment', defaultPort: 4002, schemaPath: schemaOf('equipment') },
];

export function subgraphUrlVariable(name: string): string {
  return `SUBGRAPH_${name.toUpperCase()}_URL`;
}

/** Where the gateway reaches a subgraph: `SUBGRAPH_<NAME>_URL` when set, else its default local port. */
export function subgraphUrl(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const override = env[subgraphUrlVariable(name)];
  if (override) return override;
  const subgraph = SUBGRAPHS.find((candidate) => candidate.name === name);
  if (!subgraph) throw new Error(`Unknown subgraph "${name}" (known: ${SUBGRAPHS.map((s) => s.name).join(', ')})`);
  return `http://127.0.0.1:${subgraph.defaultPort}/graphql`;
}

/** Every subgraph's URL, each from the environment or its default, overridden by `overrides` (tests). */
export function subgraphUrls(
  overrides: Record<string, string> = {},
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  return Object.fromEntries(SUBGRAPHS.map(({ name }) => [name, overrides[name] ?? subgraphUrl(name, env)]));
}
