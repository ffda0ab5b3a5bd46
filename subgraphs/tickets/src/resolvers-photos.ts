import type { Resolvers } from './generated/graphql.js';

/** Ticket.photos and TicketPhoto: thin, the rules are PhotoService's. */
export const photoResolvers: Resolvers = {
  Ticket: {
    photos: (ticket, _args, context) => context.photos.ofTicket(ticket),
  },
  TicketPhoto: {
    id: (photo) => photo.id,
    contentType: (photo) => photo.contentType,
    width: (photo) => photo.width,
    height: (photo) => photo.height,
    url: (photo, _args, context) => context.photos.url(photo),
  },
};
