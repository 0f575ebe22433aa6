// A minimal Worker hosting one rollcall Engine: the packaging test app for
// workerd (see tests/js/workerd.test.js). It imports the package's workerd
// entry, which loads the .wasm as a CompiledWasm module.
//
// The Engine and its sockets live in one Durable Object, not in the plain
// Worker's module scope: workerd refuses I/O on a WebSocket from any request
// other than the one that accepted it ("Cannot perform I/O on behalf of a
// different request"), so a frame from one client could not be fanned out to
// the others. Inside a Durable Object every request shares one I/O context.
// The object stands for "the isolate's Engine"; the fetch handler forwards
// every upgrade to it.
import { Engine } from '../../../js/index.workerd.js';

/** Engine options; the test passes them as the ROLLCALL_OPTIONS binding. */
const DEFAULT_OPTIONS = {
  auth: { keys: [{ algorithm: 'HS256', secret: 'workerd-test-secret' }] },
};

/** Reads a token from `?token=` or an `Authorization: Bearer` header. */
function tokenFrom(request) {
  const fromQuery = new URL(request.url).searchParams.get('token');
  if (fromQuery) return fromQuery;
  const match = /^Bearer\s+(.+)$/i.exec(request.headers.get('Authorization') ?? '');
  return match ? match[1].trim() : undefined;
}

export class RollcallHost {
  #engine;
  #sockets = new Map(); // connection id -> server-side WebSocket
  #nextId = 1;
  #timer = null;
  #timerAt = null;

  constructor(state, env) {
    this.#engine = new Engine(env.ROLLCALL_OPTIONS ?? DEFAULT_OPTIONS);
  }

  async fetch(request) {
    const { 0: client, 1: server } = new WebSocketPair();
    server.accept();
    const id = this.#nextId++;
    this.#sockets.set(id, server);
    let gone = false;
    const onGone = () => {
      if (gone) return;
      gone = true;
      const stillOurs = this.#sockets.delete(id);
      this.#run(this.#engine.close(id, Date.now()));
      // Close our side too, or workerd reports that the request hung.
      if (stillOurs) {
        try {
          server.close(1000, 'closed');
        } catch {}
      }
    };
    server.addEventListener('message', (event) => this.#run(this.#engine.message(id, event.data, Date.now())));
    server.addEventListener('close', onGone);
    server.addEventListener('error', onGone);
    this.#run(this.#engine.open(id, tokenFrom(request), Date.now()));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Carries out one batch: sends, closes, and the wake-up timer. */
  #run(batch) {
    for (const { to, payload } of batch.sends) {
      for (const id of to) {
        try {
          this.#sockets.get(id)?.send(payload);
        } catch {
          // The socket is closing; its close event tells the engine.
        }
      }
    }
    for (const { connection, code, reason } of batch.closes) {
      const socket = this.#sockets.get(connection);
      if (!socket) continue;
      this.#sockets.delete(connection);
      try {
        socket.close(code, reason);
      } catch {}
    }
    this.#schedule(batch.wakeAt);
  }

  #schedule(at) {
    at ??= null;
    if (at === this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = at;
    if (at == null) return;
    this.#timer = setTimeout(() => {
      this.#timerAt = null;
      this.#run(this.#engine.tick(Date.now()));
    }, Math.max(0, at - Date.now()));
  }
}

export default {
  async fetch(request, env) {
    if (request.headers.get('Upgrade')?.toLowerCase() !== 'websocket') {
      return new Response('rollcall workerd test worker\n');
    }
    const host = env.ROLLCALL.get(env.ROLLCALL.idFromName('rollcall'));
    return host.fetch(request);
  },
};
