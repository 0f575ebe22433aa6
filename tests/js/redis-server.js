// A real redis-server for tests and benchmarks: started on a free loopback
// port with no persistence, in a temp dir, stopped by its PID. Debian's
// `redis-server` (scripts/setup.sh installs it when missing).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts redis-server; resolves once it accepts connections. `restart()`
 * stops it and starts an empty one on the same port (its state is lost,
 * as after a crash without persistence).
 */
export async function startRedis({ port } = {}) {
  port ??= await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rollcall-redis-'));
  let child = null;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
      child.stdout.on('data', (d) => {
        out += d;
        if (/Ready to accept connections/.test(out)) resolve();
      });
    });
    child.removeAllListeners('exit');
    child.stdout.resume();
  };
  const stop = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = once(child, 'exit');
    process.kill(child.pid, 'SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child.pid;
    },
    async restart() {
      await stop();
      await start();
    },
    async stop() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
