/**
 * DATEX II v3.7 SituationPublication: what disturbs traffic on the carriageway now or soon.
 *
 * - Works and interventions on the carriageway (`opendata_roadworks`, tickets domain): one
 *   situation `roadworks-<id>` with a `sit:MaintenanceWorks` record (`roadworks` for planned works,
 *   `repairWork` otherwise), its validity from its start (started, else scheduled, else created) to
 *   its scheduled end, `certain` and `beingImplemented` once in progress, else `probable` and
 *   `approved`. Its position is its own, else that of its equipment in `opendata_equipment`;
 *   works with neither are left out (DATEX II requires a location).
 * - Traffic-signal faults (`opendata_signal_faults`, telemetry): one situation `signal-fault-<id>`
 *   with a `sit:EquipmentOrSystemFault` record on `trafficSignals` — `notWorking` for SIGNAL_FAULT,
 *   `workingIncorrectly` for SIGNAL_PRIORITY_FAULT (bus priority lost, the lights still cycle) — at
 *   the controller's position in `opendata_equipment` (telemetry has none), named after its
 *   intersection when equipment publishes one.
 *
 * Nothing free-text of an intervention or an alarm is published; the only comments are the hub's own.
 */
import type pg from 'pg';
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed, FeedVersion } from '../feed.js';
import { checkParameters } from '../parameters.js';
import { dateTime, esc, multilingual, payload, pointByCoordinates } from './datex2.js';

interface Roadworks {
  id: string;
  status: 'PLANNED' | 'ASSIGNED' | 'IN_PROGRESS';
  works: 'PLANNED_WORKS' | 'REPAIR';
  lon: number;
  lat: number;
  start: Date;
  end: Date | null;
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

interface SignalFault {
  id: string;
  code: 'SIGNAL_FAULT' | 'SIGNAL_PRIORITY_FAULT';
  severity: 'INFO' | 'MINOR' | 'MAJOR' | 'CRITICAL';
  lon: number;
  lat: number;
  intersection: string | null;
  raisedAt: Date;
  updatedAt: Date;
}

const SEVERITY: Record<SignalFault['severity'], string> = { CRITICAL: 'highest', MAJOR: 'high', MINOR: 'medium', INFO: 'low' };

async function readRoadworks(db: pg.ClientBase): Promise<Roadworks[]> {
  const { rows } = await db.query(
    `SELECT r.id::text AS id, r.status, r.works,
            ST_X(COALESCE(r.location, e.location)) AS lon, ST_Y(COALESCE(r.location, e.location)) AS lat,
            COALESCE(r.started_at, r.scheduled_start, r.created_at) AS start, r.scheduled_end AS "end",
            r.created_at AS "createdAt", GREATEST(r.updated_at, e.updated_at) AS "updatedAt", r.version
     FROM opendata_roadworks r
     LEFT JOIN opendata_equipment e ON r.location IS NULL AND e.id = r.equipment_id
     WHERE COALESCE(r.location, e.location) IS NOT NULL
     ORDER BY r.id`,
  );
  return rows.map((r) => ({ ...r, end: r.end && r.end > r.start ? r.end : null }));
}

async function readSignalFaults(db: pg.ClientBase): Promise<SignalFault[]> {
  const { rows } = await db.query(
    `SELECT f.id::text AS id, f.code, f.severity, ST_X(e.location) AS lon, ST_Y(e.location) AS lat,
            e.attributes->>'intersectionName' AS intersection, f.raised_at AS "raisedAt",
            GREATEST(f.updated_at, e.updated_at) AS "updatedAt"
     FROM opendata_signal_faults f
     JOIN opendata_equipment e ON e.id = f.equipment_id
     ORDER BY f.id`,
  );
  return rows;
}

const header = '<sit:headerInformation><com:confidentiality>noRestriction</com:confidentiality><com:informationStatus>real</com:informationStatus></sit:headerInformation>';

const validity = (start: Date, end: Date | null) =>
  `<sit:validity><com:validityStatus>definedByValidityTimeSpec</com:validityStatus><com:validityTimeSpecification>` +
  `<com:overallStartTime>${dateTime(start)}</com:overallStartTime>${end ? `<com:overallEndTime>${dateTime(end)}</com:overallEndTime>` : ''}` +
  `</com:validityTimeSpecification></sit:validity>`;

const location = (lon: number, lat: number) => `<sit:locationReference xsi:type="loc:PointLocation">${pointByCoordinates(lon, lat)}</sit:locationReference>`;

const comment = (text: string) => `<sit:generalPublicComment><sit:comment>${multilingual(text)}</sit:comment></sit:generalPublicComment>`;

function roadworksSituation(r: Roadworks): string {
  const inProgress = r.status === 'IN_PROGRESS';
  const planned = r.works === 'PLANNED_WORKS';
  return (
    `<sit:situation id="roadworks-${esc(r.id)}"><sit:situationVersionTime>${dateTime(r.updatedAt)}</sit:situationVersionTime>${header}` +
    `<sit:situationRecord xsi:type="sit:MaintenanceWorks" id="roadworks-${esc(r.id)}" version="${r.version}">` +
    `<sit:situationRecordCreationTime>${dateTime(r.createdAt)}</sit:situationRecordCreationTime>` +
    `<sit:situationRecordVersionTime>${dateTime(r.updatedAt)}</sit:situationRecordVersionTime>` +
    `<sit:probabilityOfOccurrence>${inProgress ? 'certain' : 'probable'}</sit:probabilityOfOccurrence>` +
    validity(r.start, r.end) +
    comment(planned ? 'Travaux programmés sur la chaussée' : 'Intervention sur la chaussée') +
    location(r.lon, r.lat) +
    `<sit:operatorActionStatus>${inProgress ? 'beingImplemented' : 'approved'}</sit:operatorActionStatus>` +
    `<sit:roadMaintenanceType>${planned ? 'roadworks' : 'repairWork'}</sit:roadMaintenanceType>` +
    `</sit:situationRecord></sit:situation>`
  );
}

function signalFaultSituation(f: SignalFault): string {
  const dark = f.code === 'SIGNAL_FAULT';
  const where = f.intersection ? ` — ${f.intersection}` : '';
  const version = String(f.updatedAt.getTime());
  return (
    `<sit:situation id="signal-fault-${esc(f.id)}"><sit:overallSeverity>${SEVERITY[f.severity]}</sit:overallSeverity>` +
    `<sit:situationVersionTime>${dateTime(f.updatedAt)}</sit:situationVersionTime>${header}` +
    `<sit:situationRecord xsi:type="sit:EquipmentOrSystemFault" id="signal-fault-${esc(f.id)}" version="${version}">` +
    `<sit:situationRecordCreationTime>${dateTime(f.raisedAt)}</sit:situationRecordCreationTime>` +
    `<sit:situationRecordVersionTime>${dateTime(f.updatedAt)}</sit:situationRecordVersionTime>` +
    `<sit:probabilityOfOccurrence>certain</sit:probabilityOfOccurrence><sit:severity>${SEVERITY[f.severity]}</sit:severity>` +
    validity(f.raisedAt, null) +
    comment(dark ? `Feux tricolores en panne${where}` : `Priorité bus aux feux indisponible${where}`) +
    location(f.lon, f.lat) +
    `<sit:equipmentOrSystemFaultType>${dark ? 'notWorking' : 'workingIncorrectly'}</sit:equipmentOrSystemFaultType>` +
    `<sit:faultyEquipmentOrSystemType>trafficSignals</sit:faultyEquipmentOrSystemType>` +
    `</sit:situationRecord></sit:situation>`
  );
}

export function situationsXml(roadworks: readonly Roadworks[], faults: readonly SignalFault[], publicationTime: Date): string {
  const body = roadworks.map(roadworksSituation).join('') + faults.map(signalFaultSituation).join('');
  return payload('sit:SituationPublication', publicationTime, ['loc', 'sit'], body);
}

interface SituationsVersion extends FeedVersion {
  at: Date;
}

async function situationsVersion(db: pg.ClientBase): Promise<SituationsVersion> {
  // Rows leaving either view (works done, alarm cleared) change the count or the checksum.
  const { rows } = await db.query<{ tag: string; last_modified: Date | null; at: Date }>(
    `WITH w AS (
       SELECT 'w' || r.id || '|' || r.version || '|' || extract(epoch FROM r.updated_at) || '|' || coalesce(extract(epoch FROM e.updated_at)::text, '') AS k,
              GREATEST(r.updated_at, e.updated_at) AS t
       FROM opendata_roadworks r LEFT JOIN opendata_equipment e ON r.location IS NULL AND e.id = r.equipment_id
     ), f AS (
       SELECT 'f' || s.id || '|' || extract(epoch FROM s.updated_at) || '|' || coalesce(extract(epoch FROM e.updated_at)::text, '') AS k,
              GREATEST(s.updated_at, e.updated_at) AS t
       FROM opendata_signal_faults s LEFT JOIN opendata_equipment e ON e.id = s.equipment_id
     ), a AS (SELECT * FROM w UNION ALL SELECT * FROM f)
     SELECT count(*) || '|' || coalesce(sum(hashtextextended(k, 0))::text, '0') AS tag, max(t) AS last_modified, now() AS at FROM a`,
  );
  return { tag: rows[0].tag, lastModified: rows[0].last_modified, at: rows[0].at };
}

export const datex2Situations: Feed<null> = {
  id: 'datex2-situations',
  path: '/opendata/datex2/situations.xml',
  contentType: 'application/xml; charset=utf-8',
  maxAgeSeconds: 60,
  dataset: {
    title: 'Travaux sur la chaussée et pannes de feux tricolores (DATEX II v3.7 SituationPublication)',
    description:
      "Chantiers et interventions en cours ou programmés sur la chaussée, et carrefours à feux en panne ou sans priorité bus, à Châlons-en-Champagne et dans Châlons Agglo, au format européen DATEX II v3.7 (SituationPublication) : position WGS84, période, état. Une situation disparaît quand les travaux sont terminés ou la panne réparée.",
    keywords: ['travaux', 'voirie', 'feux tricolores', 'trafic', 'DATEX II', 'Châlons-en-Champagne'],
    licence: LICENCE_OUVERTE,
    format: 'DATEX II',
    frequency: 'continuous',
  },
  parse(params) {
    checkParameters(params, []);
    return null;
  },
  version: situationsVersion,
  async render(db, _params, version) {
    const [roadworks, faults] = await Promise.all([readRoadworks(db), readSignalFaults(db)]);
    return situationsXml(roadworks, faults, (version as SituationsVersion).at);
  },
};
