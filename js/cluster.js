// rollcall/redis: several Node processes, each an Engine behind
// rollcall/node, share each room's presence set through one Redis.
//
//   import { createClient } from 'redis';
//   import { Engine } from 'rollcall';
//   import { attach } from 'rollcall/node';
//   import { joinCluster } from 'rollcall/redis';
//   const node = `web-${process.pid}`;
//   const server = attach(new Engine({ cluster: { node } }), { port: 8080 });
//   const cluster = await joinCluster(server, { redis: createClient({ url }), node });
//   // ... on SIGTERM: await cluster.close();   (members leave at once)
//
// The engine decides everything (see src/engine/cluster.rs); this host
// carries its `cluster*` events to Redis and Redis's answers back:
// - clusterReplicate: one CHANGE script (state, seq, stream, PUBLISH);
// - clusterWatch / clusterUnwatch: (un)subscribe the room's channel, then
//   hand over a SNAPSHOT; every message on the channel goes to clusterApply;
// - clusterResync: a SNAPSHOT again;
// - clusterPublish: a room event, PUBLISHed on the room's channel (not
//   numbered, not kept: at most once, like Redis pub/sub);
// - clusterResumable / clusterResumeClaim: a resume token in Redis (its
//   hash, until the grace ends), claimed once, and the connection handed
//   over by its node over the nodes' own channels.
// - clusterObject: one OBJECT script (the realm's objects, seq, PUBLISH on
//   the objects channel, which every node follows: objects are replicated
//   whole); clusterRealmPublish: a realm event on that channel;
//   clusterProviders: this node's provider patterns (PROVIDERS), never a
//   per-object status; clusterRealmResync: a REALM_SNAPSHOT again.
// Beside that, per node (not per member): a heartbeat every heartbeatMs in
// a ZSET scored with Redis TIME; every heartbeatMs each node looks for
// nodes silent for deadAfterMs and reaps them (one lock per dead node, one
// REAP script per room: a real leave per member). After a reconnect, or a
// heartbeat that finds this node unknown to Redis (Redis lost its state,
// or this node was reaped while paused), the node re-asserts its members
// (REASSERT: a `resync`, no leave/join storm) and re-reads its rooms.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostError } from './engine.js';
import * as lua from './cluster-lua.js';
import { nodeRedis } from './cluster-redis.js';
import { ioredisStore } from './cluster-ioredis.js';

export { nodeRedis };
export { ioredisStore };

/** The defaults of ClusterOptions (see cluster.d.ts and README, "Deployment"). */
export const CLUSTER_DEFAULTS = Object.freeze({
  prefix: 'rc',
  heartbeatMs: 5000,
  deadAfterMs: 15_000,
  reapLockMs: 30_000,
  handoverTimeoutMs: 5000,
});

/**
 * The longest time from a node's death to its members' leave events on the
 * surviving nodes: its last beat was at most at its death; it is seen dead
 * once Redis's clock passes that beat by deadAfterMs, and each survivor
 * looks every heartbeatMs. 20 000 ms with the defaults.
 */
export function healBoundMs({ heartbeatMs, deadAfterMs } = CLUSTER_DEFAULTS) {
  return deadAfterMs + heartbeatMs;
}

const NODE = /^[A-Za-z0-9_.-]{1,64}$/;

function checkNode(node) {
  if (!NODE.test(node ?? '')) throw new TypeError("cluster: `node` is 1-64 of [A-Za-z0-9_.-], the same as the engine's `cluster.node`");
}

export class RedisCluster extends EventEmitter {
  #server;
  #engine;
  #store;
  #options;
  #node;
  #timer = null;
  /** The re-read of providers and realms after a heal. */
  #reread = null;
  /** room -> promise chain of its (un)subscriptions and snapshots. */
  #rooms = new Map();
  /** Rooms this node follows (subscribed or subscribing). */
  #watched = new Set();
  /** room -> the epoch of its last snapshot. */
  #epochs = new Map();
  /** realm -> the epoch of its last snapshot. */
  #realmEpochs = new Map();
  /** Writes in flight, awaited by close(). */
  #pending = new Set();
  #listeners = [];
  #closed = false;
  #beaten = false;
  /** A heartbeat (and its reaper pass) is under way. */
  #ticking = false;
  /** Handover requests this node sent: id -> resolve(state). */
  #handovers = new Map();
  #nextHandover = 1;

  constructor(server, store, options) {
    super();
    this.#server = server;
    this.#engine = server.engine;
    this.#store = store;
    this.#options = { ...CLUSTER_DEFAULTS, clock: Date.now, ...options };
    this.#node = options.node;
    checkNode(this.#node);
  }

  get node() {
    return this.#node;
  }

  #key(room, part) {
    return `${this.#options.prefix}:{${room}}:${part}`;
  }

  #roomKeys(room) {
    return [this.#key(room, 'm'), this.#key(room, 'meta')];
  }

  #channel(room) {
    return `${this.#options.prefix}:{${room}}`;
  }

  /** This node's own channel: resume handovers. */
  #nodeChannel(node) {
    return `${this.#options.prefix}:node:${node}`;
  }

  #resumeKey(token) {
    // The token is a secret: Redis holds its hash only.
    return `${this.#options.prefix}:resume:${createHash('sha256').update(token).digest('hex')}`;
  }

  #realmKeys(realm) {
    const key = (part) => `${this.#options.prefix}:realm:{${realm}}:${part}`;
    return [key('o'), key('meta'), this.#realms()];
  }

  #realms() {
    return `${this.#options.prefix}:realms`;
  }

  /** Object changes, providers and realm events of every realm: followed by every node. */
  #objectsChannel() {
    return `${this.#options.prefix}:objects`;
  }

  #providers() {
    return `${this.#options.prefix}:providers`;
  }

  #nodes() {
    return `${this.#options.prefix}:nodes`;
  }

  #nodeRooms(node) {
    return `${this.#options.prefix}:node:${node}:rooms`;
  }

  async start() {
    const on = (name, fn) => {
      this.#server.on(name, fn);
      this.#listeners.push([name, fn]);
    };
    on('clusterReplicate', (e) => this.#replicate(e));
    on('clusterWatch', (e) => this.#watch(e.room));
    on('clusterUnwatch', (e) => this.#unwatch(e.room));
    on('clusterResync', (e) => this.#resync(e.room));
    on('clusterPublish', ({ room, message }) => {
      this.#track(this.#run(lua.PUBLISH, [this.#channel(room)], [message]), `publishing in ${room}`);
    });
    on('clusterObject', ({ realm, op, id, dataText }) => {
      const args = [op, id, dataText ?? '', this.#objectsChannel(), this.#options.clock(), realm];
      this.#track(this.#run(lua.OBJECT, this.#realmKeys(realm), args), `replicating an object ${op} in ${realm}`);
    });
    on('clusterRealmPublish', ({ realm, message }) => {
      this.#track(this.#run(lua.PUBLISH, [this.#objectsChannel()], [message]), `publishing in realm ${realm}`);
    });
    on('clusterProviders', ({ providers }) => {
      this.#track(this.#setProviders(this.#node, providers), 'replicating providers');
    });
    on('clusterRealmResync', ({ realm }) => this.#realmResync(realm));
    on('clusterResumable', (e) => this.#resumable(e));
    on('clusterResumeClaim', (e) => this.#claim(e));
    this.#store.onReconnect(() => this.#heal());
    // A node restarted under the same name (a pod, a host name) before it
    // was reaped: its previous life's members leave now, for real.
    await this.#reap(this.#node);
    await this.#store.subscribe(this.#nodeChannel(this.#node), (message) => this.#onNodeMessage(message));
    await this.#store.subscribe(this.#objectsChannel(), (message) => {
      this.#dispatch(() => this.#engine.clusterObjectsApply(message, this.#options.clock()), 'an objects message');
    });
    await this.#setProviders(this.#node, this.#engine.clusterLocalProviders());
    await this.#readProviders();
    // Every realm's objects are here before joinCluster resolves.
    await Promise.all((await this.#run(lua.REALMS, [this.#realms()], [])).map((realm) => this.#realmResync(realm)));
    await this.#beat();
    for (const room of this.#engine.roomNames) this.#watch(room);
    this.#timer = setInterval(() => this.#tick(), this.#options.heartbeatMs);
    this.#timer.unref?.();
    return this;
  }

  /** Reports an error: to 'error' listeners, else to the server's. */
  #report(err) {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#server.emit('error', err);
  }

  #track(promise, what) {
    const p = promise.catch((err) => this.#report(hostError('CLUSTER_FAILED', what, err)));
    this.#pending.add(p);
    p.finally(() => this.#pending.delete(p));
    return p;
  }

  #run(script, keys, args) {
    return this.#store.run(script, keys, args.map(String));
  }

  #replicate({ room, op, id, member }) {
    const args = [op, id, member ?? '', this.#channel(room), this.#options.clock(), room];
    this.#track(this.#run(lua.CHANGE, [...this.#roomKeys(room), this.#nodeRooms(this.#node)], args), `replicating a ${op} in ${room}`);
  }

  /** A connection in grace: resumable on another node until its grace ends. */
  #resumable({ token, graceUntil }) {
    const ttl = Math.max(1, Math.round(graceUntil - this.#options.clock()));
    this.#track(this.#run(lua.RESUMABLE, [this.#resumeKey(token)], [this.#node, ttl]), 'recording a resume token');
  }

  /** A `resume` with a token this node does not know: claim it, fetch the state from its node. */
  #claim({ connection, token }) {
    const work = async () => {
      let state = null;
      const owner = await this.#run(lua.CLAIM, [this.#resumeKey(token)], []);
      if (owner && owner !== this.#node) {
        const id = this.#nextHandover++;
        state = await new Promise((resolve) => {
          const timer = setTimeout(() => resolve(null), this.#options.handoverTimeoutMs);
          this.#handovers.set(id, (s) => {
            clearTimeout(timer);
            resolve(s);
          });
          const request = JSON.stringify({ op: 'handover', id, token, from: this.#node });
          this.#run(lua.PUBLISH, [this.#nodeChannel(owner)], [request]).catch(() => resolve(null));
        });
        this.#handovers.delete(id);
      }
      this.#dispatch(() => this.#engine.clusterResume(connection, state, this.#options.clock()), 'a resume');
    };
    this.#track(work(), 'claiming a resume');
  }

  #onNodeMessage(message) {
    let m;
    try {
      m = JSON.parse(message);
    } catch {
      return;
    }
    if (m.op === 'state') {
      this.#handovers.get(m.id)?.(m.state ?? null);
    } else if (m.op === 'handover' && typeof m.token === 'string' && typeof m.from === 'string') {
      let state = null;
      this.#dispatch(() => {
        const batch = this.#engine.clusterHandover(m.token, this.#options.clock());
        state = batch.state;
        return batch;
      }, 'a handover');
      const reply = JSON.stringify({ op: 'state', id: m.id, state });
      this.#track(this.#run(lua.PUBLISH, [this.#nodeChannel(m.from)], [reply]), 'answering a handover');
    }
  }

  /** Runs `fn` after the room's earlier (un)subscriptions and snapshots. */
  #chain(room, fn, what) {
    const next = (this.#rooms.get(room) ?? Promise.resolve()).then(fn);
    const tail = this.#track(next, what);
    this.#rooms.set(room, tail);
    tail.then(() => {
      if (this.#rooms.get(room) === tail) this.#rooms.delete(room);
    });
    return tail;
  }

  #watch(room) {
    this.#watched.add(room);
    this.#chain(room, async () => {
      if (!this.#watched.has(room)) return;
      await this.#store.subscribe(this.#channel(room), (message) => this.#apply(room, message));
      await this.#snapshot(room);
    }, `following ${room}`);
  }

  #unwatch(room) {
    this.#watched.delete(room);
    this.#epochs.delete(room);
    this.#track(this.#run(lua.UNTRACK, [this.#nodeRooms(this.#node)], [room]), `untracking ${room}`);
    this.#chain(room, async () => {
      if (!this.#watched.has(room)) await this.#store.unsubscribe(this.#channel(room));
    }, `leaving ${room}`);
  }

  /** Stores a node's provider set ('' : gone) and tells every node. */
  #setProviders(node, providers) {
    return this.#run(lua.PROVIDERS, [this.#providers()], [node, providers, this.#objectsChannel()]);
  }

  async #readProviders() {
    const [at, ...messages] = await this.#run(lua.PROVIDERS_SNAPSHOT, [this.#providers()], []);
    const text = `{"at":${at},"p":[${messages.join(',')}]}`;
    this.#dispatch(() => this.#engine.clusterProvidersSnapshot(text, this.#options.clock()), 'the providers');
  }

  #realmResync(realm) {
    return this.#chain(`realm:${realm}`, () => this.#realmSnapshot(realm), `reading realm ${realm}`);
  }

  async #realmSnapshot(realm) {
    const read = () => this.#run(lua.REALM_SNAPSHOT, this.#realmKeys(realm).slice(0, 2), []);
    let [e, s, ...pairs] = await read();
    const known = this.#realmEpochs.get(realm);
    if (known != null && known !== e) {
      // Redis lost the realm: read it once the live nodes re-asserted their copies.
      await this.#settle();
      [e, s, ...pairs] = await read();
    }
    this.#realmEpochs.set(realm, e);
    const objects = [];
    for (let i = 0; i < pairs.length; i += 2) objects.push(`[${JSON.stringify(pairs[i])},${pairs[i + 1] || 'null'}]`);
    const text = `{"e":${Number(e)},"s":${Number(s)},"o":[${objects.join(',')}]}`;
    this.#dispatch(() => this.#engine.clusterRealmSnapshot(realm, text, this.#options.clock()), `a snapshot of realm ${realm}`);
  }

  /** Waits for the live nodes to re-assert what they hold after Redis lost its state. */
  #settle() {
    return new Promise((resolve) => setTimeout(resolve, this.#options.settleMs ?? 1.5 * this.#options.heartbeatMs));
  }

  #resync(room) {
    this.#chain(room, () => this.#snapshot(room), `re-reading ${room}`);
  }

  async #read(room) {
    return this.#run(lua.SNAPSHOT, this.#roomKeys(room), []);
  }

  async #snapshot(room) {
    if (!this.#watched.has(room)) return;
    let [e, s, ...members] = await this.#read(room);
    const known = this.#epochs.get(room);
    if (known != null && known !== e) {
      // Redis lost the room (a restart, a failover): its new set fills up
      // as the live nodes re-assert their members, each within a heartbeat
      // of noticing. Read it once they have, so that subscribers get one
      // resync rather than leaves and joins of members still on their way.
      await this.#settle();
      if (!this.#watched.has(room)) return;
      [e, s, ...members] = await this.#read(room);
    }
    this.#epochs.set(room, e);
    const text = `{"e":${Number(e)},"s":${Number(s)},"m":[${members.join(',')}]}`;
    this.#dispatch(() => this.#engine.clusterSnapshot(room, text, this.#options.clock()), `a snapshot of ${room}`);
  }

  #apply(room, message) {
    this.#dispatch(() => this.#engine.clusterApply(room, message, this.#options.clock()), `a change in ${room}`);
  }

  /** One engine call whose batch the server carries out; a throw is reported. */
  #dispatch(call, what) {
    if (this.#closed) return;
    try {
      this.#server.dispatch(call());
    } catch (err) {
      this.#report(hostError('CLUSTER_FAILED', `applying ${what}`, err));
    }
  }

  async #beat() {
    const known = await this.#run(lua.BEAT, [this.#nodes()], [this.#node]);
    // Unknown after the first beat: Redis lost its state, or this node was
    // reaped while it could not beat. Either way its members must be there.
    if (Number(known) === 0 && this.#beaten) await this.#heal();
    this.#beaten = true;
  }

  async #tick() {
    if (this.#closed || this.#ticking) return;
    this.#ticking = true;
    try {
      const timeout = this.#options.redisTimeoutMs ?? this.#options.heartbeatMs;
      let timer;
      const silent = new Promise((resolve) => (timer = setTimeout(() => resolve(true), timeout)));
      const answered = this.#track(this.#beat(), 'heartbeat').then(() => false);
      const timedOut = await Promise.race([answered, silent]);
      clearTimeout(timer);
      if (timedOut) {
        // A link that went silent (a dead NAT entry, a frozen peer) is never
        // noticed by the client: drop it and heal as after a reconnect.
        this.#report(hostError('CLUSTER_FAILED', 'heartbeat', new Error(`Redis did not answer within ${timeout} ms: reconnecting`)));
        if (this.#store.reset) await this.#track(this.#store.reset(), 'reconnecting to Redis');
        return;
      }
      await this.#track(this.#reapDead(), 'reaping dead nodes');
    } finally {
      this.#ticking = false;
    }
  }

  async #reapDead() {
    const dead = await this.#run(lua.DEAD, [this.#nodes()], [this.#options.deadAfterMs]);
    for (const node of dead) {
      if (node === this.#node) continue;
      const lock = `${this.#options.prefix}:reap:${node}`;
      if (Number(await this.#run(lua.LOCK, [lock], [this.#node, this.#options.reapLockMs])) !== 1) continue;
      await this.#reap(node);
    }
  }

  /** Removes every member of `node` with real leaves, then forgets it. */
  async #reap(node) {
    const rooms = await this.#run(lua.ROOMS, [this.#nodeRooms(node)], []);
    let left = 0;
    for (const room of rooms) {
      const keys = this.#roomKeys(room);
      left += Number(await this.#run(lua.REAP, keys, [node, this.#channel(room)]));
    }
    // Its objects turn disconnected on every node (if it provided any).
    await this.#setProviders(node, '');
    await this.#run(lua.FORGET, [this.#nodes(), this.#nodeRooms(node)], [node]);
    this.emit('reaped', { node, rooms: rooms.length, members: left });
  }

  /** Re-asserts this node's members in every room it follows, then re-reads them all. */
  async #heal() {
    if (this.#closed) return;
    const rooms = this.#engine.roomNames;
    await Promise.all(
      rooms.map((room) => {
        const args = [this.#node, this.#channel(room), room, ...this.#engine.clusterLocalMembers(room)];
        return this.#track(this.#run(lua.REASSERT, [...this.#roomKeys(room), this.#nodeRooms(this.#node)], args), `re-asserting ${room}`);
      }),
    );
    for (const room of rooms) this.#resync(room);
    // Its providers and its copy of every realm, then a re-read of both
    // once the other live nodes re-asserted theirs.
    const realms = this.#engine.clusterRealms;
    await Promise.all([
      this.#track(this.#setProviders(this.#node, this.#engine.clusterLocalProviders()), 're-asserting providers'),
      ...realms.map((realm) => {
        const known = this.#engine.clusterRealmEpoch(realm) ?? '';
        const args = [this.#objectsChannel(), realm, known, ...this.#engine.clusterRealmObjects(realm)];
        return this.#track(this.#run(lua.REASSERT_OBJECTS, this.#realmKeys(realm), args), `re-asserting realm ${realm}`);
      }),
    ]);
    clearTimeout(this.#reread);
    this.#reread = setTimeout(() => {
      if (this.#closed) return;
      const reread = async () => {
        await this.#readProviders();
        const all = new Set([...realms, ...(await this.#run(lua.REALMS, [this.#realms()], []))]);
        for (const realm of all) this.#realmResync(realm);
      };
      this.#track(reread(), 're-reading providers and realms');
    }, this.#options.settleMs ?? 1.5 * this.#options.heartbeatMs);
    this.#reread.unref?.();
    this.emit('healed', { rooms: rooms.length });
  }

  /**
   * Graceful shutdown: closes the server (its members leave at once, on
   * every node), waits for those writes, removes whatever of this node is
   * left in Redis with real leaves, forgets the node, closes the store.
   */
  async close() {
    clearInterval(this.#timer);
    clearTimeout(this.#reread);
    await this.#server.close();
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
    this.#closed = true;
    for (const [name, fn] of this.#listeners) this.#server.off(name, fn);
    try {
      await this.#reap(this.#node);
    } catch (err) {
      this.#report(hostError('CLUSTER_FAILED', 'leaving the cluster', err));
    }
    await this.#store.close();
  }
}

/**
 * Joins `server` (a rollcall/node server whose Engine has
 * `cluster: { node }`) to the cluster in `options.redis`: a redis:// URL
 * (a node-redis client is created for it), a node-redis or ioredis client
 * (connected or not; it is duplicated for pub/sub) or any object with the
 * ClusterStore methods (see cluster.d.ts).
 */
export async function joinCluster(server, options) {
  const { redis, ...rest } = options ?? {};
  if (!redis) throw new TypeError('cluster: `redis` is a redis:// URL, a node-redis client or a ClusterStore');
  checkNode(rest.node);
  let client = redis;
  if (typeof redis === 'string') {
    // node-redis is an optional peer dependency: loaded only when used.
    const { createClient } = await import('redis');
    client = createClient({ url: redis });
  }
  // ioredis spells it evalsha (node-redis: evalSha) and has a status.
  const adapter = typeof client.evalsha === 'function' && typeof client.duplicate === 'function' && 'status' in client ? ioredisStore : nodeRedis;
  const store = typeof client.run === 'function' ? client : await adapter(client, { onError: rest.onRedisError });
  return new RedisCluster(server, store, rest).start();
}
