// The child processes of the Node bench harnesses (bench/run.js,
// bench/flood.js): each child is forked with die-with-parent preloaded and
// killed when the orchestrator ends, however it ends; plus the /proc and
// port helpers they share.
import { fork } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

const children = new Set();
export function killAll() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {}
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}
process.on('uncaughtException', (err) => {
  console.error(err);
  killAll();
  process.exit(1);
});
process.on('unhandledRejection', (err) => {
  console.error(err);
  killAll();
  process.exit(1);
});

const preload = path.join(here, 'die-with-parent.js');
/** Forks `script` as a bench child (killed with the orchestrator). */
export function start(script, argv, env) {
  const child = fork(script, argv, {
    env: { ...process.env, ...env },
    execArgv: ['--import', preload],
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

export async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(timer);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function waitFor(predicate, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    predicate((value) => {
      clearTimeout(timer);
      resolve(value);
    }, (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

// --- /proc ---------------------------------------------------------------------

const CLK_TCK = 100; // getconf CLK_TCK on Linux
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
export function vmHwmKiB(pid) {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : null;
}
export const loadavg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

/**
 * Starts bench/rollcall-server.js on a free loopback port with `attach`
 * options (JSON over the environment) and, if given, another adapter module
 * than js/node.js (`adapter`: a path, e.g. an older js/node.js for "before"
 * figures). Resolves with the child and its ws:// URL once it listens.
 */
export async function startRollcall(attach = {}, adapter = null, engine = {}) {
  const port = await freePort();
  const env = { HOST: '127.0.0.1', PORT: String(port), ROLLCALL_ATTACH: JSON.stringify(attach), ROLLCALL_ENGINE: JSON.stringify(engine) };
  if (adapter) env.ROLLCALL_ADAPTER = path.resolve(adapter);
  const child = start(path.join(here, '..', 'rollcall-server.js'), [], env);
  await waitFor((ok, fail) => {
    child.on('message', (m) => m?.type === 'listening' && ok());
    child.once('exit', (code) => fail(new Error(`rollcall server exited (${code})`)));
  }, 10_000, 'rollcall server listening');
  child.stdout.resume();
  return { child, url: `ws://127.0.0.1:${port}` };
}

/** Writes a harness's results as JSON to `file`, or to bench/results/<prefix>-<start time>.json. */
export function writeResults(out, prefix, file) {
  const target = file ?? path.join(here, '..', 'results', `${prefix}-${out.startedAt.replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, JSON.stringify(out, null, 2) + '\n');
  console.log(`results: ${path.relative(process.cwd(), target)}`);
}

/** Runs a harness's main(), then kills every child and exits (1 on failure). */
export function runMain(main) {
  main().then(
    () => {
      killAll();
      process.exit(0);
    },
    (err) => {
      console.error(err);
      killAll();
      process.exit(1);
    },
  );
}

/**
 * Resolves with a load generator's (bench/loadgen.js) result, calling
 * `onMark(phase)` at its window marks; fails if `server` exits first, if the
 * load generator fails, or after `ms`.
 */
export function loadgenResult(loadgen, server, onMark, what, ms) {
  const serverDied = new Promise((_, reject) =>
    server.once('exit', (code, sig) => reject(new Error(`server exited (${code ?? sig}) during ${what}`))),
  );
  serverDied.catch(() => {});
  return Promise.race([
    serverDied,
    waitFor((ok, fail) => {
      loadgen.on('message', (m) => {
        if (m.type === 'mark') onMark(m.phase);
        else if (m.type === 'result') ok(m);
        else if (m.type === 'error') fail(new Error(`loadgen: ${m.message}`));
      });
      loadgen.once('exit', (code) => code && fail(new Error(`loadgen exited (${code})`)));
    }, ms, what),
  ]);
}
