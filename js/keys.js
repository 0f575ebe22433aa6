// Verification keys in the shapes JS developers hold them: a JWK (as from
// `crypto.subtle.exportKey('jwk', ...)` or a JWKS endpoint) and a Uint8Array
// HMAC secret, turned into what the core reads (`pem`, `secret`). Pure JS,
// no Node API: it runs wherever the Engine does.
import { RollcallError } from './errors.js';

const fromBase64Url = (text) => {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};

const toBase64 = (bytes) => {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
};

// ---- DER, just enough for a SubjectPublicKeyInfo -------------------------

const length = (n) => {
  if (n < 0x80) return [n];
  const bytes = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
};
const tlv = (tag, ...parts) => {
  const body = parts.flatMap((p) => [...p]);
  return [tag, ...length(body.length), ...body];
};
const seq = (...parts) => tlv(0x30, ...parts);
const bitString = (bytes) => tlv(0x03, [0], bytes);
const unsigned = (bytes) => {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = [...bytes.subarray(i)];
  return tlv(0x02, trimmed[0] & 0x80 ? [0, ...trimmed] : trimmed);
};
const NULL = [0x05, 0x00];
const OID = {
  rsaEncryption: [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
  ecPublicKey: [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
  'P-256': [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
  'P-384': [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22],
  Ed25519: [0x06, 0x03, 0x2b, 0x65, 0x70],
};

const pem = (der) => {
  const b64 = toBase64(Uint8Array.from(der));
  return `-----BEGIN PUBLIC KEY-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END PUBLIC KEY-----\n`;
};

function spkiOf(jwk) {
  const need = (...names) => {
    for (const n of names) {
      if (typeof jwk[n] !== 'string') throw new RollcallError('BAD_OPTIONS', `a ${jwk.kty} JWK needs "${n}"`);
    }
  };
  switch (jwk.kty) {
    case 'RSA':
      need('n', 'e');
      return seq(seq(OID.rsaEncryption, NULL), bitString(seq(unsigned(fromBase64Url(jwk.n)), unsigned(fromBase64Url(jwk.e)))));
    case 'EC':
      need('crv', 'x', 'y');
      if (!OID[jwk.crv] || jwk.crv === 'Ed25519') throw new RollcallError('BAD_OPTIONS', `EC curve ${jwk.crv} is not supported (P-256, P-384)`);
      return seq(seq(OID.ecPublicKey, OID[jwk.crv]), bitString([4, ...fromBase64Url(jwk.x), ...fromBase64Url(jwk.y)]));
    case 'OKP':
      need('crv', 'x');
      if (jwk.crv !== 'Ed25519') throw new RollcallError('BAD_OPTIONS', `OKP curve ${jwk.crv} is not supported (Ed25519)`);
      return seq(seq(OID.Ed25519), bitString(fromBase64Url(jwk.x)));
    default:
      throw new RollcallError('BAD_OPTIONS', `JWK kty ${JSON.stringify(jwk.kty)} is not supported (oct, RSA, EC, OKP)`);
  }
}

/** HMAC secret bytes in the core's shape (`secretBytes`, a JSON array). */
const secretBytes = (bytes) => ({ secretBytes: Array.from(bytes) });

/** One key from the options, in the core's shape `{ kid?, algorithm, secret? | secretBytes? | pem? }`. */
function keyOf(key) {
  if (key == null || typeof key !== 'object') return key;
  const { jwk, secret, ...rest } = key;
  if (jwk != null) {
    if (typeof jwk !== 'object') throw new RollcallError('BAD_OPTIONS', 'a key\'s jwk is an object');
    const out = { ...rest, algorithm: rest.algorithm ?? jwk.alg };
    if (out.kid === undefined && typeof jwk.kid === 'string') out.kid = jwk.kid;
    if (jwk.kty === 'oct') {
      if (typeof jwk.k !== 'string') throw new RollcallError('BAD_OPTIONS', 'an oct JWK needs "k"');
      return { ...out, ...secretBytes(fromBase64Url(jwk.k)) };
    }
    if (jwk.d !== undefined) throw new RollcallError('BAD_OPTIONS', 'a JWK with "d" is a private key: give the public key');
    return { ...out, pem: pem(spkiOf(jwk)) };
  }
  if (secret instanceof Uint8Array) return { ...rest, ...secretBytes(secret) };
  if (secret instanceof ArrayBuffer) return { ...rest, ...secretBytes(new Uint8Array(secret)) };
  return key;
}

/** `options` with its `auth.keys` in the core's shape (the rest untouched). */
export function keysOf(options) {
  const keys = options?.auth?.keys;
  if (!Array.isArray(keys)) return options;
  return { ...options, auth: { ...options.auth, keys: keys.map(keyOf) } };
}
