// Types for rollcall/client.
import type { ConnectionStatus, RollcallError } from './index.js';

export { RollcallError, type ClientErrorCode, type RollcallErrorCode } from './index.js';

/** Options of a request: an AbortSignal rejects it with ABORTED. */
export interface RequestOptions {
  signal?: AbortSignal;
}

export interface ClientOptions {
  url?: string;
  token?: string;
  /** Called for a fresh token before the current one expires and on reconnect. */
  getToken?: () => string | Promise<string>;
  /** A WebSocket class; default the global one (rollcall/client in Node uses `ws`). */
  WebSocket?: unknown;
  /** Reconnect after an unexpected close. Default true. */
  reconnect?: boolean;
  /** Backoff with jitter: first delay (default 250), cap (10000), growth (2). */
  minDelayMs?: number;
  maxDelayMs?: number;
  backoffFactor?: number;
  /** Default 10000. */
  requestTimeoutMs?: number;
  /** Refresh this long before expiry (with getToken). Default 30000. */
  refreshBeforeMs?: number;
  /** Keep trying when the first connect() fails, with the same backoff. Default false: it rejects and stops. */
  retry?: boolean;
  /** The host authenticates the socket itself (no token): connect() resolves on its `welcome`. Default false. */
  hostAuth?: boolean;
  /** An application ping this often, ms (browsers cannot send protocol pings). 0: never. Default 10000. */
  pingIntervalMs?: number;
  /** No frame from the server for this long: it is gone (close 4010, reconnect). 0: never. Default 30000. */
  serverTimeoutMs?: number;
  /** Resume the lost connection on reconnect (same member ids, missed events replayed). Default true. */
  resume?: boolean;
}

/**
 * Why the status changed: 'connecting', 'connected' (a first connect),
 * 'resumed' (reconnected, the lost connection taken over: nobody saw a
 * thing), 'rejoined' (reconnected, resume refused: rooms rejoined, one
 * leave and one join for others), 'server silent', 'closed <code>', 'disconnected'.
 */
export type StatusReason = string;

export type ClientStatus = 'disconnected' | 'connecting' | 'connected' | 'reconnecting';

type Listener<T extends unknown[]> = (...args: T) => void;

/** An eventemitter3 emitter with typed events. */
declare class Emitter<Events extends Record<string, unknown[]>> {
  on<K extends keyof Events & string>(event: K, fn: Listener<Events[K]>): this;
  off<K extends keyof Events & string>(event: K, fn?: Listener<Events[K]>): this;
  once<K extends keyof Events & string>(event: K, fn: Listener<Events[K]>): this;
  listeners<K extends keyof Events & string>(event: K): Listener<Events[K]>[];
  listenerCount(event: keyof Events & string): number;
  removeAllListeners(event?: keyof Events & string): this;
}

/** One clientId in the per-client view, with its connections. */
export interface ClientEntry {
  clientId: string;
  connections: Member[];
}

export interface Member {
  /** "<appId>:<connectionId>" */
  id: string;
  clientId: string;
  data: unknown;
}

export interface PresenceEvent extends Member {
  event: 'join' | 'update' | 'leave';
  timestamp: string;
}

export interface RoomMessage {
  event: string;
  timestamp: string;
  from: { id: string; clientId: string | null } | null;
  data: unknown;
}

export declare class Presence extends Emitter<{ join: [PresenceEvent]; update: [PresenceEvent]; leave: [PresenceEvent]; presence: [PresenceEvent] }> {
  join(data?: unknown, options?: RequestOptions): Promise<void>;
  update(data?: unknown, options?: RequestOptions): Promise<void>;
  leave(options?: RequestOptions): Promise<void>;
  /** One entry per member connection (the default view). */
  get(options?: RequestOptions & { view?: 'connection' }): Promise<Member[]>;
  /** The per-client view: one entry per clientId, its connections inside. */
  get(options: RequestOptions & { view: 'client' }): Promise<ClientEntry[]>;
  /** Resolves with the current members; existing members are delivered as `join` first. */
  subscribe(event: 'join' | 'update' | 'leave', cb: (event: PresenceEvent) => void): Promise<Member[]>;
  subscribe(cb: (event: PresenceEvent) => void): Promise<Member[]>;
  unsubscribe(event: 'join' | 'update' | 'leave', cb: (event: PresenceEvent) => void): Promise<void>;
  unsubscribe(cb: (event: PresenceEvent) => void): Promise<void>;
  readonly members: Member[];
}

/** A joined room. */
export interface JoinedRoom {
  readonly name: string;
  readonly presence: Presence;
  leave(): Promise<void>;
  publish(event: string, data?: unknown, options?: RequestOptions): Promise<number>;
  subscribe(event: string, cb: (data: unknown, message: RoomMessage) => void): Promise<void>;
  subscribe(cb: (data: unknown, message: RoomMessage) => void): Promise<void>;
  unsubscribe(event: string, cb?: (data: unknown, message: RoomMessage) => void): Promise<void>;
}

/** What `client.join()` returns: usable at once, or awaited for the join. */
export type Room = JoinedRoom & PromiseLike<JoinedRoom>;

export interface RemoteObject {
  id: string;
  data: unknown;
  connectionStatus: ConnectionStatus;
}

export interface ObjectChange {
  event: 'create' | 'update' | 'delete' | 'status';
  object: RemoteObject;
  timestamp: string;
}

/**
 * `'update'` gets the whole map `{ [id]: object }`: at once when a listener is
 * added (in a microtask), after every change, and with a fresh snapshot after
 * a reconnect. `'change'` gets each change.
 */
export declare class ObjectSubscription extends Emitter<{ update: [Record<string, RemoteObject>]; change: [ObjectChange] }> {
  readonly pattern: string | null;
  /** A map without a prototype: any id (even `__proto__`) is a plain key. */
  readonly objects: Record<string, RemoteObject>;
  unsubscribe(): Promise<void>;
}

/** A realm event frame as it arrives. */
export interface RealmEvent<D = unknown> {
  type: 'event';
  realm: string;
  event: string;
  timestamp: string;
  /** The object the event is about, if any. */
  id: string | null;
  from: { id: string; clientId: string | null } | null;
  data: D;
}

/** `connectionStatusChanged` carries the object's new status; other events the publisher's data. */
export type RealmEventData<E extends string> = E extends 'connectionStatusChanged' ? { connectionStatus: ConnectionStatus } : unknown;

export type RealmEventCallback<E extends string> = (data: RealmEventData<E>, id: string | null, event: RealmEvent<RealmEventData<E>>) => void;

export declare class Realm {
  readonly name: string;
  readonly object: {
    get(id: string, options?: RequestOptions): Promise<RemoteObject>;
    create(id: string, data?: unknown, options?: RequestOptions): Promise<void>;
    update(id: string, data?: unknown, options?: RequestOptions): Promise<void>;
    delete(id: string, options?: RequestOptions): Promise<void>;
    list(pattern?: string, options?: RequestOptions): Promise<RemoteObject[]>;
    subscribe(pattern?: string): Promise<ObjectSubscription>;
  };
  readonly pubsub: {
    subscribe<E extends string>(event: E, cb: RealmEventCallback<E>): Promise<void>;
    subscribe<E extends string>(event: E, pattern: string | null, cb: RealmEventCallback<E>): Promise<void>;
    unsubscribe<E extends string>(event: E, pattern?: string | null, cb?: RealmEventCallback<E>): Promise<void>;
    publish(event: string, data?: unknown, id?: string, options?: RequestOptions): Promise<number>;
  };
}

export declare class Client extends Emitter<{
  connectionStatusChanged: [ClientStatus, { reason: StatusReason }];
  close: [{ code: number; reason: string }];
  error: [RollcallError];
  tokenRefreshed: [{ expiresAt: number | null }];
}> {
  constructor(options?: ClientOptions);
  readonly connectionStatus: ClientStatus;
  /** Why the status last changed. */
  readonly connectionReason: StatusReason | null;
  /** The engine epoch of the server last connected to. */
  readonly epoch: number | null;
  readonly clientId: string | null;
  /** This connection's presence id, "<appId>:<connectionId>". */
  readonly id: string | null;
  readonly expiresAt: number | null;
  /**
   * Resolves when the client is usable (authenticated; with `hostAuth`, on
   * the welcome; without a token, once open). A first connect that fails
   * rejects and stops, unless `retry`.
   */
  connect(url?: string, options?: RequestOptions): Promise<this>;
  connect(options: RequestOptions): Promise<this>;
  authenticate(token?: string): Promise<this>;
  /** Closes with 1000, for good; resolves when the socket has closed. */
  close(): Promise<void>;
  join(room: string): Room;
  readonly realm: { get(name: string): Promise<Realm> };
}

/** A matcher for one id pattern with the engine's rules (`*` within a segment, `**` across, `?` one byte), as the engine's own matcher decides. */
export declare function globMatcher(pattern: string): (id: string) => boolean;
