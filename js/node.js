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
// It contains every failure: whatever a `credentials` callback, an engine
// call or an event listener throws closes at most the one connection it
// concerns (see docs/PROTOCOL.md, "Node host") and is reported, never thrown.
import { EventEmitter } from 'node:events';
import { WebSocketServer, WebSocket, Sender } from 'ws';
import { CloseCodes, hostError } from './engine.js';

const MAX_TIMER_MS = 2 ** 31 - 1;
/** What a credentials callback that did not settle in time resolves to. */
const TIMED_OUT = Symbol('credentials timed out');

/** After a failed tick, the next one waits at least this long (no hot loop). */
const FAILED_TICK_RETRY_MS = 1000;

/** The defaults of AttachOptions (see node.d.ts and docs/PROTOCOL.md). */
export const NODE_DEFAULTS = Object.freeze({
  maxPayload: 1 << 20,
  maxBufferedBytes: 1 << 20,
  maxQueuedFrames: 100,
  maxQueuedBytes: 1 << 20,
  closeTimeoutMs: 1000,
  credentialsTimeoutMs: 10_000,
  pingIntervalMs: 10_000,
  connectionRate: Object.freeze({ burst: 10, perSecond: 2, refusalDelayMs: 1000, maxDelayedRefusals: 256 }),
});

/** A payload as one unmasked, final text frame (header and data in one Buffer), built once for all its recipients. */
function textFrame(payload) {
  const data = Buffer.from(payload);
  return Buffer.concat(Sender.frame(data, { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false }));
}

/** Whether this `ws` can build frames (Bun's built-in `ws` cannot). */
const CAN_FRAME = typeof Sender?.frame === 'function';

/**
 * The TCP socket under a `ws` socket when a built frame may be written to
 * it directly: ws has nothing queued ahead of it (no compression or Blob in
 * progress; ws's own Sender writes frames the same way). Otherwise null:
 * send through ws, in order.
 */
function directSocket(socket) {
  const sender = socket._sender;
  const raw = socket._socket;
  if (!CAN_FRAME || !raw || !sender || sender._state !== 0 || sender._queue?.length !== 0) return null;
  return raw;
}

/** 127.0.0.0/8 and ::1 (also IPv4-mapped): a peer on this host, a test or a local proxy. */
const isLoopback = (address) => /^(::ffff:)?127\./.test(address) || address === '::1';

/** Reads a token from `?token=` or an `Authorization: Bearer` header. */
export function tokenFromRequest(req) {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const fromQuery = url.searchParams.get('token');
  if (fromQuery) return fromQuery;
  const header = req.headers?.authorization ?? '';
  const match = /^Bearer\s+(.+)$/i.exec(header);
  return match ? match[1].trim() : null;
}

/**
 * New connections per remote address: a token bucket each (`burst` when
 * full, `perSecond` regained each second). Buckets that have refilled are
 * forgotten, so an idle address costs nothing.
 */
class AddressRate {
  #burst;
  #perMs;
  #buckets = new Map();
  #sweptAt = 0;

  constructor({ burst, perSecond }) {
    this.#burst = burst;
    this.#perMs = perSecond / 1000;
  }

  /**
   * Takes one token for `address` at `now`: 0 when there was one, else the
   * seconds until there is (for a Retry-After header).
   */
  take(address, now) {
    this.#sweep(now);
    const bucket = this.#buckets.get(address) ?? { tokens: this.#burst, at: now };
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
    bucket.at = now;
    this.#buckets.set(address, bucket);
    if (bucket.tokens < 1) return this.#perMs > 0 ? Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMs / 1000)) : 3600;
    bucket.tokens -= 1;
    return 0;
  }

  #sweep(now) {
    const fullAfterMs = this.#perMs > 0 ? this.#burst / this.#perMs : Infinity;
    if (now - this.#sweptAt < Math.min(fullAfterMs, 10_000)) return;
    this.#sweptAt = now;
    for (const [address, bucket] of this.#buckets) {
      if (now - bucket.at >= fullAfterMs) this.#buckets.delete(address);
    }
  }
}

export class RollcallServer extends EventEmitter {
  #engine;
  #wss;
  #ownsWss;
  /** Connections the engine holds (or will, once credentials resolve): id -> socket. */
  #sockets = new Map();
  #nextId;
  #pinger = null;
  #timer = null;
  #timerAt = null;
  #options;
  /** Sockets being closed (no longer in #sockets) -> the timer that terminates them. */
  #terminators = new Map();
  /** Refused upgrades waiting out connectionRate.refusalDelayMs: timer -> refuse now. */
  #delayedRefusals = new Map();

  /**
   * @param {import('./engine.js').Engine} engine
   * @param {import('./node.js').AttachOptions} options
   */
  constructor(engine, options = {}) {
    super();
    this.#engine = engine;
    this.#options = {
      ...NODE_DEFAULTS,
      credentials: (req) => tokenFromRequest(req),
      clock: Date.now,
      addressOf: (req) => req.socket?.remoteAddress ?? '',
      onError: (err) => console.error('rollcall/node:', err),
      ...options,
    };
    // A partial connectionRate keeps the defaults of the fields it leaves out.
    if (options.connectionRate) this.#options.connectionRate = { ...NODE_DEFAULTS.connectionRate, ...options.connectionRate };
    // Connection ids (and so member ids) never repeat over the host's life,
    // restarts included: they start at the time of construction x 1000.
    this.#nextId = this.#options.firstConnectionId ?? this.#options.clock() * 1000;
    if (this.#options.pingIntervalMs > 0) {
      this.#pinger = setInterval(() => this.#ping(), this.#options.pingIntervalMs);
      this.#pinger.unref?.();
    }
    const { wss, server, port, host, path, maxPayload, connectionRate, addressOf, clock } = this.#options;
    this.#ownsWss = !wss;
    const rate = connectionRate ? new AddressRate(connectionRate) : null;
    // Refused at the upgrade (429, with Retry-After), before any WebSocket or
    // engine state exists. Loopback peers are not counted: behind a local
    // proxy they would all share one bucket (addressOf says who they are).
    const verifyClient =
      rate &&
      (({ req }, done) => {
        const address = String(addressOf(req) ?? '');
        const wait = isLoopback(address) ? 0 : rate.take(address, clock());
        if (wait === 0) return done(true);
        this.#refuse(() => done(false, 429, 'Too Many Requests', { 'Retry-After': String(wait) }));
      });
    this.#wss =
      wss ??
      new WebSocketServer({
        server,
        port,
        host,
        path,
        maxPayload,
        // One message per socket per turn of the event loop: a socket with a
        // buffer full of frames cannot hold the loop while others wait.
        allowSynchronousEvents: false,
        verifyClient,
      });
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

  /**
   * Carries out a batch from an engine call made beside this adapter (by
   * rollcall/redis, which hands the engine other nodes' changes): sends,
   * closes, events and the timer, as for the adapter's own calls.
   */
  dispatch(batch) {
    this.#run(batch);
  }

  /**
   * Closes every socket with 1001 (going away), so that clients know the
   * server left rather than the network, and stops listening. A socket that
   * does not finish its close handshake within a second is terminated.
   */
  async close() {
    clearTimeout(this.#timer);
    clearInterval(this.#pinger);
    const closing = [...this.#sockets.values()].map((socket) => {
      if (socket.readyState === WebSocket.CLOSED) return undefined;
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.close(1001, 'server shutting down');
      const force = setTimeout(() => socket.terminate(), this.#options.closeTimeoutMs);
      return closed.finally(() => clearTimeout(force));
    });
    // Sockets already closing (closed by the engine) do not get a second chance.
    for (const socket of this.#terminators.keys()) socket.terminate();
    for (const [timer, answer] of this.#delayedRefusals) {
      clearTimeout(timer);
      answer();
    }
    this.#delayedRefusals.clear();
    await Promise.all(closing);
    if (this.#ownsWss) await new Promise((resolve) => this.#wss.close(() => resolve()));
  }

  /**
   * Answers a refused upgrade after connectionRate.refusalDelayMs (a
   * tarpit): a client that retries as soon as it is refused then costs one
   * accept per delay instead of one per round trip. At most
   * maxDelayedRefusals wait at once; past that a refusal is answered at once.
   */
  #refuse(answer) {
    const { refusalDelayMs, maxDelayedRefusals } = this.#options.connectionRate;
    if (refusalDelayMs <= 0 || this.#delayedRefusals.size >= maxDelayedRefusals) return answer();
    const timer = setTimeout(() => {
      this.#delayedRefusals.delete(timer);
      answer();
    }, refusalDelayMs);
    timer.unref?.();
    this.#delayedRefusals.set(timer, answer);
  }

  async #accept(socket, req) {
    const id = this.#nextId++;
    const { maxQueuedFrames, maxQueuedBytes } = this.#options;
    this.#sockets.set(id, socket);
    // Frames that arrive while credentials are being resolved wait in order,
    // up to maxQueuedFrames / maxQueuedBytes.
    let queue = [];
    let queuedBytes = 0;
    let opened = false;
    socket.on('message', (data) => {
      if (this.#sockets.get(id) !== socket) {
        // Closed, yet the peer still sends: stop reading it altogether.
        socket.pause();
        return;
      }
      if (opened) {
        this.#run(this.#call(id, () => this.#engine.message(id, data, this.#options.clock())));
        return;
      }
      queuedBytes += data.length ?? data.byteLength ?? 0;
      if (queue.length >= maxQueuedFrames || queuedBytes > maxQueuedBytes) {
        queue = [];
        this.#shut(id, socket, CloseCodes.POLICY_VIOLATION, 'POLICY_VIOLATION: pre-auth queue full');
        return;
      }
      queue.push(data);
    });
    socket.on('pong', () => {
      if (opened && this.#sockets.get(id) === socket) this.#call(id, () => this.#engine.alive(id, this.#options.clock()));
    });
    socket.on('close', (code) => {
      clearTimeout(this.#terminators.get(socket));
      this.#terminators.delete(socket);
      const live = this.#sockets.get(id) === socket;
      if (live) this.#sockets.delete(id);
      // Nothing to tell the engine if it never opened the connection or already
      // forgot it (it closed it, or it was slow). 1006: no close frame (dropped,
      // errored, terminated): lost, in grace; 4010: a client giving up on a
      // silent link, the same. Any other close frame is the client's choice:
      // it goes at once.
      if (!opened || !live) return;
      const now = this.#options.clock();
      const lost = code === 1006 || code === CloseCodes.STALE;
      this.#run(this.#call(null, () => (lost ? this.#engine.lost(id, now) : this.#engine.close(id, now))));
    });
    socket.on('error', () => {});
    let credentials;
    const { credentialsTimeoutMs } = this.#options;
    let timer;
    const timedOut = new Promise((resolve) => {
      if (credentialsTimeoutMs > 0) timer = setTimeout(() => resolve(TIMED_OUT), credentialsTimeoutMs);
    });
    try {
      credentials = await Promise.race([this.#options.credentials(req), timedOut]);
    } catch (err) {
      this.#report(hostError('CREDENTIALS_FAILED', 'the credentials callback threw', err, id));
      this.#shut(id, socket, CloseCodes.AUTH_FAILED, 'AUTH_FAILED');
      return;
    } finally {
      clearTimeout(timer);
    }
    if (credentials === TIMED_OUT) {
      const why = `the credentials callback did not settle within credentialsTimeoutMs (${credentialsTimeoutMs} ms)`;
      this.#report(hostError('CREDENTIALS_FAILED', why, undefined, id));
      this.#shut(id, socket, CloseCodes.AUTH_TIMEOUT, 'AUTH_TIMEOUT: credentials timed out');
      return;
    }
    if (socket.readyState !== WebSocket.OPEN || this.#sockets.get(id) !== socket) return;
    opened = true;
    let batch;
    try {
      batch = this.#engine.open(id, credentials ?? undefined, this.#options.clock());
    } catch (err) {
      // The engine could not open with these credentials (a host identity it
      // cannot take, a token it cannot represent): that connection only.
      this.#report(hostError('ENGINE_FAILED', 'engine.open threw', err, id));
      this.#forget(id);
      this.#shut(id, socket, CloseCodes.AUTH_FAILED, 'AUTH_FAILED');
      return;
    }
    this.#run(batch);
    const queued = queue;
    queue = [];
    for (const data of queued) {
      if (this.#sockets.get(id) !== socket) break;
      this.#run(this.#call(id, () => this.#engine.message(id, data, this.#options.clock())));
    }
  }

  /**
   * Runs one engine call for connection `id` (null: for no connection).
   * If it throws, the error is reported and that connection alone is
   * forgotten and closed with 1011; returns null then.
   */
  #call(id, fn) {
    try {
      return fn();
    } catch (err) {
      this.#report(hostError('ENGINE_FAILED', 'an engine call threw', err, id ?? undefined));
      if (id == null) return null;
      this.#forget(id);
      const socket = this.#sockets.get(id);
      if (socket) this.#shut(id, socket, CloseCodes.INTERNAL_ERROR, 'INTERNAL_ERROR');
      return null;
    }
  }

  /** Tells the engine that `id` is gone, whatever state it is in. */
  #forget(id) {
    this.#run(this.#call(null, () => this.#engine.close(id, this.#options.clock())));
  }

  /**
   * Closes a socket the engine no longer holds. Its later frames are dropped
   * unread (the first one pauses reading, see #accept; a policy violation
   * stops reading at once), and it is terminated after closeTimeoutMs if the
   * peer does not finish the close handshake.
   */
  #shut(id, socket, code, reason) {
    if (this.#sockets.get(id) === socket) this.#sockets.delete(id);
    if (this.#terminators.has(socket)) return;
    // A silent peer (4010) would not answer a close handshake: drop it.
    if (code === CloseCodes.STALE) return socket.terminate();
    socket.close(code, reason);
    if (code === CloseCodes.POLICY_VIOLATION) socket.pause();
    const timer = setTimeout(() => socket.terminate(), this.#options.closeTimeoutMs);
    timer.unref?.();
    this.#terminators.set(socket, timer);
  }

  /** Reports an error: to 'error' listeners if any, else to onError (default console.error). */
  #report(err) {
    try {
      if (this.listenerCount('error') > 0) this.emit('error', err);
      else this.#options.onError(err);
    } catch (thrown) {
      console.error('rollcall/node: an error handler threw:', thrown, 'while reporting:', err);
    }
  }

  /** Emits a host event; a listener that throws is reported, not propagated. */
  #emit(event) {
    for (const name of [event.type, 'event']) {
      try {
        this.emit(name, event);
      } catch (err) {
        this.#report(hostError('LISTENER_FAILED', `a '${name}' listener threw`, err));
      }
    }
  }

  /** Carries out one batch of instructions: sends, closes, events, timer. */
  #run(batch) {
    if (!batch) return;
    const { maxBufferedBytes } = this.#options;
    const slow = [];
    // Each payload is framed once for all its recipients, and each socket's
    // frames of this batch go out in one write (corked until the end).
    const corked = new Set();
    for (const { to, payload } of batch.sends) {
      let frame = null;
      for (const id of to) {
        const socket = this.#sockets.get(id);
        if (!socket || socket.readyState !== WebSocket.OPEN) continue;
        if (socket.bufferedAmount > maxBufferedBytes) {
          // A reader that cannot keep up is closed, not allowed to eat memory.
          slow.push(id);
          this.#shut(id, socket, CloseCodes.SLOW_CONSUMER, 'SLOW_CONSUMER');
          continue;
        }
        const raw = directSocket(socket);
        if (!raw) {
          socket.send(payload);
          continue;
        }
        frame ??= textFrame(payload);
        if (!corked.has(raw)) {
          raw.cork();
          corked.add(raw);
        }
        raw.write(frame);
      }
    }
    for (const raw of corked) raw.uncork();
    for (const { connection, code, reason } of batch.closes) {
      const socket = this.#sockets.get(connection);
      if (socket) this.#shut(connection, socket, code, reason);
    }
    for (const event of batch.events) this.#emit(event);
    this.#schedule(batch.wakeAt);
    // The engine forgets a slow consumer now (its members leave at once),
    // not when its close handshake completes.
    for (const id of slow) this.#forget(id);
  }

  /** A protocol ping to every open socket; pongs come back as signs of life. */
  #ping() {
    for (const socket of this.#sockets.values()) {
      if (socket.readyState === WebSocket.OPEN) socket.ping();
    }
  }

  #schedule(at, minDelay = 0) {
    if (at === this.#timerAt && minDelay === 0) return;
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = at;
    if (at == null) return;
    const delay = Math.min(Math.max(minDelay, at - this.#options.clock()), MAX_TIMER_MS);
    this.#timer = setTimeout(() => {
      this.#timerAt = null;
      const batch = this.#call(null, () => this.#engine.tick(this.#options.clock()));
      if (batch) this.#run(batch);
      else this.#schedule(this.#call(null, () => this.#engine.nextWake), FAILED_TICK_RETRY_MS);
    }, delay);
    this.#timer.unref?.();
  }
}

/** Attaches `engine` to a new (or given) ws server. */
export function attach(engine, options) {
  return new RollcallServer(engine, options);
}
