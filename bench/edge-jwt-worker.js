// The Worker bench/edge.js loads into workerd (Miniflare) to time JWT
// verification inside the edge runtime itself: GET /?impl=webcrypto|jose|wasm&alg=ES256&n=500
// verifies the shared vector token of `alg` n times with that implementation.
// The vectors come in the VECTORS binding (tests/vectors/jwt.json as text).
import { JwtVerifier } from '../js/jwt.js';
import { Engine } from '../js/index.workerd.js';
import * as jose from '../node_modules/jose/dist/webapi/index.js';

const ready = new Map();

async function setUp(env, impl, alg) {
  const file = JSON.parse(env.VECTORS);
  const key = file.keys.find((k) => k.algorithm === alg);
  const token = file.vectors.find((v) => v.name === `${alg} valid, with kid`).token;
  const shaped = key.secret ? { kid: key.kid, algorithm: alg, secret: key.secret } : { kid: key.kid, algorithm: alg, jwk: { ...key.jwk, kid: key.kid } };
  const now = file.now;
  if (impl === 'webcrypto') {
    const verifier = new JwtVerifier({ keys: [shaped] });
    return () => verifier.verify(token, now);
  }
  if (impl === 'jose') {
    const k = key.secret ? new TextEncoder().encode(key.secret) : await jose.importJWK({ ...key.jwk, alg }, alg);
    const options = { algorithms: [alg], currentDate: new Date(now) };
    return () => jose.jwtVerify(token, k, options);
  }
  const engine = new Engine({ auth: { keys: [shaped] } });
  return async () => engine.verifyToken(token, now);
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const impl = url.searchParams.get('impl');
    const alg = url.searchParams.get('alg');
    const n = Number(url.searchParams.get('n') ?? 1);
    const id = `${impl}/${alg}`;
    if (!ready.has(id)) ready.set(id, await setUp(env, impl, alg));
    const verify = ready.get(id);
    for (let i = 0; i < n; i++) await verify();
    return Response.json({ verified: n });
  },
};
