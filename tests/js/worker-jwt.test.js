// rollcall/worker verifying upgrade tokens with WebCrypto (hostOptions().jwt,
// js/jwt.js) inside workerd: an ES256 token from a JWKS opens the connection
// with the identity it proves (presence works, the engine has no keys at
// all); an expired, a forged and an unknown-kid token are closed with 4001
// and the engine's codes, and the object carries on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { TestClient, startWorker, closeFrame } from './helpers.js';

const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const JWKS = { keys: [{ ...pair.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'ES256' }] };

let mf;
let wsBase;
const clients = [];

before(async () => {
  ({ mf, wsBase } = await startWorker('./hibernation/worker.js', {
    durableObjects: { PRESENCE: 'Presence' },
    // The engine's own key is a decoy: every upgrade token is verified by the host.
    bindings: { JWT_SECRET: 'unused-by-these-tokens', HOST_JWKS: JSON.stringify(JWKS) },
  }));
});

after(async () => {
  for (const c of clients) c.ws.terminate();
  await mf?.dispose();
});

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
function es256(claims, { kid = 'k1', key = pair.privateKey } = {}) {
  const input = `${b64({ alg: 'ES256', typ: 'JWT', kid })}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}
const exp = () => Math.floor(Date.now() / 1000) + 600;

async function connect(token) {
  const url = new URL(wsBase);
  url.searchParams.set('room', 'edge-jwt');
  url.searchParams.set('token', token);
  const client = await TestClient.connect(url.href);
  clients.push(client);
  return client;
}

test('an ES256 token from the JWKS opens with its identity; bad ones close with 4001 and the code', { timeout: 15_000 }, async () => {
  const ann = await connect(es256({ sub: 'ann', exp: exp() }));
  const welcome = await ann.wait((f) => f.type === 'welcome');
  assert.equal(welcome.clientId, 'ann');
  assert.equal((await ann.request({ op: 'room.join', room: 'r' })).type, 'ack');
  assert.equal((await ann.request({ op: 'presence.join', room: 'r', data: 1 })).type, 'ack');

  const refusals = [
    [es256({ sub: 'old', exp: Math.floor(Date.now() / 1000) - 5 }), 'EXPIRED'],
    [es256({ sub: 'forged', exp: exp() }, { key: other.privateKey }), 'BAD_SIGNATURE'],
    [es256({ sub: 'rotated', exp: exp() }, { kid: 'k2' }), 'UNKNOWN_KID'],
  ];
  for (const [token, code] of refusals) {
    const c = await connect(token);
    assert.deepEqual(await closeFrame(c), { code: 4001, reason: code });
    assert.equal(c.frames.length, 0);
  }
  const members = (await ann.request({ op: 'presence.get', room: 'r' })).members;
  assert.deepEqual(members.map((m) => m.clientId), ['ann']);
});
