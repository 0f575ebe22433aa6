// Memory of liveness state in the wasm package (docs/BENCHMARKS.md, "Leave
// grace and resume"): what a member in grace holds beyond a live one, and
// what a room's replay buffer holds. Each figure comes from a fresh `node`
// process, as growth of the wasm linear memory (64 KiB pages, never
// shrinking: allocator slack included).
//
//   node bench/liveness.js            # both
//   node bench/liveness.js --child grace N | --child replay ROOMS EVENTS
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Engine } from '../js/index.node.js';
import { initSync } from '../pkg/rollcall_wasm.js';

const T0 = 1_720_865_608_496;
const U32 = 4_294_967_295;
const OPTIONS = { limits: { rate: { burst: U32, perSecond: U32 } }, idleTimeoutMs: 0 };

function checked(batch, what) {
  for (const s of batch.sends) if (s.payload.includes('"type":"error"')) throw new Error(`${what}: ${s.payload}`);
  return batch;
}

/** n members in one room, then all lost (in grace). */
function graceChild(n) {
  const wasm = initSync();
  const bytes = () => wasm.memory.buffer.byteLength;
  const e = new Engine({ ...OPTIONS, limits: { ...OPTIONS.limits, maxMembersPerRoom: n } });
  for (let c = 1; c <= n; c++) {
    e.open(c, { identity: { clientId: `u${c}` } }, T0);
    checked(e.message(c, '{"op":"room.join","room":"lobby"}', T0), 'join');
    checked(e.message(c, `{"op":"presence.join","room":"lobby","data":{"n":${c}}}`, T0), 'enter');
  }
  const live = bytes();
  for (let c = 1; c <= n; c++) e.lost(c, T0 + 1);
  const lost = bytes();
  if (e.counts('lobby').inGrace !== n) throw new Error('not in grace');
  console.log(JSON.stringify({ n, live, lost }));
}

/** `rooms` rooms, each with one member subscribed to it, then `events` updates each. */
function replayChild(rooms, events, replayEvents) {
  const wasm = initSync();
  const bytes = () => wasm.memory.buffer.byteLength;
  const e = new Engine({ ...OPTIONS, replayEvents });
  for (let r = 1; r <= rooms; r++) {
    e.open(r, { identity: { clientId: `u${r}` } }, T0);
    checked(e.message(r, `{"op":"room.join","room":"room-${r}"}`, T0), 'join');
    checked(e.message(r, `{"op":"presence.subscribe","room":"room-${r}"}`, T0), 'subscribe');
    checked(e.message(r, `{"op":"presence.join","room":"room-${r}","data":{"n":0}}`, T0), 'enter');
  }
  const before = bytes();
  for (let k = 1; k <= events; k++) {
    for (let r = 1; r <= rooms; r++) e.message(r, `{"op":"presence.update","room":"room-${r}","data":{"n":${k}}}`, T0);
  }
  console.log(JSON.stringify({ rooms, events, replayEvents, before, after: bytes() }));
}

function child(args) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', ...args.map(String)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const argv = process.argv.slice(2);
if (argv[0] === '--child') {
  const [kind, ...rest] = argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
  if (kind === 'grace') graceChild(rest[0]);
  else replayChild(rest[0], rest[1], rest[2]);
} else {
  for (const n of [10_000, 100_000]) {
    const m = child(['grace', n]);
    console.log(`grace n=${n}: ${(m.live / 2 ** 20).toFixed(2)} MiB live -> ${(m.lost / 2 ** 20).toFixed(2)} MiB all in grace: +${((m.lost - m.live) / n).toFixed(1)} B per member in grace`);
  }
  const rooms = 1000;
  for (const events of [64, 640]) {
    const off = child(['replay', rooms, events, 0]);
    const on = child(['replay', rooms, events, 64]);
    const per = (on.after - on.before - (off.after - off.before)) / rooms;
    console.log(`replay ${rooms} rooms x ${events} updates: buffer of 64 holds ${per.toFixed(0)} B per room (${(per / 64).toFixed(0)} B per kept frame); without a buffer +${((off.after - off.before) / rooms).toFixed(0)} B per room`);
  }
}
