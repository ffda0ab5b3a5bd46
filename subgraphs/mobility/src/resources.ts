/**
 * What lives as long as the process, per database: configuration, pools, the peers (equipment),
 * the asset directory, the network in memory, the vehicle tracker, parking occupancy, signal
 * priority, and the workers built on them. Created by the workers factory (which has the
 * configuration) before the server takes requests; requests find it.
 */
import type pg from 'pg';
import type { Config } from '@connecte/shared/config';
import type { DurableConsumer } from '@connecte/shared/durable-consumer';
import { inTransaction, type Database } from '@connecte/shared/db';
import type { EventBus } from '@connecte/shared/events';
import type { Logger } from '@connecte/shared/log';
import type { Metrics } from '@connecte/shared/metrics';
import type { Peers } from '@connecte/shared/peers';
import type { Worker } from '@connecte/shared/workers';
import { AssetDirectory } from './asset-directory.js';
import { NetworkCache } from './network.js';
import { ParkingOccupancy } from './parking-occupancy.js';
import { readingsWorker } from './readings-consumer.js';
import { SignalPriority } from './signal-priority.js';
import { vehicleAssignmentsWorker } from './vehicle-assignments.js';
import { VehicleTracker } from './vehicle-tracker.js';

export interface MobilityResourceOptions {
  config: Config;
  db: Database;
  events: EventBus;
  log: Logger;
  peers: Peers;
  /** The service's Prometheus registry (absent outside a server, e.g. in a bench). */
  metrics?: Metrics;
}

export class MobilityResources {
  readonly config: Config;
  readonly db: Database;
  readonly events: EventBus;
  readonly log: Logger;
  readonly peers: Peers;
  readonly metrics: Metrics | null;
  /** Buses, stops, parking facilities and sensors, signal controllers (from `equipment.changed`). */
  readonly directory: AssetDirectory;
  /** The imported GTFS network, in memory (reloaded on `mobility.network`). */
  readonly network: NetworkCache;
  /** Signal priority: told of every vehicle state the tracker stores; sends requests, reads acks. */
  readonly priority: SignalPriority;
  /** Buses' live state from their position readings. */
  readonly tracker: VehicleTracker;
  /** Parking facilities' occupancy from counters and bay sensors. */
  readonly parking: ParkingOccupancy;
  /** The consumer of telemetry's readings (tests await `caughtUp()` on it); built with the workers. */
  readings: DurableConsumer | null = null;

  constructor(options: MobilityResourceOptions) {
    this.config = options.config;
    this.db = options.db;
    this.events = options.events;
    this.log = options.log;
    this.peers = options.peers;
    this.metrics = options.metrics ?? null;
    this.directory = new AssetDirectory(this);
    this.network = new NetworkCache(this);
    this.priority = new SignalPriority(this);
    this.tracker = new VehicleTracker(this, this.priority);
    this.parking = new ParkingOccupancy(this);
  }

  /** Runs `work` in a transaction on a pool connection of its own (a failed connection is not reused). */
  inTransaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.db.pool, work);
  }

  /** In the registry's order: asset-directory, network, vehicle-assignments, readings, signal-priority. */
  workers(): Worker[] {
    return [
      this.directory.worker(),
      this.network.worker(),
      vehicleAssignmentsWorker(this),
      (this.readings = readingsWorker(this, [this.tracker, this.parking])),
      this.priority.worker(),
    ];
  }
}
