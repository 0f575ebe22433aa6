// The demo: a Node server embedding rollcall through rollcall/node. It
// serves one page and the client SDK, mints demo tokens, runs simulated
// data providers (delivery riders in realm "london") as real WebSocket
// clients of itself, and prints its URL.
//   PORT=8080 HOST=127.0.0.1 node demo/server.js
//
// HTTP routes:
//   GET  /                   the page (demo/index.html)
//   GET  /rollcall/client.js the client SDK (js/client.js), an ES module
//   GET  /token?name=X       {token, clientId}: a 1-hour HS256 token with a
//                            fresh sub, room presence everywhere and read
//                            rights on realm "london" ("deliveryRiders/**").
//                            &clientId=Y re-mints for the same sub (refresh,
//                            reconnect). Demo only: anyone can ask.
//   GET  /sim                the simulated providers and whether each is up
//   POST /sim/drop?provider=fleet-proxy[&ms=8000]
//                            DEMO-ONLY CONTROL (used by the browser test):
//                            closes that provider's connection now and
//                            reconnects it after `ms` (default 8000).
//                            Providers: fleet-proxy, rider-ana/phone,
//                            rider-ana/watch, rider-bo.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes, createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { Engine } from '../js/index.node.js';
import { attach } from '../js/node.js';
import { Client } from '../js/client.node.js';

const REALM = 'london';

/** Starts the demo; resolves with `{ url, close() }` once it listens. */
export async function startDemo({ port = 8080, host = '127.0.0.1', log = console.log } = {}) {
  const secret = randomBytes(32).toString('hex'); // demo tokens live as long as the process
  const mint = (claims) => {
    const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
    return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
  };
  const exp = () => Math.floor(Date.now() / 1000) + 3600;

  const page = readFileSync(new URL('./index.html', import.meta.url));
  const sdkPath = new URL('../js/client.js', import.meta.url);
  let sim = null;

  const http = createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const json = (status, body) =>
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
    const get = req.method === 'GET' || req.method === 'HEAD';
    if (get && url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
    } else if (get && url.pathname === '/rollcall/client.js') {
      // Bundled per request (the SDK imports its error class and emitter), so
      // the page always gets the SDK as it is on disk.
      const sdk = buildSync({ entryPoints: [fileURLToPath(sdkPath)], bundle: true, format: 'esm', platform: 'browser', write: false });
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-cache' }).end(sdk.outputFiles[0].contents);
    } else if (req.method === 'GET' && url.pathname === '/token') {
      const name = (url.searchParams.get('name') || 'guest').slice(0, 40);
      const asked = url.searchParams.get('clientId');
      const sub = asked && /^[\w.-]{1,64}$/.test(asked) ? asked : `${name.replace(/[^\w.-]/g, '') || 'guest'}-${randomBytes(3).toString('hex')}`;
      // No `rooms` claim: the default grants (every room action). `per`:
      // the page may read every delivery rider in London.
      const token = mint({ sub, name, exp: exp(), per: { [REALM]: { 'deliveryRiders/**': 'R' } } });
      json(200, { token, clientId: sub });
    } else if (req.method === 'GET' && url.pathname === '/sim') {
      json(200, sim?.status() ?? {});
    } else if (req.method === 'POST' && url.pathname === '/sim/drop') {
      const name = url.searchParams.get('provider');
      const ms = Math.min(Math.max(Number(url.searchParams.get('ms') ?? 8000) || 0, 0), 600_000);
      if (!sim?.drop(name, ms)) return json(404, { error: `no provider ${JSON.stringify(name)}`, providers: Object.keys(sim?.status() ?? {}) });
      log(`sim: dropped ${name} for ${ms} ms`);
      json(200, { dropped: name, reconnectInMs: ms });
    } else {
      res.writeHead(404).end('not found');
    }
  });

  const engine = new Engine({ appId: 'demo', auth: { keys: [{ algorithm: 'HS256', secret }] } });
  const server = attach(engine, { server: http, path: '/ws' });
  server.on('presenceJoined', (e) => log(`+ ${e.clientId} joined ${e.room}`));
  server.on('presenceLeft', (e) => log(`- ${e.clientId} left ${e.room}`));
  server.on('objectStatusChanged', (e) => log(`~ ${e.realm}/${e.id} ${e.status}`));

  await new Promise((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, host, resolve);
  });
  const actual = http.address().port;
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const wsHost = local.includes(':') ? `[${local}]` : local;
  sim = startSimulation({ url: `ws://${wsHost}:${actual}/ws`, mint, exp, log });

  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actual}/`,
    engine,
    async close() {
      sim.stop();
      await server.close();
      const closed = new Promise((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
      await closed;
    },
  };
}

// ---- simulated data providers -------------------------------------------

// Around central London; positions wander inside this box.
const BOX = { south: 51.49, north: 51.53, west: -0.16, east: -0.06 };
const CYCLISTS = [
  ['c1', 'Chidi'],
  ['c2', 'Maya'],
  ['c3', 'Tom'],
  ['c4', 'Priya'],
  ['c5', 'Leo'],
];

const round = (x) => Math.round(x * 1e5) / 1e5;
const randomPosition = () => ({
  lat: round(BOX.south + Math.random() * (BOX.north - BOX.south)),
  lng: round(BOX.west + Math.random() * (BOX.east - BOX.west)),
});
function step({ lat, lng }) {
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  return {
    lat: round(clamp(lat + (Math.random() - 0.5) * 0.003, BOX.south, BOX.north)),
    lng: round(clamp(lng + (Math.random() - 0.5) * 0.005, BOX.west, BOX.east)),
  };
}

/** Creates the object, or updates it when it is already there (a reconnect). */
async function upsert(realm, id, data) {
  try {
    await realm.object.create(id, data);
  } catch (err) {
    if (err.code !== 'OBJECT_EXISTS') throw err;
    await realm.object.update(id, data);
  }
}

/**
 * One simulated provider: a rollcall/client connection with its own token
 * (`claims`), which runs `work(realm)` once connected and `tick(realm)`
 * every `everyMs` while up. `stop()` closes it; `start()` opens it again.
 */
class Provider {
  constructor({ name, url, claims, mint, exp, log, work, tick, everyMs }) {
    Object.assign(this, { name, url, claims, mint, exp, log, work, tick, everyMs });
    this.client = null;
    this.timer = null;
    this.up = false;
  }

  start() {
    if (this.client) return;
    const client = new Client({
      url: this.url,
      getToken: () => this.mint({ ...this.claims, exp: this.exp() }),
      requestTimeoutMs: 5000,
    });
    this.client = client;
    client.on('error', (err) => this.log(`sim: ${this.name}: ${err.message}`));
    client.on('connectionStatusChanged', (status) => (this.up = status === 'connected'));
    (async () => {
      await client.connect();
      const realm = await client.realm.get(REALM);
      await this.work?.(realm);
      if (this.tick && this.client === client) {
        this.timer = setInterval(() => {
          if (client.connectionStatus === 'connected') this.tick(realm).catch(() => {});
        }, this.everyMs);
        this.timer.unref();
      }
    })().catch((err) => {
      if (this.client === client) this.log(`sim: ${this.name}: ${err.message}`);
    });
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.client?.close();
    this.client = null;
    this.up = false;
  }
}

function startSimulation({ url, mint, exp, log }) {
  const common = { url, mint, exp, log };
  const providers = new Map();
  const timers = new Set();
  const restarts = new Map(); // provider -> its pending reconnect after a drop
  const later = (ms, fn) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    t.unref();
    timers.add(t);
    return t;
  };
  const add = (options) => providers.set(options.name, new Provider({ ...common, ...options }));

  // (a) One proxy bundling many riders: it provides for every cyclist.
  const fleet = new Map(CYCLISTS.map(([key, name]) => [`deliveryRiders/cyclists/${key}`, { name, kind: 'cyclist', ...randomPosition() }]));
  add({
    name: 'fleet-proxy',
    claims: {
      sub: 'fleet-proxy',
      per: { [REALM]: { 'deliveryRiders/cyclists/*': 'CRU' } },
      dpv: { [REALM]: ['deliveryRiders/cyclists/*'] },
    },
    work: (realm) => Promise.all([...fleet].map(([id, data]) => upsert(realm, id, data))),
    everyMs: 3000,
    tick: (realm) =>
      Promise.all(
        [...fleet].map(([id, data]) => {
          const next = { ...data, ...step(data) };
          fleet.set(id, next);
          return realm.object.update(id, next);
        }),
      ),
  });

  // (b) One rider with two devices: both provide for her object, so she
  // stays connected while either is up. The phone reports her position.
  const anaId = 'deliveryRiders/rider-ana';
  let ana = { name: 'Ana', kind: 'scooter', devices: 'phone + watch', ...randomPosition() };
  const anaClaims = {
    sub: 'rider-ana',
    per: { [REALM]: { 'deliveryRiders/*': 'R', [anaId]: 'CU' } },
    dpv: { [REALM]: [anaId] },
  };
  add({
    name: 'rider-ana/phone',
    claims: anaClaims,
    work: (realm) => upsert(realm, anaId, ana),
    everyMs: 4000,
    tick: (realm) => realm.object.update(anaId, (ana = { ...ana, ...step(ana) })),
  });
  add({ name: 'rider-ana/watch', claims: anaClaims });

  // (c) A rider with a flaky connection: up ~10 s, down ~6 s, again.
  const boId = 'deliveryRiders/rider-bo';
  let bo = { name: 'Bo', kind: 'cyclist', ...randomPosition() };
  add({
    name: 'rider-bo',
    claims: { sub: 'rider-bo', per: { [REALM]: { [boId]: 'CRU' } }, dpv: { [REALM]: [boId] } },
    work: (realm) => upsert(realm, boId, (bo = { ...bo, ...step(bo), since: new Date().toISOString() })),
  });
  const flaky = providers.get('rider-bo');
  let flakyTimer = null;
  const cycle = () => {
    if (flaky.client) {
      flaky.stop();
      flakyTimer = later(6000, cycle);
    } else {
      flaky.start();
      flakyTimer = later(10_000, cycle);
    }
  };

  for (const p of providers.values()) p.start();
  flakyTimer = later(10_000, cycle);

  return {
    status: () => Object.fromEntries([...providers].map(([name, p]) => [name, p.up ? 'connected' : 'disconnected'])),
    /** Closes `name`'s connection now and reconnects it after `ms`. */
    drop(name, ms) {
      const p = providers.get(name);
      if (!p) return false;
      p.stop();
      const restart = p === flaky ? 'flaky' : name;
      // A second drop replaces the pending reconnect of the first.
      if (restarts.has(restart)) {
        clearTimeout(restarts.get(restart));
        timers.delete(restarts.get(restart));
      }
      if (p === flaky) {
        // The flaky rider's own cycle resumes after the forced drop.
        timers.delete(flakyTimer);
        clearTimeout(flakyTimer);
        flakyTimer = later(ms, cycle);
        restarts.set(restart, flakyTimer);
      } else {
        restarts.set(restart, later(ms, () => p.start()));
      }
      return true;
    },
    stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const p of providers.values()) p.stop();
    },
  };
}

// ---- main -------------------------------------------------------------------

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const demo = await startDemo({ port: Number(process.env.PORT ?? 8080), host: process.env.HOST ?? '127.0.0.1' });
  console.log(`rollcall demo: ${demo.url}`);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, async () => {
      await demo.close();
      process.exit(0);
    });
  }
}
