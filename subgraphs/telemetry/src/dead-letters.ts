/**
 * Dead letters: MQTT messages that could not be stored, whole or in part, kept with their reasons
 * by the Ingestor (ingest.ts) in the ingest transaction, for the operators of their collectivity.
 */
import { actsIn, isPublic, requireRoleIn, type Role, type Viewer } from '@connecte/shared/auth';
import { badInput, unauthenticated } from '@connecte/shared/errors';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import type { RequestContext } from '@connecte/shared/server';
import type { TelemetryResources } from './resources.js';
import type { Rejection } from './types.js';

/** Who reads a collectivity's dead letters. */
const READERS: Role[] = ['operator', 'admin'];

export interface DeadLetterValue {
  id: string;
  receivedAt: Date;
  transport: string;
  topic: string | null;
  collectivityId: string | null;
  equipmentId: string | null;
  payload: string;
  reasons: Rejection[];
}

interface DeadLetterRow {
  id: string;
  received_at: Date;
  transport: string;
  topic: string | null;
  collectivity_id: string | null;
  equipment_id: string | null;
  payload: string;
  reasons: Rejection[];
}

const toValue = (row: DeadLetterRow): DeadLetterValue => ({
  id: row.id,
  receivedAt: row.received_at,
  transport: row.transport,
  topic: row.topic,
  collectivityId: row.collectivity_id,
  equipmentId: row.equipment_id,
  payload: row.payload,
  reasons: row.reasons,
});

/** Newest first: a keyset on the id, served by (collectivity_id, id DESC). */
const PAGE_SQL = `
SELECT id::text AS id, received_at, transport, topic, collectivity_id, equipment_id, payload, reasons
FROM ingest_dead_letters
WHERE collectivity_id = ANY($1::text[]) AND ($2::bigint IS NULL OR id < $2::bigint)
ORDER BY id DESC LIMIT $3`;

const COUNT_SQL = `SELECT count(*)::int AS n FROM ingest_dead_letters WHERE collectivity_id = ANY($1::text[])`;

/** Per request: the caller's dead letters. */
export class DeadLetterService {
  private readonly viewer: Viewer;

  constructor(
    base: RequestContext,
    private readonly r: TelemetryResources,
  ) {
    this.viewer = base.viewer;
  }

  /** The caller's collectivities' dead letters (or one collectivity's), newest first. */
  async deadLetters(args: { collectivityId?: string | null; first?: number | null; after?: string | null }): Promise<Connection<DeadLetterValue>> {
    const limit = pageSize(args.first);
    const after = decodeCursor(args.after);
    if (after !== null && !/^\d{1,19}$/.test(after)) throw badInput('after', 'is not a cursor returned by this API');
    let collectivities: string[];
    if (args.collectivityId !== undefined && args.collectivityId !== null) {
      requireRoleIn(this.viewer, args.collectivityId, READERS, 'collectivityId');
      collectivities = [args.collectivityId];
    } else {
      if (isPublic(this.viewer)) throw unauthenticated(`authentication required: needs role ${READERS.join(' or ')} in a collectivity`);
      collectivities = this.viewer.collectivities.filter((id) => actsIn(this.viewer, id, READERS));
    }
    const count = async () =>
      collectivities.length === 0 ? 0 : (await this.r.db.pool.query<{ n: number }>(COUNT_SQL, [collectivities])).rows[0].n;
    if (limit === 0 || collectivities.length === 0) return connection<DeadLetterValue>([], limit, (d) => d.id, after !== null, count);
    const { rows } = await this.r.db.pool.query<DeadLetterRow>(PAGE_SQL, [collectivities, after, limit + 1]);
    return connection(rows.map(toValue), limit, (d) => d.id, after !== null, count);
  }
}
