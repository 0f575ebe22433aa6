// rollcall/worker: host an Engine in a Cloudflare Durable Object with the
// WebSocket Hibernation API, and route upgrades to it from a Worker.
//
//   import { RollcallDurableObject, routeUpgrade } from 'rollcall/worker';
//   export class Presence extends RollcallDurableObject {
//     engineOptions(env) { return { auth: { keys: [{ algorithm: 'HS256', secret: env.JWT_SECRET }] } }; }
//   }
//   export default { fetch: (request, env) => routeUpgrade(request, env.PRESENCE) };
//
// While the object hibernates its memory is dropped and its sockets stay
// open. Every handler therefore first loads the engine: from the snapshot
// in storage, reconciled with the sockets the runtime still holds (each
// carries its connection id and verified identity as its attachment).
// Deadlines are driven by the object's alarm, never by setTimeout.
import { Engine, CloseCodes } from './index.workerd.js';
import { hostError } from './engine.js';

const META_KEY = 'rollcall:meta';
const CHUNK_PREFIX = 'rollcall:snap:';
/** Storage values are limited in size: the snapshot is stored in chunks. */
const CHUNK_BYTES = 120 * 1024;
/** The runtime's limit for a socket attachment. */
const ATTACHMENT_BYTES = 16 * 1024;
/** get(), put() and delete() take at most 128 keys at once. */
const KEYS_PER_CALL = 128;
const STORAGE_FORMAT = 1;
const OPEN = 1;
/** After a failed alarm, the next one comes at least this much later. */
const FAILED_ALARM_RETRY_MS = 1000;

/** Reads a token from `?token=` or an `Authorization: Bearer` header. */
export function tokenFromRequest(request) {
  const url = new URL(request.url);
  const fromQuery = url.searchParams.get('token');
  if (fromQuery) return fromQuery;
  const match = /^Bearer\s+(.+)$/i.exec(request.headers.get('authorization') ?? '');
  return match ? match[1].trim() : null;
}

function closeQuietly(ws, code, reason) {
  try {
    ws?.close(code, reason);
  } catch {
    // already closed
  }
}

function attachmentOf(ws) {
  try {
    return ws.deserializeAttachment() ?? null;
  } catch {
    return null;
  }
}

export class RollcallDurableObject {
  #engine = null;
  /** connection id -> socket */
  #sockets = null;
  #nextId = 1;
  #chunks = 0;
  #alarmAt = null;

  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
    ctx.blockConcurrencyWhile(() => this.#load());
  }

  /** The Engine's options. Override; by default `env.ROLLCALL_OPTIONS` (an object or JSON text). */
  engineOptions(env) {
    const options = env?.ROLLCALL_OPTIONS;
    return typeof options === 'string' ? JSON.parse(options) : (options ?? {});
  }

  /** Credentials of an upgrade request: by default its token (query or Bearer), else none. */
  credentials(request) {
    return tokenFromRequest(request) ?? undefined;
  }

  /** Called with every host event (presenceJoined, objectStatusChanged, ...). Override to react. */
  onEvent(_event) {}

  /**
   * Called with every failure the object contained: a `credentials` or
   * `onEvent` override that threw, an engine call that threw (that one
   * socket was closed). The message starts with a stable code
   * (CREDENTIALS_FAILED, ENGINE_FAILED, LISTENER_FAILED). Default: console.error.
   */
  onError(error) {
    console.error('rollcall/worker:', error);
  }

  /** The engine, loaded. */
  async engine() {
    await this.#load();
    return this.#engine;
  }

  async fetch(request) {
    await this.#load();
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
      return new Response('rollcall: expected a WebSocket upgrade', { status: 426 });
    }
    const [client, server] = Object.values(new WebSocketPair());
    const id = this.#nextId++;
    let credentials;
    let failure = null;
    try {
      credentials = await this.credentials(request);
    } catch (err) {
      failure = hostError('CREDENTIALS_FAILED', 'credentials() threw', err, id);
    }
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ id });
    this.#sockets.set(id, server);
    let batch = null;
    if (!failure) {
      try {
        batch = this.#engine.open(id, credentials);
      } catch (err) {
        // Credentials the engine cannot open with: that socket only.
        failure = hostError('ENGINE_FAILED', 'engine.open threw', err, id);
      }
    }
    if (failure) {
      this.#report(failure);
      await this.#refuse(id, CloseCodes.AUTH_FAILED, 'AUTH_FAILED');
    } else {
      await this.#run(batch);
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  async webSocketMessage(ws, message) {
    await this.#load();
    const id = attachmentOf(ws)?.id;
    if (id == null || !this.#sockets.has(id)) return;
    let batch;
    try {
      batch = this.#engine.message(id, message);
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'engine.message threw', err, id));
      await this.#refuse(id, CloseCodes.INTERNAL_ERROR, 'INTERNAL_ERROR');
      return;
    }
    await this.#run(batch);
    // A refreshed token (the ack of a later `auth`) changed the identity
    // kept beside the socket; the first `auth` is handled by its event.
    if (batch.sends.some((s) => s.to.includes(id) && s.payload.startsWith('{"type":"ack"') && s.payload.includes('"op":"auth"'))) {
      this.#attach(id);
    }
  }

  async webSocketClose(ws, code, reason) {
    await this.#gone(ws, code, reason);
  }

  async webSocketError(ws) {
    await this.#gone(ws, 1011, 'socket error');
  }

  async alarm() {
    await this.#load();
    this.#alarmAt = null;
    let batch;
    try {
      batch = this.#engine.tick();
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'engine.tick threw', err));
      await this.#persist(Date.now() + FAILED_ALARM_RETRY_MS);
      return;
    }
    await this.#run(batch);
  }

  /** Drops the in-memory engine, as hibernation does (for tests and tools). */
  evict() {
    this.#engine?.free();
    this.#engine = null;
    this.#sockets = null;
    this.#nextId = 1;
    this.#chunks = 0;
    this.#alarmAt = null;
  }

  async #gone(ws, code, reason) {
    await this.#load();
    const id = attachmentOf(ws)?.id;
    closeQuietly(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
    if (id == null) return;
    this.#sockets.delete(id);
    await this.#forget(id);
  }

  /** Tells the engine that `id` is gone; a throw is reported, not propagated. */
  async #forget(id) {
    let batch;
    try {
      batch = this.#engine.close(id);
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'engine.close threw', err, id));
      return;
    }
    await this.#run(batch);
  }

  /** Hands a contained failure to onError; an onError that throws is logged. */
  #report(err) {
    try {
      this.onError(err);
    } catch (thrown) {
      console.error('rollcall/worker: onError threw:', thrown, 'while reporting:', err);
    }
  }

  /** Loads the engine if memory was dropped: snapshot, then reconcile with live sockets. */
  async #load() {
    if (this.#engine) return;
    const storage = this.ctx.storage;
    // Until this host pings without waking (issue 12), the engine neither
    // times silent sockets out nor holds lost ones in grace here.
    const options = { idleTimeoutMs: 0, leaveGraceMs: 0, ...this.engineOptions(this.env) };
    const meta = await storage.get(META_KEY);
    let engine;
    if (meta?.format === STORAGE_FORMAT && meta.chunks > 0) {
      const keys = Array.from({ length: meta.chunks }, (_, i) => CHUNK_PREFIX + i);
      const parts = new Map();
      for (let i = 0; i < keys.length; i += KEYS_PER_CALL) {
        for (const [k, v] of await storage.get(keys.slice(i, i + KEYS_PER_CALL))) parts.set(k, v);
      }
      const bytes = new Uint8Array(meta.bytes);
      let offset = 0;
      for (const key of keys) {
        const part = new Uint8Array(parts.get(key));
        bytes.set(part, offset);
        offset += part.length;
      }
      engine = Engine.restore(options, bytes);
      this.#chunks = meta.chunks;
      this.#nextId = meta.nextId;
      this.#alarmAt = meta.alarmAt ?? null;
    } else {
      engine = new Engine(options);
    }
    const sockets = new Map();
    for (const ws of this.ctx.getWebSockets()) {
      const id = attachmentOf(ws)?.id;
      if (id == null) continue;
      this.#nextId = Math.max(this.#nextId, id + 1);
      // A socket that is closing has gone for the engine's purposes.
      if (ws.readyState === OPEN) sockets.set(id, ws);
    }
    this.#engine = engine;
    this.#sockets = sockets;
    // No ghost: connections whose socket went while we slept leave; sockets
    // the snapshot does not know (it lagged) come back from their attachment.
    const known = new Set(engine.connectionIds);
    const batches = [];
    for (const id of known) if (!sockets.has(id)) batches.push(engine.close(id));
    for (const [id, ws] of sockets) {
      if (known.has(id)) continue;
      const identity = attachmentOf(ws)?.identity;
      let batch;
      try {
        batch = engine.open(id, identity ? { identity } : undefined);
      } catch (err) {
        // An identity the engine no longer takes: that socket only.
        this.#report(hostError('ENGINE_FAILED', 'engine.open threw for a stored identity', err, id));
        sockets.delete(id);
        closeQuietly(ws, CloseCodes.AUTH_FAILED, 'AUTH_FAILED');
        try {
          batches.push(engine.close(id));
        } catch {
          // nothing was opened
        }
        continue;
      }
      // The client had its welcome when it first opened: no second one.
      batch.sends = batch.sends.filter((s) => !(s.to.length === 1 && s.to[0] === id && s.payload.startsWith('{"type":"welcome"')));
      batches.push(batch);
    }
    for (const batch of batches) await this.#run(batch);
  }

  /** Carries out a batch, keeps attachments current, then persists. */
  async #run(batch) {
    for (const { to, payload } of batch.sends) {
      for (const id of to) {
        try {
          this.#sockets.get(id)?.send(payload);
        } catch {
          // the socket is closing; its close event will follow
        }
      }
    }
    for (const { connection, code, reason } of batch.closes) {
      const ws = this.#sockets.get(connection);
      this.#sockets.delete(connection);
      closeQuietly(ws, code, reason);
    }
    for (const event of batch.events) {
      if (event.type === 'authenticated') this.#attach(event.connection);
      try {
        this.onEvent(event);
      } catch (err) {
        this.#report(hostError('LISTENER_FAILED', 'onEvent threw', err));
      }
    }
    await this.#persist(batch.wakeAt);
  }

  /** Closes connection `id`'s socket with `code` and makes the engine forget it. */
  async #refuse(id, code, reason) {
    const ws = this.#sockets.get(id);
    this.#sockets.delete(id);
    closeQuietly(ws, code, reason);
    await this.#forget(id);
  }

  /** Keeps the verified identity beside the socket (when it fits in an attachment). */
  #attach(id) {
    const ws = this.#sockets.get(id);
    if (!ws) return;
    let identity;
    try {
      identity = this.#engine.identity(id);
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'engine.identity threw', err, id));
      return ws.serializeAttachment({ id });
    }
    const withIdentity = { id, identity };
    const fits = new TextEncoder().encode(JSON.stringify(withIdentity)).length <= ATTACHMENT_BYTES;
    ws.serializeAttachment(fits ? withIdentity : { id });
  }

  async #persist(wakeAt) {
    const storage = this.ctx.storage;
    const bytes = this.#engine.snapshot();
    const chunks = Math.max(1, Math.ceil(bytes.length / CHUNK_BYTES));
    const entries = {};
    for (let i = 0; i < chunks; i++) entries[CHUNK_PREFIX + i] = bytes.slice(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
    entries[META_KEY] = { format: STORAGE_FORMAT, chunks, bytes: bytes.length, nextId: this.#nextId, alarmAt: wakeAt ?? null };
    const keys = Object.keys(entries);
    for (let i = 0; i < keys.length; i += KEYS_PER_CALL) {
      await storage.put(Object.fromEntries(keys.slice(i, i + KEYS_PER_CALL).map((k) => [k, entries[k]])));
    }
    const stale = Array.from({ length: Math.max(0, this.#chunks - chunks) }, (_, i) => CHUNK_PREFIX + (chunks + i));
    for (let i = 0; i < stale.length; i += KEYS_PER_CALL) {
      await storage.delete(stale.slice(i, i + KEYS_PER_CALL));
    }
    this.#chunks = chunks;
    if ((wakeAt ?? null) !== this.#alarmAt) {
      this.#alarmAt = wakeAt ?? null;
      if (wakeAt == null) await storage.deleteAlarm();
      else await storage.setAlarm(wakeAt);
    }
  }
}

/**
 * A Worker's fetch: checks the upgrade and routes it to the Durable Object
 * named by `name(url, request)` (default: the `room` query parameter, else
 * "default"). `authorize(request, token)` may refuse (403) before any object
 * is touched; a token that is not JWT-shaped is refused with 401. The engine
 * in the object verifies the token itself.
 */
export async function routeUpgrade(request, namespace, options = {}) {
  if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
    return new Response('rollcall: expected a WebSocket upgrade', { status: 426 });
  }
  const token = tokenFromRequest(request);
  if (token != null && token.split('.').length !== 3) {
    return new Response('rollcall: malformed token', { status: 401 });
  }
  if (options.authorize && !(await options.authorize(request, token))) {
    return new Response('rollcall: forbidden', { status: 403 });
  }
  const url = new URL(request.url);
  const name = options.name ? options.name(url, request) : (url.searchParams.get('room') ?? 'default');
  return namespace.get(namespace.idFromName(name)).fetch(request);
}
