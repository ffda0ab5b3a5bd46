/**
 * The static GTFS feed of Châlons Agglo's bus network, generated from the seed plan (pure and
 * deterministic: the same plan always gives the same files, byte for byte).
 *
 * - Stops: the agglomeration's BUS_STOP equipment (decommissioned ones excepted); `stop_id` is
 *   the asset's reference (`BS-AGG-00001`), so the importer maps each stop to its asset.
 * - Lines: the stops nearest Châlons' centre make the hub ("Centre"), and the others are cut by
 *   bearing from it into 12 arms with the same number of stops; two opposite arms make a line
 *   through the hub (6 lines). Within an arm the stops are chained from the hub outwards
 *   (nearest neighbour, then 2-opt), so a line snakes through its sector out to its terminus.
 * - Shapes: routed through the seeded street graph (A* on the streets, split at every crossing
 *   and T-junction; each stop is attached to its nearest street), with straight links where
 *   streets do not connect (the fewest links that join every piece of the graph: between towns,
 *   or a street cut off by a commune border). Direction 1 runs the same streets backwards.
 * - Times: running speed by distance from the centre (congested old town to open roads), dwell
 *   at each stop; first departures 05:30–21:30 on weekdays, 07:00–20:30 on Saturdays, 09:00–19:30
 *   on Sundays and public holidays; every 15–30 minutes by line and day type (as frequent as
 *   the 24 buses allow: the lines are long, so mostly every 30 minutes).
 * - Blocks: each bus shuttles on one line, the layovers sized so that the line's cycle is a whole
 *   number of headways; at most 24 blocks run on any day (the seed has 24 buses on the road).
 * - Calendars: WEEKDAY / SATURDAY / SUNDAY from 2026-01-01 to 2028-12-31; French public holidays
 *   remove the weekday or Saturday service and add the Sunday one (`calendar_dates.txt`).
 */
import { frenchPublicHolidays } from '@connecte/shared/calendar';
// The importer's own geodesic length, so that shape_dist_traveled agrees with what it and the tracker measure.
import { segmentMetres } from '@connecte/subgraph-mobility/gtfs-validate';
import type { CommuneSeed } from './territory.js';
import type { EquipmentPlan } from './equipment.js';
import type { StreetSeed } from './streets.js';
import { CHALONS_CENTRE } from './streets.js';
import { cumulative, dist, sliceLine, toLonLat, toXY, type XY } from './geo.js';

export const GTFS_FEED_VERSION = '2026.12-seed';
export const GTFS_VALID_FROM = '20260101';
export const GTFS_VALID_TO = '20281231';
/** Buses on the road at once, at most (the seed's running buses). */
export const GTFS_MAX_BLOCKS = 24;
export const GTFS_LINES = 6;

export interface GtfsSeedInput {
  communes: CommuneSeed[];
  streets: StreetSeed[];
  equipment: EquipmentPlan;
}

export interface GtfsSeedFeed {
  /** File name (`stops.txt`) → its CSV text (UTF-8, CRLF line ends, header first). */
  files: Record<string, string>;
  /** stop_id → the BUS_STOP asset's id. */
  stopEquipment: Map<string, string>;
  /** Blocks per service (each is one bus all day). */
  blocksPerService: Record<string, number>;
  /** stop_id → the routes serving it, sorted (planned works name the routes of the stops they close). */
  routesOfStop: Map<string, string[]>;
}

// ---------------------------------------------------------------------------------------------
// CSV (RFC 4180)

function csvField(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(header: readonly string[], rows: readonly (readonly (string | number | null | undefined)[])[]): string {
  return [header.join(','), ...rows.map((r) => r.map(csvField).join(','))].join('\r\n') + '\r\n';
}

// ---------------------------------------------------------------------------------------------
// The street graph

interface Edge {
  to: number;
  line: XY[];
  cost: number;
}

class StreetGraph {
  readonly nodes: XY[] = [];
  readonly adj: Edge[][] = [];
  private readonly grid = new Map<string, number[]>();
  private static readonly SNAP = 3;

  node(p: XY): number {
    const cx = Math.floor(p[0] / 10);
    const cy = Math.floor(p[1] / 10);
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (const i of this.grid.get(`${cx + dx},${cy + dy}`) ?? []) if (dist(this.nodes[i], p) <= StreetGraph.SNAP) return i;
      }
    }
    const id = this.nodes.length;
    this.nodes.push(p);
    this.adj.push([]);
    const key = `${cx},${cy}`;
    const cell = this.grid.get(key);
    if (cell) cell.push(id);
    else this.grid.set(key, [id]);
    return id;
  }

  link(a: number, b: number, line: XY[], factor = 1): void {
    if (a === b) return;
    let length = 0;
    for (let i = 1; i < line.length; i++) length += dist(line[i - 1], line[i]);
    this.adj[a].push({ to: b, line, cost: length * factor });
    this.adj[b].push({ to: a, line: line.slice().reverse(), cost: length * factor });
  }

  /** A* from a to b (the heuristic, the straight distance, never exceeds a cost). */
  path(a: number, b: number): XY[] {
    if (a === b) return [this.nodes[a]];
    const n = this.nodes.length;
    const g = new Float64Array(n).fill(Infinity);
    const from = new Int32Array(n).fill(-1);
    const via: (Edge | null)[] = new Array(n).fill(null);
    const target = this.nodes[b];
    const heap: [number, number][] = [];
    const push = (f: number, v: number) => {
      heap.push([f, v]);
      let i = heap.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heap[p][0] <= heap[i][0]) break;
        [heap[p], heap[i]] = [heap[i], heap[p]];
        i = p;
      }
    };
    const pop = (): [number, number] => {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length) {
        heap[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          const r = l + 1;
          let m = i;
          if (l < heap.length && heap[l][0] < heap[m][0]) m = l;
          if (r < heap.length && heap[r][0] < heap[m][0]) m = r;
          if (m === i) break;
          [heap[m], heap[i]] = [heap[i], heap[m]];
          i = m;
        }
      }
      return top;
    };
    g[a] = 0;
    push(dist(this.nodes[a], target), a);
    while (heap.length) {
      const [, v] = pop();
      if (v === b) break;
      for (const e of this.adj[v]) {
        const cand = g[v] + e.cost;
        if (cand < g[e.to] - 1e-9) {
          g[e.to] = cand;
          from[e.to] = v;
          via[e.to] = e;
          push(cand + dist(this.nodes[e.to], target), e.to);
        }
      }
    }
    if (from[b] === -1) throw new Error('gtfs: the street graph is not connected');
    const pieces: XY[][] = [];
    for (let v = b; v !== a; v = from[v]) pieces.push(via[v]!.line);
    const out: XY[] = [this.nodes[a]];
    for (const piece of pieces.reverse()) for (let i = 1; i < piece.length; i++) out.push(piece[i]);
    return out;
  }
}

interface StreetCut {
  s: number;
  p: XY;
}

/** Streets split at every crossing and T-junction, the stops' foot points as nodes; returns each stop's node. */
function buildGraph(streets: StreetSeed[], stops: XY[]): { graph: StreetGraph; stopNodes: number[] } {
  const cums = streets.map((s) => cumulative(s.line));
  const cuts: StreetCut[][] = streets.map((s) => [
    { s: 0, p: s.line[0] },
    { s: s.length, p: s.line[s.line.length - 1] },
  ]);
  interface Seg { street: number; i: number; a: XY; b: XY }
  const segs: Seg[] = [];
  streets.forEach((st, k) => {
    for (let i = 1; i < st.line.length; i++) segs.push({ street: k, i, a: st.line[i - 1], b: st.line[i] });
  });
  const CELL = 250;
  const cells = new Map<string, number[]>();
  segs.forEach((seg, idx) => {
    for (let cx = Math.floor((Math.min(seg.a[0], seg.b[0]) - 5) / CELL); cx <= Math.floor((Math.max(seg.a[0], seg.b[0]) + 5) / CELL); cx++) {
      for (let cy = Math.floor((Math.min(seg.a[1], seg.b[1]) - 5) / CELL); cy <= Math.floor((Math.max(seg.a[1], seg.b[1]) + 5) / CELL); cy++) {
        const key = `${cx},${cy}`;
        const cell = cells.get(key);
        if (cell) cell.push(idx);
        else cells.set(key, [idx]);
      }
    }
  });
  const sAt = (seg: Seg, t: number) => cums[seg.street][seg.i - 1] + t * dist(seg.a, seg.b);
  const foot = (p: XY, seg: Seg): { t: number; d: number } => {
    const dx = seg.b[0] - seg.a[0];
    const dy = seg.b[1] - seg.a[1];
    const len2 = dx * dx + dy * dy;
    const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((p[0] - seg.a[0]) * dx + (p[1] - seg.a[1]) * dy) / len2));
    return { t, d: Math.hypot(p[0] - (seg.a[0] + t * dx), p[1] - (seg.a[1] + t * dy)) };
  };
  const near = (p: XY): number[] => cells.get(`${Math.floor(p[0] / CELL)},${Math.floor(p[1] / CELL)}`) ?? [];
  const seen = new Set<string>();
  for (const list of cells.values()) {
    for (let x = 0; x < list.length; x++) {
      for (let y = x + 1; y < list.length; y++) {
        const s1 = segs[list[x]];
        const s2 = segs[list[y]];
        if (s1.street === s2.street) continue;
        const key = list[x] < list[y] ? `${list[x]}:${list[y]}` : `${list[y]}:${list[x]}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const rx = s1.b[0] - s1.a[0];
        const ry = s1.b[1] - s1.a[1];
        const sx = s2.b[0] - s2.a[0];
        const sy = s2.b[1] - s2.a[1];
        const denom = rx * sy - ry * sx;
        if (denom === 0) continue;
        const qx = s2.a[0] - s1.a[0];
        const qy = s2.a[1] - s1.a[1];
        const t = (qx * sy - qy * sx) / denom;
        const u = (qx * ry - qy * rx) / denom;
        if (t < 0 || t > 1 || u < 0 || u > 1) continue;
        const p: XY = [s1.a[0] + t * rx, s1.a[1] + t * ry];
        cuts[s1.street].push({ s: sAt(s1, t), p });
        cuts[s2.street].push({ s: sAt(s2, u), p });
      }
    }
  }
  // T-junctions and pieces of one street cut at a commune border: an end within a few metres of another street.
  streets.forEach((st, k) => {
    for (const end of [st.line[0], st.line[st.line.length - 1]]) {
      for (const idx of near(end)) {
        const seg = segs[idx];
        if (seg.street === k) continue;
        const { t, d } = foot(end, seg);
        if (d <= 3) cuts[seg.street].push({ s: sAt(seg, t), p: end });
      }
    }
  });
  // Stops: the foot on the nearest street.
  const stopCuts = stops.map((p) => {
    let best: { seg: Seg; t: number; d: number } | null = null;
    // (150 stops: a plain scan over the segments is fast enough and never misses.)
    for (const seg of segs) {
      const f = foot(p, seg);
      if (!best || f.d < best.d) best = { seg, ...f };
    }
    const cut = { s: sAt(best!.seg, best!.t), p: [best!.seg.a[0] + best!.t * (best!.seg.b[0] - best!.seg.a[0]), best!.seg.a[1] + best!.t * (best!.seg.b[1] - best!.seg.a[1])] as XY };
    cuts[best!.seg.street].push(cut);
    return cut;
  });

  const graph = new StreetGraph();
  streets.forEach((st, k) => {
    const list = cuts[k].sort((x, y) => x.s - y.s);
    let prev = list[0];
    let prevNode = graph.node(prev.p);
    for (let i = 1; i < list.length; i++) {
      const c = list[i];
      if (c.s - prev.s < 0.5) continue;
      const node = graph.node(c.p);
      graph.link(prevNode, node, [graph.nodes[prevNode], ...sliceLine(st.line, cums[k], prev.s, c.s).slice(1, -1), graph.nodes[node]]);
      prev = c;
      prevNode = node;
    }
  });
  const stopNodes = stopCuts.map((c) => graph.node(c.p));

  // Join the pieces: Kruskal over the closest pair of nodes of each two components.
  const parent = graph.nodes.map((_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i])));
  graph.adj.forEach((edges, v) => edges.forEach((e) => (parent[find(v)] = find(e.to))));
  const byComp = new Map<number, number[]>();
  graph.nodes.forEach((_, i) => {
    const c = find(i);
    const list = byComp.get(c);
    if (list) list.push(i);
    else byComp.set(c, [i]);
  });
  const comps = [...byComp.values()];
  const pairs: { d: number; a: number; b: number; ca: number; cb: number }[] = [];
  for (let x = 0; x < comps.length; x++) {
    for (let y = x + 1; y < comps.length; y++) {
      let best = { d: Infinity, a: -1, b: -1 };
      for (const a of comps[x]) for (const b of comps[y]) {
        const d = dist(graph.nodes[a], graph.nodes[b]);
        if (d < best.d) best = { d, a, b };
      }
      pairs.push({ ...best, ca: x, cb: y });
    }
  }
  pairs.sort((p, q) => p.d - q.d || p.a - q.a || p.b - q.b);
  const cp = comps.map((_, i) => i);
  const cfind = (i: number): number => (cp[i] === i ? i : (cp[i] = cfind(cp[i])));
  for (const p of pairs) {
    // Every two pieces closer than 1.5 km get their link (direct routes between neighbouring
    // towns), and farther ones only when needed to join the graph.
    if (p.d > 1500 && cfind(p.ca) === cfind(p.cb)) continue;
    cp[cfind(p.ca)] = cfind(p.cb);
    graph.link(p.a, p.b, [graph.nodes[p.a], graph.nodes[p.b]], 1.25);
  }
  return { graph, stopNodes };
}

// ---------------------------------------------------------------------------------------------
// Lines

interface SeedStop {
  stopId: string;
  equipmentId: string;
  name: string;
  code: string;
  xy: XY;
  lonLat: [number, number];
  inseeCode: string;
  wheelchair: number;
  node: number;
}

const bearingOf = (c: XY, p: XY) => ((Math.atan2(p[0] - c[0], p[1] - c[1]) * 180) / Math.PI + 360) % 360;

/** An open path from `start` through every point (nearest neighbour, improved by 2-opt). */
function chain(start: XY, points: SeedStop[]): SeedStop[] {
  const left = points.slice();
  const out: SeedStop[] = [];
  let at = start;
  while (left.length) {
    let best = 0;
    for (let i = 1; i < left.length; i++) if (dist(at, left[i].xy) < dist(at, left[best].xy)) best = i;
    const [next] = left.splice(best, 1);
    out.push(next);
    at = next.xy;
  }
  const pos = (i: number) => (i < 0 ? start : out[i].xy);
  for (let improved = true, rounds = 0; improved && rounds < 50; rounds++) {
    improved = false;
    for (let i = 0; i < out.length - 1; i++) {
      for (let j = i + 1; j < out.length; j++) {
        const before = dist(pos(i - 1), pos(i)) + (j + 1 < out.length ? dist(pos(j), pos(j + 1)) : 0);
        const after = dist(pos(i - 1), pos(j)) + (j + 1 < out.length ? dist(pos(i), pos(j + 1)) : 0);
        if (after < before - 1e-6) {
          out.splice(i, j - i + 1, ...out.slice(i, j + 1).reverse());
          improved = true;
        }
      }
    }
  }
  return out;
}

const COLOURS = ['E2001A', '0069B4', '009A44', 'F39200', '7D2483', '00A3C7'];

/** Running speed (m/s) at a distance from the centre: 18 km/h in the old town to 45 km/h between villages. */
const speedAt = (r: number) => (r < 900 ? 5 : r < 2000 ? 6.4 : r < 3200 ? 8.3 : 12.5);

interface LinePlan {
  routeId: string;
  shortName: string;
  longName: string;
  colour: string;
  stops: SeedStop[];
  hub: SeedStop;
  /** Direction 0's shape (planar) and each stop's index in it. */
  shape: XY[];
  stopVertex: number[];
}

function planLines(stops: SeedStop[], graph: StreetGraph, townOf: Map<string, string>): LinePlan[] {
  const centre = toXY(CHALONS_CENTRE);
  const byDistance = stops.slice().sort((a, b) => dist(a.xy, centre) - dist(b.xy, centre) || (a.stopId < b.stopId ? -1 : 1));
  const hub = byDistance[0];
  const others = byDistance.slice(1).sort((a, b) => bearingOf(centre, a.xy) - bearingOf(centre, b.xy) || (a.stopId < b.stopId ? -1 : 1));
  // Rotate so that the first arm starts at the widest angular gap (no arm straddles a dense sector cut arbitrarily).
  let gapAt = 0;
  let gap = -1;
  for (let i = 0; i < others.length; i++) {
    const a = bearingOf(centre, others[i].xy);
    const b = bearingOf(centre, others[(i + 1) % others.length].xy) + (i + 1 === others.length ? 360 : 0);
    if (b - a > gap) {
      gap = b - a;
      gapAt = (i + 1) % others.length;
    }
  }
  const ring = [...others.slice(gapAt), ...others.slice(0, gapAt)];
  const arms: SeedStop[][] = [];
  const ARMS = GTFS_LINES * 2;
  for (let k = 0; k < ARMS; k++) {
    const from = Math.round((k * ring.length) / ARMS);
    const to = Math.round(((k + 1) * ring.length) / ARMS);
    arms.push(chain(hub.xy, ring.slice(from, to)));
  }
  const terminusName = (s: SeedStop) => {
    const town = townOf.get(s.inseeCode)!;
    return s.inseeCode === '51108' ? s.name : `${town} ${s.name}`;
  };
  const lines: LinePlan[] = [];
  for (let k = 0; k < GTFS_LINES; k++) {
    const sequence = [...arms[k].slice().reverse(), hub, ...arms[k + GTFS_LINES]];
    const shape: XY[] = [graph.nodes[sequence[0].node]];
    const stopVertex = [0];
    for (let i = 1; i < sequence.length; i++) {
      let leg = graph.path(sequence[i - 1].node, sequence[i].node);
      // A detour the streets impose (a dead end, a missing crossing): a straight link instead.
      const straight = dist(graph.nodes[sequence[i - 1].node], graph.nodes[sequence[i].node]);
      let length = 0;
      for (let j = 1; j < leg.length; j++) length += dist(leg[j - 1], leg[j]);
      if (length > 1.6 * straight + 300) leg = [graph.nodes[sequence[i - 1].node], graph.nodes[sequence[i].node]];
      for (let j = 1; j < leg.length; j++) shape.push(leg[j]);
      stopVertex.push(shape.length - 1);
    }
    const first = sequence[0];
    const last = sequence[sequence.length - 1];
    lines.push({
      routeId: `L${k + 1}`,
      shortName: String(k + 1),
      longName: `${terminusName(first)} – ${terminusName(last)}`,
      colour: COLOURS[k],
      stops: sequence,
      hub,
      shape,
      stopVertex,
    });
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Calendar

/** French public holidays of a year (YYYYMMDD). */
export function publicHolidays(year: number): string[] {
  return frenchPublicHolidays(year).map((date) => date.replace(/-/g, ''));
}

// ---------------------------------------------------------------------------------------------
// Timetable

interface ServicePlan {
  serviceId: string;
  code: string;
  first: number;
  last: number;
  /** Headway in minutes per line. */
  headways: number[];
}

const hms = (t: number) => {
  const s = Math.round(t);
  return `${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};

export function buildGtfs(input: GtfsSeedInput): GtfsSeedFeed {
  const townOf = new Map(input.communes.map((c) => [c.code, c.name]));
  const rows = input.equipment.rows.filter((r) => r.kind === 'BUS_STOP' && r.status !== 'DECOMMISSIONED' && r.location);
  const xys = rows.map((r) => toXY(r.location!));
  const { graph, stopNodes } = buildGraph(input.streets, xys);
  const stops: SeedStop[] = rows.map((r, i) => ({
    stopId: r.reference,
    equipmentId: r.id,
    name: r.name ?? r.reference,
    code: r.reference.slice(-3),
    xy: xys[i],
    lonLat: r.location!,
    inseeCode: r.inseeCode!,
    wheelchair: r.details.shelter ? 1 : 2,
    node: stopNodes[i],
  }));
  const lines = planLines(stops, graph, townOf);
  const centre = toXY(CHALONS_CENTRE);
  const round6 = (v: number) => Math.round(v * 1e6) / 1e6;

  // Shapes (lon/lat rounded to 1e-6°, distances measured on the rounded points) and run times.
  interface Direction { shapeId: string; points: [number, number][]; cum: number[]; stops: SeedStop[]; stopDist: number[]; offsets: { arr: number; dep: number }[]; headsign: string }
  const dirs: Direction[][] = lines.map((line) => {
    const make = (d: 0 | 1): Direction => {
      const n = line.shape.length;
      const planar = d === 0 ? line.shape : line.shape.slice().reverse();
      const vertex = d === 0 ? line.stopVertex : line.stopVertex.map((v) => n - 1 - v).reverse();
      const seq = d === 0 ? line.stops : line.stops.slice().reverse();
      const points: [number, number][] = [];
      const keep: number[] = [];
      planar.forEach((p, i) => {
        const q = toLonLat(p);
        const ll: [number, number] = [round6(q[0]), round6(q[1])];
        const prev = points[points.length - 1];
        if (prev && prev[0] === ll[0] && prev[1] === ll[1]) {
          keep.push(points.length - 1);
          return;
        }
        points.push(ll);
        keep.push(points.length - 1);
      });
      const cum = [0];
      for (let i = 1; i < points.length; i++) cum.push(Math.round((cum[i - 1] + segmentMetres(points[i - 1], points[i])) * 10) / 10);
      const stopDist = vertex.map((v) => cum[keep[v]]);
      const offsets: { arr: number; dep: number }[] = [];
      let t = 0;
      seq.forEach((s, i) => {
        if (i > 0) {
          // Run time of the leg: its length at the speed of each of its segments' distance from the centre.
          let run = 0;
          for (let j = keep[vertex[i - 1]] + 1; j <= keep[vertex[i]]; j++) {
            const r = dist(toXY(points[j]), centre);
            run += (cum[j] - cum[j - 1]) / speedAt(r);
          }
          t += run + 8; // braking and pulling out
        }
        // A minute at the hub (connections), 15 s elsewhere; none at the termini (the layover is there).
        const dwell = i === 0 || i === seq.length - 1 ? 0 : s === line.hub ? 60 : 15;
        const arr = Math.round(t);
        t += dwell;
        offsets.push({ arr, dep: Math.round(t) });
      });
      const last = seq[seq.length - 1];
      return {
        shapeId: `${line.routeId}-${d}`,
        points,
        cum,
        stops: seq,
        stopDist,
        offsets,
        headsign: last.inseeCode === '51108' ? last.name : `${townOf.get(last.inseeCode)} ${last.name}`,
      };
    };
    return [make(0), make(1)];
  });

  // Headways: weekdays as frequent as 24 buses allow (15, 20 or 30 min per line, longest lines least frequent).
  const cycleOf = (k: number) => dirs[k][0].offsets.at(-1)!.arr + dirs[k][1].offsets.at(-1)!.arr + 2 * 300;
  const busesFor = (k: number, h: number) => Math.ceil(cycleOf(k) / (h * 60));
  const weekday = lines.map(() => 30);
  for (const h of [20, 15]) {
    const order = lines.map((_, k) => k).sort((a, b) => cycleOf(a) - cycleOf(b) || a - b);
    for (const k of order) {
      const trial = weekday.slice();
      trial[k] = h;
      if (trial.reduce((s, hh, i) => s + busesFor(i, hh), 0) <= GTFS_MAX_BLOCKS) weekday[k] = h;
    }
  }
  const services: ServicePlan[] = [
    { serviceId: 'WEEKDAY', code: 'WK', first: 5 * 3600 + 1800, last: 21 * 3600 + 1800, headways: weekday },
    { serviceId: 'SATURDAY', code: 'SA', first: 7 * 3600, last: 20 * 3600 + 1800, headways: lines.map(() => 30) },
    { serviceId: 'SUNDAY', code: 'SU', first: 9 * 3600, last: 19 * 3600 + 1800, headways: lines.map(() => 30) },
  ];

  const tripRows: (string | number)[][] = [];
  const stopTimeRows: (string | number)[][] = [];
  const blocksPerService: Record<string, number> = {};
  for (const svc of services) {
    let blocks = 0;
    lines.forEach((line, k) => {
      const h = svc.headways[k] * 60;
      const [d0, d1] = dirs[k];
      const run0 = d0.offsets.at(-1)!.arr;
      const run1 = d1.offsets.at(-1)!.arr;
      const n = Math.ceil((run0 + run1 + 600) / h);
      // The layovers fill the cycle up to n headways (half at each terminus).
      const lay = (n * h - run0 - run1) / 2;
      for (let b = 0; b < n; b++) {
        const blockId = `${svc.code}-${line.routeId}-${String(b + 1).padStart(2, '0')}`;
        let t = svc.first + b * h;
        let d: 0 | 1 = 0;
        let seq = 1;
        while (t <= svc.last) {
          const dir = d === 0 ? d0 : d1;
          const tripId = `${svc.code}-${line.routeId}-${d}-${hms(t).slice(0, 5).replace(':', '')}`;
          tripRows.push([line.routeId, svc.serviceId, tripId, dir.headsign, d, blockId, dir.shapeId]);
          dir.stops.forEach((s, i) => {
            stopTimeRows.push([tripId, hms(t + dir.offsets[i].arr), hms(t + dir.offsets[i].dep), s.stopId, i + 1, dir.stopDist[i].toFixed(1), 1]);
          });
          t += dir.offsets.at(-1)!.arr + lay;
          d = d === 0 ? 1 : 0;
          seq++;
        }
        blocks++;
      }
    });
    blocksPerService[svc.serviceId] = blocks;
    if (blocks > GTFS_MAX_BLOCKS) throw new Error(`gtfs: ${blocks} blocks on ${svc.serviceId}, at most ${GTFS_MAX_BLOCKS}`);
  }

  const shapeRows: (string | number)[][] = [];
  for (const pair of dirs) for (const dir of pair) dir.points.forEach((p, i) => shapeRows.push([dir.shapeId, p[1].toFixed(6), p[0].toFixed(6), i + 1, dir.cum[i].toFixed(1)]));

  const servedIds = new Set(lines.flatMap((l) => l.stops.map((s) => s.stopId)));
  const files: Record<string, string> = {
    'agency.txt': toCsv(['agency_id', 'agency_name', 'agency_url', 'agency_timezone', 'agency_lang', 'agency_phone'], [
      ['SITAC', 'SITAC – Châlons Agglo', 'https://www.chalons-agglo.fr/', 'Europe/Paris', 'fr', '+33 3 26 69 59 00'],
    ]),
    'routes.txt': toCsv(
      ['route_id', 'agency_id', 'route_short_name', 'route_long_name', 'route_desc', 'route_type', 'route_color', 'route_text_color', 'route_sort_order'],
      lines.map((l, k) => [l.routeId, 'SITAC', l.shortName, l.longName, `Ligne ${l.shortName} par Centre`, 3, l.colour, 'FFFFFF', k + 1]),
    ),
    'stops.txt': toCsv(
      ['stop_id', 'stop_code', 'stop_name', 'stop_desc', 'stop_lat', 'stop_lon', 'location_type', 'wheelchair_boarding'],
      stops
        .slice()
        .sort((a, b) => (a.stopId < b.stopId ? -1 : 1))
        .filter((s) => servedIds.has(s.stopId))
        .map((s) => [s.stopId, s.code, s.name, townOf.get(s.inseeCode) ?? '', s.lonLat[1].toFixed(7), s.lonLat[0].toFixed(7), 0, s.wheelchair]),
    ),
    'calendar.txt': toCsv(
      ['service_id', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday', 'start_date', 'end_date'],
      [
        ['WEEKDAY', 1, 1, 1, 1, 1, 0, 0, GTFS_VALID_FROM, GTFS_VALID_TO],
        ['SATURDAY', 0, 0, 0, 0, 0, 1, 0, GTFS_VALID_FROM, GTFS_VALID_TO],
        ['SUNDAY', 0, 0, 0, 0, 0, 0, 1, GTFS_VALID_FROM, GTFS_VALID_TO],
      ],
    ),
    'calendar_dates.txt': toCsv(
      ['service_id', 'date', 'exception_type'],
      [2026, 2027, 2028].flatMap((y) =>
        publicHolidays(y).flatMap((date) => {
          const day = new Date(Date.UTC(Number(date.slice(0, 4)), Number(date.slice(4, 6)) - 1, Number(date.slice(6)))).getUTCDay();
          if (day === 0) return [];
          return [
            [day === 6 ? 'SATURDAY' : 'WEEKDAY', date, 2],
            ['SUNDAY', date, 1],
          ];
        }),
      ),
    ),
    'shapes.txt': toCsv(['shape_id', 'shape_pt_lat', 'shape_pt_lon', 'shape_pt_sequence', 'shape_dist_traveled'], shapeRows),
    'trips.txt': toCsv(['route_id', 'service_id', 'trip_id', 'trip_headsign', 'direction_id', 'block_id', 'shape_id'], tripRows),
    'stop_times.txt': toCsv(['trip_id', 'arrival_time', 'departure_time', 'stop_id', 'stop_sequence', 'shape_dist_traveled', 'timepoint'], stopTimeRows),
    'feed_info.txt': toCsv(['feed_publisher_name', 'feed_publisher_url', 'feed_lang', 'feed_start_date', 'feed_end_date', 'feed_version', 'feed_contact_email'], [
      ['Châlons Agglo', 'https://www.chalons-agglo.fr/', 'fr', GTFS_VALID_FROM, GTFS_VALID_TO, GTFS_FEED_VERSION, 'mobilite@chalons-agglo.fr'],
    ]),
  };
  const stopEquipment = new Map(stops.filter((s) => servedIds.has(s.stopId)).map((s) => [s.stopId, s.equipmentId]));
  const routesOfStop = new Map<string, string[]>();
  for (const line of lines) for (const stop of line.stops) routesOfStop.set(stop.stopId, [...new Set([...(routesOfStop.get(stop.stopId) ?? []), line.routeId])].sort());
  return { files, stopEquipment, blocksPerService, routesOfStop };
}
