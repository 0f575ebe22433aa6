/// <reference types="node" />
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { EventEmitter } from 'node:events';
import type { WebSocketServer } from 'ws';
import type { Engine, Credentials, HostEvent, HostError, Batch } from './index.js';
export type { HostError } from './index.js';

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
   * Return `{ identity }` for host-side authentication. Throwing or
   * rejecting closes that connection with 4001 and reports CREDENTIALS_FAILED.
   */
  credentials?: (req: IncomingMessage) => Credentials | Promise<Credentials>;
  /**
   * A `credentials` callback still pending after this long (ms) closes its
   * connection with 4003 AUTH_TIMEOUT and reports CREDENTIALS_FAILED; its
   * later result is ignored. 0 waits forever. Default 10000 (the engine's
   * `auth.authTimeoutMs`).
   */
  credentialsTimeoutMs?: number;
  /** Frames queued while `credentials` is pending; one more closes with 4008. Default 100. */
  maxQueuedFrames?: number;
  /** Bytes queued while `credentials` is pending; passing it closes with 4008. Default 1 MiB. */
  maxQueuedBytes?: number;
  /**
   * New connections per remote address (a token bucket), refused at the
   * upgrade with HTTP 429 and Retry-After past it. Loopback peers are not
   * counted. `null` turns it off. Not applied with your own `wss`.
   * A refusal is answered `refusalDelayMs` later (a tarpit, so that a client
   * retrying at once costs one accept per delay), with at most
   * `maxDelayedRefusals` waiting at once (past that: answered at once).
   * Default { burst: 10, perSecond: 2, refusalDelayMs: 1000, maxDelayedRefusals: 256 }.
   */
  connectionRate?: { burst: number; perSecond: number; refusalDelayMs?: number; maxDelayedRefusals?: number } | null;
  /** The address `connectionRate` counts by. Default `req.socket.remoteAddress` (behind a proxy, read its header). */
  addressOf?: (req: IncomingMessage) => string;
  /** A closed connection whose peer does not finish the close handshake is terminated after this, ms. Default 1000. */
  closeTimeoutMs?: number;
  /**
   * Receives every contained failure when the server has no 'error'
   * listener (see HostError). Default: console.error.
   */
  onError?: (error: HostError) => void;
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


/** The defaults of the adapter's own options. */
export declare const NODE_DEFAULTS: {
  readonly maxPayload: number;
  readonly maxBufferedBytes: number;
  readonly maxQueuedFrames: number;
  readonly maxQueuedBytes: number;
  readonly closeTimeoutMs: number;
  readonly credentialsTimeoutMs: number;
  readonly pingIntervalMs: number;
  readonly connectionRate: {
    readonly burst: number;
    readonly perSecond: number;
    readonly refusalDelayMs: number;
    readonly maxDelayedRefusals: number;
  };
};

type EventsByType = { [E in HostEvent as E['type']]: [E] };

/** The server's events: every HostEvent by its type, `event` for all of them, `listening`, `error`. */
export type ServerEvents = EventsByType & {
  event: [HostEvent];
  listening: [AddressInfo];
  /** Contained failures (HostError), and errors of the ws server itself. With a listener here, onError is not called. */
  error: [HostError | Error];
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
  /** Carries out a batch from an engine call made beside this adapter (rollcall/redis does). */
  dispatch(batch: Batch): void;
  close(): Promise<void>;
  on<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => void): this;
  once<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => void): this;
  off<K extends keyof ServerEvents>(event: K, listener: (...args: ServerEvents[K]) => void): this;
}

export declare function attach(engine: Engine, options?: AttachOptions): RollcallServer;
export declare function tokenFromRequest(req: IncomingMessage): string | null;
