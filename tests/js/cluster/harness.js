// Starts rollcall cluster nodes (tests/js/cluster/node.js) as separate OS
// processes against one redis-server, for tests/js/cluster.test.js and
// bench/cluster.js.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { mintToken } from '../helpers.js';

const NODE_SCRIPT = fileURLToPath(new URL('./node.js', import.meta.url));
export const SECRET = 'cluster-test-secret';

/** A token for `sub` that the nodes accept, with more claims (`per`, `dpv`) if given. */
export const clusterToken = (sub, claims = {}) => mintToken(SECRET, { sub, exp: Math.floor(Date.now() / 1000) + 3600, ...claims });

/**
 * Forks one node (`redisUrl` null: a plain single server, no cluster);
 * resolves once it listens. `events` collects what it
 * reports ('reaped', 'healed', 'error').
 */
export async function startNode(node, redisUrl, { heartbeatMs = 500, deadAfterMs = 2500, leaveGraceMs = 0, limits, execArgv } = {}) {
  const child = fork(NODE_SCRIPT, [JSON.stringify({ node, redisUrl, secret: SECRET, heartbeatMs, deadAfterMs, leaveGraceMs, limits })], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv,
  });
  const events = [];
  const replies = new Map();
  let nextId = 1;
  child.on('message', (m) => {
    if (m.event) events.push(m);
    if (m.reply != null) replies.get(m.reply)?.(m);
  });
  const exited = once(child, 'exit');
  const [first] = await Promise.race([once(child, 'message'), exited.then(() => [null])]);
  if (!first?.port) throw new Error(`node ${node} did not start`);
  const ask = (message) =>
    new Promise((resolve) => {
      const id = nextId++;
      replies.set(id, resolve);
      child.send({ ...message, id });
    });
  return {
    node,
    child,
    events,
    port: first.port,
    url: `ws://127.0.0.1:${first.port}`,
    /** The node engine's members of `room` (and per-client view). */
    view: (room) => ask({ op: 'members', room }),
    /** Graceful shutdown (members leave at once); resolves when the process exited. */
    async close() {
      if (child.exitCode !== null) return;
      await ask({ op: 'close' });
      await exited;
    },
    /** SIGKILL: no goodbye at all. */
    async kill() {
      if (child.exitCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}
