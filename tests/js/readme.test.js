// The README's ```js examples run as they are written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');
const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);

test('the README has examples', () => {
  assert.ok(blocks.length >= 2);
});

blocks.forEach((code, i) => {
  test(`README example ${i + 1} runs`, () => {
    // Inside the package folder, so that `import 'rollcall'` resolves to this package.
    const file = `${root}js/.readme-example-${i}.mjs`;
    writeFileSync(file, code);
    try {
      const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 20000 });
      assert.equal(r.status, 0, r.stderr);
      assert.notEqual(r.stdout.trim(), '');
    } finally {
      rmSync(file);
    }
  });
});
