// The ClusterStore rollcall/redis needs, over ioredis (v5): the same as
// cluster-redis.js over node-redis.
import { runScript } from './cluster-store.js';

/** Resolves once `c` is ready (connected here if nobody did: lazyConnect); rejects if ioredis gave up. */
function ready(c) {
  if (c.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const settle = (fn) => () => {
      c.off('ready', ok).off('end', end);
      fn();
    };
    const ok = settle(resolve);
    const end = settle(() => reject(new Error('cluster: the ioredis connection ended before it was ready')));
    c.on('ready', ok).on('end', end);
    // A failed attempt is an 'error' (reported) and a retry by ioredis.
    if (c.status === 'wait' || c.status === 'end') c.connect().catch(() => {});
  });
}

/**
 * A ClusterStore over an ioredis client (connected here if it is not):
 * scripts by EVALSHA (EVAL when Redis lost its script cache), pub/sub on a
 * duplicate connection. `onReconnect` fires when either connection is
 * ready again after a loss (the subscriber once ioredis re-subscribed it);
 * what was published meanwhile is lost: rollcall/redis re-reads its rooms.
 */
export async function ioredisStore(client, { onError = () => {} } = {}) {
  // keyPrefix would prefix the scripts' keys (a room's channel among them) but not SUBSCRIBE's channels.
  if (client.options?.keyPrefix) throw new TypeError("cluster: ioredis's keyPrefix is not supported; use joinCluster's `prefix`");
  // The subscriber must re-subscribe by itself after a reconnect.
  const sub = client.duplicate({ autoResubscribe: true });
  const listeners = new Map();
  const reconnects = [];
  const reconnected = () => {
    for (const cb of reconnects) cb();
  };
  // ioredis reconnects by itself; an 'error' nobody listens to is only logged: report it.
  for (const c of [client, sub]) c.on('error', onError);
  sub.on('message', (channel, message) => listeners.get(channel)?.(message));
  try {
    await Promise.all([ready(client), ready(sub)]);
  } catch (err) {
    sub.disconnect();
    throw err;
  }
  client.on('ready', reconnected);
  // ioredis has sent its SUBSCRIBEs again when it says 'ready': a PING
  // behind them answers once Redis did them. If it fails, the connection
  // is lost again and its next 'ready' is the one.
  sub.on('ready', () => sub.ping().then(reconnected, () => {}));
  return {
    run: (script, keys, args) =>
      runScript(
        script,
        (sha) => client.evalsha(sha, keys.length, ...keys, ...args),
        () => client.eval(script, keys.length, ...keys, ...args),
      ),
    async subscribe(channel, listener) {
      listeners.set(channel, listener);
      await sub.subscribe(channel);
    },
    async unsubscribe(channel) {
      listeners.delete(channel);
      await sub.unsubscribe(channel);
    },
    onReconnect(cb) {
      reconnects.push(cb);
    },
    // Silent links: dropped and opened again (ioredis reconnects and re-subscribes).
    async reset() {
      for (const c of [client, sub]) c.disconnect(true);
      await Promise.all([ready(client), ready(sub)]);
    },
    async close() {
      await Promise.allSettled([sub.quit(), client.quit()]);
    },
  };
}
