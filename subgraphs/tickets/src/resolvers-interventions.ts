import type { Resolvers } from './generated/graphql.js';

/** Thin: who sees and changes what, validation and batching live in InterventionService (`ctx.interventions`). */
export const interventionResolvers: Resolvers = {
  Query: {
    intervention: (_, { id }, ctx) => ctx.interventions.intervention(id),
    interventions: (_, args, ctx) => ctx.interventions.interventions(args),
  },
  Mutation: {
    createIntervention: (_, { input }, ctx) => ctx.interventions.create(input),
    updateIntervention: (_, { input }, ctx) => ctx.interventions.update(input),
  },
  Equipment: {
    interventions: (equipment, args, ctx) => ctx.interventions.ofEquipment(equipment.id, args),
  },
  Ticket: {
    interventions: (ticket, _, ctx) => ctx.interventions.ofTicket(ticket.id),
  },
  Intervention: {
    __resolveReference: ({ id }, ctx) => ctx.interventions.intervention(id),
    collectivity: (row) => ({ id: row.collectivityId }),
    ticket: (row, _, ctx) => (row.ticketId === null ? null : ctx.tickets.byId.load(row.ticketId)),
    equipment: (row) => (row.equipmentId === null ? null : { id: row.equipmentId }),
    location: (row) => (row.lon === null || row.lat === null ? null : { type: 'Point', coordinates: [row.lon, row.lat] }),
    assignee: (row) => row.assigneeSub,
    history: (row, _, ctx) => ctx.interventions.historyOf(row),
  },
};
