// Writes tests/vectors/jwt.json: keys (public: PEM for the engine's config,
// JWK for the WebCrypto path; HMAC secret), tokens signed with node:crypto,
// and the verdict both verification paths must give at `now`. Run it again
// only to change the vectors (keys are fresh each time):
//
//   node tests/vectors/gen-jwt.mjs
import { createHmac, generateKeyPairSync, sign, constants } from 'node:crypto';
import { writeFileSync } from 'node:fs';

const NOW = 1_720_865_608_496;
const NOW_S = Math.floor(NOW / 1000);
const SECRET = 'vector-secret-0123456789abcdef';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ec384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
const ed = generateKeyPairSync('ed25519');

const pub = (pair) => ({
  pem: pair.publicKey.export({ type: 'spki', format: 'pem' }),
  jwk: pair.publicKey.export({ format: 'jwk' }),
});

const keys = [
  { kid: 'hs', algorithm: 'HS256', secret: SECRET },
  { kid: 'rs256', algorithm: 'RS256', ...pub(rsa) },
  { kid: 'rs384', algorithm: 'RS384', ...pub(rsa) },
  { kid: 'rs512', algorithm: 'RS512', ...pub(rsa) },
  { kid: 'ps256', algorithm: 'PS256', ...pub(rsa) },
  { kid: 'es256', algorithm: 'ES256', ...pub(ec256) },
  { kid: 'es384', algorithm: 'ES384', ...pub(ec384) },
  { kid: 'ed', algorithm: 'EdDSA', ...pub(ed) },
];

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

function signWith(alg, input) {
  const bits = alg.slice(2);
  const hash = `sha${bits}`;
  switch (alg.slice(0, 2)) {
    case 'HS':
      return createHmac(hash, SECRET).update(input).digest();
    case 'RS':
      return sign(hash, Buffer.from(input), rsa.privateKey);
    case 'PS':
      return sign(hash, Buffer.from(input), { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(bits) / 8 });
    case 'ES':
      return sign(hash, Buffer.from(input), { key: (bits === '256' ? ec256 : ec384).privateKey, dsaEncoding: 'ieee-p1363' });
    default:
      return sign(null, Buffer.from(input), ed.privateKey);
  }
}

/** A token: header fields beside `alg`, claims; `signAs` signs with another algorithm than the header says. */
function jwt(alg, claims, { kid, header = {}, signAs = alg } = {}) {
  const h = { alg, typ: 'JWT', ...(kid ? { kid } : {}), ...header };
  const input = `${b64(h)}.${b64(claims)}`;
  return `${input}.${signWith(signAs, input).toString('base64url')}`;
}

const good = (more = {}) => ({ sub: 'ann', exp: NOW_S + 600, ...more });
const vectors = [];
const add = (name, token, expect, config = 'main') => vectors.push({ name, config, token, expect });

const ALGS = { HS256: 'hs', RS256: 'rs256', RS384: 'rs384', RS512: 'rs512', PS256: 'ps256', ES256: 'es256', ES384: 'es384', EdDSA: 'ed' };
for (const [alg, kid] of Object.entries(ALGS)) {
  add(`${alg} valid, with kid`, jwt(alg, good({ rooms: { 'lobby/*': ['subscribe', 'presence'] } }), { kid }), 'OK');
  add(`${alg} valid, no kid`, jwt(alg, good()), 'OK');
  const t = jwt(alg, good(), { kid });
  const [h, , s] = t.split('.');
  add(`${alg} payload swapped`, `${h}.${b64(good({ sub: 'mallory' }))}.${s}`, 'BAD_SIGNATURE');
}
add('expired beyond the leeway', jwt('ES256', good({ exp: NOW_S - 60 }), { kid: 'es256' }), 'EXPIRED');
add('expired within the leeway', jwt('ES256', good({ exp: NOW_S - 10 }), { kid: 'es256' }), 'OK');
add('not yet valid', jwt('HS256', good({ nbf: NOW_S + 120 }), { kid: 'hs' }), 'NOT_YET_VALID');
add('nbf within the leeway', jwt('HS256', good({ nbf: NOW_S + 10 }), { kid: 'hs' }), 'OK');
add('no exp', jwt('RS256', { sub: 'ann' }, { kid: 'rs256' }), 'MISSING_EXP');
add('unknown kid', jwt('ES256', good(), { kid: 'rotated-away' }), 'UNKNOWN_KID');
add('kid of a key of another algorithm', jwt('ES256', good(), { kid: 'rs256' }), 'ALGORITHM_NOT_ALLOWED');
add('an algorithm no key has', jwt('HS384', good()), 'ALGORITHM_NOT_ALLOWED');
add('HS256 signed with the RSA public key text', jwt('HS256', good(), { kid: 'rs256' }), 'ALGORITHM_NOT_ALLOWED');
add('alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(good())}.`, 'MALFORMED');
add('crit', jwt('HS256', good(), { kid: 'hs', header: { crit: ['exp'] } }), 'UNKNOWN_CRIT');
add('not a JWT', 'not-a-token', 'MALFORMED');
add('two parts', `${b64({ alg: 'HS256' })}.${b64(good())}`, 'MALFORMED');
add('too large', jwt('HS256', good({ pad: 'x'.repeat(9000) }), { kid: 'hs' }), 'TOKEN_TOO_LARGE');
add('sub is a number', jwt('ES384', good({ sub: 42 }), { kid: 'es384' }), 'BAD_CLAIMS');
add('an unknown room action', jwt('EdDSA', good({ rooms: { lobby: ['dance'] } }), { kid: 'ed' }), 'BAD_CLAIMS');
add('exp past 2^53 ms', jwt('HS256', good({ exp: 1e16 }), { kid: 'hs' }), 'BAD_CLAIMS');
add('per and dpv claims', jwt('PS256', good({ per: { london: { 'riders/*': 'R' } }, dpv: { london: ['riders/ann'] } }), { kid: 'ps256' }), 'OK');

const ISS = 'https://issuer.example';
add('issuer and audience', jwt('RS256', good({ iss: ISS, aud: 'rollcall' }), { kid: 'rs256' }), 'OK', 'strict');
add('audience in an array', jwt('RS256', good({ iss: ISS, aud: ['other', 'rollcall'] }), { kid: 'rs256' }), 'OK', 'strict');
add('wrong issuer', jwt('RS256', good({ iss: 'https://evil.example', aud: 'rollcall' }), { kid: 'rs256' }), 'WRONG_ISSUER', 'strict');
add('no issuer', jwt('ES256', good({ aud: 'rollcall' }), { kid: 'es256' }), 'WRONG_ISSUER', 'strict');
add('wrong audience', jwt('ES256', good({ iss: ISS, aud: 'elsewhere' }), { kid: 'es256' }), 'WRONG_AUDIENCE', 'strict');
add('no audience', jwt('ES256', good({ iss: ISS }), { kid: 'es256' }), 'WRONG_AUDIENCE', 'strict');
add('leeway 0: just expired', jwt('HS256', good({ iss: ISS, aud: 'rollcall', exp: NOW_S - 1 }), { kid: 'hs' }), 'EXPIRED', 'strict');

const configs = {
  main: {},
  strict: { issuers: [ISS], audiences: ['rollcall'], leewayMs: 0 },
};
const file = {
  about: 'JWT verdicts both the engine (tests/jwt_vectors.rs) and the WebCrypto path (tests/js/jwt.test.js) must give. Regenerate: node tests/vectors/gen-jwt.mjs',
  now: NOW,
  keys,
  configs,
  vectors,
};
writeFileSync(new URL('./jwt.json', import.meta.url), JSON.stringify(file, null, 1) + '\n');
console.log(`${vectors.length} vectors`);
