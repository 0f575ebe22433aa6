// Shared helpers for the package's node --test suites.
import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import WebSocket from 'ws';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Runs a test Worker (a path under tests/js/) in workerd through Miniflare,
 * with the package's modules resolvable from the repository root. Returns
 * the Miniflare instance and the ws:// base URL.
 */
export async function startWorker(script, { durableObjects, bindings }) {
  const mf = new Miniflare({
    modules: true,
    modulesRoot: ROOT,
    scriptPath: fileURLToPath(new URL(script, import.meta.url)),
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: '2024-09-23',
    durableObjects,
    bindings,
  });
  const wsBase = (await mf.ready).href.replace(/^http/, 'ws');
  return { mf, wsBase };
}

/** Mints an HS256 JWT with node:crypto. */
export function mintToken(secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  const sig = createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${sig}`;
}

/** A WebSocket client that records every frame and can wait for one. */
export class TestClient {
  constructor(url, options) {
    this.frames = [];
    this.waiters = [];
    this.ws = new WebSocket(url, options);
    this.closed = new Promise((resolve) => this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('error', () => {});
    this.ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      this.frames.push(frame);
      this.waiters = this.waiters.filter((w) => !(w.pred(frame) && (w.resolve(frame), true)));
    });
    this.nextRef = 1;
  }

  static async connect(url, options) {
    const c = new TestClient(url, options);
    await new Promise((resolve, reject) => {
      c.ws.once('open', resolve);
      c.ws.once('error', reject);
      c.ws.once('close', resolve);
    });
    return c;
  }

  /** Resolves with the first frame (already received or future) matching `pred`. */
  wait(pred, ms = 3000) {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out; frames: ${JSON.stringify(this.frames)}`)), ms);
      this.waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  /** Sends an op with a fresh ref and resolves with its ack or error. */
  request(frame) {
    const ref = this.nextRef++;
    this.ws.send(JSON.stringify({ ...frame, ref }));
    return this.wait((f) => f.ref === ref && (f.type === 'ack' || f.type === 'error'));
  }

  presence() {
    return this.frames.filter((f) => f.type === 'presence');
  }

  close() {
    this.ws.close();
    return this.closed;
  }
}

/** Polls `check` until it returns truthy. */
export async function eventually(check, ms = 3000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * The close frame the server sent (code, reason), as soon as it arrives,
 * then drops the socket. For workerd, which may tear the TCP connection
 * down only seconds after its close frame (see hibernation.test.js).
 */
export async function closeFrame(client, ms = 3000) {
  await eventually(() => client.ws._closeFrameReceived || client.ws.readyState === 3, ms);
  const closed = { code: client.ws._closeCode, reason: client.ws._closeMessage.toString() };
  client.ws.terminate();
  return closed;
}

/**
 * A rollcall/node `credentials` callback for host tests, driven by the
 * request's query: `slowMs=N` resolves N ms later, `throw=sync|async` throws
 * or rejects, `identity=<json>` opens with that host identity, else the
 * `token` (or none: the client sends `auth`).
 */
export async function queryCredentials(req) {
  const url = new URL(req.url, 'http://localhost');
  const slowMs = Number(url.searchParams.get('slowMs') ?? 0);
  if (slowMs) await new Promise((r) => setTimeout(r, slowMs));
  const how = url.searchParams.get('throw');
  if (how === 'sync') throw new Error('credentials exploded');
  if (how === 'async') return Promise.reject(new Error('credentials rejected'));
  const identity = url.searchParams.get('identity');
  if (identity) return { identity: JSON.parse(identity) };
  return url.searchParams.get('token') ?? undefined;
}
