import { readFileSync } from 'node:fs';
import { gql } from 'graphql-tag';
import type { SubgraphService } from '@connecte/shared/server';
import { createLoaders } from './loaders.js';
import { resolvers, type TerritoryContext } from './resolvers.js';
import { territoryServiceFor } from './territory-service.js';

export { decideCompetence, territoryServiceFor, type CompetenceDecision, type CompetenceQuestion } from './territory-service.js';
export type { TerritoryContext } from './resolvers.js';

/** The SDL stays a plain file: the gateway composes the supergraph from it. */
export const typeDefs = gql(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/** Collectivities, communes, districts, streets and service competences. Public data: no role is required. */
export const territoryService: SubgraphService<TerritoryContext> = {
  name: 'territory',
  typeDefs,
  resolvers,
  extendContext: (base) => {
    const territory = territoryServiceFor(base.db);
    return { ...base, territory, loaders: createLoaders(territory.store) };
  },
};
