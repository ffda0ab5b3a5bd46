/**
 * `npm run bench`: every benchmark of this folder, one after the other (they share the machine's
 * cores, so never in parallel), each in a process of its own. `npm run bench -- near event` runs
 * those whose file name contains one of the words.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const benches = readdirSync(here)
  .filter((file) => file.endsWith('.ts') && file !== 'run.ts')
  .filter((file) => filters.length === 0 || filters.some((word) => file.includes(word)))
  .sort();
if (benches.length === 0) {
  console.error(`bench: no benchmark matches ${filters.join(', ')} (in ${here})`);
  process.exit(1);
}
let failed = 0;
for (const file of benches) {
  console.log(`\n=== bench/${file}`);
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, file)], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed++;
    console.error(`bench/${file} exited with ${result.status ?? result.signal}`);
  }
}
process.exit(failed === 0 ? 0 : 1);
