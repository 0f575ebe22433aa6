// Types of rollcall/redis (js/cluster.js): cluster mode for rollcall/node on Redis.
import type { EventEmitter } from 'node:events';
import type { RollcallServer } from './node.js';

/**
 * What rollcall/redis needs of a Redis client: four calls. `nodeRedis`
 * builds one over node-redis, `ioredisStore` over ioredis; another client
 * is a few lines: EVALSHA with an EVAL fallback on NOSCRIPT, and a second
 * connection for pub/sub.
 */
export interface ClusterStore {
  /** Runs a Lua script (EVALSHA, or EVAL when Redis answers NOSCRIPT). */
  run(script: string, keys: string[], args: string[]): Promise<unknown>;
  /** Subscribes `listener` to a channel; resolves once Redis confirmed it. */
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  /** `cb` runs each time a connection is back after a loss (messages may be lost meanwhile). */
  onReconnect(cb: () => void): void;
  /**
   * Optional: the links went silent (a heartbeat got no answer within
   * `redisTimeoutMs`): drop them and connect again, subscriptions included
   * (then `onReconnect` fires). Without it, a silent link lasts until the
   * OS gives up on it.
   */
  reset?(): Promise<void>;
  close(): Promise<void>;
}

export interface ClusterOptions {
  /** This node's name: the Engine's `cluster.node`, unique in the cluster. */
  node: string;
  /**
   * A redis:// URL (a node-redis client is created for it), a node-redis
   * client or an ioredis one (`new Redis(url)`; connected or not; not with
   * ioredis's `keyPrefix`: use `prefix`), or a ClusterStore.
   */
  redis: string | ClusterStore | object;
  /** Prefix of every Redis key and channel. Default 'rc'. */
  prefix?: string;
  /** Heartbeat period, and how often dead nodes are looked for, ms. Default 5000. */
  heartbeatMs?: number;
  /** A node whose last beat (Redis TIME) is older than this is dead and reaped, ms. Default 15000. */
  deadAfterMs?: number;
  /**
   * A heartbeat Redis has not answered in this long means the links went
   * silent: they are reset (`ClusterStore.reset`) and the node heals as
   * after a reconnect, ms. Default: heartbeatMs.
   */
  redisTimeoutMs?: number;
  /** How long one survivor holds the right to reap a dead node, ms. Default 30000. */
  reapLockMs?: number;
  /**
   * After Redis lost a room (a new epoch), how long a node waits for the
   * live nodes to re-assert their members before it reads the room and
   * resyncs its subscribers, ms. Default 1.5 x heartbeatMs.
   */
  settleMs?: number;
  /** How long a node waits for another to hand over a connection a client resumes here, ms. Default 5000. */
  handoverTimeoutMs?: number;
  /** Connection errors of the node-redis or ioredis client and its pub/sub duplicate (they reconnect by themselves). Default: ignored. */
  onRedisError?: (err: unknown) => void;
  /** The host clock for event timestamps. Default Date.now. */
  clock?: () => number;
}

export declare const CLUSTER_DEFAULTS: Readonly<{
  prefix: 'rc';
  heartbeatMs: 5000;
  deadAfterMs: 15000;
  reapLockMs: 30000;
  handoverTimeoutMs: 5000;
}>;

/** The longest time from a node's death to its members' leaves elsewhere: deadAfterMs + heartbeatMs (20 000 ms by default). */
export declare function healBoundMs(options?: { heartbeatMs: number; deadAfterMs: number }): number;

/** A ClusterStore over a node-redis client (duplicated for pub/sub; connected if it is not). */
export declare function nodeRedis(client: unknown, options?: { onError?: (err: unknown) => void }): Promise<ClusterStore>;

/**
 * A node of the cluster. Events: 'reaped' `{ node, rooms, members }` (this
 * node removed a dead node's members), 'healed' `{ rooms }` (it re-asserted
 * its members after a reconnect or a Redis that lost its state), 'error'
 * (a RollcallError with code CLUSTER_FAILED; without a listener it goes to
 * the server's 'error').
 */
export declare class RedisCluster extends EventEmitter {
  readonly node: string;
  /**
   * Graceful shutdown: closes the server (members leave at once, on every
   * node), waits for its writes, removes what is left of this node in
   * Redis with real leaves, and closes the Redis connections.
   */
  close(): Promise<void>;
}

/** Joins a rollcall/node server whose Engine has `cluster: { node }` to the cluster. */
export declare function joinCluster(server: RollcallServer, options: ClusterOptions): Promise<RedisCluster>;

/**
 * A ClusterStore over an ioredis client (duplicated for pub/sub; connected
 * if it is not, also when made with `lazyConnect`). `joinCluster` builds it
 * by itself when `redis` is an ioredis client. Rejects with a TypeError when the
 * client has a `keyPrefix` (use the `prefix` option).
 */
export declare function ioredisStore(client: unknown, options?: { onError?: (err: unknown) => void }): Promise<ClusterStore>;
