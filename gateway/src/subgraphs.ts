import { fromRoot, SUBGRAPHS as REGISTRY, registeredSubgraph, subgraphUrlVariable, type SubgraphEntry } from '@connecte/shared/registry';
import { subgraphUrl } from '@connecte/shared/peers';

export { subgraphUrlVariable };

/** What composition needs of a registered subgraph (packages/shared/src/registry.ts). */
export interface SubgraphDefinition {
  /** Federation name of the subgraph, lower-case; `SUBGRAPH_<NAME>_URL` overrides its URL. */
  name: string;
  defaultPort: number;
  /** Absolute path of the subgraph's SDL, the source of the committed supergraph. */
  schemaPath: string;
}

export const definitionOf = ({ name, defaultPort, schema }: SubgraphEntry): SubgraphDefinition => ({ name, defaultPort, schemaPath: fromRoot(schema) });

/** The subgraphs the gateway composes: the registry's, in its order. */
export const SUBGRAPHS: readonly SubgraphDefinition[] = REGISTRY.map(definitionOf);

/**
 * The registry entries a gateway serves: those `names` (each registered, none twice, at least
 * one) in the registry's order, so a subset composes the same whatever order it is given in;
 * without `names`, all of them.
 */
export function selectSubgraphs(names?: readonly string[], registry: readonly SubgraphEntry[] = REGISTRY): readonly SubgraphEntry[] {
  if (names === undefined) return registry;
  const known = registry.map((entry) => entry.name).join(', ');
  if (names.length === 0) throw new Error(`The gateway needs at least one subgraph (known: ${known})`);
  const twice = names.find((name, index) => names.indexOf(name) !== index);
  if (twice !== undefined) throw new Error(`Subgraph "${twice}" is named twice in the gateway's subgraphs`);
  for (const name of names) registeredSubgraph(name, registry);
  return registry.filter((entry) => names.includes(entry.name));
}

/** Where the gateway reaches a subgraph: `SUBGRAPH_<NAME>_URL` when set, else its default local port (the shared rule). */
export { subgraphUrl };

/**
 * The URL of each subgraph served (default: every registered one), each from the environment or
 * its default, overridden by `overrides` (tests). An override for a subgraph not served is an
 * error: the gateway would never call it, which is a mistake rather than a wish.
 */
export function subgraphUrls(
  overrides: Record<string, string> = {},
  env: NodeJS.ProcessEnv = process.env,
  served: readonly { name: string }[] = SUBGRAPHS,
): Record<string, string> {
  const names = served.map(({ name }) => name);
  const stray = Object.keys(overrides).filter((name) => !names.includes(name));
  if (stray.length > 0) throw new Error(`Subgraph URLs given for ${stray.map((name) => `"${name}"`).join(', ')}, which the gateway does not serve (serves: ${names.join(', ')})`);
  return Object.fromEntries(names.map((name) => [name, overrides[name] ?? subgraphUrl(name, env)]));
}

/** The HTTP routes the served subgraphs (default: every registered one) serve themselves, by prefix, which the gateway forwards to them. */
export function subgraphRoutes(served: readonly SubgraphEntry[] = REGISTRY): { prefix: string; subgraph: string }[] {
  return served.flatMap(({ name, routes }) => routes.map((prefix) => ({ prefix, subgraph: name })));
}
