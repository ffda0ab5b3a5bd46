/**
 * The telemetry service on a seeded database and a broker of its own (nothing another test or
 * `npm start` publishes on the machine's broker reaches it), readings sent through its real
 * `POST /ingest` (an ingest key per collectivity, issued through GraphQL), and helpers to read
 * what the alarm engine did. The periodic silence sweep is off: tests run it at a chosen time.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { COLLECTIVITY_IDS, type Role } from '@connecte/shared/auth';
import { senmlPack, type MetricName } from '@connecte/shared/senml';
import { startService, startTestBroker, type GraphQLResponse, type TestService } from '@connecte/testkit';
import { telemetryResourcesFor } from '../src/context.js';
import type { TelemetryResources } from '../src/resources.js';

export interface AlarmTestEnv {
  service: TestService;
  r: TelemetryResources;
  token(roles: Role[], collectivities: string[]): Promise<string>;
  /** GraphQL on the telemetry subgraph; fails the test on errors unless `allowErrors`. */
  gql<T = any>(query: string, token?: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>>;
  /** One SenML pack for one asset at one time through `POST /ingest`; asserts every record was accepted. */
  report(equipmentId: string, at: Date | number, values: Partial<Record<MetricName, number | boolean>>): Promise<void>;
  /** Distinct assets of the seed, never handed out twice in one file. */
  pick(kind: string, collectivityId: string, status?: string): Promise<string>;
  alarmsOf(equipmentId: string): Promise<AlarmRecord[]>;
  /** The asset's first alarm, which must exist. */
  firstAlarmOf(equipmentId: string): Promise<AlarmRecord>;
  historyOf(alarmId: string): Promise<{ action: string; actor: string; note: string | null; value: number | null }[]>;
  close(): Promise<void>;
}

export interface AlarmRecord {
  id: string;
  code: string;
  state: string;
  severity: string;
  occurrences: number;
  message: string;
  value: number | null;
  raised_at: Date;
  last_raised_at: Date;
  cleared_by: string | null;
  acknowledged_by: string | null;
  acknowledgement_note: string | null;
}

export async function startAlarmService(env: Record<string, string> = {}): Promise<AlarmTestEnv> {
  const broker = await startTestBroker();
  let service: TestService;
  try {
    service = await startService('telemetry', { env: { ...broker.env, ALARM_SWEEP_INTERVAL_MS: '0', ...env } });
  } catch (error) {
    await broker.stop();
    throw error;
  }
  const r = telemetryResourcesFor(service.db);
  const ingestUrl = service.url.replace(/\/graphql$/, '/ingest');
  const keys = new Map<string, string>();
  const used = new Set<string>();

  const admin = await service.token(['admin'], [...COLLECTIVITY_IDS]);
  for (const collectivityId of COLLECTIVITY_IDS) {
    const issued = await service.gql(
      `mutation($c: ID!) { issueIngestKey(collectivityId: $c, label: "alarm tests") { secret { token } } }`,
      { variables: { c: collectivityId }, token: admin },
    );
    assert.equal(issued.errors, undefined, JSON.stringify(issued.errors));
    keys.set(collectivityId, issued.data.issueIngestKey.secret.token);
  }

  const collectivityOf = async (equipmentId: string) => {
    const device = (await r.directory.lookup([equipmentId])).get(equipmentId);
    assert.ok(device, `${equipmentId} is in the directory`);
    return device.collectivityId;
  };

  const alarmsOf = async (equipmentId: string) => {
    const { rows } = await service.db.pool.query<AlarmRecord>(
      `SELECT id::text, code, state, severity, occurrences, message, value, raised_at, last_raised_at, cleared_by, acknowledged_by, acknowledgement_note
       FROM alarms WHERE equipment_id = $1 ORDER BY id`,
      [equipmentId],
    );
    return rows;
  };

  return {
    service,
    r,
    token: (roles, collectivities) => service.token(roles, collectivities),
    gql: (query, token, variables) => service.gql(query, { token, variables }),
    async report(equipmentId, at, values) {
      const seconds = (typeof at === 'number' ? at : at.getTime()) / 1000;
      const response = await fetch(ingestUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/senml+json', authorization: `Bearer ${keys.get(await collectivityOf(equipmentId))}` },
        body: JSON.stringify(senmlPack(`urn:dev:connecte:${equipmentId}`, seconds, values)),
      });
      const body = (await response.json()) as { accepted: number; duplicate: number; rejected: unknown[] };
      assert.equal(response.status, 200, JSON.stringify(body));
      assert.deepEqual(body.rejected, [], JSON.stringify(body));
      assert.equal(body.accepted, Object.keys(values).length, JSON.stringify(body));
    },
    async pick(kind, collectivityId, status = 'IN_SERVICE') {
      const { rows } = await service.db.pool.query<{ equipment_id: string }>(
        `SELECT equipment_id FROM telemetry_devices WHERE kind = $1 AND collectivity_id = $2 AND status = $3 ORDER BY equipment_id`,
        [kind, collectivityId, status],
      );
      const id = rows.map((row) => row.equipment_id).find((candidate) => !used.has(candidate));
      assert.ok(id, `an unused ${status} ${kind} of ${collectivityId}`);
      used.add(id);
      return id;
    },
    alarmsOf,
    async firstAlarmOf(equipmentId) {
      const [first] = await alarmsOf(equipmentId);
      assert.ok(first, `${equipmentId} has an alarm`);
      return first;
    },
    async historyOf(alarmId) {
      const { rows } = await service.db.pool.query(`SELECT action, actor, note, value FROM alarm_history WHERE alarm_id = $1 ORDER BY id`, [alarmId]);
      return rows;
    },
    async close() {
      await service.close();
      await broker.stop();
    },
  };
}

/** Polls `check` until it stops throwing (at most `timeoutMs`), then returns its value. */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(50);
    }
  }
}

export const minutes = (n: number) => n * 60_000;
