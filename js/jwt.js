// JWT verification with WebCrypto (`crypto.subtle`), for hosts where the
// wasm engine's own verification is slow (asymmetric keys on the edge):
// verify in the host, then open the connection with the identity it proves
// (`engine.open(id, { identity })`). Same rules and the same error codes as
// the engine (src/auth/jwt.rs): algorithms pinned by the key, `kid`
// selecting the key, `exp`/`nbf` with the leeway against the host's `now`,
// `iss`/`aud` in their RFC 7519 shapes, `crit` refused, a size limit
// checked before anything is decoded. tests/vectors/jwt.json holds tokens
// both paths must give the same verdict on.
//
//   const verifier = new JwtVerifier({ keys: [{ jwk }], issuers: ['https://issuer'] });
//   const identity = await verifier.verify(token);   // or throws RollcallError (code EXPIRED, ...)
//
// Keys: `{ algorithm?, kid?, jwk }` (a public JWK; `algorithm` defaults to
// its `alg`), `{ algorithm, kid?, secret }` (HS*: text or bytes), or
// `{ algorithm, kid?, pem }` (SPKI public key). Or a JWKS: `jwks: { keys }`,
// and/or `jwksUrl` fetched and cached (`jwksCacheMs`, refetched on an
// unknown kid at most every `jwksRefreshMs`).
import { RollcallError } from './errors.js';

/** 2^53 - 1: the latest time the engine holds (ms). */
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/** Defaults, the engine's (AuthConfig) and this verifier's own. */
export const JWT_DEFAULTS = Object.freeze({
  leewayMs: 30_000,
  requireExp: true,
  maxTokenBytes: 8 * 1024,
  /** A fetched JWKS is used this long before it is fetched again. */
  jwksCacheMs: 10 * 60_000,
  /** An unknown `kid` refetches the JWKS (key rotation), at most this often. */
  jwksRefreshMs: 30_000,
});

const HASH = { 256: 'SHA-256', 384: 'SHA-384', 512: 'SHA-512' };

/** WebCrypto parameters of a JWS algorithm: [import, verify]. */
function algorithmOf(alg) {
  const bits = alg.slice(2);
  switch (alg) {
    case 'HS256':
    case 'HS384':
    case 'HS512':
      return [{ name: 'HMAC', hash: HASH[bits] }, { name: 'HMAC' }];
    case 'RS256':
    case 'RS384':
    case 'RS512':
      return [{ name: 'RSASSA-PKCS1-v1_5', hash: HASH[bits] }, { name: 'RSASSA-PKCS1-v1_5' }];
    case 'PS256':
    case 'PS384':
    case 'PS512':
      return [{ name: 'RSA-PSS', hash: HASH[bits] }, { name: 'RSA-PSS', saltLength: Number(bits) / 8 }];
    case 'ES256':
      return [{ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }];
    case 'ES384':
      return [{ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' }];
    case 'EdDSA':
      return [{ name: 'Ed25519' }, { name: 'Ed25519' }];
    default:
      return null;
  }
}

/** The algorithm a JWKS key is for when it does not say (`alg`). */
function defaultAlgorithm(jwk) {
  if (jwk.kty === 'EC') return { 'P-256': 'ES256', 'P-384': 'ES384' }[jwk.crv];
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'RSA') return 'RS256';
  return undefined;
}

const fail = (code, message = code) => new RollcallError(code, message);
const badOptions = (message) => new RollcallError('BAD_OPTIONS', message);

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const SEXTET = new Int16Array(128).fill(-1);
for (let i = 0; i < 64; i++) SEXTET[ALPHABET.charCodeAt(i)] = i;

/** base64url (no padding) to bytes, or null if it is not base64url. */
function fromBase64Url(text) {
  const n = text.length;
  if (n % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((n * 3) / 4));
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? SEXTET[c] : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

const utf8 = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function jsonOf(part) {
  const bytes = fromBase64Url(part);
  if (bytes == null) return { error: 'MALFORMED' };
  try {
    return { value: JSON.parse(decoder.decode(bytes)) };
  } catch {
    return { error: 'json' };
  }
}

function derOfPem(pem) {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  const bin = atob(body);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** One configured key: its kid, algorithm, and a lazily imported CryptoKey. */
function compileKey(key) {
  if (key == null || typeof key !== 'object') throw badOptions('a key is an object');
  const { jwk, secret, pem, kid } = key;
  const algorithm = key.algorithm ?? jwk?.alg ?? (jwk ? defaultAlgorithm(jwk) : undefined);
  const params = typeof algorithm === 'string' ? algorithmOf(algorithm) : null;
  if (!params) throw badOptions(`key algorithm ${JSON.stringify(algorithm)} is not supported`);
  const hmac = algorithm.startsWith('HS');
  let load;
  if (jwk != null) {
    if (jwk.d !== undefined) throw badOptions('a JWK with "d" is a private key: give the public key');
    // The configured algorithm is the pin: the JWK's own alg/use/key_ops are not re-checked by WebCrypto.
    const { alg: _alg, use: _use, key_ops: _ops, ...bare } = jwk;
    load = () => crypto.subtle.importKey('jwk', { ...bare, ext: true }, params[0], false, ['verify']);
  } else if (secret != null && hmac) {
    const bytes = typeof secret === 'string' ? utf8.encode(secret) : new Uint8Array(secret);
    if (bytes.length === 0) throw badOptions('the secret is empty');
    load = () => crypto.subtle.importKey('raw', bytes, params[0], false, ['verify']);
  } else if (typeof pem === 'string' && !hmac) {
    load = () => crypto.subtle.importKey('spki', derOfPem(pem), params[0], false, ['verify']);
  } else {
    throw badOptions(`${algorithm} needs exactly one of \`secret\` (HS*) or \`pem\`/\`jwk\` (RS*, PS*, ES*, EdDSA)`);
  }
  let imported = null;
  const kidOf = kid ?? (typeof jwk?.kid === 'string' ? jwk.kid : undefined);
  return { kid: kidOf, algorithm, verifyParams: params[1], cryptoKey: () => (imported ??= load()) };
}

const isStringArray = (v) => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isObject = (v) => v != null && typeof v === 'object' && !Array.isArray(v);
const ROOM_ACTIONS = new Set(['subscribe', 'publish', 'presence']);

/** The claims' shapes, as the engine deserialises them; a message when wrong. */
function shapeError(c) {
  const optional = (name, ok) => (c[name] == null || ok(c[name]) ? null : `claim ${name} has the wrong shape`);
  return (
    optional('sub', (v) => typeof v === 'string') ??
    optional('iss', (v) => typeof v === 'string') ??
    optional('aud', (v) => typeof v === 'string' || isStringArray(v)) ??
    optional('exp', (v) => typeof v === 'number') ??
    optional('nbf', (v) => typeof v === 'number') ??
    optional('rooms', (v) => isObject(v) && Object.values(v).every((a) => Array.isArray(a) && a.every((x) => ROOM_ACTIONS.has(x)))) ??
    optional('per', (v) => isObject(v) && Object.values(v).every((m) => isObject(m) && Object.values(m).every((s) => typeof s === 'string'))) ??
    optional('dpv', (v) => isObject(v) && Object.values(v).every(isStringArray))
  );
}

export class JwtVerifier {
  #keys;
  #options;
  #jwks = { keys: [], fetchedAt: -Infinity, refreshedAt: -Infinity, pending: null };

  /**
   * @param {object} options `{ keys?, jwks?, jwksUrl?, leewayMs?, requireExp?, issuers?, audiences?,
   *   maxTokenBytes?, jwksCacheMs?, jwksRefreshMs?, fetch? }` (the engine's `auth` options, plus JWKS).
   */
  constructor(options = {}) {
    this.#options = { ...JWT_DEFAULTS, issuers: [], audiences: [], ...options };
    this.#keys = (options.keys ?? []).map(compileKey);
    for (const jwk of options.jwks?.keys ?? []) this.#keys.push(compileKey({ jwk }));
  }

  /**
   * Verifies `token` at `now` (ms) and returns the identity it proves,
   * `{ clientId, rooms, expiresAt, per, dpv }`, or throws a RollcallError
   * whose code is the engine's (EXPIRED, BAD_SIGNATURE, UNKNOWN_KID, ...).
   */
  async verify(token, now = Date.now()) {
    const o = this.#options;
    if (this.#keys.length === 0 && !o.jwksUrl) throw fail('NO_KEYS');
    if (typeof token !== 'string') throw fail('MALFORMED');
    // UTF-16 length x 3 bounds the UTF-8 length: encode only when in doubt.
    if (token.length > o.maxTokenBytes || (token.length * 3 > o.maxTokenBytes && utf8.encode(token).length > o.maxTokenBytes)) {
      throw fail('TOKEN_TOO_LARGE');
    }
    const parts = token.split('.');
    if (parts.length !== 3) throw fail('MALFORMED');
    const header = jsonOf(parts[0]).value;
    if (!isObject(header) || typeof header.alg !== 'string' || !algorithmOf(header.alg)) throw fail('MALFORMED');
    if (header.kid != null && typeof header.kid !== 'string') throw fail('MALFORMED');
    if (header.crit !== undefined) {
      if (!isStringArray(header.crit)) throw fail('MALFORMED');
      throw fail('UNKNOWN_CRIT');
    }
    let candidates = await this.#candidates(header.kid, now);
    candidates = candidates.filter((k) => k.algorithm === header.alg);
    if (candidates.length === 0) throw fail('ALGORITHM_NOT_ALLOWED');
    const signature = fromBase64Url(parts[2]);
    if (signature == null) throw fail('MALFORMED');
    const signed = utf8.encode(`${parts[0]}.${parts[1]}`);
    let verified = false;
    for (const key of candidates) {
      if (await crypto.subtle.verify(key.verifyParams, await key.cryptoKey(), signature, signed)) {
        verified = true;
        break;
      }
    }
    if (!verified) throw fail('BAD_SIGNATURE');
    const payload = jsonOf(parts[1]);
    if (payload.error === 'MALFORMED') throw fail('MALFORMED');
    if (payload.error || !isObject(payload.value)) throw fail('BAD_CLAIMS', 'BAD_CLAIMS: the claims are not a JSON object');
    const c = payload.value;
    if (o.issuers.length > 0 && (typeof c.iss !== 'string' || !o.issuers.includes(c.iss))) throw fail('WRONG_ISSUER');
    if (o.audiences.length > 0) {
      const aud = typeof c.aud === 'string' ? [c.aud] : isStringArray(c.aud) ? c.aud : [];
      if (!aud.some((a) => o.audiences.includes(a))) throw fail('WRONG_AUDIENCE');
    }
    const shape = shapeError(c);
    if (shape) throw fail('BAD_CLAIMS', `BAD_CLAIMS: ${shape}`);
    const toMs = (secs) => (Number.isFinite(secs) && secs > 0 ? Math.floor(secs * 1000) : 0);
    let expiresAt = null;
    if (c.exp != null) {
      const at = toMs(c.exp) + o.leewayMs;
      if (now >= at) throw fail('EXPIRED');
      if (at > MAX_TIME) throw fail('BAD_CLAIMS', `BAD_CLAIMS: exp ${c.exp} is too far in the future`);
      expiresAt = at;
    } else if (o.requireExp) {
      throw fail('MISSING_EXP');
    }
    if (c.nbf != null && now + o.leewayMs < toMs(c.nbf)) throw fail('NOT_YET_VALID');
    return { clientId: c.sub ?? null, rooms: c.rooms ?? null, expiresAt, per: c.per ?? null, dpv: c.dpv ?? null };
  }

  /** The keys a token's `kid` selects (configured first, then the fetched JWKS). */
  async #candidates(kid, now) {
    const pick = (keys) => (kid == null ? keys : keys.filter((k) => k.kid === kid));
    if (!this.#options.jwksUrl) {
      const found = pick(this.#keys);
      if (kid != null && found.length === 0) throw fail('UNKNOWN_KID');
      return found;
    }
    const j = this.#jwks;
    if (now - j.fetchedAt > this.#options.jwksCacheMs) await this.#fetchJwks(now);
    let found = pick([...this.#keys, ...j.keys]);
    if (kid != null && found.length === 0 && now - j.refreshedAt > this.#options.jwksRefreshMs) {
      j.refreshedAt = now;
      await this.#fetchJwks(now); // a rotated key
      found = pick([...this.#keys, ...j.keys]);
    }
    if (kid != null && found.length === 0) throw fail('UNKNOWN_KID');
    return found;
  }

  async #fetchJwks(now) {
    const j = this.#jwks;
    j.pending ??= (async () => {
      const fetchFn = this.#options.fetch ?? globalThis.fetch;
      const res = await fetchFn(this.#options.jwksUrl);
      if (!res.ok) throw new RollcallError('JWKS_FETCH_FAILED', `JWKS_FETCH_FAILED: ${res.status} from ${this.#options.jwksUrl}`);
      const body = await res.json();
      const keys = [];
      for (const jwk of body?.keys ?? []) {
        try {
          keys.push(compileKey({ jwk }));
        } catch {
          // a key this verifier cannot use (another kty, a private key): skipped
        }
      }
      j.keys = keys;
    })().finally(() => {
      j.pending = null;
    });
    await j.pending;
    j.fetchedAt = now;
  }
}
