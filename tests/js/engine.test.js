// The Engine class in Node: options, credentials, batches, queries, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, CloseCodes, ErrorCodes } from '../../js/index.node.js';

const T = 1_720_865_608_496;
const frames = (batch, id) =>
  batch.sends.filter((s) => s.to.includes(id)).map((s) => JSON.parse(s.payload));

test('a host-asserted identity is welcomed and can enter a presence set', () => {
  const e = new Engine({ appId: 'demo', epoch: 5 });
  const opened = e.open(1, { identity: { clientId: 'alice' } }, T);
  const [welcome] = frames(opened, 1);
  // A resume token by default (a random key per engine): 256 bits, hex.
  assert.match(welcome.resumeToken, /^[0-9a-f]{64}$/);
  delete welcome.resumeToken;
  assert.deepEqual(welcome, { type: 'welcome', protocol: 1, id: 'demo:1', clientId: 'alice', expiresAt: null, epoch: 5 });
  assert.deepEqual(opened.events, [{ type: 'authenticated', connection: 1, clientId: 'alice' }]);
  e.message(1, JSON.stringify({ op: 'room.join', ref: 1, room: 'r' }), T);
  const joined = e.message(1, Buffer.from(JSON.stringify({ op: 'presence.join', ref: 2, room: 'r', data: { a: 1 } })), T);
  assert.deepEqual(joined.events, [{ type: 'presenceJoined', room: 'r', connection: 1, clientId: 'alice', data: { a: 1 } }]);
  assert.deepEqual(e.members('r'), [{ connection: 1, id: 'demo:1', clientId: 'alice', data: { a: 1 }, inGrace: false }]);
  assert.deepEqual(e.clients('r'), [{ clientId: 'alice', connections: [1] }]);
  assert.deepEqual(e.counts('r'), { connections: 1, members: 1, clients: 1, inGrace: 0 });
  assert.deepEqual(e.roomNames, ['r']);
  assert.equal(e.connectionCount, 1);
  const closed = e.close(1, T + 5);
  assert.deepEqual(closed.events.map((x) => x.type), ['presenceLeft', 'roomLeft', 'closed']);
  assert.equal(e.connectionCount, 0);
});

test('one payload is serialised once for many recipients', () => {
  const e = new Engine();
  for (let id = 1; id <= 50; id++) {
    e.open(id, { identity: { clientId: `u${id}` } }, T);
    e.message(id, '{"op":"room.join","room":"big"}', T);
    e.message(id, '{"op":"presence.subscribe","room":"big"}', T);
  }
  const batch = e.message(1, '{"op":"presence.join","room":"big"}', T);
  const presence = batch.sends.filter((s) => JSON.parse(s.payload).type === 'presence');
  assert.equal(presence.length, 1);
  assert.equal(presence[0].to.length, 50);
});

test('a connection without credentials must authenticate in time, or is closed with 4003', () => {
  const e = new Engine({ auth: { authTimeoutMs: 5000 } });
  const opened = e.open(7, undefined, T);
  assert.equal(opened.sends.length, 0);
  assert.equal(opened.wakeAt, T + 5000);
  assert.equal(e.tick(T + 4999).closes.length, 0);
  const late = e.tick(T + 5000);
  assert.deepEqual(late.closes, [{ connection: 7, code: CloseCodes.AUTH_TIMEOUT, reason: 'AUTH_TIMEOUT' }]);
  assert.equal(late.wakeAt, null);
});

test('a bad frame gets an error frame with a stable code and changes nothing', () => {
  const e = new Engine();
  e.open(1, { identity: { clientId: 'a' } }, T);
  const bad = e.message(1, '{"op":"presence.join","ref":"x1"', T);
  assert.deepEqual(frames(bad, 1).map((f) => [f.type, f.code, f.ref]), [['error', ErrorCodes.BAD_FRAME, null]]);
  const unknown = e.message(1, '{"op":"teleport","ref":"x2"}', T);
  assert.deepEqual(frames(unknown, 1).map((f) => [f.code, f.ref]), [[ErrorCodes.UNKNOWN_OP, 'x2']]);
  assert.equal(e.connectionCount, 1);
});

test('host errors throw: bad options, unknown option names, a reused connection id, bad now', () => {
  assert.throws(() => new Engine({ limits: { maxFrameBytes: 'big' } }), /invalid options/);
  assert.throws(() => new Engine({ limts: {} }), /unknown field `limts`/);
  assert.throws(() => new Engine({ auth: { keys: [{ algorithm: 'RS256', secret: 'x' }] } }), /invalid configuration/);
  const e = new Engine();
  e.open(1, undefined, T);
  assert.throws(() => e.open(1, undefined, T), /already open/);
  assert.throws(() => e.tick(-1), /non-negative integer/);
  assert.throws(() => e.open(2.5, undefined, T), /connection id/);
});

test('server publish takes any JSON value and reports its recipients', () => {
  const e = new Engine();
  e.open(1, { identity: { clientId: 'a' } }, T);
  e.message(1, '{"op":"room.join","room":"n"}', T);
  e.message(1, '{"op":"subscribe","room":"n","event":"*"}', T);
  const b = e.publish('n', 'tick', [1, 2, 3], T);
  assert.equal(b.recipients, 1);
  assert.deepEqual(frames(b, 1)[0].data, [1, 2, 3]);
  assert.throws(() => e.publish('', 'x', null, T), /room name is empty/);
});

test('now defaults to the current time', () => {
  const e = new Engine({ auth: { authTimeoutMs: 1000 } });
  const before = Date.now();
  const { wakeAt } = e.open(1);
  assert.ok(wakeAt >= before + 1000 && wakeAt <= Date.now() + 1000);
});

test('verifyToken checks a JWT without opening a connection', async () => {
  const { mintToken } = await import('./helpers.js');
  const e = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: 's3cret' }] } });
  const exp = Math.floor(T / 1000) + 60;
  const id = e.verifyToken(mintToken('s3cret', { sub: 'alice', exp, rooms: { 'r/*': ['presence'] } }), T);
  assert.equal(id.clientId, 'alice');
  assert.equal(id.expiresAt, exp * 1000 + 30_000);
  assert.deepEqual(id.rooms, { 'r/*': ['presence'] });
  assert.throws(() => e.verifyToken(mintToken('other', { sub: 'alice', exp }), T), { message: 'BAD_SIGNATURE' });
  assert.throws(() => e.verifyToken(mintToken('s3cret', { sub: 'alice', exp }), exp * 1000 + 30_000), { message: 'EXPIRED' });
  assert.throws(() => e.verifyToken('nope', T), { message: 'MALFORMED' });
  assert.throws(() => new Engine().verifyToken(mintToken('s3cret', { sub: 'a', exp }), T), { message: 'NO_KEYS' });
  assert.equal(e.connectionCount, 0);
});

test('Engine.matchCount applies the engine pattern rules', () => {
  const ids = ['deliveryRiders/r1', 'deliveryRiders/x/r2', 'a/z', 'a/b/c/z', 'room-1', 'room-12', 'a[1]/x'];
  assert.equal(Engine.matchCount('deliveryRiders/*', ids), 1);
  assert.equal(Engine.matchCount('deliveryRiders/**', ids), 2);
  assert.equal(Engine.matchCount('a/**/z', ids), 2);
  assert.equal(Engine.matchCount('room-?', ids), 1);
  assert.equal(Engine.matchCount('a[1]/*', ids), 1);
  assert.equal(Engine.matchCount('**', ids), ids.length);
  assert.throws(() => Engine.matchCount('', ids), /empty/);
});
