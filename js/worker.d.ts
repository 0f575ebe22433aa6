import type { Engine, EngineOptions, Credentials, HostEvent, HostError, RoomCounts, MemberInfo, ObjectInfo, Identity } from './index.js';

/** Cloudflare's DurableObjectState, as far as rollcall uses it. */
export interface DurableObjectStateLike {
  storage: {
    get(key: string): Promise<unknown>;
    get(keys: string[]): Promise<Map<string, unknown>>;
    list(options?: { prefix?: string }): Promise<Map<string, unknown>>;
    put(entries: Record<string, unknown>): Promise<void>;
    delete(keys: string[]): Promise<number>;
    getAlarm(): Promise<number | null>;
    setAlarm(at: number): Promise<void>;
    deleteAlarm(): Promise<void>;
  };
  acceptWebSocket(ws: WebSocket): void;
  getWebSockets(): WebSocket[];
  setWebSocketAutoResponse(pair?: unknown): void;
  getWebSocketAutoResponseTimestamp(ws: WebSocket): Date | null;
  blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T>;
}

/** JwtVerifier options: the engine's `auth` options (keys, leewayMs, requireExp, issuers, audiences, maxTokenBytes) plus JWKS. */
export interface JwtVerifierOptions {
  /** `{ algorithm?, kid?, jwk }` (public JWK), `{ algorithm, kid?, secret }` (HS*), `{ algorithm, kid?, pem }` (SPKI). */
  keys?: Array<{ algorithm?: string; kid?: string; jwk?: JsonWebKey & { kid?: string; alg?: string }; secret?: string | Uint8Array; pem?: string }>;
  /** A JSON Web Key Set; a key without `alg` is taken as ES256/ES384 (by curve), EdDSA (Ed25519) or RS256 (RSA). */
  jwks?: { keys: Array<JsonWebKey & { kid?: string; alg?: string }> };
  /** Fetched on first use, then every `jwksCacheMs` (default 600 000), and on an unknown kid at most every `jwksRefreshMs` (default 30 000). */
  jwksUrl?: string;
  jwksCacheMs?: number;
  jwksRefreshMs?: number;
  /** Default 30 000. */
  leewayMs?: number;
  /** Default true. */
  requireExp?: boolean;
  issuers?: string[];
  audiences?: string[];
  /** Default 8 192. */
  maxTokenBytes?: number;
  /** For `jwksUrl`; default the global fetch. */
  fetch?: (url: string) => Promise<Response>;
}

/**
 * JWT verification with WebCrypto, with the engine's rules and error codes.
 * `verify` resolves to the identity the token proves, or rejects with a
 * RollcallError whose `code` is the engine's (EXPIRED, BAD_SIGNATURE, UNKNOWN_KID, ...),
 * or JWKS_FETCH_FAILED. The constructor throws BAD_OPTIONS for an unusable key.
 */
export declare class JwtVerifier {
  constructor(options?: JwtVerifierOptions);
  verify(token: string, now?: number): Promise<Identity>;
}

export declare const JWT_DEFAULTS: Readonly<{ leewayMs: number; requireExp: boolean; maxTokenBytes: number; jwksCacheMs: number; jwksRefreshMs: number }>;

/** RollcallDurableObject's own options (override `hostOptions`). */
export interface HostOptions {
  /** Alarms (deadlines and liveness sweeps) come at most this often; a deadline is carried out at most this much late. Default 10 000. */
  sweepIntervalMs?: number;
  /** Verify upgrade tokens with WebCrypto (JwtVerifier options) instead of in the engine. Default null. */
  jwt?: JwtVerifierOptions | null;
  /** How long credentials() and the token's verification may take before the socket is closed with 4003 AUTH_TIMEOUT (reported as CREDENTIALS_FAILED), ms; 0: no limit. Default 10 000. */
  credentialsTimeoutMs?: number;
}

export declare const DEFAULT_HOST_OPTIONS: Readonly<Required<HostOptions>>;

/** What the object wrote since it was loaded or last reset (see `persistStats`). */
export interface PersistStats {
  /** Storage keys put and deleted, and the bytes put. */
  puts: number;
  deletes: number;
  bytes: number;
  /** Socket attachments written (connection records), and their bytes. */
  attachments: number;
  attachmentBytes: number;
}

/**
 * A Durable Object (it extends `DurableObject` from `cloudflare:workers`,
 * so RPC works on its stubs) hosting one Engine with WebSocket hibernation.
 * Storage is written per change: each live connection's record in its
 * socket's attachment (≤ 16 KiB, else under its own storage key), lost
 * connections, rooms' sequence records, objects and the meta record one
 * storage key each; deadlines and liveness sweeps in the alarm; the SDK's
 * ping answered by the runtime without waking the object.
 */
export declare class RollcallDurableObject {
  constructor(ctx: DurableObjectStateLike, env: unknown);
  readonly ctx: DurableObjectStateLike;
  readonly env: unknown;
  /** Override: the Engine's options. Default `env.ROLLCALL_OPTIONS` (object or JSON text). */
  engineOptions(env: unknown): EngineOptions;
  /**
   * Override: credentials of an upgrade (may be async). Default: the token
   * from `?token=` or `Authorization: Bearer`. Throwing or rejecting closes
   * that socket with 4001 and reports CREDENTIALS_FAILED to onError.
   */
  credentials(request: Request): Credentials | Promise<Credentials>;
  /** Override: every host event. A throw is reported (LISTENER_FAILED), the batch carries on. */
  onEvent(event: HostEvent): void;
  /**
   * Override: every failure the object contained (never thrown). The
   * message starts with CREDENTIALS_FAILED, ENGINE_FAILED or
   * LISTENER_FAILED; `cause` is what was thrown, `connection` the
   * connection it closed (4001, or 1011 INTERNAL_ERROR for a failed engine
   * call on a frame), if any. Default: console.error.
   */
  onError(error: HostError): void;
  /** Override: this host's options (see HostOptions). Default `{}`. */
  hostOptions(env: unknown): HostOptions;
  engine(): Promise<Engine>;
  /** RPC: a room's counts. */
  counts(room: string): Promise<RoomCounts>;
  /** RPC: a room's presence set. */
  members(room: string): Promise<MemberInfo[]>;
  /** RPC: one object, or null. */
  object(realm: string, id: string): Promise<ObjectInfo | null>;
  /** RPC: publishes as the server; resolves to how many connections it went to. */
  publish(room: string, event: string, data?: unknown): Promise<number>;
  /** What the object wrote (in memory; `reset` zeroes the counters after reading). */
  persistStats(options?: { reset?: boolean }): PersistStats;
  fetch(request: Request): Promise<Response>;
  webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void>;
  webSocketClose(ws: WebSocket, code: number, reason: string, wasClean: boolean): Promise<void>;
  webSocketError(ws: WebSocket, error: unknown): Promise<void>;
  alarm(): Promise<void>;
  /** Drops the in-memory engine as hibernation does; the next event restores it. */
  evict(): void;
}

export interface RouteOptions {
  /** The object's name for a request. Default: the `room` query parameter, else "default". */
  name?: (url: URL, request: Request) => string;
  /** Refuse (403) before any object is touched. */
  authorize?: (request: Request, token: string | null) => boolean | Promise<boolean>;
}

/** A stub of a RollcallDurableObject: `fetch`, and its RPC methods. */
export interface RollcallStubLike {
  fetch(request: Request): Promise<Response>;
  counts(room: string): Promise<RoomCounts>;
  members(room: string): Promise<MemberInfo[]>;
  object(realm: string, id: string): Promise<ObjectInfo | null>;
  publish(room: string, event: string, data?: unknown): Promise<number>;
}

export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: unknown): RollcallStubLike;
}

export declare function routeUpgrade(request: Request, namespace: DurableObjectNamespaceLike, options?: RouteOptions): Promise<Response>;
export declare function tokenFromRequest(request: Request): string | null;
