import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { actsIn, isPublic, requireRoleIn, type Role, type Viewer } from '@connecte/shared/auth';
import { Prisma, type Database, type EquipmentKind, type EquipmentStatus } from '@connecte/shared/db';
import { badInput, notFound, unauthenticated } from '@connecte/shared/errors';
import { checkCoordinates, checkNear } from '@connecte/shared/geo';
import type { BusEvent, EventBus } from '@connecte/shared/events';
import { mapEvents, publishEvent } from '@connecte/shared/events';
import type { Logger } from '@connecte/shared/log';
import { connection, decodeCursor, pageSize, type Connection } from '@connecte/shared/pagination';
import { DETAILS_TYPENAME, validateDetails } from './details.js';
import {
  EQUIPMENT_CHANGED,
  fieldChanges,
  isRestrictedField,
  snapshotOf,
  type ChangeActor,
  type ChangeKind,
  type EquipmentChangedPayload,
  type EquipmentSnapshot,
  type FieldChange,
} from './equipment-changes.js';
import type { EquipmentChanges, EquipmentRow, EquipmentStore, SearchCriteria } from './equipment-store.js';
import type {
  EquipmentFilter,
  PointInput,
  QueryEquipmentCountsByKindArgs,
  QueryEquipmentSearchArgs,
  QueryNearestEquipmentArgs,
  RegisterEquipmentInput,
  SubscriptionEquipmentChangedArgs,
  UpdateEquipmentInput,
} from './generated/graphql.js';
import type { EquipmentLoaders } from './loaders.js';

/** Who may see a camera's position and attributes, and who may change any asset. */
const MANAGERS: Role[] = ['operator', 'admin'];

/** Readable ids: the kind's prefix then a UUID (e.g. `lp-0b6c…`), unique without coordination. */
const ID_PREFIX: Record<EquipmentKind, string> = {
  LIGHT_POINT: 'lp',
  PRESENCE_DETECTOR: 'pd',
  CAMERA: 'cam',
  TRAFFIC_SIGNAL_CONTROLLER: 'tsc',
  BUS: 'bus',
  BUS_STOP: 'stop',
  PARKING_FACILITY: 'park',
  PARKING_SENSOR: 'psens',
  AIR_QUALITY_SENSOR: 'aq',
  HEATING_CONTROLLER: 'heat',
  ENERGY_METER: 'meter',
  WIFI_HOTSPOT: 'wifi',
  ELECTRICAL_CABINET: 'cab',
  BUILDING: 'bldg',
};

/** Kinds that move: the only ones allowed without a location. */
const MOBILE_KINDS: ReadonlySet<EquipmentKind> = new Set(['BUS']);

export const DEFAULT_NEAREST = 10;
export const MAX_NEAREST = 100;
const MAX_POLYGON_POSITIONS = 10_000;

/** `details` as a member of the `EquipmentDetails` union: the kind's attributes, `__typename`, and the asset's parent. */
export type DetailsValue = Record<string, unknown> & { __typename: string; parentId?: string | null };

/** `EquipmentChange` as the caller may see it. */
export interface EquipmentChangeValue {
  cursor: string;
  change: ChangeKind;
  occurredAt: Date;
  actor: ChangeActor | null;
  changes: (FieldChange & { redacted: boolean })[];
  reason: string | null;
  snapshot: SnapshotValue | null;
  equipment: EquipmentRow | null;
}

/** `EquipmentSnapshot` as the caller may see it. */
export interface SnapshotValue {
  id: string;
  kind: EquipmentKind;
  reference: string;
  name: string | null;
  status: EquipmentStatus;
  collectivity: { id: string };
  communeInseeCode: string | null;
  location: { type: 'Point'; coordinates: number[] } | null;
  installedOn: string | null;
  details: Record<string, unknown> | null;
  parentId: string | null;
  createdAt: string;
  updatedAt: string;
  decommissionedAt: string | null;
}

function checkText(value: string, field: string, max: number): string {
  const trimmed = value.trim();
  if (!trimmed) throw badInput(field, 'must not be empty');
  if (trimmed.length > max) throw badInput(field, `must be at most ${max} characters`);
  return trimmed;
}

/** Structural checks PostGIS would otherwise answer with an internal error or a silent fix. */
function checkPolygonRings(rings: unknown, field: string, counter: { positions: number }): void {
  if (!Array.isArray(rings) || rings.length === 0) throw badInput(field, 'a polygon must be a non-empty array of linear rings');
  for (const ring of rings) {
    if (!Array.isArray(ring) || ring.length < 4) {
      throw badInput(field, 'each linear ring must have at least 4 positions');
    }
    for (const position of ring) {
      if (!Array.isArray(position) || position.length < 2 || position.length > 3 || !position.every((n) => typeof n === 'number' && Number.isFinite(n))) {
        throw badInput(field, 'each position must be [longitude, latitude]');
      }
      const [lon, lat] = position as number[];
      if (lon < -180 || lon > 180 || lat < -90 || lat > 90) {
        throw badInput(field, `position [${lon}, ${lat}] is outside longitude [-180, 180] / latitude [-90, 90]`);
      }
    }
    const [first, last] = [ring[0] as number[], ring[ring.length - 1] as number[]];
    if (first[0] !== last[0] || first[1] !== last[1]) {
      throw badInput(field, 'each linear ring must be closed (last position equal to the first)');
    }
    counter.positions += ring.length;
    if (counter.positions > MAX_POLYGON_POSITIONS) throw badInput(field, `must have at most ${MAX_POLYGON_POSITIONS} positions`);
  }
}

/** Collectivities in which `viewer` may see cameras: those where it acts as operator or admin. */
export const cameraCollectivitiesOf = (viewer: Viewer) => viewer.collectivities.filter((id) => actsIn(viewer, id, MANAGERS));

/**
 * The rules of the equipment domain: who may see and change what, and what a valid input
 * is. One instance per request (it holds the caller).
 */
export class EquipmentService {
  /** Collectivities in which the caller may see cameras' positions and attributes. */
  readonly cameraCollectivities: string[];

  constructor(
    private readonly viewer: Viewer,
    private readonly store: EquipmentStore,
    private readonly db: Database,
    private readonly loaders: EquipmentLoaders,
    private readonly log: Pick<Logger, 'info'>,
  ) {
    this.cameraCollectivities = cameraCollectivitiesOf(viewer);
  }

  /** Whether the caller may see where this asset is and its attributes. */
  canSee(row: Pick<EquipmentRow, 'kind' | 'collectivityId'>): boolean {
    return row.kind !== 'CAMERA' || this.cameraCollectivities.includes(row.collectivityId);
  }

  byId(id: string): Promise<EquipmentRow | null> {
    return this.loaders.equipmentById.load(id);
  }

  /** A hidden camera's parent would place it (e.g. in a building). */
  parentOf(row: EquipmentRow): Promise<EquipmentRow | null> | null {
    if (!row.parentId || !this.canSee(row)) return null;
    return this.loaders.equipmentById.load(row.parentId);
  }

  /** `details` as the union member of its kind, or null for a hidden camera. */
  detailsOf(row: EquipmentRow): DetailsValue | null {
    if (!this.canSee(row)) return null;
    const typename = DETAILS_TYPENAME[row.kind];
    if (typename === 'GenericDetails') return { __typename: typename, attributes: row.details };
    return { ...row.details, __typename: typename, parentId: row.parentId };
  }

  async search(args: QueryEquipmentSearchArgs): Promise<Connection<EquipmentRow>> {
    const limit = pageSize(args.first);
    const afterId = decodeCursor(args.after);
    const criteria = await this.criteria(args.filter ?? {});
    const rows = limit === 0 ? [] : await this.store.search(criteria, limit, afterId);
    return connection(rows, limit, (row) => row.id, afterId !== null, () => this.store.count(criteria));
  }

  async children(
    row: EquipmentRow,
    args: { kinds?: EquipmentKind[] | null; first?: number | null; after?: string | null },
  ): Promise<Connection<EquipmentRow>> {
    const limit = pageSize(args.first);
    const afterId = decodeCursor(args.after);
    const kinds = args.kinds ? [...new Set(args.kinds)].sort() : null;
    if (!this.canSee(row)) {
      return connection<EquipmentRow>([], limit, (r) => r.id, afterId !== null, async () => 0);
    }
    const rows = limit === 0 ? [] : await this.loaders.children.load({ parentId: row.id, kinds, limit, afterId });
    return connection(rows, limit, (r) => r.id, afterId !== null, () =>
      this.loaders.childCount.load({ parentId: row.id, kinds }),
    );
  }

  async nearest(args: QueryNearestEquipmentArgs) {
    checkCoordinates(args.lon, args.lat, '');
    const first = args.first ?? DEFAULT_NEAREST;
    if (!Number.isInteger(first) || first < 0) throw badInput('first', 'must be a whole number ≥ 0');
    if (first > MAX_NEAREST) throw badInput('first', `must be at most ${MAX_NEAREST}`);
    if (first === 0) return [];
    const rows = await this.store.nearest(args.kind, args.lon, args.lat, first, this.cameraCollectivities);
    return rows.map((row) => ({ equipment: row, distanceMeters: row.distanceMeters }));
  }

  async countsByKind(args: QueryEquipmentCountsByKindArgs) {
    const counts = await this.store.countsByKind({ collectivityIds: args.collectivityIds ?? null, status: args.status ?? null });
    return (Object.keys(ID_PREFIX) as EquipmentKind[]).map((kind) => ({ kind, count: counts.get(kind) ?? 0 }));
  }

  /** Validates a filter into SQL-ready criteria; every error names the field at fault. */
  private async criteria(filter: EquipmentFilter): Promise<SearchCriteria> {
    const criteria: SearchCriteria = { cameraCollectivities: this.cameraCollectivities };
    if (filter.kinds) criteria.kinds = filter.kinds;
    if (filter.collectivityIds) criteria.collectivityIds = filter.collectivityIds;
    if (filter.status) criteria.status = filter.status;
    if (filter.dimmable !== null && filter.dimmable !== undefined) criteria.dimmable = filter.dimmable;
    if (filter.parentId !== null && filter.parentId !== undefined) criteria.parentId = filter.parentId;
    if (filter.bbox) {
      const bbox = filter.bbox;
      if (bbox.length !== 4) throw badInput('filter.bbox', 'must be exactly 4 numbers: [minLon, minLat, maxLon, maxLat]');
      const [minLon, minLat, maxLon, maxLat] = bbox;
      if ([minLon, maxLon].some((lon) => lon < -180 || lon > 180)) throw badInput('filter.bbox', 'longitudes must be in [-180, 180]');
      if ([minLat, maxLat].some((lat) => lat < -90 || lat > 90)) throw badInput('filter.bbox', 'latitudes must be in [-90, 90]');
      if (!(minLon < maxLon)) throw badInput('filter.bbox', 'minLon must be less than maxLon');
      if (!(minLat < maxLat)) throw badInput('filter.bbox', 'minLat must be less than maxLat');
      criteria.bbox = [minLon, minLat, maxLon, maxLat];
    }
    if (filter.near) {
      criteria.near = checkNear(filter.near, 'filter.near.');
    }
    if (filter.within !== null && filter.within !== undefined) criteria.within = await this.polygon(filter.within, 'filter.within');
    return criteria;
  }

  /** A GeoJSON Polygon/MultiPolygon that PostGIS accepts as valid, as text for the query. */
  private async polygon(value: unknown, field: string): Promise<string> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badInput(field, 'must be a GeoJSON geometry object');
    const { type, coordinates } = value as { type?: unknown; coordinates?: unknown };
    const counter = { positions: 0 };
    if (type === 'Polygon') {
      checkPolygonRings(coordinates, field, counter);
    } else if (type === 'MultiPolygon') {
      if (!Array.isArray(coordinates) || coordinates.length === 0) throw badInput(field, 'a MultiPolygon must have at least one polygon');
      for (const polygon of coordinates) checkPolygonRings(polygon, field, counter);
    } else {
      throw badInput(field, `type must be Polygon or MultiPolygon (got ${JSON.stringify(type ?? null)})`);
    }
    const geojson = JSON.stringify({ type, coordinates });
    const { valid, reason } = await this.store.geometryValidity(geojson);
    if (!valid) throw badInput(field, `is not a valid geometry: ${reason}`);
    return geojson;
  }

  // --- Writes ---

  async register(input: RegisterEquipmentInput): Promise<EquipmentRow> {
    requireRoleIn(this.viewer, input.collectivityId, MANAGERS, 'input.collectivityId');
    const reference = checkText(input.reference, 'input.reference', 64);
    const name = input.name === null || input.name === undefined ? null : checkText(input.name, 'input.name', 200);
    const location = input.location ?? null;
    if (location) checkCoordinates(location.lon, location.lat, 'input.location.');
    else if (!MOBILE_KINDS.has(input.kind)) throw badInput('input.location', `is required for ${input.kind}`);
    const details = validateDetails(input.kind, input.details ?? {}, 'input.details');

    return this.write(async (tx) => {
      const scope = await this.store.collectivityScope(tx, input.collectivityId);
      if (!scope) throw badInput('input.collectivityId', 'is not a known collectivity');
      const inseeCode = location ? await this.placement(tx, scope, location, 'input.location') : null;
      if (input.parentId) await this.checkParent(tx, input.kind, input.parentId, null, 'input.parentId');
      await this.checkLinkedLightPoint(tx, input.kind, details, 'input.details.lightPointId');
      const holder = await this.store.referenceHolder(tx, input.collectivityId, reference);
      if (holder !== null) {
        throw badInput('input.reference', `is already used by ${holder} in ${input.collectivityId} (references are unique ignoring case)`);
      }
      const row = await this.store.insert(tx, {
        id: `${ID_PREFIX[input.kind]}-${randomUUID()}`,
        kind: input.kind,
        reference,
        name,
        collectivityId: input.collectivityId,
        inseeCode,
        location,
        installedOn: input.installedOn ?? null,
        parentId: input.parentId ?? null,
        details,
      });
      return this.record(tx, null, row, 'REGISTERED');
    });
  }

  /** An update that changes no value writes nothing and publishes no event. */
  async update(id: string, input: UpdateEquipmentInput): Promise<EquipmentRow> {
    this.requireSignedIn();
    if (Object.values(input).every((value) => value === undefined)) throw badInput('input', 'must change at least one field');
    if (input.status === 'DECOMMISSIONED') throw badInput('input.status', 'use decommissionEquipment to decommission an asset');
    if (input.status === null) throw badInput('input.status', 'must not be null');
    if (input.details === null) throw badInput('input.details', 'must not be null (give the attributes to change)');
    if (input.location) checkCoordinates(input.location.lon, input.location.lat, 'input.location.');

    return this.write(async (tx) => {
      const current = await this.lockForChange(tx, id);
      const changes: EquipmentChanges = {};
      if (input.name !== undefined) changes.name = input.name === null ? null : checkText(input.name, 'input.name', 200);
      if (input.status) changes.status = input.status;
      if (input.location !== undefined) {
        if (input.location === null) {
          if (!MOBILE_KINDS.has(current.kind)) throw badInput('input.location', `is required for ${current.kind}`);
          changes.location = null;
          changes.inseeCode = null;
        } else {
          const scope = await this.store.collectivityScope(tx, current.collectivityId);
          if (!scope) throw badInput('id', 'belongs to an unknown collectivity');
          changes.inseeCode = await this.placement(tx, scope, input.location, 'input.location');
          changes.location = input.location;
        }
      }
      if (input.details !== undefined) {
        if (typeof input.details !== 'object' || Array.isArray(input.details)) throw badInput('input.details', 'must be an object');
        changes.details = validateDetails(current.kind, { ...current.details, ...(input.details as object) }, 'input.details');
        await this.checkLinkedLightPoint(tx, current.kind, changes.details, 'input.details.lightPointId');
      }
      if (input.parentId !== undefined) {
        if (input.parentId !== null) await this.checkParent(tx, current.kind, input.parentId, id, 'input.parentId');
        changes.parentId = input.parentId;
      }
      if (fieldChanges(current, withChanges(current, changes)).length === 0) {
        return { row: current, change: null, fields: [], eventId: null };
      }
      const row = await this.store.update(tx, id, changes);
      return this.record(tx, current, row, 'UPDATED');
    });
  }

  async decommission(id: string, reasonInput: string): Promise<EquipmentRow> {
    this.requireSignedIn();
    const reason = checkText(reasonInput, 'reason', 500);
    return this.write(async (tx) => {
      const current = await this.lockForChange(tx, id);
      const row = await this.store.decommission(tx, id);
      return this.record(tx, current, row, 'DECOMMISSIONED', reason);
    });
  }

  /**
   * The stream of committed changes (the bus rejects an `after` that is not an event id).
   * Each change is told from its event (what changed, by whom, the asset right after it);
   * the live asset is read afresh (and the request's loaders are emptied) so a long-lived
   * subscription never serves a cached state.
   */
  changes(
    events: EventBus,
    args: SubscriptionEquipmentChangedArgs,
  ): AsyncIterableIterator<{ equipmentChanged: EquipmentChangeValue }> {
    const kinds = args.kinds ? new Set(args.kinds) : null;
    return mapEvents(events, { topics: [EQUIPMENT_CHANGED], after: args.after ?? undefined, collectivityIds: args.collectivityIds ?? undefined }, async (event, signal) => {
      const payload = event.payload as Partial<EquipmentChangedPayload>;
      if (!payload.equipmentId || (kinds && !kinds.has(payload.kind as EquipmentKind))) return null;
      this.loaders.clearAll();
      const [equipment] = await readPatiently(() => this.store.byIds([payload.equipmentId!]), signal);
      return { equipmentChanged: this.changeValue(event, payload, equipment ?? null) };
    });
  }

  /**
   * An event as this caller may see it. Events recorded before history was kept have no
   * actor, changes or snapshot. A camera the caller may not see keeps its restricted values
   * (and the reason, which may say where it stood) hidden, as on `Equipment`; who made a
   * change is shown only to those who may make one there.
   */
  private changeValue(event: BusEvent, payload: Partial<EquipmentChangedPayload>, equipment: EquipmentRow | null): EquipmentChangeValue {
    const collectivityId = event.collectivityId ?? payload.snapshot?.collectivityId ?? '';
    const visible = this.canSee({ kind: payload.kind as EquipmentKind, collectivityId });
    const actor = payload.actor && actsIn(this.viewer, collectivityId, MANAGERS) ? { sub: payload.actor.sub, roles: payload.actor.roles } : null;
    return {
      cursor: event.id,
      change: payload.change as ChangeKind,
      occurredAt: event.createdAt,
      actor,
      changes: (payload.changes ?? []).map((change) =>
        visible || !isRestrictedField(change.field)
          ? { field: change.field, before: change.before ?? null, after: change.after ?? null, redacted: false }
          : { field: change.field, before: null, after: null, redacted: true },
      ),
      reason: visible ? (payload.reason ?? null) : null,
      snapshot: payload.snapshot ? snapshotValue(payload.snapshot, visible) : null,
      equipment,
    };
  }

  private requireSignedIn(): void {
    if (isPublic(this.viewer)) throw unauthenticated('sign in to change equipment');
  }

  /** Locks the asset and checks the caller may change it; nothing is written before this. */
  private async lockForChange(tx: Tx, id: string): Promise<EquipmentRow> {
    const current = await this.store.lockById(tx, id);
    if (!current) throw notFound(`no equipment with id ${id}`, 'id');
    requireRoleIn(this.viewer, current.collectivityId, MANAGERS, 'id');
    if (current.status === 'DECOMMISSIONED') throw badInput('id', 'is decommissioned and can no longer change');
    return current;
  }

  /** INSEE code of the commune at `location`, which must be one the collectivity may equip. */
  private async placement(
    tx: Tx,
    scope: { municipal: boolean; inseeCode: string | null },
    location: PointInput,
    field: string,
  ): Promise<string> {
    const inseeCode = await this.store.communeAt(tx, location.lon, location.lat);
    if (!inseeCode) throw badInput(field, 'is outside the territory');
    if (scope.municipal && scope.inseeCode !== inseeCode) {
      throw badInput(field, `is in commune ${inseeCode}, outside the collectivity's own commune (${scope.inseeCode})`);
    }
    return inseeCode;
  }

  private async checkParent(tx: Tx, kind: EquipmentKind, parentId: string, childId: string | null, field: string): Promise<void> {
    const [parent] = await this.store.byIdsIn(tx, [parentId]);
    if (!parent) throw badInput(field, `no equipment with id ${parentId}`);
    if (parent.status === 'DECOMMISSIONED') throw badInput(field, 'is decommissioned');
    if (kind === 'LIGHT_POINT' && parent.kind !== 'ELECTRICAL_CABINET') {
      throw badInput(field, `a light point's parent must be an ELECTRICAL_CABINET (got ${parent.kind})`);
    }
    if (childId !== null && (await this.store.wouldCycle(tx, childId, parentId))) {
      throw badInput(field, 'would make the asset its own ancestor');
    }
  }

  private async checkLinkedLightPoint(tx: Tx, kind: EquipmentKind, details: Record<string, unknown>, field: string) {
    if (kind !== 'PRESENCE_DETECTOR' || typeof details.lightPointId !== 'string') return;
    const [lightPoint] = await this.store.byIdsIn(tx, [details.lightPointId]);
    if (!lightPoint || lightPoint.kind !== 'LIGHT_POINT') throw badInput(field, `no light point with id ${details.lightPointId}`);
  }

  /** Publishes the change's event in its transaction: what changed from `before` to `row`, and who changed it. */
  private async record(tx: Tx, before: EquipmentRow | null, row: EquipmentRow, change: ChangeKind, reason?: string): Promise<Recorded> {
    const changes = fieldChanges(before, row);
    const payload: EquipmentChangedPayload = {
      equipmentId: row.id,
      change,
      kind: row.kind,
      status: row.status,
      ...(reason ? { reason } : {}),
      actor: this.actor(),
      changes,
      snapshot: snapshotOf(row),
    };
    const eventId = await publishEvent(tx, { topic: EQUIPMENT_CHANGED, collectivityId: row.collectivityId, payload });
    return { row, change, fields: changes.map((c) => c.field), eventId };
  }

  private actor(): ChangeActor {
    return { sub: this.viewer.sub!, roles: this.viewer.roles };
  }

  /**
   * One transaction for the change and its event; a unique-reference race ends as a user
   * error. The log line is written once committed, naming who changed what (field names
   * only: values such as a camera's position stay out of the logs).
   */
  private async write(work: (tx: Tx) => Promise<Recorded>): Promise<EquipmentRow> {
    let recorded: Recorded;
    try {
      recorded = await this.db.prisma.$transaction(work);
    } catch (error) {
      if (isUniqueViolation(error, REFERENCE_INDEX)) {
        throw badInput('input.reference', 'is already used by another asset of this collectivity (references are unique ignoring case)');
      }
      throw error;
    }
    const { row, change, fields, eventId } = recorded;
    this.log.info(
      { actor: this.actor(), equipmentId: row.id, kind: row.kind, collectivityId: row.collectivityId, change, fields, eventId },
      change ? 'equipment changed' : 'equipment update changed nothing',
    );
    return row;
  }
}

/** What a write did: `change` and `eventId` are null when it changed nothing. */
interface Recorded {
  row: EquipmentRow;
  change: ChangeKind | null;
  fields: string[];
  eventId: string | null;
}

/** Unique per collectivity on lower(reference) (migration equipment_reference_case_insensitive). */
const REFERENCE_INDEX = 'equipment_collectivity_id_lower_reference_key';

/** `row` as `changes` would leave it, to tell a no-op update before writing anything. */
function withChanges(row: EquipmentRow, changes: EquipmentChanges): EquipmentRow {
  const next = { ...row };
  if (changes.name !== undefined) next.name = changes.name;
  if (changes.status !== undefined) next.status = changes.status;
  if (changes.location !== undefined) {
    next.lon = changes.location?.lon ?? null;
    next.lat = changes.location?.lat ?? null;
  }
  if (changes.inseeCode !== undefined) next.inseeCode = changes.inseeCode;
  if (changes.details !== undefined) next.details = changes.details;
  if (changes.parentId !== undefined) next.parentId = changes.parentId;
  return next;
}

function snapshotValue(snapshot: EquipmentSnapshot, visible: boolean): SnapshotValue {
  const located = visible && snapshot.lon !== null && snapshot.lat !== null;
  return {
    id: snapshot.id,
    kind: snapshot.kind,
    reference: snapshot.reference,
    name: visible ? snapshot.name : null,
    status: snapshot.status,
    collectivity: { id: snapshot.collectivityId },
    communeInseeCode: visible ? snapshot.inseeCode : null,
    location: located ? { type: 'Point', coordinates: [snapshot.lon!, snapshot.lat!] } : null,
    installedOn: snapshot.installedOn,
    details: visible ? snapshot.details : null,
    parentId: visible ? snapshot.parentId : null,
    createdAt: snapshot.createdAt,
    updatedAt: snapshot.updatedAt,
    decommissionedAt: snapshot.decommissionedAt,
  };
}

type Tx = Prisma.TransactionClient;

/** Delays between reads of a change's asset while the database cannot answer (e.g. it restarts). */
const CHANGE_READ_RETRY_MS = [100, 200, 500, 1_000, 2_000];
/** After this long the read's error ends the stream; the client resumes with `after`. */
const CHANGE_READ_PATIENCE_MS = 30_000;

/**
 * Reads again, with backoff, while the read fails: the event bus survives a database restart,
 * and so must a stream whose event arrived just as the database went away. Stops early when the
 * subscription ends.
 */
async function readPatiently<T>(read: () => Promise<T>, signal: AbortSignal): Promise<T> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if (signal.aborted || Date.now() - started >= CHANGE_READ_PATIENCE_MS) throw error;
      const delay = CHANGE_READ_RETRY_MS[Math.min(attempt, CHANGE_READ_RETRY_MS.length - 1)];
      await sleep(delay, undefined, { signal }).catch(() => {});
    }
  }
}

function isUniqueViolation(error: unknown, constraint: string): boolean {
  const cause = (error as { meta?: { driverAdapterError?: { cause?: { originalCode?: string; constraint?: { index?: string } } } } })
    ?.meta?.driverAdapterError?.cause;
  return cause?.originalCode === '23505' && cause.constraint?.index === constraint;
}
