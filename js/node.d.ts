import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { EventEmitter } from 'node:events';
import type { WebSocketServer } from 'ws';
import type { Engine, Credentials, HostEvent } from './index.js';

export interface AttachOptions {
  /** Listen on this port (0 picks one). Or pass `server` or `wss`. */
  port?: number;
  host?: string;
  /** Share an existing http server (upgrades on `path`). */
  server?: HttpServer;
  /** Use an existing ws server. */
  wss?: WebSocketServer;
  path?: string;
  /** ws's own frame size limit, bytes. Default 1 MiB. */
  maxPayload?: number;
  /** A socket whose bufferedAmount passes this is closed with 4009 SLOW_CONSUMER. Default 1 MiB. */
  maxBufferedBytes?: number;
  /**
   * Credentials for a new connection. Default: the `?token=` query or an
   * `Authorization: Bearer` header, else none (the client sends `auth`).
   * Return `{ identity }` for host-side authentication. Throwing closes with 4001.
   */
  credentials?: (req: IncomingMessage) => Credentials | Promise<Credentials>;
  /** The clock. Default Date.now. */
  clock?: () => number;
  /**
   * A protocol ping to every socket this often, ms; pongs are signs of life
   * for the engine's `idleTimeoutMs` (keep it well below). 0: no pings.
   * Default 10 000.
   */
  pingIntervalMs?: number;
  /**
   * The first connection id. Default: the clock at construction x 1000, so
   * that ids (and member ids) never repeat across restarts.
   */
  firstConnectionId?: number;
}

type EventsByType = { [E in HostEvent as E['type']]: [E] };

export declare class RollcallServer extends EventEmitter {
  constructor(engine: Engine, options?: AttachOptions);
  readonly engine: Engine;
  readonly wss: WebSocketServer;
  readonly connections: number;
  address(): ReturnType<WebSocketServer['address']>;
  /** Publishes as the server; returns the number of recipients. */
  publish(room: string, event: string, data?: unknown): number;
  close(): Promise<void>;
  on<K extends keyof EventsByType>(event: K, listener: (...args: EventsByType[K]) => void): this;
  on(event: 'event', listener: (event: HostEvent) => void): this;
  on(event: 'listening', listener: (address: unknown) => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
}

export declare function attach(engine: Engine, options?: AttachOptions): RollcallServer;
export declare function tokenFromRequest(req: IncomingMessage): string | null;
