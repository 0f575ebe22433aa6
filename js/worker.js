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
// open. The engine says which of its records each call changed (change
// records, docs/PROTOCOL.md); this host keeps them where they cost least:
//
// - a live connection's record (identity, rooms, presence data,
//   subscriptions) in its socket's attachment: no storage write at all;
//   a record over the attachment limit goes to storage under its key;
// - a lost connection's record (in grace: no socket), rooms' sequence and
//   replay records, objects, and the engine's meta record (with this
//   host's resume secret, epoch and next connection id): one storage key
//   each, written when it changes, deleted when it goes;
// - deadlines in the object's alarm, which also sweeps liveness: the SDK's
//   application ping is answered by the runtime (setWebSocketAutoResponse)
//   without waking the object, and each alarm reads when every socket last
//   pinged (getWebSocketAutoResponseTimestamp) before the engine's idle
//   checks run.
//
// A woken object imports the records (storage + attachments) and rebuilds
// exactly the engine that went to sleep; connections whose socket went
// while it slept are lost (their grace runs, then they leave).
import { DurableObject } from 'cloudflare:workers';
import { Engine, CloseCodes } from './index.workerd.js';
import { hostError } from './engine.js';
import { JwtVerifier } from './jwt.js';

export { JwtVerifier, JWT_DEFAULTS } from './jwt.js';

/** Storage keys of this host: `rc:` + the engine's record key, and the meta key. */
const PREFIX = 'rc:';
const META_KEY = 'rc:meta';
const STORAGE_FORMAT = 2;
/** The whole-snapshot host's keys (storage format 1), migrated on first load. */
const LEGACY_META_KEY = 'rollcall:meta';
const LEGACY_CHUNK_PREFIX = 'rollcall:snap:';
/** The runtime's limit for a socket attachment. */
const ATTACHMENT_BYTES = 16 * 1024;
/** What an attachment holds beside the record (its id, the structure). */
const ATTACHMENT_OVERHEAD = 64;
/** get(), put() and delete() take at most 128 keys at once. */
const KEYS_PER_CALL = 128;
const OPEN = 1;
/** After a failed alarm, the next one comes at least this much later. */
const FAILED_ALARM_RETRY_MS = 1000;

/** This host's own options (override `hostOptions`). */
export const DEFAULT_HOST_OPTIONS = Object.freeze({
  /**
   * Alarms (and so liveness sweeps) come at most this often: an engine
   * deadline (idle check, end of grace, token expiry) is carried out at most
   * this much late, and the object wakes at most once per interval for them.
   */
  sweepIntervalMs: 10_000,
  /**
   * Verify upgrade tokens here with WebCrypto (js/jwt.js) instead of in the
   * wasm engine: JwtVerifier options (`keys`, `jwks`, `jwksUrl`, `issuers`,
   * ...). A verified token opens the connection with the identity it
   * proves; a refused one is closed with 4001 and its code, as the engine
   * would. Tokens in later `auth` frames are still verified by the engine
   * (give it the same keys). Default: null (the engine verifies).
   */
  jwt: null,
  /**
   * How long `credentials()` (and the token's verification with `jwt`,
   * which may fetch a JWKS) may take; past it the socket is closed with
   * 4003 `AUTH_TIMEOUT` and the failure reported (CREDENTIALS_FAILED), as
   * rollcall/node does. 0: no limit.
   */
  credentialsTimeoutMs: 10_000,
});

const TIMED_OUT = Symbol('credentials timed out');

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

/** 32 random bytes as hex. */
function randomSecret() {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Batches storage calls within the runtime's keys-per-call limit. */
async function inChunks(keys, call) {
  for (let i = 0; i < keys.length; i += KEYS_PER_CALL) await call(keys.slice(i, i + KEYS_PER_CALL));
}

export class RollcallDurableObject extends DurableObject {
  #engine = null;
  #loading = null;
  /** connection id -> socket */
  #sockets = null;
  /** The host meta record: resume secret, epoch, next id, the engine's meta record. */
  #meta = null;
  #metaDirty = false;
  /** Keys (without the prefix) this object holds in storage. */
  #stored = new Set();
  #alarmAt = null;
  #lastSweep = 0;
  #stats = { puts: 0, deletes: 0, bytes: 0, attachments: 0, attachmentBytes: 0 };
  /** The WebCrypto verifier, when `hostOptions().jwt` is set (kept across evictions: it holds no state). */
  #verifier;

  constructor(ctx, env) {
    super(ctx, env);
    const [ping, ack] = Engine.pingFrames;
    try {
      ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(ping, ack));
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'setWebSocketAutoResponse failed', err));
    }
    ctx.blockConcurrencyWhile(() => this.#load());
  }

  /** The Engine's options. Override; by default `env.ROLLCALL_OPTIONS` (an object or JSON text). */
  engineOptions(env) {
    const options = env?.ROLLCALL_OPTIONS;
    return typeof options === 'string' ? JSON.parse(options) : (options ?? {});
  }

  /** This host's options (see DEFAULT_HOST_OPTIONS). Override to change them. */
  hostOptions(_env) {
    return {};
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

  // ---- RPC methods (call them on a stub: `await env.PRESENCE.get(id).counts('lobby')`) ----

  /** `{ connections, members, clients, inGrace }` of a room. */
  async counts(room) {
    return (await this.engine()).counts(room);
  }

  /** A room's presence set, one member per connection. */
  async members(room) {
    return (await this.engine()).members(room);
  }

  /** One object `{ id, data, connectionStatus, providers }`, or null. */
  async object(realm, id) {
    return (await this.engine()).object(realm, id);
  }

  /** Publishes `event` with `data` into `room` as the server; returns how many connections it went to. */
  async publish(room, event, data) {
    const engine = await this.engine();
    const batch = engine.publish(room, event, data, Date.now());
    await this.#run(batch);
    return batch.recipients ?? 0;
  }

  /**
   * What this object wrote since it was loaded or the last reset: storage
   * keys put and deleted, bytes put, attachments written and their bytes
   * (for benchmarks and dashboards; in memory only).
   */
  persistStats({ reset = false } = {}) {
    const stats = { ...this.#stats };
    if (reset) this.#stats = { puts: 0, deletes: 0, bytes: 0, attachments: 0, attachmentBytes: 0 };
    return stats;
  }

  // ---- runtime handlers ----------------------------------------------------

  async fetch(request) {
    await this.#load();
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
      return new Response('rollcall: expected a WebSocket upgrade', { status: 426 });
    }
    const [client, server] = Object.values(new WebSocketPair());
    const id = this.#meta.nextId++;
    this.#metaDirty = true;
    let credentials;
    let failure = null;
    let refused = null;
    let timedOut = false;
    const verify = async () => {
      try {
        credentials = await this.credentials(request);
      } catch (err) {
        failure = hostError('CREDENTIALS_FAILED', 'credentials() threw', err, id);
        return;
      }
      const verifier = this.#jwtVerifier();
      const token = typeof credentials === 'string' ? credentials : credentials?.token;
      if (verifier && typeof token === 'string') {
        try {
          credentials = { identity: await verifier.verify(token, Date.now()) };
        } catch (err) {
          if (err?.code === 'JWKS_FETCH_FAILED' || !(err?.code)) failure = hostError('CREDENTIALS_FAILED', 'token verification failed', err, id);
          else refused = err.code;
        }
      }
    };
    const { credentialsTimeoutMs } = this.#hostOptions();
    let timer;
    const deadline = new Promise((resolve) => {
      if (credentialsTimeoutMs > 0) timer = setTimeout(() => resolve(TIMED_OUT), credentialsTimeoutMs);
    });
    if ((await Promise.race([verify(), deadline])) === TIMED_OUT) {
      timedOut = true;
      const why = new Error(`did not settle within credentialsTimeoutMs (${credentialsTimeoutMs} ms)`);
      failure = hostError('CREDENTIALS_FAILED', 'credentials', why, id);
    }
    clearTimeout(timer);
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ id });
    this.#sockets.set(id, server);
    if (refused) {
      // Refused as the engine refuses a token: an event, then 4001 with the code.
      this.#emit({ type: 'authRefused', connection: id, error: refused });
      this.#sockets.delete(id);
      closeQuietly(server, CloseCodes.AUTH_FAILED, refused);
      return new Response(null, { status: 101, webSocket: client });
    }
    let batch = null;
    if (!failure) {
      try {
        batch = this.#engine.open(id, credentials, Date.now());
      } catch (err) {
        // Credentials the engine cannot open with: that socket only.
        failure = hostError('ENGINE_FAILED', 'engine.open threw', err, id);
      }
    }
    if (failure) {
      this.#report(failure);
      if (timedOut) await this.#refuse(id, CloseCodes.AUTH_TIMEOUT, 'AUTH_TIMEOUT: credentials timed out');
      else await this.#refuse(id, CloseCodes.AUTH_FAILED, 'AUTH_FAILED');
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
      batch = this.#engine.message(id, message, Date.now());
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'engine.message threw', err, id));
      await this.#refuse(id, CloseCodes.INTERNAL_ERROR, 'INTERNAL_ERROR');
      return;
    }
    await this.#run(batch);
  }

  async webSocketClose(ws, code, reason) {
    await this.#gone(ws, code, reason);
  }

  async webSocketError(ws) {
    await this.#gone(ws, 1006, 'socket error');
  }

  async alarm() {
    await this.#load();
    this.#alarmAt = null;
    const now = Date.now();
    this.#lastSweep = now;
    let batch;
    try {
      this.#sweep();
      batch = this.#engine.tick(now);
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'engine.tick threw', err));
      await this.#setAlarm(now + FAILED_ALARM_RETRY_MS);
      return;
    }
    await this.#run(batch);
  }

  /** Drops the in-memory engine, as hibernation does (for tests and tools). */
  evict() {
    this.#engine?.free();
    this.#engine = null;
    this.#loading = null;
    this.#sockets = null;
    this.#meta = null;
    this.#metaDirty = false;
    this.#stored = new Set();
    this.#alarmAt = null;
    this.#lastSweep = 0;
  }

  // ---- internals -----------------------------------------------------------

  #jwtVerifier() {
    if (this.#verifier === undefined) {
      const jwt = this.#hostOptions().jwt;
      this.#verifier = jwt ? new JwtVerifier(jwt) : null;
    }
    return this.#verifier;
  }

  #emit(event) {
    try {
      this.onEvent(event);
    } catch (err) {
      this.#report(hostError('LISTENER_FAILED', 'onEvent threw', err));
    }
  }

  #hostOptions() {
    return { ...DEFAULT_HOST_OPTIONS, ...this.hostOptions(this.env) };
  }

  /** Liveness: every socket's last auto-answered ping is a sign of life. */
  #sweep() {
    for (const [id, ws] of this.#sockets) {
      const at = this.ctx.getWebSocketAutoResponseTimestamp(ws);
      if (at) this.#engine.alive(id, at.getTime());
    }
  }

  async #gone(ws, code, reason) {
    await this.#load();
    const id = attachmentOf(ws)?.id;
    // 1006: no close frame (dropped); 4010: a client that gave up on a
    // silent server. Both are lost (leave grace); any other code is a close.
    const lost = code === 1006 || code === CloseCodes.STALE;
    closeQuietly(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
    if (id == null || !this.#sockets.has(id)) return;
    this.#sockets.delete(id);
    let batch;
    try {
      batch = lost ? this.#engine.lost(id, Date.now()) : this.#engine.close(id, Date.now());
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

  #load() {
    if (this.#engine) return Promise.resolve();
    this.#loading ??= this.#rebuild().finally(() => {
      this.#loading = null;
    });
    return this.#loading;
  }

  /** Rebuilds the engine from storage and the sockets' attachments. */
  async #rebuild() {
    const storage = this.ctx.storage;
    const stored = await storage.list({ prefix: PREFIX });
    const meta = stored.get(META_KEY);
    const fresh = meta?.format !== STORAGE_FORMAT;
    this.#meta = fresh ? { format: STORAGE_FORMAT, resumeSecret: randomSecret(), epoch: Date.now(), nextId: 1, engine: null } : meta;
    this.#metaDirty = fresh;
    this.#stored = new Set();
    // A lost connection's record is in storage; a live one's beside its
    // socket (or in storage when it did not fit): storage wins, it is newer.
    const records = new Map();
    for (const [key, value] of stored) {
      if (key === META_KEY) continue;
      this.#stored.add(key.slice(PREFIX.length));
      records.set(key.slice(PREFIX.length), value);
    }
    if (this.#meta.engine) records.set('m', this.#meta.engine);
    const all = this.ctx.getWebSockets().map((ws) => [ws, attachmentOf(ws)?.id]).filter(([, id]) => id != null);
    for (const [ws, id] of all) {
      this.#meta.nextId = Math.max(this.#meta.nextId, id + 1);
      const key = `c:${id}`;
      const record = attachmentOf(ws)?.record;
      if (record && !records.has(key)) records.set(key, record);
    }
    const options = { resumeSecret: this.#meta.resumeSecret, epoch: this.#meta.epoch, ...this.engineOptions(this.env) };
    const legacy = fresh ? await this.#legacySnapshot() : null;
    let engine;
    try {
      if (legacy) {
        // Written by the whole-snapshot host (storage format 1): restored,
        // then every record is written once and the old keys deleted.
        engine = Engine.restore(options, legacy.bytes);
        engine.trackChanges();
        this.#meta.nextId = Math.max(this.#meta.nextId, legacy.nextId ?? 1);
      } else {
        engine = Engine.import(options, [...records.values()]);
      }
    } catch (err) {
      // Records this build cannot read: start empty; every socket reconnects.
      this.#report(hostError('ENGINE_FAILED', 'Engine.import failed; starting empty', err));
      engine = new Engine(options);
      engine.trackChanges();
    }
    const known = new Set(engine.connectionIds);
    const sockets = new Map();
    for (const [ws, id] of all) {
      // A socket the engine has no record of (none was written): it reconnects.
      if (!known.has(id)) closeQuietly(ws, 1012, 'SERVICE_RESTART');
      // A socket that is closing has gone for the engine's purposes.
      else if (ws.readyState === OPEN) sockets.set(id, ws);
    }
    this.#engine = engine;
    this.#sockets = sockets;
    this.#alarmAt = await storage.getAlarm();
    // No ghost: connections whose socket went while the object slept are
    // lost (already lost ones run on); their grace ends with a leave.
    const now = Date.now();
    const batches = [];
    for (const id of known) if (!sockets.has(id)) batches.push(engine.lost(id, now));
    // After a migration, a batch that carries every record.
    if (legacy) batches.push(engine.tick(now));
    for (const batch of batches) await this.#run(batch);
    if (legacy) await inChunks(legacy.keys, (some) => storage.delete(some));
  }

  /** The whole-snapshot host's storage (format 1), if this object has it. */
  async #legacySnapshot() {
    const storage = this.ctx.storage;
    const meta = await storage.get(LEGACY_META_KEY);
    if (meta?.format !== 1 || !(meta.chunks > 0)) return null;
    const keys = Array.from({ length: meta.chunks }, (_, i) => LEGACY_CHUNK_PREFIX + i);
    const parts = new Map();
    await inChunks(keys, async (some) => {
      for (const [k, v] of await storage.get(some)) parts.set(k, new Uint8Array(v));
    });
    const bytes = new Uint8Array(meta.bytes);
    let offset = 0;
    for (const key of keys) {
      const part = parts.get(key) ?? new Uint8Array(0);
      bytes.set(part, offset);
      offset += part.length;
    }
    return { bytes, nextId: meta.nextId, keys: [LEGACY_META_KEY, ...keys] };
  }

  /** Carries out a batch: sends, closes, events, then writes what changed. */
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
    for (const event of batch.events) this.#emit(event);
    await this.#persist(batch.changes ?? [], batch.wakeAt);
  }

  /** Writes the changed records where they belong (see the header). */
  async #persist(changes, wakeAt) {
    const puts = {};
    const deletes = [];
    const put = (key, value) => {
      puts[PREFIX + key] = value;
      this.#stored.add(key);
      this.#stats.puts++;
      this.#stats.bytes += key.length + PREFIX.length + (value.byteLength ?? JSON.stringify(value).length);
    };
    const drop = (key) => {
      if (!this.#stored.delete(key)) return;
      deletes.push(PREFIX + key);
      this.#stats.deletes++;
    };
    for (const change of changes) {
      const { key, kind, value } = change;
      if (kind === 'meta') {
        this.#meta.engine = value;
        this.#metaDirty = true;
      } else if (kind === 'connection') {
        const ws = this.#sockets.get(change.connection);
        if (value == null) {
          drop(key);
        } else if (!change.lost && ws && this.#attach(ws, change.connection, value)) {
          drop(key);
        } else {
          // Lost (no socket), or too large for an attachment: stored.
          if (ws) this.#attach(ws, change.connection, null);
          put(key, value);
        }
      } else if (value == null) {
        drop(key);
      } else {
        put(key, value);
      }
    }
    if (this.#metaDirty) {
      this.#metaDirty = false;
      puts[META_KEY] = { ...this.#meta };
      this.#stats.puts++;
      this.#stats.bytes += META_KEY.length + 64 + (this.#meta.engine?.byteLength ?? 0);
    }
    const storage = this.ctx.storage;
    const keys = Object.keys(puts);
    await inChunks(keys, (some) => storage.put(Object.fromEntries(some.map((k) => [k, puts[k]]))));
    await inChunks(deletes, (some) => storage.delete(some));
    await this.#setAlarm(wakeAt == null ? null : Math.max(wakeAt, this.#lastSweep + this.#hostOptions().sweepIntervalMs));
  }

  /**
   * Keeps a connection's record beside its socket; false when it does not
   * fit (the runtime's limit is 16 KiB in production, smaller in some
   * local runtimes: whatever it refuses is stored instead).
   */
  #attach(ws, id, record) {
    if (record && record.byteLength + ATTACHMENT_OVERHEAD > ATTACHMENT_BYTES) return false;
    try {
      ws.serializeAttachment(record ? { id, record } : { id });
    } catch {
      return false;
    }
    if (record) {
      this.#stats.attachments++;
      this.#stats.attachmentBytes += record.byteLength;
    }
    return true;
  }

  async #setAlarm(at) {
    if ((at ?? null) === this.#alarmAt) return;
    this.#alarmAt = at ?? null;
    if (at == null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(at);
  }

  /** Closes connection `id`'s socket with `code` and makes the engine forget it. */
  async #refuse(id, code, reason) {
    const ws = this.#sockets.get(id);
    this.#sockets.delete(id);
    closeQuietly(ws, code, reason);
    let batch;
    try {
      batch = this.#engine.close(id, Date.now());
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'engine.close threw', err, id));
      return;
    }
    await this.#run(batch);
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
