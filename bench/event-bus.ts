/**
 * Event bus delivery: the sound bound (a checkpoint's xid R, settled once xmin ≥ R) against
 * the previous one (a snapshot's xmax, "final" as soon as xmin = xmax), same run, same load.
 *
 * A throwaway database; 8 writers at ~1,000 events/s in total, each transaction taking its
 * xid first (as the real write path does with SELECT … FOR UPDATE), then pausing 0–4 ms before
 * drawing its event id and 0–2 ms before committing, 2 % rolled back. Two buses read the very
 * same events at the same time, each with its own pool and 100 live subscribers. Latency runs
 * from the moment COMMIT is sent to the moment a subscriber's iterator yields the event.
 * Prints p50/p99, the events each subscriber missed, and the checkpoints taken (one xid each).
 *
 *   npx tsx bench/event-bus.ts
 *
 * The previous bound lives here, not in packages/shared: EventBus exposes one protected
 * method, `readCheckpoint`, which this file overrides; production code keeps only the sound one.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { EventBus, publishEvent, type Checkpoint } from '@connecte/shared/events';
import { createLogger } from '@connecte/shared/log';
import { createTestDatabase } from '@connecte/testkit';

const WRITERS = 8;
const EVENTS_PER_SECOND = 1_000;
const SUBSCRIBERS = 100;
const DURATION_MS = 10_000;
const ROLLBACK_RATE = 0.02;
/** After the writers stop: time for the last events to arrive. */
const DRAIN_MS = 3_000;
const TOPIC = 'bench';

const percentile = (sorted: Float64Array, p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

/** The sound bound, counting its checkpoints (each assigns one xid). */
class FixedBoundBus extends EventBus {
  checkpointReads = 0;
  protected override readCheckpoint(): Promise<Checkpoint> {
    this.checkpointReads++;
    return super.readCheckpoint();
  }
}

/** The previous bound: ids ≤ max(id) final once xmin ≥ the snapshot's xmax, at once if xmin = xmax. */
class XmaxBoundBus extends EventBus {
  checkpointReads = 0;
  protected override async readCheckpoint(): Promise<Checkpoint> {
    this.checkpointReads++;
    const { rows } = await this.pool.query<{ xmin: string; xmax: string; max_id: string }>(
      `SELECT pg_snapshot_xmin(s)::text AS xmin, pg_snapshot_xmax(s)::text AS xmax,
              (SELECT coalesce(max(id), 0) FROM events)::text AS max_id
       FROM pg_current_snapshot() AS s`,
    );
    return { mark: BigInt(rows[0].xmax), maxId: BigInt(rows[0].max_id), xmin: BigInt(rows[0].xmin) };
  }
}

interface Measured {
  name: string;
  bus: FixedBoundBus | XmaxBoundBus;
  pool: pg.Pool;
  latencies: number[];
  received: Set<string>[];
  done: Promise<void>[];
}

const database = await createTestDatabase({ seed: false });
const log = createLogger('event-bus-bench', { LOG_LEVEL: 'silent' });
const writerPool = new pg.Pool({ connectionString: database.url, max: WRITERS });
const measured: Measured[] = [];
try {
  /** When each event's COMMIT was sent. */
  const commitSentAt = new Map<string, number>();
  const committed: string[] = [];
  let rolledBack = 0;

  for (const [name, Bus] of [
    ['sound bound (xid after the snapshot)', FixedBoundBus],
    ['previous bound (snapshot xmax)', XmaxBoundBus],
  ] as const) {
    const pool = new pg.Pool({ connectionString: database.url, max: 4 });
    const bus = new Bus(pool, log);
    await bus.start();
    const run: Measured = { name, bus, pool, latencies: [], received: [], done: [] };
    for (let n = 0; n < SUBSCRIBERS; n++) {
      const received = new Set<string>();
      run.received.push(received);
      run.done.push(
        (async () => {
          for await (const event of bus.subscribe({ topics: [TOPIC] })) {
            run.latencies.push(performance.now() - commitSentAt.get(event.id)!);
            received.add(event.id);
          }
        })(),
      );
    }
    measured.push(run);
  }

  const started = performance.now();
  const interval = (1_000 * WRITERS) / EVENTS_PER_SECOND;
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, writer) => {
      const client = await writerPool.connect();
      try {
        for (let n = 0; ; n++) {
          const due = started + (n + writer / WRITERS) * interval;
          if (due > started + DURATION_MS) return;
          if (due > performance.now()) await sleep(due - performance.now());
          await client.query('BEGIN');
          await client.query('SELECT pg_current_xact_id()');
          await sleep(Math.random() * 4);
          const id = await publishEvent(client, { topic: TOPIC, collectivityId: null, payload: { writer, n } });
          await sleep(Math.random() * 2);
          if (Math.random() < ROLLBACK_RATE) {
            await client.query('ROLLBACK');
            rolledBack++;
          } else {
            commitSentAt.set(id, performance.now());
            await client.query('COMMIT');
            committed.push(id);
          }
        }
      } finally {
        client.release();
      }
    }),
  );
  const wrote = performance.now() - started;
  await sleep(DRAIN_MS);
  for (const run of measured) await run.bus.close();
  await Promise.all(measured.flatMap((run) => run.done));

  console.log(
    `${committed.length.toLocaleString('en')} events committed (${rolledBack} rolled back) by ${WRITERS} writers in ` +
      `${(wrote / 1_000).toFixed(1)} s (${Math.round((committed.length * 1_000) / wrote)}/s), ${SUBSCRIBERS} live subscribers per bus`,
  );
  const figures = measured.map((run) => {
    const sorted = Float64Array.from(run.latencies).sort();
    const missed = run.received.map((received) => committed.filter((id) => !received.has(id)).length);
    const result = {
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      missedMin: Math.min(...missed),
      missedMax: Math.max(...missed),
      missedMean: missed.reduce((a, b) => a + b, 0) / missed.length,
    };
    console.log(
      `  ${run.name.padEnd(38)} p50 ${fmt(result.p50)}  p99 ${fmt(result.p99)}  ` +
        `events missed per subscriber: min ${result.missedMin}, mean ${result.missedMean.toFixed(1)}, max ${result.missedMax}  ` +
        `checkpoints: ${run.bus.checkpointReads}`,
    );
    return result;
  });
  const [sound, previous] = figures;
  console.log('  (each checkpoint of the sound bound assigns one xid; those of the previous bound none)');
  console.log(`  ratio sound/previous: p50 ×${(sound.p50 / previous.p50).toFixed(2)}  p99 ×${(sound.p99 / previous.p99).toFixed(2)}`);
  if (sound.missedMax > 0) {
    console.log('  FAILURE: the sound bound missed events');
    process.exitCode = 1;
  }
} finally {
  await Promise.all([writerPool.end(), ...measured.map((run) => run.pool.end())]);
  await database.drop();
}
