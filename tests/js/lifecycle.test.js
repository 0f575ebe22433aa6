// Issue 14's conventions through the public API, against a real
// rollcall/node server on 127.0.0.1: one RollcallError with stable codes
// (engine, token, client), the client lifecycle (connect settles when usable,
// a failed first connect stops unless `retry`, awaitable close with 1000,
// 1001 on server shutdown, AbortSignal), the per-client presence view, SDK
// maps safe for any id, and JWK / Uint8Array keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { generateKeyPairSync, createSign, createHmac } from 'node:crypto';
import { Engine, CloseCodes, RollcallError } from '../../js/index.js';
import { attach } from '../../js/node.js';
import { Client, RollcallError as ClientError } from '../../js/client.node.js';
import { mintToken, eventually } from './helpers.js';

const SECRET = 'lifecycle-test-secret';
const exp = (seconds = 600) => Math.floor(Date.now() / 1000) + seconds;

/** A rollcall/node server with HS256 tokens, or host-side auth from ?name=. */
async function serve(options = {}) {
  const server = attach(new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] } }), { port: 0, host: '127.0.0.1', ...options });
  await once(server, 'listening');
  return { server, url: `ws://127.0.0.1:${server.address().port}` };
}

/** Runs `fn(url)` against a host-side-auth server, then closes the server. */
async function withServer(fn) {
  const { server, url } = await serve({ credentials: byName });
  try {
    await fn(url);
  } finally {
    await server.close();
  }
}
const byName = (req) => ({ identity: { clientId: new URL(req.url, 'http://x').searchParams.get('name'), per: { r: { '**': 'CRUD' } } } });

/** A port nothing listens on (taken, then released). */
async function freePort() {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

test('Engine errors are RollcallErrors with stable codes: bad id, freed engine, token reasons', () => {
  const engine = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] } });
  assert.equal(RollcallError, ClientError, 'one class for the engine and the client');
  assert.throws(() => engine.open('7', { identity: { clientId: 'a' } }), (e) => e instanceof RollcallError && e.code === 'BAD_ARGUMENT' && /"7"/.test(e.message));
  assert.throws(() => engine.message(-1, '{}'), { code: 'BAD_ARGUMENT' });
  engine.open(1, { identity: { clientId: 'a' } });
  assert.throws(() => engine.open(1, { identity: { clientId: 'a' } }), { name: 'RollcallError', code: 'DUPLICATE_CONNECTION' });
  assert.throws(() => new Engine({ limits: { noSuchLimit: 1 } }), { code: 'BAD_OPTIONS' });
  assert.throws(() => engine.verifyToken(mintToken(SECRET, { sub: 'x', exp: exp(-3600) })), (e) => e.code === 'EXPIRED' && e.message === 'EXPIRED');
  assert.throws(() => engine.verifyToken(mintToken('other', { sub: 'x', exp: exp() })), { code: 'BAD_SIGNATURE' });
  assert.throws(() => engine.verifyToken('not a jwt'), { code: 'MALFORMED' });
  assert.throws(() => Engine.matchCount('', ['a']), { code: 'BAD_PATTERN' });
  engine.free();
  assert.throws(() => engine.tick(), (e) => e instanceof RollcallError && e.code === 'ENGINE_FREED' && !/null pointer/.test(e.message));
  assert.throws(() => engine.connectionIds, { code: 'ENGINE_FREED' });
  engine.free(); // twice is harmless
});

test('keys as a JWK (RSA, EC, Ed25519, oct) and as a Uint8Array secret verify tokens', () => {
  const BYTES = Uint8Array.from([0xff, 0x00, 0x80, 0xc3, 0x28, 0x01, 0xfe, 0x7f, 0xa0, 0xa1]);
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const sign = (alg, key, claims, kid) => {
    const body = `${b64({ alg, typ: 'JWT', kid })}.${b64(claims)}`;
    if (alg === 'RS256') return `${body}.${createSign('sha256').update(body).sign(key).toString('base64url')}`;
    if (alg === 'ES256') return `${body}.${createSign('sha256').update(body).sign({ key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    throw new Error(alg);
  };
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keys = [
    { kid: 'rsa', algorithm: 'RS256', jwk: rsa.publicKey.export({ format: 'jwk' }) },
    { jwk: { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec', alg: 'ES256' } },
    { kid: 'bytes', algorithm: 'HS256', secret: BYTES }, // not UTF-8
    { kid: 'oct', algorithm: 'HS512', jwk: { kty: 'oct', k: Buffer.from('oct-secret').toString('base64url') } },
  ];
  const engine = new Engine({ auth: { keys } });
  assert.equal(engine.verifyToken(sign('RS256', rsa.privateKey, { sub: 'r', exp: exp() }, 'rsa')).clientId, 'r');
  assert.equal(engine.verifyToken(sign('ES256', ec.privateKey, { sub: 'e', exp: exp() }, 'ec')).clientId, 'e');
  assert.throws(() => engine.verifyToken(sign('ES256', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, { sub: 'e', exp: exp() }, 'ec')), { code: 'BAD_SIGNATURE' });
  // HS256 with the bytes key (the header names its kid).
  const body = `${b64({ alg: 'HS256', typ: 'JWT', kid: 'bytes' })}.${b64({ sub: 'b', exp: exp() })}`;
  assert.equal(engine.verifyToken(`${body}.${createHmac('sha256', BYTES).update(body).digest('base64url')}`).clientId, 'b');
  const body512 = `${b64({ alg: 'HS512', typ: 'JWT', kid: 'oct' })}.${b64({ sub: 'o', exp: exp() })}`;
  assert.equal(engine.verifyToken(`${body512}.${createHmac('sha512', 'oct-secret').update(body512).digest('base64url')}`).clientId, 'o');
  // A private JWK is refused: the engine only verifies.
  assert.throws(() => new Engine({ auth: { keys: [{ algorithm: 'RS256', jwk: rsa.privateKey.export({ format: 'jwk' }) }] } }), { code: 'BAD_OPTIONS' });
  const ed = generateKeyPairSync('ed25519');
  const edEngine = new Engine({ auth: { keys: [{ algorithm: 'EdDSA', jwk: ed.publicKey.export({ format: 'jwk' }) }] } });
  edEngine.free();
  engine.free();
});

test('connect() settles when usable: token, host-side auth; close() resolves after a 1000 close', async () => {
  const { server, url } = await serve({ credentials: byName });
  try {
    const closes = [];
    server.wss.on('connection', (ws) => ws.on('close', (code) => closes.push(code)));
    const c = new Client({ url: `${url}/?name=hana`, hostAuth: true });
    await c.connect();
    assert.equal(c.connectionStatus, 'connected');
    assert.equal(c.clientId, 'hana');
    await c.close();
    assert.equal(c.connectionStatus, 'disconnected');
    await eventually(() => closes.length === 1);
    assert.deepEqual(closes, [1000]);
    await c.close(); // again: nothing to wait for
  } finally {
    await server.close();
  }
});

test('a failed first connect rejects and stops; with retry it waits for the server', async () => {
  const port = await freePort();
  const c = new Client({ url: `ws://127.0.0.1:${port}`, token: mintToken(SECRET, { sub: 'a', exp: exp() }), minDelayMs: 20, maxDelayMs: 50 });
  const seen = [];
  c.on('connectionStatusChanged', (s) => seen.push(s));
  await assert.rejects(c.connect(), { name: 'RollcallError', code: 'DISCONNECTED' });
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(seen, ['connecting', 'disconnected'], 'no reconnect in the background');

  const r = new Client({ url: `ws://127.0.0.1:${port}`, token: mintToken(SECRET, { sub: 'b', exp: exp() }), minDelayMs: 20, maxDelayMs: 50, retry: true });
  const connecting = r.connect();
  await new Promise((res) => setTimeout(res, 150));
  const server = attach(new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] } }), { port, host: '127.0.0.1' });
  try {
    await connecting;
    assert.equal(r.connectionStatus, 'connected');
    assert.equal(r.clientId, 'b');
    await r.close();
  } finally {
    await server.close();
  }
});

test('a refused token: connect() rejects once with AUTH_FAILED, the close code and the reason, message not doubled', async () => {
  const { server, url } = await serve();
  try {
    const c = new Client({ url, token: mintToken('wrong', { sub: 'm', exp: exp() }) });
    c.on('error', () => {});
    const err = await c.connect().catch((e) => e);
    assert.ok(err instanceof RollcallError);
    assert.equal(err.code, 'AUTH_FAILED');
    assert.equal(err.closeCode, CloseCodes.AUTH_FAILED);
    assert.equal(err.reason, 'BAD_SIGNATURE');
    assert.equal(err.message, 'AUTH_FAILED: BAD_SIGNATURE');
  } finally {
    await server.close();
  }
});

test('server.close() closes clients with 1001; a client sees 1001 and the server-side close is clean', async () => {
  const { server, url } = await serve();
  const c = new Client({ url, token: mintToken(SECRET, { sub: 's', exp: exp() }), reconnect: false });
  await c.connect();
  const closed = once(c, 'close');
  await server.close();
  const [{ code }] = await closed;
  assert.equal(code, 1001);
  assert.equal(c.connectionStatus, 'disconnected');
});

test('AbortSignal: connect() and requests reject with ABORTED, the client stays usable', async () => {
  await withServer(async (url) => {
    const early = new Client({ url: `${url}/?name=x`, hostAuth: true });
    await assert.rejects(early.connect({ signal: AbortSignal.abort() }), { code: 'ABORTED' });
    assert.equal(early.connectionStatus, 'disconnected');

    const c = new Client({ url: `${url}/?name=y`, hostAuth: true });
    await c.connect({ signal: new AbortController().signal });
    const realm = await c.realm.get('r');
    const ac = new AbortController();
    const pending = realm.object.list('**', { signal: ac.signal });
    ac.abort();
    await assert.rejects(pending, (e) => e instanceof RollcallError && e.code === 'ABORTED');
    await assert.rejects(realm.object.get('x', { signal: AbortSignal.abort() }), { code: 'ABORTED' });
    await realm.object.create('x', { ok: 1 });
    assert.deepEqual((await realm.object.get('x')).data, { ok: 1 });
    await c.close();
  });
});

test("presence.get({ view: 'client' }): one entry per clientId across devices", async () => {
  await withServer(async (url) => {
    const phone = await new Client({ url: `${url}/?name=ana`, hostAuth: true }).connect();
    const watch = await new Client({ url: `${url}/?name=ana`, hostAuth: true }).connect();
    const bo = await new Client({ url: `${url}/?name=bo`, hostAuth: true }).connect();
    await (await phone.join('v')).presence.join({ dev: 'phone' });
    await (await watch.join('v')).presence.join({ dev: 'watch' });
    const room = await bo.join('v');
    const clients = await room.presence.get({ view: 'client' });
    assert.deepEqual(clients.map((c) => [c.clientId, c.connections.map((m) => m.data.dev)]), [['ana', ['phone', 'watch']]]);
    assert.equal((await room.presence.get()).length, 2);
    await Promise.all([phone.close(), watch.close(), bo.close()]);
  });
});

test('object subscriptions keep ids like __proto__, hasOwnProperty and constructor as plain keys', async () => {
  await withServer(async (url) => {
    const c = await new Client({ url: `${url}/?name=p`, hostAuth: true }).connect();
    const realm = await c.realm.get('r');
    const sub = await realm.object.subscribe();
    const other = await realm.object.subscribe('**');
    for (const id of ['__proto__', 'hasOwnProperty', 'constructor', 'toString']) await realm.object.create(id, { id });
    await eventually(() => Object.keys(sub.objects).length === 4);
    assert.deepEqual(Object.keys(sub.objects).sort(), ['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
    assert.equal(sub.objects.__proto__.data.id, '__proto__');
    assert.equal(Object.getPrototypeOf(other.objects), null, "one subscription's ids do not touch another's map");
    assert.equal(Object.hasOwn(sub.objects, 'hasOwnProperty'), true);
    assert.equal(({}).constructor, Object, 'Object.prototype is untouched');
    await realm.object.delete('__proto__');
    await eventually(() => !Object.hasOwn(sub.objects, '__proto__'));
    assert.equal(Object.keys(other.objects).length, 3);
    await c.close();
  });
});
