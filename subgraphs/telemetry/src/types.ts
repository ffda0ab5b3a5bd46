/**
 * The telemetry domain's own vocabulary, shared by its modules: who publishes, what a record
 * becomes once validated, what ingest answers, and the events it writes on the bus.
 */
import type { EquipmentKind } from '@connecte/shared/db';
import type { MetricName } from '@connecte/shared/senml';

/** What telemetry knows of an asset: fed by equipment's `equipment.changed` events (directory.ts). */
export interface DeviceInfo {
  equipmentId: string;
  collectivityId: string;
  kind: EquipmentKind;
  status: 'IN_SERVICE' | 'FAULT' | 'MAINTENANCE' | 'DECOMMISSIONED';
  /** The building of a sensor or controller, the cabinet of a light point. */
  parentId: string | null;
}

/** Who sent a message, once authenticated. */
export type Principal =
  /** A device with its own credential: it may report only for itself. */
  | { kind: 'device'; credentialId: string; equipmentId: string; collectivityId: string }
  /** A gateway with its collectivity's ingest key: it may report for any asset of that collectivity. */
  | { kind: 'ingest-key'; keyId: string; collectivityId: string }
  /**
   * An MQTT message: the broker authenticated its publisher and checked the topic against its
   * ACL; the topic names the collectivity and the asset, which the ingestor checks again.
   */
  | { kind: 'topic'; collectivityId: string; equipmentId: string };

/** Why one record (index) or a whole message (index null) was rejected. */
export interface Rejection {
  index: number | null;
  /** The field at fault: `n`, `u`, `v`, `vb`, `t`, `bn`, `topic`, `body`... */
  field: string | null;
  reason: string;
}

/** A record that passed validation: resolved name, time and value. */
export interface IngestRecord {
  /** Position in the pack. */
  index: number;
  equipmentId: string;
  metric: MetricName;
  time: Date;
  /** Booleans are 1 and 0. */
  value: number;
}

/** One message to ingest: an MQTT publish or an HTTP body. */
export interface IngestMessage {
  transport: 'mqtt' | 'http';
  /** The MQTT topic (null over HTTP). */
  topic: string | null;
  payload: Buffer;
  principal: Principal;
}

/** What ingest answers for one message. */
export interface IngestResult {
  /** Records stored now. */
  accepted: number;
  /** Records already stored (same equipment, metric and time): accepted idempotently, not stored twice. */
  duplicate: number;
  rejected: Rejection[];
}

/** A reading as stored, handed to the alarm engine in the ingest transaction. */
export interface StoredReading {
  equipmentId: string;
  collectivityId: string;
  kind: EquipmentKind;
  metric: MetricName;
  time: Date;
  value: number;
}

/**
 * The bus topic of ingested readings: one event per ingest transaction and collectivity,
 * payload `ReadingsEventPayload`, read by `readingReceived`.
 */
export const READINGS_TOPIC = 'telemetry.readings';

export interface ReadingsEventPayload {
  /** [equipmentId, kind, metric, time (ISO 8601), value], in the order stored. */
  r: [string, EquipmentKind, MetricName, string, number][];
}

/**
 * The bus topic of alarm changes: one event per change, payload `AlarmEventPayload`, read by
 * `alarmChanged` and by the equipment domain (which sets the asset FAULT / IN_SERVICE).
 */
export const ALARM_TOPIC = 'telemetry.alarm';
