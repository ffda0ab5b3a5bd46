/**
 * Imports a GTFS feed (a zip, or a folder of .txt files zipped on the fly) through the running
 * hub's `POST /mobility/gtfs`, with an operator's or admin's token:
 *
 *   npm run gtfs:import -- <feed.zip | folder> [--dry-run] [--collectivity chalons-agglo]
 *                          [--url http://127.0.0.1:4000] [--token <jwt>]   (or TOKEN=<jwt>)
 *
 * Default URL: GATEWAY_URL, else the gateway on 127.0.0.1:4000. Prints the answer (the report of
 * every problem on a 422) and exits 1 unless the feed was imported (or, dry, found valid).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeZip } from '@connecte/shared/zip';

const args = process.argv.slice(2);
const option = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const source = args.find((a, i) => !a.startsWith('--') && !['--collectivity', '--url', '--token'].includes(args[i - 1] ?? ''));
if (!source) {
  console.error('usage: npm run gtfs:import -- <feed.zip | folder> [--dry-run] [--collectivity id] [--url base] [--token jwt]');
  process.exit(2);
}
const token = option('--token') ?? process.env.TOKEN;
if (!token) {
  console.error('gtfs:import needs an operator or admin token: --token <jwt> or TOKEN=… (npm run token -- … makes one in development)');
  process.exit(2);
}
const body = statSync(source).isDirectory()
  ? writeZip(Object.fromEntries(readdirSync(source).filter((f) => f.endsWith('.txt')).map((f) => [f, readFileSync(path.join(source, f))])))
  : readFileSync(source);
const base = (option('--url') ?? process.env.GATEWAY_URL ?? 'http://127.0.0.1:4000').replace(/\/+$/, '');
const query = new URLSearchParams();
if (args.includes('--dry-run')) query.set('dryRun', 'true');
const collectivity = option('--collectivity');
if (collectivity) query.set('collectivityId', collectivity);
const res = await fetch(`${base}/mobility/gtfs${query.size ? `?${query}` : ''}`, {
  method: 'POST',
  headers: { 'content-type': 'application/zip', authorization: `Bearer ${token}` },
  body,
});
const text = await res.text();
try {
  console.log(JSON.stringify(JSON.parse(text), null, 2));
} catch {
  console.log(text);
}
if (res.status !== 200 && res.status !== 201) process.exitCode = 1;
