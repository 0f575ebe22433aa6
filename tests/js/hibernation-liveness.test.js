// Liveness without waking (rollcall/worker under workerd): the SDK's
// application ping `{"op":"ping"}` is answered by the runtime
// (setWebSocketAutoResponse) without reaching the object, and the object's
// alarm sweeps every socket's last auto-answered ping
// (getWebSocketAutoResponseTimestamp) into the engine before its idle
// checks. A socket that stops pinging is closed with 4010 and its member
// leaves after the grace; one that keeps pinging stays, with the object's
// memory dropped (evicted) between every step.
//
//   node --test tests/js/hibernation-liveness.test.js
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, mintToken, startWorker, closeFrame } from './helpers.js';

const SECRET = 'liveness-test-secret';
const IDLE_TIMEOUT_MS = 1000;
const LEAVE_GRACE_MS = 500;
const SWEEP_INTERVAL_MS = 300;
const PING_EVERY_MS = 150;

let mf;
let wsBase;
const clients = [];
const timers = [];

before(async () => {
  ({ mf, wsBase } = await startWorker('./hibernation/worker.js', {
    durableObjects: { PRESENCE: 'Presence' },
    bindings: {
      JWT_SECRET: SECRET,
      IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
      LEAVE_GRACE_MS: String(LEAVE_GRACE_MS),
      SWEEP_INTERVAL_MS: String(SWEEP_INTERVAL_MS),
    },
  }));
});

after(async () => {
  for (const t of timers) clearInterval(t);
  for (const c of clients) c.ws.terminate();
  await mf?.dispose();
});

const tokenFor = (sub) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 600 });

async function member(room, sub, { pings }) {
  const url = new URL(wsBase);
  url.searchParams.set('room', room);
  url.searchParams.set('token', tokenFor(sub));
  const client = await TestClient.connect(url.href);
  clients.push(client);
  client.welcome = await client.wait((f) => f.type === 'welcome');
  for (const frame of [{ op: 'room.join', room }, { op: 'presence.subscribe', room }, { op: 'presence.join', room, data: { sub } }]) {
    assert.equal((await client.request(frame)).type, 'ack');
  }
  // The SDK's ping, exactly as js/client.js sends it.
  if (pings) timers.push(setInterval(() => client.ws.readyState === 1 && client.ws.send('{"op":"ping"}'), PING_EVERY_MS));
  return client;
}

async function route(path, room, method = 'GET') {
  const url = new URL(path, 'http://localhost');
  url.searchParams.set('room', room);
  const res = await mf.dispatchFetch(url, { method });
  assert.equal(res.status, 200);
  return res.json();
}

const evict = (room) => route('/__evict', room, 'POST');
const state = (room) => route('/__state', room);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('a silent socket is closed (4010) and leaves after the grace; a pinging one stays, across evictions', { timeout: 30_000 }, async () => {
  const room = 'live';
  const watcher = await member(room, 'watcher', { pings: true });
  const pinger = await member(room, 'pinger', { pings: true });
  const silent = await member(room, 'silent', { pings: false });
  const before = (await state(room)).messages;

  // The runtime answers the ping with the engine's own ack, byte for byte.
  await pinger.wait((f) => f.type === 'ack' && f.op === 'ping' && f.ref == null);

  // Evicted between steps: the alarm's sweep still sees the pings.
  const opened = Date.now();
  await evict(room);
  const closed = await closeFrame(silent, IDLE_TIMEOUT_MS + 2 * SWEEP_INTERVAL_MS + 4000);
  assert.deepEqual(closed, { code: 4010, reason: 'STALE' });
  assert.ok(Date.now() - opened >= IDLE_TIMEOUT_MS - SWEEP_INTERVAL_MS, 'not before its idle time-out');
  await evict(room);
  const leave = await watcher.wait((f) => f.type === 'presence' && f.event === 'leave', 5000);
  assert.equal(leave.clientId, 'silent');

  // Several idle periods later, with evictions in between, the pingers are
  // still members and nobody else left.
  for (let i = 0; i < 4; i++) {
    await sleep(IDLE_TIMEOUT_MS / 2);
    await evict(room);
  }
  const s = await state(room);
  assert.deepEqual(s.members.map((m) => m.clientId).sort(), ['pinger', 'watcher']);
  assert.deepEqual(s.counts, { connections: 2, members: 2, clients: 2, inGrace: 0 });
  assert.equal(pinger.ws.readyState, 1);
  const leaves = watcher.frames.filter((f) => f.type === 'presence' && f.event === 'leave');
  assert.deepEqual(leaves.map((f) => f.clientId), ['silent']);
  // Dozens of pings were sent; none of them reached the object.
  const pings = pinger.frames.filter((f) => f.type === 'ack' && f.op === 'ping').length;
  assert.ok(pings >= 10, `pings answered: ${pings}`);
  assert.equal(s.messages, before, 'auto-answered pings do not wake the object');
  // The sweep needs the alarm: it is set while connections may go idle.
  assert.ok(s.alarm != null);
});
