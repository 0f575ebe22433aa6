// The edge host at scale (docs/BENCHMARKS.md, "Durable Objects at scale"):
//
//   npm run bench:edge                 # both parts (about 2-3 minutes)
//   node bench/edge.js storage         # only storage and CPU per update
//   node bench/edge.js jwt             # only per-token verification (Node)
//   node bench/edge.js jwt-workerd     # only per-token verification inside workerd
//
// storage: rollcall/worker in workerd (Miniflare, the test app
// tests/js/hibernation/worker.js), rooms of N = 10, 100, 1000 connections,
// every one a member subscribed to the room's presence. After a warm-up that
// fills the room's replay buffer (replayEvents, 64), one member sends K
// presence.update frames, each awaited until every subscriber has it. Per
// update: storage keys put/deleted and bytes put (the object's persistStats),
// attachments written, the whole snapshot the previous host wrote per batch
// (for comparison), and workerd's CPU time (utime + stime from /proc, the
// whole runtime process: the fan-out of N frames included).
//
// jwt: per-token verification in Node, WebCrypto (js/jwt.js) vs jose vs the
// wasm engine's verifyToken, per algorithm, on the shared vector tokens
// (tests/vectors/jwt.json). Medians of samples over BENCH_BUDGET_MS each.
import { readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { TestClient, startWorker, mintToken } from '../tests/js/helpers.js';
import { JwtVerifier } from '../js/jwt.js';
import { Engine } from '../js/index.node.js';

const BUDGET_MS = Number(process.env.BENCH_BUDGET_MS ?? 1500);
const SIZES = (process.env.EDGE_SIZES ?? '10,100,1000').split(',').map(Number);
/** Updates measured per room size: at least this many, and enough for CPU ticks (10 ms) to resolve in small rooms. */
const UPDATES = Number(process.env.EDGE_UPDATES ?? 20);
const updatesFor = (n) => Math.max(UPDATES, Math.ceil(4000 / n));
const REPLAY_EVENTS = 64;
const SECRET = 'edge-bench-secret';
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---- storage and CPU per presence.update -------------------------------------

const CLK_TCK = 100;
/** CPU ms of a process (utime + stime). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** The workerd processes below this one (Miniflare's runtime). */
function workerdPids() {
  const parent = new Map();
  const comm = new Map();
  for (const d of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      comm.set(Number(d), stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  const below = (pid) => {
    for (let p = pid; p > 1; p = parent.get(p) ?? 0) if (p === process.pid) return true;
    return false;
  };
  return [...comm].filter(([pid, name]) => name.includes('workerd') && below(pid)).map(([pid]) => pid);
}

async function benchStorage() {
  console.log(`\n## storage and CPU per presence.update (K = max(${UPDATES}, 4000 / N) updates, replayEvents ${REPLAY_EVENTS})\n`);
  const { mf, wsBase } = await startWorker('./hibernation/worker.js', {
    durableObjects: { PRESENCE: 'Presence' },
    bindings: { JWT_SECRET: SECRET, REPLAY_EVENTS: String(REPLAY_EVENTS), RATE_UNLIMITED: '1' },
  });
  const pids = workerdPids();
  if (pids.length === 0) throw new Error('workerd process not found');
  const cpu = () => pids.reduce((t, p) => t + cpuMs(p), 0);
  const rows = [];
  try {
    for (const n of SIZES) {
      const K = updatesFor(n);
      const room = `bench-${n}`;
      const exp = Math.floor(Date.now() / 1000) + 3600;
      const clients = [];
      for (let i = 0; i < n; i++) {
        const url = new URL(wsBase);
        url.searchParams.set('room', room);
        url.searchParams.set('token', mintToken(SECRET, { sub: `u${i}`, exp }));
        const c = await TestClient.connect(url.href);
        await c.wait((f) => f.type === 'welcome');
        await c.request({ op: 'room.join', room });
        await c.request({ op: 'presence.join', room, data: { i, x: 0, y: 0 } });
        clients.push(c);
      }
      // Subscribed after everyone joined: the set-up sends no N² joins.
      for (const c of clients) await c.request({ op: 'presence.subscribe', room });
      for (const c of clients) c.frames.length = 0;
      const mover = clients[0];
      let seqSeen = 0;
      const update = async (k) => {
        await mover.request({ op: 'presence.update', room, data: { i: 0, x: k, y: k } });
        seqSeen++;
        const last = clients[clients.length - 1];
        await last.wait((f) => f.type === 'presence' && f.event === 'update' && f.data?.x === k);
        for (const c of clients) c.frames.length = 0;
      };
      for (let k = 0; k < REPLAY_EVENTS; k++) await update(-1 - k);
      const state = async (reset) => {
        const url = new URL('http://localhost/__state');
        url.searchParams.set('room', room);
        if (reset) url.searchParams.set('reset', '1');
        return (await mf.dispatchFetch(url)).json();
      };
      await state(true);
      const cpu0 = cpu();
      const t0 = process.hrtime.bigint();
      for (let k = 1; k <= K; k++) await update(k);
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      const cpuPer = (cpu() - cpu0) / K;
      const s = await state(false);
      const row = {
        n,
        updates: K,
        putsPerUpdate: s.stats.puts / K,
        deletesPerUpdate: s.stats.deletes / K,
        bytesPerUpdate: Math.round(s.stats.bytes / K),
        attachmentsPerUpdate: s.stats.attachments / K,
        attachmentBytesPerUpdate: Math.round(s.stats.attachmentBytes / K),
        snapshotBytes: s.snapshotBytes,
        workerdCpuMsPerUpdate: Number(cpuPer.toFixed(2)),
        cpuUsPerRecipient: Number(((cpuPer * 1000) / n).toFixed(1)),
        wallMsPerUpdate: Number((wallMs / K).toFixed(2)),
      };
      rows.push(row);
      console.log(JSON.stringify(row));
      for (const c of clients) c.ws.terminate();
    }
  } finally {
    await mf.dispose();
  }
  const first = rows[0];
  const last = rows[rows.length - 1];
  console.log(
    `\nbytes per update ${last.n} vs ${first.n}: ${(last.bytesPerUpdate / first.bytesPerUpdate).toFixed(2)}x; ` +
      `keys per update ${last.putsPerUpdate + last.deletesPerUpdate} vs ${first.putsPerUpdate + first.deletesPerUpdate}`,
  );
}

// ---- per-token verification ----------------------------------------------------

async function measureAsync(fn) {
  for (let i = 0; i < 50; i++) await fn();
  const samples = [];
  const end = Date.now() + BUDGET_MS;
  while (Date.now() < end || samples.length < 5) {
    const s = process.hrtime.bigint();
    for (let i = 0; i < 20; i++) await fn();
    samples.push(Number(process.hrtime.bigint() - s) / 20);
  }
  return median(samples);
}

async function benchJwt() {
  const jose = await import('jose');
  const file = JSON.parse(readFileSync(new URL('../tests/vectors/jwt.json', import.meta.url), 'utf8'));
  const { now } = file;
  console.log('\n## per-token verification (µs, median): WebCrypto (js/jwt.js) vs jose vs wasm verifyToken\n');
  console.log('alg      webcrypto   jose      wasm     webcrypto/jose');
  for (const key of file.keys) {
    const token = file.vectors.find((v) => v.name === `${key.algorithm} valid, with kid`).token;
    const shaped = key.secret
      ? { kid: key.kid, algorithm: key.algorithm, secret: key.secret }
      : { kid: key.kid, algorithm: key.algorithm, jwk: { ...key.jwk, kid: key.kid } };
    const verifier = new JwtVerifier({ keys: [shaped] });
    const joseKey = key.secret ? new TextEncoder().encode(key.secret) : await jose.importJWK({ ...key.jwk, alg: key.algorithm }, key.algorithm);
    const joseOptions = { algorithms: [key.algorithm], currentDate: new Date(now) };
    const engine = new Engine({ auth: { keys: [shaped] } });
    // Each path accepts the token before it is timed.
    await verifier.verify(token, now);
    await jose.jwtVerify(token, joseKey, joseOptions);
    engine.verifyToken(token, now);
    const web = await measureAsync(() => verifier.verify(token, now));
    const viaJose = await measureAsync(() => jose.jwtVerify(token, joseKey, joseOptions));
    const wasm = await measureAsync(async () => engine.verifyToken(token, now));
    engine.free();
    const us = (ns) => (ns / 1000).toFixed(1).padStart(8);
    console.log(`${key.algorithm.padEnd(7)} ${us(web)}  ${us(viaJose)}  ${us(wasm)}     ${(web / viaJose).toFixed(2)}`);
  }
}

/** The same three paths inside workerd (bench/edge-jwt-worker.js), timed by workerd's CPU (utime + stime). */
async function benchJwtWorkerd() {
  const vectors = readFileSync(new URL('../tests/vectors/jwt.json', import.meta.url), 'utf8');
  const { mf } = await startWorker('../../bench/edge-jwt-worker.js', { bindings: { VECTORS: vectors } });
  const pids = workerdPids();
  const cpu = () => pids.reduce((t, p) => t + cpuMs(p), 0);
  const run = async (impl, alg, n) => {
    const res = await mf.dispatchFetch(`http://localhost/?impl=${impl}&alg=${alg}&n=${n}`);
    if (res.status !== 200) throw new Error(`${impl}/${alg}: ${res.status} ${await res.text()}`);
    await res.json();
  };
  console.log('\n## per-token verification inside workerd (µs of workerd CPU per token; 10 ms ticks over >= 1 s per cell)\n');
  console.log('alg      webcrypto   jose      wasm     webcrypto/jose');
  const file = JSON.parse(vectors);
  try {
    for (const { algorithm: alg } of file.keys) {
      const per = {};
      for (const impl of ['webcrypto', 'jose', 'wasm']) {
        await run(impl, alg, 20); // set-up and warm-up
        // Calibrate: enough tokens for about a second of CPU.
        let n = 50;
        let spent = 0;
        for (;;) {
          const c0 = cpu();
          await run(impl, alg, n);
          spent = cpu() - c0;
          if (spent >= 1000 || n >= 200_000) break;
          n = Math.ceil((n * 1200) / Math.max(spent, 10));
        }
        per[impl] = (spent * 1000) / n;
      }
      const us = (v) => v.toFixed(1).padStart(8);
      console.log(`${alg.padEnd(7)} ${us(per.webcrypto)}  ${us(per.jose)}  ${us(per.wasm)}     ${(per.webcrypto / per.jose).toFixed(2)}`);
    }
  } finally {
    await mf.dispose();
  }
}

const chosen = process.argv.slice(2);
console.log(`node ${process.version}, ${os.cpus().length} cpus, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
if (chosen.length === 0 || chosen.includes('jwt')) await benchJwt();
if (chosen.length === 0 || chosen.includes('jwt-workerd')) await benchJwtWorkerd();
if (chosen.length === 0 || chosen.includes('storage')) await benchStorage();
console.log(`\nload average at the end ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
process.exit(0);
