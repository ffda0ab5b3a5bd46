/**
 * The Ingestor over a real database without a server: the process-wide resources it reads (config,
 * pool, bus, the real device directory fed by the seed's `equipment.changed` events, a metrics
 * registry), with an alarm engine a test chooses: storage tests put one there that waits inside
 * the ingest transaction and fails it at random, to make concurrent transactions overlap and roll back.
 */
import type pg from 'pg';
import type { Config } from '@connecte/shared/config';
import { createDatabase, type Database } from '@connecte/shared/db';
import { EventBus } from '@connecte/shared/events';
import { createLogger } from '@connecte/shared/log';
import { createMetrics, type Metrics } from '@connecte/shared/metrics';
import type { Worker } from '@connecte/shared/workers';
import { createTestDatabase, testConfig, type TestDatabase } from '@connecte/testkit';
import { DeviceDirectory } from '../src/directory.js';
import { Ingestor } from '../src/ingest.js';
import type { TelemetryResources } from '../src/resources.js';
import type { DeviceInfo, StoredReading } from '../src/types.js';

export interface AlarmHook {
  evaluate(client: pg.ClientBase, readings: StoredReading[]): Promise<void>;
}

export interface IngestHarness {
  r: TelemetryResources;
  config: Config;
  db: Database;
  database: TestDatabase;
  metrics: Metrics;
  /** Replace to run something inside each ingest transaction. */
  alarms: AlarmHook;
  /** Every device of the seed the directory knows, by id. */
  devices(): Map<string, DeviceInfo>;
  close(): Promise<void>;
}

export async function startIngestHarness(options: { env?: Record<string, string>; database?: TestDatabase; poolSize?: number } = {}): Promise<IngestHarness> {
  const database = options.database ?? (await createTestDatabase());
  const config = testConfig(database.url, { DB_POOL_SIZE: String(options.poolSize ?? 10), ...options.env });
  const db = createDatabase(config);
  const log = createLogger('telemetry-test', config);
  const events = new EventBus(db.pool, log);
  await events.start();
  const metrics = createMetrics('telemetry');
  const harness = { alarms: { evaluate: async () => {} } as AlarmHook } as IngestHarness;
  const r = {
    config,
    db,
    events,
    log,
    metrics,
    // Read at each call, so that a test may swap the hook.
    alarms: { evaluate: (client: pg.ClientBase, readings: StoredReading[]) => harness.alarms.evaluate(client, readings) },
  } as unknown as TelemetryResources & { directory: DeviceDirectory; ingestor: Ingestor };
  (r as { directory: DeviceDirectory }).directory = new DeviceDirectory(r);
  (r as { ingestor: Ingestor }).ingestor = new Ingestor(r);
  const worker: Worker = r.directory.worker();
  await worker.start();
  const { rows } = await db.pool.query<{ equipment_id: string }>('SELECT equipment_id FROM telemetry_devices');
  const known = await r.directory.lookup(rows.map((row) => row.equipment_id));
  Object.assign(harness, {
    r,
    config,
    db,
    database,
    metrics,
    devices: () => known,
    async close() {
      await worker.stop();
      await events.close();
      await db.close();
      if (!options.database) await database.drop();
    },
  });
  return harness;
}
