// Benchmarks of the wasm package in Node (docs/BENCHMARKS.md, sections
// "wasm package in Node", "JWT and patterns vs JS peers", "Memory and
// start-up", "Scale curves").
//
//   node bench/engine.js                 # everything (about 3-4 minutes)
//   node bench/engine.js fanout jwt      # only some sections:
//        fanout providers jwt patterns memory budget startup scale
//   node bench/engine.js --json out.json # also write the medians as JSON
//
// Timing: process.hrtime.bigint(). Each case is sampled for a fixed budget
// (BENCH_BUDGET_MS, default 1500 ms); a sample is one or more operations,
// and the median sample / operations is reported. The workloads mirror
// benches/fanout.rs and benches/providers.rs; the wasm figures include what
// a Node host pays and the native benches do not: turning each batch into
// JS objects (serde-wasm-bindgen) and the wrapper's parsing of event data.
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import crypto from 'node:crypto';
import os from 'node:os';
import { Engine } from '../js/index.node.js';
import { initSync, WasmEngine } from '../pkg/rollcall_wasm.js';

const ROOT = new URL('../', import.meta.url);
const T0 = 1_720_865_608_496;
const U32 = 4_294_967_295;
const BUDGET_MS = Number(process.env.BENCH_BUDGET_MS ?? 1500);
// The benches' configuration: the default with the frame rate limit lifted.
// The memory budget lifted too (to wasm32's 4 GiB): these sections measure engines past 64 MiB.
const OPTIONS = { limits: { rate: { burst: U32, perSecond: U32 }, maxStoredBytes: U32 } };
const results = {};

// ---- measuring -------------------------------------------------------------

const now = () => process.hrtime.bigint();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * `step()` does one operation and returns the ns it wants counted (so that
 * untimed preparation, like the close after a timed open, is left out).
 * Returns { ns: median ns per operation, samples, ops }.
 */
function measure(step, { budgetMs = BUDGET_MS, minSampleNs = 2e6, warmupMs = Math.min(300, budgetMs / 4) } = {}) {
  const warmEnd = Date.now() + warmupMs;
  let k = 0;
  let spent = 0;
  do {
    spent += step();
    k++;
  } while (Date.now() < warmEnd || k < 2);
  // Operations per sample so that a sample is at least minSampleNs.
  const per = Math.max(1, Math.ceil(minSampleNs / (spent / k)));
  const samples = [];
  const end = Date.now() + budgetMs;
  while (Date.now() < end || samples.length < 5) {
    let t = 0;
    for (let i = 0; i < per; i++) t += step();
    samples.push(t / per);
  }
  return { ns: median(samples), samples: samples.length, ops: samples.length * per };
}

/** A step that times all of `fn`. */
const timed = (fn) => () => {
  const s = now();
  fn();
  return Number(now() - s);
};

/** Async: ops per second of `fn` (awaited one after the other). */
async function measureAsync(fn, { budgetMs = BUDGET_MS } = {}) {
  for (let i = 0; i < 50; i++) await fn();
  const samples = [];
  const end = Date.now() + budgetMs;
  while (Date.now() < end || samples.length < 5) {
    const s = now();
    for (let i = 0; i < 20; i++) await fn();
    samples.push(Number(now() - s) / 20);
  }
  return { ns: median(samples), samples: samples.length, ops: samples.length * 20 };
}

const fmt = (ns) =>
  ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(1)} µs` : `${ns.toFixed(1)} ns`;
const perSec = (ns) => Math.round(1e9 / ns).toLocaleString('en');

function report(name, r, extra = '') {
  results[name] = { ...r, ...(typeof extra === 'object' ? extra : {}) };
  const note = typeof extra === 'string' ? extra : '';
  console.log(`${name.padEnd(44)} ${fmt(r.ns).padStart(10)}  (${r.samples} samples, ${r.ops} ops) ${note}`);
}

// ---- host helpers (benches/support/mod.rs) --------------------------------

/** Delivery counts of a batch, like the native `Tally`. */
function tally(batch) {
  let deliveries = 0;
  let widest = 0;
  for (const s of batch.sends) {
    deliveries += s.to.length;
    if (s.to.length > widest) widest = s.to.length;
  }
  const status = batch.events.filter((e) => e.type === 'objectStatusChanged').length;
  return { sends: batch.sends.length, deliveries, widest, status, closes: batch.closes.length };
}

function open(e, id, identity) {
  const b = e.open(id, { identity }, T0);
  if (b.closes.length) throw new Error(`connection ${id} closed at open`);
}

/** Sends a frame; throws if the engine answered the sender with an error. */
function send(e, id, frame) {
  const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
  const b = e.message(id, text, T0);
  for (const s of b.sends) {
    if (s.to.length === 1 && s.to[0] === id && s.payload.includes('"type":"error"')) {
      throw new Error(`frame ${text} from ${id} refused: ${s.payload}`);
    }
  }
  if (b.closes.length) throw new Error(`frame ${text} closed ${id}`);
  return b;
}

const section = (title) => console.log(`\n## ${title}\n`);

// ---- 1. the native benches' workloads ----------------------------------------

const REALM = 'london';
const PROVIDER = 1_000_000_000;
const SUBSCRIBER0 = 1_000;

/** benches/fanout.rs build_room: n members, all subscribed to presence. */
function buildRoom(n, options = OPTIONS) {
  const e = new Engine(options);
  for (let c = 1; c <= n; c++) {
    open(e, c, { clientId: `u${c}` });
    send(e, c, '{"op":"room.join","ref":1,"room":"lobby"}');
    send(e, c, '{"op":"presence.subscribe","ref":2,"room":"lobby"}');
  }
  for (let c = 1; c <= n; c++) {
    send(e, c, `{"op":"presence.join","ref":3,"room":"lobby","data":{"name":"u${c}"}}`);
  }
  if (e.counts('lobby').members !== n) throw new Error('room not built');
  return e;
}

function benchPresence() {
  section('presence/update (benches/fanout.rs)');
  const UPDATE = '{"op":"presence.update","ref":4,"room":"lobby","data":{"name":"u1","status":"away"}}';
  for (const n of [100, 1_000, 10_000]) {
    const s = now();
    const e = buildRoom(n);
    const t = tally(e.message(1, UPDATE, T0));
    if (t.sends !== 2 || t.deliveries !== 1 + n || t.widest !== n) throw new Error(JSON.stringify(t));
    console.log(`set-up: room of ${n} in ${fmt(Number(now() - s))}`);
    report(`presence/update/${n}`, measure(timed(() => e.message(1, UPDATE, T0))));
    e.free();
  }
}

/** benches/providers.rs build: `total` objects of which 1,000 riders. */
function buildRealm(total) {
  const e = new Engine(OPTIONS);
  open(e, 1, { clientId: 'creator', per: { [REALM]: { '**': 'CRUD' } } });
  for (let n = 0; n < 1000; n++) send(e, 1, `{"op":"object.create","realm":"${REALM}","id":"deliveryRiders/${n}"}`);
  for (let n = 0; n < total - 1000; n++) {
    const kind = n % 2 === 0 ? 'vessels' : 'aircraft';
    send(e, 1, `{"op":"object.create","realm":"${REALM}","id":"${kind}/${n}"}`);
  }
  return e;
}

/** Times the open (or the close) of a provider; the other half is untimed. */
function providerSteps(e, who) {
  const openP = () => e.open(PROVIDER, { identity: who }, T0);
  const closeP = () => e.close(PROVIDER, T0);
  return {
    open: () => {
      const s = now();
      openP();
      const t = Number(now() - s);
      closeP();
      return t;
    },
    close: () => {
      openP();
      const s = now();
      closeP();
      return Number(now() - s);
    },
    check: () => [tally(openP()), tally(closeP())],
  };
}

function benchProviders() {
  section('provider/{open,close} (benches/providers.rs), realm of 100,000');
  const total = 100_000;
  const s = now();
  const e = buildRealm(total);
  console.log(`set-up: ${total} objects in ${fmt(Number(now() - s))}`);
  const who = { clientId: 'riders-feed', dpv: { [REALM]: ['deliveryRiders/*'] } };
  let subscribers = 0;
  for (const subs of [0, 100]) {
    for (let i = subscribers; i < subs; i++) {
      const c = SUBSCRIBER0 + i;
      open(e, c, { clientId: `watcher${i}`, per: { [REALM]: { '**': 'R' } } });
      const pattern = i % 2 === 0 ? '**' : 'deliveryRiders/*';
      send(e, c, { op: 'realm.subscribe', ref: 1, realm: REALM, event: 'connectionStatusChanged', pattern });
    }
    subscribers = subs;
    const steps = providerSteps(e, who);
    const [o, c] = steps.check();
    if (o.status !== 1000 || c.status !== 1000) throw new Error(`status events ${o.status} ${c.status}`);
    console.log(`provider/*/subs=${subs}/${total}: ${o.status} status changes, ${o.sends} sends, ${o.deliveries} deliveries`);
    report(`provider/open/subs=${subs}/${total}`, measure(steps.open));
    report(`provider/close/subs=${subs}/${total}`, measure(steps.close));
  }
  e.free();
}

// benches/fanout.rs bench_status
const TARGET = 'deliveryRiders/r1234';
const PATTERNS = [
  '**', '*/*', 'deliveryRiders/*', 'deliveryRiders/**', 'deliveryRiders/r*', 'deliveryRiders/r1*',
  'deliveryRiders/r12*', 'deliveryRiders/r123*', 'deliveryRiders/r1234', 'deliveryRiders/r?234',
  'deliveryRiders/r1?3?', '*/r1234', '**/r1234', 'deliveryRiders/*4',
  'deliveryRiders/r2*', 'deliveryRiders/r9*', 'deliveryRiders/r5678', 'deliveryRiders/r1235', 'vessels/*',
  'vessels/**', 'aircraft/*', 'aircraft/a1*', 'deliveryRiders/*/x', 'deliveryRiders/r1234/*',
  'deliveryRiders/r?', '*/v1', 'trucks/**', 'deliveryRiders/r0*', 'deliveryRiders/r3?', 'vessels/v1234',
];
function baseClaim(k) {
  switch (k) {
    case 0: return { london: { '**': 'R' } };
    case 1: return { london: { 'deliveryRiders/*': 'R' } };
    case 2: return { '*': { '**': 'R' } };
    case 3: return { '*': { 'deliveryRiders/**': 'CRUD' } };
    case 4: return { london: { 'deliveryRiders/r1*': 'R' } };
    case 5: return { london: { 'deliveryRiders/r1234': 'RU' } };
    case 6: return { london: { 'deliveryRiders/*': 'R', 'deliveryRiders/johndoe-123': 'CU' } };
    case 7: return { london: { 'deliveryRiders/r12??': 'R', 'vessels/*': 'CRUD' } };
    case 8: return { london: { 'vessels/*': 'R' } };
    case 9: return { london: { 'deliveryRiders/r2*': 'R' } };
    case 10: return { london: { 'aircraft/**': 'CRUD' } };
    case 11: return { london: { 'deliveryRiders/*': 'CU', 'vessels/*': 'R' } };
    case 12: return { paris: { '**': 'R' }, london: { 'vessels/*': 'R' } };
    case 13: return { london: { 'deliveryRiders/r5678': 'R' } };
    case 14: return { london: { 'deliveryRiders/r1234/*': 'R' } };
    default: return { london: { '*/v1': 'R', 'deliveryRiders/r123': 'R' } };
  }
}
function claim(j) {
  const c = baseClaim(j % 16);
  if (j >= 16) c[c.london ? 'london' : '*'][`team${j}/**`] = 'R';
  return c;
}
function ownPattern(i) {
  let mask = Math.floor(i / 2) + 1;
  let p = '';
  let bit = 0;
  for (const ch of TARGET) {
    if (ch === '/') {
      p += '/';
      continue;
    }
    p += (mask >> bit) & 1 ? '?' : ch;
    bit++;
  }
  return i % 2 === 1 ? `${p}/x` : p;
}
function buildStatus(n, pattern) {
  const e = new Engine(OPTIONS);
  open(e, 1, { clientId: 'creator', per: { [REALM]: { '**': 'CRUD' } } });
  for (let k = 0; k < 10_000; k++) {
    for (const kind of ['deliveryRiders/r', 'vessels/v']) {
      send(e, 1, `{"op":"object.create","realm":"${REALM}","id":"${kind}${k}"}`);
    }
  }
  for (let i = 0; i < n; i++) {
    const c = SUBSCRIBER0 + i;
    open(e, c, { clientId: `watcher${i}`, per: claim(Math.floor(i / PATTERNS.length) % 32) });
    const event = i % 10 === 9 ? '*' : 'connectionStatusChanged';
    send(e, c, { op: 'realm.subscribe', ref: 1, realm: REALM, event, pattern: pattern(i) });
  }
  return e;
}

function benchStatus() {
  section('status/{open,close} (benches/fanout.rs)');
  const who = { clientId: 'r1234-feed', dpv: { [REALM]: [TARGET] } };
  for (const [kind, n] of [['mixed', 1_000], ['mixed', 10_000], ['distinct', 10_000]]) {
    const s = now();
    const e = buildStatus(n, kind === 'mixed' ? (i) => PATTERNS[i % PATTERNS.length] : ownPattern);
    const steps = providerSteps(e, who);
    const [o, c] = steps.check();
    if (o.status !== 1 || c.status !== 1 || o.widest !== c.widest) throw new Error('status check');
    console.log(`set-up: ${n} ${kind} subscribers in ${fmt(Number(now() - s))}; ${c.widest} recipients per change`);
    report(`status/open/${kind}/${n}`, measure(steps.open), { recipients: c.widest });
    report(`status/close/${kind}/${n}`, measure(steps.close), { recipients: c.widest });
    e.free();
  }
}

// ---- 2. JWT ---------------------------------------------------------------

async function benchJwt() {
  section('JWT verification: wasm (jsonwebtoken + RustCrypto) vs jose and node:crypto');
  const jose = await import('jose');
  const key = (f) => readFileSync(new URL(`tests/keys/${f}`, ROOT), 'utf8');
  const secret = 'a-benchmark-secret-of-32-bytes!!';
  const wall = Date.now();
  const exp = Math.floor(wall / 1000) + 3600;
  const claims = { sub: 'alice', exp, rooms: { 'lobby/*': ['subscribe', 'presence'] } };
  const algs = {
    HS256: { sign: new TextEncoder().encode(secret), verify: new TextEncoder().encode(secret), wasmKey: { algorithm: 'HS256', secret } },
    ES256: {
      sign: await jose.importPKCS8(key('ec_private.pem'), 'ES256'),
      verify: await jose.importSPKI(key('ec_public.pem'), 'ES256'),
      wasmKey: { algorithm: 'ES256', pem: key('ec_public.pem') },
      node: crypto.createPublicKey(key('ec_public.pem')),
    },
    RS256: {
      sign: await jose.importPKCS8(key('rsa_private.pem'), 'RS256'),
      verify: await jose.importSPKI(key('rsa_public.pem'), 'RS256'),
      wasmKey: { algorithm: 'RS256', pem: key('rsa_public.pem') },
      node: crypto.createPublicKey(key('rsa_public.pem')),
    },
  };
  for (const [alg, k] of Object.entries(algs)) {
    const token = await new jose.SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).sign(k.sign);
    const e = new Engine({ ...OPTIONS, auth: { keys: [k.wasmKey] } });
    if (e.verifyToken(token, wall).clientId !== 'alice') throw new Error('wasm verify');
    const out = {};
    out.wasm = measure(timed(() => e.verifyToken(token, wall)));
    // The same through the connection path: open with the token, close;
    // less the same with a host-asserted identity.
    let id = 1;
    const viaToken = timed(() => {
      e.open(id, token, wall);
      e.close(id++, wall);
    });
    const viaIdentity = timed(() => {
      e.open(id, { identity: { clientId: 'alice', rooms: claims.rooms } }, wall);
      e.close(id++, wall);
    });
    out.openToken = measure(viaToken);
    out.openIdentity = measure(viaIdentity);
    const { payload } = await jose.jwtVerify(token, k.verify, { algorithms: [alg] });
    if (payload.sub !== 'alice') throw new Error('jose verify');
    out.jose = await measureAsync(() => jose.jwtVerify(token, k.verify, { algorithms: [alg] }));
    // node:crypto alone: signature only, no JSON or claim checks.
    const [h, p, sig] = token.split('.');
    const data = Buffer.from(`${h}.${p}`);
    const sigBytes = Buffer.from(sig, 'base64url');
    const nodeVerify =
      alg === 'HS256'
        ? () => crypto.timingSafeEqual(crypto.createHmac('sha256', secret).update(data).digest(), sigBytes)
        : alg === 'ES256'
          ? () => crypto.verify('sha256', data, { key: k.node, dsaEncoding: 'ieee-p1363' }, sigBytes)
          : () => crypto.verify('sha256', data, k.node, sigBytes);
    if (!nodeVerify()) throw new Error('node verify');
    out.node = measure(timed(nodeVerify));
    report(`jwt/${alg}/wasm verifyToken`, out.wasm, `${perSec(out.wasm.ns)}/s`);
    report(`jwt/${alg}/wasm open+close (token)`, out.openToken);
    report(`jwt/${alg}/wasm open+close (identity)`, out.openIdentity);
    const net = out.openToken.ns - out.openIdentity.ns;
    console.log(`${`jwt/${alg}/wasm open path, token − identity`.padEnd(44)} ${fmt(net).padStart(10)}  ${perSec(net)}/s`);
    results[`jwt/${alg}/wasm open net`] = { ns: net };
    report(`jwt/${alg}/jose jwtVerify`, out.jose, `${perSec(out.jose.ns)}/s`);
    report(`jwt/${alg}/node:crypto signature only`, out.node, `${perSec(out.node.ns)}/s`);
    e.free();
  }
}

// ---- 3. patterns ----------------------------------------------------------

async function benchPatterns() {
  section('Pattern matching: rollcall (globset in wasm, Engine.matchCount) vs picomatch');
  const picomatch = (await import('picomatch')).default;
  const ids = [];
  for (let n = 0; ids.length < 10_000; n++) {
    ids.push(`deliveryRiders/r${n}`, `deliveryRiders/cyclists/r${n}`, `vessels/v${n}`, `a/b${n}/c/z`, `a/z${n}`);
    ids.push(`room-${n % 10}`, `room-${n}x`, `aircraft/a${n}/z`, `deliveryRiders/r1234`, `a/${n}/z`);
  }
  const cases = ['**', 'deliveryRiders/r1234', 'deliveryRiders/*', 'a/**/z', 'room-?', 'deliveryRiders/r1?3?', '*/r1*'];
  const M = ids.length;
  let boundary = 0;
  for (const pattern of cases) {
    const ours = Engine.matchCount(pattern, ids);
    const isMatch = picomatch(pattern);
    const theirs = () => {
      let c = 0;
      for (let i = 0; i < M; i++) if (isMatch(ids[i])) c++;
      return c;
    };
    if (theirs() !== ours) throw new Error(`${pattern}: rollcall ${ours}, picomatch ${theirs()}`);
    const w = measure(timed(() => Engine.matchCount(pattern, ids)));
    const p = measure(timed(theirs));
    if (pattern === '**') boundary = w.ns / M; // `**` matches without running a glob: the crossing alone
    const r = { ns: w.ns / M, samples: w.samples, ops: w.ops * M };
    report(`pattern/${pattern}/rollcall per id`, r, `net of crossing ${(w.ns / M - boundary).toFixed(1)} ns; ${ours} of ${M} match`);
    results[`pattern/${pattern}/rollcall net`] = { ns: w.ns / M - boundary };
    report(`pattern/${pattern}/picomatch per id`, { ns: p.ns / M, samples: p.samples, ops: p.ops * M });
  }
  // Compiling: a new pattern each time (rollcall compiles per call).
  let k = 0;
  const one = ['x'];
  report('pattern/compile+1 match/rollcall', measure(timed(() => Engine.matchCount(`deliveryRiders/r${k++}?*`, one))));
  report('pattern/compile+1 match/picomatch', measure(timed(() => picomatch(`deliveryRiders/r${k++}?*`)('x'))));
}

// ---- 4. memory, 5. start-up -----------------------------------------------

function memoryChild(n) {
  const wasm = initSync();
  const bytes = () => wasm.memory.buffer.byteLength;
  const before = bytes();
  const e = new Engine({ ...OPTIONS, limits: { ...OPTIONS.limits, maxMembersPerRoom: n } });
  const made = bytes();
  for (let c = 1; c <= n; c++) open(e, c, { clientId: `u${c}` });
  const opened = bytes();
  for (let c = 1; c <= n; c++) send(e, c, '{"op":"room.join","ref":1,"room":"lobby"}');
  const joined = bytes();
  for (let c = 1; c <= n; c++) send(e, c, `{"op":"presence.join","ref":2,"room":"lobby","data":{"n":${c}}}`);
  const members = bytes();
  if (e.counts('lobby').members !== n) throw new Error('members');
  console.log(JSON.stringify({ n, before, made, opened, joined, members }));
}

function benchMemory() {
  section('Memory: wasm linear memory (memory.buffer.byteLength), one fresh process per size');
  const script = fileURLToPath(import.meta.url);
  for (const n of [10_000, 100_000]) {
    const r = spawnSync(process.execPath, [script, '--memory-child', String(n)], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    const m = JSON.parse(r.stdout.trim().split('\n').pop());
    const conn = (m.opened - m.made) / n;
    const room = (m.joined - m.opened) / n;
    const member = (m.members - m.joined) / n;
    results[`memory/${n}`] = { ...m, perConnection: conn, perRoomConnection: room, perMember: member };
    console.log(
      `n=${n}: memory ${(m.before / 2 ** 20).toFixed(2)} MiB at start, engine ${(m.made / 2 ** 20).toFixed(2)}, ` +
        `${(m.opened / 2 ** 20).toFixed(2)} after open, ${(m.joined / 2 ** 20).toFixed(2)} after room.join, ` +
        `${(m.members / 2 ** 20).toFixed(2)} after presence.join`,
    );
    console.log(
      `  per idle connection ${conn.toFixed(0)} B; per room.join ${room.toFixed(0)} B; per presence member ${member.toFixed(0)} B ` +
        `(room.join + presence.join ${(room + member).toFixed(0)} B)`,
    );
  }
}

// ---- 4b. the memory budget at the default limits ---------------------------

/**
 * One adversarial shape per fresh process, at the default limits (only the
 * frame rate and the violation budget lifted): connections store as much as
 * the engine lets them, until every further open is closed with 4013.
 * Reports the wasm memory at that point and the bytes charged
 * (`storedBytes`). The shapes are the ones whose real memory is largest for
 * what they are charged.
 */
const BUDGET_SHAPES = {
  // 16 KB objects, as in issue 10's finding 3 (100 connections).
  objects16k: (i) => [`{"op":"object.create","realm":"r","id":"o/${i}","data":"${'x'.repeat(16 * 1024 - 2)}"}`],
  // Objects with 256-byte ids and no data: the most entries per byte.
  objectIds: (i) => [`{"op":"object.create","realm":"r","id":"${String(i).padStart(256, 'k')}"}`],
  // Each connection joins 100 rooms with distinct 256-byte names.
  rooms: (i) => [`{"op":"room.join","room":"${String(i).padStart(256, 'r')}"}`],
  // Members with 4 KiB of presence data, 10,000 to a room.
  members: (i) => [
    `{"op":"room.join","room":"m${Math.floor(i / 10_000)}"}`,
    `{"op":"presence.join","room":"m${Math.floor(i / 10_000)}","data":"${'p'.repeat(4094)}"}`,
  ],
  // Realm event subscriptions with distinct 12-wildcard globs (the lazy
  // DFA's worst shape), then 50 realm events with varied 256-byte ids,
  // so that every glob is matched against many ids.
  globs: (i) => [`{"op":"realm.subscribe","realm":"r","event":"*","pattern":"*a??????????${i}"}`],
};

function budgetChild(shape) {
  const wasm = initSync();
  const bytes = () => wasm.memory.buffer.byteLength;
  const before = bytes();
  const e = new WasmEngine({ limits: { rate: { burst: U32, perSecond: U32 }, violations: { burst: U32, perSecond: U32 } } });
  const identity = { clientId: 'x', per: { '*': { '**': 'CRUD' } } };
  const perConnection = shape === 'rooms' ? 100 : shape === 'globs' ? 500 : shape === 'members' ? 1 : 1_000;
  let conn = 0;
  let item = 0;
  let stored = 0;
  let refusals = 0;
  for (;;) {
    conn += 1;
    const b = e.open(conn, { identity }, T0);
    if (b.closes.length) break;
    for (let k = 0; k < perConnection; k++) {
      let refused = false;
      for (const frame of BUDGET_SHAPES[shape](item)) {
        const r = e.message(conn, frame, T0);
        if (r.sends.some((x) => x.payload.includes('ENGINE_FULL'))) refused = true;
      }
      item += 1;
      if (refused) {
        refusals += 1;
        break;
      }
    }
    stored = e.storedBytes();
  }
  if (shape === 'globs') {
    // Varied ids through every glob: objects created and updated by connection 1.
    let rnd = 1;
    const id = () => Array.from({ length: 256 }, () => ((rnd = (rnd * 1103515245 + 12345) >>> 0) & 0x10000 ? 'a' : 'b')).join('');
    for (let k = 0; k < 50; k++) e.message(1, `{"op":"realm.publish","realm":"r","event":"e","id":"${id()}"}`, T0);
  }
  console.log(JSON.stringify({ shape, before, after: bytes(), stored, connections: conn - 1, items: item, refusals }));
}

function benchBudget() {
  section('Memory budget: wasm memory when the default budget (maxStoredBytes 64 MiB) is spent');
  const script = fileURLToPath(import.meta.url);
  for (const shape of Object.keys(BUDGET_SHAPES)) {
    const r = spawnSync(process.execPath, [script, '--budget-child', shape], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(r.stderr);
    const m = JSON.parse(r.stdout.trim().split('\n').pop());
    results[`budget/${shape}`] = m;
    console.log(
      `${shape}: ${m.connections} connections, ${m.items} items, charged ${(m.stored / 2 ** 20).toFixed(1)} MiB; ` +
        `wasm memory ${(m.before / 2 ** 20).toFixed(1)} → ${(m.after / 2 ** 20).toFixed(1)} MiB`,
    );
  }
}

function benchStartup() {
  section('Size and start-up');
  const wasmBytes = readFileSync(new URL('pkg/rollcall_wasm_bg.wasm', ROOT));
  const glue = readFileSync(new URL('pkg/rollcall_wasm.js', ROOT));
  const size = { raw: wasmBytes.length, gzip: gzipSync(wasmBytes, { level: 9 }).length, glueRaw: glue.length, glueGzip: gzipSync(glue, { level: 9 }).length };
  results.size = size;
  console.log(`wasm ${size.raw} B raw, ${size.gzip} B gzip -9; glue ${size.glueRaw} B raw, ${size.glueGzip} B gzip -9`);
  const entry = new URL('js/index.node.js', ROOT).href;
  const code =
    `const t0 = performance.now(); const { Engine } = await import(${JSON.stringify(entry)}); ` +
    `const t1 = performance.now(); new Engine(); const t2 = performance.now(); ` +
    `console.log(JSON.stringify({ importMs: t1 - t0, engineMs: t2 - t1, totalMs: t2 - t0, processMs: t2 }))`;
  const runs = [];
  const walls = [];
  const bare = [];
  for (let i = 0; i < 10; i++) {
    let s = now();
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    walls.push(Number(now() - s) / 1e6);
    if (r.status !== 0) throw new Error(r.stderr);
    runs.push(JSON.parse(r.stdout));
    s = now();
    spawnSync(process.execPath, ['--input-type=module', '-e', 'console.log(1)'], { encoding: 'utf8' });
    bare.push(Number(now() - s) / 1e6);
  }
  const m = (k) => median(runs.map((r) => r[k]));
  const startup = { importMs: m('importMs'), engineMs: m('engineMs'), totalMs: m('totalMs'), spawnToExitMs: median(walls), bareNodeMs: median(bare) };
  results.startup = startup;
  console.log(
    `fresh node, median of 10: import → ready Engine ${startup.totalMs.toFixed(1)} ms ` +
      `(import + compile + instantiate ${startup.importMs.toFixed(1)} ms, new Engine() ${startup.engineMs.toFixed(2)} ms); ` +
      `spawn to exit ${startup.spawnToExitMs.toFixed(0)} ms vs ${startup.bareNodeMs.toFixed(0)} ms for a bare node -e`,
  );
  const c = measure(timed(() => new WebAssembly.Module(wasmBytes)), { budgetMs: 1000, minSampleNs: 0 });
  report('startup/WebAssembly.Module compile (warm process)', c);
  report('startup/new Engine() + free (warm process)', measure(timed(() => new Engine().free()), { budgetMs: 1000 }));
}

// ---- 6. scale curves ------------------------------------------------------

/**
 * A room of `members` presence members of which the first `subs` are also
 * presence subscribers (subscribed before anyone joins). Then one more
 * connection is cycled: open + room.join (untimed), presence.join, presence.update
 * and close (each timed). It does not subscribe itself: a subscribe's
 * snapshot of a large room is big garbage that the timed steps would pay for in GC.
 */
function benchScale() {
  section('Scale: join / update / close of one member vs room size');
  const JOIN = '{"op":"presence.join","ref":3,"room":"lobby","data":{"name":"x"}}';
  const UPDATE = '{"op":"presence.update","ref":4,"room":"lobby","data":{"name":"x","s":1}}';
  const runs = [
    // all members subscribed: every step delivers to the whole room
    ...[10, 100, 1_000, 3_000, 10_000].map((n) => ({ members: n, subs: n })),
    // 10 subscribers, the room (and the connection count) grows to 100,000
    ...[10, 1_000, 10_000, 100_000].map((n) => ({ members: n, subs: 10 })),
  ];
  for (const { members, subs } of runs) {
    const s0 = now();
    const e = new Engine({ ...OPTIONS, limits: { ...OPTIONS.limits, maxMembersPerRoom: members + 1 } });
    for (let c = 1; c <= members; c++) {
      open(e, c, { clientId: `u${c}` });
      send(e, c, '{"op":"room.join","ref":1,"room":"lobby"}');
      if (c <= subs) send(e, c, '{"op":"presence.subscribe","ref":2,"room":"lobby"}');
    }
    for (let c = 1; c <= members; c++) send(e, c, `{"op":"presence.join","ref":3,"room":"lobby","data":{"name":"u${c}"}}`);
    const setup = Number(now() - s0);
    let id = members + 1;
    const times = { join: [], update: [], close: [] };
    let recipients;
    const cycle = () => {
      e.open(id, { identity: { clientId: `u${id}` } }, T0);
      e.message(id, '{"op":"room.join","ref":1,"room":"lobby"}', T0);
      let s = now();
      const j = e.message(id, JOIN, T0);
      times.join.push(Number(now() - s));
      s = now();
      e.message(id, UPDATE, T0);
      times.update.push(Number(now() - s));
      s = now();
      e.close(id, T0);
      times.close.push(Number(now() - s));
      recipients = tally(j).widest;
      id++;
    };
    const end = Date.now() + BUDGET_MS;
    for (let i = 0; i < 20; i++) cycle(); // warm-up
    for (const k of Object.keys(times)) times[k] = [];
    while (Date.now() < end || times.join.length < 15) cycle();
    if (e.counts('lobby').members !== members) throw new Error('scale: members');
    const r = { members, subs, recipients, cycles: times.join.length, setupMs: setup / 1e6 };
    for (const k of Object.keys(times)) r[k] = median(times[k]);
    results[`scale/${members}/subs=${subs}`] = r;
    const per = (ns) => `${(ns / recipients).toFixed(1)} ns/rcpt`;
    console.log(
      `members=${String(members).padStart(6)} subs=${String(subs).padStart(6)} recipients=${String(recipients).padStart(6)}: ` +
        `join ${fmt(r.join)} (${per(r.join)}), update ${fmt(r.update)} (${per(r.update)}), close ${fmt(r.close)} (${per(r.close)}); ` +
        `${r.cycles} cycles, set-up ${fmt(setup)}`,
    );
    e.free();
  }
}

// ---- main -----------------------------------------------------------------

const args = process.argv.slice(2);
if (args[0] === '--memory-child') {
  memoryChild(Number(args[1]));
} else if (args[0] === '--budget-child') {
  budgetChild(args[1]);
} else {
  const jsonAt = args.indexOf('--json');
  const jsonOut = jsonAt >= 0 ? args.splice(jsonAt, 2)[1] : null;
  const all = ['fanout', 'providers', 'jwt', 'patterns', 'memory', 'budget', 'startup', 'scale'];
  const chosen = args.length ? args : all;
  for (const a of chosen) if (!all.includes(a)) throw new Error(`unknown section ${a}; one of ${all.join(' ')}`);
  console.log(
    `node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}, budget ${BUDGET_MS} ms per case`,
  );
  const t = Date.now();
  if (chosen.includes('fanout')) {
    benchPresence();
    benchStatus();
  }
  if (chosen.includes('providers')) benchProviders();
  if (chosen.includes('jwt')) await benchJwt();
  if (chosen.includes('patterns')) await benchPatterns();
  if (chosen.includes('memory')) benchMemory();
  if (chosen.includes('budget')) benchBudget();
  if (chosen.includes('startup')) benchStartup();
  if (chosen.includes('scale')) benchScale();
  console.log(`\nload average at the end ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${((Date.now() - t) / 1000).toFixed(0)} s`);
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ loadavg: os.loadavg(), results }, null, 2));
}
