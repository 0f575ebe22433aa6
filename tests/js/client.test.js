// rollcall/client (the SDK) against a real rollcall/node server on
// 127.0.0.1: the seeds' client examples (000: realms, objects, data
// providers; 002: rooms and presence sets) with only the import changed,
// reconnection after the server drops the socket, token refresh and typed
// errors.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Engine, CloseCodes } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { Client, RollcallError } from '../../js/client.node.js';
import { mintToken, eventually } from './helpers.js';

const SECRET = 'client-sdk-test-secret';
let server;
let url;
const clients = [];

const exp = (seconds = 600) => Math.floor(Date.now() / 1000) + seconds;
const token = (sub, extra = {}) => mintToken(SECRET, { sub, exp: exp(), ...extra });
// The seed's rider token (with its ids made consistent): reads every rider,
// creates and updates only himself, and provides for himself.
const riderToken = (sub, realm = 'london') =>
  token(sub, {
    per: { [realm]: { 'deliveryRiders/*': 'R', [`deliveryRiders/${sub}`]: 'CU' } },
    dpv: { [realm]: [`deliveryRiders/${sub}`] },
  });
const dispatcherToken = (realm = 'london') => token('dispatch', { per: { [realm]: { '**': 'R' } } });
const adminToken = (realm = 'london') => token('admin', { per: { [realm]: { '**': 'CRUD' } } });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A client with fast backoff, closed after each test. */
function client(options = {}) {
  const c = new Client({ url, minDelayMs: 20, maxDelayMs: 100, ...options });
  clients.push(c);
  return c;
}

async function connected(sub, options = {}) {
  const c = client({ token: token(sub), ...options });
  await c.connect();
  return c;
}

/** Records a client's connectionStatusChanged sequence. */
function statuses(c) {
  const seen = [];
  c.on('connectionStatusChanged', (s) => seen.push(s));
  return seen;
}

/** The server-side socket of an SDK client (matched by its TCP port). */
function serverSocketOf(c) {
  const port = c._ws._socket.localPort;
  for (const s of server.wss.clients) if (s._socket.remotePort === port) return s;
  throw new Error('no server socket for this client');
}

/** The server's objects of a realm as the SDK's map `{ id: { id, data, connectionStatus } }`. */
function serverObjects(realm, pattern) {
  return Object.fromEntries(
    server.engine.objects(realm, pattern).map(({ id, data, connectionStatus }) => [id, { id, data, connectionStatus }]),
  );
}

before(async () => {
  const engine = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }], leewayMs: 0 } });
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

// ---- connecting ---------------------------------------------------------------

test('new Client({ url, token }) + connect(): connecting → connected; close() → disconnected', async () => {
  const c = client({ token: token('alice') });
  assert.equal(c.connectionStatus, 'disconnected');
  const seen = statuses(c);
  assert.equal(await c.connect(), c);
  assert.equal(c.connectionStatus, 'connected');
  assert.deepEqual(seen, ['connecting', 'connected']);
  assert.equal(c.clientId, 'alice');
  assert.match(c.id, /^rollcall:\d+$/);
  assert.ok(c.expiresAt > Date.now() + 590_000 && c.expiresAt <= Date.now() + 600_000, String(c.expiresAt));
  await eventually(() => server.connections >= 1);

  const closes = [];
  c.on('close', (e) => closes.push(e));
  c.close();
  assert.equal(c.connectionStatus, 'disconnected');
  assert.deepEqual(seen, ['connecting', 'connected', 'disconnected']);
  await eventually(() => closes.length === 1);
  assert.equal(closes[0].code, 1000);
  await sleep(100); // no reconnect after a close()
  assert.deepEqual(seen, ['connecting', 'connected', 'disconnected']);
});

test('a second presence callback added later also gets the members already here as joins', async () => {
  const a = await connected('early');
  const roomA = await a.join('later-cb');
  await roomA.presence.join({ n: 1 });
  const b = await connected('watcher');
  const roomB = await b.join('later-cb');
  const first = [];
  await roomB.presence.subscribe((e) => first.push([e.event, e.clientId]));
  const second = [];
  await roomB.presence.subscribe('join', (e) => second.push([e.event, e.clientId, e.data]));
  assert.deepEqual(first, [['join', 'early']]);
  assert.deepEqual(second, [['join', 'early', { n: 1 }]]);
  const leaves = [];
  await roomB.presence.subscribe('leave', (e) => leaves.push(e.clientId));
  assert.deepEqual(leaves, [], 'a leave callback is not replayed anything');
});

test('connect() on a connected client keeps its one socket', async () => {
  const c = await connected('once');
  const socket = c._ws;
  const again = await c.connect();
  assert.equal(again, c);
  assert.equal(c._ws, socket);
  const engine = server.engine;
  const mine = () => engine.connectionIds.filter((id) => engine.identity(id)?.clientId === 'once').length;
  await sleep(50);
  assert.equal(mine(), 1);
  await assert.rejects(c.connect('ws://127.0.0.1:1/'), (e) => e instanceof RollcallError && e.code === 'BAD_REQUEST');
});

test("seed 000's connect(url) then authenticate(token), with the status event", async () => {
  const c = new Client(); // as in the seed: no options at all
  clients.push(c);
  const seen = [];
  c.on('connectionStatusChanged', () => seen.push(c.connectionStatus));
  await c.connect(url);
  assert.equal(c.connectionStatus, 'connecting'); // open, not yet authenticated
  assert.equal(c.clientId, null);
  assert.equal(await c.authenticate(token('bob')), c);
  assert.equal(c.connectionStatus, 'connected');
  assert.equal(c.clientId, 'bob');
  assert.match(c.id, /^rollcall:\d+$/);
  assert.deepEqual(seen, ['connecting', 'connected']);
  c.close();
  assert.deepEqual(seen, ['connecting', 'connected', 'disconnected']);
});

test('requests made while the client is still connecting wait for the authentication', async () => {
  const c = client();
  await c.connect(); // no token: opens only
  const room = c.join('early');
  const joined = room.presence.join({ early: true });
  await sleep(30);
  await c.authenticate(token('early-bird'));
  await joined;
  assert.deepEqual(server.engine.members('early').map((m) => [m.clientId, m.data]), [['early-bird', { early: true }]]);
});

// ---- rooms and presence (seed 002) --------------------------------------------

test("seed 002: join (awaited or not), presence join/update/leave/get, subscribe('join') and subscribe(cb), room.leave", async () => {
  const alice = await connected('alice');
  const bob = await connected('bob');

  // const myRoom = await relayBox.join('myRoom'); await myRoom.presence.subscribe('join', ...)
  const watched = await alice.join('myRoom');
  assert.equal(watched.name, 'myRoom');
  assert.equal(typeof watched.then, 'undefined'); // the awaited room is no thenable
  const joins = [];
  const all = [];
  assert.deepEqual(await watched.presence.subscribe('join', (data) => joins.push(data)), []);
  await watched.presence.subscribe((e) => all.push(e));

  // const myRoom = relayBox.join('myRoom'); await myRoom.presence.join(userData);
  const myRoom = bob.join('myRoom');
  const userData = { username: 'Bob' };
  await myRoom.presence.join(userData);

  await eventually(() => joins.length === 1);
  const join = joins[0];
  assert.deepEqual(Object.keys(join).sort(), ['clientId', 'data', 'event', 'id', 'timestamp']);
  assert.deepEqual({ ...join, timestamp: 'T' }, { event: 'join', timestamp: 'T', id: bob.id, clientId: 'bob', data: userData });
  assert.match(join.timestamp, ISO);

  // const myRoom = await relayBox.join('myRoom'); await myroom.presence.update(userData);
  const same = await bob.join('myRoom');
  const location = { registration: 'xxxx xxx', latitude: 0.0, longitude: 0.01 };
  await same.presence.update(location);
  await eventually(() => all.length === 2);
  assert.deepEqual(await watched.presence.get(), [{ id: bob.id, clientId: 'bob', data: location }]);
  assert.deepEqual(watched.presence.members, [{ id: bob.id, clientId: 'bob', data: location }]);
  assert.deepEqual(await myRoom.presence.get(), [{ id: bob.id, clientId: 'bob', data: location }]);

  // A newcomer's subscribe resolves with the current members, delivered as join first.
  const carol = await connected('carol');
  const carolRoom = await carol.join('myRoom');
  const carolSeen = [];
  const snapshot = await carolRoom.presence.subscribe((e) => carolSeen.push([e.event, e.clientId, e.data]));
  assert.deepEqual(snapshot, [{ id: bob.id, clientId: 'bob', data: location }]);
  assert.deepEqual(carolSeen, [['join', 'bob', location]]);

  // const myRoom = relayBox.join('myRoom'); await myRoom.presence.leave();
  await bob.join('myRoom').presence.leave();
  await eventually(() => all.length === 3);
  assert.deepEqual(await watched.presence.get(), []);
  assert.deepEqual(server.engine.members('myRoom'), []);

  // Entering again, then leaving the room itself broadcasts leave.
  await myRoom.presence.join(userData);
  await eventually(() => all.length === 4);
  // const myRoom = relayBox.join('myRoom'); await myRoom.leave();
  await bob.join('myRoom').leave();
  await eventually(() => all.length === 5);

  assert.deepEqual(
    all.map((e) => [e.event, e.id, e.clientId, e.data]),
    [
      ['join', bob.id, 'bob', userData],
      ['update', bob.id, 'bob', location],
      ['leave', bob.id, 'bob', location],
      ['join', bob.id, 'bob', userData],
      ['leave', bob.id, 'bob', userData],
    ],
  );
  assert.ok(all.every((e) => ISO.test(e.timestamp)));
  assert.equal(joins.length, 2); // the 'join' subscriber saw only the joins
  assert.deepEqual(watched.presence.members, []);
  assert.deepEqual(server.engine.members('myRoom'), []);
  await eventually(() => carolSeen.length === 4);
  assert.deepEqual(carolSeen.map(([e]) => e), ['join', 'leave', 'join', 'leave']);

  // Unsubscribing a presence callback stops its events.
  const cb = () => assert.fail('unsubscribed callback called');
  await watched.presence.subscribe('update', cb);
  await watched.presence.unsubscribe('update', cb);
  const dora = await connected('dora');
  const doraRoom = await dora.join('myRoom');
  await doraRoom.presence.join({ n: 1 });
  await doraRoom.presence.update({ n: 2 });
  await eventually(() => all.length === 7);
});

test('room publish/subscribe: named events, *, unsubscribe, server publish', async () => {
  const alice = await connected('alice');
  const bob = await connected('bob');
  const aRoom = await alice.join('chat');
  const bRoom = bob.join('chat');

  const named = [];
  const every = [];
  await aRoom.subscribe('msg', (data, message) => named.push([data, message]));
  await aRoom.subscribe((data, message) => every.push([message.event, data]));

  assert.equal(await bRoom.publish('msg', { text: 'hi alice' }), 1); // once, though alice has 'msg' and '*'
  assert.equal(await bRoom.publish('other', [1, 2]), 1);
  await eventually(() => every.length === 2);
  assert.equal(named.length, 1);
  const [data, message] = named[0];
  assert.deepEqual(data, { text: 'hi alice' });
  assert.deepEqual({ ...message, timestamp: 'T' }, {
    event: 'msg',
    timestamp: 'T',
    from: { id: bob.id, clientId: 'bob' },
    data: { text: 'hi alice' },
  });
  assert.match(message.timestamp, ISO);
  assert.deepEqual(every, [['msg', { text: 'hi alice' }], ['other', [1, 2]]]);

  assert.equal(server.publish('chat', 'msg', 'from the server'), 1);
  await eventually(() => every.length === 3);
  assert.equal(named[1][1].from, null);

  await aRoom.unsubscribe('msg');
  assert.equal(await bRoom.publish('msg', 'after unsubscribe'), 1); // '*' still holds
  await eventually(() => every.length === 4);
  assert.equal(named.length, 2);
  await aRoom.unsubscribe(every.push.bind(every)); // an unknown callback changes nothing
  await aRoom.unsubscribe('*');
  assert.equal(await bRoom.publish('msg', 'nobody'), 0);
});

// ---- realms, objects, data providers (seed 000) --------------------------------

test('seed 000: realm.get, object CRUD, get().connectionStatus, list, typed errors', async () => {
  const john = client({ token: riderToken('johndoe-123') });
  await john.connect();
  const realm = await john.realm.get('london');
  assert.equal(realm.name, 'london');
  assert.equal(await john.realm.get('london'), realm);

  assert.equal(await realm.object.create('deliveryRiders/johndoe-123', { lat: 51.5, lng: -0.12 }), undefined);
  const johnDoe = await realm.object.get('deliveryRiders/johndoe-123');
  assert.equal(johnDoe.connectionStatus, 'connected');
  assert.deepEqual(johnDoe, { id: 'deliveryRiders/johndoe-123', data: { lat: 51.5, lng: -0.12 }, connectionStatus: 'connected' });
  await realm.object.update('deliveryRiders/johndoe-123', { lat: 51.6 });
  assert.deepEqual((await realm.object.get('deliveryRiders/johndoe-123')).data, { lat: 51.6 });

  const admin = client({ token: adminToken() });
  await admin.connect();
  const adminRealm = await admin.realm.get('london');
  await adminRealm.object.create('deliveryRiders/jane-7', { lat: 1 });
  await adminRealm.object.create('vans/v1');
  assert.deepEqual(
    (await adminRealm.object.list()).map((o) => [o.id, o.connectionStatus]),
    [['deliveryRiders/jane-7', 'disconnected'], ['deliveryRiders/johndoe-123', 'connected'], ['vans/v1', 'disconnected']],
  );
  assert.deepEqual((await adminRealm.object.list('vans/*')), [{ id: 'vans/v1', data: null, connectionStatus: 'disconnected' }]);
  // John reads only riders.
  assert.deepEqual((await realm.object.list()).map((o) => o.id), ['deliveryRiders/jane-7', 'deliveryRiders/johndoe-123']);

  // FORBIDDEN: John may read Jane but not update or delete her.
  const forbidden = await realm.object.update('deliveryRiders/jane-7', { lat: 0 }).catch((e) => e);
  assert.ok(forbidden instanceof RollcallError && forbidden instanceof Error);
  assert.equal(forbidden.name, 'RollcallError');
  assert.equal(forbidden.code, 'FORBIDDEN');
  assert.equal(typeof forbidden.ref, 'number');
  await assert.rejects(realm.object.delete('deliveryRiders/jane-7'), { code: 'FORBIDDEN' });
  await assert.rejects(realm.object.get('vans/v1'), { code: 'FORBIDDEN' });
  await assert.rejects(realm.object.create('deliveryRiders/jane-7'), { code: 'FORBIDDEN' });
  // OBJECT_NOT_FOUND and OBJECT_EXISTS.
  await assert.rejects(realm.object.get('deliveryRiders/nobody'), { name: 'RollcallError', code: 'OBJECT_NOT_FOUND' });
  await assert.rejects(adminRealm.object.update('vans/none', {}), { code: 'OBJECT_NOT_FOUND' });
  await assert.rejects(adminRealm.object.delete('vans/none'), { code: 'OBJECT_NOT_FOUND' });
  await assert.rejects(adminRealm.object.create('vans/v1'), { code: 'OBJECT_EXISTS' });
  assert.deepEqual(server.engine.object('london', 'deliveryRiders/jane-7').data, { lat: 1 });

  await adminRealm.object.delete('vans/v1');
  await adminRealm.object.delete('deliveryRiders/jane-7');
  await adminRealm.object.delete('deliveryRiders/johndoe-123');
  await assert.rejects(realm.object.get('deliveryRiders/johndoe-123'), { code: 'OBJECT_NOT_FOUND' });
  assert.deepEqual(server.engine.objects('london'), []);
});

test("seed 000: object.subscribe() 'update' carries the whole map; connectionStatusChanged on 'deliveryRiders/*'; pubsub.publish", async () => {
  const R = 'london-sub';
  // The seed's watcher code, with only the import changed.
  const client = new Client({ minDelayMs: 20 });
  clients.push(client);
  const seen = [];
  client.on('connectionStatusChanged', () => seen.push(client.connectionStatus));
  await client.connect(url);
  await client.authenticate(dispatcherToken(R));
  const realmA = await client.realm.get(R);

  const updates = [];
  const subscription = await realmA.object.subscribe();
  subscription.on('update', (objects) => {
    const statuses = {};
    for (const id in objects) statuses[id] = objects[id].connectionStatus;
    updates.push(structuredClone(objects));
  });
  const changes = [];
  subscription.on('change', (c) => changes.push([c.event, c.object.id, c.object.connectionStatus]));
  await eventually(() => updates.length === 1); // the (empty) snapshot
  assert.deepEqual(updates[0], {});

  const statusEvents = [];
  await realmA.pubsub.subscribe('connectionStatusChanged', 'deliveryRiders/*', (data, id) => {
    // data = {connectionStatus: 'connected'}; id = the object's id
    statusEvents.push([id, data]);
  });
  const anyEvents = [];
  await realmA.pubsub.subscribe('connectionStatusChanged', (data, id) => anyEvents.push([id, data.connectionStatus]));

  // The rider (a data provider for himself) connects and creates his object.
  const john = new Client({ url, token: riderToken('johndoe-123', R), minDelayMs: 20, maxDelayMs: 50 });
  clients.push(john);
  await john.connect();
  const johnRealm = await john.realm.get(R);
  await johnRealm.object.create('deliveryRiders/johndoe-123', { lat: 51.5 });
  await johnRealm.object.update('deliveryRiders/johndoe-123', { lat: 51.6 });
  await eventually(() => updates.length === 3);
  assert.deepEqual(updates.at(-1), serverObjects(R));
  assert.deepEqual(updates.at(-1), {
    'deliveryRiders/johndoe-123': { id: 'deliveryRiders/johndoe-123', data: { lat: 51.6 }, connectionStatus: 'connected' },
  });
  assert.deepEqual({ ...subscription.objects }, updates.at(-1));
  const johnDoe = await realmA.object.get('deliveryRiders/johndoe-123');
  assert.equal(johnDoe.connectionStatus, 'connected');

  // An object outside the pattern: in the object map, not in the rider events.
  const admin = client2(adminToken(R));
  await admin.connect();
  const adminRealm = await admin.realm.get(R);
  await adminRealm.object.create('vans/v1', { plate: 'AB' });
  await eventually(() => updates.length === 4);
  assert.deepEqual(updates.at(-1), serverObjects(R));

  // The rider's socket is dropped by the server: his client resumes within
  // the leave grace, so his object never turns disconnected (no flap).
  const johnSeen = statuses(john);
  serverSocketOf(john).terminate();
  await eventually(() => johnSeen.length === 2, 3000);
  assert.deepEqual(johnSeen, ['reconnecting', 'connected']);
  assert.equal(john.connectionReason, 'resumed');
  await sleep(100);
  assert.deepEqual([statusEvents, anyEvents], [[], []]);
  assert.equal(updates.length, 4);
  assert.deepEqual(updates.at(-1), serverObjects(R));

  // He closes for good: disconnected, and it stays so.
  john.close();
  await eventually(() => statusEvents.length === 1);
  assert.deepEqual(statusEvents[0], ['deliveryRiders/johndoe-123', { connectionStatus: 'disconnected' }]);
  assert.equal((await realmA.object.get('deliveryRiders/johndoe-123')).connectionStatus, 'disconnected');

  // Deletions leave the map.
  await adminRealm.object.delete('vans/v1');
  await eventually(() => !('vans/v1' in updates.at(-1)));
  assert.deepEqual(updates.at(-1), serverObjects(R));
  assert.deepEqual(changes, [
    ['create', 'deliveryRiders/johndoe-123', 'connected'],
    ['update', 'deliveryRiders/johndoe-123', 'connected'],
    ['create', 'vans/v1', 'disconnected'],
    ['status', 'deliveryRiders/johndoe-123', 'disconnected'],
    ['delete', 'vans/v1', 'disconnected'],
  ]);

  // realm.pubsub.publish: a custom event about an object, to its readers.
  const located = [];
  await realmA.pubsub.subscribe('location', 'deliveryRiders/*', (data, id, frame) => located.push([data, id, frame]));
  const everything = [];
  await realmA.pubsub.subscribe('*', (data, id, frame) => everything.push([frame.event, id]));
  assert.equal(await adminRealm.pubsub.publish('location', { lat: 2 }, 'deliveryRiders/johndoe-123'), 1);
  assert.equal(await adminRealm.pubsub.publish('location', { lat: 3 }, 'vans/v1'), 1); // to '*' only
  assert.equal(await adminRealm.pubsub.publish('broadcast', 'hello'), 1);
  await eventually(() => everything.length === 3);
  assert.equal(located.length, 1);
  const [data, id, frame] = located[0];
  assert.deepEqual([data, id], [{ lat: 2 }, 'deliveryRiders/johndoe-123']);
  assert.deepEqual([frame.realm, frame.event, frame.from], [R, 'location', { id: admin.id, clientId: 'admin' }]);
  assert.deepEqual(everything, [['location', 'deliveryRiders/johndoe-123'], ['location', 'vans/v1'], ['broadcast', null]]);
  await assert.rejects(realmA.pubsub.publish('location', {}), { code: 'FORBIDDEN' }); // no U right
  await assert.rejects(adminRealm.pubsub.publish('connectionStatusChanged', {}), { code: 'FORBIDDEN' });

  // Unsubscribing.
  await realmA.pubsub.unsubscribe('location', 'deliveryRiders/*');
  await realmA.pubsub.unsubscribe('*');
  assert.equal(await adminRealm.pubsub.publish('location', { lat: 4 }, 'deliveryRiders/johndoe-123'), 0);
  const before = updates.length;
  await subscription.unsubscribe();
  await adminRealm.object.update('deliveryRiders/johndoe-123', { lat: 5 });
  await realmA.object.get('deliveryRiders/johndoe-123'); // a round trip
  assert.equal(updates.length, before);
  assert.deepEqual(seen, ['connecting', 'connected']);

  function client2(t) {
    const c = new Client({ url, token: t });
    clients.push(c);
    return c;
  }
});

test('two object subscriptions of one pattern: unsubscribing one keeps the other', async () => {
  const R = 'two-subs';
  const admin = await connected('admin', { token: adminToken(R) });
  const realm = await admin.realm.get(R);
  const a = await realm.object.subscribe('x/*');
  const b = await realm.object.subscribe('x/*');
  const seenB = [];
  b.on('change', (c) => seenB.push(c.object.id));
  await a.unsubscribe();
  await realm.object.create('x/1');
  await eventually(() => seenB.length === 1);
  assert.deepEqual({ ...b.objects }, serverObjects(R, 'x/*'));
});

test('a snapshot and the events right behind it (same TCP chunk): applied in order, no phantom leave', async () => {
  const R = 'race';
  for (let round = 0; round < 5; round++) {
    const c = await connected(`racer${round}`, { token: token(`racer${round}`, { per: { [R]: { '**': 'CRUD' } } }) });
    const room = c.join(`race-${round}`);
    const events = [];
    // Not awaited in between: the subscribe ack, the join ack and the join
    // event come back to back.
    const subscribed = room.presence.subscribe((e) => events.push([e.event, e.id]));
    const joined = room.presence.join({ round });
    await Promise.all([subscribed, joined]);
    const realm = await c.realm.get(R);
    const created = realm.object.create(`r/${round}`, { round });
    const sub = realm.object.subscribe('r/*');
    await created;
    const s = await sub;
    await c.join(`race-${round}`).presence.get(); // a round trip: every frame is in
    assert.deepEqual(events, [['join', c.id]]);
    assert.deepEqual(room.presence.members, [{ id: c.id, clientId: `racer${round}`, data: { round } }]);
    assert.deepEqual({ ...s.objects }, serverObjects(R, 'r/*'));
    c.close();
  }
});

// ---- reconnection ---------------------------------------------------------------

test('the server drops the socket: the client reconnects with backoff and resumes: nobody sees a thing, everything kept', async () => {
  const R = 'recon-realm';
  const watcher = await connected('watcher', { token: token('watcher', { per: { [R]: { '**': 'CRUD' } } }) });
  const wRoom = await watcher.join('recon');
  const wEvents = [];
  await wRoom.presence.subscribe((e) => wEvents.push([e.event, e.id, e.data]));
  const wRealm = await watcher.realm.get(R);
  await wRealm.object.create('things/a', { v: 1 });

  const MIN = 300;
  const bob = client({ token: token('bob', { per: { [R]: { '**': 'R' } } }), minDelayMs: MIN, maxDelayMs: 2000 });
  const seen = statuses(bob);
  const times = {};
  bob.on('connectionStatusChanged', (s) => (times[s] = Date.now()));
  await bob.connect();
  const room = bob.join('recon');
  await room.presence.join({ v: 1 });
  await room.presence.update({ v: 2 });
  const own = [];
  await room.presence.subscribe((e) => own.push([e.event, e.id]));
  const pings = [];
  await room.subscribe('ping', (data) => pings.push(data));
  const bRealm = await bob.realm.get(R);
  const sub = await bRealm.object.subscribe('things/*');
  const snapshots = [];
  sub.on('update', (objects) => snapshots.push(structuredClone(objects)));
  const realmEvents = [];
  await bRealm.pubsub.subscribe('note', (data) => realmEvents.push(data));
  await eventually(() => snapshots.length === 1 && wEvents.length === 2);
  assert.deepEqual(snapshots[0], serverObjects(R, 'things/*'));
  const oldId = bob.id;

  // Drop it from the server side, without a close handshake.
  const closes = [];
  bob.on('close', (e) => closes.push(e.code));
  serverSocketOf(bob).terminate();
  await eventually(() => bob.connectionStatus === 'reconnecting');
  // While it is away: a change it must catch up on, and a request that waits.
  await wRealm.object.create('things/b', { v: 2 });
  await wRealm.object.update('things/a', { v: 3 });
  const during = room.presence.get();
  await eventually(() => bob.connectionStatus === 'connected', 3000);
  assert.deepEqual(seen, ['connecting', 'connected', 'reconnecting', 'connected']);
  assert.deepEqual(closes, [1006]);
  const waited = times.connected - times.reconnecting;
  assert.ok(waited >= MIN / 2 - 5 && waited < MIN + 250, `reconnected after ${waited} ms`);
  assert.equal(bob.connectionReason, 'resumed');
  assert.equal(bob.id, oldId, 'the same member');
  assert.deepEqual((await during).map((m) => m.clientId), ['bob']);

  // The server holds exactly one member for bob, with his last data.
  await sleep(100);
  assert.deepEqual(
    server.engine.members('recon').map(({ id, clientId, data }) => ({ id, clientId, data })),
    [{ id: bob.id, clientId: 'bob', data: { v: 2 } }],
  );
  // The watcher saw nothing of the blink.
  assert.deepEqual(wEvents, [
    ['join', oldId, { v: 1 }],
    ['update', oldId, { v: 2 }],
  ]);
  assert.deepEqual(wRoom.presence.members, [{ id: bob.id, clientId: 'bob', data: { v: 2 } }]);
  // Nor did bob's own view.
  assert.deepEqual(own, [['join', oldId]]);
  assert.deepEqual(room.presence.members, [{ id: bob.id, clientId: 'bob', data: { v: 2 } }]);

  // The object subscription resumed with a fresh snapshot.
  await eventually(() => snapshots.length >= 2);
  assert.deepEqual(snapshots.at(-1), serverObjects(R, 'things/*'));
  assert.equal(Object.keys(snapshots.at(-1)).length, 2);
  await wRealm.object.delete('things/b');
  await eventually(() => !('things/b' in sub.objects));
  assert.deepEqual({ ...sub.objects }, serverObjects(R, 'things/*'));

  // Room and realm event subscriptions resumed.
  assert.equal(await wRoom.publish('ping', 'after'), 1);
  assert.equal(await wRealm.pubsub.publish('note', 'realm after'), 1);
  await eventually(() => pings.length === 1 && realmEvents.length === 1);
  assert.deepEqual([pings, realmEvents], [['after'], ['realm after']]);

  // Leaving for good broadcasts one leave; there is no one left.
  bob.close();
  await eventually(() => wEvents.length === 3);
  assert.deepEqual(wEvents[2], ['leave', bob.id, { v: 2 }]);
  assert.deepEqual(server.engine.members('recon'), []);
  await sleep(MIN + 100);
  assert.deepEqual(seen, ['connecting', 'connected', 'reconnecting', 'connected', 'disconnected']);
});

test('a non-1000 close from the server also reconnects; a refused reconnect backs off', async () => {
  const c = await connected('closer');
  const seen = statuses(c);
  serverSocketOf(c).close(1011, 'server restart');
  await eventually(() => seen.length === 2);
  assert.deepEqual(seen, ['reconnecting', 'connected']);
  assert.equal(c.clientId, 'closer');
});

test('backoff grows between failed attempts and stops at close()', async () => {
  // A server that accepts sockets and refuses them at once.
  const { WebSocketServer } = await import('ws');
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const attempts = [];
  wss.on('connection', (ws) => {
    attempts.push(Date.now());
    ws.close(1011, 'go away');
  });
  const c = client({ url: `ws://127.0.0.1:${wss.address().port}`, minDelayMs: 40, maxDelayMs: 10_000, backoffFactor: 2, retry: true });
  const seen = statuses(c);
  await c.connect(); // no token: it opens, then the server closes it; `retry` keeps trying
  await eventually(() => attempts.length >= 5, 5000);
  c.close();
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
  // delay n is drawn from [40·2^n / 2, 40·2^n]: 20-40, 40-80, 80-160, 160-320
  gaps.slice(0, 4).forEach((gap, n) => {
    assert.ok(gap >= 20 * 2 ** n - 5 && gap <= 40 * 2 ** n + 100, `gap ${n}: ${gap} ms (${gaps})`);
  });
  const count = attempts.length;
  await sleep(400);
  assert.equal(attempts.length, count);
  assert.equal(seen.at(-1), 'disconnected');
  assert.ok(!seen.includes('connected'));
  await new Promise((r) => wss.close(r));
});

test('host-side auth (no token): the welcome connects the client, on connect and on reconnect', async () => {
  const host = attach(new Engine(), {
    port: 0,
    host: '127.0.0.1',
    credentials: (req) => ({ identity: { clientId: new URL(req.url, 'http://x').searchParams.get('name') } }),
  });
  await once(host, 'listening');
  const base = `ws://127.0.0.1:${host.address().port}`;
  try {
    const c = client({ url: `${base}/?name=hana` });
    const seen = statuses(c);
    await c.connect();
    const room = await c.join('hosted'); // waits for the welcome if it is not in yet
    await room.presence.join({ hi: 1 });
    assert.equal(c.connectionStatus, 'connected');
    assert.equal(c.clientId, 'hana');
    assert.deepEqual(seen, ['connecting', 'connected']);
    const oldId = c.id;
    for (const s of host.wss.clients) s.terminate();
    await eventually(() => seen.length === 4);
    assert.deepEqual(seen, ['connecting', 'connected', 'reconnecting', 'connected']);
    assert.equal(c.id, oldId, 'resumed: the same member');
    assert.deepEqual(host.engine.members('hosted').map((m) => [m.id, m.clientId, m.data]), [[c.id, 'hana', { hi: 1 }]]);
    c.close();
  } finally {
    await host.close();
  }
});

// ---- tokens -------------------------------------------------------------------------

test('getToken refreshes the token before it expires, and supplies a fresh one on reconnect', async () => {
  const calls = [];
  const getToken = async () => {
    calls.push(Date.now());
    // The first token lives 2-3 s; the later ones 10 minutes.
    const seconds = calls.length === 1 ? 2 : 600;
    return mintToken(SECRET, { sub: 'refresher', exp: Math.ceil(Date.now() / 1000) + seconds });
  };
  const c = client({ getToken, refreshBeforeMs: 1000 });
  const seen = statuses(c);
  const closes = [];
  c.on('close', (e) => closes.push(e.code));
  await c.connect();
  assert.equal(calls.length, 1);
  const firstExpiry = c.expiresAt;
  assert.ok(firstExpiry - Date.now() <= 3000, `first token expires in ${firstExpiry - Date.now()} ms`);
  const room = await c.join('refresh');
  await room.presence.join({ ok: 1 });

  const [refreshed] = await once(c, 'tokenRefreshed');
  assert.equal(calls.length, 2);
  assert.ok(calls[1] < firstExpiry - 500, 'refreshed before the expiry');
  assert.ok(refreshed.expiresAt > Date.now() + 590_000);
  assert.equal(c.expiresAt, refreshed.expiresAt);

  // The connection outlives the first token.
  await sleep(Math.max(0, firstExpiry - Date.now()) + 200);
  assert.deepEqual(closes, []);
  assert.equal(c.connectionStatus, 'connected');
  assert.deepEqual(await room.presence.get(), [{ id: c.id, clientId: 'refresher', data: { ok: 1 } }]);
  assert.deepEqual(seen, ['connecting', 'connected']);

  // On reconnect, getToken supplies the token.
  serverSocketOf(c).terminate();
  await eventually(() => seen.length === 4);
  assert.deepEqual(seen, ['connecting', 'connected', 'reconnecting', 'connected']);
  assert.equal(calls.length, 3);
  assert.deepEqual(server.engine.members('refresh').map((m) => [m.id, m.data]), [[c.id, { ok: 1 }]]);
});

test('a token that expires without getToken: closed with 4002, not reconnected with the dead token in a loop', async () => {
  const c = client({ token: mintToken(SECRET, { sub: 'shortlived', exp: Math.ceil(Date.now() / 1000) + 1 }) });
  const errors = [];
  c.on('error', (e) => errors.push(e));
  const seen = statuses(c);
  await c.connect();
  let connections = 0;
  const count = () => connections++;
  server.wss.on('connection', count);
  await eventually(() => c.connectionStatus === 'disconnected', 3000);
  await sleep(200);
  server.wss.off('connection', count);
  assert.ok(connections <= 1, `${connections} reconnects`);
  assert.equal(c.connectionStatus, 'disconnected');
  assert.equal(seen.at(-1), 'disconnected');
});

// ---- errors -------------------------------------------------------------------------

test("a bad token: an 'error' event with AUTH_FAILED, connect() rejects, no reconnect loop", async () => {
  const forged = mintToken('not-the-secret', { sub: 'mallory', exp: exp() });
  let connections = 0;
  const count = () => connections++;
  server.wss.on('connection', count);
  const c = client({ url, token: forged });
  const seen = statuses(c);
  const errors = [];
  c.on('error', (e) => errors.push(e));
  const err = await c.connect().catch((e) => e);
  assert.ok(err instanceof RollcallError);
  assert.equal(err.code, 'AUTH_FAILED');
  await eventually(() => errors.length === 1);
  assert.ok(errors[0] instanceof RollcallError);
  assert.equal(errors[0].code, 'AUTH_FAILED');
  assert.equal(errors[0].closeCode, CloseCodes.AUTH_FAILED);
  assert.match(errors[0].message, /BAD_SIGNATURE/);
  await sleep(200);
  server.wss.off('connection', count);
  assert.equal(connections, 1);
  assert.deepEqual(seen, ['connecting', 'disconnected']);
  assert.equal(c.connectionStatus, 'disconnected');

  // The same with connect(url) then authenticate(token).
  const d = client();
  const dErrors = [];
  d.on('error', (e) => dErrors.push(e.code));
  await d.connect(url);
  await assert.rejects(d.authenticate(forged), { code: 'AUTH_FAILED' });
  assert.deepEqual(dErrors, ['AUTH_FAILED']);
  assert.equal(d.connectionStatus, 'disconnected');
});

test('requests when closed reject with DISCONNECTED, in flight at close() with CLOSED', async () => {
  const c = await connected('closing', { token: token('closing', { per: { closing: { '**': 'R' } } }) });
  const realm = await c.realm.get('closing');
  const room = await c.join('closing-room');
  const inflight = realm.object.list();
  c.close();
  await assert.rejects(inflight, { name: 'RollcallError', code: 'CLOSED' });
  await assert.rejects(realm.object.get('x'), { code: 'DISCONNECTED' });
  await assert.rejects(room.presence.join({}), { code: 'DISCONNECTED' });
  await assert.rejects(room.publish('e', 1), { code: 'DISCONNECTED' });
  await assert.rejects(async () => await c.join('other'), { code: 'DISCONNECTED' });
  await assert.rejects(new Client().connect(), { code: 'BAD_REQUEST' }); // no url

  // A fresh client that never connected.
  const never = new Client({ url });
  await assert.rejects(async () => await never.join('x'), { code: 'DISCONNECTED' });
  await assert.rejects(async () => (await never.realm.get('r')).object.get('x'), { code: 'DISCONNECTED' });
});

test('a request with no answer fails with TIMEOUT; a protocol error without a request is an error event', async () => {
  const c = await connected('slow', { requestTimeoutMs: 200 });
  const room = await c.join('timeout');
  const socket = serverSocketOf(c);
  socket._socket.pause(); // the server stops reading
  const t0 = Date.now();
  await assert.rejects(room.presence.get(), { code: 'TIMEOUT' });
  assert.ok(Date.now() - t0 >= 190);
  socket._socket.resume();
  assert.deepEqual(await room.presence.get(), []);

  const errors = [];
  c.on('error', (e) => errors.push(e));
  c._ws.send('not json');
  await eventually(() => errors.length === 1);
  assert.equal(errors[0].code, 'BAD_FRAME');
  await assert.rejects(async () => await c.join(''), { code: 'BAD_REQUEST' });
  assert.equal(c.connectionStatus, 'connected');
});
