// The rollcall side of the end-to-end bench: an Engine behind rollcall/node's
// attach(), with host-asserted identities (`?client=<id>` in the URL). The
// engine's open/message/close/tick are wrapped to add up the time spent in
// them (process.hrtime.bigint), so the orchestrator can report the engine's
// share of the process CPU. Run by bench/run.js and bench/flood.js (fork,
// with an IPC channel; see startRollcall in bench/lib/children.js).
//
// Environment: HOST, PORT; ROLLCALL_ENGINE, Engine options as JSON (the
// e2e bench's `rollcall-f50` sets `presence.flushIntervalMs`); ROLLCALL_ATTACH, more attach() options as JSON;
// ROLLCALL_ADAPTER, the path of another adapter module than js/node.js (the
// flood bench's "before" figures run an older one).
import { pathToFileURL } from 'node:url';
import { Engine } from '../js/index.node.js';

const { attach } = await import(process.env.ROLLCALL_ADAPTER ? pathToFileURL(process.env.ROLLCALL_ADAPTER).href : '../js/node.js');

const port = Number(process.env.PORT);
const host = process.env.HOST ?? '127.0.0.1';

const engine = new Engine(JSON.parse(process.env.ROLLCALL_ENGINE ?? '{}'));
const timing = {};
for (const name of ['open', 'message', 'close', 'lost', 'tick']) {
  const original = engine[name].bind(engine);
  const t = (timing[name] = { calls: 0, ns: 0n });
  engine[name] = (...args) => {
    const start = process.hrtime.bigint();
    try {
      return original(...args);
    } finally {
      t.ns += process.hrtime.bigint() - start;
      t.calls++;
    }
  };
}

const credentials = (req) => {
  const clientId = new URL(req.url ?? '/', 'http://localhost').searchParams.get('client');
  return { identity: { clientId, expiresAt: null } };
};

// As behind a proxy: the flood bench's flooder says its address in X-Forwarded-For
// (connections from loopback itself are not counted by connectionRate).
const addressOf = (req) => req.headers['x-forwarded-for'] ?? req.socket.remoteAddress;
const server = attach(engine, { port, host, credentials, addressOf, ...JSON.parse(process.env.ROLLCALL_ATTACH ?? '{}') });
server.on('listening', () => process.send?.({ type: 'listening', port }));
server.on('error', (err) => {
  console.error('rollcall bench server:', err);
  process.exit(1);
});

// The orchestrator asks for a mark at the start and end of the measured window.
process.on('message', (msg) => {
  if (msg?.type !== 'mark') return;
  const cpu = process.cpuUsage();
  const engineNs = Object.values(timing).reduce((a, t) => a + t.ns, 0n);
  process.send({
    type: 'mark',
    id: msg.id,
    cpuUs: cpu.user + cpu.system,
    engineNs: Number(engineNs),
    perMethod: Object.fromEntries(Object.entries(timing).map(([k, t]) => [k, { calls: t.calls, ns: Number(t.ns) }])),
  });
});

// Exit normally on a signal (so that `node --cpu-prof` can write its profile).
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
