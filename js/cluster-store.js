// What the ClusterStore adapters (cluster-redis.js, cluster-ioredis.js)
// share: a Lua script run by its SHA1, sent whole when Redis answers
// NOSCRIPT (a restart, SCRIPT FLUSH, a failover).
import { createHash } from 'node:crypto';

const shas = new Map();

/** The SHA1 of `script` (hex), computed once per script. */
function shaOf(script) {
  let sha = shas.get(script);
  if (!sha) shas.set(script, (sha = createHash('sha1').update(script).digest('hex')));
  return sha;
}

/** `evalSha(sha)` (EVALSHA), or `evalScript(script)` (EVAL) when Redis no longer has the script. */
export async function runScript(script, evalSha, evalScript) {
  try {
    return await evalSha(shaOf(script));
  } catch (err) {
    if (!/NOSCRIPT/.test(err?.message ?? '')) throw err;
    return evalScript(script);
  }
}
