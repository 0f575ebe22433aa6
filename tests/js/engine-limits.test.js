// The wasm Engine under what a client, a token or a careless host hands it
// (issue 10): no call throws for it, no batch is lost, the memory budget
// holds. The Rust side of the same: tests/token_limits.rs,
// tests/bad_identities.rs, tests/memory_budget.rs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Engine, CloseCodes, ErrorCodes } from '../../js/index.node.js';
import { initSync } from '../../pkg/rollcall_wasm.js';
import { mintToken } from './helpers.js';

const T = 1_720_865_608_496;
const SECRET = 'engine-limits-secret';
const keyed = () => new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] } });
const token = (claims) => mintToken(SECRET, claims);
const frames = (batch, id) => batch.sends.filter((s) => s.to.includes(id)).map((s) => JSON.parse(s.payload));
/** The module's exports (already initialised by index.node.js): its memory. */
const wasmMemory = () =>
  initSync({ module: readFileSync(new URL('../../pkg/rollcall_wasm_bg.wasm', import.meta.url)) }).memory;

test('finding 1: a token with exp = Number.MAX_SAFE_INTEGER is refused, not thrown, at open', () => {
  const e = keyed();
  e.open(1, { identity: { clientId: 'bystander' } }, T);
  const batch = e.open(2, token({ sub: 'mallory', exp: Number.MAX_SAFE_INTEGER }), T);
  assert.deepEqual(batch.closes, [{ connection: 2, code: CloseCodes.AUTH_FAILED, reason: 'BAD_CLAIMS' }]);
  assert.match(batch.events.find((x) => x.type === 'authRefused').error, /^BAD_CLAIMS: exp .* too far/);
  // The next deadline is the bystander's idle check, never the refused token's exp.
  assert.ok(Number.isSafeInteger(batch.wakeAt) && batch.wakeAt <= T + 60_000, String(batch.wakeAt));
  // The engine carries on: every later call works, and so does free().
  assert.deepEqual(e.connectionIds, [1]);
  const ok = e.open(3, token({ sub: 'carol', exp: Math.floor(T / 1000) + 60 }), T);
  assert.equal(ok.closes.length, 0);
  // Its expiry (+ leeway) is a deadline; the idle checks may come first.
  assert.ok(ok.wakeAt <= (Math.floor(T / 1000) + 60) * 1000 + 30_000);
  assert.ok(Number.isSafeInteger(ok.wakeAt));
  assert.equal(e.tick(T + 1).closes.length, 0);
  e.free();
});

test('finding 1: the same exp in an auth refresh is a TOKEN_INVALID frame and the old token stays', () => {
  const e = keyed();
  const exp = Math.floor(T / 1000) + 60;
  const opened = e.open(1, token({ sub: 'alice', exp }), T);
  const refresh = e.message(1, JSON.stringify({ op: 'auth', ref: 1, token: token({ sub: 'alice', exp: Number.MAX_SAFE_INTEGER }) }), T);
  assert.equal(frames(refresh, 1)[0].code, ErrorCodes.TOKEN_INVALID);
  assert.deepEqual(refresh.closes, []);
  assert.equal(refresh.wakeAt, opened.wakeAt);
  // Sent through the pre-auth path too (open without credentials, then auth).
  const pending = e.open(2, undefined, T);
  assert.ok(Number.isSafeInteger(pending.wakeAt));
  const first = e.message(2, JSON.stringify({ op: 'auth', ref: 1, token: token({ sub: 'bob', exp: 1e300 }) }), T);
  assert.equal(first.closes[0].code, CloseCodes.AUTH_FAILED);
  assert.equal(e.message(1, '{"op":"ping","ref":2}', T).sends.length, 1);
  e.free();
});

test('finding 2: host identities the engine cannot use are refused with BAD_IDENTITY, never thrown', () => {
  const e = new Engine();
  e.open(1, { identity: { clientId: 'alice' } }, T);
  e.message(1, '{"op":"room.join","room":"lobby"}', T);
  e.message(1, '{"op":"presence.join","room":"lobby"}', T);
  const bad = [
    { clientId: 123 },
    { clientId: '' },
    { clientId: 'eve\nadmin' },
    { clientId: 'x'.repeat(257) },
    { clientId: 'eve', rooms: { lobby: ['own'] } },
    { clientId: 'eve', per: { london: { 'riders/*': 'r' } } },
    { clientId: 'eve', expiresAt: 'soon' },
    { clientId: 'eve', expiresAt: 2 ** 53 },
    { clientId: 'eve', expiresAt: -1 },
    { clientId: 'eve', rooms: 'lobby' },
    { clientId: ['eve'] },
    'eve',
  ];
  let id = 10;
  for (const identity of bad) {
    id += 1;
    const batch = e.open(id, { identity }, T);
    assert.deepEqual(batch.closes, [{ connection: id, code: CloseCodes.AUTH_FAILED, reason: 'BAD_IDENTITY' }], JSON.stringify(identity));
    assert.match(batch.events.find((x) => x.type === 'authRefused').error, /^BAD_IDENTITY/);
    assert.deepEqual(batch.sends, [], 'nobody else hears of it');
  }
  // A token that is not a string is unreadable credentials too.
  assert.equal(e.open(50, { token: 42 }, T).closes[0].reason, 'BAD_IDENTITY');
  assert.deepEqual(e.connectionIds, [1]);
  assert.equal(e.members('lobby').length, 1);
});

test('finding 2: host misuse still throws, with a stable code, before any change', () => {
  const e = new Engine();
  e.open(1, { identity: { clientId: 'alice' } }, T);
  const cases = [
    [() => e.open(1, { identity: { clientId: 'bob' } }, T), /^DUPLICATE_CONNECTION: /],
    [() => e.open(1.5, undefined, T), /^BAD_ARGUMENT: /],
    [() => e.open(-1, undefined, T), /^BAD_ARGUMENT: /],
    [() => e.open(2 ** 53, undefined, T), /^BAD_ARGUMENT: /],
    [() => e.open(2, { token: 'a', identity: { clientId: 'b' } }, T), /^BAD_ARGUMENT: /],
    [() => e.open(2, 7, T), /^BAD_ARGUMENT: /],
    [() => e.open(2, undefined, Number.NaN), /^BAD_ARGUMENT: /],
    [() => e.message(1, 42, T), /^BAD_ARGUMENT: /],
    [() => e.publish('', 'x', 1, T), /^BAD_ARGUMENT: /],
    [() => new Engine({ limits: { maxStoredBytes: 0 } }), /^BAD_OPTIONS: /],
    [() => new Engine({ nope: 1 }), /^BAD_OPTIONS: /],
    [() => new Engine({ auth: { authTimeoutMs: Number.MAX_SAFE_INTEGER } }), /^BAD_OPTIONS: /],
    [() => Engine.restore({}, new Uint8Array([1, 2, 3])), /^BAD_SNAPSHOT: /],
  ];
  for (const [call, code] of cases) {
    assert.throws(call, (err) => err instanceof Error && code.test(err.message), String(call));
  }
  assert.deepEqual(e.connectionIds, [1]);
  assert.equal(e.identity(1).clientId, 'alice');
});

test('finding 3: 100 connections creating 16 KB objects reach the budget, not 4 GiB', () => {
  const memory = wasmMemory();
  const e = new Engine();
  const blob = JSON.stringify({ pad: 'x'.repeat(16 * 1024 - 16) });
  const codes = new Map();
  let created = 0;
  for (let c = 1; c <= 100; c++) {
    e.open(c, { identity: { clientId: `c${c}`, per: { '*': { '**': 'CRUD' } } } }, T);
  }
  for (let n = 0; n < 60; n++) {
    for (let c = 1; c <= 100; c++) {
      const batch = e.message(c, `{"op":"object.create","ref":1,"realm":"r","id":"c${c}/${n}","data":${blob}}`, T);
      const reply = frames(batch, c)[0];
      if (reply.type === 'ack') created += 1;
      else codes.set(reply.code, (codes.get(reply.code) ?? 0) + 1);
      assert.deepEqual(batch.closes, []);
    }
  }
  // 64 MiB of 16 KB objects: about 4,000; the rest refused with ENGINE_FULL.
  assert.ok(created > 3_000 && created < 4_200, `${created} created`);
  assert.deepEqual([...codes.keys()], [ErrorCodes.ENGINE_FULL]);
  assert.ok(memory.buffer.byteLength < 512 * 2 ** 20, `wasm memory ${memory.buffer.byteLength}`);
  // Still usable: once the last bytes are taken by small objects, a new
  // connection is turned away with 4013, the old ones are served, deleting
  // frees room.
  for (let n = 0; ; n++) {
    const reply = frames(e.message(2, `{"op":"object.create","ref":1,"realm":"r","id":"small/${n}"}`, T + n * 20), 2)[0];
    if (reply.type === 'error') {
      assert.equal(reply.code, ErrorCodes.ENGINE_FULL);
      break;
    }
  }
  assert.equal(e.open(500, { identity: { clientId: 'late' } }, T).closes[0].code, CloseCodes.ENGINE_FULL);
  assert.equal(frames(e.message(1, '{"op":"ping","ref":1}', T), 1)[0].type, 'ack');
  assert.equal(frames(e.message(1, '{"op":"object.delete","ref":1,"realm":"r","id":"c1/0"}', T), 1)[0].type, 'ack');
  assert.equal(frames(e.message(1, `{"op":"object.create","ref":1,"realm":"r","id":"again","data":${blob}}`, T), 1)[0].type, 'ack');
  assert.equal(e.object('r', 'again').data.pad.length, 16 * 1024 - 16);
  e.free();
  // The memory is the module's, reused by the next engine.
  const size = memory.buffer.byteLength;
  const next = new Engine();
  for (let c = 1; c <= 100; c++) {
    next.open(c, { identity: { clientId: `c${c}`, per: { '*': { '**': 'CRUD' } } } }, T);
    next.message(c, `{"op":"object.create","realm":"r","id":"c${c}","data":${blob}}`, T);
  }
  assert.equal(next.objects('r').length, 100);
  assert.equal(memory.buffer.byteLength, size, 'no growth: the freed engine\'s memory was reused');
  next.free();
});

test('finding 7: crit, iss arrays and oversized tokens are refused cheaply', () => {
  const e = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }], issuers: ['https://issuer'] } });
  const exp = Math.floor(T / 1000) + 60;
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const signed = (header, claims) => {
    const body = `${b64(header)}.${b64(claims)}`;
    return `${body}.${createHmac('sha256', SECRET).update(body).digest('base64url')}`;
  };
  const crit = signed({ alg: 'HS256', typ: 'JWT', crit: ['exp'] }, { sub: 'a', exp, iss: 'https://issuer' });
  assert.equal(e.open(1, crit, T).closes[0].reason, 'UNKNOWN_CRIT');
  assert.equal(e.open(2, token({ sub: 'a', exp, iss: ['https://issuer'] }), T).closes[0].reason, 'BAD_CLAIMS');
  const per = Object.fromEntries(Array.from({ length: 3000 }, (_, i) => [`deliveryRiders/london/rider-${i}/*`, 'R']));
  const big = token({ sub: 'a', exp, iss: 'https://issuer', per: { london: per } });
  assert.ok(big.length > 150_000);
  assert.equal(e.open(3, big, T).closes[0].reason, 'TOKEN_TOO_LARGE');
  assert.equal(e.open(4, token({ sub: 'a', exp, iss: 'https://issuer' }), T).closes.length, 0);
});
