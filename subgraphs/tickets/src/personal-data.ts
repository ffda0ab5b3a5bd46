/**
 * Reporters' rights over their personal data (GDPR art. 15 and 17; docs/tickets.md "Personal
 * data"), one instance per request (it holds the caller):
 *
 * - `myPersonalData` / `eraseMyPersonalData`: the authenticated reporter, for every ticket his
 *   account reported (and his uploads no report took).
 * - `reporterPersonalData` / `eraseReporterPersonalData`: an operator or admin acting on a
 *   written request (its reference is required and kept), for the tickets of his collectivities
 *   only, the reporter chosen by account id, e-mail or phone. A reporter whose reports all belong
 *   to other collectivities is someone else's: FORBIDDEN (without saying which collectivity, so
 *   that the operator redirects the person to the right controller). A reporter with no report
 *   left at all gets an empty export, and an erasure of 0: erasing twice is not an error. Nor is
 *   repeating an erasure on the same written request (its reference) once the tickets of the
 *   caller's collectivities are erased, when the reporter still has reports elsewhere: 0 too.
 *   The hub keeps nothing that links an erased reporter to his tickets; the reference is what
 *   tells the retry of a request from a new one.
 *
 * Every staff export is audited (`personal_data_access_log`, channel `export`, with the request's
 * reference) before anything is returned. A reporter's export of his own data is not written to
 * the access log, which would keep his account id after he has his data erased; the service log
 * has a line without personal data. Erasures go through `eraseReporterData` (retention.ts), the
 * one erasure write path, in one transaction each.
 */
import { actsIn, isPublic, type Role } from '@connecte/shared/auth';
import { badInput, forbidden, unauthenticated } from '@connecte/shared/errors';
import type pg from 'pg';
import type { TicketsContext } from './context.js';
import type { ReporterSelector } from './generated/graphql.js';
import { recordPersonalDataAccess } from './privacy.js';
import { ERASURE_NOTES, eraseReporterData } from './retention.js';
import { freeTextProblem } from './ticket-lifecycle.js';
import { SYSTEM_ACTOR, TICKET_COLUMNS, type TicketRow } from './types.js';

/** Who exercises a reporter's rights on a written request. */
const RIGHTS_ROLES: Role[] = ['operator', 'admin'];
/** What an export reads of each ticket, as the access log names it. */
const EXPORTED_FIELDS = ['reporter.accountId', 'reporter.name', 'reporter.email', 'reporter.phone', 'description', 'location', 'photos'];
const MAX_REFERENCE = 200;
const MAX_ACCOUNT_ID = 200;
const EMAIL = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/;
const PHONE = /^\+?[0-9 .-]{6,20}$/;

/** `PersonalDataAccess`: one row of the access log. */
export interface PersonalDataAccessValue {
  at: Date;
  actor: string;
  ticketId: string;
  fields: string[];
  channel: string;
}

/** `PersonalDataExport`. */
export interface PersonalDataExportValue {
  accountId: string | null;
  exportedAt: Date;
  tickets: TicketRow[];
  accessLog: PersonalDataAccessValue[];
}

/** `ErasureResult`. */
export interface ErasureResultValue {
  ticketsAnonymised: number;
  photosDeleted: number;
}

/** A reporter as a written request names him: exactly one of account id, e-mail, phone. */
type Selector = { kind: 'accountId'; value: string } | { kind: 'email'; value: string } | { kind: 'phone'; value: string };

type Queryable = Pick<pg.Pool, 'query'> | pg.ClientBase;

/** Checks the selector (field `reporter`, or `reporter.<which>`): trimmed, the e-mail lower-cased, the phone its digits. */
export function checkSelector(selector: ReporterSelector | null | undefined): Selector {
  const given = (['accountId', 'email', 'phone'] as const).filter((key) => selector?.[key] !== null && selector?.[key] !== undefined);
  if (given.length !== 1) throw badInput('reporter', `give exactly one of accountId, email or phone (got ${given.length === 0 ? 'none' : given.join(', ')})`);
  const kind = given[0];
  const raw = String(selector![kind]);
  const field = `reporter.${kind}`;
  if (raw.includes('\u0000')) throw badInput(field, 'must not contain NUL characters (U+0000)');
  const value = raw.trim();
  if (value === '') throw badInput(field, 'must not be empty');
  switch (kind) {
    case 'accountId':
      if (value.length > MAX_ACCOUNT_ID || /[\u0000-\u001f\u007f]/.test(value)) throw badInput(field, `is not an account id (at most ${MAX_ACCOUNT_ID} characters, no control characters)`);
      return { kind, value };
    case 'email':
      if (value.length > 254 || !EMAIL.test(value)) throw badInput(field, `is not an e-mail address (${JSON.stringify(value.slice(0, 80))})`);
      return { kind, value: value.toLowerCase() };
    case 'phone':
      if (!PHONE.test(value)) throw badInput(field, 'is not a telephone number: 6 to 20 digits, spaces, dots or dashes, with an optional leading +');
      return { kind, value: value.replace(/\D/g, '') };
  }
}

/** Checks a written request's reference: 1 to 200 characters on one line. */
export function checkReference(reference: string | null | undefined): string {
  if (typeof reference !== 'string') throw badInput('requestReference', 'is required: the reference of the written request');
  const problem = freeTextProblem(reference, MAX_REFERENCE, { oneLine: true, required: true });
  if (problem) throw badInput('requestReference', problem);
  return reference.trim();
}

const SELECTOR_SQL: Record<Selector['kind'], string> = {
  accountId: 't.reporter_sub = $1',
  email: 'lower(t.reporter_email) = $1',
  phone: `regexp_replace(t.reporter_phone, '\\D', '', 'g') = $1`,
};

/** The tickets whose reporter data match (not erased ones: they match nothing), oldest first; with `forUpdate`, locked in id order (as every erasure locks). */
async function ticketsOfReporter(db: Queryable, selector: Selector, forUpdate = false): Promise<TicketRow[]> {
  const { rows } = await db.query<TicketRow>(
    `SELECT ${TICKET_COLUMNS} FROM tickets t WHERE ${SELECTOR_SQL[selector.kind]} AND t.reporter_erased_at IS NULL
     ${forUpdate ? 'ORDER BY t.id FOR NO KEY UPDATE OF t' : 'ORDER BY t.created_at, t.id'}`,
    [selector.value],
  );
  return rows;
}

/** Every staff read of these tickets' reporter data, oldest first. */
async function accessLogOf(db: Queryable, ticketIds: readonly string[]): Promise<PersonalDataAccessValue[]> {
  if (ticketIds.length === 0) return [];
  const { rows } = await db.query<PersonalDataAccessValue>(
    `SELECT at, actor_sub AS actor, ticket_id::text AS "ticketId", fields, channel
     FROM personal_data_access_log WHERE ticket_id = ANY($1::bigint[]) ORDER BY at, id`,
    [[...ticketIds]],
  );
  return rows;
}

export class PersonalDataService {
  constructor(readonly context: TicketsContext) {}

  private get viewer() {
    return this.context.viewer;
  }

  private get resources() {
    return this.context.resources;
  }

  /** The caller's account id: UNAUTHENTICATED for the public. */
  private reporterSub(operation: string): string {
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: ${operation} acts on the personal data of the signed-in reporter`);
    return this.viewer.sub!;
  }

  /** Operators and admins only (of some collectivity): UNAUTHENTICATED for the public, FORBIDDEN for other roles. */
  private requireRightsRole(operation: string): void {
    if (this.viewer.collectivities.some((id) => actsIn(this.viewer, id, RIGHTS_ROLES))) return;
    if (isPublic(this.viewer)) throw unauthenticated(`authentication required: ${operation} needs role operator or admin`);
    throw forbidden(`${operation}: needs role operator or admin of the collectivity the reports belong to (a reporter exercises his own rights with myPersonalData and eraseMyPersonalData)`);
  }

  /** Of a reporter's tickets, those of the caller's collectivities; FORBIDDEN when he has some, but none there. */
  private ownTickets(all: TicketRow[], selector: Selector): TicketRow[] {
    const own = all.filter((ticket) => actsIn(this.viewer, ticket.collectivityId, RIGHTS_ROLES));
    if (all.length > 0 && own.length === 0) {
      throw forbidden(
        `reporter: no report of this reporter (by ${selector.kind}) belongs to your collectivities (${this.viewer.collectivities.join(', ')}); the request is for the collectivity that handled them`,
        'reporter',
      );
    }
    return own;
  }

  /** Whether an erasure on this written request already erased tickets of the caller's collectivities. */
  private async answered(client: pg.ClientBase, reference: string): Promise<boolean> {
    const collectivities = this.viewer.collectivities.filter((id) => actsIn(this.viewer, id, RIGHTS_ROLES));
    const { rows } = await client.query(
      `SELECT 1 FROM personal_data_erasures e
       WHERE e.reason = 'OPERATOR_REQUEST' AND e.request_reference = $1
         AND EXISTS (SELECT 1 FROM tickets t WHERE t.id = ANY(e.ticket_ids) AND t.collectivity_id = ANY($2::text[]))
       LIMIT 1`,
      [reference, collectivities],
    );
    return rows.length > 0;
  }

  private prime(tickets: readonly TicketRow[]): void {
    for (const ticket of tickets) this.context.tickets.byId.clear(ticket.id).prime(ticket.id, ticket);
  }

  /** Everything the hub holds about the caller as a reporter. */
  async myPersonalData(): Promise<PersonalDataExportValue> {
    const sub = this.reporterSub('myPersonalData');
    const pool = this.resources.db.pool;
    const tickets = await ticketsOfReporter(pool, { kind: 'accountId', value: sub });
    const accessLog = await accessLogOf(pool, tickets.map((ticket) => ticket.id));
    this.prime(tickets);
    this.context.log.info({ tickets: tickets.length, requestId: this.context.requestId }, 'personal data exported to the reporter');
    return { accountId: sub, exportedAt: new Date(), tickets, accessLog };
  }

  /** Everything the hub holds about a reporter in the caller's collectivities, on a written request (audited). */
  async reporterPersonalData(reporter: ReporterSelector, requestReference: string): Promise<PersonalDataExportValue> {
    this.requireRightsRole('reporterPersonalData');
    const selector = checkSelector(reporter);
    const reference = checkReference(requestReference);
    const pool = this.resources.db.pool;
    const tickets = this.ownTickets(await ticketsOfReporter(pool, selector), selector);
    const ids = tickets.map((ticket) => ticket.id);
    // Audited before anything is returned: no audit row, no export.
    await recordPersonalDataAccess(pool, {
      actor: this.viewer,
      ticketIds: ids,
      fields: EXPORTED_FIELDS,
      channel: 'export',
      requestId: this.context.requestId,
      requestReference: reference,
    });
    const accessLog = await accessLogOf(pool, ids);
    this.prime(tickets);
    this.context.log.info(
      { actor: this.viewer.sub, selector: selector.kind, tickets: ids, requestReference: reference, requestId: this.context.requestId },
      'personal data exported on a written request',
    );
    return { accountId: selector.kind === 'accountId' ? selector.value : null, exportedAt: new Date(), tickets, accessLog };
  }

  /** Erases the caller's reporter data from all his tickets, and his uploads no report took. Idempotent. */
  async eraseMyPersonalData(): Promise<ErasureResultValue> {
    const sub = this.reporterSub('eraseMyPersonalData');
    const { erasure, uploads } = await this.resources.inTransaction(async (client) => {
      const tickets = await ticketsOfReporter(client, { kind: 'accountId', value: sub });
      const erasure = await eraseReporterData(
        client,
        this.resources,
        tickets.map((ticket) => ticket.id),
        { reason: 'REPORTER_REQUEST', actor: SYSTEM_ACTOR, note: ERASURE_NOTES.REPORTER_REQUEST, requestedBy: null, requestReference: null },
      );
      const deleted = await client.query('DELETE FROM ticket_photos WHERE ticket_id IS NULL AND uploader_sub = $1', [sub]);
      return { erasure, uploads: deleted.rowCount ?? 0 };
    });
    this.prime(erasure.tickets);
    // No account id in the line: it is what was erased.
    this.context.log.info(
      { reason: 'REPORTER_REQUEST', tickets: erasure.tickets.map((ticket) => ticket.id), photos: erasure.photosDeleted, uploads, requestId: this.context.requestId },
      'personal data erased at the reporter’s request',
    );
    return { ticketsAnonymised: erasure.tickets.length, photosDeleted: erasure.photosDeleted + uploads };
  }

  /** Erases a reporter's data from the tickets of the caller's collectivities, on a written request. Idempotent. */
  async eraseReporterPersonalData(reporter: ReporterSelector, requestReference: string): Promise<ErasureResultValue> {
    this.requireRightsRole('eraseReporterPersonalData');
    const selector = checkSelector(reporter);
    const reference = checkReference(requestReference);
    const actor = { sub: this.viewer.sub, roles: [...this.viewer.roles] };
    const erasure = await this.resources.inTransaction(async (client) => {
      const all = await ticketsOfReporter(client, selector, true);
      // The same written request again (a retry), once its tickets here are erased: nothing left, 0.
      if (all.length > 0 && !all.some((ticket) => actsIn(this.viewer, ticket.collectivityId, RIGHTS_ROLES)) && (await this.answered(client, reference))) {
        return { tickets: [], photosDeleted: 0 };
      }
      const tickets = this.ownTickets(all, selector);
      return eraseReporterData(
        client,
        this.resources,
        tickets.map((ticket) => ticket.id),
        { reason: 'OPERATOR_REQUEST', actor, note: ERASURE_NOTES.OPERATOR_REQUEST, requestedBy: this.viewer.sub, requestReference: reference },
      );
    });
    this.prime(erasure.tickets);
    this.context.log.info(
      { reason: 'OPERATOR_REQUEST', actor: this.viewer.sub, selector: selector.kind, tickets: erasure.tickets.map((ticket) => ticket.id), photos: erasure.photosDeleted, requestReference: reference, requestId: this.context.requestId },
      'personal data erased on a written request',
    );
    return { ticketsAnonymised: erasure.tickets.length, photosDeleted: erasure.photosDeleted };
  }
}
