// rollcall/node with a real ws server on 127.0.0.1 and real ws clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Engine, CloseCodes } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { mintToken, TestClient, eventually } from './helpers.js';

const SECRET = 'node-adapter-test-secret';
let server;
let url;
const hostEvents = [];

const token = (sub, extra = {}) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 600, ...extra });
const connect = (sub) => TestClient.connect(`${url}/?token=${token(sub)}`);

before(async () => {
  const engine = new Engine({
    auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] },
    limits: { rate: { burst: 20, perSecond: 10 }, violations: { burst: 5, perSecond: 1 } },
    // A dropped socket leaves after a short grace (tests/js/liveness.test.js has the long story).
    leaveGraceMs: 300,
  });
  server = attach(engine, { port: 0, host: '127.0.0.1', maxBufferedBytes: 256 * 1024 });
  server.on('event', (e) => hostEvents.push(e));
  await once(server, 'listening');
  url = `ws://127.0.0.1:${server.address().port}`;
});

after(async () => {
  await server.close();
});

test('clients join, enter, update, leave and drop: the subscriber sees exactly the promised events', async () => {
  const carol = await connect('carol');
  const alice = await connect('alice');
  const bob = await connect('bob');
  for (const c of [carol, alice, bob]) {
    const welcome = await c.wait((f) => f.type === 'welcome');
    assert.equal(welcome.protocol, 1);
    assert.equal((await c.request({ op: 'room.join', room: 'lobby' })).type, 'ack');
  }
  const sub = await carol.request({ op: 'presence.subscribe', room: 'lobby' });
  assert.deepEqual(sub.members, []);

  await alice.request({ op: 'presence.join', room: 'lobby', data: { status: 'here' } });
  await bob.request({ op: 'presence.join', room: 'lobby', data: { status: 'typing' } });
  await alice.request({ op: 'presence.update', room: 'lobby', data: { status: 'away' } });
  await bob.request({ op: 'presence.leave', room: 'lobby' });
  alice.ws.terminate(); // a dropped socket, no goodbye: she leaves when her grace ends

  await eventually(() => carol.presence().length === 5);
  const seen = carol.presence().map((e) => [e.event, e.clientId, e.data]);
  assert.deepEqual(seen, [
    ['join', 'alice', { status: 'here' }],
    ['join', 'bob', { status: 'typing' }],
    ['update', 'alice', { status: 'away' }],
    ['leave', 'bob', { status: 'typing' }],
    ['leave', 'alice', { status: 'away' }],
  ]);
  for (const e of carol.presence()) {
    assert.equal(e.room, 'lobby');
    assert.match(e.id, /^rollcall:\d+$/);
    assert.match(e.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
  assert.deepEqual(server.engine.members('lobby'), []);
  assert.ok(hostEvents.some((e) => e.type === 'presenceJoined' && e.clientId === 'alice' && e.data.status === 'here'));
  assert.ok(hostEvents.some((e) => e.type === 'presenceLeft' && e.clientId === 'alice'));
  await Promise.all([carol.close(), bob.close()]);
});

test('a newcomer gets the current members in its subscribe ack', async () => {
  const a = await connect('dora');
  await a.request({ op: 'room.join', room: 'snap' });
  await a.request({ op: 'presence.join', room: 'snap', data: { n: 1 } });
  const b = await connect('eve');
  await b.request({ op: 'room.join', room: 'snap' });
  const ack = await b.request({ op: 'presence.subscribe', room: 'snap' });
  assert.deepEqual(ack.members.map((m) => [m.clientId, m.data]), [['dora', { n: 1 }]]);
  await Promise.all([a.close(), b.close()]);
});

test('the token may come in an Authorization header', async () => {
  const c = await TestClient.connect(url, { headers: { authorization: `Bearer ${token('frank')}` } });
  const welcome = await c.wait((f) => f.type === 'welcome');
  assert.equal(welcome.clientId, 'frank');
  await c.close();
});

test('a bad token is refused with close code 4001', async () => {
  const forged = mintToken('not-the-secret', { sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 });
  const c = new TestClient(`${url}/?token=${forged}`);
  const { code, reason } = await c.closed;
  assert.equal(code, CloseCodes.AUTH_FAILED);
  assert.equal(reason, 'BAD_SIGNATURE');
  assert.equal(c.frames.length, 0);
});

test('an expired token is refused with close code 4001 and reason EXPIRED', async () => {
  const old = mintToken(SECRET, { sub: 'late', exp: Math.floor(Date.now() / 1000) - 3600 });
  const c = new TestClient(`${url}/?token=${old}`);
  const { code, reason } = await c.closed;
  assert.equal(code, CloseCodes.AUTH_FAILED);
  assert.equal(reason, 'EXPIRED');
});

test('without a token the client must send auth; it then gets a welcome and an ack', async () => {
  const c = await TestClient.connect(url);
  const early = await c.request({ op: 'room.join', room: 'x' });
  assert.equal(early.code, 'NOT_AUTHENTICATED');
  const ack = await c.request({ op: 'auth', token: token('gina') });
  assert.equal(ack.type, 'ack');
  assert.equal(ack.clientId, 'gina');
  assert.ok(c.frames.some((f) => f.type === 'welcome' && f.clientId === 'gina'));
  await c.close();
});

test('a flooding client is rate limited and closed with 4008; the others stay served', async () => {
  const calm = await connect('calm');
  await calm.request({ op: 'room.join', room: 'flood' });
  await calm.request({ op: 'presence.subscribe', room: 'flood' });
  const noisy = await connect('noisy');
  await noisy.wait((f) => f.type === 'welcome');
  for (let i = 0; i < 500; i++) noisy.ws.send(JSON.stringify({ op: 'ping', ref: i }));
  const { code, reason } = await noisy.closed;
  assert.equal(code, CloseCodes.POLICY_VIOLATION);
  assert.match(reason, /RATE_LIMITED/);
  const errors = noisy.frames.filter((f) => f.type === 'error').map((f) => f.code);
  assert.ok(errors.length >= 1 && errors.every((c) => c === 'RATE_LIMITED'), JSON.stringify(errors));
  // The calm client is still served, and sees others come and go.
  assert.equal((await calm.request({ op: 'ping' })).type, 'ack');
  const other = await connect('other');
  await other.request({ op: 'room.join', room: 'flood' });
  await other.request({ op: 'presence.join', room: 'flood' });
  await calm.wait((f) => f.type === 'presence' && f.clientId === 'other' && f.event === 'join');
  await Promise.all([calm.close(), other.close()]);
});

test('server-side publish reaches subscribers with from: null', async () => {
  const c = await connect('henry');
  await c.request({ op: 'room.join', room: 'news' });
  await c.request({ op: 'subscribe', room: 'news', event: 'headline' });
  assert.equal(server.publish('news', 'headline', { text: 'hello' }), 1);
  const msg = await c.wait((f) => f.type === 'message');
  assert.deepEqual([msg.event, msg.from, msg.data], ['headline', null, { text: 'hello' }]);
  await c.close();
});

test('a socket that stops reading is closed as a slow consumer, not buffered forever', async () => {
  const slow = await connect('slow');
  await slow.request({ op: 'room.join', room: 'firehose' });
  await slow.request({ op: 'subscribe', room: 'firehose', event: 'blob' });
  slow.ws._socket.pause(); // stop reading: the server's send buffer grows
  const blob = 'x'.repeat(60 * 1024);
  for (let i = 0; i < 400 && server.engine.counts('firehose').connections > 0; i++) {
    server.publish('firehose', 'blob', blob);
    await new Promise((r) => setImmediate(r));
  }
  // The engine forgets it at once, before any close handshake.
  assert.equal(server.engine.counts('firehose').connections, 0);
  slow.ws._socket.resume();
  const { code } = await slow.closed;
  assert.ok(code === CloseCodes.SLOW_CONSUMER || code === 1006, `close code ${code}`);
});
