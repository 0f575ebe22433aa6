// rollcall/node contains every failure (issue 10): a bad token, a bad host
// identity, a throwing credentials callback or listener, a flood that
// ignores the close, an overfull pre-auth queue, a reconnecting flooder.
// Real ws servers on 127.0.0.1, real clients (and raw sockets for floods).
// Each test ends by checking that the same process serves an honest client.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import WebSocket from 'ws';
import { Engine, CloseCodes } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { rawConnect, flood, textFrame } from '../../bench/lib/raw-ws.js';
import { mintToken, TestClient, eventually, queryCredentials as credentials } from './helpers.js';

const SECRET = 'node-hardening-secret';
const soon = () => Math.floor(Date.now() / 1000) + 600;
const token = (sub, exp = soon()) => mintToken(SECRET, { sub, exp });

let server;
let url;
const events = [];
/** What rollcall/node logged through console.error (no 'error' listener here). */
const logged = [];
const consoleError = console.error;

before(async () => {
  console.error = (...args) => logged.push(args);
  const engine = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] }, leaveGraceMs: 0 });
  server = attach(engine, { port: 0, host: '127.0.0.1', credentials, connectionRate: null });
  server.on('event', (e) => events.push(e));
  await once(server, 'listening');
  url = `ws://127.0.0.1:${server.address().port}`;
});

after(async () => {
  console.error = consoleError;
  await server.close();
});

afterEach(async () => {
  // Nothing left behind by any test.
  await eventually(() => server.connections === 0 && server.engine.connectionCount === 0);
});

const withParams = (params) => `${url}/?${new URLSearchParams(params)}`;

/** The process still serves: a new client authenticates, joins and gets acks. */
async function honestClientServed() {
  const c = await TestClient.connect(withParams({ token: token('honest') }));
  assert.equal((await c.wait((f) => f.type === 'welcome')).clientId, 'honest');
  assert.equal((await c.request({ op: 'room.join', room: 'after' })).type, 'ack');
  assert.equal((await c.request({ op: 'presence.join', room: 'after' })).type, 'ack');
  assert.deepEqual(server.engine.members('after').map((m) => m.clientId), ['honest']);
  await c.close();
}

/**
 * Either refused with one of `codes` (a welcome may come first), or
 * accepted with a representable expiry (a clamped exp) and still served.
 */
async function refusedOrServed(client, codes) {
  const welcome = await Promise.race([client.closed.then(() => null), client.wait((f) => f.type === 'welcome')]);
  if (welcome && Number.isSafeInteger(welcome.expiresAt)) {
    assert.equal((await client.request({ op: 'ping' })).type, 'ack');
    await client.close();
    return;
  }
  const { code, reason } = await client.closed;
  assert.ok(codes.includes(code), `closed with ${code} ${reason}`);
}

test('finding 1: a far-future exp at open closes only that connection (4001); the server serves the next client', async () => {
  const far = mintToken(SECRET, { sub: 'far', exp: Number.MAX_SAFE_INTEGER });
  await refusedOrServed(new TestClient(withParams({ token: far })), [CloseCodes.AUTH_FAILED]);
  await honestClientServed();
  // Again while another connection's deadline comes first (the far one is
  // not the engine's next wake), and after that connection has gone.
  const watcher = await TestClient.connect(withParams({ token: token('watcher') }));
  await watcher.wait((f) => f.type === 'welcome');
  await refusedOrServed(new TestClient(withParams({ token: far })), [CloseCodes.AUTH_FAILED]);
  assert.equal((await watcher.request({ op: 'ping' })).type, 'ack');
  await watcher.close();
  await honestClientServed();
});

test('finding 1: a far-future exp in an auth frame (first auth and refresh) closes only that connection', async () => {
  const far = mintToken(SECRET, { sub: 'far', exp: Number.MAX_SAFE_INTEGER });
  // First auth: the connection opened without credentials.
  const first = await TestClient.connect(url);
  first.ws.send(JSON.stringify({ op: 'auth', ref: 1, token: far }));
  await refusedOrServed(first, [CloseCodes.AUTH_FAILED, CloseCodes.INTERNAL_ERROR]);

  // Refresh: an authenticated connection sends the far-future token.
  const refresh = await TestClient.connect(withParams({ token: token('far') }));
  await refresh.wait((f) => f.type === 'welcome');
  await refresh.request({ op: 'room.join', room: 'r' });
  refresh.ws.send(JSON.stringify({ op: 'auth', ref: 'x', token: far }));
  const outcome = await Promise.race([refresh.closed.then((c) => ({ closed: c })), refresh.wait((f) => f.ref === 'x').then((r) => ({ reply: r }))]);
  if (outcome.closed) {
    assert.equal(outcome.closed.code, CloseCodes.INTERNAL_ERROR, outcome.closed.reason);
  } else {
    // Refused as a refresh (TOKEN_INVALID) or accepted with a representable expiry: it carries on.
    assert.ok(outcome.reply.type === 'error' ? outcome.reply.code === 'TOKEN_INVALID' : Number.isSafeInteger(outcome.reply.expiresAt), JSON.stringify(outcome.reply));
    assert.equal((await refresh.request({ op: 'ping' })).type, 'ack');
    await refresh.close();
  }
  await honestClientServed();
});

const BAD_IDENTITIES = {
  'numeric clientId': { clientId: 123 },
  'empty clientId': { clientId: '' },
  'newline in clientId': { clientId: 'a\nb' },
  'bogus room action': { clientId: 'x', rooms: { '**': ['subscribe', 'dance'] } },
  'lowercase per letter': { clientId: 'x', per: { '*': { '**': 'r' } } },
  "expiresAt 'soon'": { clientId: 'x', expiresAt: 'soon' },
};

for (const [name, identity] of Object.entries(BAD_IDENTITIES)) {
  test(`finding 2: a bad host identity (${name}) closes only that connection with 4001`, async () => {
    const watcher = await TestClient.connect(withParams({ token: token('watcher') }));
    await watcher.request({ op: 'room.join', room: 'id' });
    const bad = new TestClient(withParams({ identity: JSON.stringify(identity) }));
    const { code } = await bad.closed;
    assert.equal(code, CloseCodes.AUTH_FAILED);
    assert.equal(bad.frames.length, 0);
    // The connection that was already there carries on.
    assert.equal((await watcher.request({ op: 'ping' })).type, 'ack');
    await watcher.close();
    await honestClientServed();
  });
}

test('finding 2: a throwing or rejecting credentials callback with no error listener: 4001, logged once, the process lives', async () => {
  for (const how of ['sync', 'async']) {
    logged.length = 0;
    const c = new TestClient(withParams({ throw: how }));
    assert.equal((await c.closed).code, CloseCodes.AUTH_FAILED);
    assert.equal(logged.length, 1, JSON.stringify(logged));
    const err = logged[0].find((a) => a instanceof Error);
    assert.match(err.message, /^CREDENTIALS_FAILED: /);
    assert.match(err.cause.message, /credentials (exploded|rejected)/);
  }
  await honestClientServed();
});

test("with an 'error' listener the failure is emitted there instead of logged", async () => {
  const seen = [];
  const onError = (err) => seen.push(err);
  server.on('error', onError);
  try {
    logged.length = 0;
    const c = new TestClient(withParams({ throw: 'sync' }));
    assert.equal((await c.closed).code, CloseCodes.AUTH_FAILED);
    assert.equal(seen.length, 1);
    assert.match(seen[0].message, /^CREDENTIALS_FAILED: /);
    assert.equal(logged.length, 0);
  } finally {
    server.off('error', onError);
  }
  await honestClientServed();
});

test('a host event listener that throws is reported; the connection and the batch carry on', async () => {
  logged.length = 0;
  const boom = () => {
    throw new Error('listener bug');
  };
  server.on('presenceJoined', boom);
  try {
    const watcher = await TestClient.connect(withParams({ token: token('w') }));
    await watcher.request({ op: 'room.join', room: 'l' });
    await watcher.request({ op: 'presence.subscribe', room: 'l' });
    const c = await TestClient.connect(withParams({ token: token('joiner') }));
    await c.request({ op: 'room.join', room: 'l' });
    assert.equal((await c.request({ op: 'presence.join', room: 'l' })).type, 'ack');
    await watcher.wait((f) => f.type === 'presence' && f.clientId === 'joiner');
    assert.ok(logged.some((args) => args.some((a) => a instanceof Error && /^LISTENER_FAILED: /.test(a.message))));
    // The 'event' listener still saw it (one failing listener does not stop the others).
    assert.ok(events.some((e) => e.type === 'presenceJoined' && e.clientId === 'joiner'));
    await Promise.all([watcher.close(), c.close()]);
  } finally {
    server.off('presenceJoined', boom);
  }
});

test('a flooder the engine closed gets no more frames into the engine, and its socket is gone within 2 s', async () => {
  const engine = server.engine;
  const calls = new Map();
  const message = engine.message;
  engine.message = function (id, ...rest) {
    calls.set(id, (calls.get(id) ?? 0) + 1);
    return message.call(this, id, ...rest);
  };
  try {
    const before = events.length;
    const { socket, status } = await rawConnect(withParams({ token: token('flooder') }));
    assert.equal(status, 101);
    const pump = flood(socket, textFrame('{"op":"ping"}'));
    const closedEvent = await eventually(() => events.slice(before).find((e) => e.type === 'closed'), 5000);
    const id = closedEvent.connection;
    const atClose = calls.get(id);
    const closedAt = Date.now();
    await socket.gone;
    const goneMs = Date.now() - closedAt;
    pump.stop();
    assert.ok(goneMs < 2000, `socket gone after ${goneMs} ms`);
    assert.equal(calls.get(id), atClose, 'frames reached the engine after its close');
    assert.ok(pump.sent() > atClose, `the flooder sent ${pump.sent()} frames, the engine took ${atClose}`);
  } finally {
    delete engine.message;
  }
  await honestClientServed();
});

test('the pre-auth queue is bounded in frames: overflowing it closes with 4008; a short queue is run in order', async () => {
  const slow = await TestClient.connect(withParams({ token: token('queued'), slowMs: 300 }));
  for (let i = 1; i <= 5; i++) slow.ws.send(JSON.stringify({ op: 'ping', ref: i }));
  await eventually(() => slow.frames.filter((f) => f.type === 'ack').length === 5);
  assert.deepEqual(slow.frames.filter((f) => f.type === 'ack').map((f) => f.ref), [1, 2, 3, 4, 5]);
  await slow.close();

  const opened = events.filter((e) => e.type === 'authenticated').length;
  const greedy = await TestClient.connect(withParams({ token: token('greedy'), slowMs: 500 }));
  for (let i = 0; i < 101; i++) greedy.ws.send(JSON.stringify({ op: 'ping', ref: i }));
  const { code, reason } = await greedy.closed;
  assert.equal(code, CloseCodes.POLICY_VIOLATION);
  assert.match(reason, /pre-auth queue full/);
  // The engine never opened it, even once the credentials resolved.
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(events.filter((e) => e.type === 'authenticated').length, opened);
  await honestClientServed();
});

test('the pre-auth queue is bounded in bytes (default 1 MiB)', async () => {
  const greedy = await TestClient.connect(withParams({ token: token('bytes'), slowMs: 500 }));
  const big = JSON.stringify({ op: 'ping', pad: 'x'.repeat(400 * 1024) });
  for (let i = 0; i < 3; i++) greedy.ws.send(big);
  const { code, reason } = await greedy.closed;
  assert.equal(code, CloseCodes.POLICY_VIOLATION);
  assert.match(reason, /pre-auth queue full/);
  await honestClientServed();
});

test('connections per remote address are rate limited at the upgrade (429, Retry-After); other addresses and loopback peers are not', async () => {
  // As behind a proxy: the address comes from a header (addressOf).
  const limited = attach(new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] }, leaveGraceMs: 0 }), {
    port: 0,
    host: '127.0.0.1',
    connectionRate: { burst: 3, perSecond: 1, refusalDelayMs: 300 },
    addressOf: (req) => req.headers['x-forwarded-for'] ?? req.socket.remoteAddress,
  });
  await once(limited, 'listening');
  const base = `ws://127.0.0.1:${limited.address().port}/?token=${token('n')}`;
  const from = async (address) => {
    const { socket, status, head } = await rawConnect(base, { headers: address ? { 'X-Forwarded-For': address } : {} });
    socket.destroy();
    return { status, retryAfter: /^retry-after: (\d+)/im.exec(head)?.[1] };
  };
  try {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await from('192.0.2.1')).status);
    assert.deepEqual(statuses, [101, 101, 101, 429, 429]);
    // A refusal is answered refusalDelayMs late (a tarpit for clients that retry at once).
    const askedAt = performance.now();
    assert.equal((await from('192.0.2.1')).retryAfter, '1');
    assert.ok(performance.now() - askedAt >= 290, 'the 429 came before refusalDelayMs');
    // Another address has its own bucket.
    assert.equal((await from('192.0.2.2')).status, 101);
    // Loopback peers (a test, a local proxy without addressOf) are not counted.
    for (let i = 0; i < 5; i++) assert.equal((await from(null)).status, 101);
    // A ws client sees the refusal as an unexpected response.
    const refused = new WebSocket(base, { headers: { 'X-Forwarded-For': '192.0.2.1' } });
    refused.on('error', () => {});
    const [, res] = await once(refused, 'unexpected-response');
    assert.equal(res.statusCode, 429);
    refused.terminate();
    await eventually(() => limited.connections === 0 && limited.engine.connectionCount === 0);
  } finally {
    await limited.close();
  }
});

test('refused upgrades wait out refusalDelayMs, at most maxDelayedRefusals at once; close answers them', async () => {
  const limited = attach(new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] }, leaveGraceMs: 0 }), {
    port: 0,
    host: '127.0.0.1',
    connectionRate: { burst: 1, perSecond: 0.001, refusalDelayMs: 60_000, maxDelayedRefusals: 1 },
    addressOf: (req) => req.headers['x-forwarded-for'],
  });
  await once(limited, 'listening');
  const base = `ws://127.0.0.1:${limited.address().port}/?token=${token('t')}`;
  const from = (address) => rawConnect(base, { headers: { 'X-Forwarded-For': address } });
  const first = await from('192.0.2.9');
  assert.equal(first.status, 101);
  first.socket.destroy();
  // The first refusal waits (held); the second finds the tarpit full and is answered at once.
  let heldAnswered = false;
  const held = from('192.0.2.9').then((r) => {
    heldAnswered = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 200));
  const second = await from('192.0.2.9');
  assert.equal(second.status, 429);
  second.socket.destroy();
  assert.equal(heldAnswered, false, 'the first refusal should still be held');
  // Closing the server answers what is held instead of leaving it hanging.
  await limited.close();
  const answered = await held;
  assert.equal(answered.status, 429);
  answered.socket.destroy();
});

test('a credentials callback that never settles closes its connection with 4003 after credentialsTimeoutMs, reported; others are served', async () => {
  const reported = [];
  const hanging = attach(new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] }, leaveGraceMs: 0 }), {
    port: 0,
    host: '127.0.0.1',
    connectionRate: null,
    credentialsTimeoutMs: 200,
    // ?hang never settles; anything else is read as usual.
    credentials: (req) => (req.url.includes('hang') ? new Promise(() => {}) : credentials(req)),
  });
  hanging.on('error', (err) => reported.push(err));
  await once(hanging, 'listening');
  const base = `ws://127.0.0.1:${hanging.address().port}`;
  try {
    const stuck = new TestClient(`${base}/?hang=1`);
    const { code, reason } = await stuck.closed;
    assert.equal(code, CloseCodes.AUTH_TIMEOUT);
    assert.equal(reason, 'AUTH_TIMEOUT: credentials timed out');
    assert.equal(reported.length, 1);
    assert.equal(reported[0].code, 'CREDENTIALS_FAILED');
    assert.match(reported[0].message, /did not settle within credentialsTimeoutMs/);
    const honest = await TestClient.connect(`${base}/?${new URLSearchParams({ token: token('honest') })}`);
    assert.equal((await honest.wait((f) => f.type === 'welcome')).clientId, 'honest');
    await honest.close();
    await eventually(() => hanging.connections === 0 && hanging.engine.connectionCount === 0);
  } finally {
    await hanging.close();
  }
});
