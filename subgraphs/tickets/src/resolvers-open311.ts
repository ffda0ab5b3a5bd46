// Open311 administration (admins of the collectivity): the rules live in Open311AdminService.
import type { Resolvers } from './generated/graphql.js';

export const open311Resolvers: Resolvers = {
  Query: {
    open311Clients: (_parent, _args, context) => context.open311.clients(),
    open311PublicKeys: (_parent, _args, context) => context.open311.publicKeys(),
  },
  Mutation: {
    issueOpen311Key: (_parent, { name, collectivityId, contactEmail }, context) => context.open311.issue({ name, collectivityId, contactEmail }),
    revokeOpen311Key: (_parent, { id }, context) => context.open311.revoke(id),
    setOpen311PublicKey: (_parent, { collectivityId, enabled }, context) => context.open311.setPublicKey(collectivityId, enabled),
  },
  Open311Client: {
    id: (client) => client.id,
    name: (client) => client.name,
    collectivity: (client) => ({ id: client.collectivityId }),
    keyPrefix: (client) => client.keyPrefix,
    createdAt: (client) => client.createdAt,
    revokedAt: (client) => client.revokedAt,
    lastUsedAt: (client) => client.lastUsedAt,
  },
  Open311PublicKey: {
    collectivity: (key) => ({ id: key.collectivityId }),
    apiKey: (key) => key.apiKey,
    enabled: (key) => key.enabled,
  },
};
