// One rollcall node for the cluster tests and benchmark: rollcall/node +
// rollcall/redis in its own OS process (child_process.fork). Options come
// as JSON in argv[2]: { node, redisUrl, secret, heartbeatMs, deadAfterMs,
// leaveGraceMs, limits }; without `redisUrl` it is a plain single rollcall/node
// server (a baseline for bench/cluster.js). It sends { port } over IPC once it listens, answers
// { op: 'members', room } with the engine's view, and on { op: 'close' }
// shuts down gracefully (members leave at once) and exits.
import { once } from 'node:events';
import { createClient } from 'redis';
import { Engine } from '../../../js/index.node.js';
import { attach } from '../../../js/node.js';
import { joinCluster } from '../../../js/cluster.js';

const options = JSON.parse(process.argv[2]);
const { node, redisUrl, secret, heartbeatMs, deadAfterMs, leaveGraceMs = 0, limits } = options;
const engine = new Engine({ cluster: redisUrl ? { node } : null, auth: { keys: [{ algorithm: 'HS256', secret }] }, leaveGraceMs, limits });
const server = attach(engine, { port: 0, host: '127.0.0.1', connectionRate: null, onError: () => {} });
await once(server, 'listening');
let cluster = null;
if (redisUrl) {
  // Retry forever, quickly: a test restarts Redis under the nodes' feet.
  const redis = createClient({ url: redisUrl, socket: { reconnectStrategy: () => 50 } });
  cluster = await joinCluster(server, { redis, node, heartbeatMs, deadAfterMs, onRedisError: () => {} });
  const report = (kind) => (e) => process.send?.({ event: kind, ...e });
  cluster.on('reaped', report('reaped'));
  cluster.on('healed', report('healed'));
  cluster.on('error', (err) => process.send?.({ event: 'error', message: String(err?.message ?? err) }));
}

process.on('message', async (m) => {
  if (m.op === 'members') {
    process.send({ reply: m.id, members: engine.members(m.room), clients: engine.clients(m.room) });
  } else if (m.op === 'close') {
    await (cluster ? cluster.close() : server.close());
    process.send({ reply: m.id });
    process.exit(0);
  }
});
process.send({ port: server.address().port });
