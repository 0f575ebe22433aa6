// The demo in a real browser: `node demo/server.js` on a free port, Debian's
// Chromium driven by playwright-core. Two people join the lobby, see each
// other, update and leave; the rider table shows the simulated providers'
// objects and follows a forced drop of the fleet proxy. Screenshots go to
// test-results/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS = `${ROOT}test-results`;
const FLEET = ['c1', 'c2', 'c3', 'c4', 'c5'].map((k) => `deliveryRiders/cyclists/${k}`);
const missing = existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium)`;

let server; // the demo's child process
let url; // the demo's printed URL
let browser;
const pageErrors = [];

/** Spawns the demo on a free port and resolves with the URL it prints. */
function startDemo() {
  const child = spawn(process.execPath, ['demo/server.js'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const printed = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo printed no URL in 10 s:\n${output}`)), 10_000);
    const read = (chunk) => {
      output += chunk;
      const match = /rollcall demo: (http:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.setEncoding('utf8').on('data', read);
    child.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited (${code}) before printing its URL:\n${output}`));
    });
  });
  return { child, printed };
}

async function stopDemo(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}

const shot = (page, name) => page.screenshot({ path: `${RESULTS}/${name}.png`, fullPage: true });

async function openPage(name) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.setDefaultTimeout(8000);
  page.on('pageerror', (err) => pageErrors.push(`${name}: ${err.message}`));
  page.on('console', (msg) => msg.type() === 'error' && pageErrors.push(`${name} console: ${msg.text()}`));
  await page.goto(url);
  await page.fill('[data-testid=name]', name);
  await page.click('[data-testid=join]');
  await page.locator('[data-testid=conn-state]', { hasText: /^connected$/ }).waitFor();
  await page.locator(`[data-testid=member][data-name="${name}"]`).waitFor();
  return page;
}

/** Waits until the page's rider rows for `ids` all have `status`. */
function ridersAre(page, ids, status, timeout = 8000) {
  return page.waitForFunction(
    ([ids, status]) =>
      ids.every((id) => document.querySelector(`[data-testid=rider][data-id="${id}"]`)?.dataset.status === status),
    [ids, status],
    { timeout },
  );
}

before(async () => {
  if (missing) return;
  mkdirSync(RESULTS, { recursive: true });
  const demo = startDemo();
  server = demo.child;
  url = await demo.printed;
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopDemo(server);
});

test('two people in the lobby see each other join, update their status and leave', async (t) => {
  if (missing) return t.skip(missing);
  pageErrors.length = 0;
  const alice = await openPage('Alice');
  const bob = await openPage('Bob');

  // Each sees both members; Bob's page marks him as "you".
  for (const page of [alice, bob]) {
    await page.locator('[data-testid=member][data-name="Alice"]').waitFor();
    await page.locator('[data-testid=member][data-name="Bob"]').waitFor();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=member]').length === 2);
  }
  const bobId = await bob.locator('[data-testid=member][data-name="Bob"]').getAttribute('data-client-id');
  assert.match(bobId, /^Bob-[0-9a-f]{6}$/);
  assert.equal(await alice.locator('[data-testid=member][data-name="Bob"]').getAttribute('data-client-id'), bobId);
  await alice.locator('[data-testid=log] li', { hasText: 'Bob joined' }).waitFor();
  assert.match(await bob.locator('li.me').textContent(), /Bob \(you\)/);
  await shot(alice, 'demo-1-alice-sees-bob');

  // Bob updates his status: Alice sees it.
  await bob.fill('[data-testid=status]', 'picking up an order');
  await bob.press('[data-testid=status]', 'Enter');
  await alice.locator('[data-testid=member][data-name="Bob"][data-status="picking up an order"]').waitFor();
  await alice.locator('[data-testid=log] li', { hasText: 'Bob is now "picking up an order"' }).waitFor();
  await shot(alice, 'demo-2-bob-updated');

  // Bob closes his tab: Alice sees him leave.
  await bob.close();
  await alice.locator('[data-testid=member][data-name="Bob"]').waitFor({ state: 'detached' });
  await alice.locator('[data-testid=log] li', { hasText: 'Bob left' }).waitFor();
  assert.equal(await alice.locator('[data-testid=member]').count(), 1);
  assert.equal(await alice.locator('[data-testid=member-count]').textContent(), '1');
  await shot(alice, 'demo-3-bob-left');
  await alice.close();
  assert.deepEqual(pageErrors, []);
});

test('the rider table follows the simulated providers, and a forced fleet-proxy drop', async (t) => {
  if (missing) return t.skip(missing);
  pageErrors.length = 0;
  const page = await openPage('Dispatcher');

  // The fleet proxy's five cyclists and Ana (two devices) are connected.
  await ridersAre(page, [...FLEET, 'deliveryRiders/rider-ana'], 'connected');
  await page.locator('[data-testid=rider][data-id="deliveryRiders/rider-bo"]').waitFor();
  assert.equal(await page.locator('[data-testid=rider-dot]').count(), 7);
  assert.match(await page.locator('[data-testid=rider][data-id="deliveryRiders/cyclists/c1"]').textContent(), /Chidi/);
  await shot(page, 'demo-4-riders-connected');

  // Demo-only control: the fleet proxy drops for 4 s, then reconnects.
  const res = await fetch(new URL('/sim/drop?provider=fleet-proxy&ms=4000', url), { method: 'POST' });
  assert.equal(res.status, 200);
  await ridersAre(page, FLEET, 'disconnected', 3000);
  // Its riders only: Ana is still connected.
  assert.equal(await page.locator('[data-testid=rider][data-id="deliveryRiders/rider-ana"]').getAttribute('data-status'), 'connected');
  await page.locator('[data-testid=status-log] li', { hasText: 'cyclists/c3 → disconnected' }).waitFor();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=rider-dot][data-status=disconnected]').length >= 5);
  await shot(page, 'demo-5-fleet-dropped');

  // Ana has two devices: dropping one keeps her connected.
  const watch = await fetch(new URL('/sim/drop?provider=rider-ana/watch&ms=3000', url), { method: 'POST' });
  assert.equal(watch.status, 200);

  // The proxy comes back: its riders are connected again.
  await ridersAre(page, FLEET, 'connected', 8000);
  await page.locator('[data-testid=status-log] li', { hasText: 'cyclists/c3 → connected' }).waitFor();
  assert.equal(await page.locator('[data-testid=rider][data-id="deliveryRiders/rider-ana"]').getAttribute('data-status'), 'connected');
  assert.equal(await page.locator('[data-testid=status-log] li', { hasText: 'rider-ana' }).count(), 0);
  await shot(page, 'demo-6-fleet-back');

  const unknown = await fetch(new URL('/sim/drop?provider=nobody', url), { method: 'POST' });
  assert.equal(unknown.status, 404);
  await page.close();
  assert.deepEqual(pageErrors, []);
});
