/**
 * Writes the GTFS feed of the seeded territory (prisma/seed/gtfs.ts) into
 * subgraphs/mobility/gtfs/chalons-agglo/, or with `--check` only says whether the committed files
 * are current (exit 1 when not). `npm run gtfs:generate [-- --check]`.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSeedPlan } from '../prisma/seed/index.js';
import { buildGtfs } from '../prisma/seed/gtfs.js';

export const FEED_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'subgraphs', 'mobility', 'gtfs', 'chalons-agglo');

/** The files that differ from the generated ones (missing, changed, or not generated at all). */
export function staleFiles(dir = FEED_DIR): string[] {
  const { files } = buildGtfs(buildSeedPlan());
  const present = new Set(readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.txt')).map((e) => e.name));
  const stale: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    if (!present.has(name) || readFileSync(path.join(dir, name), 'utf8') !== text) stale.push(name);
    present.delete(name);
  }
  return [...stale, ...present];
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) {
    const stale = staleFiles();
    if (stale.length) {
      console.error(`gtfs: ${stale.join(', ')} not current: run npm run gtfs:generate`);
      process.exitCode = 1;
    } else console.log('gtfs: the committed feed is current');
  } else {
    const { files, blocksPerService } = buildGtfs(buildSeedPlan());
    mkdirSync(FEED_DIR, { recursive: true });
    for (const entry of readdirSync(FEED_DIR)) if (entry.endsWith('.txt') && !(entry in files)) rmSync(path.join(FEED_DIR, entry));
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(FEED_DIR, name), text);
    const rows = Object.fromEntries(Object.entries(files).map(([n, t]) => [n, t.split('\r\n').length - 2]));
    console.log(`gtfs: wrote ${Object.keys(files).length} files to ${path.relative(process.cwd(), FEED_DIR)}`, rows, 'blocks', blocksPerService);
  }
}
