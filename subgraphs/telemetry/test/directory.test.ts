/**
 * Telemetry's device directory, fed only by equipment's events: the seeded assets are known from
 * the seed's registrations, a registration or a change made a moment ago is found by the next
 * lookup, and a restarted directory resumes where it stood without missing a change.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDatabase, type Database } from '@connecte/shared/db';
import { EventBus, publishEvent } from '@connecte/shared/events';
import { createLogger } from '@connecte/shared/log';
import { createTestDatabase, testConfig, type TestDatabase } from '@connecte/testkit';
import { DeviceDirectory } from '../src/directory.js';
import type { TelemetryResources } from '../src/resources.js';

const log = createLogger('directory-test', { LOG_LEVEL: 'silent' });
let database: TestDatabase;
let db: Database;

before(async () => {
  database = await createTestDatabase({ seed: true });
  db = createDatabase(testConfig(database.url));
});
after(async () => {
  await db.close();
  await database.drop();
});

async function startDirectory() {
  const events = new EventBus(db.pool, log);
  await events.start();
  const directory = new DeviceDirectory({ db, events, log } as unknown as TelemetryResources);
  const worker = directory.worker();
  await worker.start();
  return {
    directory,
    async stop() {
      await worker.stop();
      await events.close();
    },
  };
}

const changed = (equipmentId: string, collectivityId: string, status: string, kind = 'LIGHT_POINT') =>
  publishEvent(db.pool as never, {
    topic: 'equipment.changed',
    collectivityId,
    payload: { equipmentId, change: 'UPDATED', kind, status, snapshot: { collectivityId, parentId: null } },
  });

describe('device directory', () => {
  it('knows every seeded asset from the seed’s registrations', async () => {
    const running = await startDirectory();
    try {
      const { rows } = await db.pool.query<{ id: string; collectivity_id: string; kind: string }>(
        "SELECT id, collectivity_id, kind::text FROM equipment WHERE kind IN ('LIGHT_POINT', 'BUS', 'AIR_QUALITY_SENSOR') ORDER BY id",
      );
      const found = await running.directory.lookup(rows.map((r) => r.id));
      assert.equal(found.size, rows.length);
      for (const row of rows) {
        assert.equal(found.get(row.id)?.collectivityId, row.collectivity_id, row.id);
        assert.equal(found.get(row.id)?.kind, row.kind, row.id);
      }
      assert.equal((await running.directory.lookup(['no-such-asset'])).size, 0);
    } finally {
      await running.stop();
    }
  });

  it('finds an asset registered a moment ago, follows its changes, and resumes after a restart', async () => {
    const first = await startDirectory();
    await changed('lp-new-1', 'fagnieres', 'IN_SERVICE');
    // No wait: the lookup that misses waits for the directory to catch up.
    assert.equal((await first.directory.lookup(['lp-new-1'])).get('lp-new-1')?.collectivityId, 'fagnieres');
    await first.stop();
    // Changes made while no directory runs are applied when one starts again.
    await changed('lp-new-1', 'fagnieres', 'FAULT');
    await changed('lp-new-2', 'chalons', 'IN_SERVICE');
    const second = await startDirectory();
    try {
      const found = await second.directory.lookup(['lp-new-1', 'lp-new-2']);
      assert.equal(found.get('lp-new-1')?.status, 'FAULT');
      assert.equal(found.get('lp-new-2')?.collectivityId, 'chalons');
      const { rows } = await db.pool.query("SELECT status FROM telemetry_devices WHERE equipment_id = 'lp-new-1'");
      assert.equal(rows[0].status, 'FAULT');
    } finally {
      await second.stop();
    }
  });

  it('two directories applying the same events in a race end in the newest state', async () => {
    const [a, b] = await Promise.all([startDirectory(), startDirectory()]);
    try {
      for (let i = 0; i < 30; i++) await changed('lp-race', 'chalons', i % 2 ? 'FAULT' : 'IN_SERVICE');
      await Promise.all([a.directory.caughtUp(5_000), b.directory.caughtUp(5_000)]);
      assert.equal((await a.directory.lookup(['lp-race'])).get('lp-race')?.status, 'FAULT');
      assert.equal((await b.directory.lookup(['lp-race'])).get('lp-race')?.status, 'FAULT');
      const { rows } = await db.pool.query("SELECT status FROM telemetry_devices WHERE equipment_id = 'lp-race'");
      assert.equal(rows[0].status, 'FAULT');
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
