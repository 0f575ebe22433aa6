// The .d.ts files: real usage type-checks; mistakes do not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('./types/', import.meta.url));
const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url));
const run = (...args) => spawnSync(process.execPath, [tsc, ...args], { cwd: dir, encoding: 'utf8' });

test('the package types accept real usage of Engine and rollcall/node', () => {
  const r = run('-p', 'tsconfig.json');
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('the package types refuse wrong options and arguments', () => {
  const bad = spawnSync(process.execPath, [tsc, '--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', 'bad.ts'], { cwd: dir, encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  const errors = bad.stdout.split('\n').filter((l) => l.includes('error TS'));
  assert.equal(errors.length, 4, bad.stdout);
});
