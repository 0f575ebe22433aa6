// The Engine class: the wasm core with JS ergonomics (default `now`, user
// data as JS values, credentials shorthand). Loaded by one of the entry
// files (index.node.js, index.workerd.js, index.web.js), which initialise
// the wasm module first.
import { WasmEngine, matchCount } from '../pkg/rollcall_wasm.js';

/** WebSocket close codes used by rollcall (see docs/PROTOCOL.md). */
export const CloseCodes = Object.freeze({
  AUTH_FAILED: 4001,
  TOKEN_EXPIRED: 4002,
  AUTH_TIMEOUT: 4003,
  POLICY_VIOLATION: 4008,
  /** Used by host adapters (rollcall/node): the socket's send buffer passed its bound. */
  SLOW_CONSUMER: 4009,
  /** No sign of life for `idleTimeoutMs`: drop the socket at once; the connection is in its leave grace. */
  STALE: 4010,
  /** Another connection resumed this one with its resume token. */
  RESUMED: 4011,
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
});

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
    this.#wasm = restoring?.[RESTORING] ?? new WasmEngine(withHostDefaults(options));
  }

  /** Rebuilds an engine from `snapshot()` bytes. Throws for another format version or corrupt bytes. */
  static restore(options, bytes) {
    return new Engine(options, { [RESTORING]: WasmEngine.restore(withHostDefaults(options ?? {}), bytes) });
  }

  /** The whole state as bytes (versioned). Take it after carrying out the last batch. */
  snapshot() {
    return this.#wasm.snapshot();
  }

  /** Ids of the live connections, sorted. */
  get connectionIds() {
    return [...this.#wasm.connectionIds()];
  }

  /** The verified identity of a connection, or null: keep it beside the socket. */
  identity(id) {
    return this.#wasm.identity(id) ?? null;
  }

  /**
   * Verifies a JWT with the configured keys at `now` without opening a
   * connection: returns the identity it proves, or throws an Error whose
   * message is the reason (`EXPIRED`, `BAD_SIGNATURE`, `MALFORMED`, ...).
   */
  verifyToken(token, now = Date.now()) {
    return this.#wasm.verifyToken(token, now);
  }

  /** How many of `ids` the id pattern matches, with the engine's pattern rules. Throws for an invalid pattern. */
  static matchCount(pattern, ids) {
    return matchCount(pattern, ids);
  }

  /** A socket opened. `credentials`: a JWT string, `{ token }`, `{ identity }`, or nothing (the client sends `auth`). */
  open(id, credentials, now = Date.now()) {
    return withData(this.#wasm.open(id, credentialsOf(credentials), now));
  }

  /** A frame arrived: a string, Uint8Array/Buffer or ArrayBuffer. */
  message(id, frame, now = Date.now()) {
    return withData(this.#wasm.message(id, frame, now));
  }

  /** The socket closed. Harmless for unknown or already-closed ids. */
  close(id, now = Date.now()) {
    return withData(this.#wasm.close(id, now));
  }

  /**
   * The socket dropped without a clean close (1006, an error, a terminate).
   * The connection keeps its rooms, members, subscriptions and provider
   * role for `leaveGraceMs`, nothing sent to others; then it leaves.
   */
  lost(id, now = Date.now()) {
    return withData(this.#wasm.lost(id, now));
  }

  /** A sign of life other than a frame (a protocol pong). Returns nothing. */
  alive(id, now = Date.now()) {
    this.#wasm.alive(id, now);
  }

  /** Time passed: call at (or after) `batch.wakeAt`. */
  tick(now = Date.now()) {
    return withData(this.#wasm.tick(now));
  }

  /** Publishes `event` with `data` (any JSON value) into `room` as the server. `batch.recipients` says to how many. */
  publish(room, event, data, now = Date.now()) {
    return withData(this.#wasm.publish(room, event, data === undefined ? undefined : JSON.stringify(data), now));
  }

  /** The room's presence set, one member per connection. */
  members(room) {
    return this.#wasm.members(room).map((m) => ({ ...m, data: parseData(m.data), inGrace: m.inGrace ?? false }));
  }

  /** The room's presence set, one entry per clientId with its connections. */
  clients(room) {
    return this.#wasm.clients(room);
  }

  /** `{ connections, members, clients }` of a room, without building lists. */
  counts(room) {
    return this.#wasm.roomCounts(room);
  }

  /** One object `{ id, data, connectionStatus, providers }`, or null. */
  object(realm, id) {
    const o = this.#wasm.object(realm, id);
    return o == null ? null : { ...o, data: parseData(o.data) };
  }

  /** Objects of `realm` matching `pattern` (default every id), sorted by id. */
  objects(realm, pattern = '**') {
    return this.#wasm.objects(realm, pattern).map((o) => ({ ...o, data: parseData(o.data) }));
  }

  get realmNames() {
    return this.#wasm.realmNames();
  }

  get connectionCount() {
    return this.#wasm.connectionCount();
  }

  get roomNames() {
    return this.#wasm.roomNames();
  }

  /** When `tick` is next needed (ms since the epoch), or null. */
  get nextWake() {
    return this.#wasm.nextWake() ?? null;
  }

  /** Frees the wasm memory; the engine is unusable afterwards. */
  free() {
    this.#wasm.free();
  }
}
