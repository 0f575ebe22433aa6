// Cluster mode on a real redis-server: three rollcall nodes, each its own
// OS process (tests/js/cluster/node.js: rollcall/node + rollcall/redis),
// real clients on different nodes. Short heartbeats (500 ms, dead after
// 2 500 ms: a bound of 3 000 ms) keep it fast; waits are event-driven with
// generous time-outs, for slow CI machines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '../../js/client.node.js';
import { once } from 'node:events';
import { Engine } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { CLUSTER_DEFAULTS, healBoundMs, joinCluster } from '../../js/cluster.js';
import { TestClient, eventually } from './helpers.js';
import { startRedis } from './redis-server.js';
import { startProxy } from './proxy.js';
import { startNode, clusterToken } from './cluster/harness.js';

const HEARTBEAT = 500;
const DEAD_AFTER = 2500;
/** Lost connections keep their place for 15 s (the default), for a resume on another node. */
const NODE_OPTIONS = { heartbeatMs: HEARTBEAT, deadAfterMs: DEAD_AFTER, leaveGraceMs: 15_000 };
const BOUND = healBoundMs({ heartbeatMs: HEARTBEAT, deadAfterMs: DEAD_AFTER });
/** Slack over the bound for a loaded machine (process scheduling, Redis round trips). */
const SLACK = 7000;

let redis;
const nodes = [];
const clients = [];
const sockets = [];

before(async () => {
  redis = await startRedis();
  for (const name of ['n1', 'n2', 'n3']) nodes.push(await startNode(name, redis.url, NODE_OPTIONS));
});

after(async () => {
  for (const c of clients) c.close();
  for (const s of sockets) s.ws.terminate();
  await Promise.all(nodes.map((n) => n.kill()));
  await redis?.stop();
});

/** A raw client on `node` as `sub` (frames recorded), welcomed; `claims` adds `per` / `dpv`. */
async function raw(node, sub, claims) {
  const c = await TestClient.connect(`${node.url}/?token=${clusterToken(sub, claims)}`);
  sockets.push(c);
  await c.wait((f) => f.type === 'welcome', 10_000);
  return c;
}

/** An SDK client on `node` as `sub`. */
async function sdk(node, sub) {
  const c = new Client({ url: node.url, token: clusterToken(sub), minDelayMs: 50, maxDelayMs: 200 });
  clients.push(c);
  await c.connect();
  return c;
}

/** An SDK watcher of `room` on `node`: every presence event it delivers, as [event, clientId, data]. */
async function watch(node, room) {
  const c = await sdk(node, `watcher-${node.node}`);
  const events = [];
  await (await c.join(room)).presence.subscribe((e) => events.push([e.event, e.clientId, e.data]));
  return events;
}

/** Polls an async `check` until it resolves truthy. */
async function until(check, ms) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ids = (view) => view.members.map((m) => m.id).sort();
const presence = (c, room) => c.frames.filter((f) => f.type === 'presence' && f.room === room);

test('the heal bound is deadAfterMs + heartbeatMs: 20 s with the defaults', () => {
  assert.equal(CLUSTER_DEFAULTS.heartbeatMs, 5000);
  assert.equal(CLUSTER_DEFAULTS.deadAfterMs, 15_000);
  assert.equal(healBoundMs(), 20_000);
  assert.equal(BOUND, 3000);
});

test('joinCluster takes a redis:// URL, and refuses a bad node name', async () => {
  const engine = new Engine({ cluster: { node: 'in-process' } });
  const server = attach(engine, { port: 0, host: '127.0.0.1' });
  await once(server, 'listening');
  await assert.rejects(joinCluster(server, { redis: redis.url, node: 'bad:name' }), TypeError);
  const cluster = await joinCluster(server, { redis: redis.url, node: 'in-process' });
  assert.equal(cluster.node, 'in-process');
  await cluster.close();
});

test('one presence set across three nodes; every event reaches every node once, in one order', async () => {
  const room = 'lobby';
  const watchers = [];
  for (const node of nodes) {
    const w = await raw(node, `w-${node.node}`);
    await w.request({ op: 'room.join', room });
    const ack = await w.request({ op: 'presence.subscribe', room });
    assert.deepEqual(ack.members, []);
    watchers.push(w);
  }
  // Members on every node, two devices of one clientId on two nodes.
  const members = [];
  for (const [i, sub] of [[0, 'alice'], [1, 'bob'], [2, 'carol'], [1, 'alice']]) {
    const c = await raw(nodes[i], sub);
    await c.request({ op: 'room.join', room });
    members.push(c);
  }
  // Concurrent writes from all nodes: Redis orders them.
  await Promise.all(members.map((c, i) => c.request({ op: 'presence.join', room, data: { n: i } })));
  await Promise.all(members.map((c, i) => c.request({ op: 'presence.update', room, data: { n: i + 10 } })));
  await members[2].request({ op: 'presence.leave', room });
  const total = 4 + 4 + 1;
  for (const w of watchers) await eventually(() => presence(w, room).length >= total, 15_000);
  const seen = watchers.map((w) => presence(w, room).map((f) => [f.seq, f.event, f.id, JSON.stringify(f.data)]));
  assert.deepEqual(seen[1], seen[0], 'n2 saw what n1 saw, in the same order');
  assert.deepEqual(seen[2], seen[0], 'n3 saw what n1 saw, in the same order');
  assert.deepEqual(seen[0].map((e) => e[0]), Array.from({ length: total }, (_, i) => i + 1), 'seq 1..9, no gap, no duplicate');
  assert.equal(new Set(watchers.map((w) => presence(w, room)[0].epoch)).size, 1, 'one epoch everywhere');
  // The same set on every node, and the same per-client view.
  const views = await Promise.all(nodes.map((n) => n.view(room)));
  assert.equal(views[0].members.length, 3);
  for (const v of views) assert.deepEqual(ids(v), ids(views[0]));
  for (const v of views) {
    const alice = v.clients.find((c) => c.clientId === 'alice');
    assert.equal(alice.connections.length, 2, 'alice holds two devices, on two nodes');
  }
  // A newcomer's snapshot on any node holds the same set at the same seq.
  const late = await raw(nodes[2], 'late');
  await late.request({ op: 'room.join', room });
  const get = await late.request({ op: 'presence.get', room });
  assert.deepEqual(get.members.map((m) => m.id).sort(), ids(views[0]));
  assert.equal(get.seq, total);
  // Client view: alice's first device in and last device out, across nodes.
  const cw = await raw(nodes[0], 'client-watcher');
  await cw.request({ op: 'room.join', room });
  await cw.request({ op: 'presence.subscribe', room, view: 'client' });
  members[0].ws.close();
  await eventually(() => presence(watchers[0], room).length >= total + 1, 15_000);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(presence(cw, room), [], 'alice is still present on n2: no client-view leave');
  members[3].ws.close();
  const leave = await cw.wait((f) => f.type === 'presence' && f.event === 'leave', 15_000);
  assert.equal(leave.clientId, 'alice');
});

test('room events published on one node reach their subscribers on every node, once', async () => {
  const room = 'chat';
  const listeners = [];
  const deaf = [];
  for (const node of nodes) {
    const l = await raw(node, `l-${node.node}`);
    await l.request({ op: 'room.join', room });
    await l.request({ op: 'subscribe', room, event: 'said' });
    listeners.push(l);
    const d = await raw(node, `d-${node.node}`);
    await d.request({ op: 'room.join', room });
    deaf.push(d);
  }
  const ack = await listeners[1].request({ op: 'publish', room, event: 'said', data: { text: 'hi' } });
  assert.equal(ack.recipients, 1, 'the recipients on its own node');
  for (const l of listeners) {
    const m = await l.wait((f) => f.type === 'message' && f.event === 'said', 15_000);
    assert.deepEqual([m.data, m.from.clientId], [{ text: 'hi' }, 'l-n2']);
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const l of listeners) assert.equal(l.frames.filter((f) => f.type === 'message').length, 1);
  for (const d of deaf) assert.equal(d.frames.filter((f) => f.type === 'message').length, 0);
});

const objectFrames = (c) => c.frames.filter((f) => f.type === 'object').map((f) => [f.event, f.object.id, f.object.connectionStatus, JSON.stringify(f.object.data)]);
const statusEvents = (c) => c.frames.filter((f) => f.type === 'event' && f.event === 'connectionStatusChanged').map((f) => [f.id, f.data.connectionStatus]);

test('objects, providers and realm events across nodes, with the same permission filtering', async () => {
  const realm = 'fleet';
  // A reader of everything on n1, a reader of van/1 only on n3.
  const reader = await raw(nodes[0], 'reader', { per: { [realm]: { '**': 'R' } } });
  const partial = await raw(nodes[2], 'partial', { per: { [realm]: { 'van/1': 'R' } } });
  for (const c of [reader, partial]) {
    assert.deepEqual((await c.request({ op: 'object.subscribe', realm })).objects, []);
    await c.request({ op: 'realm.subscribe', realm, event: 'connectionStatusChanged' });
    await c.request({ op: 'realm.subscribe', realm, event: 'moved' });
  }
  // Objects written on n2.
  const writer = await raw(nodes[1], 'writer', { per: { [realm]: { '**': 'CRUD' } } });
  await writer.request({ op: 'object.create', realm, id: 'van/1', data: { km: 1 } });
  await writer.request({ op: 'object.create', realm, id: 'van/2', data: { km: 2 } });
  await eventually(() => objectFrames(reader).length === 2, 15_000);
  await eventually(() => objectFrames(partial).length === 1, 15_000);
  assert.deepEqual(objectFrames(reader), [['create', 'van/1', 'disconnected', '{"km":1}'], ['create', 'van/2', 'disconnected', '{"km":2}']]);
  assert.deepEqual(objectFrames(partial), [['create', 'van/1', 'disconnected', '{"km":1}']]);
  // A creator on n2 whose create the store already ordered (and n2 applied) sees it as on one node.
  await until(async () => (await writer.request({ op: 'object.get', realm, id: 'van/1' })).type === 'ack', 15_000);
  const dup = await writer.request({ op: 'object.create', realm, id: 'van/1', data: {} });
  assert.equal(dup.code, 'OBJECT_EXISTS');
  // A data provider on n3 turns both connected for readers on every node.
  const provider = await raw(nodes[2], 'vans', { dpv: { [realm]: ['van/*'] } });
  await eventually(() => statusEvents(reader).length === 2, 15_000);
  await eventually(() => statusEvents(partial).length === 1, 15_000);
  assert.deepEqual(statusEvents(reader).sort(), [['van/1', 'connected'], ['van/2', 'connected']]);
  assert.deepEqual(statusEvents(partial), [['van/1', 'connected']]);
  const got = await reader.request({ op: 'object.get', realm, id: 'van/2' });
  assert.deepEqual([got.object.connectionStatus, got.object.data], ['connected', { km: 2 }]);
  const list = await (await raw(nodes[1], 'lister', { per: { [realm]: { '**': 'R' } } })).request({ op: 'object.list', realm });
  assert.deepEqual(list.objects.map((o) => [o.id, o.connectionStatus]), [['van/1', 'connected'], ['van/2', 'connected']]);
  // A second provider of the same objects on n1 changes nothing; its going changes nothing either.
  const second = await raw(nodes[0], 'vans-2', { dpv: { [realm]: ['van/1'] } });
  second.ws.close();
  // Realm events from n2 reach readers on n1 and n3 by their read rights.
  await writer.request({ op: 'realm.publish', realm, event: 'moved', id: 'van/1', data: { to: 'depot' } });
  await writer.request({ op: 'realm.publish', realm, event: 'moved', id: 'van/2', data: { to: 'port' } });
  const moved = (c) => c.frames.filter((f) => f.type === 'event' && f.event === 'moved').map((f) => [f.id, f.data.to, f.from.clientId]);
  await eventually(() => moved(reader).length === 2, 15_000);
  await eventually(() => moved(partial).length === 1, 15_000);
  // Update and delete from n2; the provider leaves n3: disconnected everywhere.
  await writer.request({ op: 'object.update', realm, id: 'van/1', data: { km: 10 } });
  await writer.request({ op: 'object.delete', realm, id: 'van/2' });
  // Acked on n2, applied when Redis ordered them: the provider goes after.
  await eventually(() => objectFrames(reader).some(([event]) => event === 'delete'), 15_000);
  await eventually(() => objectFrames(partial).some(([event]) => event === 'update'), 15_000);
  provider.ws.close();
  await eventually(() => statusEvents(reader).length === 3, 15_000);
  await eventually(() => statusEvents(partial).length === 2, 15_000);
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(moved(reader), [['van/1', 'depot', 'writer'], ['van/2', 'port', 'writer']]);
  assert.deepEqual(moved(partial), [['van/1', 'depot', 'writer']]);
  assert.deepEqual(objectFrames(reader), [
    ['create', 'van/1', 'disconnected', '{"km":1}'],
    ['create', 'van/2', 'disconnected', '{"km":2}'],
    ['status', 'van/1', 'connected', '{"km":1}'],
    ['status', 'van/2', 'connected', '{"km":2}'],
    ['update', 'van/1', 'connected', '{"km":10}'],
    ['delete', 'van/2', 'connected', '{"km":2}'],
    ['status', 'van/1', 'disconnected', '{"km":10}'],
  ]);
  assert.deepEqual(objectFrames(partial), [
    ['create', 'van/1', 'disconnected', '{"km":1}'],
    ['status', 'van/1', 'connected', '{"km":1}'],
    ['update', 'van/1', 'connected', '{"km":10}'],
    ['status', 'van/1', 'disconnected', '{"km":10}'],
  ]);
  assert.deepEqual(statusEvents(reader).slice(2), [['van/1', 'disconnected']], 'van/2 was deleted before its provider went');
  // Every node holds the same objects.
  const late = await raw(nodes[2], 'late', { per: { [realm]: { '**': 'R' } } });
  assert.deepEqual((await late.request({ op: 'object.list', realm })).objects.map((o) => [o.id, o.data, o.connectionStatus]), [['van/1', { km: 10 }, 'disconnected']]);
});

test('Redis restarted (its state lost) mid-run: no ghost, no duplicate, subscribers resync', async () => {
  const room = 'restart';
  const watchers = [];
  for (const node of nodes) watchers.push(await watch(node, room));
  const stays = [];
  for (const [i, sub] of [[0, 'ann'], [1, 'ben'], [2, 'cat']]) {
    const c = await sdk(nodes[i], sub);
    const r = await c.join(room);
    await r.presence.join({ sub });
    stays.push(c);
  }
  const goes = await sdk(nodes[1], 'dan');
  await (await goes.join(room)).presence.join({ sub: 'dan' });
  for (const w of watchers) await eventually(() => w.length === 4, 15_000);
  // Objects and a provider, read on every node.
  const per = { per: { [room]: { '**': 'CRUD' } } };
  const readers = [];
  for (const node of nodes) {
    const r = await raw(node, `restart-reader-${node.node}`, per);
    await r.request({ op: 'object.subscribe', realm: room });
    readers.push(r);
  }
  await readers[0].request({ op: 'object.create', realm: room, id: 'kept', data: { v: 1 } });
  await readers[1].request({ op: 'object.create', realm: room, id: 'bulb' });
  for (const r of readers) await eventually(() => objectFrames(r).length === 2, 15_000);
  await raw(nodes[2], 'bulb', { dpv: { [room]: ['bulb'] } });
  for (const r of readers) await eventually(() => objectFrames(r).length === 3, 15_000);
  const healed = nodes.map((n) => n.events.filter((e) => e.event === 'healed').length);

  await redis.restart();
  // While Redis was away, dan left: his leave could not be written.
  goes.close();
  // Every node notices (reconnect, or a heartbeat Redis does not know),
  // re-asserts its own members and re-reads its rooms.
  await eventually(() => nodes.every((n, i) => n.events.filter((e) => e.event === 'healed').length > healed[i]), 20_000);
  for (const w of watchers) await eventually(() => w.some(([event, who]) => event === 'leave' && who === 'dan'), 20_000);
  await until(async () => {
    const views = await Promise.all(nodes.map((n) => n.view(room)));
    return views.every((v) => v.members.length === 3);
  }, 20_000);
  await new Promise((r) => setTimeout(r, 1000));
  for (const w of watchers) {
    const joins = w.filter(([event]) => event === 'join').map(([, who]) => who);
    assert.deepEqual(joins.sort(), ['ann', 'ben', 'cat', 'dan'], 'nobody joined twice');
    assert.deepEqual(w.filter(([event]) => event === 'leave').map(([, who]) => who), ['dan'], 'only dan left: no storm');
  }
  const views = await Promise.all(nodes.map((n) => n.view(room)));
  for (const v of views) assert.deepEqual(v.members.map((m) => m.clientId).sort(), ['ann', 'ben', 'cat'], 'no ghost');
  // Objects were re-asserted: the same on every node, and no event about them.
  for (const r of readers) {
    // The creates came from two nodes: Redis ordered them, the same way for every node.
    assert.deepEqual(objectFrames(r), objectFrames(readers[0]));
    const seen = objectFrames(r).map(([event, id, status]) => [event, id, status]);
    assert.deepEqual(seen.slice(0, 2).sort(), [['create', 'bulb', 'disconnected'], ['create', 'kept', 'disconnected']]);
    assert.deepEqual(seen.slice(2), [['status', 'bulb', 'connected']]);
    const list = await r.request({ op: 'object.list', realm: room });
    assert.deepEqual(list.objects.map((o) => [o.id, o.connectionStatus]), [['bulb', 'connected'], ['kept', 'disconnected']]);
  }
  // Writes go on in the new epoch.
  await (await stays[0].join(room)).presence.update({ sub: 'ann', again: true });
  for (const w of watchers) await eventually(() => w.some(([event, , data]) => event === 'update' && data?.again), 15_000);
  for (const c of stays) c.close();
});

test('a node cut off from Redis for a while heals: one resync, the set and the objects as they are, no ghost', async () => {
  const room = 'blip';
  const per = { per: { [room]: { '**': 'CRUD' } } };
  const proxy = await startProxy(redis.port);
  const cut = await startNode('cut', `redis://127.0.0.1:${proxy.port}`, NODE_OPTIONS);
  try {
    // An object that another node deletes while this one is cut off.
    const writer = await raw(nodes[0], 'blip-writer', per);
    await writer.request({ op: 'object.create', realm: room, id: 'doomed' });
    await until(async () => (await writer.request({ op: 'object.get', realm: room, id: 'doomed' })).type === 'ack', 15_000);
    const watcher = await raw(cut, 'blip-watcher', per);
    await until(async () => (await watcher.request({ op: 'object.get', realm: room, id: 'doomed' })).type === 'ack', 15_000);
    await watcher.request({ op: 'room.join', room });
    await watcher.request({ op: 'presence.subscribe', room });
    await watcher.request({ op: 'object.subscribe', realm: room });
    // Its node's first read of the room (in Redis's epoch) comes as a resync.
    const resyncs = () => watcher.frames.filter((f) => f.type === 'resync' && f.room === room);
    await eventually(() => resyncs().length === 1, 15_000);
    const stays = await sdk(nodes[0], 'stays');
    await (await stays.join(room)).presence.join(null);
    const early = await sdk(nodes[1], 'early');
    await (await early.join(room)).presence.join(null);
    await eventually(() => presence(watcher, room).length === 2, 15_000);
    // The node's Redis links are reset, and new ones refused, for 1 s
    // (less than deadAfterMs: it is not reaped). Meanwhile the room changes.
    proxy.cut();
    proxy.refuse(true);
    early.close();
    const late = await sdk(nodes[1], 'late');
    await (await late.join(room)).presence.join(null);
    await writer.request({ op: 'object.create', realm: room, id: 'made-while-cut', data: { v: 1 } });
    await writer.request({ op: 'object.delete', realm: room, id: 'doomed' });
    await new Promise((r) => setTimeout(r, 1000));
    proxy.refuse(false);
    // It reconnects, re-reads the room: its subscriber gets one resync with the set as it is now.
    await eventually(() => resyncs().length === 2, 15_000);
    const resync = resyncs()[1];
    assert.deepEqual(resync.members.map((m) => m.clientId).sort(), ['late', 'stays']);
    assert.deepEqual(presence(watcher, room).map((f) => [f.event, f.clientId]), [['join', 'stays'], ['join', 'early']], 'no leave or join storm');
    // What changed meanwhile comes as a create and a delete when the node
    // re-reads the realm; its copy did not bring the deleted object back.
    await eventually(() => objectFrames(watcher).length === 2, 15_000);
    assert.deepEqual(objectFrames(watcher).map(([event, id]) => [event, id]).sort(), [['create', 'made-while-cut'], ['delete', 'doomed']]);
    await new Promise((r) => setTimeout(r, 1000));
    for (const node of [cut, ...nodes]) {
      const reader = await raw(node, `blip-reader-${node.node}`, per);
      const list = await reader.request({ op: 'object.list', realm: room });
      assert.deepEqual(list.objects.map((o) => o.id), ['made-while-cut'], `the objects on ${node.node}`);
    }
    // And it follows the room again, with the others.
    const views = await Promise.all([cut, nodes[0]].map((n) => n.view(room)));
    assert.deepEqual(ids(views[0]), ids(views[1]), 'the same set as another node');
    late.close();
    await watcher.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'late', 15_000);
    stays.close();
  } finally {
    await cut.kill();
    await proxy.close();
  }
});

test('a node whose Redis links go silent resets them within a heartbeat and heals, before anyone reaps it', async () => {
  const room = 'silent';
  const proxy = await startProxy(redis.port);
  const mute = await startNode('mute', `redis://127.0.0.1:${proxy.port}`, NODE_OPTIONS);
  try {
    const watcher = await raw(mute, 'silent-watcher');
    await watcher.request({ op: 'room.join', room });
    await watcher.request({ op: 'presence.subscribe', room });
    const resyncs = () => watcher.frames.filter((f) => f.type === 'resync' && f.room === room);
    await eventually(() => resyncs().length === 1, 15_000);
    const member = await sdk(mute, 'on-mute');
    await (await member.join(room)).presence.join(null);
    const before = await sdk(nodes[0], 'before');
    await (await before.join(room)).presence.join(null);
    await eventually(() => presence(watcher, room).length === 2, 15_000);
    // Its links stop moving bytes, and stay open: no error, no close.
    proxy.silence();
    before.close();
    const during = await sdk(nodes[0], 'during');
    await (await during.join(room)).presence.join(null);
    // Within heartbeatMs + redisTimeoutMs it resets them, reconnects and re-reads the room.
    await eventually(() => resyncs().length === 2, 15_000);
    assert.deepEqual(resyncs()[1].members.map((m) => m.clientId).sort(), ['during', 'on-mute']);
    assert.ok(mute.events.some((e) => e.event === 'error' && /did not answer/.test(e.message)), 'reported');
    // Nobody reaped it: its member never left anywhere.
    await new Promise((r) => setTimeout(r, DEAD_AFTER));
    const reaped = nodes.flatMap((n) => n.events.filter((e) => e.event === 'reaped' && e.node === 'mute'));
    assert.deepEqual(reaped, []);
    const view = await nodes[0].view(room);
    assert.deepEqual(view.members.map((m) => m.clientId).sort(), ['during', 'on-mute']);
    assert.deepEqual(ids(await mute.view(room)), ids(view));
    member.close();
    during.close();
  } finally {
    await mute.kill();
    await proxy.close();
  }
});

test('a client resumes on another node within its grace: zero events at observers', async () => {
  const room = 'resume';
  const observers = [];
  for (const node of nodes) {
    const o = await raw(node, `o-${node.node}`);
    await o.request({ op: 'room.join', room });
    await o.request({ op: 'presence.subscribe', room });
    observers.push(o);
  }
  const phone = await raw(nodes[0], 'rita');
  const { resumeToken, id } = phone.frames.find((f) => f.type === 'welcome');
  await phone.request({ op: 'room.join', room });
  await phone.request({ op: 'presence.subscribe', room });
  await phone.request({ op: 'presence.join', room, data: { on: 'phone' } });
  // Each observer learns of her by a join, or (when its node's first
  // snapshot of the room came after the join was ordered) by a resync.
  const knowsRita = (f) =>
    (f.type === 'presence' && f.event === 'join') || (f.type === 'resync' && f.members.some((m) => m.clientId === 'rita'));
  for (const o of observers) await o.wait(knowsRita, 15_000);
  const seen = observers.map((o) => presence(o, room).length);
  phone.ws.terminate(); // no close frame: lost, in grace on n1
  // In grace on n1, and marked so on every node (with no event).
  for (const node of nodes) await until(async () => (await node.view(room)).members.some((m) => m.inGrace), 15_000);
  // Back through another node (a load balancer picked n2).
  const laptop = await raw(nodes[1], 'rita');
  const ack = await laptop.request({ op: 'resume', token: resumeToken });
  assert.equal(ack.type, 'ack', JSON.stringify([ack, nodes.map((n) => n.events.filter((e) => e.event === 'error'))]));
  assert.equal(ack.id, id, 'the same member id');
  await new Promise((r) => setTimeout(r, 500));
  observers.forEach((o, i) => assert.equal(presence(o, room).length, seen[i], `no event at the observer on ${nodes[i].node}`));
  const views = await Promise.all(nodes.map((n) => n.view(room)));
  for (const v of views) assert.deepEqual(v.members.map((m) => [m.id, m.clientId, m.data, m.inGrace ?? false]), [[id, 'rita', { on: 'phone' }, false]]);
  assert.equal(views[1].members[0].connection != null, true, 'n2 holds her now');
  assert.equal(views[0].members[0].connection, null, 'n1 shows her as another node\'s');
  // Later changes come from n2, once each, and her grace on n1 never ends in a leave.
  await laptop.request({ op: 'presence.update', room, data: { on: 'laptop' } });
  laptop.ws.close();
  for (const o of observers) await o.wait((f) => f.type === 'presence' && f.event === 'leave', 15_000);
  observers.forEach((o, i) => {
    assert.deepEqual(presence(o, room).slice(seen[i]).map((f) => f.event), ['update', 'leave']);
  });
});

test('a graceful shutdown leaves at once, on every node', async () => {
  const room = 'graceful';
  const w1 = await watch(nodes[0], room);
  const leaving = await sdk(nodes[2], 'gus');
  await (await leaving.join(room)).presence.join(null);
  const reader = await raw(nodes[0], 'graceful-reader', { per: { [room]: { '**': 'CRUD' } } });
  await reader.request({ op: 'object.subscribe', realm: room });
  await reader.request({ op: 'realm.subscribe', realm: room, event: 'connectionStatusChanged' });
  await reader.request({ op: 'object.create', realm: room, id: 'gus-phone' });
  // Acked at once, applied once Redis ordered it: then its provider comes.
  await eventually(() => objectFrames(reader).length === 1, 15_000);
  await raw(nodes[2], 'gus-phone', { dpv: { [room]: ['gus-*'] } });
  await eventually(() => statusEvents(reader).length === 1, 15_000);
  await eventually(() => w1.length === 1, 15_000);
  await nodes[2].close();
  await eventually(() => w1.some(([event]) => event === 'leave'), 15_000);
  await eventually(() => statusEvents(reader).length === 2, 15_000);
  assert.deepEqual(statusEvents(reader), [['gus-phone', 'connected'], ['gus-phone', 'disconnected']]);
  assert.deepEqual(w1, [['join', 'gus', null], ['leave', 'gus', null]]);
  // Its own leave, not a reaper's: the node left the cluster, nobody reaps it.
  await new Promise((r) => setTimeout(r, DEAD_AFTER + 2 * HEARTBEAT));
  const reaped = nodes.slice(0, 2).flatMap((n) => n.events.filter((e) => e.event === 'reaped' && e.node === 'n3'));
  assert.deepEqual(reaped, []);
  nodes[2] = await startNode('n3', redis.url, NODE_OPTIONS);
});

test('SIGKILL of a node: exactly one leave per lost member everywhere, within the bound', async () => {
  const room = 'kill';
  const w1 = await watch(nodes[0], room);
  const w2 = await watch(nodes[1], room);
  for (const sub of ['kim', 'kai']) {
    const c = await sdk(nodes[2], sub);
    await (await c.join(room)).presence.join({ sub });
  }
  const survivor = await sdk(nodes[1], 'sam');
  await (await survivor.join(room)).presence.join({ sub: 'sam' });
  // An object whose only provider is on the node that dies, read on the others.
  const per = { per: { [room]: { '**': 'CRUD' } } };
  const readers = [await raw(nodes[0], 'kill-reader-1', per), await raw(nodes[1], 'kill-reader-2', per)];
  for (const r of readers) await r.request({ op: 'object.subscribe', realm: room });
  await readers[0].request({ op: 'object.create', realm: room, id: 'truck' });
  for (const r of readers) await eventually(() => objectFrames(r).length === 1, 15_000);
  await raw(nodes[2], 'truck', { dpv: { [room]: ['truck'] } });
  const statuses = (c) => objectFrames(c).filter(([event]) => event === 'status').map(([, , status]) => status);
  for (const r of readers) await eventually(() => statuses(r).length === 1, 15_000);
  for (const w of [w1, w2]) await eventually(() => w.length === 3, 15_000);
  const t0 = Date.now();
  await nodes[2].kill();
  for (const w of [w1, w2]) await eventually(() => w.filter(([e]) => e === 'leave').length === 2, BOUND + SLACK);
  for (const r of readers) await eventually(() => statuses(r).length === 2, BOUND + SLACK);
  const healedIn = Date.now() - t0;
  assert.ok(healedIn <= BOUND + SLACK, `healed in ${healedIn} ms`);
  // Wait past another round of reapers: nothing more.
  await new Promise((r) => setTimeout(r, 2 * HEARTBEAT + 500));
  for (const w of [w1, w2]) {
    assert.deepEqual(w.filter(([e]) => e === 'leave').map(([, who]) => who).sort(), ['kai', 'kim'], 'one leave per lost member');
  }
  for (const r of readers) assert.deepEqual(statuses(r), ['connected', 'disconnected'], 'its objects turned disconnected once');
  const reaped = nodes.slice(0, 2).flatMap((n) => n.events.filter((e) => e.event === 'reaped' && e.node === 'n3'));
  assert.equal(reaped.reduce((n, e) => n + e.members, 0), 2, 'reaped once, by one survivor');
  for (const n of nodes.slice(0, 2)) assert.deepEqual((await n.view(room)).members.map((m) => m.clientId), ['sam']);
});

test('a node that joins the cluster holds every realm\'s objects once it has joined', async () => {
  const realm = 'joiners';
  const per = { per: { [realm]: { '**': 'CRUD' } } };
  const writer = await raw(nodes[0], 'joiners-writer', per);
  for (const id of ['a', 'b']) await writer.request({ op: 'object.create', realm, id, data: { id } });
  await until(async () => (await writer.request({ op: 'object.list', realm })).objects.length === 2, 15_000);
  // Its Redis is 100 ms away each way: reading the realms takes a while.
  const proxy = await startProxy(redis.port);
  proxy.delay(100);
  const fresh = await startNode('fresh', `redis://127.0.0.1:${proxy.port}`, { ...NODE_OPTIONS, heartbeatMs: 5000 });
  try {
    // No wait: startNode resolves once joinCluster has.
    const reader = await raw(fresh, 'joiners-reader', per);
    const list = await reader.request({ op: 'object.list', realm });
    assert.deepEqual(list.objects.map((o) => [o.id, o.data]), [['a', { id: 'a' }], ['b', { id: 'b' }]]);
  } finally {
    await fresh.kill();
    await proxy.close();
  }
});

test('a node restarted under the same name removes its previous life\'s members at once', async () => {
  const room = 'reborn';
  const w = await watch(nodes[0], room);
  let n4 = await startNode('n4', redis.url, NODE_OPTIONS);
  const c = await sdk(n4, 'old-life');
  await (await c.join(room)).presence.join(null);
  await eventually(() => w.length === 1, 15_000);
  await n4.kill();
  c.close();
  n4 = await startNode('n4', redis.url, NODE_OPTIONS);
  nodes.push(n4); // stopped by after()
  await eventually(() => w.some(([e]) => e === 'leave'), 15_000);
  // Nobody else would ever reap n4: it beats again under the same name.
  assert.deepEqual(w, [['join', 'old-life', null], ['leave', 'old-life', null]]);
});
