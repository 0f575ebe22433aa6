// The ClusterStore rollcall/redis needs, over node-redis (the `redis`
// package, v4 or v5); cluster-ioredis.js is the same over ioredis.
import { runScript } from './cluster-store.js';

/**
 * A ClusterStore over a node-redis client (connected here if it is not):
 * scripts by EVALSHA (EVAL when Redis lost its script cache), pub/sub on a
 * duplicate connection. `onReconnect` fires when either connection is
 * ready again after a loss; both reconnect by themselves and the
 * subscriber re-subscribes, but what was published meanwhile is lost:
 * rollcall/redis re-reads its rooms then.
 */
export async function nodeRedis(client, { onError = () => {} } = {}) {
  const sub = client.duplicate();
  const reconnects = [];
  for (const c of [client, sub]) {
    // node-redis throws connection errors at whoever listens: reconnecting
    // is its job, reporting ours.
    c.on('error', onError);
  }
  if (!client.isOpen) await client.connect();
  await sub.connect();
  for (const c of [client, sub]) {
    c.on('ready', () => {
      for (const cb of reconnects) cb();
    });
  }
  return {
    run: (script, keys, args) =>
      runScript(
        script,
        (sha) => client.evalSha(sha, { keys, arguments: args }),
        () => client.eval(script, { keys, arguments: args }),
      ),
    subscribe: (channel, listener) => sub.subscribe(channel, listener),
    unsubscribe: (channel) => sub.unsubscribe(channel),
    onReconnect(cb) {
      reconnects.push(cb);
    },
    // Links that went silent (no RST, no FIN: nothing node-redis notices):
    // dropped and opened again; subscriptions come back by themselves, and
    // 'ready' fires onReconnect.
    async reset() {
      for (const c of [client, sub]) if (c.isOpen) c.destroy();
      await Promise.all([client.connect(), sub.connect()]);
    },
    async close() {
      await Promise.allSettled([sub.close?.() ?? sub.quit(), client.close?.() ?? client.quit()]);
    },
  };
}
