import type { Engine, EngineOptions, Credentials, HostEvent, HostError } from './index.js';

/** Cloudflare's DurableObjectState, as far as rollcall uses it. */
export interface DurableObjectStateLike {
  storage: {
    get(key: string): Promise<unknown>;
    get(keys: string[]): Promise<Map<string, unknown>>;
    put(entries: Record<string, unknown>): Promise<void>;
    delete(keys: string[]): Promise<number>;
    setAlarm(at: number): Promise<void>;
    deleteAlarm(): Promise<void>;
  };
  acceptWebSocket(ws: WebSocket): void;
  getWebSockets(): WebSocket[];
  blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T>;
}

/**
 * A Durable Object hosting one Engine with WebSocket hibernation: the
 * snapshot lives in storage (chunked), each socket's connection id and
 * verified identity in its attachment (≤ 16 KiB), deadlines in the alarm.
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
  engine(): Promise<Engine>;
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

export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: unknown): { fetch(request: Request): Promise<Response> };
}

export declare function routeUpgrade(request: Request, namespace: DurableObjectNamespaceLike, options?: RouteOptions): Promise<Response>;
export declare function tokenFromRequest(request: Request): string | null;
