import { isIP } from 'node:net';
import { z } from 'zod';
import { isMetricName, METRICS, type MetricName } from './senml.js';

export const DEVELOPMENT_JWT_SECRET = 'connecte-hub-development-secret-not-for-production';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const urlWithProtocol = (protocols: string[]) =>
  z.string().refine((value) => {
    try {
      return protocols.includes(new URL(value).protocol);
    } catch {
      return false;
    }
  }, `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);

const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number between ${min} and ${max}`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be a whole number between ${min} and ${max}`);

const flag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

/** A decimal number written with digits and an optional fraction (`0.20`), within [min, max]. */
const decimalNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/, `must be a decimal number between ${min} and ${max} (e.g. 0.25)`)
    .transform(Number)
    .refine((n) => n >= min && n <= max, `must be a decimal number between ${min} and ${max}`);

/** A calendar date `YYYY-MM-DD` that exists. */
const calendarDate = z.string().refine((value) => {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (!match) return false;
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])));
  return date.toISOString().slice(0, 10) === value;
}, 'must be a calendar date written YYYY-MM-DD');

/** A comma-separated list; blanks around items are ignored. */
const list = z.string().transform((value) => value.split(',').map((item) => item.trim()).filter(Boolean));

const origin = z.string().refine((value) => {
  if (value === '*') return true;
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}, 'must be an origin such as https://app.example (scheme://host[:port], no path) or *');

/** `10.0.0.1`, `10.0.0.0/8`, `fd00::/8`: what TRUSTED_PROXIES lists. */
const addressOrRange = z.string().refine((value) => {
  const [address, bits, extra] = value.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}, 'must be IP addresses or CIDR ranges such as 10.0.0.0/8 or fd00::/8');

/** `speed=30,lat=30`: days per metric; each name must be one of the metric table (packages/shared/src/senml.ts). */
function parseMetricRetention(value: string): Partial<Record<MetricName, number>> {
  const result: Partial<Record<MetricName, number>> = {};
  for (const item of value.split(',').map((part) => part.trim()).filter(Boolean)) {
    const match = /^([a-z0-9_]+)\s*=\s*(\d{1,5})$/.exec(item);
    if (!match) throw new Error(`"${item}" is not name=days (e.g. speed=30)`);
    const [, name, days] = match;
    if (!isMetricName(name)) throw new Error(`"${name}" is not a metric (known: ${Object.keys(METRICS).join(', ')})`);
    if (Number(days) < 1 || Number(days) > 36_600) throw new Error(`${name}: days must be between 1 and 36600`);
    if (name in result) throw new Error(`${name} is given twice`);
    result[name] = Number(days);
  }
  return result;
}

const metricRetention = z.string().transform((value, ctx) => {
  try {
    return parseMetricRetention(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `must be name=days,... of metrics: ${(error as Error).message}` });
    return z.NEVER;
  }
});

/**
 * The base every service shares (database, broker, auth, logging, ports, timeouts, limits);
 * a service with variables of its own extends it with `extendConfig`.
 */
export const baseVariables = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  DATABASE_URL: urlWithProtocol(['postgresql:', 'postgres:']).default(
    'postgresql://postgres:postgres@127.0.0.1:5432/connecte',
  ),
  MQTT_URL: urlWithProtocol(['mqtt:', 'mqtts:', 'ws:', 'wss:']).default('mqtt://127.0.0.1:1883'),
  /** The hub's account on the broker (its dynamic-security admin); set with MQTT_PASSWORD, or neither for an anonymous broker. */
  MQTT_USERNAME: z.string().max(256, 'must be at most 256 characters').regex(/^[^/+#\s]+$/, 'must be a name without /, +, # or blanks').optional(),
  MQTT_PASSWORD: z.string().max(1024, 'must be at most 1024 characters').optional(),
  PORT: z
    .string()
    .regex(/^\d+$/, 'must be a whole number between 0 and 65535')
    .transform(Number)
    .refine((port) => port <= 65535, 'must be a whole number between 0 and 65535')
    .optional(),
  HOST: z.string().min(1, 'must not be empty').default('127.0.0.1'),
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters long').optional(),
  JWT_JWKS_URL: urlWithProtocol(['http:', 'https:']).optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  DB_POOL_SIZE: z
    .string()
    .regex(/^[1-9]\d*$/, 'must be a positive whole number')
    .transform(Number)
    .default(10),

  // --- timeouts ----------------------------------------------------------------------
  /** A statement running longer is cancelled by PostgreSQL (57014). */
  DB_STATEMENT_TIMEOUT_MS: wholeNumber(100, 3_600_000).default(15_000),
  /** Waiting longer for a pool connection (or to open one) fails the request. */
  DB_CONNECTION_TIMEOUT_MS: wholeNumber(100, 600_000).default(5_000),
  /** The gateway gives up on a subgraph's answer after this long. */
  SUBGRAPH_TIMEOUT_MS: wholeNumber(100, 600_000).default(10_000),

  // --- request limits (gateway and every subgraph) -----------------------------------
  MAX_BODY_BYTES: wholeNumber(1_024, 100 * 1024 * 1024).default(1024 * 1024),
  MAX_QUERY_DEPTH: wholeNumber(1, 1_000).default(15),
  MAX_QUERY_ALIASES: wholeNumber(0, 10_000).default(30),
  MAX_QUERY_ROOT_FIELDS: wholeNumber(1, 10_000).default(20),
  MAX_QUERY_TOKENS: wholeNumber(10, 1_000_000).default(3_000),
  /** Every field costs 1; a list field multiplies its selection by its page size (`first`). */
  MAX_QUERY_COST: wholeNumber(1, 1_000_000_000).default(50_000),
  /** Requests per minute per client address (anonymous callers); 0 disables. */
  RATE_LIMIT_PER_ADDRESS: wholeNumber(0).default(600),
  /** Requests per minute per token subject (authenticated callers); 0 disables. */
  RATE_LIMIT_PER_TOKEN: wholeNumber(0).default(1_200),
  /** Origins allowed to call from a browser (`https://app.example`), comma-separated; `*` for any. */
  CORS_ALLOWED_ORIGINS: list.pipe(z.array(origin)).default([]),
  /** Introspection is on by default, except in production. */
  GRAPHQL_INTROSPECTION: flag.optional(),
  /** JSON file of registered operations (`{ "<sha256 hex>": "<query>" }`): the allow-list. */
  PERSISTED_OPERATIONS_FILE: z.string().min(1, 'must be a file path').optional(),
  /** Only registered operations run (allow-list mode); requires PERSISTED_OPERATIONS_FILE. */
  PERSISTED_OPERATIONS_ONLY: flag.default(false),
  /** Addresses (or CIDR ranges) of reverse proxies whose X-Forwarded-* headers are believed. */
  TRUSTED_PROXIES: list.pipe(z.array(addressOrRange)).default([]),
  /** The hub's public address, for absolute links (catalogue, datasets). */
  PUBLIC_BASE_URL: urlWithProtocol(['http:', 'https:']).default('http://localhost:4000'),

  // --- open data ---------------------------------------------------------------------
  /**
   * k of the citizen reports' publication (`geojson/citizen-reports.geojson`): a grid cell, and
   * within it a category, a stage or a week, is published only with at least k reports.
   */
  OPENDATA_K_ANONYMITY: wholeNumber(2, 1_000).default(5),
  /** Milliseconds during which open-data requests reuse a representation's version read a moment ago (bytes cached), at most a tenth of its max-age; 0: every request reads it. */
  OPENDATA_VERSION_REUSE_MS: wholeNumber(0, 60_000).default(1_000),
  /** Open-data requests per second per client address (IPv6: per /64), sustained; 0 disables the limit. */
  OPENDATA_RATE_PER_SECOND: wholeNumber(0, 100_000).default(10),
  /** Requests one address may send at once before the per-second rate applies (a harvest, a page of tiles). */
  OPENDATA_RATE_BURST: wholeNumber(1, 1_000_000).default(60),
  /** Client addresses or CIDR ranges never throttled (the national access point's harvester…), comma-separated. */
  OPENDATA_RATE_ALLOWLIST: list.pipe(z.array(addressOrRange)).default([]),
  /** The open-data catalogue's contact point (`dcat:contactPoint` vcard:hasEmail), a service address; unset: the index page. */
  OPENDATA_CONTACT_EMAIL: z.string().regex(/^[^\s@<>"]+@[^\s@<>"]+\.[^\s@<>"]+$/, 'must be an e-mail address such as opendata@example.org').optional(),

  // --- tokens ------------------------------------------------------------------------
  /** Longest accepted token lifetime (from `iat`, or from now without one). */
  JWT_MAX_LIFETIME_SECONDS: wholeNumber(60, 365 * 86_400).default(86_400),
  /** When set, tokens must carry this `iss`. */
  JWT_ISSUER: z.string().min(1).optional(),
  /** When set, tokens must carry this `aud`. */
  JWT_AUDIENCE: z.string().min(1).optional(),

  // --- subscriptions -----------------------------------------------------------------
  /** Events queued for one subscriber that does not read; past it the stream ends (resume with the cursor). */
  SUBSCRIPTION_QUEUE_LIMIT: wholeNumber(1, 1_000_000).default(1_000),

  // --- energy figures (telemetry's Query.energy; docs/runtime.md says where each default comes from)
  /** Price of a kWh saved, euros: values `savedEuros`. */
  ENERGY_PRICE_EUR_PER_KWH: decimalNumber(0, 100).default(0.2),
  /** Emission factor of a kWh saved, kg CO2eq: RTE's carbon intensity of French electricity in 2024. */
  CO2_KG_PER_KWH: decimalNumber(0, 10).default(0.0217),
  /** The contract's energy-savings target over its whole term, euros, shared by the collectivities. */
  SAVINGS_TARGET_EUROS: wholeNumber(0, 1_000_000_000_000).default(17_000_000),
  /** First day of the contract's term (Europe/Paris). */
  CONTRACT_START: calendarDate.default('2024-01-01'),
  /** Length of the contract's term, years. */
  CONTRACT_YEARS: wholeNumber(1, 50).default(5),

  // --- telemetry ingest and retention ------------------------------------------------
  /** Days readings are kept (and accepted back in time), unless TELEMETRY_RETENTION says otherwise for a metric. */
  TELEMETRY_RETENTION_DAYS: wholeNumber(1, 36_600).default(400),
  /** Per-metric retention in days, `name=days,...` (names of the metric table). */
  TELEMETRY_RETENTION: metricRetention.default(parseMetricRetention('speed=30,lat=30,lon=30')),
  /** Daily partitions of readings created ahead of today. */
  TELEMETRY_PARTITIONS_AHEAD_DAYS: wholeNumber(1, 366).default(7),
  /** Largest HTTP ingest body (413 beyond). */
  INGEST_MAX_BYTES: wholeNumber(1_024, 100 * 1024 * 1024).default(1024 * 1024),
  /** Most records in one SenML pack (413 over HTTP, refused whole over MQTT). */
  INGEST_MAX_RECORDS: wholeNumber(1, 1_000_000).default(5_000),

  // --- telemetry alarms --------------------------------------------------------------
  /** How often the silence sweep looks for devices that stopped reporting; 0 turns it off. */
  ALARM_SWEEP_INTERVAL_MS: wholeNumber(0, 86_400_000).default(30_000),

  // --- MQTT ingestion (telemetry's mqtt-ingest worker) ---------------------------------
  /** This ingestor's broker session: the same across its restarts, distinct per instance. Default: from the host name. */
  MQTT_CLIENT_ID: z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters').optional(),
  /** The shared-subscription group (`$share/<group>/…`): the ingestors of one group share the messages. Default `telemetry`. */
  MQTT_INGEST_GROUP: z.string().max(100, 'must be at most 100 characters').regex(/^[^/+#\s]+$/, 'must be a name without /, +, # or blanks').optional(),
  /** Messages per ingest transaction at most. */
  MQTT_INGEST_BATCH_SIZE: wholeNumber(1, 10_000).default(500),
  /** A batch that is not full is committed this long after its first message. */
  MQTT_INGEST_BATCH_MS: wholeNumber(0, 1_000).default(5),
  /** Ingest transactions in flight at once (each holds a pool connection). */
  MQTT_INGEST_CONCURRENCY: wholeNumber(1, 32).default(3),

  // --- tickets (citizen reports, photos, GRC webhook, personal data) -----------------
  /** Months after a ticket closes when its reporter's contact data and photos are erased (GDPR retention); at least 1. */
  TICKETS_PERSONAL_DATA_RETENTION_MONTHS: wholeNumber(1, 120).default(12),
  /** Days after which a RESOLVED ticket its reporter has not reopened is CLOSED by the retention worker (its retention then starts). */
  TICKETS_AUTO_CLOSE_DAYS: wholeNumber(1, 3_650).default(14),
  /** How often the retention worker runs; 0 turns it off (it still runs once at start). */
  TICKETS_RETENTION_INTERVAL_MS: wholeNumber(0, 86_400_000).default(3_600_000),
  /** Largest photo upload, bytes (413 beyond). */
  TICKETS_PHOTO_MAX_BYTES: wholeNumber(1_024, 50 * 1024 * 1024).default(8 * 1024 * 1024),
  /** Largest photo side kept, pixels: larger photos are scaled down when re-encoded. */
  TICKETS_PHOTO_MAX_SIDE: wholeNumber(64, 10_000).default(2_048),
  /** Whether a new report is attached to an open one of its category within 50 m and 7 days (off only to measure its cost). */
  TICKETS_DUPLICATE_DETECTION: flag.default(true),
  /** Reports per hour per reporter (account, e-mail or phone) and per client address; 0 disables. */
  TICKETS_REPORTS_PER_HOUR: wholeNumber(0, 1_000_000).default(20),
  // --- Mobility (subgraphs/mobility; docs/mobility.md) ---------------------------------------
  /** A late bus asks a signal controller for priority when it is this close to the intersection (metres along its route). */
  MOBILITY_PRIORITY_DISTANCE_M: wholeNumber(20, 2_000).default(150),
  /** ... and at least this many seconds behind its schedule. */
  MOBILITY_PRIORITY_MIN_DELAY_S: wholeNumber(0, 3_600).default(60),
  /** The priority downlink's `ttl`: a request not acknowledged within it is EXPIRED; a position older than this asks for no priority. */
  MOBILITY_PRIORITY_TTL_S: wholeNumber(1, 600).default(20),
  /** Consecutive unanswered requests after which a controller is reported faulty (telemetry's SIGNAL_PRIORITY_FAULT). */
  MOBILITY_PRIORITY_FAULT_AFTER: wholeNumber(1, 100).default(3),
  /** Fastest a bus may go: a position reporting (or implying) more is flagged, not taken (m/s). */
  MOBILITY_MAX_SPEED_MPS: wholeNumber(5, 100).default(36),
  /** A position farther than this from its trip's shape is off route (metres). */
  MOBILITY_OFF_ROUTE_M: wholeNumber(10, 5_000).default(120),
  /** A parking count older than this is STALE (seconds). */
  MOBILITY_PARKING_STALE_S: wholeNumber(60, 86_400).default(900),
  /** The collectivities' citizen-relations (GRC) system: every ticket change is POSTed there, signed. Unset: no export. */
  GRC_WEBHOOK_URL: urlWithProtocol(['http:', 'https:']).optional(),
  /** The HMAC-SHA256 key of the webhook's signature (required with GRC_WEBHOOK_URL). */
  GRC_WEBHOOK_SECRET: z.string().min(32, 'must be at least 32 characters long').optional(),
  /** The receiver's answer is awaited this long per delivery. */
  GRC_WEBHOOK_TIMEOUT_MS: wholeNumber(100, 600_000).default(10_000),
});

type BaseVariables = z.infer<typeof baseVariables>;

/** Rules that tie base variables together, kept by every extension. */
function checkBase(env: BaseVariables, ctx: z.RefinementCtx): void {
  if (env.NODE_ENV === 'production' && !env.JWT_SECRET && !env.JWT_JWKS_URL) {
    ctx.addIssue({
      code: 'custom',
      path: ['JWT_SECRET'],
      message: 'is required when NODE_ENV=production (or set JWT_JWKS_URL)',
    });
  }
  if (env.PERSISTED_OPERATIONS_ONLY && !env.PERSISTED_OPERATIONS_FILE) {
    ctx.addIssue({ code: 'custom', path: ['PERSISTED_OPERATIONS_FILE'], message: 'is required when PERSISTED_OPERATIONS_ONLY=true' });
  }
  if (env.GRC_WEBHOOK_URL && !env.GRC_WEBHOOK_SECRET) ctx.addIssue({ code: 'custom', path: ['GRC_WEBHOOK_SECRET'], message: 'is required when GRC_WEBHOOK_URL is set' });
  if (env.MQTT_USERNAME && !env.MQTT_PASSWORD) ctx.addIssue({ code: 'custom', path: ['MQTT_PASSWORD'], message: 'is required when MQTT_USERNAME is set' });
  if (env.MQTT_PASSWORD && !env.MQTT_USERNAME) ctx.addIssue({ code: 'custom', path: ['MQTT_USERNAME'], message: 'is required when MQTT_PASSWORD is set' });
}

export type Config = Omit<BaseVariables, 'JWT_SECRET' | 'GRAPHQL_INTROSPECTION'> & {
  JWT_SECRET: string;
  GRAPHQL_INTROSPECTION: boolean;
};

/** A service's configuration schema: the base plus its own variables; `T` is what `loadConfig` returns. */
export interface ConfigSchema<T extends Config = Config> {
  readonly variables: z.ZodObject;
  /** Phantom: carries the loaded type. */
  readonly loaded?: T;
}

const BASE_CONFIG: ConfigSchema = { variables: baseVariables };

/**
 * The base plus a service's own variables (e.g. `{ INGEST_BATCH_SIZE: z.string()... }`), validated
 * with the base in one pass. A base variable cannot be redefined: it means the same in every service.
 */
export function extendConfig<S extends z.ZodRawShape>(shape: S): ConfigSchema<Config & z.infer<z.ZodObject<S>>> {
  const redefined = Object.keys(shape).filter((key) => key in baseVariables.shape);
  if (redefined.length > 0) {
    throw new Error(`extendConfig: ${redefined.join(', ')} ${redefined.length === 1 ? 'is a base variable' : 'are base variables'}; extend the base with new names`);
  }
  return { variables: baseVariables.extend(shape) };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses and validates the environment once, against the base or a service's `extendConfig`
 * schema; throws a ConfigError naming each bad variable.
 */
export function loadConfig<T extends Config = Config>(env: NodeJS.ProcessEnv = process.env, schema: ConfigSchema<T> = BASE_CONFIG as ConfigSchema<T>): T {
  const relevant = Object.fromEntries(
    Object.keys(schema.variables.shape).map((key) => [key, env[key] === '' ? undefined : env[key]]),
  );
  const parsed = schema.variables.superRefine((values, ctx) => checkBase(values as BaseVariables, ctx)).safeParse(relevant);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`),
    );
  }
  const data = parsed.data as BaseVariables;
  return {
    ...data,
    JWT_SECRET: data.JWT_SECRET ?? DEVELOPMENT_JWT_SECRET,
    GRAPHQL_INTROSPECTION: data.GRAPHQL_INTROSPECTION ?? data.NODE_ENV !== 'production',
  } as T;
}

/** For service entry points: print every bad variable and exit 1 instead of a stack trace. */
export function loadConfigOrExit<T extends Config = Config>(env: NodeJS.ProcessEnv = process.env, schema?: ConfigSchema<T>): T {
  try {
    return loadConfig(env, schema);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}
