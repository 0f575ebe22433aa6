// Cluster mode on a real redis-server (npm run bench:cluster): node
// processes from tests/js/cluster/node.js, clients in this process.
//
//   1. delivery latency of a presence update, p50/p99: one node without
//      Redis (baseline), cluster same-node, cluster cross-node;
//   2. deliveries per second at the same closed-loop load: one node
//      without Redis, one cluster node, two cluster nodes (clients split);
//   3. Redis commands and bytes per presence update (INFO commandstats and
//      INFO stats, after CONFIG RESETSTAT; no MONITOR);
//   4. heal time after SIGKILL, with the default heartbeat (5 s) and
//      dead-after (15 s): from the kill to the leave at a watcher, and to
//      the `disconnected` status of an object whose provider was there;
//   5. objects: delivery latency of an object.update written on one node
//      to object subscribers on the same and the other node, and Redis
//      commands and bytes per object update.
// Options: --updates N (latency samples, default 500), --seconds S
// (throughput window, default 5), --clients N (default 24).
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { createClient } from 'redis';
import WebSocket from 'ws';
import { startRedis } from '../tests/js/redis-server.js';
import { startNode, clusterToken } from '../tests/js/cluster/harness.js';
import { CLUSTER_DEFAULTS } from '../js/cluster.js';

const { values } = parseArgs({
  options: { updates: { type: 'string', default: '500' }, seconds: { type: 'string', default: '5' }, clients: { type: 'string', default: '24' } },
});
const UPDATES = Number(values.updates);
const SECONDS = Number(values.seconds);
const CLIENTS = Number(values.clients);
/** The bench measures the cluster, not the per-connection rate limit (50/s by default). */
const OPEN = { limits: { rate: { burst: 1_000_000, perSecond: 1_000_000 } } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A ws client that joins `room` (as a member if `member`), subscribed to its presence; `room` null: none. */
async function client(url, sub, room, { member = true, onFrame = () => {}, claims } = {}) {
  const ws = new WebSocket(`${url}/?token=${clusterToken(sub, claims)}`);
  await once(ws, 'open');
  let ref = 0;
  const acks = new Map();
  ws.on('message', (data) => {
    const text = data.toString();
    if (text.startsWith('{"type":"ack"') || text.startsWith('{"type":"error"')) {
      const f = JSON.parse(text);
      acks.get(f.ref)?.(f);
      return;
    }
    onFrame(text);
  });
  const request = (frame) =>
    new Promise((resolve) => {
      const r = ++ref;
      acks.set(r, resolve);
      ws.send(JSON.stringify({ ...frame, ref: r }));
    });
  if (room != null) {
    await request({ op: 'room.join', room });
    await request({ op: 'presence.subscribe', room });
    if (member) await request({ op: 'presence.join', room, data: { sub } });
  }
  return { ws, request, send: (frame) => ws.send(JSON.stringify(frame)) };
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const ms = (x) => x.toFixed(2);

/** Latency of UPDATES presence updates from a member on `from` to watchers on each of `to`. */
async function latency(from, to, room) {
  const sent = new Map();
  const got = to.map(() => []);
  const watchers = [];
  for (const [i, node] of to.entries()) {
    watchers.push(
      await client(node.url, `lat-w${i}`, room, {
        member: false,
        onFrame: (text) => {
          const m = /"data":\{"i":(\d+)\}/.exec(text);
          if (m && text.includes('"event":"update"')) got[i].push(performance.now() - sent.get(Number(m[1])));
        },
      }),
    );
  }
  const pub = await client(from.url, 'lat-pub', room);
  await sleep(300);
  for (let i = 0; i < UPDATES; i++) {
    sent.set(i, performance.now());
    pub.send({ op: 'presence.update', room, data: { i } });
    await sleep(5);
  }
  const end = Date.now() + 10_000;
  while (got.some((g) => g.length < UPDATES) && Date.now() < end) await sleep(20);
  for (const c of [...watchers, pub]) c.ws.close();
  return got.map((g) => ({ n: g.length, p50: quantile(g, 0.5), p99: quantile(g, 0.99) }));
}

/**
 * Closed loop: CLIENTS members, each sends its next update when it sees
 * its previous one come back; every client subscribes. Counts presence
 * frames delivered to all clients over SECONDS.
 */
async function throughput(urls, room) {
  let deliveries = 0;
  let counting = false;
  let stop = false;
  const cs = [];
  for (let i = 0; i < CLIENTS; i++) {
    // Its own updates only (the room's name must not match: rooms are 'tp1', 'tp2').
    const tag = `"clientId":"tp${i}"`;
    let c;
    let n = 0;
    c = await client(urls[i % urls.length], `tp${i}`, room, {
      onFrame: (text) => {
        if (counting) deliveries++;
        if (!stop && text.includes(tag) && text.includes('"event":"update"')) c.send({ op: 'presence.update', room, data: { s: `tp${i}`, n: ++n } });
      },
    });
    cs.push(c);
  }
  await sleep(500);
  cs.forEach((c, i) => c.send({ op: 'presence.update', room, data: { s: `tp${i}`, n: 0 } }));
  await sleep(1000);
  counting = true;
  const t0 = performance.now();
  await sleep(SECONDS * 1000);
  counting = false;
  const rate = deliveries / ((performance.now() - t0) / 1000);
  stop = true;
  for (const c of cs) c.ws.close();
  await sleep(300);
  return rate;
}

const FLEET = { per: { fleet: { '**': 'CRUD' } } };

/** Latency of UPDATES object updates written on `from` to object subscribers on each of `to`. */
async function objectLatency(from, to) {
  const sent = new Map();
  const got = to.map(() => []);
  const readers = [];
  for (const [i, node] of to.entries()) {
    const onFrame = (text) => {
      const m = /"data":\{"i":(\d+)\}/.exec(text);
      if (m && text.includes('"event":"update"')) got[i].push(performance.now() - sent.get(Number(m[1])));
    };
    const r = await client(node.url, `obj-r${i}`, null, { onFrame, claims: FLEET });
    await r.request({ op: 'object.subscribe', realm: 'fleet', pattern: 'van/*' });
    readers.push(r);
  }
  const writer = await client(from.url, 'obj-w', null, { claims: FLEET });
  await writer.request({ op: 'object.create', realm: 'fleet', id: 'van/1' });
  await sleep(300);
  for (let i = 0; i < UPDATES; i++) {
    sent.set(i, performance.now());
    writer.send({ op: 'object.update', realm: 'fleet', id: 'van/1', data: { i } });
    await sleep(5);
  }
  const end = Date.now() + 10_000;
  while (got.some((g) => g.length < UPDATES) && Date.now() < end) await sleep(20);
  for (const c of [...readers, writer]) c.ws.close();
  return got.map((g) => ({ n: g.length, p50: quantile(g, 0.5), p99: quantile(g, 0.99) }));
}

async function redisInfo(url) {
  const r = createClient({ url });
  await r.connect();
  return {
    reset: () => r.sendCommand(['CONFIG', 'RESETSTAT']),
    async stats() {
      const cmd = await r.sendCommand(['INFO', 'commandstats']);
      const st = await r.sendCommand(['INFO', 'stats']);
      const calls = {};
      for (const m of cmd.matchAll(/cmdstat_(\w+(?:\|\w+)?):calls=(\d+)/g)) calls[m[1]] = Number(m[2]);
      const num = (k) => Number(new RegExp(`${k}:(\\d+)`).exec(st)[1]);
      return { calls, inBytes: num('total_net_input_bytes'), outBytes: num('total_net_output_bytes') };
    },
    close: () => r.quit(),
  };
}

async function main() {
  const redis = await startRedis();
  const out = [];
  const say = (line) => {
    console.log(line);
    out.push(line);
  };
  say(`# bench:cluster  updates=${UPDATES} seconds=${SECONDS} clients=${CLIENTS}`);

  // 1 and 2: a node without Redis, then two cluster nodes.
  const single = await startNode('solo', null, OPEN);
  const [base] = await latency(single, [single], 'lat');
  say(`latency one node, no Redis (same node):  p50 ${ms(base.p50)} ms  p99 ${ms(base.p99)} ms  (n=${base.n})`);
  const tpSingle = await throughput([single.url], 'tp');
  await single.close();

  const n1 = await startNode('n1', redis.url, OPEN);
  const n2 = await startNode('n2', redis.url, OPEN);
  const [same, cross] = await latency(n1, [n1, n2], 'lat');
  say(`latency cluster, same node:  p50 ${ms(same.p50)} ms  p99 ${ms(same.p99)} ms  (n=${same.n})`);
  say(`latency cluster, cross node: p50 ${ms(cross.p50)} ms  p99 ${ms(cross.p99)} ms  (n=${cross.n})`);
  say(`  cross/same p50 ratio ${(cross.p50 / same.p50).toFixed(2)}, cluster same/no-Redis p50 ratio ${(same.p50 / base.p50).toFixed(2)}`);

  // 5: objects, written on n1, read on n1 and n2.
  const [objSame, objCross] = await objectLatency(n1, [n1, n2]);
  say(`object.update latency, same node:  p50 ${ms(objSame.p50)} ms  p99 ${ms(objSame.p99)} ms  (n=${objSame.n})`);
  say(`object.update latency, cross node: p50 ${ms(objCross.p50)} ms  p99 ${ms(objCross.p99)} ms  (n=${objCross.n})`);

  // 3: Redis work per presence update (two nodes watching the room).
  const info = await redisInfo(redis.url);
  const watcher = await client(n2.url, 'cost-w', 'cost', { member: false });
  const pub = await client(n1.url, 'cost-pub', 'cost');
  await sleep(300);
  await info.reset();
  const N = 1000;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await pub.request({ op: 'presence.update', room: 'cost', data: { i, pad: 'x'.repeat(40) } });
  await sleep(300);
  const elapsed = (performance.now() - t0) / 1000;
  const { calls, inBytes, outBytes } = await info.stats();
  const beats = Math.ceil(elapsed / (CLUSTER_DEFAULTS.heartbeatMs / 1000)) * 2;
  const per = (x) => (x / N).toFixed(2);
  const list = Object.entries(calls)
    .filter(([name]) => !/^(config|info)/.test(name))
    .map(([name, c]) => `${name} ${per(c)}`)
    .join(', ');
  say(`redis per presence update (N=${N}, ${elapsed.toFixed(1)} s, incl. ~${beats} heartbeat+reaper scripts): ${list}`);
  say(`  bytes per update: into Redis ${per(inBytes)}, out of Redis ${per(outBytes)} (2 subscribed nodes)`);
  watcher.ws.close();
  pub.ws.close();
  {
    // The same for an object update (every node follows every realm).
    const writer = await client(n1.url, 'cost-obj', null, { claims: FLEET });
    await writer.request({ op: 'object.create', realm: 'fleet', id: 'cost' });
    await sleep(300);
    await info.reset();
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await writer.request({ op: 'object.update', realm: 'fleet', id: 'cost', data: { i, pad: 'x'.repeat(40) } });
    await sleep(300);
    const elapsed = (performance.now() - t0) / 1000;
    const { calls, inBytes, outBytes } = await info.stats();
    const list = Object.entries(calls)
      .filter(([name]) => !/^(config|info)/.test(name))
      .map(([name, c]) => `${name} ${per(c)}`)
      .join(', ');
    say(`redis per object update (N=${N}, ${elapsed.toFixed(1)} s, incl. heartbeats): ${list}`);
    say(`  bytes per update: into Redis ${per(inBytes)}, out of Redis ${per(outBytes)} (2 nodes follow the realm)`);
    writer.ws.close();
  }
  await info.close();
  await n1.close();
  await n2.close();

  // 2, on fresh nodes.
  {
    const n1 = await startNode('t1', redis.url, OPEN);
    const n2 = await startNode('t2', redis.url, OPEN);
    const tpOne = await throughput([n1.url], 'tp1');
    const tpTwo = await throughput([n1.url, n2.url], 'tp2');
    say(`deliveries/s (closed loop, ${CLIENTS} members+subscribers in one room): no Redis 1 process ${Math.round(tpSingle)}, cluster 1 node ${Math.round(tpOne)}, cluster 2 nodes ${Math.round(tpTwo)}`);
    await n1.close();
    await n2.close();
  }

  // 4: heal time after SIGKILL with the defaults.
  const d1 = await startNode('d1', redis.url, CLUSTER_DEFAULTS);
  const d2 = await startNode('d2', redis.url, CLUSTER_DEFAULTS);
  let leftAt = null;
  let offAt = null;
  const onFrame = (t) => {
    if (t.includes('"event":"leave"')) leftAt ??= performance.now();
    if (t.includes('"connectionStatus":"disconnected"') && t.includes('"event":"status"')) offAt ??= performance.now();
  };
  const w = await client(d1.url, 'heal-w', 'heal', { member: false, onFrame, claims: FLEET });
  await w.request({ op: 'object.subscribe', realm: 'fleet', pattern: 'truck' });
  await w.request({ op: 'object.create', realm: 'fleet', id: 'truck' });
  await client(d2.url, 'heal-m', 'heal', { claims: { dpv: { fleet: ['truck'] } } });
  await sleep(CLUSTER_DEFAULTS.heartbeatMs + 500);
  const killedAt = performance.now();
  await d2.kill();
  while ((leftAt == null || offAt == null) && performance.now() - killedAt < 60_000) await sleep(50);
  say(`heal after SIGKILL (heartbeat ${CLUSTER_DEFAULTS.heartbeatMs} ms, dead after ${CLUSTER_DEFAULTS.deadAfterMs} ms, bound 20000 ms): leave seen ${Math.round(leftAt - killedAt)} ms after the kill, its provider's object disconnected ${Math.round(offAt - killedAt)} ms after`);
  w.ws.close();
  await d1.close();
  await redis.stop();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
