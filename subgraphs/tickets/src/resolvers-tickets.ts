import type { Resolvers } from './generated/graphql.js';
import { coarsePoint } from './privacy.js';
import { pointOf, serviceLevelOf } from './ticket-service.js';

/** Thin: the rules (privacy, audit, who moves what, batching) live in TicketService (`ctx.tickets`). */
export const ticketResolvers: Resolvers = {
  Query: {
    ticketCategories: (_, __, ctx) => ctx.tickets.allCategories(),
    ticket: (_, { id }, ctx) => ctx.tickets.ticket(id),
    tickets: (_, args, ctx) => ctx.tickets.tickets(args),
    myTickets: (_, args, ctx) => ctx.tickets.myTickets(args),
  },
  Mutation: {
    reportProblem: (_, args, ctx) => ctx.tickets.report(args),
    transitionTicket: (_, args, ctx) => ctx.tickets.transition(args),
    addTicketNote: (_, { ticketId, note }, ctx) => ctx.tickets.note(ticketId, note),
  },
  Subscription: {
    ticketChanged: {
      subscribe: (_, args, ctx) => ctx.tickets.ticketChanged(args),
    },
    myTicketChanged: {
      subscribe: (_, args, ctx) => ctx.tickets.myTicketChanged(args),
    },
  },
  Equipment: {
    tickets: (equipment, args, ctx) => ctx.tickets.equipmentTickets(equipment.id, args),
  },
  Ticket: {
    __resolveReference: ({ id }, ctx) => ctx.tickets.ticket(id),
    category: (ticket, _, ctx) => ctx.tickets.category(ticket.categoryCode),
    collectivity: (ticket) => ({ id: ticket.collectivityId }),
    coarseLocation: (ticket) => pointOf(...coarsePoint(ticket.lon, ticket.lat)),
    location: (ticket, _, ctx) => (ctx.tickets.seesPrivate(ticket) ? pointOf(ticket.lon, ticket.lat) : null),
    address: (ticket, _, ctx) => (ctx.tickets.seesPrivate(ticket) ? ticket.address : null),
    description: (ticket, _, ctx) => (ctx.tickets.seesPrivate(ticket) ? ticket.description : null),
    reporter: (ticket, _, ctx, info) => ctx.tickets.reporterOf(ticket, info),
    equipment: (ticket, _, ctx) => (ticket.equipmentId !== null && ctx.tickets.seesPrivate(ticket) ? { id: ticket.equipmentId } : null),
    alreadyKnown: (ticket) => ticket.knownAlarmId !== null,
    duplicateOf: (ticket, _, ctx) => (ticket.duplicateOf ? ctx.tickets.byId.load(ticket.duplicateOf) : null),
    duplicateCount: (ticket, _, ctx) => ctx.tickets.duplicateCountOf(ticket),
    serviceLevel: (ticket) => serviceLevelOf(ticket),
    history: (ticket, _, ctx) => ctx.tickets.historyOf(ticket),
  },
  TicketCategory: {
    __resolveReference: ({ code }, ctx) => ctx.tickets.categoryReference(code),
    competence: (category, _, ctx) => ctx.tickets.competenceOf(category),
    group: (category) => category.groupLabel,
    acknowledgeWithinHours: (category) => category.ackHours,
    resolveWithinHours: (category) => category.resolveHours,
  },
};
