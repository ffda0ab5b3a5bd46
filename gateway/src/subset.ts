import { composeSupergraph, CompositionError } from './compose.js';
import type { SubgraphDefinition } from './subgraphs.js';

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
