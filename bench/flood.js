// The flood bench (issue 10): what one flooding connection costs 20 honest
// clients. See docs/BENCHMARKS.md ("Flood on loopback").
//
//   npm run bench:flood                              # after: js/node.js
//   git show main:js/node.js > js/node.before.js     # before: an older adapter
//   node bench/flood.js --adapter=js/node.before.js
//
// Options: --clients=20 --rate=10 (updates/s per honest client) --warmup=1
//          --measure=5 (seconds) --rounds=5 --scenarios=calm,raw,reconnect,hammer
//          --adapter=PATH --attach=JSON (more attach() options) --out=bench/results/flood-<timestamp>.json
//
// Each (round, scenario) runs a fresh rollcall server (bench/rollcall-server.js,
// default attach options), the honest clients (bench/loadgen.js with
// measure 'ack': the latency of each presence.update's own ack) and, unless
// the scenario is 'calm', a flooder (bench/flooder.js) in child processes of
// their own. The server counts connections by X-Forwarded-For as behind a
// proxy; the flooder says it is 192.0.2.66, the honest clients are loopback
// peers (not counted). The flood starts when the measured window
// starts (so the window holds its onset) and stops when it ends. Ratios are
// those of a scenario to the calm run of the same round. Every server is
// first warmed with a bounded burst of pings (see warm()). On this shared
// machine the server and the honest clients run at nice -10 when allowed
// (root), the flooder at nice 19: each as if it had its own CPU.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { start, stop, waitFor, cpuSeconds, loadavg, startRollcall, writeResults, runMain, loadgenResult } from './lib/children.js';
import { rawConnect, textFrame, closeFrameSeen } from './lib/raw-ws.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '20' },
    rate: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' },
    measure: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '5' },
    scenarios: { type: 'string', default: 'calm,raw,reconnect,hammer' },
    adapter: { type: 'string' },
    attach: { type: 'string', default: '{}' },
    out: { type: 'string' },
  },
});
const n = Number(args.clients);
const rate = Number(args.rate);
const warmupMs = Number(args.warmup) * 1000;
const measureMs = Number(args.measure) * 1000;
const rounds = Number(args.rounds);
const scenarios = args.scenarios.split(',');
/** The nice value of the server and the honest clients (see prioritise). */
const HIGH = -10;

/**
 * Warms a fresh server's flood paths (rate limiting, error frames, closes)
 * with a bounded burst of 300 pings from a connection that then goes, so
 * that no scenario measures a cold JIT. Every scenario, calm included, gets it.
 */
async function warm(url) {
  const { socket } = await rawConnect(`${url}/?client=warm-up`, { localAddress: '127.0.0.3' });
  const ping = textFrame('{"op":"ping"}');
  socket.write(Buffer.concat(Array.from({ length: 300 }, () => ping)));
  await Promise.race([closeFrameSeen(socket), new Promise((r) => setTimeout(r, 1000))]);
  socket.destroy();
  await new Promise((r) => setTimeout(r, 200));
}

/**
 * The machine is shared: the server and the honest clients run at a higher
 * priority than everything else (when allowed), the flooder at the lowest,
 * as if each had its own CPU. Returns whether the raise was allowed.
 */
function prioritise(pid, priority) {
  try {
    os.setPriority(pid, priority);
    return true;
  } catch {
    return false;
  }
}

async function runOne(scenario) {
  const { child: server, url } = await startRollcall(JSON.parse(args.attach), args.adapter);
  const raised = prioritise(server.pid, HIGH);
  await warm(url);
  let flooder = null;
  if (scenario !== 'calm') {
    const target = `${url}/?client=flooder`;
    flooder = start(path.join(here, 'flooder.js'), [JSON.stringify({ url: target, mode: scenario, address: '192.0.2.66' })]);
    prioritise(flooder.pid, 19);
    await waitFor((ok) => flooder.on('message', (m) => m?.type === 'ready' && ok()), 10_000, 'flooder ready');
  }
  const loadgen = start(path.join(here, 'loadgen.js'), [
    JSON.stringify({ kind: 'rollcall', url, n, rate, warmupMs, measureMs, room: 'honest', measure: 'ack' }),
  ]);
  loadgen.stdout.resume();
  prioritise(loadgen.pid, HIGH);
  const cpu = {};
  const result = await loadgenResult(loadgen, server, (phase) => {
    cpu[phase] = cpuSeconds(server.pid);
    if (phase === 'start') flooder?.send({ type: 'go' });
  }, scenario, 120_000 + warmupMs + measureMs);
  let flood = null;
  if (flooder) {
    flooder.send({ type: 'stop' });
    flood = await waitFor((ok) => flooder.on('message', (m) => m?.type === 'stats' && ok(m)), 10_000, 'flooder stats');
    await stop(flooder);
  }
  await stop(loadgen);
  await stop(server);
  return {
    scenario,
    raisedPriority: raised,
    acks: result.deliveredInWindow,
    sent: result.sentInWindow,
    latencyMs: result.latencyMs,
    serverCpuShare: (cpu.end - cpu.start) / (measureMs / 1000),
    flood: flood && { connections: flood.connections, refused: flood.refused, frames: flood.frames },
  };
}

const median = (xs) => {
  const s = xs.filter((x) => x != null).sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};
const fmt = (x, d = 2) => (x == null ? '-' : x.toFixed(d));

async function main() {
  const startedAt = new Date().toISOString();
  const loadStart = loadavg();
  console.log(`flood bench: ${n} honest clients at ${rate} updates/s each, ${rounds} round(s) of ${scenarios.join(', ')}, ` +
    `warm-up ${warmupMs / 1000} s, measure ${measureMs / 1000} s, adapter ${args.adapter ?? 'js/node.js'}, load average ${loadStart.join(' ')}`);
  const runs = [];
  for (let round = 1; round <= rounds; round++) {
    for (const scenario of scenarios) {
      const r = { round, ...(await runOne(scenario)) };
      runs.push(r);
      console.log(`  round ${round} ${scenario}: acks ${r.acks}/${r.sent}, p50 ${fmt(r.latencyMs.p50)} ms, p99 ${fmt(r.latencyMs.p99)} ms, ` +
        `max ${fmt(r.latencyMs.max)} ms, server cpu ${fmt(r.serverCpuShare * 100, 0)}%` +
        (r.flood ? `, flooder: ${r.flood.connections} connections, ${r.flood.refused} refused, ${r.flood.frames} frames written` : ''));
    }
  }
  const loadEnd = loadavg();
  const summary = scenarios.map((scenario) => {
    const mine = runs.filter((r) => r.scenario === scenario);
    const ratio = (key) => median(mine.map((r) => {
      const calm = runs.find((c) => c.round === r.round && c.scenario === 'calm');
      return calm ? r.latencyMs[key] / calm.latencyMs[key] : null;
    }));
    return {
      scenario,
      p50: median(mine.map((r) => r.latencyMs.p50)),
      p99: median(mine.map((r) => r.latencyMs.p99)),
      p50VsCalm: ratio('p50'),
      p99VsCalm: ratio('p99'),
      ackedShare: median(mine.map((r) => r.acks / r.sent)),
      serverCpuShare: median(mine.map((r) => r.serverCpuShare)),
      floodConnections: median(mine.map((r) => r.flood?.connections)),
      floodRefused: median(mine.map((r) => r.flood?.refused)),
    };
  });
  console.log('\n| scenario | p50 ms | p99 ms | p50 / calm | p99 / calm | acked in window | server CPU % | flood connections (refused) |');
  console.log('| --- | --: | --: | --: | --: | --: | --: | --: |');
  for (const s of summary) {
    console.log(`| ${s.scenario} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.p50VsCalm)} | ${fmt(s.p99VsCalm)} | ${fmt(s.ackedShare * 100, 1)}% | ` +
      `${fmt(s.serverCpuShare * 100, 0)} | ${s.floodConnections == null ? '-' : `${s.floodConnections} (${s.floodRefused})`} |`);
  }
  console.log(`medians over ${rounds} round(s); load average: ${loadStart.join(' ')} at start, ${loadEnd.join(' ')} at end`);
  const out = {
    startedAt,
    command: `node bench/flood.js ${process.argv.slice(2).join(' ')}`.trim(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model },
    loadavg: { start: loadStart, end: loadEnd },
    node: process.version,
    config: { n, rate, warmupMs, measureMs, rounds, adapter: args.adapter ?? 'js/node.js', attach: JSON.parse(args.attach) },
    runs,
    summary,
  };
  writeResults(out, 'flood', args.out);
}

runMain(main);
