// PLACEHOLDER (replaced by the area's helper).
import type { Resolvers } from './generated/graphql.js';

export const parkingResolvers: Resolvers = {};
