import type { Resolvers } from './generated/graphql.js';

/** Thin: the rules (who may, the broker's part, secrets shown once) live in CredentialService (`ctx.credentials`). */
export const credentialResolvers: Resolvers = {
  Query: {
    ingestKeys: (_, { collectivityId }, ctx) => ctx.credentials.ingestKeys(collectivityId),
  },
  Mutation: {
    issueDeviceCredential: (_, { equipmentId }, ctx) => ctx.credentials.issueDeviceCredential(equipmentId),
    revokeDeviceCredential: (_, { equipmentId }, ctx) => ctx.credentials.revokeDeviceCredential(equipmentId),
    issueIngestKey: (_, { collectivityId, label }, ctx) => ctx.credentials.issueIngestKey(collectivityId, label),
    revokeIngestKey: (_, { id }, ctx) => ctx.credentials.revokeIngestKey(id),
  },
  Equipment: {
    deviceCredential: ({ id }, _, ctx) => ctx.credentials.deviceCredential(id),
  },
  DeviceCredential: {
    // Its MQTT user name is the asset's id.
    username: (row) => row.equipmentId,
  },
  IngestKey: {
    collectivity: (row) => ({ id: row.collectivityId }),
  },
};
