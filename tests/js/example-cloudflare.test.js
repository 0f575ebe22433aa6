// examples/cloudflare runs in workerd: Miniflare loads the example's
// src/index.js unmodified, with its wrangler.toml's compatibility date and
// Durable Object binding, and real `ws` clients make a round trip.
//
//   node --test tests/js/example-cloudflare.test.js
//
// The example imports the package as `rollcall/worker`. Wrangler would
// resolve that through node_modules and bundle it; Miniflare takes modules
// as they are. workerd resolves an import like a URL relative to the
// importing module, so `rollcall/worker` imported by
// examples/cloudflare/src/index.js is the module named
// examples/cloudflare/src/rollcall/worker: the test supplies a one-line shim
// under that name that re-exports the repository's js/worker.js. The other
// modules are the package's own files (package.json "files").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { TestClient, mintToken } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EXAMPLE = `${ROOT}examples/cloudflare/`;
const SECRET = 'example-test-secret';

/** The few wrangler.toml values the test needs (a full TOML parser is not needed for them). */
function fromToml(key) {
  const text = readFileSync(`${EXAMPLE}wrangler.toml`, 'utf8');
  const m = new RegExp(`^${key}\\s*=\\s*"([^"]*)"`, 'm').exec(text);
  assert.ok(m, `wrangler.toml has ${key}`);
  return m[1];
}

let mf;
let wsBase;
let httpBase;
const clients = [];

before(async () => {
  const main = fromToml('main');
  const toml = readFileSync(`${EXAMPLE}wrangler.toml`, 'utf8');
  const [, name, className] = /\[\[durable_objects\.bindings\]\]\s*name\s*=\s*"([^"]+)"\s*class_name\s*=\s*"([^"]+)"/.exec(toml);
  const binding = { name, className };
  mf = new Miniflare({
    modulesRoot: ROOT,
    modules: [
      { type: 'ESModule', path: `${EXAMPLE}${main}` },
      { type: 'ESModule', path: `${EXAMPLE}src/rollcall/worker`, contents: "export * from '../../../../js/worker.js';\n" },
      { type: 'ESModule', path: `${ROOT}js/worker.js` },
      { type: 'ESModule', path: `${ROOT}js/index.workerd.js` },
      { type: 'ESModule', path: `${ROOT}js/engine.js` },
      { type: 'ESModule', path: `${ROOT}js/errors.js` },
      { type: 'ESModule', path: `${ROOT}js/keys.js` },
      { type: 'ESModule', path: `${ROOT}js/jwt.js` },
      { type: 'ESModule', path: `${ROOT}pkg/rollcall_wasm.js` },
      { type: 'CompiledWasm', path: `${ROOT}pkg/rollcall_wasm_bg.wasm` },
    ],
    compatibilityDate: fromToml('compatibility_date'),
    durableObjects: { [binding.name]: binding.className },
    bindings: { JWT_SECRET: SECRET, AUTH_TIMEOUT_MS: fromToml('AUTH_TIMEOUT_MS') },
  });
  const url = await mf.ready;
  httpBase = url.href;
  wsBase = url.href.replace(/^http/, 'ws');
});

after(async () => {
  for (const c of clients) c.ws.terminate();
  await mf?.dispose();
});

const tokenFor = (sub) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 600 });

async function connect(room, sub) {
  const client = await TestClient.connect(`${wsBase}?room=${encodeURIComponent(room)}&token=${tokenFor(sub)}`);
  clients.push(client);
  client.welcome = await client.wait((f) => f.type === 'welcome');
  return client;
}

async function ok(client, frame) {
  const reply = await client.request(frame);
  assert.equal(reply.type, 'ack', `${frame.op} refused: ${JSON.stringify(reply)}`);
  return reply;
}

test('the example answers plain requests', async () => {
  const home = await fetch(httpBase);
  assert.equal(home.status, 200);
  assert.match(await home.text(), /room=/);
  const noRoom = await mf.dispatchFetch(httpBase, { headers: { Upgrade: 'websocket' } });
  assert.equal(noRoom.status, 400);
  await noRoom.text();
});

test('a WebSocket round trip through the example Worker and its Durable Object', { timeout: 10_000 }, async () => {
  const alice = await connect('lobby', 'alice');
  assert.equal(alice.welcome.clientId, 'alice');
  await ok(alice, { op: 'room.join', room: 'lobby' });
  await ok(alice, { op: 'presence.join', room: 'lobby', data: { name: 'Alice' } });

  const bob = await connect('lobby', 'bob');
  await ok(bob, { op: 'room.join', room: 'lobby' });
  const sub = await ok(bob, { op: 'presence.subscribe', room: 'lobby' });
  assert.deepEqual(sub.members, [{ id: alice.welcome.id, clientId: 'alice', data: { name: 'Alice' } }]);

  // Another ?room= is another object: it does not see the lobby's members.
  const carol = await connect('elsewhere', 'carol');
  await ok(carol, { op: 'room.join', room: 'lobby' });
  assert.deepEqual((await ok(carol, { op: 'presence.get', room: 'lobby' })).members, []);

  // A clean close leaves at once (a dropped socket would be held in grace first).
  alice.ws.close(1000, 'bye');
  const leave = await bob.wait((f) => f.type === 'presence' && f.event === 'leave');
  assert.equal(leave.clientId, 'alice');
  bob.ws.terminate();
  carol.ws.terminate();
});

test('GET /counts answers through an RPC call on the object stub', { timeout: 10_000 }, async () => {
  const dora = await connect('counted', 'dora');
  await ok(dora, { op: 'room.join', room: 'counted' });
  await ok(dora, { op: 'presence.join', room: 'counted', data: null });
  const res = await mf.dispatchFetch('http://localhost/counts?room=counted');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { connections: 1, members: 1, clients: 1, inGrace: 0 });
  dora.ws.close(1000, 'bye');
});

test('a bad token is refused by the engine in the object (4001)', { timeout: 10_000 }, async () => {
  const token = mintToken('not-the-secret', { sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 });
  const client = await TestClient.connect(`${wsBase}?room=lobby&token=${token}`);
  clients.push(client);
  // The close frame comes at once; workerd closes the TCP connection of a
  // hibernatable socket closed outside its own events only ~10 s later.
  for (let i = 0; !client.ws._closeFrameReceived && client.ws.readyState !== 3; i++) {
    assert.ok(i < 300, 'closed');
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(client.ws._closeCode, 4001);
  assert.equal(client.frames.length, 0);
  client.ws.terminate();
});
