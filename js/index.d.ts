// Types for the rollcall package (all entries: node, workerd, web).

/** An action on a room, as named in the `rooms` claim. */
export type RoomAction = 'subscribe' | 'publish' | 'presence';

/** Room pattern (`*` within a `/` segment, `**` across, `?` one character) -> actions. */
export type RoomGrants = Record<string, RoomAction[]>;

export type JwtAlgorithm =
  | 'HS256' | 'HS384' | 'HS512'
  | 'RS256' | 'RS384' | 'RS512'
  | 'PS256' | 'PS384' | 'PS512'
  | 'ES256' | 'ES384' | 'EdDSA';

/** A JSON Web Key (RFC 7517) as `crypto.subtle.exportKey('jwk')` or a JWKS endpoint gives it. */
export interface Jwk {
  kty: 'oct' | 'RSA' | 'EC' | 'OKP' | (string & {});
  kid?: string;
  alg?: string;
  /** oct: the secret, base64url. */
  k?: string;
  /** RSA public modulus and exponent, base64url. */
  n?: string;
  e?: string;
  /** EC (P-256, P-384) and OKP (Ed25519) public key. */
  crv?: string;
  x?: string;
  y?: string;
  [member: string]: unknown;
}

/**
 * One verification key: `secret` for HS* (text, or any bytes),
 * `pem` (a public key) or `jwk` (a public JWK, or an oct JWK for HS*) for
 * the others. With `jwk`, `algorithm` and `kid` default to the JWK's
 * `alg` and `kid`.
 */
export interface JwtKey {
  /** Matched against the token header's `kid`. */
  kid?: string;
  /** The only algorithm this key accepts. Required unless `jwk.alg` says it. */
  algorithm?: JwtAlgorithm;
  secret?: string | Uint8Array | ArrayBuffer;
  pem?: string;
  jwk?: Jwk;
}

export interface AuthOptions {
  /** Verification keys. Default: none (only host-asserted identities). */
  keys?: JwtKey[];
  /** Clock-skew allowance for exp and nbf, ms. Default 30000. */
  leewayMs?: number;
  /** Refuse tokens without exp. Default true. */
  requireExp?: boolean;
  /** Accepted issuers; empty accepts any. Default []. */
  issuers?: string[];
  /** Accepted audiences; empty skips the check. Default []. */
  audiences?: string[];
  /** Time a connection opened without credentials has to send `auth`, ms. Default 10000. */
  authTimeoutMs?: number;
  /** Longest token (at open or in `auth`), bytes; longer ones are refused (TOKEN_TOO_LARGE) before decoding. Default 8192. */
  maxTokenBytes?: number;
}

/** A token bucket: `burst` tokens when full, `perSecond` regained each second. */
export interface RateLimit {
  burst: number;
  perSecond: number;
}

export interface Limits {
  /** Largest frame, bytes. Default 65536. */
  maxFrameBytes?: number;
  /** Deepest nesting of arrays/objects in a frame. Default 32. */
  maxJsonDepth?: number;
  /** Longest room, event name or clientId, bytes. Default 256. */
  maxNameBytes?: number;
  /** Rooms one connection may have joined. Default 100. */
  maxRoomsPerConnection?: number;
  /** Subscriptions one connection may hold. Default 500. */
  maxSubscriptionsPerConnection?: number;
  /** Members of one room's presence set. Default 10000. */
  maxMembersPerRoom?: number;
  /** Presence data (JSON text) per member, bytes. Default 4096. */
  maxPresenceDataBytes?: number;
  /** Frames per connection. Default { burst: 100, perSecond: 50 }. */
  rate?: RateLimit;
  /** Violations before a close with 4008. Default { burst: 20, perSecond: 1 }. */
  violations?: RateLimit;
  /** Compiled patterns kept in the cache. Default 4096. */
  patternCacheSize?: number;
  /** Wildcards (`*`, `?`; `**` counts two) in one id or room pattern; `**` alone and literals always pass. Default 12. */
  maxPatternWildcards?: number;
  /** Realms the engine holds. Default 10000. */
  maxRealms?: number;
  /** Objects in one realm. Default 1000000. */
  maxObjectsPerRealm?: number;
  /** Object data (JSON text), bytes. Default 16384. */
  maxObjectDataBytes?: number;
  /** Patterns in one identity's `rooms`, `per` and `dpv` claims together; more are refused (BAD_CLAIMS, BAD_IDENTITY). Default 64. */
  maxClaimPatterns?: number;
  /**
   * The whole engine's memory budget, bytes: object ids and data, presence data, connections with their
   * claims, joined rooms, subscriptions (docs/PROTOCOL.md, "Memory budget"). Past it: ENGINE_FULL frames,
   * new connections closed with 4013. Default 67108864 (64 MiB).
   */
  maxStoredBytes?: number;
}

/** CRUD letters, e.g. "R" or "CRU". */
export type CrudLetters = string;
/** The `per` claim: realm (or "*") -> id pattern -> CRUD letters. */
export type PermissionClaim = Record<string, Record<string, CrudLetters>>;
/** The `dpv` claim: realm (or "*") -> id patterns this connection provides data for. */
export type ProviderClaim = Record<string, string[]>;

export interface EngineOptions {
  /** Prefix of presence ids ("<appId>:<connectionId>"). Default "rollcall". */
  appId?: string;
  auth?: AuthOptions;
  /** Grants for tokens/identities without a `rooms` claim. Default { "**": ["subscribe", "publish", "presence"] }. */
  defaultRoomGrants?: RoomGrants;
  /** Object permissions for tokens/identities without a `per` claim. Default {} (none). */
  defaultPermissions?: PermissionClaim;
  limits?: Limits;
  /**
   * How long a lost connection (dropped socket, 1006, silent) keeps its
   * members, rooms, subscriptions and provider role, ms, nothing sent to
   * others; then one `leave`. 0: leave at once. Default 15000.
   */
  leaveGraceMs?: number;
  /** No frame and no pong for this long: lost (closed 4010, then grace). 0: never. Default 30000. */
  idleTimeoutMs?: number;
  /** Key resume tokens are HMAC-SHA256'd under. Default (in JS): 32 random bytes per Engine. */
  resumeSecret?: string | null;
  /** Carried with every presence `seq`. Default (in JS): `Date.now()` at construction; a restored engine keeps its own. */
  epoch?: number;
  /** Presence events kept per room for a resume to replay. Default 64. */
  replayEvents?: number;
  /** Coalesced presence delivery. Default: off (every event sent at once). Not with `cluster`. */
  presence?: PresenceOptions;
  /**
   * Cluster mode: this engine is one node of several sharing each room's
   * presence set, objects and providers through a store (rollcall/redis). `node`: this node's
   * unique name, 1-64 of `[A-Za-z0-9_.-]`; member ids become
   * `appId:node:connection`. Default null (one engine alone).
   */
  cluster?: { node: string } | null;
}

/**
 * Coalesced presence delivery: a room with a non-zero flush interval holds
 * its presence events for up to that long, collapses a member's updates to
 * the latest data, and sends each subscriber one frame per flush (a
 * `batch` frame when it holds more than one event). Joins and leaves are
 * never dropped or reordered. A member's updates there do not spend the
 * frame rate budget (`limits.rate`).
 */
export interface PresenceOptions {
  /** Flush interval of rooms no entry of `rooms` names, ms (at most 2^52). 0: no coalescing. Default 0. */
  flushIntervalMs?: number;
  /** Per-room intervals: the first entry whose room pattern matches gives a new room's interval. Default []. */
  rooms?: { pattern: string; flushIntervalMs: number }[];
}

/** An identity the host verified itself (API key, session). */
export interface Identity {
  clientId?: string | null;
  /** Room grants; null/absent takes `defaultRoomGrants`. */
  rooms?: RoomGrants | null;
  /** When the credentials stop being valid (ms since the epoch): closed with 4002 then. */
  expiresAt?: number | null;
  /** Object permissions; null/absent takes `defaultPermissions`. */
  per?: PermissionClaim | null;
  /** Objects this connection is a data provider for. */
  dpv?: ProviderClaim | null;
}

/** A JWT string, `{ token }`, `{ identity }`, or nothing (the client sends an `auth` frame). */
export type Credentials = string | { token: string } | { identity: Identity } | null | undefined;

/** Send `payload` (a text frame) to every connection in `to`. */
export interface Send {
  /** Connection ids (a typed array: one copy across the wasm boundary). Iterate it, or `Array.from` it. */
  to: Float64Array;
  payload: string;
}

/** 4009 (SLOW_CONSUMER) and 1011 (INTERNAL_ERROR) come from host adapters, not the engine. 4013: the memory budget is spent. */
export type CloseCode = 4001 | 4002 | 4003 | 4008 | 4009 | 4010 | 4011 | 4013 | 1011;

/**
 * Close this connection; the engine has already forgotten it, except after
 * 4010 (STALE: drop the socket at once), when it holds it in grace.
 */
export interface CloseInstruction {
  connection: number;
  code: CloseCode;
  /** AUTH_FAILED reasons are AuthError names (EXPIRED, BAD_SIGNATURE, ...): see {@link AuthError}. */
  reason: string;
}

/**
 * Why a token or a host-asserted identity was refused (the close reason of a 4001; the `authRefused`
 * event's `error` starts with it, e.g. "BAD_CLAIMS: exp ... is too far in the future").
 */
export type AuthError =
  | 'NO_KEYS' | 'MALFORMED' | 'ALGORITHM_NOT_ALLOWED' | 'UNKNOWN_KID' | 'BAD_SIGNATURE' | 'EXPIRED'
  | 'NOT_YET_VALID' | 'MISSING_EXP' | 'WRONG_ISSUER' | 'WRONG_AUDIENCE' | 'BAD_CLAIMS'
  | 'TOKEN_TOO_LARGE' | 'UNKNOWN_CRIT' | 'BAD_IDENTITY';

export type HostEvent =
  | { type: 'authenticated'; connection: number; clientId: string | null }
  | { type: 'authRefused'; connection: number; error: string }
  /** An authenticated connection's `auth` with a new token was accepted: its identity changed. */
  | { type: 'tokenRefreshed'; connection: number; clientId: string | null; expiresAt: number | null }
  | { type: 'closed'; connection: number }
  /** Lost abnormally: in grace until `graceUntil` (ms since the epoch). */
  | { type: 'connectionLost'; connection: number; graceUntil: number }
  /** `connection` resumed `previous`, which is gone: same members, rooms, subscriptions. */
  | { type: 'resumed'; connection: number; previous: number }
  | { type: 'roomJoined'; connection: number; room: string }
  | { type: 'roomLeft'; connection: number; room: string }
  | { type: 'presenceJoined'; room: string; connection: number; clientId: string; data: unknown }
  | { type: 'presenceUpdated'; room: string; connection: number; clientId: string; data: unknown }
  | { type: 'presenceLeft'; room: string; connection: number; clientId: string }
  | { type: 'objectStatusChanged'; realm: string; id: string; status: ConnectionStatus }
  /** Cluster mode: a local presence change for the store to order (`member`: the text to store; null for a leave). */
  | { type: 'clusterReplicate'; room: string; op: 'join' | 'update' | 'leave' | 'adopt' | 'mark'; id: string; member: string | null }
  /** Cluster mode: the first local connection joined `room`: follow it, hand over its snapshot. */
  | { type: 'clusterWatch'; room: string }
  /** Cluster mode: the last local connection left `room`: stop following it. */
  | { type: 'clusterUnwatch'; room: string }
  /** Cluster mode: a room event to publish on the room's channel for the other nodes. */
  | { type: 'clusterPublish'; room: string; message: string }
  /** Cluster mode: a connection in grace is resumable elsewhere with `token` until `graceUntil`. */
  | { type: 'clusterResumable'; connection: number; token: string; graceUntil: number }
  /** Cluster mode: `resume` with a token this node does not know: claim it, then `clusterResume`. */
  | { type: 'clusterResumeClaim'; connection: number; token: string }
  /** Cluster mode: `room` missed changes: hand over a fresh snapshot. */
  | { type: 'clusterResync'; room: string }
  /** Cluster mode: a local object change for the store to order (`dataText`: the data as JSON text, null for none or a delete). */
  | { type: 'clusterObject'; realm: string; op: 'create' | 'update' | 'delete'; id: string; dataText: string | null }
  /** Cluster mode: a realm event to publish on the objects channel for the other nodes. */
  | { type: 'clusterRealmPublish'; realm: string; message: string }
  /** Cluster mode: this node's provider set changed (`{realm: [pattern, ...]}` as text): store it. */
  | { type: 'clusterProviders'; providers: string }
  /** Cluster mode: `realm` missed changes: hand over its snapshot. */
  | { type: 'clusterRealmResync'; realm: string };

export type ConnectionStatus = 'connected' | 'disconnected';

export interface ObjectInfo {
  id: string;
  data: unknown;
  connectionStatus: ConnectionStatus;
  /** Live connections providing data for it. */
  providers: number;
}

/** Everything one host event asks of the host. Carry out sends, then closes. */
export interface Batch {
  sends: Send[];
  closes: CloseInstruction[];
  events: HostEvent[];
  /** Call `tick` at this time (ms since the epoch), or null for never. */
  wakeAt: number | null;
  /** Only for `publish`: how many connections the event went to. */
  recipients?: number;
  /** Only after `trackChanges()`: the records this call touched (see docs/PROTOCOL.md, "Change records"). */
  changes?: RecordChange[];
}

/** A change record: write `value` under `key`, or delete `key` when `value` is null. */
export interface RecordChange {
  key: string;
  kind: 'meta' | 'connection' | 'room' | 'object';
  /** For `kind: 'connection'`: its id. */
  connection?: number;
  /** For `kind: 'connection'`: in grace (no socket): store it, it has no attachment to live in. */
  lost?: boolean;
  value: Uint8Array | null;
}

export interface MemberInfo {
  /** Null for a member of another node (cluster mode). */
  connection: number | null;
  /** "<appId>:<connectionId>" */
  id: string;
  clientId: string;
  data: unknown;
  /** Its connection is lost and in its leave grace. */
  inGrace: boolean;
}

export interface ClientInfo {
  clientId: string;
  /** Null entries: connections of other nodes (cluster mode). */
  connections: (number | null)[];
}

export interface RoomCounts {
  connections: number;
  members: number;
  clients: number;
  /** Members whose connection is lost and in grace. */
  inGrace: number;
}

export type ErrorCode =
  | 'BAD_FRAME' | 'FRAME_TOO_LARGE' | 'TOO_DEEP' | 'UNKNOWN_OP' | 'BAD_REQUEST'
  | 'NOT_AUTHENTICATED' | 'TOKEN_INVALID' | 'SUBJECT_MISMATCH' | 'FORBIDDEN'
  | 'ROOM_NOT_JOINED' | 'TOO_MANY_ROOMS' | 'TOO_MANY_SUBSCRIPTIONS' | 'ROOM_FULL'
  | 'PRESENCE_DATA_TOO_LARGE' | 'NO_CLIENT_ID' | 'RATE_LIMITED'
  | 'OBJECT_EXISTS' | 'OBJECT_NOT_FOUND' | 'OBJECT_DATA_TOO_LARGE' | 'REALM_FULL' | 'TOO_MANY_REALMS'
  | 'PATTERN_TOO_COMPLEX' | 'RESUME_FAILED' | 'ENGINE_FULL';

export declare const ErrorCodes: { readonly [K in ErrorCode]: K };

/** Why `verifyToken` refused a token (also the reason of a 4001 close). */
export type AuthErrorCode =
  | 'NO_KEYS' | 'MALFORMED' | 'ALGORITHM_NOT_ALLOWED' | 'UNKNOWN_KID' | 'BAD_SIGNATURE'
  | 'EXPIRED' | 'NOT_YET_VALID' | 'MISSING_EXP' | 'WRONG_ISSUER' | 'WRONG_AUDIENCE' | 'BAD_CLAIMS';

/** Host mistakes the Engine throws for (never for anything a client sends). */
export type HostErrorCode =
  | 'BAD_ARGUMENT' | 'BAD_OPTIONS' | 'BAD_IDENTITY' | 'BAD_PATTERN' | 'BAD_SNAPSHOT'
  | 'DUPLICATE_CONNECTION' | 'ENGINE_FREED' | 'ENGINE_BROKEN';

/** What the client SDK adds: a request or the connection failed. */
export type ClientErrorCode = 'TIMEOUT' | 'DISCONNECTED' | 'CLOSED' | 'ABORTED' | 'AUTH_FAILED' | 'TOKEN_EXPIRED';

export type RollcallErrorCode = ErrorCode | AuthErrorCode | HostErrorCode | ClientErrorCode;

/**
 * The package's one error class (also exported by rollcall/client): the
 * message is `CODE: detail` (or `CODE` alone), `code` is stable.
 */
export declare class RollcallError extends Error {
  constructor(code: RollcallErrorCode | (string & {}), detail?: string, extra?: { closeCode?: number; reason?: string; ref?: number; cause?: unknown });
  readonly name: 'RollcallError';
  readonly code: RollcallErrorCode | (string & {});
  /** The WebSocket close code, when a close caused it (AUTH_FAILED 4001, TOKEN_EXPIRED 4002). */
  readonly closeCode?: number;
  /** The close reason, when a close caused it (e.g. BAD_SIGNATURE). */
  readonly reason?: string;
  /** The request's ref, for protocol errors answering a request. */
  readonly ref?: number;
}

/**
 * A failure a host adapter (rollcall/node, rollcall/worker) contained (never thrown): its message starts with
 * CREDENTIALS_FAILED, ENGINE_FAILED or LISTENER_FAILED; `cause` is what was
 * thrown; `connection` the connection it closed or concerned, if any.
 */
export interface HostError extends RollcallError {
  readonly code: 'CREDENTIALS_FAILED' | 'ENGINE_FAILED' | 'LISTENER_FAILED';
  cause: unknown;
  connection?: number;
}

export declare const CloseCodes: {
  readonly AUTH_FAILED: 4001;
  readonly TOKEN_EXPIRED: 4002;
  readonly AUTH_TIMEOUT: 4003;
  readonly POLICY_VIOLATION: 4008;
  readonly SLOW_CONSUMER: 4009;
  /** Host adapters: an engine call for this connection threw; it alone was closed. */
  readonly INTERNAL_ERROR: 1011;
  readonly STALE: 4010;
  readonly RESUMED: 4011;
  readonly ENGINE_FULL: 4013;
};

/**
 * The presence engine. Sans-IO: feed it socket events and the time; carry
 * out the batch each call returns. `now` defaults to `Date.now()`.
 * Methods throw a RollcallError only for host mistakes (bad options, a
 * reused or non-integer connection id, a freed engine): see HostErrorCode.
 */
export declare class Engine {
  constructor(options?: EngineOptions);
  open(id: number, credentials?: Credentials, now?: number): Batch;
  message(id: number, frame: string | Uint8Array | ArrayBuffer, now?: number): Batch;
  /** A clean close (a close frame from the client): its members leave at once. */
  close(id: number, now?: number): Batch;
  /** The socket dropped (1006, an error, a terminate): the connection enters its leave grace. */
  lost(id: number, now?: number): Batch;
  /** A sign of life other than a frame (a protocol pong). */
  alive(id: number, now?: number): void;
  tick(now?: number): Batch;
  /** Sends every open presence window now (`presence.flushIntervalMs`); snapshots keep open windows anyway. */
  flush(): Batch;
  publish(room: string, event: string, data?: unknown, now?: number): Batch & { recipients: number };
  /** Cluster mode: a change of `room` the store ordered, as text. */
  clusterApply(room: string, change: string, now?: number): Batch;
  /** Cluster mode: the store's whole set of `room`, as text. */
  clusterSnapshot(room: string, snapshot: string, now?: number): Batch;
  /** Cluster mode: hands over the connection holding resume `token`; `state` is for `clusterResume` on the claiming node. */
  clusterHandover(token: string, now?: number): Batch & { state: string | null };
  /** Cluster mode: the claimed state (null: the claim failed) for a `resume` pending on connection `id`. */
  clusterResume(id: number, state: string | null, now?: number): Batch;
  /** Cluster mode: this node's own members of `room`, as the texts to store. */
  clusterLocalMembers(room: string): string[];
  /** Cluster mode: a message of the store's objects channel, as text. */
  clusterObjectsApply(message: string, now?: number): Batch;
  /** Cluster mode: the store's whole `realm`, as text. */
  clusterRealmSnapshot(realm: string, snapshot: string, now?: number): Batch;
  /** Cluster mode: every node's providers, as text. */
  clusterProvidersSnapshot(snapshot: string, now?: number): Batch;
  /** Cluster mode: this node's provider set, as the text to store. */
  clusterLocalProviders(): string;
  /** Cluster mode: the store's epoch of `realm` as last applied here, or null. */
  clusterRealmEpoch(realm: string): number | null;
  /** Cluster mode: the realms holding objects on this node. */
  readonly clusterRealms: string[];
  /** Cluster mode: the objects of `realm` on this node, as pairs id, data text. */
  clusterRealmObjects(realm: string): string[];
  members(room: string): MemberInfo[];
  clients(room: string): ClientInfo[];
  counts(room: string): RoomCounts;
  /** Rebuilds an engine from `snapshot()` bytes; throws for another format version or corrupt bytes. */
  static restore(options: EngineOptions | undefined, bytes: Uint8Array): Engine;
  /** Rebuilds an engine from change records (`batch.changes` values, any order), tracking changes. */
  static import(options: EngineOptions | undefined, records: Uint8Array[]): Engine;
  /** The SDK's application ping and the engine's exact answer: `[request, response]`. */
  static readonly pingFrames: [string, string];
  /** From now on every batch carries `changes` (the first one: every record). */
  trackChanges(): void;
  /** The whole state, versioned and compact. Take it after carrying out the last batch. */
  snapshot(): Uint8Array;
  readonly connectionIds: number[];
  /** The verified identity a connection authenticated with, or null. */
  identity(id: number): Identity | null;
  /**
   * Verifies a JWT with the configured keys at `now` (signature, exp, nbf,
   * iss, aud) without opening a connection. Throws a RollcallError whose
   * `code` is the reason: 'EXPIRED', 'BAD_SIGNATURE', 'MALFORMED', ...
   */
  verifyToken(token: string, now?: number): Identity;
  /** How many of `ids` the id pattern (`*`, `**`, `?`) matches. Throws for an invalid pattern. */
  static matchCount(pattern: string, ids: string[]): number;
  object(realm: string, id: string): ObjectInfo | null;
  objects(realm: string, pattern?: string): ObjectInfo[];
  readonly connectionCount: number;
  readonly roomNames: string[];
  readonly realmNames: string[];
  readonly nextWake: number | null;
  free(): void;
}
