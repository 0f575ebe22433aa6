// Liveness, leave grace and resume on real sockets: rollcall/node and the
// SDK through a TCP proxy the test controls (tests/js/proxy.js), which can
// make links go silent, cut them, or refuse new ones. Short time-outs
// (options) keep it fast: idle 600 ms, grace 1 000 ms, pings every 150 ms.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Engine } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { Client } from '../../js/client.node.js';
import { mintToken, TestClient, eventually } from './helpers.js';
import { startProxy } from './proxy.js';

const SECRET = 'liveness-test-secret';
const IDLE = 600;
const GRACE = 1000;
const PING = 150;
let server;
let url;
let proxy;
let proxyUrl;
const hostEvents = [];
const clients = [];
const sockets = [];

const token = (sub, extra = {}) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 600, ...extra });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function serve(port = 0, options = {}) {
  const engine = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] }, idleTimeoutMs: IDLE, leaveGraceMs: GRACE });
  return attach(engine, { port, host: '127.0.0.1', pingIntervalMs: PING, ...options });
}

before(async () => {
  server = serve();
  server.on('event', (e) => hostEvents.push(e));
  await once(server, 'listening');
  url = `ws://127.0.0.1:${server.address().port}`;
  proxy = await startProxy(server.address().port);
  proxyUrl = `ws://127.0.0.1:${proxy.port}`;
});

afterEach(() => {
  proxy.refuse(false);
  for (const c of clients.splice(0)) c.close();
  for (const s of sockets.splice(0)) s.ws.terminate();
});

after(async () => {
  await proxy.close();
  await server.close();
});

/** An SDK client with fast backoff and liveness; through the proxy unless told. */
async function sdk(sub, options = {}) {
  const c = new Client({
    url: proxyUrl,
    token: token(sub, options.claims),
    minDelayMs: 50,
    maxDelayMs: 60,
    pingIntervalMs: 100,
    serverTimeoutMs: 500,
    ...options,
  });
  clients.push(c);
  c.seen = [];
  c.on('connectionStatusChanged', (status, { reason }) => c.seen.push([status, reason]));
  await c.connect();
  return c;
}

/** A raw ws client (answers protocol pings, sends nothing by itself). */
async function raw(base, sub, claims) {
  const c = await TestClient.connect(`${base}/?token=${token(sub, claims)}`);
  sockets.push(c);
  await c.wait((f) => f.type === 'welcome');
  return c;
}

/** A watcher subscribed to a room's presence, recording [event, clientId, data, id]. */
async function watch(room) {
  const w = await sdk(`watcher-${room}`, { url });
  const events = [];
  await (await w.join(room)).presence.subscribe((e) => events.push([e.event, e.clientId, e.data, e.id]));
  return events;
}

test('a silent client (no FIN, no RST) is gone within idle + grace, and its objects turn disconnected', async () => {
  const R = 'silent-realm';
  const admin = await raw(url, 'admin', { per: { [R]: { '**': 'CRUD' } } });
  await admin.request({ op: 'object.create', realm: R, id: 'riders/sam' });
  await admin.request({ op: 'realm.subscribe', realm: R, event: 'connectionStatusChanged' });
  await admin.request({ op: 'room.join', room: 'silent' });
  await admin.request({ op: 'presence.subscribe', room: 'silent' });
  const sam = await raw(proxyUrl, 'sam', { dpv: { [R]: ['riders/sam'] } });
  await sam.request({ op: 'room.join', room: 'silent' });
  await sam.request({ op: 'presence.join', room: 'silent', data: { on: 'bike' } });
  await admin.wait((f) => f.type === 'presence' && f.event === 'join' && f.clientId === 'sam');
  assert.equal(server.engine.object(R, 'riders/sam').connectionStatus, 'connected');

  const t0 = Date.now();
  proxy.silence(); // a tunnel: the socket stays open, nothing moves
  await eventually(() => hostEvents.some((e) => e.type === 'connectionLost'), IDLE + 1000);
  const lostAfter = Date.now() - t0;
  assert.equal(server.engine.counts('silent').inGrace, 1, 'in grace: still a member, marked');
  const leave = await admin.wait((f) => f.type === 'presence' && f.event === 'leave' && f.clientId === 'sam', IDLE + GRACE + 2000);
  const leftAfter = Date.now() - t0;
  const status = await admin.wait((f) => f.type === 'event' && f.data?.connectionStatus === 'disconnected', 1000);
  assert.equal(status.id, 'riders/sam');
  assert.equal(leave.data.on, 'bike');
  // Not before the idle time-out (less one ping) and its grace; within the documented bound.
  assert.ok(lostAfter >= IDLE - PING, `lost after ${lostAfter} ms`);
  assert.ok(leftAfter >= IDLE - PING + GRACE, `left after ${leftAfter} ms`);
  assert.ok(leftAfter <= IDLE + GRACE + 500, `left after ${leftAfter} ms, over idle + grace`);
  // Nothing about sam between his join and his one leave.
  const about = admin.frames.filter((f) => f.clientId === 'sam' || f.id === 'riders/sam');
  assert.deepEqual(
    about.map((f) => [f.event, f.data?.connectionStatus]),
    [['connectionStatusChanged', 'connected'], ['join', undefined], ['leave', undefined], ['connectionStatusChanged', 'disconnected']],
  );
  assert.equal(server.engine.object(R, 'riders/sam').connectionStatus, 'disconnected');
});

test('a silent server is detected by the SDK: reconnecting (server silent), then connected (resumed)', async () => {
  const events = await watch('hush');
  const c = await sdk('quiet');
  await (await c.join('hush')).presence.join({ here: true });
  await eventually(() => events.length === 1);
  const id = c.id;
  proxy.silence(); // new links still pass
  await eventually(() => c.seen.length === 4, 5000);
  assert.deepEqual(c.seen, [
    ['connecting', 'connecting'],
    ['connected', 'connected'],
    ['reconnecting', 'server silent'],
    ['connected', 'resumed'],
  ]);
  assert.equal(c.id, id);
  await sleep(IDLE + GRACE + 200);
  assert.deepEqual(events, [['join', 'quiet', { here: true }, id]], 'the watcher saw nothing of it');
  assert.deepEqual(server.engine.members('hush').filter((m) => m.clientId === 'quiet').map((m) => [m.id, m.inGrace]), [[id, false]]);
});

test('an SDK reconnect within grace: zero events at every observer, the client as it was, what it missed delivered', async () => {
  const events = await watch('blink');
  const bob = await sdk('bob');
  const room = await bob.join('blink');
  await room.presence.join({ v: 1 });
  const bobEvents = [];
  await room.presence.subscribe((e) => bobEvents.push([e.event, e.clientId, e.data]));
  const chat = [];
  await room.subscribe('chat', (data) => chat.push(data));
  const id = bob.id;

  proxy.refuse(true);
  proxy.cut();
  await eventually(() => bob.connectionStatus === 'reconnecting');
  // While he is away, carol comes and changes.
  const carol = await sdk('carol', { url });
  const carolRoom = await carol.join('blink');
  await carolRoom.presence.join({ c: 1 });
  await carolRoom.presence.update({ c: 2 });
  await eventually(() => events.length === 3);
  proxy.refuse(false);

  await eventually(() => bob.connectionStatus === 'connected', 3000);
  assert.equal(bob.connectionReason, 'resumed');
  assert.equal(bob.id, id);
  await eventually(() => bobEvents.length === 3);
  assert.deepEqual(bobEvents, [
    ['join', 'bob', { v: 1 }],
    ['join', 'carol', { c: 1 }],
    ['update', 'carol', { c: 2 }],
  ]);
  const byId = (ms) => ms.map(({ id: i, clientId, data }) => ({ id: i, clientId, data })).sort((a, b) => a.id.localeCompare(b.id));
  assert.deepEqual(byId(room.presence.members), byId(server.engine.members('blink')));
  // His subscriptions are still his.
  assert.equal(await carolRoom.publish('chat', 'hi'), 1);
  await eventually(() => chat.length === 1);

  await sleep(GRACE + 200);
  assert.deepEqual(
    events.map(([e, who]) => [e, who]),
    [['join', 'bob'], ['join', 'carol'], ['update', 'carol']],
    'nothing about bob but his first join',
  );
  assert.equal(server.engine.counts('blink').inGrace, 0);
});

test('a reconnect after the grace: one leave, then one join', async () => {
  const events = await watch('late');
  const dan = await sdk('dan');
  await (await dan.join('late')).presence.join({ d: 1 });
  await eventually(() => events.length === 1);
  const oldId = dan.id;
  proxy.refuse(true);
  proxy.cut();
  await eventually(() => events.length === 2, GRACE + 1000);
  proxy.refuse(false);
  await eventually(() => dan.connectionStatus === 'connected' && events.length === 3, 3000);
  assert.equal(dan.connectionReason, 'rejoined');
  assert.notEqual(dan.id, oldId);
  await sleep(200);
  assert.deepEqual(events, [
    ['join', 'dan', { d: 1 }, oldId],
    ['leave', 'dan', { d: 1 }, oldId],
    ['join', 'dan', { d: 1 }, dan.id],
  ]);
});

test('a server restart never shows an observer a wrong member, even when the new server reuses connection ids', async () => {
  // Both servers count connection ids from 1 (as the adapter once did):
  // ids name other people after the restart. The SDK reconciles by identity.
  const first = serve(0, { firstConnectionId: 1 });
  await once(first, 'listening');
  const port = first.address().port;
  const at = `ws://127.0.0.1:${port}`;
  // Reconnect delays that put everyone back in a known order (bob, carol,
  // alice, then the observer): every old id then names someone else.
  const back = (ms) => ({ url: at, minDelayMs: ms, maxDelayMs: ms });
  const observer = await sdk('observer', back(2000));
  const log = [];
  const oroom = await observer.join('restart');
  await oroom.presence.subscribe((e) => log.push([e.event, e.id, e.clientId]));
  const people = [];
  for (const [name, ms] of [['alice', 800], ['bob', 100], ['carol', 300]]) {
    const p = await sdk(name, back(ms));
    await (await p.join('restart')).presence.join({ name });
    people.push(p);
  }
  await eventually(() => log.length === 3);
  await first.close();
  const second = serve(port, { firstConnectionId: 1 });
  try {
    await once(second, 'listening');
    const back = (c) => c.connectionStatus === 'connected' && c.connectionReason === 'rejoined';
    await eventually(() => [observer, ...people].every(back), 6000);
    await eventually(() => second.engine.members('restart').length === 3 && oroom.presence.members.length === 3, 3000);
    await sleep(200);
    // Replay the observer's events: a join of a present id, or an update or
    // leave naming another clientId than the id's, would be a wrong member.
    const present = new Map();
    for (const [event, id, clientId] of log) {
      if (event === 'join') {
        assert.ok(!present.has(id), `join of present ${id} (${clientId}): ${JSON.stringify(log)}`);
        present.set(id, clientId);
      } else {
        assert.equal(present.get(id), clientId, `${event} of ${id} as ${clientId}: ${JSON.stringify(log)}`);
        if (event === 'leave') present.delete(id);
      }
    }
    const server2 = second.engine.members('restart').map((m) => [m.id, m.clientId]).sort();
    const before = new Map(log.filter(([e]) => e === 'join').slice(0, 3).map(([, id, who]) => [id, who]));
    assert.ok(server2.some(([id, who]) => before.has(id) && before.get(id) !== who), 'an id now names someone else');
    assert.deepEqual([...present].sort(), server2);
    assert.deepEqual(
      oroom.presence.members.map((m) => [m.id, m.clientId, m.data]).sort(),
      second.engine.members('restart').map((m) => [m.id, m.clientId, m.data]).sort(),
    );
  } finally {
    for (const c of [observer, ...people]) c.close();
    await second.close();
  }
});

test('by default connection ids (member ids) never repeat across restarts', async () => {
  const ids = [];
  for (let i = 0; i < 2; i++) {
    const s = serve();
    await once(s, 'listening');
    const c = await raw(`ws://127.0.0.1:${s.address().port}`, `u${i}`);
    ids.push(c.frames[0].id);
    c.ws.terminate();
    await s.close();
    await sleep(2);
  }
  assert.notEqual(ids[0], ids[1]);
  const [a, b] = ids.map((id) => Number(id.split(':')[1]));
  assert.ok(b > a && a > Date.UTC(2020, 0) * 1000, `${ids}`);
});

test('a provider that blinks within grace causes no connectionStatusChanged', async () => {
  const R = 'blink-realm';
  const admin = await raw(url, 'admin', { per: { [R]: { '**': 'CRUD' } } });
  await admin.request({ op: 'object.create', realm: R, id: 'riders/pat' });
  await admin.request({ op: 'realm.subscribe', realm: R, event: 'connectionStatusChanged' });
  const pat = await sdk('pat', { claims: { dpv: { [R]: ['riders/pat'] } } });
  await admin.wait((f) => f.type === 'event' && f.data?.connectionStatus === 'connected');
  proxy.cut();
  await eventually(() => pat.seen.length === 4, 3000);
  assert.deepEqual(pat.seen.map(([s]) => s), ['connecting', 'connected', 'reconnecting', 'connected']);
  assert.equal(pat.connectionReason, 'resumed');
  await sleep(GRACE + 200);
  const statuses = admin.frames.filter((f) => f.type === 'event').map((f) => f.data.connectionStatus);
  assert.deepEqual(statuses, ['connected'], 'no disconnected, no second connected');
  assert.deepEqual(
    [server.engine.object(R, 'riders/pat').connectionStatus, server.engine.object(R, 'riders/pat').providers],
    ['connected', 1],
  );
});

test("a client's clean close leaves at once; a dropped socket only after its grace", async () => {
  const events = await watch('ends');
  const clean = await raw(url, 'clean');
  const dropped = await raw(url, 'dropped');
  for (const c of [clean, dropped]) {
    await c.request({ op: 'room.join', room: 'ends' });
    await c.request({ op: 'presence.join', room: 'ends' });
  }
  await eventually(() => events.length === 2);
  const t0 = Date.now();
  clean.ws.close(1000);
  dropped.ws.terminate();
  await eventually(() => events.length === 3);
  assert.deepEqual(events[2].slice(0, 2), ['leave', 'clean']);
  assert.ok(Date.now() - t0 < GRACE / 2);
  await eventually(() => events.length === 4, GRACE + 1000);
  assert.deepEqual(events[3].slice(0, 2), ['leave', 'dropped']);
  assert.ok(Date.now() - t0 >= GRACE - 50, `dropped left after ${Date.now() - t0} ms`);
});

test('a client process frozen with SIGSTOP is gone within idle + grace', async () => {
  const events = await watch('frozen');
  const script = `
    import WebSocket from 'ws';
    const ws = new WebSocket(process.argv[1]);
    ws.on('open', () => {
      ws.send('{"op":"room.join","room":"frozen"}');
      ws.send('{"op":"presence.join","room":"frozen","data":{"frozen":false}}');
    });
    ws.on('message', (m) => { if (String(m).includes('"op":"presence.join"')) console.log('ready'); });
  `;
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, `${url}/?token=${token('ice')}`], {
    cwd: new URL('../../', import.meta.url),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise((resolve) => child.stdout.on('data', (d) => String(d).includes('ready') && resolve()));
    await eventually(() => events.length === 1);
    const t0 = Date.now();
    child.kill('SIGSTOP');
    await eventually(() => events.length === 2, IDLE + GRACE + 2000);
    const after = Date.now() - t0;
    assert.deepEqual(events[1].slice(0, 2), ['leave', 'ice']);
    assert.ok(after >= IDLE - PING + GRACE && after <= IDLE + GRACE + 500, `left after ${after} ms`);
  } finally {
    child.kill('SIGKILL');
  }
});
