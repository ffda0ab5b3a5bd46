import type { Resolvers } from './generated/graphql.js';

/** Thin: who reads which dead letters lives in DeadLetterService (`ctx.deadLetters`). */
export const ingestResolvers: Resolvers = {
  Query: {
    deadLetters: (_, args, ctx) => ctx.deadLetters.deadLetters(args),
  },
  DeadLetter: {
    collectivity: (letter) => (letter.collectivityId ? { id: letter.collectivityId } : null),
  },
};
