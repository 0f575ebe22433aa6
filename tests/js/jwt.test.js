// The WebCrypto JWT path (js/jwt.js) against the shared vectors
// (tests/vectors/jwt.json, also checked by the engine in tests/jwt_vectors.rs):
// the same verdict for every token, with keys given as JWKs, as PEMs, and as
// a JWKS; the engine's own path (verifyToken, in wasm) agrees too. Then a
// JWKS URL: fetched once, cached, refetched on an unknown kid (rotation) at
// most every jwksRefreshMs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { JwtVerifier } from '../../js/jwt.js';
import { Engine } from '../../js/index.node.js';

const file = JSON.parse(readFileSync(new URL('../vectors/jwt.json', import.meta.url), 'utf8'));
const { now } = file;

/** The vector file's keys as the verifier takes them: JWK (default), PEM, or a JWKS. */
function options(config, shape = 'jwk') {
  const keys = file.keys.map(({ kid, algorithm, secret, pem, jwk }) => {
    if (secret) return { kid, algorithm, secret };
    return shape === 'pem' ? { kid, algorithm, pem } : { kid, algorithm, jwk: { ...jwk, kid, alg: algorithm } };
  });
  const base = { ...file.configs[config] };
  if (shape === 'jwks') {
    return { ...base, keys: keys.filter((k) => k.secret), jwks: { keys: keys.filter((k) => k.jwk).map((k) => k.jwk) } };
  }
  return { ...base, keys };
}

async function verdict(verifier, token) {
  try {
    await verifier.verify(token, now);
    return 'OK';
  } catch (err) {
    return err.code;
  }
}

for (const shape of ['jwk', 'pem', 'jwks']) {
  test(`WebCrypto gives every recorded verdict (keys as ${shape})`, async () => {
    const verifiers = Object.fromEntries(Object.keys(file.configs).map((c) => [c, new JwtVerifier(options(c, shape))]));
    const wrong = [];
    for (const v of file.vectors) {
      const got = await verdict(verifiers[v.config], v.token);
      if (got !== v.expect) wrong.push(`${v.name}: expected ${v.expect}, got ${got}`);
    }
    assert.deepEqual(wrong, []);
  });
}

test('the engine path (wasm verifyToken) gives the same verdicts', () => {
  const engines = Object.fromEntries(
    Object.keys(file.configs).map((c) => [c, new Engine({ auth: options(c, 'jwk') })]),
  );
  const wrong = [];
  for (const v of file.vectors) {
    let got = 'OK';
    try {
      engines[v.config].verifyToken(v.token, now);
    } catch (err) {
      got = err.code;
    }
    if (got !== v.expect) wrong.push(`${v.name}: expected ${v.expect}, got ${got}`);
  }
  for (const e of Object.values(engines)) e.free();
  assert.deepEqual(wrong, []);
});

test('a verified token gives the identity the engine would open with', async () => {
  const v = file.vectors.find((x) => x.name === 'ES256 valid, with kid');
  const identity = await new JwtVerifier(options('main')).verify(v.token, now);
  const engine = new Engine({ auth: options('main') });
  assert.deepEqual(identity, engine.verifyToken(v.token, now));
  engine.free();
});

test('a JWKS URL is fetched once, cached, and refetched on an unknown kid (key rotation)', async () => {
  const es = file.keys.find((k) => k.kid === 'es256');
  const ed = file.keys.find((k) => k.kid === 'ed');
  let served = { keys: [{ ...es.jwk, kid: 'es256', alg: 'ES256' }] };
  const fetched = [];
  const fetch = async (url) => {
    fetched.push(url);
    return new Response(JSON.stringify(served), { headers: { 'content-type': 'application/json' } });
  };
  const verifier = new JwtVerifier({ jwksUrl: 'https://idp.example/jwks.json', fetch, jwksRefreshMs: 1000 });
  const esToken = file.vectors.find((x) => x.name === 'ES256 valid, with kid').token;
  const edToken = file.vectors.find((x) => x.name === 'EdDSA valid, with kid').token;
  assert.equal(await verdict(verifier, esToken), 'OK');
  assert.equal(await verdict(verifier, esToken), 'OK');
  assert.equal(fetched.length, 1, 'cached');
  // An unknown kid refetches once; the new key is not published yet.
  assert.equal(await verdict(verifier, edToken), 'UNKNOWN_KID');
  assert.equal(fetched.length, 2);
  // Within jwksRefreshMs another unknown kid does not refetch.
  served = { keys: [...served.keys, { ...ed.jwk, kid: 'ed', alg: 'EdDSA' }] };
  assert.equal(await verdict(verifier, edToken), 'UNKNOWN_KID');
  assert.equal(fetched.length, 2, 'no refetch storm');
  // Later, the rotated key is fetched and used.
  const later = new JwtVerifier({ jwksUrl: 'https://idp.example/jwks.json', fetch, jwksRefreshMs: 0 });
  assert.equal(await verdict(later, edToken), 'OK');
});

test('configuration errors are BAD_OPTIONS', () => {
  assert.throws(() => new JwtVerifier({ keys: [{ algorithm: 'ES256', secret: 'x' }] }), { code: 'BAD_OPTIONS' });
  assert.throws(() => new JwtVerifier({ keys: [{ algorithm: 'none', secret: 'x' }] }), { code: 'BAD_OPTIONS' });
  const es = file.keys.find((k) => k.kid === 'es256');
  assert.throws(() => new JwtVerifier({ keys: [{ jwk: { ...es.jwk, d: 'private' }, algorithm: 'ES256' }] }), { code: 'BAD_OPTIONS' });
});
