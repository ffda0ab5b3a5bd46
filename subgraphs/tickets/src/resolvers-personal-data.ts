import type { Resolvers } from './generated/graphql.js';

/** Thin: who may, what is audited and how erasure is done live in PersonalDataService (`ctx.personalData`) and retention.ts. */
export const personalDataResolvers: Resolvers = {
  Query: {
    myPersonalData: (_, __, ctx) => ctx.personalData.myPersonalData(),
    reporterPersonalData: (_, { reporter, requestReference }, ctx) => ctx.personalData.reporterPersonalData(reporter, requestReference),
  },
  Mutation: {
    eraseMyPersonalData: (_, __, ctx) => ctx.personalData.eraseMyPersonalData(),
    eraseReporterPersonalData: (_, { reporter, requestReference }, ctx) => ctx.personalData.eraseReporterPersonalData(reporter, requestReference),
  },
};
