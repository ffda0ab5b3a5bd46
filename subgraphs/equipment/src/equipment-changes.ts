import { isDeepStrictEqual } from 'node:util';
import type { Role } from '@connecte/shared/auth';
import type { EquipmentKind, EquipmentStatus } from '@connecte/shared/db';
import type { EquipmentRow } from './equipment-store.js';

/**
 * What an `equipment.changed` event records, so that a replay shows history rather than
 * today's row: who made the change, each field's value before and after it, and the asset
 * as it was right after it.
 */

export const EQUIPMENT_CHANGED = 'equipment.changed';
export type ChangeKind = 'REGISTERED' | 'UPDATED' | 'DECOMMISSIONED';

/** The token's subject and roles, nothing else about the person. */
export interface ChangeActor {
  sub: string;
  roles: Role[];
}

/** `field` is an `Equipment` field name, or `details.<attribute>` for one attribute. */
export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

/** The asset right after the change, in JSON form (dates as ISO strings). */
export interface EquipmentSnapshot {
  id: string;
  kind: EquipmentKind;
  reference: string;
  name: string | null;
  status: EquipmentStatus;
  collectivityId: string;
  inseeCode: string | null;
  lon: number | null;
  lat: number | null;
  /** `YYYY-MM-DD`. */
  installedOn: string | null;
  parentId: string | null;
  details: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  decommissionedAt: string | null;
}

/**
 * The event body. `equipmentId`, `change`, `kind` and `status` are what events carried
 * before history was recorded; readers must accept events without the other members.
 */
export interface EquipmentChangedPayload {
  equipmentId: string;
  change: ChangeKind;
  kind: EquipmentKind;
  status: EquipmentStatus;
  reason?: string;
  actor: ChangeActor;
  changes: FieldChange[];
  snapshot: EquipmentSnapshot;
}

/** Fields whose values the caller may not see on a camera it may not see (as on `Equipment`). */
const CAMERA_RESTRICTED = new Set(['name', 'communeInseeCode', 'location', 'parentId']);
export const isRestrictedField = (field: string) => CAMERA_RESTRICTED.has(field) || field.startsWith('details.');

const day = (date: Date | null) => (date ? date.toISOString().slice(0, 10) : null);

export function snapshotOf(row: EquipmentRow): EquipmentSnapshot {
  return {
    id: row.id,
    kind: row.kind,
    reference: row.reference,
    name: row.name,
    status: row.status,
    collectivityId: row.collectivityId,
    inseeCode: row.inseeCode,
    lon: row.lon,
    lat: row.lat,
    installedOn: day(row.installedOn),
    parentId: row.parentId,
    details: row.details,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    decommissionedAt: row.decommissionedAt?.toISOString() ?? null,
  };
}

/** The fields a change can touch, by their GraphQL names; `id` and timestamps of bookkeeping are left out. */
function trackedValues(row: EquipmentRow): Map<string, unknown> {
  const values = new Map<string, unknown>([
    ['kind', row.kind],
    ['reference', row.reference],
    ['name', row.name],
    ['status', row.status],
    ['collectivityId', row.collectivityId],
    ['communeInseeCode', row.inseeCode],
    ['location', row.lon === null || row.lat === null ? null : { type: 'Point', coordinates: [row.lon, row.lat] }],
    ['installedOn', day(row.installedOn)],
    ['parentId', row.parentId],
    ['decommissionedAt', row.decommissionedAt?.toISOString() ?? null],
  ]);
  for (const key of Object.keys(row.details).sort()) values.set(`details.${key}`, row.details[key] ?? null);
  return values;
}

/**
 * Every tracked field whose value differs between `before` (null: the asset did not exist)
 * and `after`, in a stable order. A field absent on one side counts as null.
 */
export function fieldChanges(before: EquipmentRow | null, after: EquipmentRow): FieldChange[] {
  const old = before ? trackedValues(before) : new Map<string, unknown>();
  const now = trackedValues(after);
  const fields = [...now.keys(), ...[...old.keys()].filter((field) => !now.has(field))];
  const changes: FieldChange[] = [];
  for (const field of fields) {
    const was = old.get(field) ?? null;
    const is = now.get(field) ?? null;
    if (!isDeepStrictEqual(was, is)) changes.push({ field, before: was, after: is });
  }
  return changes;
}
