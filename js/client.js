// rollcall/client: the client SDK for browsers and Node. Its API mirrors the
// seeds' client code:
//
//   const client = new Client({ url, token });
//   await client.connect();                    // or connect(url) then authenticate(token)
//   const room = await client.join('myRoom');
//   await room.presence.join({ username: 'Bob' });
//   room.presence.subscribe('join', (event) => ...);
//   const realm = await client.realm.get('london');
//   const john = await realm.object.get('deliveryRiders/johndoe-123');
//   john.connectionStatus;                     // 'connected' | 'disconnected'
//   realm.pubsub.subscribe('connectionStatusChanged', 'deliveryRiders/*', (data, id) => ...);
//
// The client keeps what it has joined and subscribed to. It pings the
// server and treats a silent one as gone. After a reconnect it first
// resumes its lost connection (the server's resume token): same member ids,
// nobody else sees a thing, and the presence events it missed are replayed
// (or a fresh snapshot is reconciled). Where that is refused (the grace ran
// out, another server) it rejoins, re-enters its presence sets with its last
// data and resubscribes, reconciling what it missed (no ghost, no duplicate).

import EventEmitter from 'eventemitter3';
import { RollcallError } from './errors.js';
import { globMatcher } from './pattern.js';

// Protocol errors carry docs/PROTOCOL.md's error codes; the client adds
// TIMEOUT, DISCONNECTED, CLOSED, ABORTED, AUTH_FAILED and TOKEN_EXPIRED
// (the last two with `closeCode`).
export { RollcallError, globMatcher };

/**
 * eventemitter3, with one rule of the SDK: a listener that throws does not
 * break the client's own bookkeeping (the error is rethrown in a microtask).
 */
class Emitter extends EventEmitter {
  emit(event, ...args) {
    try {
      return super.emit(event, ...args);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
      return true;
    }
  }
}

/** Rejects with ABORTED when `signal` aborts before `promise` settles. */
function abortable(promise, signal, onAbort) {
  if (!signal) return promise;
  const aborted = () => new RollcallError('ABORTED', 'the operation was aborted', { cause: signal.reason });
  if (signal.aborted) {
    onAbort?.();
    return Promise.reject(aborted());
  }
  return new Promise((resolve, reject) => {
    const abort = () => {
      onAbort?.();
      reject(aborted());
    };
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

const CLOSE_AUTH_FAILED = 4001;
const CLOSE_TOKEN_EXPIRED = 4002;
const CLOSE_POLICY = 4008;

const DEFAULTS = {
  /** Reconnect after an unexpected close. */
  reconnect: true,
  /** Backoff: first delay, cap, growth; each delay is drawn from [delay/2, delay] (jitter). */
  minDelayMs: 250,
  maxDelayMs: 10_000,
  backoffFactor: 2,
  /** A request without an answer in this time fails with TIMEOUT. */
  requestTimeoutMs: 10_000,
  /** Refresh the token this long before it expires (needs `getToken`). */
  refreshBeforeMs: 30_000,
  /** Keep trying when the first connect() fails (otherwise it rejects and stops). */
  retry: false,
  /** The host authenticates the socket itself: connect() resolves on its `welcome`. */
  hostAuth: false,
  /** Send an application ping this often, ms (browsers cannot send protocol pings). 0: never. */
  pingIntervalMs: 10_000,
  /** No frame at all from the server for this long: it is gone; reconnect. 0: never. */
  serverTimeoutMs: 30_000,
  /** Resume the lost connection on reconnect (its resume token). */
  resume: true,
};

/** Close code for a link this client gives up on (the server keeps its grace). */
const CLOSE_STALE = 4010;

export class Client extends Emitter {
  /**
   * @param {object} [options]
   * @param {string} [options.url] the server's WebSocket URL
   * @param {string} [options.token] a JWT
   * @param {() => string | Promise<string>} [options.getToken] called for a fresh token before expiry and on reconnect
   * @param {typeof WebSocket} [options.WebSocket] a WebSocket class (default: the global one)
   */
  constructor(options = {}) {
    super();
    this.options = { ...DEFAULTS, ...options };
    this.url = options.url ?? null;
    this.token = options.token ?? null;
    this.connectionStatus = 'disconnected';
    this.clientId = null;
    this.id = null;
    this.expiresAt = null;
    this._ws = null;
    this._ref = 0;
    this._pending = new Map();
    this._rooms = new Map();
    this._realms = new Map();
    this._closing = false;
    this._attempt = 0;
    this._retryTimer = null;
    this._refreshTimer = null;
    this._ready = null;
    this._readyPending = false;
    this._authing = false;
    this._connected = false; // was this client ever usable? (first connect vs reconnect)
    this._firstConnecting = false; // a first connect() is running (it owns retries)
    /** Why the status last changed, e.g. `resumed`, `closed 1006`, `server silent`. */
    this.connectionReason = null;
    /** The engine epoch of the server this client last connected to. */
    this.epoch = null;
    this._resumeToken = null;
    this._resumeFrom = null;
    this._heard = 0;
    this._pingTimer = null;
    this.realm = { get: async (name) => this._realm(name) };
  }

  /** Emits `connectionStatusChanged(status, { reason })` on a change. */
  _setStatus(status, reason = status) {
    if (this.connectionStatus === status) return;
    this.connectionStatus = status;
    this.connectionReason = reason;
    this.emit('connectionStatusChanged', status, { reason });
  }

  /**
   * Opens the socket and resolves when the client is usable: with a token
   * (or getToken), once authenticated and resynced; with `hostAuth`, once
   * the host's `welcome` is in; with neither, once the socket is open (then
   * call authenticate(token), as in seed 000). A first connect that fails
   * rejects and stops, unless `retry` is set. `connect({ signal })` or
   * `connect(url, { signal })` takes an AbortSignal.
   */
  async connect(url, options = {}) {
    if (url != null && typeof url === 'object') [url, options] = [undefined, url];
    if (this._ws && this.connectionStatus !== 'disconnected') {
      // Already connected or on the way: one client, one socket.
      if (url && url !== this.url) throw new RollcallError('BAD_REQUEST', `already connected to ${this.url}`);
      if (this.connectionStatus !== 'connected' && (this.options.hostAuth || this.token || this.options.getToken)) {
        await abortable(this._ready, options.signal);
      }
      return this;
    }
    if (url) this.url = url;
    if (!this.url) throw new RollcallError('BAD_REQUEST', 'no url to connect to');
    this._closing = false;
    const attempt = this._firstConnect();
    return abortable(attempt, options.signal, () => this._abandon());
  }

  async _firstConnect() {
    this._firstConnecting = true;
    try {
      return await this._connectLoop();
    } finally {
      this._firstConnecting = false;
    }
  }

  async _connectLoop() {
    for (;;) {
      try {
        await this._open();
        // Without a token the socket is open and waits: for authenticate(token)
        // (seed 000), or for the host's `welcome` (host-side auth; see _welcomed).
        if (this.token || this.options.getToken) await this.authenticate(this.token ?? undefined);
        else if (this.options.hostAuth) await this._ready;
        return this;
      } catch (err) {
        const fatal = err?.code === 'AUTH_FAILED' || err?.code === 'TOKEN_EXPIRED' || err?.code === 'CLOSED' || err?.code === 'ABORTED';
        if (!this.options.retry || fatal || this._closing) {
          this._abandon();
          throw err;
        }
        this._ws?.close(1000, 'connect failed');
        this._ws = null;
        this._setStatus('reconnecting');
        await new Promise((resolve) => {
          this._retryTimer = setTimeout(resolve, this._backoff());
        });
        if (this._closing) throw new RollcallError('CLOSED', 'the client was closed');
      }
    }
  }

  /** A first connect that failed or was aborted: no reconnect, no socket. */
  _abandon() {
    if (this._connected) return;
    this._closing = true;
    clearTimeout(this._retryTimer);
    const ws = this._ws;
    this._ws = null;
    ws?.close(1000, 'connect abandoned');
    this._failPending(new RollcallError('DISCONNECTED', 'the connect did not complete'));
    this._settleReady(new RollcallError('DISCONNECTED', 'the connect did not complete'));
    this._setStatus('disconnected');
  }

  /** The next reconnect delay: exponential backoff with jitter. */
  _backoff() {
    const { minDelayMs, maxDelayMs, backoffFactor } = this.options;
    const cap = Math.min(maxDelayMs, minDelayMs * backoffFactor ** this._attempt++);
    return cap / 2 + Math.random() * (cap / 2);
  }

  /** An unsolicited `welcome`: the host authenticated the socket itself. */
  async _welcomed(welcome) {
    const ws = this._ws;
    this._authenticated(welcome);
    let reason;
    try {
      reason = await this._resumeOrResync();
    } catch {
      return; // the socket went; its close handler takes over
    }
    if (this._ws !== ws || this.connectionStatus === 'connected') return;
    this._usable(reason);
  }

  /** Authenticated and resumed or resynced: the connection is usable. */
  _usable(reason = 'connected') {
    this._attempt = 0;
    this._connected = true;
    this._setStatus('connected', reason);
    this._settleReady();
  }

  /** Sends `auth` with `token` (or a fresh one from `getToken`). */
  async authenticate(token) {
    if (token) this.token = token;
    else if (this.options.getToken) this.token = await this.options.getToken();
    if (!this.token) throw new RollcallError('BAD_REQUEST', 'no token to authenticate with');
    const refresh = this.connectionStatus === 'connected';
    this._authing = !refresh;
    let ack;
    try {
      ack = await this._send({ op: 'auth', token: this.token }, { beforeReady: true });
    } finally {
      this._authing = false;
    }
    this._authenticated(ack);
    if (refresh) return this; // a refresh: rooms and subscriptions stay as they are
    const reason = await this._resumeOrResync();
    this._usable(reason);
    return this;
  }

  /**
   * Closes the socket for good (1000, no reconnect). Resolves when the
   * socket has closed (at once when there is none).
   */
  close() {
    this._closing = true;
    this._resumeFrom = null;
    clearTimeout(this._retryTimer);
    clearTimeout(this._refreshTimer);
    clearInterval(this._pingTimer);
    const ws = this._ws;
    const closed = ws && ws.readyState !== 3 ? new Promise((resolve) => ws.addEventListener('close', () => resolve(), { once: true })) : Promise.resolve();
    ws?.close(1000, 'client closed');
    this._failPending(new RollcallError('CLOSED', 'the client was closed'));
    this._settleReady(new RollcallError('CLOSED', 'the client was closed'));
    this._setStatus('disconnected');
    return closed;
  }

  /** Joins a room; `await` it, or use it at once (its calls wait for the join). */
  join(name) {
    let room = this._rooms.get(name);
    if (!room) {
      room = new Room(this, name);
      this._rooms.set(name, room);
    }
    room._s.joined = this._send({ op: 'room.join', room: name }).then(() => undefined);
    room._s.joined.catch(() => {}); // a caller that never awaits the room must not crash the process
    return room;
  }

  _realm(name) {
    let realm = this._realms.get(name);
    if (!realm) {
      realm = new Realm(this, name);
      this._realms.set(name, realm);
    }
    return realm;
  }

  // ---- transport ------------------------------------------------------

  _open() {
    const WS = this.options.WebSocket ?? globalThis.WebSocket;
    if (!WS) throw new RollcallError('BAD_REQUEST', 'no WebSocket class: pass options.WebSocket');
    if (this.connectionStatus !== 'reconnecting') this._setStatus('connecting');
    this._newReady();
    return new Promise((resolve, reject) => {
      const ws = new WS(this.url);
      this._ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this._watch(ws);
        resolve();
      };
      ws.onmessage = (e) => {
        this._heard = Date.now();
        this._receive(typeof e.data === 'string' ? e.data : String(e.data));
      };
      ws.onerror = () => {};
      ws.onclose = (e) => {
        if (this._ws !== ws) return;
        this._ws = null;
        if (!opened) reject(new RollcallError('DISCONNECTED', `could not connect to ${this.url}`));
        this._closed(e.code, e.reason);
      };
    });
  }

  /**
   * Liveness: an application ping every `pingIntervalMs`; any frame is a
   * sign of life; none for `serverTimeoutMs` and the socket is given up
   * (closed with 4010, so that the server keeps this client in grace) and
   * the client reconnects.
   */
  _watch(ws) {
    const { pingIntervalMs, serverTimeoutMs } = this.options;
    clearInterval(this._pingTimer);
    this._heard = Date.now();
    if (!(pingIntervalMs > 0)) return;
    const every = serverTimeoutMs > 0 ? Math.min(pingIntervalMs, serverTimeoutMs / 2) : pingIntervalMs;
    this._pingTimer = setInterval(() => {
      if (this._ws !== ws) return clearInterval(this._pingTimer);
      if (serverTimeoutMs > 0 && Date.now() - this._heard > serverTimeoutMs) {
        clearInterval(this._pingTimer);
        this._ws = null;
        ws.onclose = null;
        ws.onmessage = null;
        try {
          ws.close(CLOSE_STALE, 'STALE');
        } catch {
          // already closing
        }
        return this._closed(CLOSE_STALE, `server silent for ${serverTimeoutMs} ms`);
      }
      if (ws.readyState === 1) ws.send('{"op":"ping"}');
    }, every);
    this._pingTimer.unref?.();
  }

  _closed(code, reason) {
    clearTimeout(this._refreshTimer);
    clearInterval(this._pingTimer);
    // Without getToken there is no other token to try: a refused or expired
    // one ends the connection (no reconnect loop with a dead token).
    let fatal = null;
    if (!this.options.getToken && code === CLOSE_AUTH_FAILED) {
      fatal = new RollcallError('AUTH_FAILED', reason || 'token refused', { closeCode: code, reason });
    } else if (!this.options.getToken && code === CLOSE_TOKEN_EXPIRED) {
      fatal = new RollcallError('TOKEN_EXPIRED', reason || 'token expired', { closeCode: code, reason });
    }
    const message = `connection closed (${code} ${reason ?? ''})`.trim();
    this._failPending(fatal ?? new RollcallError('DISCONNECTED', message));
    this.emit('close', { code, reason });
    // Before the client was ever usable, the first connect() owns retrying
    // (it stops unless `retry`); no background reconnect of its own.
    const first = !this._connected && (this._firstConnecting || !this.options.retry);
    if (this._closing || !this.options.reconnect || fatal || code === CLOSE_POLICY || first) {
      this._settleReady(fatal ?? new RollcallError(this._closing ? 'CLOSED' : 'DISCONNECTED', message));
      this._setStatus('disconnected');
      if (fatal) this.emit('error', fatal);
      return;
    }
    if (code === CLOSE_TOKEN_EXPIRED || code === CLOSE_AUTH_FAILED) this.token = null;
    // What was lost can be resumed (once connected, until the next connect).
    if (this.connectionStatus === 'connected' && this._resumeToken) {
      this._resumeFrom = { token: this._resumeToken, epoch: this.epoch };
    }
    this._resumeToken = null;
    this._newReady();
    this._setStatus('reconnecting', code === CLOSE_STALE ? 'server silent' : `closed ${code}`);
    this._retryTimer = setTimeout(() => this._reconnect(), this._backoff());
  }

  async _reconnect() {
    try {
      await this._open();
      // Without a token, host-side auth answers the open with a `welcome`.
      if (this.token || this.options.getToken) await this.authenticate();
    } catch (err) {
      if (this._ws) this._ws.close(1000, 'reconnect failed');
      else if (!this._closing && this.connectionStatus !== 'reconnecting') this._closed(1006, String(err.message));
    }
  }

  _authenticated(ack) {
    this.clientId = ack.clientId ?? this.clientId;
    this.expiresAt = ack.expiresAt ?? null;
    clearTimeout(this._refreshTimer);
    if (this.expiresAt && this.options.getToken) {
      const at = Math.max(1000, this.expiresAt - Date.now() - this.options.refreshBeforeMs);
      this._refreshTimer = setTimeout(() => this._refresh(), Math.min(at, 2 ** 31 - 1));
    }
  }

  async _refresh() {
    try {
      this.token = await this.options.getToken();
      this._authenticated(await this._send({ op: 'auth', token: this.token }));
      this.emit('tokenRefreshed', { expiresAt: this.expiresAt });
    } catch (err) {
      this.emit('error', err);
    }
  }

  /**
   * After (re)authenticating: resume the lost connection if there is one
   * (rooms, members and subscriptions are still on the server; object
   * snapshots are refreshed), else rejoin, re-enter and resubscribe.
   * Resolves with the reason for the `connected` status.
   */
  async _resumeOrResync() {
    const from = this._resumeFrom;
    this._resumeFrom = null;
    if (from && this.options.resume) {
      const since = {};
      for (const [name, room] of this._rooms) {
        if (room._s.subscribed && room._s.seq != null) since[name] = room._s.seq;
      }
      let ack = null;
      try {
        ack = await this._send({ op: 'resume', token: from.token, epoch: from.epoch, since }, { beforeReady: true });
      } catch (err) {
        if (err?.code === 'DISCONNECTED' || err?.code === 'CLOSED') {
          this._resumeFrom = from; // the next connection tries again
          throw err;
        }
      }
      if (ack) {
        this.id = ack.id;
        if (ack.resumeToken) this._resumeToken = ack.resumeToken;
        const work = [...this._realms.values()].map((realm) => realm._refresh());
        for (const result of await Promise.allSettled(work)) {
          if (result.status === 'rejected' && ['DISCONNECTED', 'CLOSED'].includes(result.reason?.code)) throw result.reason;
        }
        return 'resumed';
      }
    }
    await this._resync();
    return from ? 'rejoined' : 'connected';
  }

  /** After (re)authenticating: rejoin, re-enter, resubscribe. */
  async _resync() {
    const work = [];
    for (const room of this._rooms.values()) work.push(room._resync());
    for (const realm of this._realms.values()) work.push(realm._resync());
    for (const result of await Promise.allSettled(work)) {
      if (result.status === 'rejected') {
        const err = result.reason;
        // A lost socket fails the reconnect (and retries); a refusal is reported.
        if (err?.code === 'DISCONNECTED' || err?.code === 'CLOSED') throw err;
        this.emit('error', err);
      }
    }
  }

  _newReady() {
    if (this._readyPending) return;
    this._readyPending = true;
    this._ready = new Promise((resolve, reject) => {
      this._readyResolve = resolve;
      this._readyReject = reject;
    });
    this._ready.catch(() => {});
  }

  /** Lets requests waiting for the connection go (or fail with `err`). */
  _settleReady(err) {
    if (!this._readyPending) return;
    this._readyPending = false;
    if (err) this._readyReject(err);
    else this._readyResolve();
  }

  /** Fails every request in flight with `err` (a RollcallError). */
  _failPending(err) {
    for (const { reject, timer } of this._pending.values()) {
      clearTimeout(timer);
      reject(err);
    }
    this._pending.clear();
  }

  /**
   * Sends one request; resolves with its ack, rejects with its error. With
   * `signal`, an abort rejects with ABORTED (the server may still carry the
   * request out; its late answer is dropped).
   */
  async _send(frame, { beforeReady = false, onAck, signal } = {}) {
    if (signal?.aborted) throw new RollcallError('ABORTED', 'the operation was aborted', { cause: signal.reason });
    // Wait for the (current) connection; a reconnect makes a new one.
    while (!beforeReady && this.connectionStatus !== 'connected') {
      if (this._closing || this.connectionStatus === 'disconnected' || !this._readyPending) {
        throw new RollcallError('DISCONNECTED', 'not connected');
      }
      await abortable(this._ready, signal);
    }
    if (!this._ws || this._ws.readyState !== 1) throw new RollcallError('DISCONNECTED', 'not connected');
    const ref = ++this._ref;
    const forget = () => {
      const pending = this._pending.get(ref);
      if (pending) clearTimeout(pending.timer);
      this._pending.delete(ref);
    };
    return abortable(this._transmit(ref, frame, onAck), signal, forget);
  }

  _transmit(ref, frame, onAck) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(ref);
        reject(new RollcallError('TIMEOUT', `no answer to ${frame.op} in ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      // onAck runs synchronously with the ack, before any later frame is
      // handled: a snapshot must be applied before the events that follow it.
      this._pending.set(ref, { resolve, reject, timer, onAck });
      this._ws.send(JSON.stringify({ ...frame, ref }));
    });
  }

  _receive(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    if (f.type === 'ack' || f.type === 'error') {
      const pending = this._pending.get(f.ref);
      if (!pending) {
        if (f.type === 'error') this.emit('error', new RollcallError(f.code, f.message));
        return;
      }
      this._pending.delete(f.ref);
      clearTimeout(pending.timer);
      if (f.type === 'ack') {
        try {
          pending.onAck?.(f);
        } catch (err) {
          pending.reject(err);
          return;
        }
        pending.resolve(f);
      } else pending.reject(new RollcallError(f.code, f.message, { ref: f.ref }));
    } else if (f.type === 'welcome') {
      this.id = f.id;
      this.clientId = f.clientId;
      this.epoch = f.epoch ?? null;
      this._resumeToken = f.resumeToken ?? null;
      // Host-side auth; a client with a token authenticates itself instead.
      if (!this._authing && !this.token && !this.options.getToken) this._welcomed(f);
    } else if (f.type === 'presence' || f.type === 'message') {
      this._rooms.get(f.room)?._receive(f);
    } else if (f.type === 'batch') {
      // A coalescing room's window (presence.flushIntervalMs): its presence
      // events, in seq order, each handled as if it came alone.
      const room = this._rooms.get(f.room);
      if (room) for (const e of f.events ?? []) room._receive(e);
    } else if (f.type === 'resync') {
      // A resume that could not replay: a fresh snapshot to reconcile with.
      const room = this._rooms.get(f.room);
      if (room?._s.subscribed) room.presence._snapshot(f);
    } else if (f.type === 'object' || f.type === 'event') {
      this._realms.get(f.realm)?._receive(f);
    }
  }
}

// ---- rooms ---------------------------------------------------------------

class Room {
  constructor(client, name) {
    this.client = client;
    this.name = name;
    // All mutable state lives in _s, so that the await-facade shares it.
    this._s = { joined: null, left: false, presenceData: undefined, present: false, subscribed: false, members: new Map(), eventSubs: new Map() };
    this.presence = new Presence(this);
  }

  /** Lets `await client.join(name)` and `client.join(name).presence...` both work. */
  then(resolve, reject) {
    const facade = Object.create(this, { then: { value: undefined } });
    return this._s.joined.then(() => facade).then(resolve, reject);
  }

  async _ready() {
    await this._s.joined;
  }

  _request(frame, opts) {
    return this.client._send({ ...frame, room: this.name }, opts);
  }

  /** Leaves the room (and its presence set: others see `leave`). */
  async leave() {
    this._s.left = true;
    this._s.present = false;
    this._s.subscribed = false;
    this._s.snapshotted = false;
    this._s.eventSubs.clear();
    this._s.members.clear();
    this.client._rooms.delete(this.name);
    await this._request({ op: 'room.leave' });
  }

  /** Publishes `event` with `data` to the room's subscribers. Resolves with the number of recipients. */
  async publish(event, data, { signal } = {}) {
    await this._ready();
    return (await this._request({ op: 'publish', event, data }, { signal })).recipients;
  }

  /** `subscribe(event, cb)` or `subscribe(cb)` for every event; cb(data, message). */
  async subscribe(event, cb) {
    if (typeof event === 'function') [event, cb] = ['*', event];
    await this._ready();
    let subs = this._s.eventSubs.get(event);
    if (!subs) {
      subs = new Set();
      this._s.eventSubs.set(event, subs);
      try {
        await this._request({ op: 'subscribe', event });
      } catch (err) {
        if (this._s.eventSubs.get(event) === subs && subs.size === 0) this._s.eventSubs.delete(event);
        throw err;
      }
    }
    subs.add(cb);
  }

  async unsubscribe(event, cb) {
    if (typeof event === 'function') [event, cb] = ['*', event];
    const subs = this._s.eventSubs.get(event);
    if (!subs) return;
    if (cb) subs.delete(cb);
    else subs.clear();
    if (subs.size === 0) {
      this._s.eventSubs.delete(event);
      await this._request({ op: 'unsubscribe', event });
    }
  }

  async _resync() {
    if (this._s.left) return;
    const internal = { beforeReady: true };
    this._s.joined = this._request({ op: 'room.join' }, internal);
    await this._s.joined;
    const work = [];
    if (this._s.subscribed) work.push(this.presence._resubscribe());
    if (this._s.present) work.push(this._request({ op: 'presence.join', data: this._s.presenceData }, internal));
    for (const event of this._s.eventSubs.keys()) work.push(this._request({ op: 'subscribe', event }, internal));
    await Promise.all(work);
  }

  _receive(f) {
    if (f.type === 'presence') this.presence._receive(f);
    else {
      const { type, room, ...message } = f;
      for (const name of new Set([f.event, '*'])) {
        for (const cb of this._s.eventSubs.get(name) ?? []) cb(f.data, message);
      }
    }
  }
}

class Presence extends Emitter {
  constructor(room) {
    super();
    this.room = room;
  }

  /** Enters the presence set with `data`; joining again updates. */
  async join(data, { signal } = {}) {
    await this.room._ready();
    this.room._s.present = true;
    this.room._s.presenceData = data;
    await this.room._request({ op: 'presence.join', data }, { signal });
  }

  async update(data, { signal } = {}) {
    await this.room._ready();
    this.room._s.present = true;
    this.room._s.presenceData = data;
    await this.room._request({ op: 'presence.update', data }, { signal });
  }

  async leave({ signal } = {}) {
    this.room._s.present = false;
    await this.room._request({ op: 'presence.leave' }, { signal });
  }

  /**
   * The current members: `[{ id, clientId, data }]`; with `{ view: 'client' }`
   * one entry per clientId, `[{ clientId, connections: [member, ...] }]`.
   */
  async get({ view, signal } = {}) {
    await this.room._ready();
    const ack = await this.room._request({ op: 'presence.get', ...(view ? { view } : {}) }, { signal });
    return view === 'client' ? ack.clients : ack.members;
  }

  /**
   * `subscribe('join' | 'update' | 'leave', cb)` or `subscribe(cb)` for all.
   * cb receives `{ event, timestamp, id, clientId, data }`. Resolves with the
   * current members (the snapshot the events continue from).
   */
  async subscribe(event, cb) {
    if (typeof event === 'function') [event, cb] = [null, event];
    this.on(event ?? 'presence', cb);
    await this.room._ready();
    if (!this.room._s.subscribed) {
      this.room._s.subscribed = true;
      await this._resubscribe();
    } else if (this.room._s.snapshotted && (event == null || event === 'join')) {
      // A later callback gets the members already here as joins too.
      const timestamp = new Date().toISOString();
      for (const m of this.room._s.members.values()) cb({ event: 'join', timestamp, ...m });
    }
    return [...this.room._s.members.values()];
  }

  async unsubscribe(event, cb) {
    if (typeof event === 'function') [event, cb] = [null, event];
    this.off(event ?? 'presence', cb);
  }

  /** The members as this client knows them, without a round trip. */
  get members() {
    return [...this.room._s.members.values()];
  }

  /**
   * (Re)subscribes and reconciles: members that left while we were away get
   * a `leave`, newcomers a `join`, changed ones an `update`; nobody twice.
   */
  async _resubscribe() {
    await this.room._request({ op: 'presence.subscribe' }, { beforeReady: true, onAck: (ack) => this._snapshot(ack) });
  }

  /**
   * Reconciles with a snapshot (a subscribe ack or a `resync`) by identity:
   * a member is its id *and* clientId, so one member never turns into
   * another (an id seen again under another clientId is a leave and a join).
   */
  _snapshot(ack) {
    this.room._s.snapshotted = true;
    if (ack.seq != null) this.room._s.seq = ack.seq;
    const member = (m) => ({ id: m.id, clientId: m.clientId, data: m.data });
    const before = this.room._s.members;
    const after = new Map(ack.members.map((m) => [m.id, member(m)]));
    this.room._s.members = after;
    const timestamp = new Date().toISOString();
    const same = (a, b) => a && b && a.clientId === b.clientId;
    for (const [id, m] of before) {
      if (!same(m, after.get(id))) this._deliver({ event: 'leave', timestamp, ...m });
    }
    for (const [id, m] of after) {
      const old = before.get(id);
      if (!same(old, m)) this._deliver({ event: 'join', timestamp, ...m });
      else if (JSON.stringify(old.data) !== JSON.stringify(m.data)) this._deliver({ event: 'update', timestamp, ...m });
    }
  }

  _receive(f) {
    const { type, room, view, epoch, seq, ...event } = f;
    if (seq != null) this.room._s.seq = seq;
    const members = this.room._s.members;
    const known = members.get(event.id);
    if (known && known.clientId !== event.clientId) {
      // Never turn one member into another: the old one leaves first.
      members.delete(event.id);
      this._deliver({ event: 'leave', timestamp: event.timestamp, ...known });
      if (event.event === 'leave') return;
      event.event = 'join';
    }
    if (event.event === 'leave') {
      if (!members.delete(event.id)) return;
    } else {
      if (event.event === 'join' && members.has(event.id)) event.event = 'update';
      members.set(event.id, { id: event.id, clientId: event.clientId, data: event.data });
    }
    this._deliver(event);
  }

  _deliver(event) {
    this.emit(event.event, event);
    this.emit('presence', event);
  }
}

// ---- realms --------------------------------------------------------------

class Realm {
  constructor(client, name) {
    this.client = client;
    this.name = name;
    this._subs = new Set();
    this._events = new Map(); // "event\u0000pattern" -> { event, pattern, cbs }
    this.object = new Objects(this);
    this.pubsub = new PubSub(this);
  }

  _request(frame, opts) {
    return this.client._send({ ...frame, realm: this.name }, opts);
  }

  /** After a resume: the server still has the subscriptions; fresh object snapshots. */
  async _refresh() {
    await Promise.all([...this._subs].map((s) => s._resubscribe()));
  }

  async _resync() {
    const work = [...this._subs].map((s) => s._resubscribe());
    for (const { event, pattern } of this._events.values()) {
      work.push(this._request({ op: 'realm.subscribe', event, ...(pattern ? { pattern } : {}) }, { beforeReady: true }));
    }
    await Promise.all(work);
  }

  _receive(f) {
    if (f.type === 'object') {
      for (const sub of this._subs) sub._receive(f);
    } else {
      for (const { event, pattern, matcher, cbs } of this._events.values()) {
        if (event !== '*' && event !== f.event) continue;
        if (f.id != null ? !matcher(f.id) : pattern && pattern !== '**') continue;
        for (const cb of cbs) cb(f.data, f.id, f);
      }
    }
  }
}

class Objects {
  constructor(realm) {
    this.realm = realm;
  }

  /** `{ id, data, connectionStatus }`; rejects with OBJECT_NOT_FOUND or FORBIDDEN. */
  async get(id, { signal } = {}) {
    return (await this.realm._request({ op: 'object.get', id }, { signal })).object;
  }

  async create(id, data, { signal } = {}) {
    await this.realm._request({ op: 'object.create', id, data }, { signal });
  }

  async update(id, data, { signal } = {}) {
    await this.realm._request({ op: 'object.update', id, data }, { signal });
  }

  async delete(id, { signal } = {}) {
    await this.realm._request({ op: 'object.delete', id }, { signal });
  }

  /** Objects matching `pattern` (default all) that this client may read. */
  async list(pattern, { signal } = {}) {
    return (await this.realm._request({ op: 'object.list', ...(pattern ? { pattern } : {}) }, { signal })).objects;
  }

  /**
   * Subscribes to the objects matching `pattern`. The subscription emits
   * `'update'` with the whole up-to-date map `{ [id]: object }` at once and
   * after every change, and `'change'` with each change.
   */
  async subscribe(pattern) {
    const sub = new ObjectSubscription(this.realm, pattern ?? null);
    this.realm._subs.add(sub);
    try {
      await sub._resubscribe();
    } catch (err) {
      this.realm._subs.delete(sub);
      throw err;
    }
    return sub;
  }
}

/** `{ [id]: object }` without a prototype: ids like `__proto__` or `hasOwnProperty` are plain keys. */
function byId(objects) {
  const map = Object.create(null);
  for (const o of objects) map[o.id] = o;
  return map;
}

class ObjectSubscription extends Emitter {
  constructor(realm, pattern) {
    super();
    this.realm = realm;
    this.pattern = pattern;
    this.matcher = pattern ? globMatcher(pattern) : () => true;
    /** id -> { id, data, connectionStatus }; no prototype, so that any id is a plain key. */
    this.objects = byId([]);
    this._synced = false;
  }

  /** An `'update'` listener gets the current map at once (in a microtask), then one after every change. */
  on(event, fn) {
    super.on(event, fn);
    if (event === 'update' && this._synced) {
      queueMicrotask(() => {
        if (this.listeners('update').includes(fn)) fn(this.objects);
      });
    }
    return this;
  }

  async _resubscribe() {
    await this.realm._request(
      { op: 'object.subscribe', ...(this.pattern ? { pattern: this.pattern } : {}) },
      {
        beforeReady: true,
        onAck: (ack) => {
          this.objects = byId(ack.objects);
          // A resubscription (after a reconnect) brings a fresh snapshot.
          if (this._synced) this.emit('update', this.objects);
          this._synced = true;
        },
      },
    );
  }

  _receive(f) {
    if (!this.matcher(f.object.id)) return;
    if (f.event === 'delete') delete this.objects[f.object.id];
    else this.objects[f.object.id] = f.object;
    this.emit('change', { event: f.event, object: f.object, timestamp: f.timestamp });
    this.emit('update', this.objects);
  }

  async unsubscribe() {
    if (!this.realm._subs.delete(this)) return;
    // The server holds one subscription per pattern; another local one may still use it.
    for (const other of this.realm._subs) if (other.pattern === this.pattern) return;
    await this.realm._request({ op: 'object.unsubscribe', ...(this.pattern ? { pattern: this.pattern } : {}) });
  }
}

class PubSub {
  constructor(realm) {
    this.realm = realm;
  }

  /** `subscribe(event, [pattern], cb)`; cb(data, id, frame). */
  async subscribe(event, pattern, cb) {
    if (typeof pattern === 'function') [pattern, cb] = [null, pattern];
    const key = `${event}\u0000${pattern ?? ''}`;
    let entry = this.realm._events.get(key);
    if (!entry) {
      entry = { event, pattern, matcher: pattern ? globMatcher(pattern) : () => true, cbs: new Set() };
      this.realm._events.set(key, entry);
      try {
        await this.realm._request({ op: 'realm.subscribe', event, ...(pattern ? { pattern } : {}) });
      } catch (err) {
        if (this.realm._events.get(key) === entry && entry.cbs.size === 0) this.realm._events.delete(key);
        throw err;
      }
    }
    entry.cbs.add(cb);
  }

  async unsubscribe(event, pattern, cb) {
    if (typeof pattern === 'function') [pattern, cb] = [null, pattern];
    const key = `${event}\u0000${pattern ?? ''}`;
    const entry = this.realm._events.get(key);
    if (!entry) return;
    if (cb) entry.cbs.delete(cb);
    else entry.cbs.clear();
    if (entry.cbs.size === 0) {
      this.realm._events.delete(key);
      await this.realm._request({ op: 'realm.unsubscribe', event, ...(pattern ? { pattern } : {}) });
    }
  }

  /** Publishes `event` with `data`, about object `id` if given. Resolves with the number of recipients. */
  async publish(event, data, id, { signal } = {}) {
    return (await this.realm._request({ op: 'realm.publish', event, data, ...(id ? { id } : {}) }, { signal })).recipients;
  }
}
