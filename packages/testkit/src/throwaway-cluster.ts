/**
 * A PostgreSQL cluster of a test's own (docs/devices.md, last section: tests that restart PostgreSQL
 * never touch the machine's server): `initdb` into a temporary directory, trust auth, on
 * 127.0.0.1 and a free port, its unix socket inside that directory, fsync off. The binaries
 * are the system's PostgreSQL 15, so PostGIS (installed for it) is available.
 *
 * initdb and postgres refuse to run as root: as root, the directory is handed to the
 * `postgres` OS user and every command runs through `runuser -u postgres --`.
 */
import { execFile, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { cleanUpOnExit, logTail } from './process-guard.js';

export const PG_BIN = process.env.TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const RUN_AS = 'postgres';

export interface ThrowawayCluster {
  /** `postgresql://postgres@127.0.0.1:<port>/<database>` (default database `postgres`). */
  url(database?: string): string;
  port: number;
  /** Stops the server (`-m fast`: sessions are ended, as in a real restart). */
  stop(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
  /** Stops the server if it runs and removes its directory. Idempotent. */
  destroy(): Promise<void>;
}

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** [file, args] for a PostgreSQL binary, as the postgres user when we are root. */
function command(binary: string, args: string[]): [string, string[]] {
  const file = path.join(PG_BIN, binary);
  return asRoot ? ['runuser', ['-u', RUN_AS, '--', file, ...args]] : [file, args];
}

function run(binary: string, args: string[], timeoutMs = 60_000): Promise<void> {
  const [file, argv] = command(binary, args);
  return new Promise((resolve, reject) => {
    // cwd: a directory the postgres user may enter (it cannot read the test's cwd under /root).
    execFile(file, argv, { cwd: '/', timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${binary} ${args.join(' ')} failed: ${error.message}\n${stdout}${stderr}`.trim()));
      else resolve();
    });
  });
}

export async function startThrowawayCluster(): Promise<ThrowawayCluster> {
  if (!existsSync(path.join(PG_BIN, 'initdb'))) throw new Error(`no initdb in ${PG_BIN} (set TEST_PG_BIN)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'connecte-pg-'));
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  if (asRoot) {
    const { uid, gid } = postgresIds();
    chownSync(dir, uid, gid);
  }

  let running = false;
  let destroyed = false;
  const port = await freePort();

  const pgCtl = (args: string[]) => run('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '30', ...args]);

  /** Synchronous, so that it can run while the process exits. */
  const kill = () => {
    if (!existsSync(path.join(data, 'postmaster.pid'))) return;
    const [file, argv] = command('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    spawnSync(file, argv, { cwd: '/', stdio: 'ignore', timeout: 10_000 });
  };
  const forget = cleanUpOnExit(() => {
    kill();
    rmSync(dir, { recursive: true, force: true });
  });

  const cluster: ThrowawayCluster = {
    port,
    url: (database = 'postgres') => `postgresql://postgres@127.0.0.1:${port}/${database}`,
    async start() {
      if (destroyed) throw new Error('the throwaway cluster was destroyed');
      if (running) return;
      try {
        await pgCtl(['start']);
      } catch (error) {
        throw new Error(`${(error as Error).message}\n--- postgres.log ---\n${logTail(logFile)}`);
      }
      running = true;
    },
    async stop() {
      if (!running) return;
      await pgCtl(['-m', 'fast', 'stop']);
      running = false;
    },
    async restart() {
      await cluster.stop();
      await cluster.start();
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      try {
        await cluster.stop();
      } catch {
        // Stopped anyway, below.
      }
      running = false;
      kill();
      forget();
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    await run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync', '--no-instructions']);
    appendFileSync(
      path.join(data, 'postgresql.conf'),
      [
        '',
        '# throwaway test cluster (@connecte/testkit)',
        `port = ${port}`,
        `listen_addresses = '127.0.0.1'`,
        `unix_socket_directories = '${dir}'`,
        'fsync = off',
        'full_page_writes = off',
        'shared_buffers = 32MB',
        'max_connections = 60',
        'logging_collector = off',
        '',
      ].join('\n'),
    );
    await cluster.start();
  } catch (error) {
    await cluster.destroy().catch(() => {});
    throw error;
  }
  return cluster;
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith(`${RUN_AS}:`));
  if (!line) throw new Error(`running as root, but there is no "${RUN_AS}" OS user to run PostgreSQL as (initdb refuses root)`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
