// rollcall/node: runs an Engine behind a `ws` WebSocketServer.
//
//   import { Engine } from 'rollcall';
//   import { attach } from 'rollcall/node';
//   const server = attach(new Engine(options), { port: 8080 });
//   server.on('presenceJoined', (e) => console.log(e.clientId, 'joined', e.room));
//
// The adapter owns the sockets, one timer and the protocol pings; the
// engine owns every decision, liveness included: a pong is a sign of life
// it is told of, a socket that dropped (1006, an error, a terminate) is
// "lost" (leave grace), a client's clean close is a close.
import { EventEmitter } from 'node:events';
import { WebSocketServer, WebSocket } from 'ws';
import { CloseCodes } from './engine.js';

const MAX_TIMER_MS = 2 ** 31 - 1;

/** Reads a token from `?token=` or an `Authorization: Bearer` header. */
export function tokenFromRequest(req) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const fromQuery = url.searchParams.get('token');
  if (fromQuery) return fromQuery;
  const header = req.headers?.authorization ?? '';
  const match = /^Bearer\s+(.+)$/i.exec(header);
  return match ? match[1].trim() : null;
}

export class RollcallServer extends EventEmitter {
  #engine;
  #wss;
  #ownsWss;
  #sockets = new Map();
  #nextId;
  #pinger = null;
  #timer = null;
  #timerAt = null;
  #options;

  /**
   * @param {import('./engine.js').Engine} engine
   * @param {import('./node.js').AttachOptions} options
   */
  constructor(engine, options = {}) {
    super();
    this.#engine = engine;
    this.#options = {
      maxBufferedBytes: 1 << 20,
      credentials: (req) => tokenFromRequest(req),
      clock: Date.now,
      pingIntervalMs: 10_000,
      ...options,
    };
    // Connection ids (and so member ids) never repeat over the host's life,
    // restarts included: they start at the time of construction x 1000.
    this.#nextId = this.#options.firstConnectionId ?? this.#options.clock() * 1000;
    if (this.#options.pingIntervalMs > 0) {
      this.#pinger = setInterval(() => this.#ping(), this.#options.pingIntervalMs);
      this.#pinger.unref?.();
    }
    const { wss, server, port, host, path } = this.#options;
    this.#ownsWss = !wss;
    this.#wss = wss ?? new WebSocketServer({ server, port, host, path, maxPayload: options.maxPayload ?? 1 << 20 });
    this.#wss.on('connection', (socket, req) => this.#accept(socket, req));
    this.#wss.on('error', (err) => this.emit('error', err));
    this.#wss.on('listening', () => this.emit('listening', this.address()));
  }

  get engine() {
    return this.#engine;
  }

  get wss() {
    return this.#wss;
  }

  /** The listening address (when the server listens itself). */
  address() {
    return this.#wss.address();
  }

  /** Live sockets by connection id. */
  get connections() {
    return this.#sockets.size;
  }

  /** Publishes as the server into `room`; returns the number of recipients. */
  publish(room, event, data) {
    const batch = this.#engine.publish(room, event, data, this.#options.clock());
    this.#run(batch);
    return batch.recipients;
  }

  /** Closes every socket and stops listening. */
  async close() {
    clearTimeout(this.#timer);
    clearInterval(this.#pinger);
    for (const socket of this.#sockets.values()) socket.terminate();
    if (this.#ownsWss) await new Promise((resolve) => this.#wss.close(() => resolve()));
  }

  async #accept(socket, req) {
    const id = this.#nextId++;
    this.#sockets.set(id, socket);
    // Frames that arrive while credentials are being resolved wait in order.
    const queue = [];
    let opened = false;
    socket.on('message', (data) => {
      if (opened) this.#run(this.#engine.message(id, data, this.#options.clock()));
      else queue.push(data);
    });
    socket.on('pong', () => {
      if (opened) this.#engine.alive(id, this.#options.clock());
    });
    socket.on('close', (code) => {
      this.#sockets.delete(id);
      if (!opened) return;
      // 1006: no close frame (dropped, errored, terminated): lost, in grace.
      // Any other close frame is the client's choice: it goes at once. Harmless
      // if the engine already forgot the connection or holds it in grace.
      const now = this.#options.clock();
      const lost = code === 1006 || code === CloseCodes.STALE; // 4010: a client giving up on a silent link
      this.#run(lost ? this.#engine.lost(id, now) : this.#engine.close(id, now));
    });
    socket.on('error', () => {});
    let credentials;
    try {
      credentials = await this.#options.credentials(req);
    } catch (err) {
      this.emit('error', err);
      socket.close(CloseCodes.AUTH_FAILED, 'AUTH_FAILED');
      return;
    }
    if (socket.readyState !== WebSocket.OPEN) return;
    opened = true;
    this.#run(this.#engine.open(id, credentials ?? undefined, this.#options.clock()));
    for (const data of queue) this.#run(this.#engine.message(id, data, this.#options.clock()));
  }

  /** Carries out one batch of instructions: sends, closes, events, timer. */
  #run(batch) {
    const { maxBufferedBytes } = this.#options;
    const slow = [];
    for (const { to, payload } of batch.sends) {
      for (const id of to) {
        const socket = this.#sockets.get(id);
        if (!socket || socket.readyState !== WebSocket.OPEN) continue;
        if (socket.bufferedAmount > maxBufferedBytes) {
          // A reader that cannot keep up is closed, not allowed to eat memory.
          slow.push(id);
          this.#sockets.delete(id);
          socket.close(CloseCodes.SLOW_CONSUMER, 'SLOW_CONSUMER');
          // It may not read the close either: do not wait for the handshake.
          setTimeout(() => socket.terminate(), 1000).unref?.();
          continue;
        }
        socket.send(payload);
      }
    }
    for (const { connection, code, reason } of batch.closes) {
      const socket = this.#sockets.get(connection);
      // A silent peer would not answer a close handshake: drop it.
      if (socket && code === CloseCodes.STALE) socket.terminate();
      else if (socket) socket.close(code, reason);
    }
    for (const event of batch.events) {
      this.emit(event.type, event);
      this.emit('event', event);
    }
    this.#schedule(batch.wakeAt);
    // The engine forgets a slow consumer now (its members leave at once),
    // not when its close handshake completes.
    for (const id of slow) this.#run(this.#engine.close(id, this.#options.clock()));
  }

  /** A protocol ping to every open socket; pongs come back as signs of life. */
  #ping() {
    for (const socket of this.#sockets.values()) {
      if (socket.readyState === WebSocket.OPEN) socket.ping();
    }
  }

  #schedule(at) {
    if (at === this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = at;
    if (at == null) return;
    const delay = Math.min(Math.max(0, at - this.#options.clock()), MAX_TIMER_MS);
    this.#timer = setTimeout(() => {
      this.#timerAt = null;
      this.#run(this.#engine.tick(this.#options.clock()));
    }, delay);
    this.#timer.unref?.();
  }
}

/** Attaches `engine` to a new (or given) ws server. */
export function attach(engine, options) {
  return new RollcallServer(engine, options);
}
