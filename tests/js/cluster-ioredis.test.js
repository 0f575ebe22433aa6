// rollcall/redis over ioredis (js/cluster-ioredis.js) on a real
// redis-server: the store itself (EVALSHA, EVAL after a SCRIPT FLUSH,
// pub/sub), then two in-process nodes joined with ioredis clients, through
// a Redis restart. The heartbeat is a minute long, so that a heal can only
// come from the store's onReconnect.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import Redis from 'ioredis';
import { Engine } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { ioredisStore, joinCluster } from '../../js/cluster.js';
import { TestClient, eventually, mintToken } from './helpers.js';
import { startRedis } from './redis-server.js';

const SECRET = 'ioredis-test-secret';
const token = (sub) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 3600 });

let redis;
let probe; // a plain ioredis client, to look at Redis
const nodes = [];
const sockets = [];
const stores = [];
const leftovers = []; // servers and clients of nodes that failed to join

before(async () => {
  redis = await startRedis();
  probe = new Redis(redis.url, { retryStrategy: () => 50 });
  probe.on('error', () => {});
});

after(async () => {
  for (const s of sockets) s.ws.terminate();
  await Promise.allSettled(nodes.map((n) => n.cluster.close()));
  await Promise.allSettled(stores.map((s) => s.close()));
  for (const l of leftovers) if (l.disconnect) l.disconnect(); else await l.close();
  probe?.disconnect();
  await redis?.stop();
});

/** A node in this process: an Engine in cluster mode behind rollcall/node, joined with an ioredis client. */
async function startNode(node) {
  const engine = new Engine({ cluster: { node }, auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] } });
  const server = attach(engine, { port: 0, host: '127.0.0.1', connectionRate: null, onError: () => {} });
  await once(server, 'listening');
  // Retry quickly: a test restarts Redis under the node's feet.
  const client = new Redis(redis.url, { retryStrategy: () => 50 });
  const options = { redis: client, node, heartbeatMs: 60_000, deadAfterMs: 120_000, settleMs: 200, onRedisError: () => {} };
  leftovers.push(server, client);
  const cluster = await joinCluster(server, options);
  leftovers.splice(-2);
  const n = { node, engine, cluster, healed: 0, errors: [], url: `ws://127.0.0.1:${server.address().port}` };
  cluster.on('healed', () => n.healed++);
  cluster.on('error', (err) => n.errors.push(err));
  nodes.push(n);
  return n;
}

/** A raw client on `node` as `sub`, welcomed. */
async function raw(node, sub) {
  const c = await TestClient.connect(`${node.url}/?token=${token(sub)}`);
  sockets.push(c);
  await c.wait((f) => f.type === 'welcome', 10_000);
  return c;
}

/** Polls an async `check` until it resolves truthy. */
async function until(check, ms) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Counts the client's evalsha and eval calls. */
function spy(client) {
  const calls = { evalsha: 0, eval: 0 };
  for (const name of ['evalsha', 'eval']) {
    const original = client[name].bind(client);
    client[name] = (...args) => {
      calls[name]++;
      return original(...args);
    };
  }
  return calls;
}

test('ioredisStore: EVALSHA, EVAL when Redis answers NOSCRIPT (SCRIPT FLUSH), errors through, pub/sub', async () => {
  await assert.rejects(ioredisStore(new Redis(redis.url, { lazyConnect: true, keyPrefix: 'x:' })), TypeError);
  // lazyConnect: nobody connected it, the store does.
  const client = new Redis(redis.url, { lazyConnect: true });
  const store = await ioredisStore(client);
  stores.push(store);
  assert.equal(client.status, 'ready');
  const calls = spy(client);
  const script = `return {KEYS[1], ARGV[1], ARGV[2], #KEYS, #ARGV}`;
  assert.deepEqual(await store.run(script, ['k'], ['a', '2']), ['k', 'a', '2', 1, 2]);
  assert.deepEqual(calls, { evalsha: 1, eval: 1 }, 'a script Redis never saw: NOSCRIPT, then EVAL');
  assert.deepEqual(await store.run(script, ['k'], ['b', '3']), ['k', 'b', '3', 1, 2]);
  assert.deepEqual(calls, { evalsha: 2, eval: 1 }, 'cached now: EVALSHA alone');
  assert.equal(await probe.script('FLUSH'), 'OK');
  assert.deepEqual(await store.run(script, ['k2'], ['c', '4']), ['k2', 'c', '4', 1, 2]);
  assert.deepEqual(calls, { evalsha: 3, eval: 2 }, 'flushed: NOSCRIPT, then EVAL');
  // Other errors are the caller's, with no EVAL.
  await assert.rejects(store.run(`return redis.error_reply('boom')`, [], []), /boom/);
  assert.deepEqual(calls, { evalsha: 4, eval: 3 }, 'an unknown script: EVAL once');
  await assert.rejects(store.run(`return redis.error_reply('boom')`, [], []), /boom/);
  assert.deepEqual(calls, { evalsha: 5, eval: 3 }, 'a known script that fails: no EVAL');
  // Pub/sub: one listener per channel, on its own connection.
  const got = [];
  await store.subscribe('ch:a', (m) => got.push(['a', m]));
  await store.subscribe('ch:b', (m) => got.push(['b', m]));
  assert.equal(await probe.publish('ch:a', 'one'), 1);
  assert.equal(await probe.publish('ch:b', 'two'), 1);
  await eventually(() => got.length === 2, 5000);
  await store.unsubscribe('ch:a');
  assert.equal(await probe.publish('ch:a', 'gone'), 0);
  assert.deepEqual(got, [['a', 'one'], ['b', 'two']]);
  // The subscriber is its own connection: the client still runs scripts.
  assert.deepEqual(await store.run(script, ['k'], ['d', '5']), ['k', 'd', '5', 1, 2]);
  await store.close();
  await eventually(() => client.status === 'end', 5000);
});

test('two nodes on ioredis: a join on one reaches a subscriber on the other; writes flow again after a Redis restart', async () => {
  const a = await startNode('io-a');
  const b = await startNode('io-b');
  const room = 'lobby';
  const watcher = await raw(b, 'watcher');
  await watcher.request({ op: 'room.join', room });
  const ack = await watcher.request({ op: 'presence.subscribe', room });
  assert.deepEqual(ack.members, []);
  // Node B follows the room in Redis (subscribed, snapshot read) before A writes.
  await until(async () => (await probe.pubsub('NUMSUB', `rc:{${room}}`))[1] >= 1 && (await probe.exists(`rc:{${room}}:meta`)) === 1, 10_000);
  const alice = await raw(a, 'alice');
  await alice.request({ op: 'room.join', room });
  assert.equal((await alice.request({ op: 'presence.join', room, data: { n: 1 } })).type, 'ack');
  const join = await watcher.wait((f) => f.type === 'presence' && f.event === 'join', 10_000);
  assert.deepEqual([join.clientId, join.data], ['alice', { n: 1 }]);
  assert.deepEqual(b.engine.members(room).map((m) => m.clientId), ['alice']);

  // Redis restarts empty. Both connections of each node come back (the
  // heartbeat is far away): each says so, and the node heals.
  const healed = nodes.map((n) => n.healed);
  await redis.restart();
  await eventually(() => nodes.every((n, i) => n.healed >= healed[i] + 2), 20_000);
  // Alice is in Redis again (A re-asserted her), and B's subscriber
  // connection is subscribed again: A's next writes reach B's watcher.
  await until(async () => (await probe.hlen(`rc:{${room}}:m`)) === 1, 10_000);
  let n = 1;
  const updated = () => watcher.frames.some((f) => f.type === 'presence' && f.event === 'update' && f.data?.n > 1);
  await until(async () => {
    if (updated()) return true;
    assert.equal((await alice.request({ op: 'presence.update', room, data: { n: ++n } })).type, 'ack');
    await new Promise((r) => setTimeout(r, 300));
    return updated();
  }, 20_000);
  assert.deepEqual(b.engine.members(room).map((m) => [m.clientId, m.data.n > 1]), [['alice', true]]);
  for (const node of nodes) assert.deepEqual(node.errors, [], `no cluster error on ${node.node}`);
});
