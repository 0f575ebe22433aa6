// End-to-end bench on loopback: the rollcall Node server against the
// y-websocket awareness relay, under the same load from the same load
// generator. See docs/BENCHMARKS.md ("End to end on loopback").
//
//   npm run bench                        # the full run (N = 10, 100, 500)
//   node bench/run.js --n=10 --measure=3 # a quick one
//
// Options: --n=10,100,500  --servers=rollcall,y-websocket,y-websocket-noecho  --warmup=2
//          --measure=10 (seconds) --adapter=PATH (another rollcall/node module, e.g. an older js/node.js)  --rates=10:1,100:1,500:0.1 (updates/s per client)
//          --out=bench/results/e2e-<timestamp>.json
//
// Each server runs in a child process of its own, and so does the load
// generator. Every child is killed when this process ends, however it ends.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { start, stop, freePort, waitFor, cpuSeconds, vmHwmKiB, loadavg, startRollcall, writeResults, runMain, loadgenResult } from './lib/children.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const m = /^--([^=]+)=(.*)$/.exec(a);
    if (!m) throw new Error(`unknown argument ${a}`);
    return [m[1], m[2]];
  }),
);
const sizes = (args.n ?? '10,100,500').split(',').map(Number);
const servers = (args.servers ?? 'rollcall,y-websocket,y-websocket-noecho').split(',');
const warmupMs = Number(args.warmup ?? 2) * 1000;
const measureMs = Number(args.measure ?? 10) * 1000;
const rates = new Map(
  (args.rates ?? '10:1,100:1,500:0.1').split(',').map((p) => p.split(':').map(Number)),
);
const rateFor = (n) => rates.get(n) ?? Math.min(1, 50 / n);

// --- servers -------------------------------------------------------------------

async function startServer(kind) {
  // One load generator on one address is not an attacker: no connection rate limit.
  if (kind === 'rollcall') return startRollcall({ connectionRate: null }, args.adapter);
  const port = await freePort();
  const env = { HOST: '127.0.0.1', PORT: String(port) };
  // The stock server of @y/websocket-server, unmodified (its bin script).
  const pkgDir = path.dirname(require.resolve('@y/websocket-server/package.json'));
  const pkg = JSON.parse(readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
  const child = start(path.join(pkgDir, pkg.bin['y-websocket-server']), [], env);
  await waitFor((ok, fail) => {
    child.stdout.on('data', (d) => /running at/.test(String(d)) && ok());
    child.once('exit', (code) => fail(new Error(`y-websocket server exited (${code})`)));
  }, 10_000, 'y-websocket server listening');
  child.stdout.resume();
  return { child, url: `ws://127.0.0.1:${port}` };
}

function askMark(child) {
  const id = Math.random();
  return new Promise((resolve) => {
    const on = (m) => {
      if (m?.type === 'mark' && m.id === id) {
        child.off('message', on);
        resolve(m);
      }
    };
    child.on('message', on);
    child.send({ type: 'mark', id });
  });
}

async function runOne(kind, n) {
  const rate = rateFor(n);
  const { child: server, url } = await startServer(kind);
  const pid = server.pid;
  const loadgen = start(path.join(here, 'loadgen.js'), [
    JSON.stringify({ kind, url, n, rate, warmupMs, measureMs, room: 'bench' }),
  ]);
  loadgen.stdout.pipe(process.stdout);
  const marks = {};
  const result = await loadgenResult(loadgen, server, (phase) => {
    // Read the server's CPU at once; the engine mark (rollcall) comes over IPC.
    marks[phase] = { cpuSec: cpuSeconds(pid), engine: kind === 'rollcall' ? askMark(server) : null };
  }, `${kind} N=${n}`, 120_000 + warmupMs + measureMs);
  const hwm = vmHwmKiB(pid);
  const serverCpuSec = marks.end.cpuSec - marks.start.cpuSec;
  let engine = null;
  if (kind === 'rollcall') {
    const [a, b] = await Promise.all([marks.start.engine, marks.end.engine]);
    const engineSec = (b.engineNs - a.engineNs) / 1e9;
    const processCpuSec = (b.cpuUs - a.cpuUs) / 1e6;
    const perMethod = {};
    for (const k of Object.keys(b.perMethod)) {
      perMethod[k] = {
        calls: b.perMethod[k].calls - a.perMethod[k].calls,
        sec: (b.perMethod[k].ns - a.perMethod[k].ns) / 1e9,
      };
    }
    engine = { engineSec, processCpuSec, share: processCpuSec > 0 ? engineSec / processCpuSec : null, perMethod };
  }
  await stop(loadgen);
  await stop(server);
  const { type, kind: _k, n: _n, rate: _r, ...rest } = result;
  return { server: kind, n, rate, ...rest, serverCpuSec, serverCpuShare: serverCpuSec / (measureMs / 1000), serverPeakRssMiB: hwm / 1024, engine };
}

// --- main ----------------------------------------------------------------------

const versions = () => {
  const v = (name) => JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version;
  const wsInYws = JSON.parse(
    readFileSync(path.join(path.dirname(require.resolve('@y/websocket-server/package.json')), 'node_modules/ws/package.json'), 'utf8'),
  ).version;
  return {
    node: process.version,
    '@y/websocket-server': v('@y/websocket-server'),
    'ws (in @y/websocket-server)': wsInYws,
    'y-websocket': v('y-websocket'),
    'y-protocols': v('y-protocols'),
    yjs: v('yjs'),
    ws: v('ws'),
  };
};

const fmt = (x, d = 1) => (x == null ? '-' : x.toFixed(d));

async function main() {
  const startedAt = new Date().toISOString();
  const loadStart = loadavg();
  console.log(`e2e bench: N=${sizes.join(',')}, warm-up ${warmupMs / 1000} s, measure ${measureMs / 1000} s, load average ${loadStart.join(' ')}`);
  if (loadStart[0] > os.cpus().length) {
    console.log(`  note: the 1-minute load average is above the core count (${os.cpus().length}); other work competes for the CPU, so rerun on a quieter machine before comparing figures`);
  }
  const runs = [];
  for (const n of sizes) {
    for (const kind of servers) {
      process.stdout.write(`  ${kind} N=${n} rate=${rateFor(n)}/s ... `);
      const r = await runOne(kind, n);
      runs.push(r);
      console.log(
        `${fmt(r.deliveredPerSec, 0)} deliveries/s (expected ${fmt(r.expectedDeliveriesPerSec, 0)}), ` +
          `p50 ${fmt(r.latencyMs.p50, 2)} ms, p99 ${fmt(r.latencyMs.p99, 2)} ms, cpu ${fmt(r.serverCpuSec, 2)} s, ` +
          `rss ${fmt(r.serverPeakRssMiB)} MiB` + (r.engine ? `, engine ${fmt(r.engine.share * 100)}% of cpu` : ''),
      );
    }
  }
  const loadEnd = loadavg();

  const ratios = [];
  const q = (a, b) => (a != null && b ? a / b : null);
  for (const n of sizes) {
    const rc = runs.find((r) => r.server === 'rollcall' && r.n === n);
    for (const other of runs.filter((r) => r.server !== 'rollcall' && r.n === n)) {
      if (!rc) continue;
      ratios.push({
        n,
        vs: other.server,
        deliveredPerSec: q(rc.deliveredPerSec, other.deliveredPerSec),
        p50: q(rc.latencyMs.p50, other.latencyMs.p50),
        p99: q(rc.latencyMs.p99, other.latencyMs.p99),
        serverCpuSec: q(rc.serverCpuSec, other.serverCpuSec),
        serverPeakRssMiB: q(rc.serverPeakRssMiB, other.serverPeakRssMiB),
      });
    }
  }

  console.log('\n| server | N | rate /client/s | delivered/s (expected) | p50 ms | p99 ms | server CPU s | CPU % | peak RSS MiB | engine % of CPU | loadgen CPU s |');
  console.log('| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |');
  for (const r of runs) {
    console.log(
      `| ${r.server} | ${r.n} | ${r.rate} | ${fmt(r.deliveredPerSec, 0)} (${fmt(r.expectedDeliveriesPerSec, 0)}) | ${fmt(r.latencyMs.p50, 2)} | ${fmt(r.latencyMs.p99, 2)} | ${fmt(r.serverCpuSec, 2)} | ${fmt(r.serverCpuShare * 100)} | ${fmt(r.serverPeakRssMiB)} | ${r.engine ? fmt(r.engine.share * 100) : '-'} | ${fmt(r.loadgenCpuSec, 2)} |`,
    );
  }
  console.log('\nrollcall / other (same run):');
  console.log('| N | vs | delivered/s | p50 | p99 | server CPU | peak RSS |');
  console.log('| --: | --- | --: | --: | --: | --: | --: |');
  for (const q of ratios) {
    console.log(`| ${q.n} | ${q.vs} | ${fmt(q.deliveredPerSec, 2)} | ${fmt(q.p50, 2)} | ${fmt(q.p99, 2)} | ${fmt(q.serverCpuSec, 2)} | ${fmt(q.serverPeakRssMiB, 2)} |`);
  }
  console.log(`\nload average: ${loadStart.join(' ')} at start, ${loadEnd.join(' ')} at end`);

  const out = {
    startedAt,
    command: `node bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) },
    loadavg: { start: loadStart, end: loadEnd },
    versions: versions(),
    warmupMs,
    measureMs,
    runs,
    ratios,
  };
  writeResults(out, 'e2e', args.out);
}

runMain(main);
