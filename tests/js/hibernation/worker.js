// The test app for rollcall/worker (see tests/js/hibernation.test.js): a
// Worker written the way a user writes one, plus TEST-ONLY routes that a
// real deployment must not have:
//
//   POST /__evict?room=R            drops the object's in-memory engine, as
//                                   hibernation does (RollcallDurableObject#evict)
//   POST /__evict?room=R&drop=ID    first closes connection ID's socket on the
//                                   server side without telling the engine
//                                   (a socket that went while the object slept)
//   POST /__evict?room=R&forget=1   also deletes all storage (live
//                                   connections come back from attachments)
//   POST /__legacy?room=R           rewrites storage in the whole-snapshot
//                                   host's format 1, then evicts (migration)
//   POST /__deaf?room=R&on=1        from now on ignores socket close/error
//                                   events (on=0 listens again): a close the
//                                   object never heard of, for the
//                                   reconciliation on the next load
//   GET  /__state?room=R&realm=X    the engine's view as JSON (loads it),
//        &reset=1                   with persistStats (zeroed after reading)
//   POST /__rpc?room=R&method=M     calls RPC method M on the object's stub
//        body: JSON array of args   from the Worker (a real RPC call)
//
// Only these hooks live here; js/worker.js has none of them.
import { RollcallDurableObject, routeUpgrade } from '../../../js/worker.js';

export class Presence extends RollcallDurableObject {
  engineOptions(env) {
    return {
      auth: {
        keys: [{ algorithm: 'HS256', secret: env.JWT_SECRET }],
        authTimeoutMs: Number(env.AUTH_TIMEOUT_MS ?? 10_000),
        leewayMs: 0,
      },
      defaultPermissions: {},
      idleTimeoutMs: Number(env.IDLE_TIMEOUT_MS ?? 30_000),
      leaveGraceMs: Number(env.LEAVE_GRACE_MS ?? 15_000),
      replayEvents: Number(env.REPLAY_EVENTS ?? 64),
      // RATE_UNLIMITED (benchmarks): the per-connection frame rate limit lifted.
      ...(env.RATE_UNLIMITED ? { limits: { rate: { burst: 4294967295, perSecond: 4294967295 } } } : {}),
    };
  }

  hostOptions(env) {
    const options = {};
    if (env.SWEEP_INTERVAL_MS != null) options.sweepIntervalMs = Number(env.SWEEP_INTERVAL_MS);
    // HOST_JWKS: verify upgrade tokens with WebCrypto against this JWKS (JSON text).
    if (env.HOST_JWKS != null) options.jwt = { jwks: JSON.parse(env.HOST_JWKS), leewayMs: 0 };
    return options;
  }

  /** Test-only: close and error events are dropped while set. */
  #deaf = false;
  /** Test-only: frames that reached the object (auto-answered pings do not). */
  #messages = 0;

  async webSocketMessage(ws, message) {
    this.#messages++;
    await super.webSocketMessage(ws, message);
  }

  async webSocketClose(ws, code, reason, wasClean) {
    if (!this.#deaf) await super.webSocketClose(ws, code, reason, wasClean);
  }

  async webSocketError(ws, error) {
    if (!this.#deaf) await super.webSocketError(ws, error);
  }

  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/__evict') return this.#evict(url);
    if (url.pathname === '/__deaf') {
      this.#deaf = url.searchParams.get('on') === '1';
      return Response.json({ deaf: this.#deaf });
    }
    if (url.pathname === '/__state') return this.#state(url);
    if (url.pathname === '/__legacy') return this.#legacy();
    return super.fetch(request);
  }

  async #evict(url) {
    const drop = url.searchParams.get('drop');
    if (drop != null) {
      for (const ws of this.ctx.getWebSockets()) {
        if (ws.deserializeAttachment()?.id === Number(drop)) ws.close(1000, 'dropped by the test');
      }
    }
    if (url.searchParams.get('forget')) {
      await this.ctx.storage.deleteAll();
    }
    this.evict();
    return Response.json({ evicted: true });
  }

  /**
   * Test-only: rewrites the object's storage in the whole-snapshot host's
   * format (1: a chunked snapshot, attachments holding `{ id, identity }`),
   * as an object deployed before change records left it, then evicts.
   */
  async #legacy() {
    const engine = await this.engine();
    const bytes = engine.snapshot();
    const CHUNK = 120 * 1024;
    const chunks = Math.max(1, Math.ceil(bytes.length / CHUNK));
    const ids = engine.connectionIds;
    const attachments = this.ctx.getWebSockets().map((ws) => [ws, ws.deserializeAttachment()?.id]);
    await this.ctx.storage.deleteAll();
    const entries = { 'rollcall:meta': { format: 1, chunks, bytes: bytes.length, nextId: Math.max(0, ...ids) + 1, alarmAt: null } };
    for (let i = 0; i < chunks; i++) entries[`rollcall:snap:${i}`] = bytes.slice(i * CHUNK, (i + 1) * CHUNK);
    await this.ctx.storage.put(entries);
    for (const [ws, id] of attachments) ws.serializeAttachment({ id, identity: engine.identity(id) });
    this.evict();
    return Response.json({ legacy: true, chunks });
  }

  async #state(url) {
    const room = url.searchParams.get('room') ?? 'default';
    const realm = url.searchParams.get('realm');
    const engine = await this.engine();
    const sockets = this.ctx.getWebSockets();
    const attachments = sockets.map((ws) => ws.deserializeAttachment());
    const readyStates = sockets.map((ws) => ws.readyState);
    return Response.json({
      connectionIds: engine.connectionIds,
      counts: engine.counts(room),
      members: engine.members(room),
      objects: realm ? engine.objects(realm) : [],
      nextWake: engine.nextWake,
      alarm: await this.ctx.storage.getAlarm(),
      attachments,
      readyStates,
      storageKeys: [...(await this.ctx.storage.list()).keys()],
      stats: this.persistStats({ reset: url.searchParams.get('reset') === '1' }),
      messages: this.#messages,
      // What the whole-snapshot host of before wrote after every batch.
      snapshotBytes: engine.snapshot().length,
    });
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/__')) {
      const room = url.searchParams.get('room') ?? 'default';
      const stub = env.PRESENCE.get(env.PRESENCE.idFromName(room));
      if (url.pathname === '/__rpc') {
        const args = await request.json();
        return Response.json({ result: (await stub[url.searchParams.get('method')](...args)) ?? null });
      }
      return stub.fetch(request);
    }
    return routeUpgrade(request, env.PRESENCE);
  },
};
