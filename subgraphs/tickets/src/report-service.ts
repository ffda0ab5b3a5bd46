/**
 * A report becomes a ticket (issue #8, "Reporting" and "Duplicates"): the one path of the app
 * (GraphQL `reportProblem`) and of Open311 (`POST requests`).
 *
 *  1. Validation, before anything is asked or written: the category exists, the location is a
 *     WGS84 position, the description is 1 to 4,000 characters without NUL or control characters,
 *     name/e-mail/phone are well formed, an anonymous reporter gives an e-mail or a phone, at most
 *     5 photos.
 *  2. Rate limits: reports per hour per reporter identity (the token's subject, else the e-mail,
 *     else the phone), counted in the database (so it holds across instances), and per client
 *     address (in this process). RATE_LIMITED with the seconds to wait.
 *  3. Territory decides who answers (`competentCollectivity` of the category's service category):
 *     a point outside the territory, or a municipal category outside the three communes, is
 *     refused naming `location`. Equipment gives the nearest asset of the category's kinds within
 *     its radius (`nearestEquipment`). Both before the transaction: no lock is held across a call.
 *  4. One transaction: the duplicate lookup (same category, open, ≤ 50 m on the spheroid, ≤ 7 days)
 *     under transaction-level advisory locks on the grid cells around the point, so that two
 *     concurrent identical reports yield one original and one duplicate; the asset's active alarm
 *     (`ticket_known_alarms`); the ticket with its service-level due dates; its photos claimed;
 *     its CREATED change and, for a duplicate, a DUPLICATE_ATTACHED change of the original.
 * A refusal writes nothing.
 */
import type pg from 'pg';
import { PeerUnavailableError } from '@connecte/shared/peers';
import { recordTicketChange } from './changes.js';
import { claimPhotos } from './photo-store.js';
import type { TicketResources } from './resources.js';
import { freeTextProblem } from './ticket-lifecycle.js';
import { OPEN_STATUSES, ReportError, TICKET_COLUMNS, type CategoryRow, type Reporter, type ReportOutcome, type ReportRequest, type TicketRow } from './types.js';

export const MAX_DESCRIPTION = 4_000;
export const MAX_NAME = 200;
export const MAX_PHOTOS = 5;
/** A report of the same category this close (metres, WGS84 spheroid) to an open ticket is its duplicate. */
export const DUPLICATE_RADIUS_M = 50;
/** ... when that ticket was reported at most this long ago. */
export const DUPLICATE_WINDOW_DAYS = 7;
/** The nearest street is the ticket's address when it is at most this far. */
const ADDRESS_RADIUS_M = 100;
const HOUR_MS = 3_600_000;

const EMAIL = /^[^\s@]{1,64}@[^\s@.]+(\.[^\s@.]+)+$/;
const PHONE = /^\+?[0-9 .-]{6,20}$/;
const KIND = /^[A-Z][A-Z_]{1,40}$/;

/** The columns of `ticket_categories` as a `CategoryRow`. */
export const CATEGORY_COLUMNS = `code, label, description, service_category AS "serviceCategory", service, group_label AS "groupLabel", keywords,
  equipment_kinds AS "equipmentKinds", equipment_radius_m AS "equipmentRadiusM", ack_hours AS "ackHours", resolve_hours AS "resolveHours", position`;

const bad = (field: string, reason: string) => new ReportError('BAD_USER_INPUT', field, `${field}: ${reason}`);

/** The request, checked and normalised. */
interface CheckedReport {
  category: string;
  lon: number;
  lat: number;
  description: string;
  photoIds: string[];
  photoSecrets: string[];
  name: string | null;
  email: string | null;
  phone: string | null;
}

function optionalText(value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return value.trim() === '' ? null : value.trim();
}

/** Step 1 (no I/O): throws ReportError naming the field. */
export function checkReport(request: ReportRequest, reporter: Pick<Reporter, 'sub'>): CheckedReport {
  if (typeof request.category !== 'string' || request.category.trim() === '') throw bad('category', 'is required');
  if (request.category.includes('\u0000')) throw bad('category', 'must not contain NUL characters (U+0000)');
  for (const [axis, value, min, max] of [['lon', request.lon, -180, 180], ['lat', request.lat, -90, 90]] as const) {
    if (value === null || value === undefined) throw bad('location', `is required (${axis} is missing)`);
    if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(`location.${axis}`, `must be a finite number of degrees (got ${String(value)})`);
    if (value < min || value > max) throw bad(`location.${axis}`, `must be between ${min} and ${max} degrees (got ${value})`);
  }
  if (typeof request.description !== 'string') throw bad('description', 'is required');
  const descriptionProblem = freeTextProblem(request.description, MAX_DESCRIPTION, { required: true });
  if (descriptionProblem) throw bad('description', descriptionProblem);

  if (request.name !== null && request.name !== undefined) {
    const problem = freeTextProblem(request.name, MAX_NAME, { oneLine: true });
    if (problem) throw bad('name', problem);
  }
  const email = optionalText(request.email);
  if (email !== null) {
    if (email.includes('\u0000')) throw bad('email', 'must not contain NUL characters (U+0000)');
    if (email.length > 254 || !EMAIL.test(email)) throw bad('email', `is not an e-mail address (${JSON.stringify(email.slice(0, 80))})`);
  }
  const phone = optionalText(request.phone);
  if (phone !== null) {
    if (phone.includes('\u0000')) throw bad('phone', 'must not contain NUL characters (U+0000)');
    if (!PHONE.test(phone)) throw bad('phone', 'is not a telephone number: 6 to 20 digits, spaces, dots or dashes, with an optional leading +');
  }
  if (reporter.sub === null && email === null && phone === null) {
    throw bad('email', 'an anonymous report needs an e-mail address or a telephone number to contact the reporter (give email or phone, or sign in)');
  }
  const photoIds = [...(request.photoIds ?? [])];
  if (photoIds.length > MAX_PHOTOS) throw bad('photoIds', `at most ${MAX_PHOTOS} photos per report (got ${photoIds.length})`);
  if (new Set(photoIds).size !== photoIds.length) throw bad('photoIds', 'names the same photo twice');
  const photoSecrets = [...(request.photoSecrets ?? [])];
  if (photoSecrets.some((secret) => typeof secret !== 'string' || secret.includes('\u0000') || secret.length > 200)) throw bad('photoSecrets', 'is not a list of photo secrets');
  return {
    category: request.category.trim(),
    lon: request.lon,
    lat: request.lat,
    description: request.description.trim(),
    photoIds,
    photoSecrets,
    name: optionalText(request.name),
    email: email?.toLowerCase() ?? null,
    phone,
  };
}

// --- Rate limits -------------------------------------------------------------------------

/** Accepted reports per client address in the last hour (this process): their times. */
const addressWindows = new WeakMap<TicketResources, Map<string, number[]>>();

function addressWindow(resources: TicketResources, address: string): number[] {
  let windows = addressWindows.get(resources);
  if (!windows) {
    windows = new Map();
    addressWindows.set(resources, windows);
  }
  const now = Date.now();
  const times = (windows.get(address) ?? []).filter((at) => at > now - HOUR_MS);
  windows.set(address, times);
  // Old addresses go: the map holds at most the addresses seen in the last hour.
  if (windows.size > 10_000) {
    for (const [key, value] of windows) if (value.every((at) => at <= now - HOUR_MS)) windows.delete(key);
  }
  return times;
}

function rateLimited(who: string, limit: number, retryAfterMs: number): ReportError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ReportError('RATE_LIMITED', null, `too many reports ${who}: at most ${limit} per hour; try again in ${seconds} s`, seconds);
}

/** Whose reports count together: the account, else the e-mail, else the phone (its digits). */
function identityOf(report: CheckedReport, reporter: Reporter): { kind: 'sub' | 'email' | 'phone'; value: string } {
  if (reporter.sub !== null) return { kind: 'sub', value: reporter.sub };
  if (report.email !== null) return { kind: 'email', value: report.email };
  return { kind: 'phone', value: report.phone!.replace(/\D/g, '') };
}

/**
 * The identity's reports of the last hour, counted under a transaction-level advisory lock on it
 * (two concurrent reports of one identity are counted one after the other). `updated_at ≥
 * created_at` always, so its index narrows the scan to the last hour's tickets.
 */
async function checkIdentityLimit(client: pg.ClientBase, identity: { kind: string; value: string }, limit: number): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, [`tickets.reports:${identity.kind}:${identity.value}`]);
  const condition =
    identity.kind === 'sub'
      ? 't.reporter_sub = $1'
      : identity.kind === 'email'
        ? 'lower(t.reporter_email) = $1'
        : `regexp_replace(t.reporter_phone, '\\D', '', 'g') = $1`;
  const { rows } = await client.query<{ count: number; oldest: Date | null }>(
    `SELECT count(*)::int AS count, min(t.created_at) AS oldest FROM tickets t
     WHERE ${condition} AND t.updated_at > now() - interval '1 hour' AND t.created_at > now() - interval '1 hour'`,
    [identity.value],
  );
  if (rows[0].count >= limit) {
    const waitMs = rows[0].oldest ? rows[0].oldest.getTime() + HOUR_MS - Date.now() : HOUR_MS;
    throw rateLimited('from this reporter', limit, waitMs);
  }
}

// --- Peers ---------------------------------------------------------------------------------

export async function loadCategory(db: Pick<pg.Pool, 'query'> | pg.ClientBase, code: string): Promise<CategoryRow | null> {
  const { rows } = await db.query<CategoryRow>(`SELECT ${CATEGORY_COLUMNS} FROM ticket_categories WHERE code = $1`, [code]);
  return rows[0] ?? null;
}

interface Place {
  collectivityId: string;
  collectivityName: string;
  inseeCode: string;
  address: string | null;
}

const PLACE_QUERY = `query TicketPlace($category: String!, $lon: Float!, $lat: Float!) {
  competentCollectivity(category: $category, lon: $lon, lat: $lat) { competence collectivity { id name } commune { inseeCode name } }
  locate(lon: $lon, lat: $lat) { nearestStreet { street { name } distanceMeters } }
}`;

interface PlaceAnswer {
  competentCollectivity: { competence: string; collectivity: { id: string; name: string }; commune: { inseeCode: string; name: string } } | null;
  locate: { nearestStreet: { street: { name: string }; distanceMeters: number } | null } | null;
}

function unavailable(error: unknown): never {
  if (error instanceof PeerUnavailableError) {
    throw new ReportError('SERVICE_UNAVAILABLE', null, `cannot take the report now: ${error.message}; try again later`);
  }
  throw error;
}

/** Who answers there (territory), and the nearest street for the address. */
async function placeOf(resources: TicketResources, category: CategoryRow, report: CheckedReport, reporter: Reporter): Promise<Place> {
  const answer = await resources.peers
    .query<PlaceAnswer>('territory', PLACE_QUERY, { category: category.serviceCategory, lon: report.lon, lat: report.lat }, { requestId: reporter.requestId })
    .catch(unavailable);
  const competence = answer.data?.competentCollectivity;
  if (!competence) {
    const error = answer.errors?.find((e) => e.path?.[0] === 'competentCollectivity') ?? answer.errors?.[0];
    const field = error?.extensions?.field;
    if (field === 'lon' || field === 'lat') {
      throw bad('location', `(lon ${report.lon}, lat ${report.lat}) is outside the territory: it lies in none of the communes of the Châlons agglomeration`);
    }
    if (field === 'category' && /municipal/i.test(error?.message ?? '')) {
      throw bad(
        'location',
        `${category.code} (${category.label}) is a municipal matter, handled only inside the three communes (Châlons-en-Champagne, Fagnières, Saint-Martin-sur-le-Pré); ` +
          `the point (lon ${report.lon}, lat ${report.lat}) is outside them (${error!.message.replace(/^category: /, '')})`,
      );
    }
    throw new Error(`territory refused the competence question for ${category.serviceCategory}: ${JSON.stringify(answer.errors ?? 'no data')}`);
  }
  const street = answer.data?.locate?.nearestStreet;
  return {
    collectivityId: competence.collectivity.id,
    collectivityName: competence.collectivity.name,
    inseeCode: competence.commune.inseeCode,
    address: street && street.distanceMeters <= ADDRESS_RADIUS_M ? `${street.street.name}, ${competence.commune.name}` : null,
  };
}

/** The nearest asset of the category's kinds within its radius (equipment), or null. */
async function nearestAssetOf(resources: TicketResources, category: CategoryRow, report: CheckedReport, reporter: Reporter): Promise<string | null> {
  const kinds = category.equipmentKinds.filter((kind) => KIND.test(kind));
  if (kinds.length === 0) return null;
  const fields = kinds.map((kind, i) => `k${i}: nearestEquipment(kind: ${kind}, lon: $lon, lat: $lat, first: 1) { equipment { id } distanceMeters }`);
  const answer = await resources.peers
    .query<Record<string, { equipment: { id: string }; distanceMeters: number }[]>>('equipment', `query TicketAsset($lon: Float!, $lat: Float!) { ${fields.join(' ')} }`, { lon: report.lon, lat: report.lat }, { requestId: reporter.requestId })
    .catch(unavailable);
  if (!answer.data) throw new Error(`equipment refused the nearest-asset question: ${JSON.stringify(answer.errors ?? 'no data')}`);
  let best: { id: string; distanceMeters: number } | null = null;
  for (const found of Object.values(answer.data)) {
    const nearest = found?.[0];
    if (nearest && nearest.distanceMeters <= category.equipmentRadiusM && (!best || nearest.distanceMeters < best.distanceMeters)) {
      best = { id: nearest.equipment.id, distanceMeters: nearest.distanceMeters };
    }
  }
  return best?.id ?? null;
}

// --- Duplicates ----------------------------------------------------------------------------

/** The lock grid: cells of 0.001° of latitude by 0.0015° of longitude (about 110 m at 49° N), larger than the duplicate radius. */
const CELL_LAT = 0.001;
const CELL_LON = 0.0015;

/** Degrees spanned by `metres` at latitude `lat` (a little more: a box around the circle). */
function degreesAround(metres: number, lat: number): { dLat: number; dLon: number } {
  const dLat = (metres / 110_574) * 1.01;
  const dLon = (metres / (111_320 * Math.max(Math.cos((lat * Math.PI) / 180), 0.01))) * 1.01;
  return { dLat, dLon: Math.min(dLon, 180) };
}

/**
 * The cells the duplicate radius around the point touches. Two points within the radius of each
 * other each lock the other's cell, so two concurrent reports that could be each other's
 * duplicate always share a lock: the second waits until the first commits, then finds it.
 */
export function lockCells(lon: number, lat: number): string[] {
  const { dLat, dLon } = degreesAround(DUPLICATE_RADIUS_M, lat);
  const cells: string[] = [];
  for (let x = Math.floor((lon - dLon) / CELL_LON); x <= Math.floor((lon + dLon) / CELL_LON); x++) {
    for (let y = Math.floor((lat - dLat) / CELL_LAT); y <= Math.floor((lat + dLat) / CELL_LAT); y++) cells.push(`${x}:${y}`);
  }
  return cells;
}

/** Locks the cells around the point for the category (sorted: transactions never wait on each other in a cycle). */
async function lockDuplicateCells(client: pg.ClientBase, category: string, lon: number, lat: number): Promise<void> {
  await client.query(
    `SELECT pg_advisory_xact_lock(hashtext($1), k) FROM (SELECT DISTINCT hashtext(c) AS k FROM unnest($2::text[]) AS c ORDER BY 1) AS cells`,
    [`tickets.duplicates:${category}`, lockCells(lon, lat)],
  );
}

/**
 * The open ticket of the category nearest the point within 50 m (WGS84 spheroid) and reported
 * in the last 7 days, locked (its status cannot change under the new duplicate), or null. The
 * bounding box uses the partial GiST index of open tickets; the distance is then exact.
 */
export async function findOriginal(client: pg.ClientBase, category: string, lon: number, lat: number): Promise<TicketRow | null> {
  const { dLat, dLon } = degreesAround(DUPLICATE_RADIUS_M, lat);
  const { rows } = await client.query<TicketRow>(
    `SELECT ${TICKET_COLUMNS} FROM tickets t
     WHERE t.category_code = $1 AND t.status = ANY($4::text[])
       AND t.created_at >= now() - make_interval(days => $5)
       AND t.geom && ST_MakeEnvelope($2::float8 - $6::float8, $3::float8 - $7::float8, $2::float8 + $6::float8, $3::float8 + $7::float8, 4326)
       AND ST_DWithin(t.geom::geography, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, $8, true)
     ORDER BY ST_Distance(t.geom::geography, ST_SetSRID(ST_MakePoint($2, $3), 4326)::geography, true), t.created_at, t.id
     LIMIT 1 FOR UPDATE OF t`,
    [category, lon, lat, OPEN_STATUSES, DUPLICATE_WINDOW_DAYS, dLon, dLat, DUPLICATE_RADIUS_M],
  );
  return rows[0] ?? null;
}

// --- The report ------------------------------------------------------------------------------

function noticeOf(ticket: TicketRow, original: TicketRow | null, category: CategoryRow, place: Place, knownAlarm: { code: string } | null): string {
  const parts: string[] = [];
  if (original) {
    parts.push(
      `This problem was already reported (ticket ${original.id}, ${original.status.toLowerCase().replace('_', ' ')}): your report ${ticket.id} is attached to it, ` +
        `and you follow that ticket from now on.`,
    );
  } else {
    parts.push(`Thank you: your report ${ticket.id} goes to ${category.service} of ${place.collectivityName}, which acknowledges reports within ${category.ackHours} hours and aims to resolve them within ${category.resolveHours} hours.`);
  }
  if (knownAlarm) parts.push(`The fault of the asset concerned is already known from its own monitoring (alarm ${knownAlarm.code}).`);
  return parts.join(' ');
}

/**
 * Validates, rate-limits, places and stores a report (see the header). Throws ReportError:
 * BAD_USER_INPUT with the field, RATE_LIMITED with `retryAfterSeconds`, SERVICE_UNAVAILABLE
 * when territory or equipment does not answer.
 */
export async function createReport(resources: TicketResources, request: ReportRequest, reporter: Reporter): Promise<ReportOutcome> {
  const report = checkReport(request, reporter);
  const category = await loadCategory(resources.db.pool, report.category);
  if (!category) {
    const { rows } = await resources.db.pool.query<{ code: string }>('SELECT code FROM ticket_categories ORDER BY position');
    throw bad('category', `unknown category ${JSON.stringify(report.category.slice(0, 60))} (known: ${rows.map((r) => r.code).join(', ')})`);
  }
  const limit = resources.config.TICKETS_REPORTS_PER_HOUR;
  const address = reporter.address?.trim() ?? '';
  // The address's slot is taken now, before anything is awaited, and given back if the report
  // fails: concurrent reports from one address cannot all pass the check before one is counted.
  let slot: number | null = null;
  if (limit > 0 && address !== '') {
    const times = addressWindow(resources, address);
    if (times.length >= limit) throw rateLimited('from this address', limit, times[0] + HOUR_MS - Date.now());
    slot = Date.now();
    times.push(slot);
  }
  try {
    return await placeAndStore(resources, request, category, report, reporter, limit);
  } catch (error) {
    if (slot !== null) releaseAddressSlot(resources, address, slot);
    throw error;
  }
}

/** Gives back a slot `createReport` took for a report that was not stored. */
function releaseAddressSlot(resources: TicketResources, address: string, slot: number): void {
  const times = addressWindow(resources, address);
  const index = times.indexOf(slot);
  if (index !== -1) times.splice(index, 1);
}

/** The part of `createReport` after the checks: the peers' answers, then the one transaction. */
async function placeAndStore(
  resources: TicketResources,
  request: ReportRequest,
  category: CategoryRow,
  report: CheckedReport,
  reporter: Reporter,
  limit: number,
): Promise<ReportOutcome> {
  const [place, equipmentId] = await Promise.all([placeOf(resources, category, report, reporter), nearestAssetOf(resources, category, report, reporter)]);

  const outcome = await resources.inTransaction(async (client) => {
    if (limit > 0) await checkIdentityLimit(client, identityOf(report, reporter), limit);
    let original: TicketRow | null = null;
    if (resources.config.TICKETS_DUPLICATE_DETECTION) {
      await lockDuplicateCells(client, category.code, report.lon, report.lat);
      original = await findOriginal(client, category.code, report.lon, report.lat);
    }
    let knownAlarm: { alarmId: string; code: string } | null = null;
    if (equipmentId !== null) {
      const { rows } = await client.query<{ alarmId: string; code: string }>(
        `SELECT alarm_id AS "alarmId", code FROM ticket_known_alarms WHERE equipment_id = $1 ORDER BY raised_at, alarm_id LIMIT 1`,
        [equipmentId],
      );
      knownAlarm = rows[0] ?? null;
    }
    const { rows } = await client.query<TicketRow>(
      `INSERT INTO tickets AS t (category_code, collectivity_id, service, status, description, geom, insee_code, address, equipment_id,
                                 known_alarm_id, duplicate_of, source, open311_client_id, reporter_sub, reporter_name, reporter_email,
                                 reporter_phone, ack_due_at, resolve_due_at)
       VALUES ($1, $2, $3, $4, $5, ST_SetSRID(ST_MakePoint($6, $7), 4326), $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
               now() + make_interval(hours => $19), now() + make_interval(hours => $20))
       RETURNING ${TICKET_COLUMNS}`,
      [
        category.code,
        place.collectivityId,
        category.service,
        original ? 'DUPLICATE' : 'NEW',
        report.description,
        report.lon,
        report.lat,
        place.inseeCode,
        place.address,
        equipmentId,
        knownAlarm?.alarmId ?? null,
        original?.id ?? null,
        request.source,
        request.open311ClientId ?? null,
        reporter.sub,
        report.name,
        report.email,
        report.phone,
        category.ackHours,
        category.resolveHours,
      ],
    );
    const ticket = rows[0];
    if (report.photoIds.length > 0) await claimPhotos(client, ticket.id, report.photoIds, report.photoSecrets, reporter.sub);
    const actor = { sub: reporter.sub, roles: [...reporter.roles] };
    const options = { exportToGrc: resources.exportToGrc };
    await recordTicketChange(client, { ticket, action: 'CREATED', fromStatus: null, toStatus: ticket.status, actor, note: null }, options);
    let originalAfter: TicketRow | null = null;
    if (original) {
      const { rows: touched } = await client.query<TicketRow>(`UPDATE tickets AS t SET updated_at = now() WHERE t.id = $1 RETURNING ${TICKET_COLUMNS}`, [original.id]);
      originalAfter = touched[0];
      await recordTicketChange(client, { ticket: originalAfter, action: 'DUPLICATE_ATTACHED', fromStatus: null, toStatus: null, actor, note: `ticket ${ticket.id} attached as a duplicate` }, options);
    }
    return { ticket, duplicateOf: originalAfter, notice: noticeOf(ticket, originalAfter, category, place, knownAlarm) };
  });
  resources.log.info(
    {
      ticketId: outcome.ticket.id,
      category: category.code,
      collectivityId: outcome.ticket.collectivityId,
      status: outcome.ticket.status,
      duplicateOf: outcome.duplicateOf?.id ?? null,
      equipmentId,
      knownAlarmId: outcome.ticket.knownAlarmId,
      source: request.source,
      requestId: reporter.requestId,
    },
    'ticket reported',
  );
  return outcome;
}
