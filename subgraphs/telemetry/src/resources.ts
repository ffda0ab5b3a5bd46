/**
 * What lives as long as the process, per database: the device directory, the credential store,
 * the ingestor, the alarm engine and the workers built on them. Created by the workers factory
 * (which has the configuration) before the server takes requests; the request context finds it.
 */
import type { Config } from '@connecte/shared/config';
import type { Database } from '@connecte/shared/db';
import type { EventBus } from '@connecte/shared/events';
import type { Logger } from '@connecte/shared/log';
import type { Metrics } from '@connecte/shared/metrics';
import type { Worker } from '@connecte/shared/workers';
import { AlarmEngine } from './alarm-engine.js';
import { BrokerAuth } from './broker-auth.js';
import { CredentialStore } from './credentials.js';
import { DeviceDirectory } from './directory.js';
import { Ingestor } from './ingest.js';
import { mqttIngestWorker } from './mqtt-ingest.js';
import { partitionWorker } from './partitions.js';

export interface TelemetryResourceOptions {
  config: Config;
  db: Database;
  events: EventBus;
  log: Logger;
  /** The service's Prometheus registry (absent outside a server, e.g. in a bench). */
  metrics?: Metrics;
}

export class TelemetryResources {
  readonly config: Config;
  readonly db: Database;
  readonly events: EventBus;
  readonly log: Logger;
  readonly metrics: Metrics | null;
  readonly directory: DeviceDirectory;
  readonly credentials: CredentialStore;
  readonly brokerAuth: BrokerAuth;
  readonly alarms: AlarmEngine;
  readonly ingestor: Ingestor;

  constructor(options: TelemetryResourceOptions) {
    this.config = options.config;
    this.db = options.db;
    this.events = options.events;
    this.log = options.log;
    this.metrics = options.metrics ?? null;
    this.directory = new DeviceDirectory(this);
    this.credentials = new CredentialStore(this);
    this.brokerAuth = new BrokerAuth(this);
    this.alarms = new AlarmEngine(this);
    this.ingestor = new Ingestor(this);
  }

  /** In the registry's order: device-directory, partitions, broker-auth, mqtt-ingest, alarms. */
  workers(): Worker[] {
    return [this.directory.worker(), partitionWorker(this), this.brokerAuth.worker(), mqttIngestWorker(this), this.alarms.worker()];
  }
}
