/**
 * HTTP modules the gateway serves on its own port under a path prefix (`/opendata`, later
 * `/open311/v2`, `/ingest`), each declared once here: the gateway mounts every declared module,
 * starts its workers with its own, reports them on `/readyz` and releases what each holds on
 * shutdown. A module is not a subgraph: the gateway still loads no subgraph code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import pg from 'pg';
import { createOpendataHandler } from '@connecte/opendata';
import type { Config } from '@connecte/shared/config';
import { sendJson } from '@connecte/shared/http';
import type { Logger } from '@connecte/shared/log';
import { poolOptions } from '@connecte/shared/timeouts';
import { ROUTE_PREFIX } from '@connecte/shared/registry';
import type { Worker } from '@connecte/shared/workers';

/** A handler for everything under a mounted prefix. */
export type RouteHandler = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>;

export interface MountedModule {
  handle: RouteHandler;
  /** Started with the gateway's workers, stopped before `close`. */
  workers?: Worker[];
  /** Releases what the module holds (its pool...), once the server has stopped. */
  close?: () => Promise<void>;
}

export interface GatewayModule {
  /** The path prefix it serves: the prefix itself and everything under it. */
  prefix: string;
  create(resources: { config: Config; log: Logger }): MountedModule;
}

/** The open data (DCAT catalogue, datasets), from the `opendata_*` views through a pool of its own. */
export const opendataModule: GatewayModule = {
  prefix: '/opendata',
  create({ config, log }) {
    const pool = new pg.Pool({ ...poolOptions(config), max: 4 });
    pool.on('error', (error) => log.warn({ err: error }, 'open-data database connection lost'));
    const opendata = createOpendataHandler({
      pool,
      publicUrl: config.PUBLIC_BASE_URL,
      trustedProxies: config.TRUSTED_PROXIES,
      contactEmail: config.OPENDATA_CONTACT_EMAIL,
      versionReuseMs: config.OPENDATA_VERSION_REUSE_MS,
      rateLimit: { perSecond: config.OPENDATA_RATE_PER_SECOND, burst: config.OPENDATA_RATE_BURST, allowlist: config.OPENDATA_RATE_ALLOWLIST },
    });
    return {
      handle: async (request, response) => {
        if (!(await opendata(request, response))) sendJson(response, 404, { error: `No route for ${request.url}` });
      },
      close: () => pool.end(),
    };
  },
};

/** Every module the gateway mounts by default, in the order they are mounted. */
export const GATEWAY_MODULES: readonly GatewayModule[] = [opendataModule];

/** Refuses two modules on one prefix (or on one already taken), or a prefix that is not a path (`/name[/name...]`). */
export function checkModules(modules: readonly GatewayModule[], reserved: readonly string[]): void {
  const problems: string[] = [];
  const seen = new Set<string>(reserved);
  for (const { prefix } of modules) {
    if (!ROUTE_PREFIX.test(prefix)) problems.push(`module prefix "${prefix}" must be a path such as /opendata (no trailing slash)`);
    else if (seen.has(prefix)) problems.push(`module prefix "${prefix}" is already served`);
    seen.add(prefix);
  }
  if (problems.length > 0) throw new Error(`Invalid gateway modules:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
}
