// `npm start`: moves to Node 24 when the system Node is older, installs what is missing, then
// runs the whole hub (scripts/hub.ts) from source with tsx, on this same Node.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { ensureNodeModules, generatePrismaClient, ROOT } from './ensure-deps.mjs';
import { runOnSupportedNode } from './node-runtime.mjs';

await runOnSupportedNode();
ensureNodeModules();
generatePrismaClient();
const child = spawn(process.execPath, [path.join(ROOT, 'node_modules', '.bin', 'tsx'), path.join(ROOT, 'scripts', 'hub.ts'), ...process.argv.slice(2)], {
  cwd: ROOT,
  stdio: 'inherit',
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
