// The Engine class: the wasm core with JS ergonomics (default `now`, user
// data as JS values, credentials shorthand). Loaded by one of the entry
// files (index.node.js, index.workerd.js, index.web.js), which initialise
// the wasm module first.
import { WasmEngine, matchCount } from '../pkg/rollcall_wasm.js';
import { RollcallError, rollcallError } from './errors.js';
import { keysOf } from './keys.js';

export { RollcallError };

/** WebSocket close codes used by rollcall (see docs/PROTOCOL.md). */
export const CloseCodes = Object.freeze({
  AUTH_FAILED: 4001,
  TOKEN_EXPIRED: 4002,
  AUTH_TIMEOUT: 4003,
  POLICY_VIOLATION: 4008,
  /** Used by host adapters (rollcall/node): the socket's send buffer passed its bound. */
  SLOW_CONSUMER: 4009,
  /** Used by host adapters: an engine call for this connection threw; it alone is closed. */
  INTERNAL_ERROR: 1011,
  /** No sign of life for `idleTimeoutMs`: drop the socket at once; the connection is in its leave grace. */
  STALE: 4010,
  /** Another connection resumed this one with its resume token. */
  RESUMED: 4011,
  /** The engine's memory budget (`limits.maxStoredBytes`) cannot take another connection. */
  ENGINE_FULL: 4013,
});

/** Error codes of `{"type":"error"}` frames (see docs/PROTOCOL.md). */
export const ErrorCodes = Object.freeze({
  BAD_FRAME: 'BAD_FRAME',
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  TOO_DEEP: 'TOO_DEEP',
  UNKNOWN_OP: 'UNKNOWN_OP',
  BAD_REQUEST: 'BAD_REQUEST',
  NOT_AUTHENTICATED: 'NOT_AUTHENTICATED',
  TOKEN_INVALID: 'TOKEN_INVALID',
  SUBJECT_MISMATCH: 'SUBJECT_MISMATCH',
  FORBIDDEN: 'FORBIDDEN',
  ROOM_NOT_JOINED: 'ROOM_NOT_JOINED',
  TOO_MANY_ROOMS: 'TOO_MANY_ROOMS',
  TOO_MANY_SUBSCRIPTIONS: 'TOO_MANY_SUBSCRIPTIONS',
  ROOM_FULL: 'ROOM_FULL',
  PRESENCE_DATA_TOO_LARGE: 'PRESENCE_DATA_TOO_LARGE',
  NO_CLIENT_ID: 'NO_CLIENT_ID',
  RATE_LIMITED: 'RATE_LIMITED',
  OBJECT_EXISTS: 'OBJECT_EXISTS',
  OBJECT_NOT_FOUND: 'OBJECT_NOT_FOUND',
  OBJECT_DATA_TOO_LARGE: 'OBJECT_DATA_TOO_LARGE',
  REALM_FULL: 'REALM_FULL',
  TOO_MANY_REALMS: 'TOO_MANY_REALMS',
  PATTERN_TOO_COMPLEX: 'PATTERN_TOO_COMPLEX',
  RESUME_FAILED: 'RESUME_FAILED',
  ENGINE_FULL: 'ENGINE_FULL',
});

/**
 * What host adapters (rollcall/node, rollcall/worker) report when they
 * contain a failure (never thrown): a RollcallError whose `code` (and message) is a
 * stable code (CREDENTIALS_FAILED, ENGINE_FAILED, LISTENER_FAILED), with what
 * was thrown as its `cause` and the connection it concerned as `connection`.
 */
export function hostError(code, what, cause, connection) {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new RollcallError(code, `${what}: ${detail}`, connection == null ? { cause } : { cause, connection });
}

const parseData = (text) => (text == null ? null : JSON.parse(text));

function withData(batch) {
  for (const e of batch.events) {
    if ('data' in e) e.data = parseData(e.data);
  }
  return batch;
}

function credentialsOf(credentials) {
  if (credentials == null) return undefined;
  if (typeof credentials === 'string') return { token: credentials };
  return credentials;
}

/** Runs a wasm call; whatever it throws comes out as a RollcallError. */
function guarded(f) {
  try {
    return f();
  } catch (err) {
    throw rollcallError(err);
  }
}

/** A connection id is a non-negative safe integer (a number, never a string). */
function connectionId(id) {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
    throw new RollcallError('BAD_ARGUMENT', `connection id must be a non-negative integer number, not ${typeof id === 'string' ? JSON.stringify(id) : String(id)}`);
  }
  return id;
}

const RESTORING = Symbol('restoring');

/** 32 random bytes as hex, from the platform's CSPRNG (Node, browsers, workerd). */
function randomSecret() {
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The options with the defaults only a host can supply: a random
 * `resumeSecret` (resume tokens) and the time of construction as `epoch`.
 */
function withHostDefaults(options) {
  return { resumeSecret: randomSecret(), epoch: Date.now(), ...options };
}

export class Engine {
  #wasm;

  /** @param {import('./index.js').EngineOptions} [options] */
  constructor(options = {}, restoring = undefined) {
    this.#wasm = restoring?.[RESTORING] ?? guarded(() => new WasmEngine(keysOf(withHostDefaults(options))));
  }

  /** Rebuilds an engine from `snapshot()` bytes. Throws for another format version or corrupt bytes. */
  static restore(options, bytes) {
    return new Engine(options, {
      [RESTORING]: guarded(() => WasmEngine.restore(keysOf(withHostDefaults(options ?? {})), bytes)),
    });
  }

  /**
   * Rebuilds an engine from change records (`batch.changes` values a host
   * kept, any order), with change tracking on. Pass the same `resumeSecret`
   * and `epoch` as the engine that wrote them. Throws for corrupt records.
   */
  static import(options, records) {
    return new Engine(options, {
      [RESTORING]: guarded(() => WasmEngine.import(keysOf(withHostDefaults(options ?? {})), records)),
    });
  }

  /**
   * The SDK's application ping and the engine's exact answer to it,
   * `[request, response]`: a host may answer it without the engine
   * (a Durable Object's `setWebSocketAutoResponse`).
   */
  static get pingFrames() {
    return guarded(() => WasmEngine.pingFrames());
  }

  /**
   * From now on every batch carries `changes`: the records it touched,
   * `{ key, kind, connection?, lost?, value }` (`value` null: delete). The
   * first batch after this call carries every record.
   */
  trackChanges() {
    this.#call((w) => w.trackChanges());
  }

  /** Runs `f` on the live wasm engine; every throw becomes a RollcallError. */
  #call(f) {
    if (this.#wasm == null) throw new RollcallError('ENGINE_FREED', 'this engine was freed');
    return guarded(() => f(this.#wasm));
  }

  /** The whole state as bytes (versioned). Take it after carrying out the last batch. */
  snapshot() {
    return this.#call((w) => w.snapshot());
  }

  /** Ids of the live connections, sorted. */
  get connectionIds() {
    return [...this.#call((w) => w.connectionIds())];
  }

  /** The verified identity of a connection, or null: keep it beside the socket. */
  identity(id) {
    return this.#call((w) => w.identity(connectionId(id))) ?? null;
  }

  /**
   * Verifies a JWT with the configured keys at `now` without opening a
   * connection: returns the identity it proves, or throws a RollcallError
   * whose `code` is the reason (`EXPIRED`, `BAD_SIGNATURE`, `MALFORMED`, ...).
   */
  verifyToken(token, now = Date.now()) {
    if (typeof token !== 'string') throw new RollcallError('BAD_ARGUMENT', 'a token is a string');
    return this.#call((w) => w.verifyToken(token, now));
  }

  /** How many of `ids` the id pattern matches, with the engine's pattern rules. Throws for an invalid pattern. */
  static matchCount(pattern, ids) {
    return guarded(() => matchCount(pattern, ids));
  }

  /** A socket opened. `credentials`: a JWT string, `{ token }`, `{ identity }`, or nothing (the client sends `auth`). */
  open(id, credentials, now = Date.now()) {
    return withData(this.#call((w) => w.open(connectionId(id), credentialsOf(credentials), now)));
  }

  /** A frame arrived: a string, Uint8Array/Buffer or ArrayBuffer. */
  message(id, frame, now = Date.now()) {
    return withData(this.#call((w) => w.message(connectionId(id), frame, now)));
  }

  /** The socket closed. Harmless for unknown or already-closed ids. */
  close(id, now = Date.now()) {
    return withData(this.#call((w) => w.close(connectionId(id), now)));
  }

  /**
   * The socket dropped without a clean close (1006, an error, a terminate).
   * The connection keeps its rooms, members, subscriptions and provider
   * role for `leaveGraceMs`, nothing sent to others; then it leaves.
   */
  lost(id, now = Date.now()) {
    return withData(this.#call((w) => w.lost(connectionId(id), now)));
  }

  /** A sign of life other than a frame (a protocol pong). Returns nothing. */
  alive(id, now = Date.now()) {
    this.#call((w) => w.alive(connectionId(id), now));
  }

  /** Time passed: call at (or after) `batch.wakeAt`. */
  tick(now = Date.now()) {
    return withData(this.#call((w) => w.tick(now)));
  }

  /**
   * Sends every open presence window now (`presence.flushIntervalMs`), e.g.
   * before a shutdown. Not needed before `snapshot()`: open windows are kept in it.
   */
  flush() {
    return withData(this.#call((w) => w.flush()));
  }

  /** Publishes `event` with `data` (any JSON value) into `room` as the server. `batch.recipients` says to how many. */
  publish(room, event, data, now = Date.now()) {
    return withData(this.#call((w) => w.publish(room, event, data === undefined ? undefined : JSON.stringify(data), now)));
  }

  /**
   * Cluster mode (`cluster: { node }`): a change of `room` the store
   * ordered, as text (see rollcall/redis). Held, applied or ignored by the
   * engine; a gap or a new epoch asks for a snapshot (`clusterResync`).
   */
  clusterApply(room, change, now = Date.now()) {
    return withData(this.#call((w) => w.clusterApply(room, change, now)));
  }

  /** Cluster mode: the store's whole set of `room`, as text; subscribers get one `resync` if it differs. */
  clusterSnapshot(room, snapshot, now = Date.now()) {
    return withData(this.#call((w) => w.clusterSnapshot(room, snapshot, now)));
  }

  /** Cluster mode: hands over the connection holding resume `token`; `batch.state` is the text for `clusterResume` elsewhere, or null. */
  clusterHandover(token, now = Date.now()) {
    return withData(this.#call((w) => w.clusterHandover(token, now)));
  }

  /** Cluster mode: the claimed state (or null: claim failed) for a `resume` pending on connection `id`. */
  clusterResume(id, state, now = Date.now()) {
    return withData(this.#call((w) => w.clusterResume(connectionId(id), state ?? undefined, now)));
  }

  /** Cluster mode: this node's own members of `room`, as the texts to store (to re-assert them). */
  clusterLocalMembers(room) {
    return this.#call((w) => w.clusterLocalMembers(room));
  }

  /**
   * Cluster mode: a message of the store's objects channel, as text (an
   * object change the store ordered, another node's providers, a realm
   * event). A gap or a new epoch asks for a snapshot (`clusterRealmResync`).
   */
  clusterObjectsApply(message, now = Date.now()) {
    return withData(this.#call((w) => w.clusterObjectsApply(message, now)));
  }

  /** Cluster mode: the store's whole `realm`, as text; each difference reaches subscribers as a create, update or delete. */
  clusterRealmSnapshot(realm, snapshot, now = Date.now()) {
    return withData(this.#call((w) => w.clusterRealmSnapshot(realm, snapshot, now)));
  }

  /** Cluster mode: every node's providers, as text; a node missing from it is gone. */
  clusterProvidersSnapshot(snapshot, now = Date.now()) {
    return withData(this.#call((w) => w.clusterProvidersSnapshot(snapshot, now)));
  }

  /** Cluster mode: this node's provider set (`{realm: [pattern, ...]}`), as the text to store. */
  clusterLocalProviders() {
    return this.#call((w) => w.clusterLocalProviders());
  }

  /** Cluster mode: the store's epoch of `realm` as last applied here (null if none), to re-assert only a realm the store lost. */
  clusterRealmEpoch(realm) {
    return this.#call((w) => w.clusterRealmEpoch(realm)) ?? null;
  }

  /** Cluster mode: the realms holding objects on this node (to re-assert them). */
  get clusterRealms() {
    return this.#call((w) => w.clusterRealms());
  }

  /** Cluster mode: the objects of `realm` on this node, as pairs id, data text ('' for none), to re-assert them. */
  clusterRealmObjects(realm) {
    return this.#call((w) => w.clusterRealmObjects(realm));
  }

  /** The room's presence set, one member per connection. */
  members(room) {
    return this.#call((w) => w.members(room)).map((m) => ({ ...m, data: parseData(m.data), inGrace: m.inGrace ?? false }));
  }

  /** The room's presence set, one entry per clientId with its connections. */
  clients(room) {
    return this.#call((w) => w.clients(room));
  }

  /** `{ connections, members, clients }` of a room, without building lists. */
  counts(room) {
    return this.#call((w) => w.roomCounts(room));
  }

  /** One object `{ id, data, connectionStatus, providers }`, or null. */
  object(realm, id) {
    const o = this.#call((w) => w.object(realm, id));
    return o == null ? null : { ...o, data: parseData(o.data) };
  }

  /** Objects of `realm` matching `pattern` (default every id), sorted by id. */
  objects(realm, pattern = '**') {
    return this.#call((w) => w.objects(realm, pattern)).map((o) => ({ ...o, data: parseData(o.data) }));
  }

  get realmNames() {
    return this.#call((w) => w.realmNames());
  }

  get connectionCount() {
    return this.#call((w) => w.connectionCount());
  }

  get roomNames() {
    return this.#call((w) => w.roomNames());
  }

  /** When `tick` is next needed (ms since the epoch), or null. */
  get nextWake() {
    return this.#call((w) => w.nextWake()) ?? null;
  }

  /** Frees the wasm memory; the engine is unusable afterwards. */
  free() {
    this.#wasm?.free();
    this.#wasm = null;
  }
}
