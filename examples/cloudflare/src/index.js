// A presence service on Cloudflare: one Durable Object per room hosts a
// rollcall Engine with the WebSocket Hibernation API, and the Worker routes
// each WebSocket upgrade to the object named by its `?room=` parameter.
//
//   wss://<your-worker>/?room=lobby&token=<jwt>
//
// See README.md for deploying, routing and hibernation.
import { RollcallDurableObject, routeUpgrade } from 'rollcall/worker';

/**
 * The Worker's bindings (wrangler.toml, secrets).
 * @typedef {{ JWT_SECRET?: string, JWKS_URL?: string, AUTH_TIMEOUT_MS?: string, JWT_ISSUER?: string, PRESENCE: import('rollcall/worker').DurableObjectNamespaceLike }} Env
 */

export class Presence extends RollcallDurableObject {
  /**
   * The engine's options, from the Worker's secrets and vars.
   * @param {Env} env
   * @returns {import('rollcall').EngineOptions}
   */
  engineOptions(env) {
    if (!env.JWT_SECRET && !env.JWKS_URL) throw new Error('set JWT_SECRET (wrangler secret put JWT_SECRET) or JWKS_URL');
    /** @type {import('rollcall').AuthOptions} */
    const auth = { keys: env.JWT_SECRET ? [{ algorithm: 'HS256', secret: env.JWT_SECRET }] : [] };
    if (env.AUTH_TIMEOUT_MS) auth.authTimeoutMs = Number(env.AUTH_TIMEOUT_MS);
    if (env.JWT_ISSUER) auth.issuers = [env.JWT_ISSUER];
    return { auth };
  }

  /**
   * With JWKS_URL (your identity provider's key set: Auth0, Clerk, Supabase,
   * Firebase, Cognito sign RS256/ES256), upgrade tokens are verified here
   * with WebCrypto, keys fetched and cached, instead of in the wasm engine.
   * @param {Env} env
   * @returns {import('rollcall/worker').HostOptions}
   */
  hostOptions(env) {
    if (!env.JWKS_URL) return {};
    return { jwt: { jwksUrl: env.JWKS_URL, ...(env.JWT_ISSUER ? { issuers: [env.JWT_ISSUER] } : {}) } };
  }
}

export default {
  /** @param {Request} request @param {Env} env */
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.headers.get('upgrade')?.toLowerCase() !== 'websocket') {
      if (url.pathname === '/') return new Response('rollcall presence: connect a WebSocket to /?room=<name>&token=<jwt>\n');
      // A server method over RPC: the room's counts, without waking anyone's socket.
      const room = url.searchParams.get('room');
      if (url.pathname === '/counts' && room && room.length <= 256) {
        return Response.json(await env.PRESENCE.get(env.PRESENCE.idFromName(room)).counts(room));
      }
      return new Response('not found\n', { status: 404 });
    }
    // One object per room; a missing or overlong room name is refused.
    const room = url.searchParams.get('room');
    if (!room || room.length > 256) return new Response('a ?room= of at most 256 characters is required\n', { status: 400 });
    return routeUpgrade(request, env.PRESENCE);
  },
};
