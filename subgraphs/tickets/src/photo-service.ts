/**
 * Photos as GraphQL reads them, per request: `Ticket.photos` through one DataLoader (the photos
 * of every ticket of a response in one query), shown only to whoever sees the ticket's private
 * part (privacy.ts: the reporter, the responsible collectivity's staff). Listing a ticket's photos
 * gives their URLs, not their pixels: the download (photo-routes.ts) is where a staff read of a
 * photo is audited.
 */
import DataLoader from 'dataloader';
import type { TicketsContext } from './context.js';
import { photosOfTickets, type PhotoRow } from './photo-store.js';
import { photoUrl } from './photo-routes.js';
import { seesPrivate } from './privacy.js';
import type { TicketRow } from './types.js';

export class PhotoService {
  /** A ticket's photos (without their bytes), oldest first, by ticket id. */
  readonly byTicket: DataLoader<string, PhotoRow[]>;

  constructor(readonly context: TicketsContext) {
    this.byTicket = new DataLoader((ticketIds) => photosOfTickets(context.resources.db.pool, ticketIds));
  }

  /** `Ticket.photos`: empty for a caller who does not see the ticket's private part. */
  async ofTicket(ticket: Pick<TicketRow, 'id' | 'reporterSub' | 'collectivityId'>): Promise<PhotoRow[]> {
    if (!seesPrivate(this.context.viewer, ticket)) return [];
    return this.byTicket.load(ticket.id);
  }

  /** `TicketPhoto.url`: under PUBLIC_BASE_URL, the gateway's `/tickets/photos/<id>`. */
  url(photo: Pick<PhotoRow, 'id'>): string {
    return photoUrl(this.context.resources, photo);
  }
}
