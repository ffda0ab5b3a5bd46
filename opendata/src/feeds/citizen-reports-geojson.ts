/**
 * Citizens' reports, anonymised by policy: counts per 200 m square of the INSPIRE / INSEE grid
 * (ETRS89-LAEA, EPSG:3035: the grid of INSEE's "données carroyées", ids `CRS3035RES200mN…E…`),
 * from the `opendata_citizen_reports` view the tickets domain publishes (category, stage, ISO
 * week and cell of each report — never its id, point, time, reporter, text, photo or address).
 *
 * The policy (k = OPENDATA_K_ANONYMITY, 5 by default):
 * - only reports of the last 52 *completed* ISO weeks (Europe/Paris): the current week is never
 *   shown, so a report cannot be watched appearing, and the document moves at most with the week
 *   or when already-published reports change stage;
 * - a cell appears only when it holds at least k reports of that window; the others are
 *   suppressed — not listed, not counted in any published number but the bounds below;
 * - inside a published cell, a category, a stage or a week is listed only with at least k
 *   reports; when what is left unlisted would be between 1 and k−1 reports (computable as the
 *   cell's total minus the listed counts), the smallest listed values are withdrawn too until it
 *   is 0 or at least k (complementary suppression). A category rare across the territory is thus
 *   never listed anywhere;
 * - the share of reports suppressed is stated as bounds computed from the number of suppressed
 *   cells (each holds 1 to k−1 reports), never as an exact figure: an exact total would move with
 *   every report added to a suppressed cell and tell that one was;
 * - the version is a hash of what is published, and there is no Last-Modified: neither the ETag
 *   nor a date moves for a change nobody may see.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { baseVariables } from '@connecte/shared/config';
import { LICENCE_OUVERTE } from '../catalog.js';
import type { Feed, FeedVersion } from '../feed.js';
import { checkParameters } from '../parameters.js';

/** Weeks of the publication window, the current (incomplete) week excluded. */
export const WINDOW_WEEKS = 52;
/** Side of a grid cell, metres (EPSG:3035). */
export const CELL_METRES = 200;

/** A published cell, without its geometry (a function of its id). */
export interface PublishedCell {
  cell: string;
  east: number;
  north: number;
  reports: number;
  byCategory: Record<string, number>;
  byStage: Record<string, number>;
  byWeek: Record<string, number>;
}

/** What the document publishes: everything the version hashes. */
export interface Publication {
  k: number;
  period: { from: string; to: string };
  cells: PublishedCell[];
  suppression: {
    reportsPublished: number;
    cellsPublished: number;
    cellsSuppressed: number;
    /** Bounds of the share of the window's reports left out (suppressed cells hold 1 to k−1 each). */
    shareOfReportsSuppressed: { min: number; max: number };
  };
}

interface GroupRow {
  cell: string;
  cell_east: string;
  cell_north: string;
  category: string;
  stage: string;
  iso_week: string;
  n: string;
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

/**
 * The values of one breakdown that may be listed: each at least k, and what is left unlisted
 * (total − listed) either 0 or at least k, so that no difference reveals fewer than k reports.
 */
export function listable(counts: Map<string, number>, total: number, k: number): Record<string, number> {
  const listed = [...counts].filter(([, n]) => n >= k);
  let left = total - listed.reduce((sum, [, n]) => sum + n, 0);
  // Withdraw the smallest first (ties: the last key), until the remainder is safe.
  listed.sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  while (left > 0 && left < k && listed.length > 0) left += listed.pop()![1];
  return Object.fromEntries(listed.sort(([a], [b]) => a.localeCompare(b)));
}

/** Applies the policy to the view's rows of the window: what may be published, nothing else. */
export function applyPolicy(rows: readonly GroupRow[], k: number, period: Publication['period']): Publication {
  const cells = new Map<string, { east: number; north: number; total: number; category: Map<string, number>; stage: Map<string, number>; week: Map<string, number> }>();
  const add = (map: Map<string, number>, key: string, n: number) => map.set(key, (map.get(key) ?? 0) + n);
  for (const row of rows) {
    let cell = cells.get(row.cell);
    if (!cell) {
      cell = { east: Number(row.cell_east), north: Number(row.cell_north), total: 0, category: new Map(), stage: new Map(), week: new Map() };
      cells.set(row.cell, cell);
    }
    const n = Number(row.n);
    cell.total += n;
    add(cell.category, row.category, n);
    add(cell.stage, row.stage, n);
    add(cell.week, row.iso_week, n);
  }
  const published: PublishedCell[] = [];
  let suppressed = 0;
  for (const [id, cell] of [...cells].sort(([a], [b]) => a.localeCompare(b))) {
    if (cell.total < k) {
      suppressed += 1;
      continue;
    }
    published.push({
      cell: id,
      east: cell.east,
      north: cell.north,
      reports: cell.total,
      byCategory: listable(cell.category, cell.total, k),
      byStage: listable(cell.stage, cell.total, k),
      byWeek: listable(cell.week, cell.total, k),
    });
  }
  const reportsPublished = published.reduce((sum, cell) => sum + cell.reports, 0);
  const share = (perCell: number) => (suppressed === 0 ? 0 : round4((suppressed * perCell) / (reportsPublished + suppressed * perCell)));
  return {
    k,
    period,
    cells: published,
    suppression: {
      reportsPublished,
      cellsPublished: published.length,
      cellsSuppressed: suppressed,
      shareOfReportsSuppressed: { min: share(1), max: share(k - 1) },
    },
  };
}

/** The view's rows of the window, grouped: one statement, in the caller's snapshot (`now()` is its start). */
async function publication(db: pg.ClientBase, k: number): Promise<Publication> {
  const { rows } = await db.query<GroupRow & { from_week: string; to_week: string }>(
    `WITH win AS (
        SELECT date_trunc('week', now() AT TIME ZONE 'Europe/Paris')::date AS current_week)
     SELECT r.cell, r.cell_east::text, r.cell_north::text, r.category, r.stage, r.iso_week, count(*)::text AS n,
            to_char(win.current_week - 7 * $1::int, 'IYYY-"W"IW') AS from_week,
            to_char(win.current_week - 7, 'IYYY-"W"IW') AS to_week
     FROM win LEFT JOIN opendata_citizen_reports r
       ON r.week_start >= win.current_week - 7 * $1::int AND r.week_start < win.current_week
     GROUP BY r.cell, r.cell_east, r.cell_north, r.category, r.stage, r.iso_week, win.current_week`,
    [WINDOW_WEEKS],
  );
  const period = { from: rows[0].from_week, to: rows[0].to_week };
  return applyPolicy(rows.filter((row) => row.cell !== null), k, period);
}

/** The RFC 7946 document: one Polygon feature per published cell, the policy's figures as foreign members. */
async function render(db: pg.ClientBase, published: Publication): Promise<string> {
  const { rows } = await db.query<{ east: string; north: string; geometry: string }>(
    `SELECT c.east::text, c.north::text,
            ST_AsGeoJSON(ST_ForcePolygonCCW(ST_Transform(ST_MakeEnvelope(c.east, c.north, c.east + $3, c.north + $3, 3035), 4326)), 6) AS geometry
     FROM unnest($1::bigint[], $2::bigint[]) AS c(east, north)`,
    [published.cells.map((c) => c.east), published.cells.map((c) => c.north), CELL_METRES],
  );
  const geometries = new Map(rows.map((row) => [`${row.east}|${row.north}`, JSON.parse(row.geometry) as unknown]));
  return JSON.stringify({
    type: 'FeatureCollection',
    name: 'citizen-reports',
    k: published.k,
    cellSizeMetres: CELL_METRES,
    grid: 'EPSG:3035',
    period: published.period,
    suppression: published.suppression,
    features: published.cells.map((cell) => ({
      type: 'Feature',
      id: cell.cell,
      geometry: geometries.get(`${cell.east}|${cell.north}`),
      properties: {
        cell: cell.cell,
        reports: cell.reports,
        byCategory: cell.byCategory,
        byStage: cell.byStage,
        byWeek: cell.byWeek,
      },
    })),
  });
}

interface CitizenReportsVersion extends FeedVersion {
  publication: Publication;
}

/** The feed for a given k (tests); `citizenReportsGeojson` below reads OPENDATA_K_ANONYMITY. */
export function citizenReportsFeed(k: number): Feed<Record<string, never>> {
  if (!Number.isInteger(k) || k < 2) throw new Error(`citizen reports: k must be a whole number of at least 2, not ${k}`);
  return {
    id: 'citizen-reports',
    path: '/opendata/geojson/citizen-reports.geojson',
    contentType: 'application/geo+json; charset=utf-8',
    dataset: {
      title: 'Signalements citoyens anonymisés — carreaux de 200 m',
      description:
        `Nombre de signalements des habitants (éclairage, propreté, voirie, mobilier urbain, arrêts de bus, déchets) par carreau de 200 m de la grille INSEE / INSPIRE (EPSG:3035), sur les 52 dernières semaines ISO révolues. ` +
        `Anonymisation : un carreau n'est publié qu'avec au moins ${k} signalements ; dans un carreau, une catégorie, un état ou une semaine n'est détaillé qu'avec au moins ${k} signalements (suppression complémentaire des petits restes) ; ` +
        `aucune position exacte, date précise, identité, coordonnée, description, photo ni adresse. ` +
        `La part des signalements supprimés est donnée dans le document (membre « suppression », bornes min et max).`,
    keywords: ['signalements', 'gestion urbaine de proximité', 'données carroyées', 'anonymisation', 'Châlons-en-Champagne'],
      licence: LICENCE_OUVERTE,
      format: 'GeoJSON',
      frequency: 'weekly',
    },
    parse(params) {
      checkParameters(params, []);
      return {};
    },
    async version(db): Promise<CitizenReportsVersion> {
      const published = await publication(db, k);
      const tag = createHash('sha256').update(JSON.stringify(published)).digest('base64url');
      // No date: the latest report's would tell when the newest one came; nothing else is safe and exact.
      return { tag, lastModified: null, publication: published };
    },
    async render(db, _params, version) {
      const known = (version as Partial<CitizenReportsVersion>).publication;
      return render(db, known ?? (await publication(db, k)));
    },
  };
}

/** k from OPENDATA_K_ANONYMITY (the shared config's rule and default): a bad value stops start-up naming it. */
function configuredK(): number {
  const parsed = baseVariables.shape.OPENDATA_K_ANONYMITY.safeParse(process.env.OPENDATA_K_ANONYMITY);
  if (!parsed.success) throw new Error(`OPENDATA_K_ANONYMITY: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

export const citizenReportsGeojson = citizenReportsFeed(configuredK());
