/// <reference types="node" />
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
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
}

type EventsByType = { [E in HostEvent as E['type']]: [E] };

/** The server's events: every HostEvent by its type, `event` for all of them, `listening`, `error`. */
export type ServerEvents = EventsByType & {
  event: [HostEvent];
  listening: [AddressInfo];
  error: [Error];
};

export declare class RollcallServer extends EventEmitter {
  constructor(engine: Engine, options?: AttachOptions);
  readonly engine: Engine;
  readonly wss: WebSocketServer;
  readonly connections: number;
  /** The listening address when the server listens on a port itself (`port` option); a pipe's path otherwise. */
  address(): AddressInfo;
  /** Publishes as the server; returns the number of recipients. */
  publish(room: string, event: string, data?: unknown): number;
  close(): Promise<void>;
  on<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => void): this;
  once<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => void): this;
  off<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => void): this;
}

export declare function attach(engine: Engine, options?: AttachOptions): RollcallServer;
export declare function tokenFromRequest(req: IncomingMessage): string | null;
