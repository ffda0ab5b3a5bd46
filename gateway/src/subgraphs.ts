import { fromRoot, SUBGRAPHS as REGISTRY, registeredSubgraph, subgraphUrlVariable } from '@connecte/shared/registry';

export { subgraphUrlVariable };

/** What composition needs of a registered subgraph (packages/shared/src/registry.ts). */
export interface SubgraphDefinition {
  /** Federation name of the subgraph, lower-case; `SUBGRAPH_<NAME>_URL` overrides its URL. */
  name: string;
  defaultPort: number;
  /** Absolute path of the subgraph's SDL, the source of the committed supergraph. */
  schemaPath: string;
}

/** The subgraphs the gateway composes: the registry's, in its order. */
export const SUBGRAPHS: readonly SubgraphDefinition[] = REGISTRY.map(({ name, defaultPort, schema }) => ({
  name,
  defaultPort,
  schemaPath: fromRoot(schema),
}));

/** Where the gateway reaches a subgraph: `SUBGRAPH_<NAME>_URL` when set, else its default local port. */
export function subgraphUrl(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const override = env[subgraphUrlVariable(name)];
  if (override) return override;
  return `http://127.0.0.1:${registeredSubgraph(name).defaultPort}/graphql`;
}

/** Every subgraph's URL, each from the environment or its default, overridden by `overrides` (tests). */
export function subgraphUrls(
  overrides: Record<string, string> = {},
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  return Object.fromEntries(SUBGRAPHS.map(({ name }) => [name, overrides[name] ?? subgraphUrl(name, env)]));
}

/** The HTTP routes subgraphs serve themselves, by prefix, which the gateway forwards to them. */
export function subgraphRoutes(): { prefix: string; subgraph: string }[] {
  return REGISTRY.flatMap(({ name, routes }) => routes.map((prefix) => ({ prefix, subgraph: name })));
}
