import { readFileSync } from 'node:fs';
import { gql } from 'graphql-tag';
import type { SubgraphService } from '@connecte/shared/server';
import { createTerritoryContext, type TerritoryContext } from './context.js';
import { resolvers } from './resolvers.js';

/** The SDL stays a plain file: the gateway composes the supergraph from it, codegen types the resolvers from it. */
export const typeDefs = gql(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/** Collectivities, communes, districts, streets and service competences. Public data: no role is required. */
export const territorySubgraph: SubgraphService<TerritoryContext> = {
  name: 'territory',
  typeDefs,
  resolvers,
  extendContext: createTerritoryContext,
};
