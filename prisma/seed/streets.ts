/**
 * The street network: generated, deterministic, and clipped per commune.
 *
 * Each town is a "zone" (an ellipse around its centre) cut by a jittered k-d subdivision: a
 * rectangle is split along its longer side, at 38–62 % of it, while it is larger than the
 * block size wanted at its centre — small near the centre (dense old town), larger towards the
 * edge. Every split line is a street (ending in T-junctions on the lines of the larger blocks),
 * and long split lines are the town's avenues. Châlons also gets two rings of boulevards and
 * its radial entrance avenues (from the inner ring out into the neighbouring communes). Every line is then
 * clipped to each commune it crosses: a street crossing a border becomes one row per commune,
 * with the same name.
 *
 * Streets of the three project communes are lit (light points are placed on them); the main
 * streets of six neighbouring villages exist so that Châlons Agglo's bus stops stand on streets.
 */
import { AVENUE_NAMESAKES, INNER_BOULEVARDS, OUTER_BOULEVARDS, RADIAL_AVENUES, STREET_KINDS, STREET_NAMESAKES } from './names.js';
import { rng, type Rng } from './rng.js';
import { circleRing, clipToRing, polylineLength, segmentCrossing, toXY, type LonLat, type XY } from './geo.js';
import { INSEE, type CommuneSeed } from './territory.js';

export type StreetClass = 'BOULEVARD' | 'AVENUE' | 'STREET';

export interface StreetSeed {
  id: string;
  name: string;
  inseeCode: string;
  cls: StreetClass;
  /** In the local metric plane. */
  line: XY[];
  /** Planar length in metres (the stored length_m is the geodesic one, computed by PostGIS). */
  length: number;
  /** Light points are placed on it (streets of the three project communes). */
  lit: boolean;
}

interface Zone {
  insee: string;
  centre: LonLat;
  /** Semi-axes of the town's ellipse, metres. */
  rx: number;
  ry: number;
  /** Block size at the centre and at the edge of the ellipse, metres. */
  b0: number;
  b1: number;
  /** Orientation of the grid, degrees. */
  angle: number;
}

/** The three project towns (lit) and the villages whose main streets host bus stops. */
export const ZONES: readonly Zone[] = [
  { insee: INSEE.CHALONS, centre: [4.3665, 48.9610], rx: 2400, ry: 2300, b0: 120, b1: 420, angle: 18 },
  { insee: INSEE.FAGNIERES, centre: [4.3220, 48.9600], rx: 950, ry: 800, b0: 170, b1: 340, angle: 34 },
  { insee: INSEE.SAINT_MARTIN, centre: [4.3440, 48.9780], rx: 850, ry: 750, b0: 160, b1: 320, angle: -12 },
  { insee: '51506', centre: [4.3920, 48.9500], rx: 700, ry: 600, b0: 150, b1: 300, angle: 25 }, // Saint-Memmie
  { insee: '51160', centre: [4.3460, 48.9370], rx: 450, ry: 400, b0: 180, b1: 300, angle: 10 }, // Compertrix
  { insee: '51525', centre: [4.4050, 48.9190], rx: 500, ry: 450, b0: 180, b1: 300, angle: -20 }, // Sarry
  { insee: '51168', centre: [4.3300, 48.9160], rx: 400, ry: 350, b0: 180, b1: 300, angle: 40 }, // Coolus
  { insee: '51453', centre: [4.3100, 48.9900], rx: 450, ry: 400, b0: 180, b1: 300, angle: 5 }, // Recy
  { insee: '51483', centre: [4.3000, 48.9750], rx: 400, ry: 350, b0: 180, b1: 300, angle: -30 }, // Saint-Gibrien
];

export const LIT_COMMUNES: readonly string[] = [INSEE.CHALONS, INSEE.FAGNIERES, INSEE.SAINT_MARTIN];

/** Centre of Châlons' old town: the rings of boulevards and the radial avenues start there. */
export const CHALONS_CENTRE: LonLat = [4.3655, 48.9575];

const rotate = ([x, y]: XY, deg: number): XY => {
  const a = (deg * Math.PI) / 180;
  return [x * Math.cos(a) - y * Math.sin(a), x * Math.sin(a) + y * Math.cos(a)];
};

interface RawLine {
  line: XY[];
  cls: StreetClass;
  /** Shared by every piece of one street. */
  name?: string;
}

/** The jittered k-d split lines of a zone, in the metric plane. */
function zoneLines(zone: Zone, random: Rng): RawLine[] {
  const out: { a: XY; b: XY; length: number }[] = [];
  const split = (x0: number, y0: number, x1: number, y1: number) => {
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    // Skip rectangles entirely outside the ellipse (nearest point of the rectangle to the centre).
    const nx = Math.max(x0, Math.min(0, x1)) / zone.rx;
    const ny = Math.max(y0, Math.min(0, y1)) / zone.ry;
    if (nx * nx + ny * ny > 1) return;
    const r = Math.min(1, Math.hypot(cx / zone.rx, cy / zone.ry));
    const target = zone.b0 + (zone.b1 - zone.b0) * Math.pow(r, 1.4);
    const w = x1 - x0;
    const h = y1 - y0;
    if (Math.max(w, h) <= target) return;
    const f = random.range(0.38, 0.62);
    if (w >= h) {
      const x = x0 + w * f;
      out.push({ a: [x, y0], b: [x, y1], length: h });
      split(x0, y0, x, y1);
      split(x, y0, x1, y1);
    } else {
      const y = y0 + h * f;
      out.push({ a: [x0, y], b: [x1, y], length: w });
      split(x0, y0, x1, y);
      split(x0, y, x1, y1);
    }
  };
  split(-zone.rx, -zone.ry, zone.rx, zone.ry);
  const centre = toXY(zone.centre);
  const place = (p: XY): XY => {
    const q = rotate(p, zone.angle);
    return [q[0] + centre[0], q[1] + centre[1]];
  };
  const lines: RawLine[] = [];
  for (const seg of out) {
    // Long split lines are the town's axes: cut them into sections of 700–1,300 m, one name each.
    const sections = seg.length > 1300 ? Math.ceil(seg.length / random.range(700, 1300)) : 1;
    for (let i = 0; i < sections; i++) {
      const a: XY = [seg.a[0] + ((seg.b[0] - seg.a[0]) * i) / sections, seg.a[1] + ((seg.b[1] - seg.a[1]) * i) / sections];
      const b: XY = [seg.a[0] + ((seg.b[0] - seg.a[0]) * (i + 1)) / sections, seg.a[1] + ((seg.b[1] - seg.a[1]) * (i + 1)) / sections];
      lines.push({ line: [place(a), place(b)], cls: seg.length > 1300 ? 'AVENUE' : 'STREET' });
    }
  }
  return lines;
}

/**
 * Châlons' radial entrance avenues: from the inner ring of boulevards (they start on it, a
 * T-junction) out to 5.5 km from the centre, with one gentle bend.
 */
function radialLines(random: Rng, innerRing: RawLine[]): RawLine[] {
  const c = toXY(CHALONS_CENTRE);
  return RADIAL_AVENUES.map(({ name, bearing }) => {
    const at = (r: number, deg: number): XY => {
      const a = (deg * Math.PI) / 180;
      return [c[0] + r * Math.sin(a), c[1] + r * Math.cos(a)];
    };
    let start: XY | null = null;
    const far = at(2200, bearing);
    for (const arc of innerRing) {
      for (let i = 1; i < arc.line.length && !start; i++) {
        const hit = segmentCrossing(c, far, arc.line[i - 1], arc.line[i]);
        if (hit) start = [c[0] + (far[0] - c[0]) * hit.t, c[1] + (far[1] - c[1]) * hit.t];
      }
    }
    if (!start) throw new Error(`${name} does not meet the inner boulevards`);
    const bend = bearing + random.range(-9, 9);
    const mid = at(2200, bearing);
    const end: XY = [mid[0] + 3300 * Math.sin((bend * Math.PI) / 180), mid[1] + 3300 * Math.cos((bend * Math.PI) / 180)];
    const line: XY[] = [start, at(1100, bearing), mid, end];
    return { line, cls: 'AVENUE' as const, name };
  });
}

/** Rings of boulevards as consecutive named arcs (vertices every 10°). */
function ringLines(radiusX: number, radiusY: number, names: readonly string[], startDeg: number): RawLine[] {
  const c = toXY(CHALONS_CENTRE);
  const step = 360 / names.length;
  return names.map((name, i) => {
    const line: XY[] = [];
    for (let deg = startDeg + i * step; deg <= startDeg + (i + 1) * step + 1e-9; deg += step / Math.ceil(step / 10)) {
      const a = (deg * Math.PI) / 180;
      line.push([c[0] + radiusX * Math.sin(a), c[1] + radiusY * Math.cos(a)]);
    }
    return { line, cls: 'BOULEVARD' as const, name };
  });
}

/** Unique street names within a commune: "Rue …" mostly, other kinds when names run out. */
class NameAllocator {
  private readonly used = new Set<string>();
  private readonly queues: Map<string, string[]>;
  private avenues: string[];
  constructor(private readonly random: Rng) {
    this.queues = new Map(STREET_KINDS.map((k) => [k.prefix, random.shuffle(STREET_NAMESAKES)]));
    this.avenues = random.shuffle(AVENUE_NAMESAKES);
  }
  reserve(name: string) {
    this.used.add(name);
  }
  avenue(): string {
    while (this.avenues.length) {
      const name = this.avenues.shift()!;
      if (!this.used.has(name)) return this.take(name);
    }
    return this.street();
  }
  street(): string {
    const total = STREET_KINDS.reduce((sum, k) => sum + k.weight, 0);
    let roll = this.random.next() * total;
    let start = 0;
    while (roll >= STREET_KINDS[start].weight) roll -= STREET_KINDS[start++].weight;
    for (let i = 0; i < STREET_KINDS.length; i++) {
      const { prefix } = STREET_KINDS[(start + i) % STREET_KINDS.length];
      const queue = this.queues.get(prefix)!;
      while (queue.length) {
        const namesake = queue.shift()!;
        const name = `${prefix} ${namesake}`;
        if (!this.used.has(name)) return this.take(name);
      }
    }
    throw new Error('street names exhausted: extend names.ts');
  }
  private take(name: string): string {
    this.used.add(name);
    return name;
  }
}

/**
 * The whole network. Streets are numbered per commune in generation order:
 * `st-<insee>-<0001>`.
 */
export function buildStreets(communes: CommuneSeed[]): StreetSeed[] {
  const byCode = new Map(communes.map((c) => [c.code, c]));
  const withStreets = ZONES.map((z) => byCode.get(z.insee)!);
  const random = rng('streets');
  const allocators = new Map(withStreets.map((c) => [c.code, new NameAllocator(rng(`street-names:${c.code}`))]));

  // Lines that belong to no particular town (named already): clipped to every commune with streets.
  const inner = ringLines(700, 640, INNER_BOULEVARDS, 15);
  const shared: RawLine[] = [...inner, ...ringLines(2100, 1900, OUTER_BOULEVARDS, 40), ...radialLines(random, inner)];
  for (const allocator of allocators.values()) for (const line of shared) allocator.reserve(line.name!);

  const pieces = new Map<string, { name: string; cls: StreetClass; line: XY[] }[]>(withStreets.map((c) => [c.code, []]));
  const addPieces = (commune: CommuneSeed, raw: RawLine, name: string) => {
    for (const line of clipToRing(raw.line, commune.ring, 0.5, 20)) pieces.get(commune.code)!.push({ name, cls: raw.cls, line });
  };
  for (const raw of shared) for (const commune of withStreets) addPieces(commune, raw, raw.name!);

  for (const zone of ZONES) {
    const commune = byCode.get(zone.insee)!;
    const ellipse = circleRing(toXY(zone.centre), zone.rx, zone.ry, 72).map((p): XY => {
      const c = toXY(zone.centre);
      const q = rotate([p[0] - c[0], p[1] - c[1]], zone.angle);
      return [q[0] + c[0], q[1] + c[1]];
    });
    const allocator = allocators.get(zone.insee)!;
    for (const raw of zoneLines(zone, rng(`streets:${zone.insee}`))) {
      for (const inEllipse of clipToRing(raw.line, ellipse, 0, 20)) {
        const inCommune = clipToRing(inEllipse, commune.ring, 0.5, 20);
        if (!inCommune.length) continue;
        const name = raw.cls === 'AVENUE' ? allocator.avenue() : allocator.street();
        for (const line of inCommune) pieces.get(zone.insee)!.push({ name, cls: raw.cls, line });
      }
    }
  }

  const streets: StreetSeed[] = [];
  for (const commune of withStreets) {
    pieces.get(commune.code)!.forEach((piece, i) => {
      streets.push({
        id: `st-${commune.code}-${String(i + 1).padStart(4, '0')}`,
        name: piece.name,
        inseeCode: commune.code,
        cls: piece.cls,
        line: piece.line,
        length: polylineLength(piece.line),
        lit: LIT_COMMUNES.includes(commune.code),
      });
    });
  }
  return streets;
}
