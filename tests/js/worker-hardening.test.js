// rollcall/worker contains failures (issue 10): under workerd (Miniflare), a
// bad host identity, a far-future token (at open and in an `auth` frame), a
// throwing credentials() or onEvent override close at most that one socket,
// with a documented code, are handed to onError, and the Durable Object goes
// on serving the next client. The test app is tests/js/worker-hardening/worker.js.
//
//   node --test tests/js/worker-hardening.test.js
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCodes } from '../../js/index.node.js';
import { TestClient, mintToken, startWorker, closeFrame } from './helpers.js';

const SECRET = 'worker-hardening-secret';
const ROOM = 'hardening';

let mf;
let wsBase;
const clients = [];

before(async () => {
  ({ mf, wsBase } = await startWorker('./worker-hardening/worker.js', {
    durableObjects: { PRESENCE: 'Presence' },
    bindings: { JWT_SECRET: SECRET },
  }));
});

after(async () => {
  for (const c of clients) c.ws.terminate();
  await mf?.dispose();
});

const token = (sub, exp = Math.floor(Date.now() / 1000) + 600) => mintToken(SECRET, { sub, exp });

async function connect(params) {
  const url = new URL(wsBase);
  url.searchParams.set('room', ROOM);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  const client = await TestClient.connect(url.href);
  clients.push(client);
  return client;
}

/** What the object's onError received, and the engine's connections. */
async function state() {
  return (await mf.dispatchFetch(`http://localhost/__errors?room=${ROOM}`)).json();
}

/** The object still serves: a new client gets its welcome, joins, enters presence. */
async function served() {
  const c = await connect({ token: token('honest') });
  assert.equal((await c.wait((f) => f.type === 'welcome')).clientId, 'honest');
  assert.equal((await c.request({ op: 'room.join', room: 'r' })).type, 'ack');
  assert.equal((await c.request({ op: 'presence.join', room: 'r' })).type, 'ack');
  c.ws.terminate();
}

/**
 * Closed with one of `codes` (a welcome may come first), or welcomed with a
 * representable expiry (a clamped exp) and still served.
 */
async function refusedOrServed(client, codes) {
  const welcome = await client.wait((f) => f.type === 'welcome', 1500).catch(() => null);
  if (welcome && Number.isSafeInteger(welcome.expiresAt)) {
    assert.equal((await client.request({ op: 'ping' })).type, 'ack');
    client.ws.terminate();
    return;
  }
  const { code, reason } = await closeFrame(client);
  assert.ok(codes.includes(code), `closed with ${code} ${reason}`);
}

const BAD_IDENTITIES = [{ clientId: 123 }, { clientId: '' }, { clientId: 'a\nb' }, { clientId: 'x', rooms: { '**': ['dance'] } }, { clientId: 'x', expiresAt: 'soon' }];

test('a bad host identity closes only that socket with 4001; the object serves the next client', { timeout: 20_000 }, async () => {
  const watcher = await connect({ token: token('watcher') });
  await watcher.wait((f) => f.type === 'welcome');
  for (const identity of BAD_IDENTITIES) {
    const bad = await connect({ identity: JSON.stringify(identity) });
    const { code } = await closeFrame(bad);
    assert.equal(code, CloseCodes.AUTH_FAILED, JSON.stringify(identity));
    assert.equal(bad.frames.length, 0);
  }
  assert.equal((await watcher.request({ op: 'ping' })).type, 'ack');
  await served();
  const { connectionIds } = await state();
  assert.deepEqual(connectionIds, [1]); // the watcher, and nobody else kept
});

test('a throwing credentials() closes with 4001 and is handed to onError', { timeout: 15_000 }, async () => {
  const before = (await state()).errors.length;
  const bad = await connect({ throw: '1' });
  assert.equal((await closeFrame(bad)).code, CloseCodes.AUTH_FAILED);
  const { errors } = await state();
  assert.equal(errors.length, before + 1);
  assert.match(errors.at(-1), /^CREDENTIALS_FAILED: .*credentials exploded/);
  await served();
});

test('credentials() that never settles closes with 4003 after credentialsTimeoutMs and is reported', { timeout: 15_000 }, async () => {
  const { errors: earlier, connectionIds: held } = await state();
  const before = earlier.length;
  const started = Date.now();
  const hung = await connect({ hang: '1' });
  const { code, reason } = await closeFrame(hung);
  assert.equal(code, CloseCodes.AUTH_TIMEOUT);
  assert.match(reason, /^AUTH_TIMEOUT/);
  assert.ok(Date.now() - started >= 400, 'not before the time-out');
  const { errors, connectionIds } = await state();
  assert.equal(errors.length, before + 1);
  assert.match(errors.at(-1), /^CREDENTIALS_FAILED: credentials: did not settle within credentialsTimeoutMs \(500 ms\)/);
  assert.deepEqual(connectionIds, held, 'the engine keeps nothing of it');
  await served();
});

test('a far-future exp at open and in an auth frame closes only that socket', { timeout: 15_000 }, async () => {
  const far = mintToken(SECRET, { sub: 'far', exp: Number.MAX_SAFE_INTEGER });
  await refusedOrServed(await connect({ token: far }), [CloseCodes.AUTH_FAILED]);
  await served();
  const first = await connect({});
  first.ws.send(JSON.stringify({ op: 'auth', ref: 1, token: far }));
  await refusedOrServed(first, [CloseCodes.AUTH_FAILED, CloseCodes.INTERNAL_ERROR]);
  await served();
});

test('an onEvent override that throws is reported; the batch and the connection carry on', { timeout: 15_000 }, async () => {
  const before = (await state()).errors.length;
  const c = await connect({ token: token('evented'), eventThrows: '1' });
  await c.wait((f) => f.type === 'welcome');
  assert.equal((await c.request({ op: 'room.join', room: 'e' })).type, 'ack');
  assert.equal((await c.request({ op: 'presence.join', room: 'e' })).type, 'ack');
  const { errors } = await state();
  assert.ok(errors.length > before);
  assert.ok(errors.slice(before).every((m) => /^LISTENER_FAILED: onEvent threw: onEvent bug/.test(m)), JSON.stringify(errors));
  c.ws.terminate();
});
