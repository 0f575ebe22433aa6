// Coalesced presence delivery (`presence.flushIntervalMs`) through the SDK
// against a real rollcall/node server on 127.0.0.1: batches reach presence
// listeners one event at a time, in order, with the SDK's seq tracking
// unchanged; a member's fast updates coalesce instead of closing it; a room
// the options leave at 0 behaves as before. A raw WebSocket watcher beside
// the SDK shows what went over the wire.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { WebSocketServer } from 'ws';
import { Engine } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { Client } from '../../js/client.node.js';
import { mintToken, eventually, TestClient } from './helpers.js';

const SECRET = 'coalesce-test-secret';
// Long enough that a burst sent at once lands in one window on a slow machine.
const FLUSH_MS = 300;
let server;
let url;
const clients = [];

const token = (sub) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 600 });

async function connected(sub) {
  const c = new Client({ url, token: token(sub), minDelayMs: 20, maxDelayMs: 100 });
  clients.push(c);
  await c.connect();
  return c;
}

/** A raw socket subscribed to `room`'s presence; its frames are in `.frames`. */
async function rawWatcher(room) {
  const w = await TestClient.connect(`${url}/?token=${token('raw-watcher')}`);
  clients.push({ close: () => w.ws.close() });
  await w.request({ op: 'room.join', room });
  await w.request({ op: 'presence.subscribe', room });
  return w;
}

/** Presence events in frames, batches unpacked. */
const unpacked = (frames) => frames.flatMap((f) => (f.type === 'batch' ? f.events : f.type === 'presence' ? [f] : []));

before(async () => {
  const engine = new Engine({
    auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] },
    presence: { flushIntervalMs: FLUSH_MS, rooms: [{ pattern: 'plain/**', flushIntervalMs: 0 }] },
  });
  server = attach(engine, { port: 0, host: '127.0.0.1' });
  await once(server, 'listening');
  url = `ws://127.0.0.1:${server.address().port}`;
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

after(async () => {
  await server.close();
});

test('a window reaches SDK listeners one event at a time, in order, with seq tracking unchanged', async () => {
  const alice = await connected('alice');
  const bob = await connected('bob');
  const carol = await connected('carol');
  const watched = await alice.join('doc');
  const seen = [];
  await watched.presence.subscribe((e) => seen.push([e.event, e.clientId, e.data]));
  const raw = await rawWatcher('doc');

  const bobRoom = await bob.join('doc');
  const carolRoom = await carol.join('doc');
  // One burst: bob joins and updates 20 times, carol comes and goes.
  const acks = [bobRoom.presence.join({ n: 0 })];
  for (let n = 1; n <= 20; n++) acks.push(bobRoom.presence.update({ n }));
  await carolRoom.presence.join('c');
  await carolRoom.presence.leave(); // the SDK sends a leave only once present
  await Promise.all(acks);

  await eventually(() => seen.some(([event, who]) => event === 'leave' && who === 'carol'), 10_000);
  await eventually(() => JSON.stringify(watched.presence.members.map((m) => m.data)) === JSON.stringify([{ n: 20 }]), 10_000);

  // Over the wire: fewer events than changes (the updates collapsed), and
  // at least one batch frame.
  const wire = unpacked(raw.frames);
  assert.ok(raw.frames.some((f) => f.type === 'batch'), JSON.stringify(raw.frames));
  assert.ok(wire.length < 23, `${wire.length} events for 23 changes`);
  // The SDK saw exactly what went over the wire, one by one, in seq order.
  assert.deepEqual(
    seen,
    wire.map((e) => [e.event, e.clientId, e.data]),
  );
  const seqs = wire.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(watched._s.seq, seqs.at(-1), 'the SDK tracks the seq of the last event of a batch');
  // Joins before updates before carol's leave; bob's data only moves forward.
  const bobData = seen.filter(([, who]) => who === 'bob').map(([, , d]) => d.n);
  assert.equal(seen.find(([, who]) => who === 'bob')[0], 'join');
  assert.deepEqual(bobData, [...bobData].sort((a, b) => a - b));
  assert.equal(bobData.at(-1), 20);
  const carolEvents = seen.filter(([, who]) => who === 'carol').map(([event]) => event);
  assert.deepEqual(carolEvents, ['join', 'leave'], 'a join and leave in one window are both delivered');
  assert.deepEqual(server.engine.members('doc').map((m) => m.data), [{ n: 20 }]);
});

test('updates far over the frame rate limit coalesce; the connection stays open', async () => {
  const bob = await connected('bob');
  const alice = await connected('alice');
  const seen = [];
  await (await alice.join('cursor')).presence.subscribe((e) => seen.push(e));
  const room = await bob.join('cursor');
  await room.presence.join({ x: 0 });
  // 400 at once: the default limit is a burst of 100, then 50 a second.
  const acks = [];
  for (let x = 1; x <= 400; x++) acks.push(room.presence.update({ x }));
  await Promise.all(acks);
  assert.equal(bob.connectionStatus, 'connected');
  await eventually(() => seen.at(-1)?.data?.x === 400, 10_000);
  assert.ok(seen.length < 100, `${seen.length} events delivered for 401 changes`);
});

test('a room whose pattern sets 0 sends every event at once, as before', async () => {
  const bob = await connected('bob');
  const raw = await rawWatcher('plain/room');
  const room = await bob.join('plain/room');
  await room.presence.join({ n: 0 });
  for (let n = 1; n <= 5; n++) await room.presence.update({ n });
  await eventually(() => raw.frames.filter((f) => f.type === 'presence').length === 6);
  assert.ok(!raw.frames.some((f) => f.type === 'batch'));
});

test('with permessage-deflate, the adapter writes behind a message ws is still compressing', async () => {
  // ws compresses asynchronously: a message the host sent itself may still
  // be in progress when the engine's frames are due; they must go out
  // behind it (through ws), not past it, and stay text frames.
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: { threshold: 0 } });
  await once(wss, 'listening');
  const deflating = attach(new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] } }), { wss });
  try {
    const connected = once(wss, 'connection');
    const watcher = await TestClient.connect(`ws://127.0.0.1:${wss.address().port}/?token=${token('watcher')}`);
    clients.push({ close: () => watcher.ws.close() });
    const [serverSocket] = await connected;
    assert.match(serverSocket.extensions, /permessage-deflate/);
    const binary = [];
    watcher.ws.on('message', (data, isBinary) => isBinary && binary.push(String(data)));
    await watcher.request({ op: 'room.join', room: 'z' });
    await watcher.request({ op: 'subscribe', room: 'z', event: 'e' });
    for (let i = 0; i < 30; i++) {
      serverSocket.send(JSON.stringify({ type: 'note', i })); // compressed, asynchronously
      deflating.publish('z', 'e', { i }); // the engine's frame, due at once
    }
    await eventually(() => watcher.frames.filter((f) => f.type === 'message').length === 30, 10_000);
    const order = watcher.frames.filter((f) => f.type === 'note' || f.type === 'message').map((f) => `${f.type}${f.i ?? f.data.i}`);
    assert.deepEqual(order, [...Array(30).keys()].flatMap((i) => [`note${i}`, `message${i}`]));
    assert.deepEqual(binary, [], 'every frame is a text frame');
  } finally {
    await deflating.close();
    await new Promise((resolve) => wss.close(resolve));
  }
});
