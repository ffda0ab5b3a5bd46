/**
 * Open311 GeoReport v2 at `/open311/v2/` (served by the tickets subgraph, forwarded by the
 * gateway from its own port): docs/tickets.md, "Open311 GeoReport v2", describes it for clients.
 *
 *   GET  discovery.{json|xml}            service discovery
 *   GET  services.{fmt}                  the categories (of `jurisdiction_id` when given)
 *   GET  services/{service_code}.{fmt}   a category's definition (no extra attributes)
 *   GET  requests.{fmt}                  tickets, public part only (spec filters, page/page_size)
 *   POST requests.{fmt}                  a report, through core's `createReport` (source OPEN311)
 *   GET  requests/{id}.{fmt}             one ticket, public part only
 *
 * `jurisdiction_id` is a collectivity id. Reads are anonymous and show what the public may see
 * of a ticket (category, status, coarse location, dates): never the reporter, the exact
 * location, the address or the description. POST needs `api_key`: a client key issued by an admin
 * of the jurisdiction, or its public key while enabled (open311-keys.ts).
 *
 * Every refusal is an `errors` answer (`[{ code, description }]`, the description naming the
 * parameter) in the requested format, before anything is written: 400 bad or missing
 * parameter, 403 api_key, 404 unknown service_code / jurisdiction / request / path or format,
 * 405 method (with Allow), 413 body, 415 content type, 429 flood (with Retry-After), 503 a
 * dependency down (with Retry-After).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { addressBucketKey, clientAddressResolver, type ClientAddressOf } from '@connecte/shared/client-address';
import { readBodyBytes } from '@connecte/shared/http';
import { PeerUnavailableError } from '@connecte/shared/peers';
import { lingerAfterAnswer } from '@connecte/shared/problem';
import { createRateLimiter, type RateLimiter } from '@connecte/shared/rate-limit';
import { sendOpen311, sendOpen311Errors, type Open311Format, type Open311Value } from './open311-format.js';
import { checkApiKey, touchClient } from './open311-keys.js';
import { coarsePoint } from './privacy.js';
import { createReport } from './report-service.js';
import type { TicketResources } from './resources.js';
import { OPEN_STATUSES, ReportError, type ReportRequest, type TicketStatus } from './types.js';

export const OPEN311_PREFIX = '/open311/v2';
export const SPECIFICATION_URL = 'http://wiki.open311.org/GeoReport_v2';
/** When this API's description (discovery, services) last changed. */
export const OPEN311_CHANGESET = '2026-12-01T00:00:00Z';
/** A POST body larger than this is refused (413): the longest legitimate one (4,000 characters of description, percent-encoded) is about 48 KiB. */
export const OPEN311_MAX_BODY_BYTES = 64 * 1024;
/** Parameters per request (query string and body together). */
export const OPEN311_MAX_PARAMETERS = 100;
/** GeoReport v2's default and largest window, and its default cap of requests. */
export const WINDOW_DAYS = 90;
export const MAX_PAGE_SIZE = 1000;
const MAX_PAGE = 100_000;
const MAX_IDS = 1000;
const DAY_MS = 86_400_000;
const RETRY_AFTER_SECONDS = '5';
/** How long territory's collectivities and competences are reused before being asked again. */
const TERRITORY_TTL_MS = 5 * 60_000;

/** A refusal: its status, what to say, and headers (Allow, Retry-After). */
class Open311Failure extends Error {
  constructor(
    readonly status: number,
    readonly descriptions: string[],
    readonly headers: Record<string, string> = {},
  ) {
    super(descriptions.join('; '));
  }
}
/** The client went away while sending its body: nobody to answer. */
class ClientGone extends Error {}

const fail = (status: number, description: string, headers?: Record<string, string>) => new Open311Failure(status, [description], headers);
const badParameter = (name: string, reason: string) => fail(400, `${name}: ${reason}`);

// --- per-process state ---------------------------------------------------------------------

interface TerritoryFacts {
  collectivities: Map<string, { name: string; kind: 'COMMUNE' | 'AGGLOMERATION' }>;
  /** Territory's service category code → who answers for it. */
  competences: Map<string, 'MUNICIPAL' | 'AGGLOMERATION'>;
  fetchedAt: number;
}

interface Open311State {
  addressOf: ClientAddressOf;
  /** RATE_LIMIT_PER_ADDRESS applied here: the gateway forwards this route without limiting it. */
  limiter: RateLimiter | null;
  territory: TerritoryFacts | null;
  pendingTerritory: Promise<TerritoryFacts> | null;
  /** Whether the warning about a proxy missing from TRUSTED_PROXIES was logged. */
  warnedUntrustedProxy: boolean;
}

const states = new WeakMap<TicketResources, Open311State>();

function stateOf(r: TicketResources): Open311State {
  let state = states.get(r);
  if (!state) {
    const perMinute = r.config.RATE_LIMIT_PER_ADDRESS;
    state = {
      addressOf: clientAddressResolver(r.config.TRUSTED_PROXIES),
      limiter: perMinute > 0 ? createRateLimiter({ perMinute }) : null,
      territory: null,
      pendingTerritory: null,
      warnedUntrustedProxy: false,
    };
    states.set(r, state);
  }
  return state;
}

const TERRITORY_QUERY = `{ collectivities { id name kind } serviceCategories { code competence } }`;

/** Territory's collectivities and competences, cached; a stale copy is used while territory does not answer. */
async function territoryFacts(r: TicketResources, state: Open311State): Promise<TerritoryFacts> {
  if (state.territory && Date.now() - state.territory.fetchedAt < TERRITORY_TTL_MS) return state.territory;
  state.pendingTerritory ??= (async () => {
    try {
      const answer = await r.peers.query<{
        collectivities: { id: string; name: string; kind: 'COMMUNE' | 'AGGLOMERATION' }[];
        serviceCategories: { code: string; competence: 'MUNICIPAL' | 'AGGLOMERATION' }[];
      }>('territory', TERRITORY_QUERY);
      if (!answer.data) throw new PeerUnavailableError('territory', answer.errors?.[0]?.message ?? 'no data');
      const facts: TerritoryFacts = {
        collectivities: new Map(answer.data.collectivities.map(({ id, name, kind }) => [id, { name, kind }])),
        competences: new Map(answer.data.serviceCategories.map(({ code, competence }) => [code, competence])),
        fetchedAt: Date.now(),
      };
      state.territory = facts;
      return facts;
    } finally {
      state.pendingTerritory = null;
    }
  })();
  try {
    return await state.pendingTerritory;
  } catch (error) {
    if (state.territory) {
      r.log.warn({ err: (error as Error).message }, 'Open311: territory did not answer; using its collectivities as last known');
      return state.territory;
    }
    throw error;
  }
}

// --- parameters ----------------------------------------------------------------------------

/** The request's parameters (query string and, for POST, the body), each given at most once. */
class Parameters {
  readonly values = new Map<string, string>();

  /** An optional parameter: an empty (or blank) value is the same as an absent one (GeoReport v2). */
  get(name: string): string | undefined {
    const value = this.values.get(name);
    return value === undefined || value.trim() === '' ? undefined : value;
  }

  names(): string[] {
    return [...this.values.keys()];
  }
}

/** Strict application/x-www-form-urlencoded: malformed escapes, NUL and repeated names are refused, naming the parameter. */
function parseForm(text: string, into: Parameters, where: 'query string' | 'body'): void {
  if (text === '') return;
  for (const pair of text.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const rawName = eq === -1 ? pair : pair.slice(0, eq);
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1);
    const name = decodeComponent(rawName, () => badParameter(printable(rawName), `malformed percent-encoding in the parameter's name (${where})`));
    const value = decodeComponent(rawValue, () => badParameter(printable(name), `malformed percent-encoding in its value (${where})`));
    if (name.includes('\u0000')) throw badParameter(printable(name), 'a parameter name must not contain NUL bytes');
    if (name === '') throw fail(400, `a parameter without a name is given in the ${where}`);
    if (value.includes('\u0000')) throw badParameter(printable(name), 'must not contain NUL bytes');
    if (into.values.has(name)) {
      // GeoReport's multi-valued attributes repeat their name (`attribute[code][]=a&attribute[code][]=b`).
      if (/^attribute\[[^\]]*\]\[\]$/.test(name)) continue;
      throw badParameter(printable(name), 'is given more than once (give a list as one comma-separated value)');
    }
    if (into.values.size >= OPEN311_MAX_PARAMETERS) throw fail(400, `more than ${OPEN311_MAX_PARAMETERS} parameters`);
    into.values.set(name, value);
  }
}

function decodeComponent(raw: string, malformed: () => Open311Failure): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    throw malformed();
  }
}

/** A parameter name as it may be echoed in an error (bounded, without control characters). */
const printable = (name: string) => name.slice(0, 60).replace(/[\u0000-\u001f\u007f]/g, '?');

const INTEGER = /^[0-9]{1,7}$/;

function positiveInteger(params: Parameters, name: string, max: number, fallback: number): number {
  const text = params.get(name)?.trim();
  if (text === undefined) return fallback;
  if (!INTEGER.test(text) || Number(text) < 1 || Number(text) > max) throw badParameter(name, `must be a whole number from 1 to ${max}, not '${text.slice(0, 40)}'`);
  return Number(text);
}

const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/** A WGS84 coordinate in [-limit, limit]: not a number, not finite (1e309) or out of range is refused naming it. */
function coordinate(text: string, name: 'lat' | 'long', limit: number): number {
  const trimmed = text.trim();
  const value = DECIMAL.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isFinite(value)) throw badParameter(name, `must be a decimal number of degrees (WGS84), not '${trimmed.slice(0, 40)}'`);
  if (value < -limit || value > limit) throw badParameter(name, `must be between -${limit} and ${limit} degrees (WGS84), got ${trimmed.slice(0, 40)}`);
  return value;
}

const W3C_DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})$/;

/** A W3C date-time with its offset (`2026-11-25T09:00:00+01:00`, `…Z`): epoch ms, or a 400 naming the parameter. */
function dateTime(params: Parameters, name: 'start_date' | 'end_date'): number | undefined {
  let text = params.get(name)?.trim();
  if (text === undefined) return undefined;
  // An unencoded `+` of the offset reaches us as a space (form encoding): read it as the `+` it was.
  text = text.replace(/ (\d{2}:?\d{2})$/, '+$1');
  const refuse = () => badParameter(name, `must be a W3C date-time with its offset, such as 2026-11-25T09:00:00+01:00 or 2026-11-25T08:00:00Z, not '${text!.slice(0, 40)}'`);
  const m = W3C_DATETIME.exec(text);
  if (!m) throw refuse();
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '0'].map(Number);
  const millis = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0;
  const local = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const check = new Date(local);
  if (year < 1900 || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day || hour > 23 || minute > 59 || second > 59) throw refuse();
  let offsetMinutes = 0;
  if (m[8] !== 'Z') {
    const digits = m[8].replace(':', '');
    const hours = Number(digits.slice(1, 3));
    const minutes = Number(digits.slice(3, 5));
    if (hours > 14 || minutes > 59) throw refuse();
    offsetMinutes = (digits[0] === '-' ? -1 : 1) * (hours * 60 + minutes);
  }
  return local - offsetMinutes * 60_000;
}

/** A comma-separated list parameter: its distinct non-empty items, or undefined when absent. */
function list(params: Parameters, name: string): string[] | undefined {
  const text = params.get(name);
  if (text === undefined) return undefined;
  const items = [...new Set(text.split(',').map((item) => item.trim()).filter((item) => item !== ''))];
  return items.length === 0 ? undefined : items;
}

// --- routes --------------------------------------------------------------------------------

type Route =
  | { resource: 'discovery' | 'services' | 'requests'; id?: undefined }
  | { resource: 'service'; id: string }
  | { resource: 'request'; id: string };

const FORMATS: readonly string[] = ['json', 'xml'];

/** The format of an answer whose suffix is not json or xml: XML when the client asks for it, else JSON. */
const fallbackFormat = (req: IncomingMessage): Open311Format => (/\bxml\b/i.test(req.headers.accept ?? '') ? 'xml' : 'json');

function parsePath(path: string): { route: Route | null; format: Open311Format | null; suffix: string | null } {
  const rest = path.slice(OPEN311_PREFIX.length).replace(/^\//, '');
  const segments = rest.split('/');
  const last = segments[segments.length - 1];
  const dot = last.lastIndexOf('.');
  const suffix = dot === -1 ? null : last.slice(dot + 1);
  const format = suffix !== null && FORMATS.includes(suffix) ? (suffix as Open311Format) : null;
  if (dot === -1 || format === null) return { route: null, format, suffix };
  let name: string;
  try {
    name = decodeURIComponent(last.slice(0, dot));
  } catch {
    return { route: null, format, suffix };
  }
  if (segments.length === 1 && (name === 'discovery' || name === 'services' || name === 'requests')) return { route: { resource: name }, format, suffix };
  if (segments.length === 2 && segments[0] === 'services' && name !== '') return { route: { resource: 'service', id: name }, format, suffix };
  if (segments.length === 2 && segments[0] === 'requests' && name !== '') return { route: { resource: 'request', id: name }, format, suffix };
  return { route: null, format, suffix };
}

/** Serves everything under `/open311/v2`. */
export async function handleOpen311Request(req: IncomingMessage, res: ServerResponse, r: TicketResources): Promise<void> {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const search = q === -1 ? '' : url.slice(q + 1);
  const parsed = parsePath(path);
  const format = parsed.format ?? fallbackFormat(req);
  const state = stateOf(r);
  const address = state.addressOf(req);
  const reportAddress = reportAddressOf(req, r, state, address);
  try {
    if (state.limiter) {
      const decision = state.limiter.take(addressBucketKey(address));
      if (!decision.allowed) {
        throw fail(429, `too many requests from this client address: at most ${r.config.RATE_LIMIT_PER_ADDRESS} per minute; retry after ${decision.retryAfterSeconds} s`, {
          'retry-after': String(decision.retryAfterSeconds),
        });
      }
    }
    if (parsed.format === null) {
      throw fail(
        404,
        parsed.suffix === null
          ? `no resource ${printable(path)}: every resource takes a format suffix, .xml or .json (e.g. ${OPEN311_PREFIX}/services.json)`
          : `unknown format '.${printable(parsed.suffix)}': the formats are .xml and .json`,
      );
    }
    const route = parsed.route;
    if (!route) {
      throw fail(404, `no resource ${printable(path)}: try discovery, services, services/{service_code}, requests or requests/{service_request_id}, each .xml or .json`);
    }
    const allowed = route.resource === 'requests' ? ['GET', 'HEAD', 'POST'] : ['GET', 'HEAD'];
    const method = req.method ?? 'GET';
    if (!allowed.includes(method)) {
      throw fail(405, `${printable(method)} is not allowed on ${printable(path)}: use ${allowed.filter((m) => m !== 'HEAD').join(' or ')}`, { allow: allowed.join(', ') });
    }
    const params = new Parameters();
    parseForm(search, params, 'query string');
    if (method === 'POST') {
      await readForm(req, params);
      return await postRequest(req, res, r, state, format, params, reportAddress);
    }
    req.resume();
    switch (route.resource) {
      case 'discovery':
        return sendOpen311(res, 200, format, 'discovery', discovery(r));
      case 'services':
        return sendOpen311(res, 200, format, 'services', await services(r, state, params));
      case 'service':
        return sendOpen311(res, 200, format, 'service_definition', await serviceDefinition(r, state, params, route.id));
      case 'requests':
        return sendOpen311(res, 200, format, 'service_requests', await searchRequests(r, state, params));
      case 'request':
        return sendOpen311(res, 200, format, 'service_requests', await oneRequest(r, state, params, route.id));
    }
  } catch (error) {
    return answerFailure(req, res, r, format, error);
  }
}

/**
 * The address core's per-address report limit counts. A request forwarded (X-Forwarded-For) by a
 * proxy missing from TRUSTED_PROXIES (the gateway, by default) cannot be told apart from the
 * others: counted under the proxy's address, every client would share one budget of
 * TICKETS_REPORTS_PER_HOUR, so that limit is not applied (the per-reporter one still is), and
 * the deployment is told once how to fix it.
 */
function reportAddressOf(req: IncomingMessage, r: TicketResources, state: Open311State, address: string): string {
  if (req.headers['x-forwarded-for'] === undefined) return address;
  const peer = (req.socket.remoteAddress ?? '').replace(/^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i, '$1');
  if (address !== peer) return address;
  if (!state.warnedUntrustedProxy) {
    state.warnedUntrustedProxy = true;
    r.log.warn(
      { proxy: peer },
      'Open311: requests come through a proxy that is not in TRUSTED_PROXIES: the per-address limits count them all as one client (reads) or not at all (reports); add the gateway\'s address to TRUSTED_PROXIES',
    );
  }
  return '';
}

function answerFailure(req: IncomingMessage, res: ServerResponse, r: TicketResources, format: Open311Format, error: unknown): void {
  if (error instanceof ClientGone) {
    res.destroy();
    return;
  }
  let failure: Open311Failure;
  if (error instanceof Open311Failure) failure = error;
  else if (error instanceof ReportError) failure = reportFailure(error);
  else if (error instanceof PeerUnavailableError) {
    r.log.warn({ err: error.message }, 'Open311: a peer did not answer');
    failure = fail(503, `the service cannot answer now (${error.peer} unavailable); nothing was written: try again later`, { 'retry-after': RETRY_AFTER_SECONDS });
  } else if (isUnavailable(error)) {
    r.log.warn({ err: (error as Error).message }, 'Open311: the database did not answer');
    failure = fail(503, 'the service cannot answer now (database unavailable); nothing was written: try again later', { 'retry-after': RETRY_AFTER_SECONDS });
  } else {
    r.log.error({ err: error }, 'Open311 request failed');
    failure = fail(500, 'internal error: the request failed on the server and is logged');
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendOpen311Errors(res, failure.status, format, failure.descriptions, failure.headers);
  lingerAfterAnswer(req);
}

/** Database errors that mean "not now" (connection lost, timeout, too many connections), not a bug. */
function isUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== 'string') return false;
  return /^(08|53|57)/.test(code) || ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(code);
}

/** core's ReportError, named with the Open311 parameter that carries the field. */
function reportFailure(error: ReportError): Open311Failure {
  const reason = error.field && error.message.startsWith(`${error.field}: `) ? error.message.slice(error.field.length + 2) : error.message;
  if (error.code === 'RATE_LIMITED') {
    const seconds = String(Math.max(1, Math.ceil(error.retryAfterSeconds ?? 60)));
    return fail(429, `too many reports: ${reason}`, { 'retry-after': seconds });
  }
  if (error.code === 'SERVICE_UNAVAILABLE') {
    return fail(503, `${reason.replace(/[;,.]?\s*try again later\.?$/i, '')}; nothing was written: try again later`, { 'retry-after': RETRY_AFTER_SECONDS });
  }
  return fail(400, `${open311Parameter(error.field)}: ${reason}`);
}

/** ReportInput's field names (GraphQL) → the Open311 parameters that carry them. */
export function open311Parameter(field: string | null): string {
  if (field === null) return 'request';
  if (field === 'category') return 'service_code';
  if (field === 'location.lat') return 'lat';
  if (field === 'location.lon') return 'long';
  if (field === 'location' || field.startsWith('location.')) return 'lat/long';
  if (field === 'name') return 'first_name/last_name';
  if (field === 'photoIds' || field === 'photoSecrets') return 'media_url';
  return field; // description, email, phone
}

/** Reads a form body (413 over OPEN311_MAX_BODY_BYTES, 415 for another content type, 400 for bytes that are not UTF-8). */
async function readForm(req: IncomingMessage, params: Parameters): Promise<void> {
  const contentType = req.headers['content-type'] ?? '';
  const [mediaType, ...attributes] = contentType.split(';').map((part) => part.trim().toLowerCase());
  const charset = attributes.find((a) => a.startsWith('charset='))?.slice('charset='.length).replace(/^"|"$/g, '');
  if (mediaType !== 'application/x-www-form-urlencoded' || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) {
    throw fail(415, `content-type: POST requests takes application/x-www-form-urlencoded (UTF-8), not ${JSON.stringify(contentType.slice(0, 80))}`);
  }
  const declared = Number(req.headers['content-length']);
  const tooLarge = () => fail(413, `body: exceeds the limit of ${OPEN311_MAX_BODY_BYTES} bytes${declared > OPEN311_MAX_BODY_BYTES ? ` (${declared} bytes declared)` : ''}`);
  if (declared > OPEN311_MAX_BODY_BYTES) throw tooLarge();
  let bytes: Buffer;
  try {
    bytes = await readBodyBytes(req, OPEN311_MAX_BODY_BYTES, tooLarge);
  } catch (error) {
    if (error instanceof Open311Failure) throw error;
    throw new ClientGone();
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fail(400, 'body: is not valid UTF-8');
  }
  parseForm(text, params, 'body');
}

// --- jurisdictions and services ------------------------------------------------------------

interface CategoryFacts {
  code: string;
  label: string;
  description: string;
  serviceCategory: string;
  groupLabel: string;
  keywords: string[];
}

async function categories(r: TicketResources): Promise<CategoryFacts[]> {
  const { rows } = await r.db.pool.query<CategoryFacts>(
    `SELECT code, label, description, service_category AS "serviceCategory", group_label AS "groupLabel", keywords
     FROM ticket_categories ORDER BY position, code`,
  );
  return rows;
}

/** `jurisdiction_id` when given: a known collectivity id (404 otherwise). */
async function jurisdiction(r: TicketResources, state: Open311State, params: Parameters): Promise<string | undefined> {
  const id = params.get('jurisdiction_id')?.trim();
  if (id === undefined) return undefined;
  const facts = await territoryFacts(r, state);
  if (!facts.collectivities.has(id)) {
    throw fail(404, `jurisdiction_id: unknown jurisdiction '${printable(id)}' (known: ${[...facts.collectivities.keys()].join(', ')})`);
  }
  return id;
}

/** Whether a category is a service of a jurisdiction: municipal ones of a commune, agglomeration ones of the agglomeration. */
function offeredBy(facts: TerritoryFacts, jurisdictionId: string, category: CategoryFacts): boolean {
  const competence = facts.competences.get(category.serviceCategory);
  const kind = facts.collectivities.get(jurisdictionId)?.kind;
  return (competence === 'MUNICIPAL' && kind === 'COMMUNE') || (competence === 'AGGLOMERATION' && kind === 'AGGLOMERATION');
}

const serviceOf = (category: CategoryFacts): Open311Value => ({
  service_code: category.code,
  service_name: category.label,
  description: category.description,
  metadata: false,
  type: 'realtime',
  keywords: category.keywords.join(','),
  group: category.groupLabel,
});

async function services(r: TicketResources, state: Open311State, params: Parameters): Promise<Open311Value> {
  const jurisdictionId = await jurisdiction(r, state, params);
  const all = await categories(r);
  if (jurisdictionId === undefined) return all.map(serviceOf);
  const facts = await territoryFacts(r, state);
  return all.filter((category) => offeredBy(facts, jurisdictionId, category)).map(serviceOf);
}

/** The category of `code` (a service of the jurisdiction when one is given), or 404. */
async function serviceFor(r: TicketResources, state: Open311State, code: string, jurisdictionId: string | undefined, name = 'service_code'): Promise<CategoryFacts> {
  const category = (await categories(r)).find((c) => c.code === code);
  if (!category) throw fail(404, `${name}: unknown service '${printable(code)}' (see services.json)`);
  if (jurisdictionId !== undefined && !offeredBy(await territoryFacts(r, state), jurisdictionId, category)) {
    throw fail(404, `${name}: '${category.code}' is not a service of jurisdiction ${jurisdictionId} (see services.json?jurisdiction_id=${jurisdictionId})`);
  }
  return category;
}

async function serviceDefinition(r: TicketResources, state: Open311State, params: Parameters, code: string): Promise<Open311Value> {
  const category = await serviceFor(r, state, code, await jurisdiction(r, state, params));
  // No category asks for more than GeoReport's own fields: `metadata` is false, `attributes` empty.
  return { service_code: category.code, attributes: [] };
}

function discovery(r: TicketResources): Open311Value {
  const base = r.config.PUBLIC_BASE_URL.replace(/\/+$/, '');
  return {
    changeset: OPEN311_CHANGESET,
    contact: `Connecte hub of the territory of Châlons-en-Champagne, Fagnières, Saint-Martin-sur-le-Pré and Châlons Agglo: ${base}`,
    key_service:
      'Reads need no key. To POST requests, ask the administrators of the collectivity (jurisdiction_id) for a client key, or use its public key when it has published one.',
    endpoints: [
      {
        specification: SPECIFICATION_URL,
        url: `${base}${OPEN311_PREFIX}`,
        changeset: OPEN311_CHANGESET,
        type: r.config.NODE_ENV === 'production' ? 'production' : 'test',
        formats: ['text/xml', 'application/json'],
      },
    ],
  };
}

// --- reading requests ----------------------------------------------------------------------

/** What GET shows of a ticket: the public part (category, status, coarse location, dates, who answers). */
interface PublicTicket {
  id: string;
  categoryCode: string;
  label: string;
  status: TicketStatus;
  collectivityId: string;
  service: string;
  lon: number;
  lat: number;
  createdAt: Date;
  updatedAt: Date;
  resolvedAt: Date | null;
  closedAt: Date | null;
  resolveDueAt: Date;
  duplicateOf: string | null;
}

const PUBLIC_COLUMNS = `t.id::text AS id, t.category_code AS "categoryCode", c.label, t.status, t.collectivity_id AS "collectivityId", t.service,
  ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, t.created_at AS "createdAt", t.updated_at AS "updatedAt", t.resolved_at AS "resolvedAt",
  t.closed_at AS "closedAt", t.resolve_due_at AS "resolveDueAt", t.duplicate_of::text AS "duplicateOf"`;

const isOpen = (status: TicketStatus) => OPEN_STATUSES.includes(status);

const STATUS_NOTES: Record<TicketStatus, string> = {
  NEW: 'Reported; not yet acknowledged by the service.',
  ACKNOWLEDGED: 'Acknowledged by the service.',
  ASSIGNED: 'Assigned to a field team.',
  IN_PROGRESS: 'Being worked on in the field.',
  RESOLVED: 'Resolved: the problem is reported fixed.',
  CLOSED: 'Closed.',
  REJECTED: 'Rejected: not a matter this service handles.',
  DUPLICATE: 'Duplicate of an earlier request.',
};

const w3c = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, 'Z');

function requestOf(ticket: PublicTicket, facts: TerritoryFacts): Open311Value {
  const [lon, lat] = coarsePoint(ticket.lon, ticket.lat);
  const open = isOpen(ticket.status);
  const closedAt = ticket.closedAt ?? ticket.resolvedAt ?? (ticket.status === 'DUPLICATE' ? ticket.createdAt : null);
  const agency = facts.collectivities.get(ticket.collectivityId)?.name ?? ticket.collectivityId;
  return {
    service_request_id: ticket.id,
    status: open ? 'open' : 'closed',
    status_notes: ticket.status === 'DUPLICATE' && ticket.duplicateOf ? `Duplicate of service request ${ticket.duplicateOf}: follow that one.` : STATUS_NOTES[ticket.status],
    service_name: ticket.label,
    service_code: ticket.categoryCode,
    // The description, exact location and address can identify the reporter: the public never sees them.
    description: null,
    agency_responsible: `${ticket.service}, ${agency}`,
    service_notice: null,
    requested_datetime: w3c(ticket.createdAt),
    updated_datetime: w3c(!open && closedAt ? closedAt : ticket.updatedAt),
    expected_datetime: w3c(ticket.resolveDueAt),
    address: null,
    address_id: null,
    zipcode: null,
    lat,
    long: lon,
    media_url: null,
  };
}

const TICKET_ID = /^[1-9][0-9]{0,18}$/;
const isTicketId = (id: string) => TICKET_ID.test(id) && BigInt(id) <= 9223372036854775807n;

async function oneRequest(r: TicketResources, state: Open311State, params: Parameters, id: string): Promise<Open311Value> {
  const jurisdictionId = await jurisdiction(r, state, params);
  const notFound = () => fail(404, `service_request_id: no service request '${printable(id)}'${jurisdictionId ? ` in jurisdiction ${jurisdictionId}` : ''}`);
  if (!isTicketId(id)) throw notFound();
  const { rows } = await r.db.pool.query<PublicTicket>(
    `SELECT ${PUBLIC_COLUMNS} FROM tickets t JOIN ticket_categories c ON c.code = t.category_code
     WHERE t.id = $1 AND ($2::text IS NULL OR t.collectivity_id = $2)`,
    [id, jurisdictionId ?? null],
  );
  if (rows.length === 0) throw notFound();
  const facts = await territoryFacts(r, state);
  return [requestOf(rows[0], facts)];
}

async function searchRequests(r: TicketResources, state: Open311State, params: Parameters): Promise<Open311Value> {
  const jurisdictionId = await jurisdiction(r, state, params);
  const ids = list(params, 'service_request_id');
  const conditions: string[] = ['($1::text IS NULL OR t.collectivity_id = $1)'];
  const values: unknown[] = [jurisdictionId ?? null];
  const add = (condition: (placeholder: string) => string, value: unknown) => {
    values.push(value);
    conditions.push(condition(`$${values.length}`));
  };
  let limit = MAX_PAGE_SIZE;
  let offset = 0;
  if (ids !== undefined) {
    // GeoReport v2: a list of ids overrides every other filter (but the jurisdiction).
    if (ids.length > MAX_IDS) throw badParameter('service_request_id', `at most ${MAX_IDS} ids`);
    const bad = ids.find((id) => !isTicketId(id));
    if (bad !== undefined) throw badParameter('service_request_id', `'${printable(bad)}' is not a service request id (ids are whole numbers)`);
    add((p) => `t.id = ANY(${p}::bigint[])`, ids);
  } else {
    const codes = list(params, 'service_code');
    if (codes !== undefined) {
      const known = new Set((await categories(r)).map((category) => category.code));
      const unknown = codes.find((code) => !known.has(code));
      if (unknown !== undefined) throw fail(404, `service_code: unknown service '${printable(unknown)}' (see services.json)`);
      add((p) => `t.category_code = ANY(${p}::text[])`, codes);
    }
    const statuses = list(params, 'status');
    if (statuses !== undefined) {
      const bad = statuses.find((s) => s !== 'open' && s !== 'closed');
      if (bad !== undefined) throw badParameter('status', `must be open, closed or open,closed, not '${printable(bad)}'`);
      if (statuses.length === 1) add((p) => `(t.status = ANY(${p}::text[])) = ${statuses[0] === 'open' ? 'true' : 'false'}`, OPEN_STATUSES);
    }
    const [start, end] = window(params);
    add((p) => `t.created_at >= ${p}`, new Date(start));
    add((p) => `t.created_at <= ${p}`, new Date(end));
    const pageSize = positiveInteger(params, 'page_size', MAX_PAGE_SIZE, MAX_PAGE_SIZE);
    const page = positiveInteger(params, 'page', MAX_PAGE, 1);
    limit = pageSize;
    offset = (page - 1) * pageSize;
  }
  values.push(limit, offset);
  const { rows } = await r.db.pool.query<PublicTicket>(
    `SELECT ${PUBLIC_COLUMNS} FROM tickets t JOIN ticket_categories c ON c.code = t.category_code
     WHERE ${conditions.join(' AND ')}
     ORDER BY t.created_at DESC, t.id DESC LIMIT $${values.length - 1} OFFSET $${values.length}`,
    values,
  );
  if (rows.length === 0) return [];
  const facts = await territoryFacts(r, state);
  return rows.map((row) => requestOf(row, facts));
}

/** [start, end] in epoch ms: the last 90 days by default; at most 90 days; end not before start. */
function window(params: Parameters): [number, number] {
  const start = dateTime(params, 'start_date');
  const end = dateTime(params, 'end_date');
  const span = WINDOW_DAYS * DAY_MS;
  if (start !== undefined && end !== undefined) {
    if (end < start) throw badParameter('end_date', 'is before start_date');
    if (end - start > span) throw badParameter('end_date', `the window from start_date to end_date spans more than ${WINDOW_DAYS} days`);
    return [start, end];
  }
  if (start !== undefined) return [start, start + span];
  const last = end ?? Date.now();
  return [last - span, last];
}

// --- creating a request --------------------------------------------------------------------

const API_KEY_REFUSALS = {
  missing: 'api_key: required to POST requests (ask the jurisdiction\'s administrators for a key)',
  unknown: 'api_key: invalid key',
  revoked: 'api_key: this key was revoked by the jurisdiction\'s administrators',
  disabled: 'api_key: the jurisdiction\'s public key is disabled; ask its administrators for a client key',
} as const;

const MEDIA_URL = /^https?:\/\/[^\s\u0000-\u001f]{1,2040}$/i;

async function postRequest(
  req: IncomingMessage,
  res: ServerResponse,
  r: TicketResources,
  state: Open311State,
  format: Open311Format,
  params: Parameters,
  address: string,
): Promise<void> {
  const jurisdictionId = await jurisdiction(r, state, params);
  const apiKey = params.get('api_key')?.trim();
  if (apiKey === undefined) throw fail(403, API_KEY_REFUSALS.missing);
  const key = await checkApiKey(r.db.pool, apiKey);
  if (!key.ok) throw fail(403, API_KEY_REFUSALS[key.reason]);
  if (jurisdictionId !== undefined && jurisdictionId !== key.collectivityId) {
    throw fail(403, `api_key: this key is for jurisdiction ${key.collectivityId}, not ${jurisdictionId}`);
  }
  const target = key.collectivityId;

  const code = params.get('service_code')?.trim();
  if (code === undefined) throw badParameter('service_code', 'required (see services.json)');
  const category = await serviceFor(r, state, code, target);

  const attribute = params.names().find((name) => name.startsWith('attribute['));
  if (attribute !== undefined) throw badParameter(printable(attribute), `service ${category.code} has no attributes (its metadata is false)`);

  const latText = params.get('lat');
  const longText = params.get('long');
  if (latText === undefined || longText === undefined) {
    const missing = latText === undefined && longText === undefined ? 'lat/long' : latText === undefined ? 'lat' : 'long';
    const addressOnly = params.get('address_string') !== undefined || params.get('address_id') !== undefined;
    throw badParameter(missing, `required${addressOnly ? ': this endpoint locates requests by lat and long only (address_string and address_id are not geocoded)' : ' (WGS84 decimal degrees)'}`);
  }
  const lat = coordinate(latText, 'lat', 90);
  const lon = coordinate(longText, 'long', 180);

  const mediaUrl = params.get('media_url')?.trim();
  if (mediaUrl !== undefined && !MEDIA_URL.test(mediaUrl)) throw badParameter('media_url', 'must be an http or https URL of at most 2,048 characters');

  await requireLocationIn(r, category, lon, lat, target, state);

  const firstName = params.get('first_name')?.trim();
  const lastName = params.get('last_name')?.trim();
  const name = [firstName, lastName].filter((part) => part !== undefined).join(' ');
  const request: ReportRequest = {
    category: category.code,
    lon,
    lat,
    // Required here (core refuses an empty one, naming `description`): a report says what the problem is.
    description: params.values.get('description') ?? '',
    name: name === '' ? null : name,
    email: params.get('email')?.trim() ?? null,
    phone: params.get('phone')?.trim() ?? null,
    photoIds: null,
    photoSecrets: null,
    source: 'OPEN311',
    open311ClientId: key.clientId,
  };
  const requestId = String(res.getHeader('x-request-id') ?? '') || undefined;
  const outcome = await createReport(r, request, { sub: null, roles: [], address, requestId });
  if (key.kind === 'client') {
    await touchClient(r.db.pool, key.clientId).catch((error) => r.log.warn({ err: (error as Error).message, open311ClientId: key.clientId }, 'Open311: last use of the key not recorded'));
  }
  r.log.info({ ticketId: outcome.ticket.id, open311ClientId: key.clientId, collectivityId: target, duplicate: outcome.duplicateOf !== null }, 'Open311 request created');
  req.resume();
  sendOpen311(res, 200, format, 'service_requests', [{ service_request_id: outcome.ticket.id, service_notice: outcome.notice }]);
}

/**
 * The key's jurisdiction must be the one that answers for the category at the point: a commune's
 * key does not file reports in another commune. Where territory refuses the point (outside the
 * territory...), core's createReport gives the error itself.
 */
async function requireLocationIn(r: TicketResources, category: CategoryFacts, lon: number, lat: number, target: string, state: Open311State): Promise<void> {
  const answer = await r.peers.query<{ competentCollectivity: { collectivity: { id: string } } }>(
    'territory',
    `query($category: String!, $lon: Float!, $lat: Float!) { competentCollectivity(category: $category, lon: $lon, lat: $lat) { collectivity { id } } }`,
    { category: category.serviceCategory, lon, lat },
  );
  const competent = answer.data?.competentCollectivity?.collectivity.id;
  if (competent === undefined || competent === target) return;
  const facts = await territoryFacts(r, state);
  const name = facts.collectivities.get(competent)?.name ?? competent;
  throw badParameter('lat/long', `this location is answered for by ${name} (jurisdiction ${competent}), not by jurisdiction ${target}: post it with a key of ${competent}`);
}
