// End-to-end bench on loopback: the rollcall Node server against the
// y-websocket awareness relay, under the same load from the same load
// generator. See docs/BENCHMARKS.md ("End to end on loopback").
//
//   npm run bench                        # the full run (N = 10, 100, 500)
//   node bench/run.js --n=10 --measure=3 # a quick one
//
//   node bench/run.js --n=100,500 --servers=rollcall,rollcall-f50,y-websocket-noecho --rates=100:1,500:0.3
//                                        # coalescing (issue 15): flush interval 0 vs 50 ms beside the relay
//   node bench/run.js --n=500 --servers=rollcall,rollcall-f50,y-websocket-noecho --ladder=0.3,1,3,10
//                                        # a rate ladder: per server, rates go up until one is not sustained
//
// Servers: rollcall (flush interval 0), rollcall-f<ms> (presence.flushIntervalMs = ms), y-websocket,
// y-websocket-noecho, and rollcall-before: interval 0 behind the adapter module --before=PATH (an older
// js/node.js copied into js/, e.g. `git show <commit>:js/node.js > js/node-before.js`), side by side. A rate is sustained when p99 latency <= 250 ms and at least 95 % of the expected
// deliveries landed in the window (an update counts as delivered to a receiver when it got it or a later
// update of the same member; see bench/loadgen.js). Runs where the load generator used more than 90 %
// of a core, or fell behind its send schedule by more than 100 ms, are flagged `loadgen-bound`.
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
const ladder = args.ladder ? args.ladder.split(',').map(Number) : null;
const P99_LIMIT_MS = 250;
const flushOf = (kind) => Number(/^rollcall-f(\d+)$/.exec(kind)?.[1] ?? 0);

// --- servers -------------------------------------------------------------------

async function startServer(kind) {
  // One load generator on one address is not an attacker: no connection rate limit.
  if (kind.startsWith('rollcall')) {
    const engine = { presence: { flushIntervalMs: flushOf(kind) } };
    const adapter = kind === 'rollcall-before' ? args.before : args.adapter;
    return startRollcall({ connectionRate: null }, adapter, engine);
  }
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

async function runOne(kind, n, rate = rateFor(n)) {
  const { child: server, url } = await startServer(kind);
  const pid = server.pid;
  const loadgen = start(path.join(here, 'loadgen.js'), [
    JSON.stringify({ kind, url, n, rate, warmupMs, measureMs, room: 'bench' }),
  ]);
  loadgen.stdout.pipe(process.stdout);
  const marks = {};
  const result = await loadgenResult(loadgen, server, (phase) => {
    // Read the server's CPU at once; the engine mark (rollcall) comes over IPC.
    marks[phase] = { cpuSec: cpuSeconds(pid), engine: kind.startsWith('rollcall') ? askMark(server) : null };
  }, `${kind} N=${n}`, 120_000 + warmupMs + measureMs);
  const hwm = vmHwmKiB(pid);
  const serverCpuSec = marks.end.cpuSec - marks.start.cpuSec;
  let engine = null;
  if (kind.startsWith('rollcall')) {
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
  const measureSec = measureMs / 1000;
  const delivered = rest.deliveredPerSec * measureSec;
  const loadgenCpuShare = rest.loadgenCpuSec / measureSec;
  return {
    server: kind,
    n,
    rate,
    ...rest,
    serverCpuSec,
    serverCpuShare: serverCpuSec / measureSec,
    serverCpuUsPerDelivery: delivered > 0 ? (serverCpuSec * 1e6) / delivered : null,
    serverPeakRssMiB: hwm / 1024,
    engine,
    loadgenCpuShare,
    loadgenBound: loadgenCpuShare > 0.9 || rest.loadgenMaxSendLagMs > 100,
    sustained: rest.latencyMs.p99 != null && rest.latencyMs.p99 <= P99_LIMIT_MS && rest.deliveredPerSec >= 0.95 * rest.expectedDeliveriesPerSec,
  };
}

/** Per server and N, rates in ascending order until one is not sustained. */
async function runLadder() {
  const steps = [];
  const best = [];
  for (const n of sizes) {
    for (const kind of servers) {
      let top = null;
      for (const rate of ladder) {
        process.stdout.write(`  ladder ${kind} N=${n} rate=${rate}/s ... `);
        const r = await runOne(kind, n, rate);
        steps.push(r);
        console.log(
          `${fmt(r.deliveredPerSec, 0)}/${fmt(r.expectedDeliveriesPerSec, 0)} deliveries/s, p99 ${fmt(r.latencyMs.p99, 1)} ms, ` +
            `server cpu ${fmt(r.serverCpuShare * 100)}%, loadgen cpu ${fmt(r.loadgenCpuShare * 100)}%` +
            (r.sustained ? ' sustained' : ' NOT sustained') + (r.loadgenBound ? ' (loadgen-bound)' : ''),
        );
        if (!r.sustained) break;
        top = r;
      }
      best.push({ server: kind, n, rate: top?.rate ?? null, deliveredPerSec: top?.deliveredPerSec ?? null, p99: top?.latencyMs.p99 ?? null, loadgenBound: top?.loadgenBound ?? null });
    }
  }
  console.log('\n| server | N | highest sustained rate /client/s | deliveries/s there | p99 ms | loadgen-bound |');
  console.log('| --- | --: | --: | --: | --: | --- |');
  for (const b of best) console.log(`| ${b.server} | ${b.n} | ${b.rate ?? '-'} | ${fmt(b.deliveredPerSec, 0)} | ${fmt(b.p99, 1)} | ${b.loadgenBound ? 'yes' : 'no'} |`);
  return { steps, best };
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
  if (ladder) {
    const result = await runLadder();
    const loadEnd = loadavg();
    console.log(`\nload average: ${loadStart.join(' ')} at start, ${loadEnd.join(' ')} at end`);
    const command = `node bench/run.js ${process.argv.slice(2).join(' ')}`.trim();
    writeResults({ startedAt, command, loadavg: { start: loadStart, end: loadEnd }, versions: versions(), warmupMs, measureMs, ladder: result }, 'ladder', args.out);
    return;
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
  for (const rc of runs.filter((r) => r.server.startsWith('rollcall'))) {
    const n = rc.n;
    for (const other of runs.filter((r) => !r.server.startsWith('rollcall') && r.n === n)) {
      ratios.push({
        n,
        server: rc.server,
        vs: other.server,
        cpuPerDelivery: q(rc.serverCpuUsPerDelivery, other.serverCpuUsPerDelivery),
        deliveredPerSec: q(rc.deliveredPerSec, other.deliveredPerSec),
        p50: q(rc.latencyMs.p50, other.latencyMs.p50),
        p99: q(rc.latencyMs.p99, other.latencyMs.p99),
        serverCpuSec: q(rc.serverCpuSec, other.serverCpuSec),
        serverPeakRssMiB: q(rc.serverPeakRssMiB, other.serverPeakRssMiB),
      });
    }
  }

  console.log('\n| server | N | rate /client/s | delivered/s (expected) | p50 ms | p99 ms | server CPU s | CPU % | CPU µs / delivery | peak RSS MiB | engine % of CPU | loadgen CPU % |');
  console.log('| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |');
  for (const r of runs) {
    console.log(
      `| ${r.server} | ${r.n} | ${r.rate} | ${fmt(r.deliveredPerSec, 0)} (${fmt(r.expectedDeliveriesPerSec, 0)}) | ${fmt(r.latencyMs.p50, 2)} | ${fmt(r.latencyMs.p99, 2)} | ${fmt(r.serverCpuSec, 2)} | ${fmt(r.serverCpuShare * 100)} | ${fmt(r.serverCpuUsPerDelivery, 2)} | ${fmt(r.serverPeakRssMiB)} | ${r.engine ? fmt(r.engine.share * 100) : '-'} | ${fmt(r.loadgenCpuShare * 100)}${r.loadgenBound ? ' (bound)' : ''} |`,
    );
  }
  console.log('\nrollcall / other (same run):');
  console.log('| N | server | vs | CPU per delivery | delivered/s | p50 | p99 | server CPU | peak RSS |');
  console.log('| --: | --- | --- | --: | --: | --: | --: | --: | --: |');
  for (const q of ratios) {
    console.log(`| ${q.n} | ${q.server} | ${q.vs} | ${fmt(q.cpuPerDelivery, 2)} | ${fmt(q.deliveredPerSec, 2)} | ${fmt(q.p50, 2)} | ${fmt(q.p99, 2)} | ${fmt(q.serverCpuSec, 2)} | ${fmt(q.serverPeakRssMiB, 2)} |`);
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
