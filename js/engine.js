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
  ENGINE_FULL: 'ENGINE_FULL',
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

export class Engine {
  #wasm;

  /** @param {import('./index.js').EngineOptions} [options] */
  constructor(options = {}, restoring = undefined) {
    this.#wasm = restoring?.[RESTORING] ?? new WasmEngine(options);
  }

  /** Rebuilds an engine from `snapshot()` bytes. Throws for another format version or corrupt bytes. */
  static restore(options, bytes) {
    return new Engine(options, { [RESTORING]: WasmEngine.restore(options ?? {}, bytes) });
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
    return this.#wasm.members(room).map((m) => ({ ...m, data: parseData(m.data) }));
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
