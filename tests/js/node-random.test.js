// A randomized test of rollcall/node with real sockets (issue 10): a seeded
// PRNG drives interleavings of honest clients (opening, some behind slow
// credentials, joining rooms, subscribing, updating, closing gracefully or
// abruptly), raw flooders that ignore the close (some also in a presence
// set, some flooding before their slow credentials resolve, some destroyed
// mid-flood), throwing and rejecting credentials callbacks, bad host
// identities and far-future tokens. Invariants:
//
// - the process lives: no uncaught exception or unhandled rejection;
// - every honest request gets its reply (one ack per ref);
// - every honest subscriber's view (its snapshot plus the join/leave events
//   after it) equals the room's presence set at the end;
// - nothing is left behind: server.connections, engine.connectionCount and
//   the engine's rooms are all empty once every client has gone.
//
// On failure the seed is printed; replay with
//   ROLLCALL_SEED=<seed> node --test tests/js/node-random.test.js
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Engine } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { rawConnect, flood, textFrame } from '../../bench/lib/raw-ws.js';
import { mintToken, TestClient, eventually, queryCredentials as credentials } from './helpers.js';

const SECRET = 'node-random-secret';
const ROOMS = ['r0', 'r1', 'r2'];
const STEPS = 120;

/** mulberry32: a small seeded PRNG. */
function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n) => Math.floor(next() * n), pick: (xs) => xs[Math.floor(next() * xs.length)] };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const token = (sub, exp = Math.floor(Date.now() / 1000) + 600) => mintToken(SECRET, { sub, exp });

/** An honest client: it stays within the rate limit and checks what it is owed. */
class Honest {
  constructor(base, name, room, slowMs) {
    this.name = name;
    this.room = room;
    this.refs = [];
    this.gone = false;
    this.client = new TestClient(`${base}/?${new URLSearchParams({ token: token(name), slowMs })}`);
    // Opened, or gone before it opened (it may be closed while connecting).
    this.opened = new Promise((resolve) => {
      this.client.ws.once('open', resolve);
      this.client.ws.once('close', resolve);
    });
  }

  send(frame) {
    if (this.gone || this.client.ws.readyState !== 1) return;
    const ref = `${this.name}-${this.refs.length}`;
    this.refs.push(ref);
    this.client.ws.send(JSON.stringify({ ...frame, ref }));
  }

  /** Joins its room, subscribes to its presence and enters it (sent at once, queued if credentials are slow). */
  async enter() {
    await this.opened;
    this.send({ op: 'room.join', room: this.room });
    this.send({ op: 'presence.subscribe', room: this.room });
    this.send({ op: 'presence.join', room: this.room, data: { n: this.name } });
  }

  /** The set of presence ids this client believes is in its room. */
  view() {
    const ack = this.client.frames.find((f) => f.type === 'ack' && f.op === 'presence.subscribe');
    if (!ack) return null;
    const ids = new Set(ack.members.map((m) => m.id));
    for (const f of this.client.frames.slice(this.client.frames.indexOf(ack) + 1)) {
      if (f.type !== 'presence' || f.room !== this.room) continue;
      if (f.event === 'join') ids.add(f.id);
      if (f.event === 'leave') ids.delete(f.id);
    }
    return [...ids].sort();
  }

  replied() {
    const replies = new Set(this.client.frames.filter((f) => f.type === 'ack' || f.type === 'error').map((f) => f.ref));
    return this.refs.every((r) => replies.has(r));
  }

  async leave(how) {
    this.gone = true;
    if (how === 'close') {
      await eventually(() => this.replied(), 10_000);
      this.client.ws.close();
    } else if (how === 'destroy' && this.client.ws._socket) this.client.ws._socket.destroy();
    else this.client.ws.terminate();
    await this.client.closed;
  }
}

async function run(seed) {
  const rnd = prng(seed);
  const engine = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] }, leaveGraceMs: 300 });
  const server = attach(engine, { port: 0, host: '127.0.0.1', credentials, connectionRate: null, onError: () => {} });
  await once(server, 'listening');
  const base = `ws://127.0.0.1:${server.address().port}`;
  const honest = [];
  const background = [];
  let n = 0;
  const actions = [
    // [weight, action]
    [6, async () => {
      const h = new Honest(base, `h${n++}`, rnd.pick(ROOMS), rnd.next() < 0.3 ? 1 + rnd.int(80) : 0);
      honest.push(h);
      background.push(h.enter());
    }],
    [6, () => {
      const h = rnd.pick(honest.filter((c) => !c.gone));
      if (!h) return;
      for (let i = 0, k = 1 + rnd.int(3); i < k; i++) {
        h.send(rnd.next() < 0.5 ? { op: 'ping' } : { op: 'presence.update', room: h.room, data: { n: h.name, v: rnd.int(1000) } });
      }
    }],
    [3, () => {
      const h = rnd.pick(honest.filter((c) => !c.gone));
      if (h) background.push(h.leave(rnd.pick(['close', 'terminate', 'destroy'])));
    }],
    [2, () => {
      // A raw flooder, in a presence set first; it ignores the close, and may be destroyed mid-flood.
      const room = rnd.pick(ROOMS);
      const slowMs = rnd.next() < 0.3 ? 50 : 0;
      const destroyAfter = rnd.next() < 0.5 ? rnd.int(200) : null;
      background.push((async () => {
        const { socket, status } = await rawConnect(`${base}/?${new URLSearchParams({ token: token(`f${n++}`), slowMs })}`);
        if (status !== 101) return socket.destroy();
        socket.write(textFrame(JSON.stringify({ op: 'room.join', room })));
        socket.write(textFrame(JSON.stringify({ op: 'presence.join', room })));
        const pump = flood(socket, textFrame('{"op":"ping"}'), 64);
        if (destroyAfter != null) {
          await sleep(destroyAfter);
          pump.stop();
          socket.destroy();
        }
        await socket.gone;
      })());
    }],
    [3, () => {
      const bad = rnd.pick([
        { throw: 'sync' },
        { throw: 'async', slowMs: 20 },
        { identity: JSON.stringify({ clientId: 123 }) },
        { identity: JSON.stringify({ clientId: 'x', rooms: { '**': ['fly'] } }) },
        { identity: JSON.stringify({ clientId: 'x', expiresAt: 'soon' }) },
        { token: mintToken(SECRET, { sub: 'far', exp: Number.MAX_SAFE_INTEGER }) },
      ]);
      const c = new TestClient(`${base}/?${new URLSearchParams(bad)}`);
      background.push(c.closed.then(() => {}));
      // A far-future token may be accepted with a clamped expiry: then it leaves by itself.
      background.push(c.wait((f) => f.type === 'welcome', 5000).then(() => c.ws.close(), () => {}));
    }],
  ];
  const total = actions.reduce((a, [w]) => a + w, 0);
  const pickAction = () => {
    let x = rnd.int(total);
    for (const [w, act] of actions) if ((x -= w) < 0) return act;
  };

  const failures = [];
  const onFailure = (err) => failures.push(err);
  process.on('uncaughtException', onFailure);
  process.on('unhandledRejection', onFailure);
  try {
    for (let step = 0; step < STEPS; step++) {
      await pickAction()();
      await sleep(rnd.int(15));
    }
    await Promise.all(background);
    // Quiescent: every live honest client has every reply it is owed, and its view is the room's set.
    const live = honest.filter((h) => !h.gone);
    await eventually(() => live.every((h) => h.replied()), 10_000).catch(() => {
      const missing = live.filter((h) => !h.replied()).map((h) => h.name);
      throw new Error(`honest clients without every reply: ${missing.join(', ')}`);
    });
    for (const h of live) {
      const members = () => engine.members(h.room).map((m) => m.id).sort();
      await eventually(() => JSON.stringify(h.view()) === JSON.stringify(members()), 5000).catch(() => {
        throw new Error(`${h.name} in ${h.room} sees ${JSON.stringify(h.view())}, the room holds ${JSON.stringify(members())}`);
      });
    }
    await Promise.all(live.map((h) => h.leave('close')));
    await eventually(() => server.connections === 0 && engine.connectionCount === 0 && engine.roomNames.length === 0, 5000).catch(() => {
      throw new Error(`left behind: connections ${server.connections}, engine ${engine.connectionCount}, rooms ${engine.roomNames}`);
    });
    assert.deepEqual(failures, []);
    return { honest: honest.length };
  } finally {
    process.off('uncaughtException', onFailure);
    process.off('unhandledRejection', onFailure);
    for (const h of honest) h.client.ws.terminate();
    await server.close();
  }
}

const seeds = process.env.ROLLCALL_SEED ? [Number(process.env.ROLLCALL_SEED)] : [1, 2, (Math.random() * 2 ** 32) >>> 0];

for (const seed of seeds) {
  test(`random interleavings against rollcall/node (seed ${seed})`, { timeout: 30_000 }, async (t) => {
    try {
      const { honest } = await run(seed);
      t.diagnostic(`seed ${seed}: ${honest} honest clients`);
    } catch (err) {
      console.log(`node-random: failed with seed ${seed}; replay: ROLLCALL_SEED=${seed} node --test tests/js/node-random.test.js`);
      err.message = `seed ${seed}: ${err.message}`;
      throw err;
    }
  });
}
