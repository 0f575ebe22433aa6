// Types for rollcall/client.
import type { ErrorCode, ConnectionStatus } from './index.js';

export type ClientErrorCode = ErrorCode | 'TIMEOUT' | 'DISCONNECTED' | 'CLOSED' | 'AUTH_FAILED' | 'TOKEN_EXPIRED';

export declare class RollcallError extends Error {
  readonly code: ClientErrorCode;
  /** The request's ref, for protocol errors. */
  readonly ref?: number;
  /** The WebSocket close code, for AUTH_FAILED (4001) and TOKEN_EXPIRED (4002, without getToken). */
  readonly closeCode?: number;
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

declare class Emitter<Events extends Record<string, unknown[]>> {
  on<K extends keyof Events & string>(event: K, fn: Listener<Events[K]>): this;
  off<K extends keyof Events & string>(event: K, fn: Listener<Events[K]>): this;
  once<K extends keyof Events & string>(event: K, fn: Listener<Events[K]>): this;
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
  join(data?: unknown): Promise<void>;
  update(data?: unknown): Promise<void>;
  leave(): Promise<void>;
  get(): Promise<Member[]>;
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
  publish(event: string, data?: unknown): Promise<number>;
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
  readonly objects: Record<string, RemoteObject>;
  unsubscribe(): Promise<void>;
}

export declare class Realm {
  readonly name: string;
  readonly object: {
    get(id: string): Promise<RemoteObject>;
    create(id: string, data?: unknown): Promise<void>;
    update(id: string, data?: unknown): Promise<void>;
    delete(id: string): Promise<void>;
    list(pattern?: string): Promise<RemoteObject[]>;
    subscribe(pattern?: string): Promise<ObjectSubscription>;
  };
  readonly pubsub: {
    subscribe(event: string, cb: (data: any, id: string | null, frame: unknown) => void): Promise<void>;
    subscribe(event: string, pattern: string | null, cb: (data: any, id: string | null, frame: unknown) => void): Promise<void>;
    unsubscribe(event: string, pattern?: string | null, cb?: (...args: any[]) => void): Promise<void>;
    publish(event: string, data?: unknown, id?: string): Promise<number>;
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
  connect(url?: string): Promise<this>;
  authenticate(token?: string): Promise<this>;
  close(): void;
  join(room: string): Room;
  readonly realm: { get(name: string): Promise<Realm> };
}

export declare function globMatcher(pattern: string): (id: string) => boolean;
