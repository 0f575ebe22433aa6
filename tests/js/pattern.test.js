// The client's pattern matcher (js/pattern.js, which the SDK uses to route
// realm events and object changes between its own subscriptions) against
// the engine's: on a generated corpus of patterns and ids, including `**`
// in every position, literal brackets, braces and backslashes, multi-byte
// characters and line breaks, both say the same for every pair the engine
// accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../js/index.node.js';
import { globMatcher } from '../../js/client.node.js';

const PATTERN_PARTS = ['a', 'b', '/', '*', '?', '**', '/**', '**/', '.', '[', ']', '{', ',', '}', '\\', '-', '!', 'é', '日', '\r'];
const ID_PARTS = ['a', 'b', '/', '.', '[', ']', '{', '}', '\\', ',', 'é', '日', '\n', '\r', ''];

/** A small deterministic generator, so that a failure names a reproducible case. */
function generator(seed) {
  let s = seed;
  return (n) => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s % n;
  };
}

test('globMatcher agrees with the engine on a generated corpus', () => {
  const rnd = generator(14);
  const word = (parts, min, max) => {
    let w = '';
    for (let n = min + rnd(max - min + 1); n > 0; n--) w += parts[rnd(parts.length)];
    return w;
  };
  const ids = [...new Set(Array.from({ length: 250 }, () => word(ID_PARTS, 0, 6)))];
  let compared = 0;
  const disagreements = [];
  for (let i = 0; i < 1200; i++) {
    const pattern = word(PATTERN_PARTS, 1, 6);
    let engineMatches;
    try {
      engineMatches = ids.filter((id) => Engine.matchCount(pattern, [id]) === 1);
    } catch {
      continue; // a pattern the engine refuses never reaches a client
    }
    const client = globMatcher(pattern);
    const clientMatches = ids.filter((id) => client(id));
    compared += ids.length;
    if (JSON.stringify(clientMatches) !== JSON.stringify(engineMatches)) disagreements.push({ pattern, engine: engineMatches.slice(0, 5), client: clientMatches.slice(0, 5) });
  }
  assert.ok(compared > 150_000, `compared ${compared} pairs`);
  assert.deepEqual(disagreements.slice(0, 5), []);
});

test('globMatcher: the cases the SDK relies on', () => {
  const cases = [
    ['deliveryRiders/*', 'deliveryRiders/johndoe-123', true],
    ['deliveryRiders/*', 'deliveryRiders/a/b', false],
    ['a/**', 'a', false],
    ['a/**', 'a/b/c', true],
    ['**/x', 'x', true],
    ['a/**/b', 'a/b', true],
    ['r?', 'ré', false], // `?` is one byte, as in the engine
    ['[ab]*', '[ab]c', true],
    ['{a,b}/*', 'a/x', false],
    ['chat/*', 'chat/lobby', true],
    ['**', 'a/b/c', true],
    ['a/**/z', 'a/b/c/z', true],
    ['a**', 'ab', true],
    ['a**', 'a/b', false],
    ['room-?', 'room-12', false],
    ['a[1]/*', 'a[1]/x', true],
  ];
  for (const [pattern, id, expected] of cases) {
    assert.equal(globMatcher(pattern)(id), expected, `${pattern} ~ ${id}`);
    assert.equal(Engine.matchCount(pattern, [id]), expected ? 1 : 0, `engine: ${pattern} ~ ${id}`);
  }
});
