import { Miniflare } from 'miniflare';
import { TestClient, mintToken } from '/work/main/tests/js/helpers.js';
const ROOT = '/work/main/';
const mf = new Miniflare({
  modules: true, modulesRoot: ROOT,
  scriptPath: ROOT + 'tests/js/hibernation/worker.js',
  modulesRules: [{ type: 'ESModule', include: ['**/*.js'] }, { type: 'CompiledWasm', include: ['**/*.wasm'] }],
  compatibilityDate: process.argv[2] ?? '2024-09-23',
  durableObjects: { PRESENCE: 'Presence' },
  bindings: { JWT_SECRET: 's', AUTH_TIMEOUT_MS: '5000' },
});
try {
const url = await mf.ready;
const base = url.href.replace(/^http/, 'ws');
const tok = mintToken('s', { sub: 'alice', exp: Math.floor(Date.now()/1000)+600 });
let t0 = Date.now();
const a = await TestClient.connect(`${base}?room=r2&token=${tok}`);
await a.wait(f => f.type === 'welcome');
t0 = Date.now();
console.log('client close', await a.close(), Date.now()-t0);
const bad = mintToken('wrong', { sub: 'm', exp: Math.floor(Date.now()/1000)+600 });
const b = await TestClient.connect(`${base}?room=r2`);
t0 = Date.now();
b.ws.send(JSON.stringify({op:'auth', token: bad}));
console.log('auth 4001', await b.closed, Date.now()-t0);
const c = await TestClient.connect(`${base}?room=r3`);
t0 = Date.now();
await (await mf.dispatchFetch('http://x/__evict?room=r3&drop=1', {method:'POST'})).text();
console.log('server drop', await c.closed, Date.now()-t0);
} finally { await mf.dispose(); }
