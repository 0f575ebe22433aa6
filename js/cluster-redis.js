// The ClusterStore rollcall/redis needs, over node-redis (the `redis`
// package, v4 or v5): four calls, so that another client (ioredis,
// iovalkey) is a few lines (see cluster.d.ts).
import { createHash } from 'node:crypto';

const sha1 = (text) => createHash('sha1').update(text).digest('hex');

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
  const shas = new Map();
  const shaOf = (script) => {
    let sha = shas.get(script);
    if (!sha) shas.set(script, (sha = sha1(script)));
    return sha;
  };
  return {
    async run(script, keys, args) {
      try {
        return await client.evalSha(shaOf(script), { keys, arguments: args });
      } catch (err) {
        if (!/NOSCRIPT/.test(err?.message ?? '')) throw err;
        return client.eval(script, { keys, arguments: args });
      }
    },
    subscribe: (channel, listener) => sub.subscribe(channel, listener),
    unsubscribe: (channel) => sub.unsubscribe(channel),
    onReconnect(cb) {
      reconnects.push(cb);
    },
    async close() {
      await Promise.allSettled([sub.close?.() ?? sub.quit(), client.close?.() ?? client.quit()]);
    },
  };
}
