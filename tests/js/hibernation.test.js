// rollcall/worker under workerd: a Durable Object with the WebSocket
// Hibernation API (tests/js/hibernation/worker.js) behind Miniflare, real
// `ws` clients, and the object's in-memory engine thrown away between
// events (the test-only POST /__evict route calls RollcallDurableObject#evict,
// which drops the engine exactly as hibernation drops the object's memory).
// After every eviction the next event imports the engine from its change
// records (storage, and each socket's attachment) and reconciles it with
// ctx.getWebSockets(); the clients must not
// notice: no member lost, no ghost, no duplicate event, object status kept,
// deadlines still fired by the alarm. All in one Miniflare instance.
//
//   node --test tests/js/hibernation.test.js
//
// workerd (locally) sends the close frame of a hibernatable socket at once
// but, when the object closes the socket outside that socket's own event
// (from alarm() or fetch()), tears the TCP connection down only ~10 s later;
// `ws` emits 'close' only then. So server-side closes are observed when the
// close frame arrives (closeFrame() in helpers.js), not by waiting for 'close'.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TestClient, mintToken, eventually, startWorker, closeFrame } from './helpers.js';

const SECRET = 'hibernation-test-secret';
const AUTH_TIMEOUT_MS = 500;
/** A dropped socket (1006) is in grace this long before its member leaves. */
const LEAVE_GRACE_MS = 400;
/** Presence frames kept per room for resumes: a room's record holds them. */
const REPLAY_EVENTS = 8;

let mf;
let wsBase;
const clients = [];

before(async () => {
  ({ mf, wsBase } = await startWorker('./hibernation/worker.js', {
    durableObjects: { PRESENCE: 'Presence' },
    bindings: {
      JWT_SECRET: SECRET,
      AUTH_TIMEOUT_MS: String(AUTH_TIMEOUT_MS),
      LEAVE_GRACE_MS: String(LEAVE_GRACE_MS),
      SWEEP_INTERVAL_MS: '50',
      REPLAY_EVENTS: String(REPLAY_EVENTS),
    },
  }));
});

after(async () => {
  for (const c of clients) c.ws.terminate();
  await mf?.dispose();
});

const tokenFor = (sub, claims = {}) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 600, ...claims });

/** Opens a socket to the object of `room`; with a token, waits for the welcome. */
async function connect(room, token) {
  const url = new URL(wsBase);
  url.searchParams.set('room', room);
  if (token) url.searchParams.set('token', token);
  const client = await TestClient.connect(url.href);
  clients.push(client);
  if (token) client.welcome = await client.wait((f) => f.type === 'welcome');
  return client;
}

async function ok(client, frame) {
  const reply = await client.request(frame);
  assert.equal(reply.type, 'ack', `${frame.op} refused: ${JSON.stringify(reply)}`);
  return reply;
}

/** A member of `room`'s presence set with `data`. */
async function member(room, sub, data) {
  const client = await connect(room, tokenFor(sub));
  await ok(client, { op: 'room.join', room });
  await ok(client, { op: 'presence.join', room, data });
  return client;
}

/** POSTs to a test-only route of the object of `params.room`. */
async function post(path, params) {
  const url = new URL(path, 'http://localhost');
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, String(v));
  const res = await mf.dispatchFetch(url, { method: 'POST' });
  assert.equal(res.status, 200);
  return res.json();
}

/** Drops the object's in-memory engine (test-only route). */
const evict = (room, params = {}) => post('/__evict', { room, ...params });

/** The engine's view of `room` (test-only route; it loads the engine, so it is an event). */
async function state(room, realm) {
  const url = new URL('http://localhost/__state');
  url.searchParams.set('room', room);
  if (realm) url.searchParams.set('realm', realm);
  return (await mf.dispatchFetch(url)).json();
}

/**
 * A round trip: every frame the object sent this client before the ping's
 * ack has arrived by then (one object, one ordered socket).
 */
const barrier = (client) => ok(client, { op: 'ping' });

const presenceOf = (client, event, clientId) =>
  client.frames.filter((f) => f.type === 'presence' && f.event === event && (clientId == null || f.clientId === clientId));

const view = (members) => members.map(({ id, clientId, data }) => ({ id, clientId, data }));

test('presence across evictions: no member lost, no duplicate, no ghost', { timeout: 15_000 }, async () => {
  const room = 'lobby';
  const watcher = await connect(room, tokenFor('watcher'));
  await ok(watcher, { op: 'room.join', room });
  assert.deepEqual((await ok(watcher, { op: 'presence.subscribe', room })).members, []);

  const alice = await member(room, 'alice', { n: 'A' });
  const bob = await member(room, 'bob', { n: 'B' });
  const carol = await member(room, 'carol', { n: 'C' });
  const dan = await member(room, 'dan', { n: 'D' });
  await barrier(watcher);
  assert.deepEqual(presenceOf(watcher, 'join').map((f) => f.clientId), ['alice', 'bob', 'carol', 'dan']);
  const before = (await ok(watcher, { op: 'presence.get', room })).members;
  assert.equal(before.length, 4);

  // No member lost: the presence set and the connections survive one eviction...
  await evict(room);
  assert.deepEqual((await ok(watcher, { op: 'presence.get', room })).members, before);
  // ...and several in a row (state() loads the engine in between).
  for (let i = 0; i < 3; i++) {
    await evict(room);
    const s = await state(room);
    assert.deepEqual(view(s.members), before);
    assert.deepEqual(s.counts, { connections: 5, members: 4, clients: 4, inGrace: 0 });
    assert.equal(s.connectionIds.length, 5);
  }
  await evict(room);
  await evict(room);

  // No duplicate: an update after the evictions reaches the subscriber once,
  // and nobody is joined again.
  await ok(alice, { op: 'presence.update', room, data: { n: 'A2' } });
  await evict(room);
  await ok(bob, { op: 'presence.update', room, data: { n: 'B2' } });
  await barrier(watcher);
  assert.deepEqual(presenceOf(watcher, 'update').map((f) => [f.clientId, f.data]), [['alice', { n: 'A2' }], ['bob', { n: 'B2' }]]);
  assert.equal(presenceOf(watcher, 'join').length, 4);
  assert.equal(presenceOf(watcher, 'leave').length, 0);
  // The clients themselves got no second welcome.
  for (const c of [watcher, alice, bob, carol, dan]) assert.equal(c.frames.filter((f) => f.type === 'welcome').length, 1);

  // No ghost, a socket dropped after the eviction: the others see it leave.
  await evict(room);
  alice.ws.terminate();
  await watcher.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'alice');

  // Dropped while evicted (evict, then close before any other event): its
  // close event is the next event, and it leaves.
  await evict(room);
  bob.ws.terminate();
  await watcher.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'bob');

  // Closed, then evicted at once (the close may be handled before or after).
  carol.ws.terminate();
  await evict(room);
  await evict(room);
  const members = (await ok(watcher, { op: 'presence.get', room })).members;
  await watcher.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'carol');
  assert.ok(!members.some((m) => m.clientId === 'alice' || m.clientId === 'bob'));

  // A socket closed on the server side, outside the engine, while the
  // object is evicted: the client's answering close wakes the object, which
  // finds the socket gone (the reconciliation) or handles the close event.
  const danId = Number(dan.welcome.id.split(':')[1]);
  await evict(room, { drop: danId });
  assert.deepEqual((await closeFrame(dan)).code, 1000);
  // Gone while the object slept, for a reason it cannot know: lost, so it
  // leaves when its grace ends.
  await watcher.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'dan');
  assert.deepEqual((await ok(watcher, { op: 'presence.get', room })).members, []);

  // A close the object never heard of (its close and error events are
  // dropped by the test worker): the engine still holds the connection until
  // the object is evicted. Its record lived beside its socket, and the
  // runtime no longer lists the socket: the next load does not know it at
  // all (no ghost in the engine), but nobody was told it left. workerd
  // delivers close events to hibernated objects, so only a lost event
  // leads here (a known limit, README "Durable Objects").
  const frank = await member(room, 'frank', { n: 'F' });
  await post('/__deaf', { room, on: 1 });
  frank.ws.terminate();
  const frankId = Number(frank.welcome.id.split(':')[1]);
  const frankSocketGone = async () => {
    const s = await state(room);
    return s.attachments.every((a, i) => a.id !== frankId || s.readyStates[i] !== 1);
  };
  for (let i = 0; !(await frankSocketGone()); i++) {
    assert.ok(i < 100, 'the socket closes');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok((await state(room)).connectionIds.includes(frankId), 'the engine did not hear of the close');
  await evict(room);
  await post('/__deaf', { room, on: 0 });
  assert.ok(!(await ok(watcher, { op: 'presence.get', room })).members.some((m) => m.clientId === 'frank'));

  // Exactly one leave each, and the engine holds the watcher alone.
  await barrier(watcher);
  assert.deepEqual(presenceOf(watcher, 'leave').map((f) => f.clientId).sort(), ['alice', 'bob', 'carol', 'dan']);
  assert.equal(presenceOf(watcher, 'join').length, 5);
  const s = await state(room);
  assert.deepEqual(s.counts, { connections: 1, members: 0, clients: 0, inGrace: 0 });
  assert.equal(s.connectionIds.length, 1);
  assert.equal(s.attachments.length, 1);

  // Connection ids are not reused after evictions.
  const eve = await member(room, 'eve', null);
  const used = [watcher, alice, bob, carol, dan, frank].map((c) => c.welcome.id);
  assert.ok(!used.includes(eve.welcome.id), `${eve.welcome.id} reused`);
  await watcher.wait((f) => f.type === 'presence' && f.event === 'join' && f.clientId === 'eve');
  await evict(room);
  eve.ws.terminate();
  await watcher.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'eve');
  await barrier(watcher);
  assert.equal(presenceOf(watcher, 'leave', 'eve').length, 1);
  assert.equal(presenceOf(watcher, 'join', 'eve').length, 1);
});

test('object connectionStatus survives evictions', { timeout: 15_000 }, async () => {
  const room = 'fleet';
  const realm = 'london';
  const id = 'riders/john';
  const dispatcher = await connect(room, tokenFor('dispatch', { per: { [realm]: { 'riders/*': 'R' } } }));
  await ok(dispatcher, { op: 'realm.subscribe', realm, event: 'connectionStatusChanged', pattern: 'riders/*' });
  assert.deepEqual((await ok(dispatcher, { op: 'object.subscribe', realm, pattern: 'riders/*' })).objects, []);

  const johnToken = tokenFor('john', { per: { [realm]: { 'riders/*': 'R', [id]: 'CU' } }, dpv: { [realm]: [id] } });
  const john = await connect(room, johnToken);
  await ok(john, { op: 'object.create', realm, id, data: { lat: 1 } });
  await dispatcher.wait((f) => f.type === 'object' && f.event === 'create');

  // The provider is still connected after evictions.
  await evict(room);
  assert.equal((await ok(dispatcher, { op: 'object.get', realm, id })).object.connectionStatus, 'connected');
  await evict(room);
  await evict(room);
  assert.deepEqual((await state(room, realm)).objects.map((o) => [o.id, o.connectionStatus]), [[id, 'connected']]);

  // An update after an eviction arrives once.
  await evict(room);
  await ok(john, { op: 'object.update', realm, id, data: { lat: 2 } });
  await barrier(dispatcher);
  const updates = dispatcher.frames.filter((f) => f.type === 'object' && f.event === 'update');
  assert.deepEqual(updates.map((f) => f.object), [{ id, data: { lat: 2 }, connectionStatus: 'connected' }]);

  // The provider drops after an eviction: disconnected, one status frame,
  // one connectionStatusChanged.
  await evict(room);
  john.ws.terminate();
  await dispatcher.wait((f) => f.type === 'event' && f.event === 'connectionStatusChanged');
  await evict(room);
  assert.equal((await ok(dispatcher, { op: 'object.get', realm, id })).object.connectionStatus, 'disconnected');
  await barrier(dispatcher);
  const changes = dispatcher.frames.filter((f) => f.type === 'event' && f.event === 'connectionStatusChanged');
  assert.deepEqual(changes.map((f) => [f.id, f.data]), [[id, { connectionStatus: 'disconnected' }]]);
  const statuses = dispatcher.frames.filter((f) => f.type === 'object' && f.event === 'status');
  assert.deepEqual(statuses.map((f) => f.object.connectionStatus), ['disconnected']);

  // He comes back while the object is evicted: connected again, once.
  await evict(room);
  const again = await connect(room, johnToken);
  await dispatcher.wait((f) => f.type === 'event' && f.data?.connectionStatus === 'connected');
  await evict(room);
  await barrier(dispatcher);
  assert.equal(dispatcher.frames.filter((f) => f.type === 'event' && f.event === 'connectionStatusChanged').length, 2);
  assert.deepEqual((await state(room, realm)).objects.map((o) => [o.id, o.connectionStatus, o.data]), [[id, 'connected', { lat: 2 }]]);
  again.ws.terminate();
  dispatcher.ws.terminate();
});

test('deadlines fire after evictions, from the alarm', { timeout: 15_000 }, async () => {
  const room = 'deadlines';
  const watcher = await connect(room, tokenFor('watcher'));
  await ok(watcher, { op: 'room.join', room });
  await ok(watcher, { op: 'presence.subscribe', room });

  // Auth timeout: a socket without credentials, the object evicted right away
  // (and again): closed with 4003 once authTimeoutMs has passed.
  const opened = Date.now();
  const silent = await connect(room);
  await evict(room);
  assert.ok((await state(room)).alarm != null, 'an alarm is set for the auth deadline');
  await evict(room);
  const timedOut = await closeFrame(silent, 3000);
  assert.deepEqual(timedOut, { code: 4003, reason: 'AUTH_TIMEOUT' });
  assert.ok(Date.now() - opened >= AUTH_TIMEOUT_MS - 50, 'not before the deadline');

  // A pending connection survives an eviction: its auth frame still works
  // and replaces the auth deadline.
  const late = await connect(room);
  await evict(room);
  const ack = await late.request({ op: 'auth', token: tokenFor('late') });
  assert.equal(ack.type, 'ack', JSON.stringify(ack));
  assert.equal(late.frames.filter((f) => f.type === 'welcome').length, 1);

  // Token expiry: exp a second or two ahead (leewayMs 0): closed with 4002,
  // after several evictions, and the watcher sees it leave exactly once.
  const exp = Math.floor(Date.now() / 1000) + 2;
  const brief = await connect(room, mintToken(SECRET, { sub: 'brief', exp }));
  assert.equal(brief.welcome.expiresAt, exp * 1000);
  await ok(brief, { op: 'room.join', room });
  await ok(brief, { op: 'presence.join', room, data: null });
  await evict(room);
  await evict(room);
  await evict(room);
  assert.equal((await state(room)).alarm, exp * 1000);
  await evict(room);
  const expired = await closeFrame(brief, 4000);
  assert.deepEqual(expired, { code: 4002, reason: 'TOKEN_EXPIRED' });
  assert.ok(Date.now() >= exp * 1000);
  await watcher.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'brief');

  // `late` authenticated in time: not closed by the old auth deadline.
  await barrier(late);
  assert.equal(late.ws.readyState, 1);
  await barrier(watcher);
  assert.equal(presenceOf(watcher, 'leave', 'brief').length, 1);
  const s = await state(room);
  assert.equal(s.connectionIds.length, 2); // watcher and late
  late.ws.terminate();
  watcher.ws.terminate();
});

test('storage wiped: live sockets come back from their attachments alone', { timeout: 15_000 }, async () => {
  // forget=1 deletes all storage before evicting: every live connection's
  // record is beside its socket, so each comes back as it was.
  const room = 'lagging';
  const alice = await connect(room, tokenFor('alice'));
  const bob = await connect(room, tokenFor('bob'));
  await ok(bob, { op: 'room.join', room });
  // Bob refreshes his token: no presence any more. His attachment follows.
  const refreshed = tokenFor('bob', { rooms: { [room]: ['subscribe'] } });
  await ok(bob, { op: 'auth', token: refreshed });
  await evict(room, { forget: 1 });
  // Still authenticated as alice: presence works without a new auth.
  await ok(alice, { op: 'room.join', room });
  await ok(alice, { op: 'presence.join', room, data: 1 });
  const members = (await ok(alice, { op: 'presence.get', room })).members;
  assert.deepEqual(view(members), [{ id: alice.welcome.id, clientId: 'alice', data: 1 }]);
  // No second welcome for the re-opened connections.
  for (const c of [alice, bob]) {
    await barrier(c);
    assert.equal(c.frames.filter((f) => f.type === 'welcome').length, 1);
  }
  // Bob comes back with the refreshed identity, not the first one.
  await ok(bob, { op: 'room.join', room });
  assert.equal((await bob.request({ op: 'presence.join', room, data: 2 })).code, 'FORBIDDEN');
  const s = await state(room);
  assert.deepEqual(s.connectionIds, [alice, bob].map((c) => Number(c.welcome.id.split(':')[1])));
  // A new connection gets a fresh id.
  const carol = await connect(room, tokenFor('carol'));
  assert.ok(![alice, bob].some((c) => c.welcome.id === carol.welcome.id));
  for (const c of [alice, bob, carol]) c.ws.terminate();
});

const connKeys = (s) => s.storageKeys.filter((k) => k.startsWith('rc:c:'));

test('storage is written per change: presence lives in attachments, rooms and objects one key each', { timeout: 20_000 }, async () => {
  const perUpdate = [];
  for (const n of [3, 12]) {
    const room = `sized-${n}`;
    const watcher = await connect(room, tokenFor('watcher'));
    await ok(watcher, { op: 'room.join', room });
    await ok(watcher, { op: 'presence.subscribe', room });
    const members = [];
    for (let i = 0; i < n; i++) members.push(await member(room, `m${i}`, { i }));
    let s = await state(room, null);
    // No live connection is in storage: meta and the room's seq record only.
    assert.deepEqual(s.storageKeys.sort(), ['rc:meta', `rc:r:${room}`]);
    assert.ok(s.attachments.every((a) => a.record instanceof Object), 'every socket carries its record');
    // Steady state: the room's replay buffer (REPLAY_EVENTS frames) is full.
    for (let k = 0; k < REPLAY_EVENTS; k++) await ok(members[k % n], { op: 'presence.update', room, data: { i: k } });
    await fetchState(room, true);
    await ok(members[0], { op: 'presence.update', room, data: { i: 'moved' } });
    s = await fetchState(room, true);
    perUpdate.push(s.stats);
    for (const c of [watcher, ...members]) c.ws.terminate();
  }
  // One key per update (the room's seq and replay), whatever the room size;
  // the member's own record went to its socket's attachment.
  for (const stats of perUpdate) {
    assert.equal(stats.puts, 1, JSON.stringify(stats));
    assert.equal(stats.deletes, 0);
    assert.equal(stats.attachments, 1);
  }
  assert.ok(perUpdate[1].bytes <= perUpdate[0].bytes * 1.2, `bytes flat in N: ${JSON.stringify(perUpdate)}`);

  // Objects: one key each, deleted with the object; large ones too.
  const room = 'bulky';
  const realm = 'r';
  const writer = await connect(room, tokenFor('writer', { per: { [realm]: { '**': 'CRUD' } } }));
  const blob = 'x'.repeat(15_000);
  const ids = ['o1', 'o2', 'o3'];
  for (const id of ids) await ok(writer, { op: 'object.create', realm, id, data: { id, blob } });
  let s = await state(room, realm);
  assert.deepEqual(s.storageKeys.filter((k) => k.startsWith('rc:o:')).sort(), ids.map((id) => `rc:o:${realm}\n${id}`));
  await evict(room);
  await evict(room);
  const list = await ok(writer, { op: 'object.list', realm });
  assert.deepEqual(list.objects.map((o) => [o.id, o.data.blob.length]), ids.map((id) => [id, 15_000]));
  writer.ws.send(Buffer.from(JSON.stringify({ op: 'ping', ref: 'binary' })));
  assert.equal((await writer.wait((f) => f.ref === 'binary')).type, 'ack');
  await ok(writer, { op: 'object.delete', realm, id: 'o2' });
  s = await state(room, realm);
  assert.deepEqual(s.storageKeys.filter((k) => k.startsWith('rc:o:')).sort(), [`rc:o:${realm}\no1`, `rc:o:${realm}\no3`]);
  await evict(room);
  assert.deepEqual((await ok(writer, { op: 'object.list', realm })).objects.map((o) => o.id), ['o1', 'o3']);

  // A record too large for an attachment (16 KiB) is stored under its key,
  // and comes back from there; when it shrinks it moves back beside its socket.
  const big = 'y'.repeat(3_900);
  const rooms = ['b1', 'b2', 'b3', 'b4', 'b5'];
  const heavy = await connect(room, tokenFor('heavy'));
  for (const r of rooms) {
    await ok(heavy, { op: 'room.join', room: r });
    await ok(heavy, { op: 'presence.join', room: r, data: big });
  }
  const heavyKey = `rc:c:${heavy.welcome.id.split(':')[1]}`;
  s = await state(room);
  assert.ok(connKeys(s).includes(heavyKey), `stored: ${s.storageKeys}`);
  await evict(room);
  await evict(room);
  const back = await ok(heavy, { op: 'presence.get', room: 'b5' });
  assert.deepEqual(back.members.map((m) => m.data.length), [3_900]);
  for (const r of rooms.slice(1)) await ok(heavy, { op: 'room.leave', room: r });
  await ok(heavy, { op: 'presence.update', room: 'b1', data: 'small' });
  s = await state(room);
  assert.ok(!connKeys(s).includes(heavyKey), `moved back to the attachment: ${s.storageKeys}`);
  await evict(room);
  assert.deepEqual((await ok(heavy, { op: 'presence.get', room: 'b1' })).members.map((m) => [m.clientId, m.data]), [['heavy', 'small']]);
  writer.ws.terminate();
  heavy.ws.terminate();
});

/** Polls an async condition until it holds. */
async function until(check, ms = 3000) {
  const end = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < end, 'condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The state route, with `reset` zeroing the write counters after reading them. */
async function fetchState(room, reset) {
  const url = new URL('http://localhost/__state');
  url.searchParams.set('room', room);
  if (reset) url.searchParams.set('reset', '1');
  return (await mf.dispatchFetch(url)).json();
}

test('grace across hibernation: a dropped member stays through evictions, leaves once, and a resume takes it back', { timeout: 20_000 }, async () => {
  const room = 'graceful';
  const watcher = await connect(room, tokenFor('watcher'));
  await ok(watcher, { op: 'room.join', room });
  await ok(watcher, { op: 'presence.subscribe', room });
  const ann = await member(room, 'ann', { a: 1 });
  const annId = Number(ann.welcome.id.split(':')[1]);
  ann.ws.terminate(); // 1006: lost, in grace
  await until(async () => (await state(room)).counts.inGrace === 1);
  let s = await state(room);
  assert.ok(connKeys(s).includes(`rc:c:${annId}`), 'a lost connection is stored (no socket)');
  await evict(room);
  await evict(room);
  s = await state(room);
  assert.deepEqual(s.counts, { connections: 2, members: 1, clients: 1, inGrace: 1 });
  await watcher.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'ann', 5000);
  await evict(room);
  await barrier(watcher);
  assert.equal(presenceOf(watcher, 'leave', 'ann').length, 1);
  s = await state(room);
  assert.deepEqual(s.counts, { connections: 1, members: 0, clients: 0, inGrace: 0 });
  assert.deepEqual(connKeys(s), [], 'its record is deleted with it');

  // Resume across evictions: the resume secret and tokens survive.
  const bea = await member(room, 'bea', { b: 1 });
  bea.ws.terminate();
  await until(async () => (await state(room)).counts.inGrace === 1);
  await evict(room);
  const again = await connect(room, tokenFor('bea'));
  await evict(room);
  const resumed = await ok(again, { op: 'resume', token: bea.welcome.resumeToken, epoch: bea.welcome.epoch });
  assert.equal(resumed.id, bea.welcome.id);
  await evict(room);
  await barrier(watcher);
  assert.equal(presenceOf(watcher, 'leave', 'bea').length, 0, 'no leave');
  assert.equal(presenceOf(watcher, 'join', 'bea').length, 1, 'no second join');
  assert.deepEqual((await state(room)).counts, { connections: 2, members: 1, clients: 1, inGrace: 0 });
  again.ws.terminate();
  watcher.ws.terminate();
});

test('an object stored by the whole-snapshot host is migrated: same presence, records written, old keys gone', { timeout: 15_000 }, async () => {
  const room = 'legacy';
  const watcher = await connect(room, tokenFor('watcher'));
  await ok(watcher, { op: 'room.join', room });
  await ok(watcher, { op: 'presence.subscribe', room });
  const ann = await member(room, 'ann', { a: 1 });
  const before = (await ok(watcher, { op: 'presence.get', room })).members;
  await post('/__legacy', { room });
  // The next event loads the old snapshot and writes the new layout.
  assert.deepEqual((await ok(watcher, { op: 'presence.get', room })).members, before);
  let s = await state(room);
  assert.ok(!s.storageKeys.some((k) => k.startsWith('rollcall:')), `old keys gone: ${s.storageKeys}`);
  assert.ok(s.storageKeys.includes('rc:meta') && s.storageKeys.includes(`rc:r:${room}`), `${s.storageKeys}`);
  assert.ok(s.attachments.every((a) => a.record instanceof Object), 'records beside the sockets');
  await evict(room);
  await ok(ann, { op: 'presence.update', room, data: { a: 2 } });
  const update = await watcher.wait((f) => f.type === 'presence' && f.event === 'update');
  assert.deepEqual(update.data, { a: 2 });
  s = await state(room);
  assert.deepEqual(view(s.members), [{ id: ann.welcome.id, clientId: 'ann', data: { a: 2 } }]);
  for (const c of [watcher, ann]) {
    await barrier(c);
    assert.equal(c.frames.filter((f) => f.type === 'welcome').length, 1);
  }
  const carol = await connect(room, tokenFor('carol'));
  assert.ok(![watcher, ann].some((c) => c.welcome.id === carol.welcome.id), 'ids not reused');
  for (const c of [watcher, ann, carol]) c.ws.terminate();
});

/** Calls an RPC method on the object of `room` through its stub, from the Worker. */
async function rpc(room, method, ...args) {
  const url = new URL('http://localhost/__rpc');
  url.searchParams.set('room', room);
  url.searchParams.set('method', method);
  const res = await mf.dispatchFetch(url, { method: 'POST', body: JSON.stringify(args) });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).result;
}

test('RPC methods on the Durable Object stub: counts, members, object, publish', { timeout: 15_000 }, async () => {
  const room = 'rpc';
  const watcher = await connect(room, tokenFor('watcher', { per: { london: { '**': 'CRUD' } } }));
  await ok(watcher, { op: 'room.join', room });
  await ok(watcher, { op: 'subscribe', room, event: 'news' });
  await ok(watcher, { op: 'object.create', realm: 'london', id: 'vans/1', data: { v: 1 } });
  const ann = await member(room, 'ann', { a: 1 });
  await evict(room);
  assert.deepEqual(await rpc(room, 'counts', room), { connections: 2, members: 1, clients: 1, inGrace: 0 });
  await evict(room);
  assert.deepEqual(view(await rpc(room, 'members', room)), [{ id: ann.welcome.id, clientId: 'ann', data: { a: 1 } }]);
  assert.deepEqual((await rpc(room, 'object', 'london', 'vans/1')).data, { v: 1 });
  await evict(room);
  assert.equal(await rpc(room, 'publish', room, 'news', { headline: 'hi' }), 1);
  const news = await watcher.wait((f) => f.type === 'message' && f.event === 'news');
  assert.deepEqual(news.data, { headline: 'hi' });
  ann.ws.terminate();
  watcher.ws.terminate();
});
