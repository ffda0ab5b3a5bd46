import { z } from 'zod';

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

const variables = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  DATABASE_URL: urlWithProtocol(['postgresql:', 'postgres:']).default(
    'postgresql://postgres:postgres@127.0.0.1:5432/connecte',
  ),
  MQTT_URL: urlWithProtocol(['mqtt:', 'mqtts:', 'ws:', 'wss:']).default('mqtt://127.0.0.1:1883'),
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
});

const schema = variables.superRefine((env, ctx) => {
  if (env.NODE_ENV === 'production' && !env.JWT_SECRET && !env.JWT_JWKS_URL) {
    ctx.addIssue({
      code: 'custom',
      path: ['JWT_SECRET'],
      message: 'is required when NODE_ENV=production (or set JWT_JWKS_URL)',
    });
  }
});

export type Config = Omit<z.infer<typeof schema>, 'JWT_SECRET'> & { JWT_SECRET: string };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses and validates the environment once; throws a ConfigError naming each bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const relevant = Object.fromEntries(
    Object.keys(variables.shape).map((key) => [key, env[key] === '' ? undefined : env[key]]),
  );
  const parsed = schema.safeParse(relevant);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.') || 'environment'}: ${issue.message}`),
    );
  }
  return { ...parsed.data, JWT_SECRET: parsed.data.JWT_SECRET ?? DEVELOPMENT_JWT_SECRET };
}

/** For service entry points: print every bad variable and exit 1 instead of a stack trace. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
}
