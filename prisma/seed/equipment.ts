/**
 * Every piece of equipment of the seed, placed deterministically on the generated streets.
 *
 * Ids are readable and stable: `<kind prefix>-<collectivity>-<00001>` (`lp-chalons-00001`), and
 * references are unique per collectivity: `<PREFIX>-<collectivity code>-<00001>` (`LP-CHA-00001`).
 * Numbers follow the generation order (streets in id order, then along each street), and every
 * random choice comes from a named seeded stream (rng.ts): the same code always produces the
 * same rows, positions included.
 *
 * Placement rules (what the tests check):
 * - every equipment with an insee_code stands inside that commune (≥ 5 cm from its border
 *   before the 1e-7° rounding of stored positions); buses are moving assets: insee_code null;
 * - municipal equipment stands in its own commune; Châlons Agglo's in any commune with streets;
 * - light points: on the lit streets of the three communes, one every 27–38 m along each
 *   street, offset ≤ 7 m from its centre line (the pavement side), all on the same side of a
 *   given street;
 * - parent_id: light point → the nearest electrical cabinet of its commune (each feeds ≤ 60);
 *   presence detector → the light point it is mounted on (its pole: same position), also named
 *   in details.lightPointId; building sensors and controllers → their building; parking
 *   sensors → their on-street facility.
 */
import { COLLECTIVITIES, COLLECTIVITY_OF_COMMUNE, AGGLO_ID, INSEE, type CommuneSeed } from './territory.js';
import { SCHOOL_NAMESAKES, SPORTS_HALL_NAMES, STOP_PLACE_NAMES } from './names.js';
import { CHALONS_CENTRE, ZONES, type StreetSeed } from './streets.js';
import { rng, type Rng } from './rng.js';
import {
  cumulative,
  dist,
  insideWithMargin,
  offsetPoint,
  pointAlong,
  roundLonLat,
  toLonLat,
  toXY,
  type LonLat,
  type XY,
} from './geo.js';

export type EquipmentKind =
  | 'LIGHT_POINT'
  | 'PRESENCE_DETECTOR'
  | 'CAMERA'
  | 'TRAFFIC_SIGNAL_CONTROLLER'
  | 'BUS'
  | 'BUS_STOP'
  | 'PARKING_FACILITY'
  | 'PARKING_SENSOR'
  | 'AIR_QUALITY_SENSOR'
  | 'HEATING_CONTROLLER'
  | 'ENERGY_METER'
  | 'WIFI_HOTSPOT'
  | 'ELECTRICAL_CABINET'
  | 'BUILDING';

export type EquipmentStatus = 'IN_SERVICE' | 'FAULT' | 'MAINTENANCE' | 'DECOMMISSIONED';

export interface EquipmentSeed {
  id: string;
  kind: EquipmentKind;
  reference: string;
  name: string | null;
  status: EquipmentStatus;
  collectivityId: string;
  inseeCode: string | null;
  /** Rounded to 1e-7°. */
  location: LonLat | null;
  /** YYYY-MM-DD */
  installedOn: string;
  parentId: string | null;
  details: Record<string, unknown>;
  /** ISO timestamp, only for DECOMMISSIONED equipment. */
  decommissionedAt: string | null;
}

/** Light points: the figure of the territory (prisma/seed/README.md), of which 2,170 remotely dimmable. */
export const LIGHT_POINTS = 7290;
export const DIMMABLE_LIGHT_POINTS = 2170;
export const PRESENCE_DETECTORS = 510;
export const TRAFFIC_SIGNAL_CONTROLLERS = { [INSEE.CHALONS]: 22, [INSEE.FAGNIERES]: 3 } as const;
export const BUSES = 32;
/** A cabinet feeds at most this many light points. */
export const MAX_LIGHT_POINTS_PER_CABINET = 60;

/**
 * Public cameras: 120, all renewed and remotely managed. Not an official inventory: French
 * towns with an urban supervision centre run roughly one camera per 300–500 inhabitants;
 * Châlons (~44,000 inhabitants) gets 96, Fagnières and Saint-Martin-sur-le-Pré (~5,000 each)
 * 12 each. They stand at the busiest intersections (main axes first).
 */
export const CAMERAS = { [INSEE.CHALONS]: 96, [INSEE.FAGNIERES]: 12, [INSEE.SAINT_MARTIN]: 12 } as const;

/** Châlons Agglo's bus stops per commune (~150, on the streets of the towns its lines serve). */
export const BUS_STOPS: Readonly<Record<string, number>> = {
  [INSEE.CHALONS]: 96,
  [INSEE.FAGNIERES]: 14,
  [INSEE.SAINT_MARTIN]: 12,
  '51506': 10, // Saint-Memmie
  '51160': 4, // Compertrix
  '51525': 5, // Sarry
  '51168': 3, // Coolus
  '51453': 3, // Recy
  '51483': 3, // Saint-Gibrien
};

export const WIFI_HOTSPOTS = { [INSEE.CHALONS]: 32, [INSEE.FAGNIERES]: 4, [INSEE.SAINT_MARTIN]: 4 } as const;

/** Schools (municipal: écoles maternelles and élémentaires) per commune. */
export const SCHOOLS = { [INSEE.CHALONS]: 30, [INSEE.FAGNIERES]: 5, [INSEE.SAINT_MARTIN]: 5 } as const;

/** Sports halls: owner and commune. Châlons Agglo runs a few of the larger ones. */
export const SPORTS_HALLS: readonly { collectivityId: string; insee: string; count: number }[] = [
  { collectivityId: 'chalons', insee: INSEE.CHALONS, count: 6 },
  { collectivityId: 'fagnieres', insee: INSEE.FAGNIERES, count: 1 },
  { collectivityId: 'saint-martin-sur-le-pre', insee: INSEE.SAINT_MARTIN, count: 1 },
  { collectivityId: AGGLO_ID, insee: INSEE.CHALONS, count: 2 },
  { collectivityId: AGGLO_ID, insee: INSEE.FAGNIERES, count: 1 },
  { collectivityId: AGGLO_ID, insee: '51506', count: 1 },
];

/**
 * City-centre car parks (names of places of Châlons' centre; capacities and positions are
 * plausible, not an inventory). Off-street ones count entries and exits at their barriers;
 * the two on-street sectors have one sensor per bay (PARKING_SENSOR children).
 */
export const PARKING_FACILITIES: readonly { name: string; type: 'UNDERGROUND' | 'SURFACE' | 'ON_STREET'; capacity?: number; at: LonLat }[] = [
  { name: 'Parking Hôtel de Ville', type: 'UNDERGROUND', capacity: 320, at: [4.3650, 48.9566] },
  { name: 'Parking du Marché couvert', type: 'UNDERGROUND', capacity: 210, at: [4.3683, 48.9590] },
  { name: 'Parking de la République', type: 'SURFACE', capacity: 180, at: [4.3622, 48.9546] },
  { name: 'Parking du Jard', type: 'SURFACE', capacity: 260, at: [4.3585, 48.9528] },
  { name: 'Parking de la Gare', type: 'SURFACE', capacity: 240, at: [4.3535, 48.9572] },
  { name: 'Parking Tissier', type: 'SURFACE', capacity: 150, at: [4.3700, 48.9548] },
  { name: 'Stationnement centre nord', type: 'ON_STREET', at: [4.3668, 48.9598] },
  { name: 'Stationnement centre sud', type: 'ON_STREET', at: [4.3632, 48.9556] },
];
/** Bays per side of an on-street sector (one sensor each, both sides of the street). */
const BAYS_PER_SIDE = 24;
const BAY_LENGTH_M = 5.5;

/**
 * The exact number of rows per kind the seed writes (the seed checks itself against it).
 * Derived figures — cabinets (≤ 60 light points each), air-quality sensors (1–3 per building
 * by size), parking sensors (2 × 24 bays per on-street sector) — follow from the placement.
 */
export const SEED_COUNTS: Readonly<Record<EquipmentKind, number>> = {
  LIGHT_POINT: LIGHT_POINTS,
  PRESENCE_DETECTOR: PRESENCE_DETECTORS,
  CAMERA: 120,
  TRAFFIC_SIGNAL_CONTROLLER: 25,
  BUS: BUSES,
  BUS_STOP: 150,
  PARKING_FACILITY: 8,
  PARKING_SENSOR: 96,
  AIR_QUALITY_SENSOR: 107,
  HEATING_CONTROLLER: 52,
  ENERGY_METER: 52,
  WIFI_HOTSPOT: 40,
  ELECTRICAL_CABINET: 193,
  BUILDING: 52,
};

const PREFIX: Record<EquipmentKind, string> = {
  LIGHT_POINT: 'lp',
  PRESENCE_DETECTOR: 'pd',
  CAMERA: 'cam',
  TRAFFIC_SIGNAL_CONTROLLER: 'tsc',
  BUS: 'bus',
  BUS_STOP: 'bs',
  PARKING_FACILITY: 'pf',
  PARKING_SENSOR: 'ps',
  AIR_QUALITY_SENSOR: 'aq',
  HEATING_CONTROLLER: 'hc',
  ENERGY_METER: 'em',
  WIFI_HOTSPOT: 'wifi',
  ELECTRICAL_CABINET: 'cab',
  BUILDING: 'bld',
};

const CODE_OF = new Map(COLLECTIVITIES.map((c) => [c.id, c.code]));
const CLASS_RANK = { BOULEVARD: 3, AVENUE: 2, STREET: 0 } as const;
const MARGIN_M = 0.05;

/** Numbers ids and references per (kind, collectivity). */
class Registry {
  readonly rows: EquipmentSeed[] = [];
  private readonly counters = new Map<string, number>();
  private readonly statusRng = new Map<EquipmentKind, Rng>();
  private readonly dateRng = new Map<EquipmentKind, Rng>();

  add(
    kind: EquipmentKind,
    collectivityId: string,
    fields: { name?: string | null; inseeCode: string | null; xy: XY | null; parentId?: string | null; details: Record<string, unknown>; status?: EquipmentStatus },
  ): EquipmentSeed {
    const key = `${kind}:${collectivityId}`;
    const n = (this.counters.get(key) ?? 0) + 1;
    this.counters.set(key, n);
    const num = String(n).padStart(5, '0');
    const installedOn = this.installedOn(kind);
    const status = fields.status ?? this.status(kind);
    const row: EquipmentSeed = {
      id: `${PREFIX[kind]}-${collectivityId}-${num}`,
      kind,
      reference: `${PREFIX[kind].toUpperCase()}-${CODE_OF.get(collectivityId)}-${num}`,
      name: fields.name ?? null,
      status,
      collectivityId,
      inseeCode: fields.inseeCode,
      location: fields.xy ? roundLonLat(toLonLat(fields.xy)) : null,
      installedOn,
      parentId: fields.parentId ?? null,
      details: fields.details,
      decommissionedAt: status === 'DECOMMISSIONED' ? decommissionDate(installedOn, this.rngFor(this.dateRng, `decommissioned:${kind}`, kind)) : null,
    };
    this.rows.push(row);
    return row;
  }

  private rngFor(map: Map<EquipmentKind, Rng>, label: string, kind: EquipmentKind): Rng {
    let r = map.get(kind);
    if (!r) map.set(kind, (r = rng(label)));
    return r;
  }

  /** Mostly in service; ~1 % faulty, ~0.8 % in maintenance, ~0.3 % decommissioned. */
  private status(kind: EquipmentKind): EquipmentStatus {
    const roll = this.rngFor(this.statusRng, `status:${kind}`, kind).next();
    if (kind === 'BUILDING' || kind === 'PARKING_FACILITY') return 'IN_SERVICE';
    if (roll < 0.01) return 'FAULT';
    if (roll < 0.018) return 'MAINTENANCE';
    // A cabinet or a meter is repaired, not withdrawn.
    if (roll < 0.021 && kind !== 'ELECTRICAL_CABINET' && kind !== 'ENERGY_METER' && kind !== 'HEATING_CONTROLLER') return 'DECOMMISSIONED';
    return 'IN_SERVICE';
  }

  /** Installed during the 2024–2026 renewal programme. */
  private installedOn(kind: EquipmentKind): string {
    const r = this.rngFor(this.dateRng, `installed:${kind}`, kind);
    const start = Date.UTC(2024, 0, 8);
    const end = Date.UTC(2026, 9, 30);
    const day = Math.floor(r.next() * ((end - start) / 86400000 + 1));
    return new Date(start + day * 86400000).toISOString().slice(0, 10);
  }
}

function decommissionDate(installedOn: string, r: Rng): string {
  const from = Date.parse(`${installedOn}T00:00:00Z`);
  const until = Date.UTC(2026, 10, 20);
  const t = from + Math.floor(r.next() * Math.max(1, (until - from) / 86400000)) * 86400000 + 9 * 3600000;
  return new Date(Math.min(t, until)).toISOString();
}

/** Street geometry helpers with cached cumulative lengths. */
const cumCache = new WeakMap<StreetSeed, number[]>();
function cumOf(street: StreetSeed): number[] {
  let cum = cumCache.get(street);
  if (!cum) cumCache.set(street, (cum = cumulative(street.line)));
  return cum;
}

/** A point at distance `s` along the street, `offset` metres to its left, inside the commune. */
function onStreet(street: StreetSeed, s: number, offset: number, ring: XY[]): XY | null {
  const { p, tangent } = pointAlong(street.line, cumOf(street), s);
  for (const o of [offset, offset / 2, 0, -offset / 2, -offset]) {
    const q = offsetPoint(p, tangent, o);
    if (insideWithMargin(q, ring, MARGIN_M)) return q;
  }
  return null;
}

/** Largest-remainder apportionment of `total` by weights. */
export function apportion(total: number, weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (total * w) / sum);
  const out = exact.map(Math.floor);
  let rest = total - out.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (rest-- <= 0) break;
    out[i]++;
  }
  return out;
}

const shortName = (name: string) => {
  const rest = name
    .replace(/^(Rue|Avenue|Boulevard|Allée|Chemin|Impasse|Passage)\s+/, '')
    .replace(/^(de la |du |des |de l'|de l’|d'|d’|de )/, '');
  return rest.charAt(0).toUpperCase() + rest.slice(1);
};

export interface LightPointPlan {
  id: string;
  streetId: string;
  /** Index along its street, from 0. */
  index: number;
  xy: XY;
  dimmable: boolean;
}

export interface Junction {
  p: XY;
  insee: string;
  major: StreetSeed;
  minor: StreetSeed;
  score: number;
  name: string;
}

/** Street crossings and T-junctions of each commune, main axes first. */
export function findJunctions(streets: StreetSeed[]): Junction[] {
  const out: Junction[] = [];
  const byCommune = new Map<string, StreetSeed[]>();
  for (const s of streets) byCommune.set(s.inseeCode, [...(byCommune.get(s.inseeCode) ?? []), s]);
  for (const [insee, list] of byCommune) {
    const segs: { st: StreetSeed; a: XY; b: XY }[] = [];
    for (const st of list) for (let i = 1; i < st.line.length; i++) segs.push({ st, a: st.line[i - 1], b: st.line[i] });
    const CELL = 300;
    const cells = new Map<string, number[]>();
    segs.forEach((seg, i) => {
      for (let cx = Math.floor(Math.min(seg.a[0], seg.b[0]) / CELL); cx <= Math.floor(Math.max(seg.a[0], seg.b[0]) / CELL); cx++) {
        for (let cy = Math.floor(Math.min(seg.a[1], seg.b[1]) / CELL); cy <= Math.floor(Math.max(seg.a[1], seg.b[1]) / CELL); cy++) {
          const key = `${cx},${cy}`;
          const cell = cells.get(key);
          if (cell) cell.push(i);
          else cells.set(key, [i]);
        }
      }
    });
    const seen = new Set<string>();
    const found: Junction[] = [];
    const tol = 1e-6;
    for (const cell of cells.values()) {
      for (let x = 0; x < cell.length; x++) {
        for (let y = x + 1; y < cell.length; y++) {
          const s1 = segs[cell[x]];
          const s2 = segs[cell[y]];
          if (s1.st.name === s2.st.name) continue;
          const key = `${cell[x]},${cell[y]}`;
          if (seen.has(key)) continue;
          seen.add(key);
          // A hair of tolerance finds exact T-junctions despite rounding; two lines that only
          // meet end to end (consecutive arcs of a ring) do not make a junction.
          const hit = crossingWithTolerance(s1.a, s1.b, s2.a, s2.b, tol);
          if (!hit) continue;
          const atEnd = (v: number) => v < tol || v > 1 - tol;
          if (atEnd(hit.t) && atEnd(hit.u)) continue;
          const p: XY = [s1.a[0] + (s1.b[0] - s1.a[0]) * hit.t, s1.a[1] + (s1.b[1] - s1.a[1]) * hit.t];
          const [major, minor] = CLASS_RANK[s1.st.cls] > CLASS_RANK[s2.st.cls] || (CLASS_RANK[s1.st.cls] === CLASS_RANK[s2.st.cls] && s1.st.id < s2.st.id) ? [s1.st, s2.st] : [s2.st, s1.st];
          found.push({ p, insee, major, minor, score: CLASS_RANK[major.cls] + CLASS_RANK[minor.cls], name: `${major.name} / ${minor.name}` });
        }
      }
    }
    // One junction per place: merge those within 12 m, keeping the most important.
    const zone = ZONES.find((z) => z.insee === insee)!;
    const centre = toXY(insee === INSEE.CHALONS ? CHALONS_CENTRE : zone.centre);
    found.sort((a, b) => b.score - a.score || dist(a.p, centre) - dist(b.p, centre) || a.p[0] - b.p[0] || a.p[1] - b.p[1]);
    const kept: Junction[] = [];
    for (const j of found) if (!kept.some((k) => dist(k.p, j.p) < 12)) kept.push(j);
    out.push(...kept);
  }
  return out;
}

function crossingWithTolerance(a: XY, b: XY, c: XY, d: XY, tol: number) {
  const rx = b[0] - a[0];
  const ry = b[1] - a[1];
  const sx = d[0] - c[0];
  const sy = d[1] - c[1];
  const denom = rx * sy - ry * sx;
  // (Nearly) parallel lines — consecutive sections of one axis — never make a junction.
  if (Math.abs(denom) < 0.1 * Math.hypot(rx, ry) * Math.hypot(sx, sy)) return null;
  const t = ((c[0] - a[0]) * sy - (c[1] - a[1]) * sx) / denom;
  const u = ((c[0] - a[0]) * ry - (c[1] - a[1]) * rx) / denom;
  if (t < -tol || t > 1 + tol || u < -tol || u > 1 + tol) return null;
  return { t: Math.max(0, Math.min(1, t)), u };
}

/** Greedy pick of `count` items in order, each at least `minDist` from those already picked. */
function spreadPick<T>(items: T[], count: number, at: (item: T) => XY, minDists: number[]): T[] {
  for (const minDist of minDists) {
    const picked: T[] = [];
    for (const item of items) {
      if (picked.length === count) break;
      if (picked.every((p) => dist(at(p), at(item)) >= minDist)) picked.push(item);
    }
    if (picked.length === count) return picked;
  }
  throw new Error(`could not place ${count} items`);
}

/** Lloyd's k-means with k-means++ seeding from a seeded stream. */
function kmeans(points: XY[], k: number, random: Rng, iterations = 25): XY[] {
  const centres: XY[] = [points[Math.floor(random.next() * points.length)]];
  const d2 = points.map((p) => dist(p, centres[0]) ** 2);
  while (centres.length < k) {
    const total = d2.reduce((a, b) => a + b, 0);
    let roll = random.next() * total;
    let i = 0;
    while (i < points.length - 1 && roll >= d2[i]) roll -= d2[i++];
    centres.push(points[i]);
    points.forEach((p, j) => (d2[j] = Math.min(d2[j], dist(p, points[i]) ** 2)));
  }
  for (let it = 0; it < iterations; it++) {
    const sums = centres.map(() => [0, 0, 0]);
    for (const p of points) {
      const c = nearestIndex(centres, p);
      sums[c][0] += p[0];
      sums[c][1] += p[1];
      sums[c][2]++;
    }
    sums.forEach((s, c) => {
      if (s[2] > 0) centres[c] = [s[0] / s[2], s[1] / s[2]];
    });
  }
  return centres;
}

function nearestIndex(centres: XY[], p: XY): number {
  let best = 0;
  let bestD = Infinity;
  for (let c = 0; c < centres.length; c++) {
    const d = (centres[c][0] - p[0]) ** 2 + (centres[c][1] - p[1]) ** 2;
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

export interface EquipmentPlan {
  rows: EquipmentSeed[];
  lightPoints: LightPointPlan[];
  junctions: Junction[];
}

export function buildEquipment(communes: CommuneSeed[], streets: StreetSeed[]): EquipmentPlan {
  const reg = new Registry();
  const ringOf = new Map(communes.map((c) => [c.code, c.ring]));
  const streetsOf = (insee: string) => streets.filter((s) => s.inseeCode === insee);
  const litCommunes = [INSEE.CHALONS, INSEE.FAGNIERES, INSEE.SAINT_MARTIN];
  const junctions = findJunctions(streets);

  // ---- Light points: apportioned to the communes by lit street length, then to their streets.
  const litLengths = litCommunes.map((c) => streetsOf(c).reduce((sum, s) => sum + s.length, 0));
  const perCommune = apportion(LIGHT_POINTS, litLengths);
  interface LpDraft { street: StreetSeed; index: number; s: number; offset: number; xy: XY; insee: string }
  const lpDrafts: LpDraft[] = [];
  litCommunes.forEach((insee, ci) => {
    const list = streetsOf(insee);
    const spacing = litLengths[ci] / perCommune[ci];
    const plan = list.map((st) => {
      const ideal = st.length / spacing;
      // 27–38 m keeps geodesic spacing within 25–40 m whatever the offsets and bends; short
      // streets that cannot take it use the full 25.5–39.5 m range, or get a single light.
      let lo = Math.ceil(st.length / 38);
      let hi = Math.floor(st.length / 27);
      if (hi < lo) {
        lo = Math.ceil(st.length / 39.5);
        hi = Math.floor(st.length / 25.5);
        if (hi < lo) lo = hi = 1;
      }
      return { st, ideal, lo, hi, k: Math.min(hi, Math.max(lo, Math.round(ideal))) };
    });
    let diff = perCommune[ci] - plan.reduce((sum, p) => sum + p.k, 0);
    while (diff !== 0) {
      const step = diff > 0 ? 1 : -1;
      let best = -1;
      let bestScore = -Infinity;
      plan.forEach((p, i) => {
        if (step > 0 ? p.k >= p.hi : p.k <= p.lo) return;
        const score = step > 0 ? p.ideal - p.k : p.k - p.ideal;
        if (score > bestScore) {
          bestScore = score;
          best = i;
        }
      });
      if (best < 0) throw new Error(`cannot fit ${perCommune[ci]} light points on the streets of ${insee}`);
      plan[best].k += step;
      diff -= step;
    }
    const sides = rng(`light-sides:${insee}`);
    for (const { st, k } of plan) {
      const side = sides.chance(0.5) ? 1 : -1;
      const offset = side * (st.cls === 'BOULEVARD' ? 7 : st.cls === 'AVENUE' ? 6 : 4);
      const step = st.length / k;
      for (let i = 0; i < k; i++) {
        const s = (i + 0.5) * step;
        const xy = onStreet(st, s, offset, ringOf.get(insee)!);
        if (!xy) throw new Error(`light point ${i} of ${st.id} has no place inside ${insee}`);
        lpDrafts.push({ street: st, index: i, s, offset, xy, insee });
      }
    }
  });

  // Dimmable: the main axes first (boulevards, avenues, then the longest streets).
  const dimOrder = lpDrafts
    .map((d, i) => ({ d, i }))
    .sort((a, b) => CLASS_RANK[b.d.street.cls] - CLASS_RANK[a.d.street.cls] || b.d.street.length - a.d.street.length || (a.d.street.id < b.d.street.id ? -1 : a.d.street.id > b.d.street.id ? 1 : 0) || a.d.index - b.d.index);
  const dimmable = new Set(dimOrder.slice(0, DIMMABLE_LIGHT_POINTS).map((x) => x.i));

  // ---- Electrical cabinets: k-means per commune, refined until each feeds ≤ 60 light points.
  const cabinetOf = new Map<number, number>(); // light point draft index -> cabinet (global index)
  interface CabDraft { xy: XY; insee: string; anchor: number }
  const cabDrafts: CabDraft[] = [];
  for (const insee of litCommunes) {
    const members = lpDrafts.map((d, i) => ({ d, i })).filter((x) => x.d.insee === insee);
    const pts = members.map((m) => m.d.xy);
    const random = rng(`cabinets:${insee}`);
    let centres = kmeans(pts, Math.ceil(pts.length / 46), random);
    const placeCabinet = (centre: XY, group: number[]): { xy: XY; anchor: number } => {
      // Beside the member light point nearest to the group's centre: 3 m further along its
      // street, 1.5 m further back from the carriageway.
      let anchor = group[0];
      for (const m of group) if (dist(pts[m], centre) < dist(pts[anchor], centre)) anchor = m;
      const d = members[anchor].d;
      const s = Math.min(d.street.length - 0.5, d.s + 3);
      const xy = onStreet(d.street, s, Math.sign(d.offset) * (Math.abs(d.offset) + 1.5), ringOf.get(insee)!) ?? d.xy;
      return { xy, anchor: members[anchor].i };
    };
    let cabs: { xy: XY; anchor: number }[] = [];
    let assignment: number[] = [];
    for (let round = 0; ; round++) {
      if (round > 60) throw new Error(`cabinets of ${insee}: no assignment with ≤ ${MAX_LIGHT_POINTS_PER_CABINET} light points each`);
      const groups = centres.map(() => [] as number[]);
      pts.forEach((p, m) => groups[nearestIndex(centres, p)].push(m));
      const nonEmpty = groups.map((g, c) => ({ g, c })).filter((x) => x.g.length > 0);
      cabs = nonEmpty.map(({ g, c }) => placeCabinet(centres[c], g));
      const cabXY = cabs.map((c) => c.xy);
      assignment = pts.map((p) => nearestIndex(cabXY, p));
      const loads = cabs.map(() => 0);
      for (const a of assignment) loads[a]++;
      const overloaded = loads.map((l, c) => (l > MAX_LIGHT_POINTS_PER_CABINET ? c : -1)).filter((c) => c >= 0);
      const empty = loads.some((l) => l === 0);
      if (!overloaded.length && !empty) break;
      // Split each overloaded cabinet's area in two; drop cabinets left without light points.
      const next: XY[] = [];
      cabs.forEach((cab, c) => {
        if (loads[c] === 0) return;
        const mine = pts.filter((_, m) => assignment[m] === c);
        if (loads[c] > MAX_LIGHT_POINTS_PER_CABINET) next.push(...kmeans(mine, 2, random, 10));
        else next.push(cab.xy);
      });
      centres = next;
    }
    // Number cabinets in the order of the light points they stand by.
    const order = cabs.map((c, i) => ({ c, i })).sort((a, b) => a.c.anchor - b.c.anchor);
    const base = cabDrafts.length;
    const renumber = new Map(order.map((o, rank) => [o.i, base + rank]));
    for (const o of order) cabDrafts.push({ xy: o.c.xy, insee, anchor: o.c.anchor });
    members.forEach((m, k) => cabinetOf.set(m.i, renumber.get(assignment[k])!));
  }
  const cabRandom = rng('cabinet-details');
  const fedBy = cabDrafts.map(() => 0);
  for (const c of cabinetOf.values()) fedBy[c]++;
  const cabinetRows = cabDrafts.map((c, ci) => {
    const fed = fedBy[ci];
    return reg.add('ELECTRICAL_CABINET', COLLECTIVITY_OF_COMMUNE[c.insee], {
      name: `Armoire ${lpDrafts[c.anchor].street.name}`,
      inseeCode: c.insee,
      xy: c.xy,
      details: { circuits: Math.max(2, Math.ceil(fed / 15)), ratedPowerKVA: cabRandom.pick([9, 12, 18, 24, 36]), remoteManaged: true },
    });
  });

  // ---- Light point rows.
  const lpRandom = rng('light-details');
  const lightPoints: LightPointPlan[] = [];
  const lpRows = lpDrafts.map((d, i) => {
    const major = d.street.cls !== 'STREET';
    const row = reg.add('LIGHT_POINT', COLLECTIVITY_OF_COMMUNE[d.insee], {
      name: d.street.name,
      inseeCode: d.insee,
      xy: d.xy,
      parentId: cabinetRows[cabinetOf.get(i)!].id,
      details: {
        powerW: major ? lpRandom.pick([60, 75, 90]) : lpRandom.pick([18, 24, 30, 36, 45]),
        lampType: 'LED',
        dimmable: dimmable.has(i),
        colorTemperatureK: major ? 3000 : lpRandom.chance(0.7) ? 2700 : 3000,
        poleHeightM: major ? lpRandom.pick([8, 9, 10]) : lpRandom.pick([4, 4.5, 5, 5.5, 6]),
      },
    });
    lightPoints.push({ id: row.id, streetId: d.street.id, index: d.index, xy: d.xy, dimmable: dimmable.has(i) });
    return row;
  });

  // ---- Presence detectors: on the poles of 510 dimmable light points.
  const pdRandom = rng('presence-detectors');
  const dimIdx = [...dimmable].sort((a, b) => a - b);
  const withDetector = pdRandom.shuffle(dimIdx).slice(0, PRESENCE_DETECTORS).sort((a, b) => a - b);
  for (const i of withDetector) {
    const lp = lpRows[i];
    reg.add('PRESENCE_DETECTOR', lp.collectivityId, {
      name: lp.name,
      inseeCode: lp.inseeCode,
      xy: lpDrafts[i].xy,
      parentId: lp.id,
      details: { detectionRangeM: pdRandom.pick([8, 10, 12, 15]), lightPointId: lp.id },
    });
  }

  // ---- Traffic signal controllers: 25 junctions of main axes, Châlons and Fagnières.
  const corner = (j: Junction, d: number): XY => {
    const ring = ringOf.get(j.insee)!;
    for (const [dx, dy] of [[1, 1], [-1, 1], [-1, -1], [1, -1]]) {
      const q: XY = [j.p[0] + dx * d, j.p[1] + dy * d];
      if (insideWithMargin(q, ring, MARGIN_M)) return q;
    }
    throw new Error(`no corner of ${j.name} inside ${j.insee}`);
  };
  const tscRandom = rng('traffic-signals');
  for (const [insee, count] of Object.entries(TRAFFIC_SIGNAL_CONTROLLERS)) {
    const candidates = junctions.filter((j) => j.insee === insee && j.score >= 2);
    for (const j of spreadPick(candidates, count, (x) => x.p, [150, 100, 60])) {
      reg.add('TRAFFIC_SIGNAL_CONTROLLER', COLLECTIVITY_OF_COMMUNE[insee], {
        name: j.name,
        inseeCode: insee,
        xy: corner(j, 3),
        details: { intersectionName: j.name, phases: j.score >= 4 ? 4 : tscRandom.pick([2, 3]), busPriority: true },
      });
    }
  }

  // ---- Cameras: the most important junctions of each commune.
  const camRandom = rng('cameras');
  for (const [insee, count] of Object.entries(CAMERAS)) {
    const candidates = junctions.filter((j) => j.insee === insee);
    for (const j of spreadPick(candidates, count, (x) => x.p, [160, 120, 80, 50])) {
      const ptz = j.score >= 3 || camRandom.chance(0.25);
      reg.add('CAMERA', COLLECTIVITY_OF_COMMUNE[insee], {
        name: `Caméra ${j.name}`,
        inseeCode: insee,
        xy: corner(j, 5),
        details: { model: ptz ? 'CX-PTZ-30X' : camRandom.pick(['CX-BULLET-4K', 'CX-DOME-360']), ptz, retentionDays: 30 },
      });
    }
  }

  // ---- Wi-Fi hotspots: squares and junctions near the town centres.
  const wifiRandom = rng('wifi');
  for (const [insee, count] of Object.entries(WIFI_HOTSPOTS)) {
    const zone = ZONES.find((z) => z.insee === insee)!;
    const centre = toXY(insee === INSEE.CHALONS ? CHALONS_CENTRE : zone.centre);
    const candidates = junctions.filter((j) => j.insee === insee).sort((a, b) => dist(a.p, centre) - dist(b.p, centre) || a.p[0] - b.p[0]);
    for (const j of spreadPick(candidates, count, (x) => x.p, [180, 130, 90, 60])) {
      reg.add('WIFI_HOTSPOT', COLLECTIVITY_OF_COMMUNE[insee], {
        name: `Wi-Fi ${j.name}`,
        inseeCode: insee,
        xy: corner(j, 8),
        details: { ssid: `${CODE_OF.get(COLLECTIVITY_OF_COMMUNE[insee])}-WIFI-PUBLIC`, band: wifiRandom.pick(['2.4GHz', 'DUAL']), maxClients: wifiRandom.pick([64, 128, 256]) },
      });
    }
  }

  // ---- Bus stops (Châlons Agglo): along the main streets, every ~300 m, ≥ 250 m apart.
  const stopRandom = rng('bus-stops');
  const stopPositions: { xy: XY; street: StreetSeed; s: number }[] = [];
  for (const [insee, count] of Object.entries(BUS_STOPS)) {
    const list = streetsOf(insee)
      .slice()
      .sort((a, b) => CLASS_RANK[b.cls] - CLASS_RANK[a.cls] || b.length - a.length || (a.id < b.id ? -1 : 1));
    const candidates: { xy: XY; street: StreetSeed; s: number }[] = [];
    for (const st of list) {
      const along: number[] = [];
      for (let s = 120; s <= st.length - 30; s += 300) along.push(s);
      if (!along.length && st.length >= 60) along.push(st.length / 2);
      for (const s of along) {
        const xy = onStreet(st, s, 5, ringOf.get(insee)!);
        if (xy) candidates.push({ xy, street: st, s });
      }
    }
    const chosen = spreadPick(candidates, count, (c) => c.xy, [300, 250, 200, 150, 100]);
    const used = new Set<string>();
    const places = stopRandom.shuffle(STOP_PLACE_NAMES);
    for (const c of chosen) {
      // Named after the cross street of the nearest junction on its street ("Victor Hugo"), or
      // "street – cross street" when that is taken; a stop with no junction near it (an
      // entrance road) takes a place name.
      const nearby = junctions
        .filter((j) => j.insee === insee && (j.major === c.street || j.minor === c.street) && dist(j.p, c.xy) < 150)
        .sort((a, b) => dist(a.p, c.xy) - dist(b.p, c.xy))[0];
      const other = nearby ? (nearby.major === c.street ? nearby.minor : nearby.major) : null;
      const options = other ? [shortName(other.name), `${shortName(c.street.name)} – ${shortName(other.name)}`] : [];
      if (other && shortName(other.name) === shortName(c.street.name)) options.pop();
      let name = options.find((o) => !used.has(o));
      while (!name) {
        const place = places.shift();
        if (!place) throw new Error(`bus stops of ${insee}: place names exhausted`);
        if (!used.has(place)) name = place;
      }
      used.add(name);
      reg.add('BUS_STOP', AGGLO_ID, { name, inseeCode: insee, xy: c.xy, details: { name, shelter: stopRandom.chance(0.55) } });
      stopPositions.push(c);
    }
  }

  // ---- Buses (Châlons Agglo): 24 running (at stops along their routes), 8 at the depot.
  const busRandom = rng('buses');
  const depotStreet = streetsOf(INSEE.CHALONS)
    .filter((s) => s.cls === 'STREET' && s.length > 150)
    .sort((a, b) => dist(a.line[0], toXY([4.3830, 48.9800])) - dist(b.line[0], toXY([4.3830, 48.9800])))[0];
  const running = busRandom.shuffle(stopPositions).slice(0, 24);
  const fleet = [
    ...Array.from({ length: 18 }, () => 'DIESEL' as const),
    ...Array.from({ length: 8 }, () => 'HYBRID' as const),
    ...Array.from({ length: 6 }, () => 'ELECTRIC' as const),
  ];
  fleet.forEach((energy, i) => {
    const atDepot = i >= 24;
    const xy = atDepot
      ? onStreet(depotStreet, 20 + (i - 24) * 15, 12, ringOf.get(INSEE.CHALONS)!)!
      : onStreet(running[i].street, running[i].s, 2, ringOf.get(running[i].street.inseeCode)!)!;
    const midi = i % 8 === 7;
    reg.add('BUS', AGGLO_ID, {
      name: `Bus ${201 + i}`,
      inseeCode: null,
      xy,
      status: atDepot && i >= 30 ? 'MAINTENANCE' : 'IN_SERVICE',
      details: { fleetNumber: String(201 + i), capacity: midi ? 55 : energy === 'ELECTRIC' ? 90 : 100, energy, signalPriority: true },
    });
  });

  // ---- Parking: off-street car parks, and two on-street sectors with one sensor per bay.
  const chalonsRing = ringOf.get(INSEE.CHALONS)!;
  const chalonsStreets = streetsOf(INSEE.CHALONS);
  const usedSectorStreets = new Set<string>();
  for (const pf of PARKING_FACILITIES) {
    if (pf.type !== 'ON_STREET') {
      const xy = toXY(pf.at);
      if (!insideWithMargin(xy, chalonsRing, MARGIN_M)) throw new Error(`${pf.name} outside Châlons`);
      reg.add('PARKING_FACILITY', 'chalons', { name: pf.name, inseeCode: INSEE.CHALONS, xy, details: { name: pf.name, capacity: pf.capacity!, type: pf.type } });
      continue;
    }
    const needed = BAYS_PER_SIDE * BAY_LENGTH_M + 20;
    const target = toXY(pf.at);
    const street = chalonsStreets
      .filter((s) => s.cls === 'STREET' && s.length >= needed && !usedSectorStreets.has(s.name))
      .sort((a, b) => midDist(a, target) - midDist(b, target))[0];
    usedSectorStreets.add(street.name);
    const start = (street.length - BAYS_PER_SIDE * BAY_LENGTH_M) / 2;
    const name = `Stationnement ${street.name}`;
    const facility = reg.add('PARKING_FACILITY', 'chalons', {
      name,
      inseeCode: INSEE.CHALONS,
      xy: onStreet(street, street.length / 2, 3, chalonsRing)!,
      details: { name, capacity: 2 * BAYS_PER_SIDE, type: 'ON_STREET' },
    });
    let bay = 0;
    for (const side of [1, -1]) {
      for (let b = 0; b < BAYS_PER_SIDE; b++) {
        bay++;
        reg.add('PARKING_SENSOR', 'chalons', {
          name: `${name} — place ${bay}`,
          inseeCode: INSEE.CHALONS,
          xy: onStreet(street, start + (b + 0.5) * BAY_LENGTH_M, side * 3, chalonsRing)!,
          parentId: facility.id,
          details: { bayNumber: bay, facilityId: facility.id },
        });
      }
    }
  }

  // ---- Buildings: schools and sports halls, each with its heating controller, energy meter
  // and indoor air-quality sensors (children located at the building).
  const bRandom = rng('buildings');
  const schoolNames = new Map<string, string[]>();
  const buildingSpots: XY[] = [];
  const spotFor = (insee: string): XY => {
    const list = streetsOf(insee).filter((s) => s.length > 80);
    const ring = ringOf.get(insee)!;
    for (let attempt = 0; attempt < 2000; attempt++) {
      const st = bRandom.pick(list);
      const xy = onStreetStrict(st, bRandom.range(30, st.length - 30), bRandom.chance(0.5) ? 25 : -25, ring);
      if (xy && buildingSpots.every((b) => dist(b, xy) >= 120)) {
        buildingSpots.push(xy);
        return xy;
      }
    }
    throw new Error(`no room for a building in ${insee}`);
  };
  const addBuilding = (collectivityId: string, insee: string, name: string, use: 'SCHOOL' | 'SPORTS_HALL', area: number) => {
    const xy = spotFor(insee);
    const building = reg.add('BUILDING', collectivityId, { name, inseeCode: insee, xy, details: { name, use, heatedAreaM2: area } });
    reg.add('HEATING_CONTROLLER', collectivityId, {
      name: `Régulation chauffage — ${name}`,
      inseeCode: insee,
      xy,
      parentId: building.id,
      details: { zones: Math.max(1, Math.min(4, Math.round(area / 800))), comfortSetpointC: 19, ecoSetpointC: 16 },
    });
    reg.add('ENERGY_METER', collectivityId, {
      name: `Compteur — ${name}`,
      inseeCode: insee,
      xy,
      parentId: building.id,
      details: { carrier: bRandom.pick(['GAS', 'GAS', 'ELECTRICITY', 'DISTRICT_HEATING']), unit: 'Wh' },
    });
    const sensors = area > 2200 ? 3 : area > 1300 ? 2 : 1;
    for (let k = 1; k <= sensors; k++) {
      reg.add('AIR_QUALITY_SENSOR', collectivityId, {
        name: `Qualité de l'air — ${name} (${use === 'SCHOOL' ? `salle ${k}` : k === 1 ? 'salle principale' : `salle ${k}`})`,
        inseeCode: insee,
        xy,
        parentId: building.id,
        details: { room: use === 'SCHOOL' ? `Classe ${k}` : k === 1 ? 'Salle principale' : `Salle ${k}`, measures: ['co2', 'temperature', 'humidity', 'pm2_5'] },
      });
    }
  };
  for (const [insee, count] of Object.entries(SCHOOLS)) {
    const names = schoolNames.get(insee) ?? bRandom.shuffle(SCHOOL_NAMESAKES);
    schoolNames.set(insee, names);
    for (let i = 0; i < count; i++) {
      const type = bRandom.pick(['École maternelle', 'École élémentaire', 'Groupe scolaire']);
      const area = Math.round(bRandom.range(type === 'Groupe scolaire' ? 1800 : 700, type === 'Groupe scolaire' ? 3400 : 1900) / 10) * 10;
      addBuilding(COLLECTIVITY_OF_COMMUNE[insee], insee, `${type} ${names[i]}`, 'SCHOOL', area);
    }
  }
  const hallNames = bRandom.shuffle(SPORTS_HALL_NAMES);
  let hall = 0;
  for (const { collectivityId, insee, count } of SPORTS_HALLS) {
    for (let i = 0; i < count; i++) {
      addBuilding(collectivityId, insee, hallNames[hall++], 'SPORTS_HALL', Math.round(bRandom.range(1000, 3600) / 10) * 10);
    }
  }

  return { rows: reg.rows, lightPoints, junctions };
}

/** Like onStreet, but without falling back to other offsets (buildings stand back from the street). */
function onStreetStrict(street: StreetSeed, s: number, offset: number, ring: XY[]): XY | null {
  const { p, tangent } = pointAlong(street.line, cumOf(street), s);
  const q = offsetPoint(p, tangent, offset);
  return insideWithMargin(q, ring, 5) ? q : null;
}

function midDist(street: StreetSeed, target: XY): number {
  const { p } = pointAlong(street.line, cumOf(street), street.length / 2);
  return dist(p, target);
}
