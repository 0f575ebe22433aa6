// The package inside workerd: Miniflare runs tests/js/workerd/worker.js,
// which imports the package's workerd entry (js/index.workerd.js, the .wasm
// as a CompiledWasm module), and real `ws` clients talk to it.
//
//   node --test tests/js/workerd.test.js
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { mintToken, startWorker } from './helpers.js';

const SECRET = 'workerd-test-secret';
const WAIT_MS = 3000;

const hs256 = (claims, secret = SECRET) => mintToken(secret, claims);

const tokenFor = (sub) => hs256({ sub, exp: Math.floor(Date.now() / 1000) + 600 });

let mf;
let wsBase;
const clients = [];

before(async () => {
  ({ mf, wsBase } = await startWorker('./workerd/worker.js', {
    durableObjects: { ROLLCALL: 'RollcallHost' },
    bindings: { ROLLCALL_OPTIONS: { auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] } } },
  }));
}, { timeout: 20_000 });

after(async () => {
  for (const c of clients) c.socket.terminate();
  await mf?.dispose();
});

/** A `ws` client that queues frames and lets a test await the next ones. */
function connect({ token, bearer } = {}) {
  const url = new URL(wsBase);
  if (token) url.searchParams.set('token', token);
  const headers = bearer ? { Authorization: `Bearer ${bearer}` } : {};
  const socket = new WebSocket(url, { headers });
  const client = { socket, frames: [], waiters: [], closed: null };
  clients.push(client);
  socket.on('message', (data) => {
    client.frames.push(JSON.parse(data.toString()));
    wake(client);
  });
  socket.on('close', (code, reason) => {
    client.closed = { code, reason: reason.toString() };
    wake(client);
  });
  socket.on('error', () => {});
  return client;
}

function wake(client) {
  for (const w of [...client.waiters]) w();
}

function waitFor(client, check, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${what}; frames: ${JSON.stringify(client.frames)}`));
    }, WAIT_MS);
    const done = () => {
      clearTimeout(timer);
      client.waiters = client.waiters.filter((w) => w !== attempt);
    };
    const attempt = () => {
      const value = check(client);
      if (value !== undefined) {
        done();
        resolve(value);
      }
    };
    client.waiters.push(attempt);
    attempt();
  });
}

/** Waits for (and removes) the first queued frame matching `pred`. */
function next(client, pred, what) {
  return waitFor(
    client,
    (c) => {
      const i = c.frames.findIndex(pred);
      return i === -1 ? undefined : c.frames.splice(i, 1)[0];
    },
    what,
  );
}

let ref = 0;
/** Sends a request and waits for its ack (or error) by `ref`. */
async function request(client, frame) {
  const r = ++ref;
  client.socket.send(JSON.stringify({ ...frame, ref: r }));
  const reply = await next(client, (f) => f.ref === r, `reply to ${frame.op}`);
  assert.equal(reply.type, 'ack', `${frame.op} refused: ${JSON.stringify(reply)}`);
  return reply;
}

const welcome = (client) => next(client, (f) => f.type === 'welcome', 'welcome');

test('presence join, update and leave reach a subscriber through workerd', { timeout: 10_000 }, async () => {
  const watcher = connect({ token: tokenFor('watcher') });
  const w = await welcome(watcher);
  assert.equal(w.clientId, 'watcher');
  await request(watcher, { op: 'room.join', room: 'lobby' });
  const sub = await request(watcher, { op: 'presence.subscribe', room: 'lobby' });
  assert.deepEqual(sub.members, []);

  const alice = connect({ bearer: tokenFor('alice') });
  const a = await welcome(alice);
  assert.equal(a.clientId, 'alice');
  await request(alice, { op: 'room.join', room: 'lobby' });
  await request(alice, { op: 'presence.join', room: 'lobby', data: { status: 'here' } });
  await request(alice, { op: 'presence.update', room: 'lobby', data: { status: 'away' } });
  alice.socket.terminate(); // drop the socket, no leave frame

  // Wait for the leave, then make a round trip: every frame the engine sent
  // the watcher before the ping's ack has arrived by then.
  await waitFor(watcher, (c) => (c.frames.some((f) => f.event === 'leave') ? true : undefined), 'presence leave');
  await request(watcher, { op: 'ping' });
  const presence = watcher.frames.splice(0).filter((f) => f.type === 'presence');
  assert.deepEqual(
    presence.map(({ room, event, clientId, id, data }) => ({ room, event, clientId, id, data })),
    [
      { room: 'lobby', event: 'join', clientId: 'alice', id: a.id, data: { status: 'here' } },
      { room: 'lobby', event: 'update', clientId: 'alice', id: a.id, data: { status: 'away' } },
      { room: 'lobby', event: 'leave', clientId: 'alice', id: a.id, data: { status: 'away' } },
    ],
  );

  const again = await request(watcher, { op: 'presence.get', room: 'lobby' });
  assert.deepEqual(again.members, []);
  watcher.socket.close();
});

test('a bad token is refused with 4001', { timeout: 10_000 }, async () => {
  const mallory = connect({ token: hs256({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 }, 'wrong') });
  const closed = await waitFor(mallory, (c) => c.closed ?? undefined, 'close');
  assert.equal(closed.code, 4001);
  assert.equal(mallory.frames.some((f) => f.type === 'welcome'), false);
});
