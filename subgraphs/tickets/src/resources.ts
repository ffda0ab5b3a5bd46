/**
 * What lives as long as the process, per database: configuration, pools, the peers (territory,
 * equipment), the report rate limits, and the workers built on them. Created by the workers
 * factory (which has the configuration) before the server takes requests; requests find it.
 */
import type pg from 'pg';
import type { Config } from '@connecte/shared/config';
import { inTransaction, type Database } from '@connecte/shared/db';
import type { EventBus } from '@connecte/shared/events';
import type { Logger } from '@connecte/shared/log';
import type { Metrics } from '@connecte/shared/metrics';
import type { Peers } from '@connecte/shared/peers';
import type { Worker } from '@connecte/shared/workers';
import { knownAlarmsWorker } from './known-alarms.js';
import { grcOutboxWorker } from './grc-outbox.js';
import { retentionWorker } from './retention.js';

export interface TicketResourceOptions {
  config: Config;
  db: Database;
  events: EventBus;
  log: Logger;
  peers: Peers;
  /** The service's Prometheus registry (absent outside a server, e.g. in a bench). */
  metrics?: Metrics;
}

export class TicketResources {
  readonly config: Config;
  readonly db: Database;
  readonly events: EventBus;
  readonly log: Logger;
  readonly peers: Peers;
  readonly metrics: Metrics | null;
  /** Whether ticket changes are queued for the GRC webhook (GRC_WEBHOOK_URL is set). */
  readonly exportToGrc: boolean;

  constructor(options: TicketResourceOptions) {
    this.config = options.config;
    this.db = options.db;
    this.events = options.events;
    this.log = options.log;
    this.peers = options.peers;
    this.metrics = options.metrics ?? null;
    this.exportToGrc = options.config.GRC_WEBHOOK_URL !== undefined;
  }

  /** Runs `work` in a transaction on a pool connection of its own (a failed connection is not reused). */
  inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.db.pool, work);
  }

  /** In the registry's order: known-alarms, grc-outbox, retention. */
  workers(): Worker[] {
    return [knownAlarmsWorker(this), grcOutboxWorker(this), retentionWorker(this)];
  }
}
