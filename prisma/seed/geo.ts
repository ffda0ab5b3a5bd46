/**
 * Planar geometry for the seed. All placement work happens in a local metric plane centred on
 * Châlons (an equirectangular projection scaled with the WGS84 radii of curvature at the
 * origin): over the ~25 km of the territory its distances agree with geodesic ones to ~0.1 %,
 * which is what "a light point every 25–40 m" needs. Stored geometry is converted back to
 * EPSG:4326 lon/lat.
 */

export type XY = [number, number];
export type LonLat = [number, number];

export const ORIGIN: LonLat = [4.365, 48.957];

const A = 6378137;
const F = 1 / 298.257223563;
const E2 = F * (2 - F);
const PHI0 = (ORIGIN[1] * Math.PI) / 180;
const SIN0 = Math.sin(PHI0);
/** Metres per degree of latitude (meridional radius) and of longitude (prime vertical) at the origin. */
const M_PER_DEG_LAT = ((A * (1 - E2)) / Math.pow(1 - E2 * SIN0 * SIN0, 1.5)) * (Math.PI / 180);
const M_PER_DEG_LON = (A / Math.sqrt(1 - E2 * SIN0 * SIN0)) * Math.cos(PHI0) * (Math.PI / 180);

export function toXY([lon, lat]: LonLat): XY {
  return [(lon - ORIGIN[0]) * M_PER_DEG_LON, (lat - ORIGIN[1]) * M_PER_DEG_LAT];
}

export function toLonLat([x, y]: XY): LonLat {
  return [ORIGIN[0] + x / M_PER_DEG_LON, ORIGIN[1] + y / M_PER_DEG_LAT];
}

/** Stored positions of equipment are rounded to 1e-7° (about 1 cm): stable, compact output. */
export function roundLonLat([lon, lat]: LonLat): LonLat {
  return [Math.round(lon * 1e7) / 1e7, Math.round(lat * 1e7) / 1e7];
}

export const dist = (a: XY, b: XY) => Math.hypot(b[0] - a[0], b[1] - a[1]);
export const lerp = (a: XY, b: XY, t: number): XY => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];

/** Ray casting; `ring` is open (first vertex not repeated). */
export function pointInRing(p: XY, ring: XY[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > p[1] !== yj > p[1] && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export function distToSegment(p: XY, a: XY, b: XY): number {
  const dx = b[0] - a[0];
  const dy = b[1] - a[1];
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2));
  return Math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy));
}

export function distToRing(p: XY, ring: XY[]): number {
  let best = Infinity;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) best = Math.min(best, distToSegment(p, ring[j], ring[i]));
  return best;
}

/** Inside the ring and at least `margin` metres from its boundary. */
export function insideWithMargin(p: XY, ring: XY[], margin: number): boolean {
  return pointInRing(p, ring) && distToRing(p, ring) >= margin;
}

/** Parameter t on segment ab where it properly crosses segment cd, or null. */
export function segmentCrossing(a: XY, b: XY, c: XY, d: XY): { t: number; u: number } | null {
  const rx = b[0] - a[0];
  const ry = b[1] - a[1];
  const sx = d[0] - c[0];
  const sy = d[1] - c[1];
  const denom = rx * sy - ry * sx;
  if (denom === 0) return null;
  const qx = c[0] - a[0];
  const qy = c[1] - a[1];
  const t = (qx * sy - qy * sx) / denom;
  const u = (qx * ry - qy * rx) / denom;
  if (t < 0 || t > 1 || u < 0 || u > 1) return null;
  return { t, u };
}

export function polylineLength(line: XY[]): number {
  let total = 0;
  for (let i = 1; i < line.length; i++) total += dist(line[i - 1], line[i]);
  return total;
}

/** Cumulative distance at each vertex. */
export function cumulative(line: XY[]): number[] {
  const out = [0];
  for (let i = 1; i < line.length; i++) out.push(out[i - 1] + dist(line[i - 1], line[i]));
  return out;
}

/** The point at distance `s` along the line, with the unit tangent of its segment. */
export function pointAlong(line: XY[], cum: number[], s: number): { p: XY; tangent: XY } {
  let i = 1;
  while (i < line.length - 1 && cum[i] < s) i++;
  const a = line[i - 1];
  const b = line[i];
  const seg = cum[i] - cum[i - 1];
  const t = seg === 0 ? 0 : Math.max(0, Math.min(1, (s - cum[i - 1]) / seg));
  return { p: lerp(a, b, t), tangent: [(b[0] - a[0]) / (seg || 1), (b[1] - a[1]) / (seg || 1)] };
}

/** The sub-line between distances s0 < s1. */
export function sliceLine(line: XY[], cum: number[], s0: number, s1: number): XY[] {
  const out: XY[] = [pointAlong(line, cum, s0).p];
  for (let i = 1; i < line.length - 1; i++) if (cum[i] > s0 && cum[i] < s1) out.push(line[i]);
  out.push(pointAlong(line, cum, s1).p);
  return out;
}

/** Offset a point perpendicular to a tangent: positive = left of the direction of travel. */
export function offsetPoint(p: XY, tangent: XY, offset: number): XY {
  return [p[0] - tangent[1] * offset, p[1] + tangent[0] * offset];
}

/**
 * The parts of a polyline inside a simple polygon (an open ring). Each part is cut where the
 * line crosses the boundary, then pulled back along itself until its ends stand at least
 * `margin` metres inside (so the stored line is inside by construction, not by rounding luck).
 * Parts shorter than `minLength` are dropped.
 */
export function clipToRing(line: XY[], ring: XY[], margin: number, minLength: number): XY[][] {
  // Break every segment at its boundary crossings.
  const pts: { p: XY; onBoundary: boolean }[] = [{ p: line[0], onBoundary: false }];
  for (let i = 1; i < line.length; i++) {
    const a = line[i - 1];
    const b = line[i];
    const ts: number[] = [];
    for (let k = 0, j = ring.length - 1; k < ring.length; j = k++) {
      const hit = segmentCrossing(a, b, ring[j], ring[k]);
      if (hit && hit.t > 0 && hit.t < 1) ts.push(hit.t);
    }
    ts.sort((x, y) => x - y);
    for (const t of ts) pts.push({ p: lerp(a, b, t), onBoundary: true });
    pts.push({ p: b, onBoundary: false });
  }
  const parts: { line: XY[]; startCut: boolean; endCut: boolean }[] = [];
  let current: XY[] | null = null;
  let startCut = false;
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1];
    const b = pts[i];
    if (dist(a.p, b.p) === 0) continue;
    const inside = pointInRing(lerp(a.p, b.p, 0.5), ring);
    if (inside) {
      if (!current) {
        current = [a.p];
        startCut = a.onBoundary;
      }
      current.push(b.p);
      if (b.onBoundary) {
        parts.push({ line: current, startCut, endCut: true });
        current = null;
      }
    } else if (current) {
      parts.push({ line: current, startCut, endCut: true });
      current = null;
    }
  }
  if (current) parts.push({ line: current, startCut, endCut: false });

  const out: XY[][] = [];
  for (const part of parts) {
    const cum = cumulative(part.line);
    const total = cum[cum.length - 1];
    const pull = (atStart: boolean): number | null => {
      const needed = atStart ? part.startCut || !insideWithMargin(part.line[0], ring, margin) : part.endCut || !insideWithMargin(part.line[part.line.length - 1], ring, margin);
      if (!needed) return 0;
      for (let d = 1; d <= 64; d *= 2) {
        const { p } = pointAlong(part.line, cum, atStart ? d : total - d);
        if (insideWithMargin(p, ring, margin)) return d;
      }
      return null;
    };
    const s0 = pull(true);
    const s1 = pull(false);
    if (s0 === null || s1 === null) continue;
    if (total - s0 - s1 < minLength) continue;
    out.push(s0 === 0 && s1 === 0 ? part.line : sliceLine(part.line, cum, s0, total - s1));
  }
  return out;
}

/** A circle (or ellipse) as an open ring of `n` vertices. */
export function circleRing(centre: XY, rx: number, ry = rx, n = 64): XY[] {
  const ring: XY[] = [];
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * i) / n;
    ring.push([centre[0] + rx * Math.cos(a), centre[1] + ry * Math.sin(a)]);
  }
  return ring;
}

/** WKT of a LineString in lon/lat, full double precision (no rounding: see clipToRing). */
export function lineWkt(line: XY[]): string {
  return `LINESTRING(${line.map((p) => toLonLat(p).join(' ')).join(',')})`;
}
