// The load generator of the end-to-end bench: N clients in one room, each
// updating its presence state at a fixed rate, with the send time embedded in
// the state. The same code drives both servers; only the client differs:
//
// - rollcall: raw `ws` sockets speaking docs/PROTOCOL.md (room.join,
//   presence.subscribe, presence.join, then presence.update).
// - y-websocket: WebsocketProvider (ws as WebSocketPolyfill) with a y-protocols
//   Awareness; updates are awareness.setLocalStateField('t', sendTime).
//
// A third kind, 'y-websocket-noecho', is the same y-websocket client with one
// change: it does not send remote awareness updates back to the server. The
// stock provider does (its awareness 'update' handler ignores the origin), so
// each update comes back to the server from the N - 1 receivers, which the
// server decodes and drops (see yjs/yjs#732). The variant shows the relay under
// the same inbound traffic as rollcall.
//
// 'rollcall-f<ms>' is the rollcall client against a server whose rooms
// coalesce presence (`presence.flushIntervalMs`); it unpacks `batch` frames.
//
// Delivery is counted per (update, receiver): an update counts as delivered
// to a receiver when that receiver gets it or a later update of the same
// member (its view of that member is then at least as new), and its latency
// is the time from its send to that moment. Without coalescing this is the
// plain per-update count; with it, superseded updates count when the newer
// one lands, as their staleness ends then.
//
// Run by bench/run.js and bench/flood.js (fork). Config comes as JSON in
// argv[2]; it reports 'ready', 'mark' (window start/end) and 'result' over
// IPC. With `measure: 'ack'` (rollcall only; bench/flood.js) the latency is
// that of each update's own ack instead of its delivery to the others.
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';

const cfg = JSON.parse(process.argv[2]);
const { kind, url, n, rate, warmupMs, measureMs, room, measure = 'delivery' } = cfg;
const send = (msg) => process.send?.(msg);
const now = () => performance.now();

process.setMaxListeners(0); // each WebsocketProvider adds a process 'exit' listener

// Measurement state, shared by both kinds of client.
let winStart = Infinity;
let winEnd = Infinity;
let received = 0; // updates of other clients received inside the window
let latencies = new Float64Array(1 << 16);
let sentInWindow = 0;
let receivedTotal = 0;

/** Send times of each member's updates, in order (index: client number - 1). */
const sendTimes = Array.from({ length: n }, () => []);
/** (receiver, member) -> index in sendTimes of the last update delivered. */
const seenUpTo = new Int32Array(n * n).fill(-1);

/** `receiver` got `member`'s update sent at `t`: it and every earlier one not yet delivered land now. */
function deliver(receiver, member, t) {
  if (!(t > 0) || !(member >= 0 && member < n)) return;
  const times = sendTimes[member];
  const at = now();
  let i = seenUpTo[receiver * n + member];
  while (i + 1 < times.length && times[i + 1] <= t) {
    i++;
    recordAt(at, times[i]);
  }
  seenUpTo[receiver * n + member] = i;
}

const memberIndex = (name) => Number(String(name).slice(1)) - 1;

function record(t) {
  recordAt(now(), t);
}

function recordAt(at, t) {
  receivedTotal++;
  if (at < winStart || at >= winEnd || !(t > 0)) return;
  if (received === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[received++] = at - t;
}

// --- rollcall clients --------------------------------------------------------

function rollcallClient(i) {
  const name = `c${i}`;
  const ws = new WebSocket(`${url}/?client=${name}`);
  const members = new Set();
  /** measure 'ack': ref -> send time of each update in flight. */
  const inFlight = new Map();
  let nextRef = 10;
  let myId = null;
  let resolveReady;
  const ready = new Promise((r) => (resolveReady = r));
  const checkReady = () => {
    if (members.size >= n) resolveReady();
  };
  const presence = (msg) => {
    if (msg.event === 'update') {
      if (msg.id !== myId && measure === 'delivery') deliver(i - 1, memberIndex(msg.data.name), msg.data.t);
    } else if (msg.event === 'join') {
      members.add(msg.id);
      checkReady();
    } else if (msg.event === 'leave') members.delete(msg.id);
  };
  ws.on('message', (raw) => {
    const msg = JSON.parse(raw.toString());
    if (msg.type === 'batch') {
      for (const e of msg.events) presence(e);
    } else if (msg.type === 'presence') {
      presence(msg);
    } else if (msg.type === 'welcome') {
      myId = msg.id;
      ws.send(JSON.stringify({ op: 'room.join', ref: 1, room }));
      ws.send(JSON.stringify({ op: 'presence.subscribe', ref: 2, room }));
      ws.send(JSON.stringify({ op: 'presence.join', ref: 3, room, data: { name, t: 0 } }));
    } else if (msg.type === 'ack' && msg.op === 'presence.update') {
      record(inFlight.get(msg.ref));
      inFlight.delete(msg.ref);
    } else if (msg.type === 'ack' && msg.op === 'presence.subscribe') {
      for (const m of msg.members) members.add(m.id);
      checkReady();
    } else if (msg.type === 'error') {
      console.error(`client ${name}: error frame`, msg);
    }
  });
  ws.on('error', (err) => console.error(`client ${name}:`, err.message));
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return {
    opened,
    ready,
    update(t) {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (measure === 'ack') {
        const ref = nextRef++;
        inFlight.set(ref, t);
        ws.send(JSON.stringify({ op: 'presence.update', ref, room, data: { name, t } }));
      } else ws.send(JSON.stringify({ op: 'presence.update', room, data: { name, t } }));
    },
    close() {
      ws.terminate();
    },
  };
}

// --- y-websocket clients -----------------------------------------------------

let Y, WebsocketProvider, Awareness;
async function loadYjs() {
  Y = await import('yjs');
  ({ WebsocketProvider } = await import('y-websocket'));
  ({ Awareness } = await import('y-protocols/awareness'));
}

function ywsClient(i) {
  const name = `c${i}`;
  const doc = new Y.Doc();
  const awareness = new Awareness(doc);
  awareness.setLocalState({ name, t: 0 });
  const provider = new WebsocketProvider(url, room, doc, {
    awareness,
    WebSocketPolyfill: WebSocket,
    // Node 20 has a global BroadcastChannel: without this, the clients of this
    // process would talk to each other directly, past the server.
    disableBc: true,
  });
  if (kind === 'y-websocket-noecho') {
    const stock = provider._awarenessUpdateHandler;
    awareness.off('update', stock);
    awareness.on('update', (changes, origin) => {
      if (origin === 'local') stock(changes, origin);
    });
  }
  let resolveReady;
  const ready = new Promise((r) => (resolveReady = r));
  const opened = new Promise((resolve) => {
    const onStatus = ({ status }) => {
      if (status === 'connected') {
        provider.off('status', onStatus);
        resolve();
      }
    };
    provider.on('status', onStatus);
  });
  awareness.on('update', ({ added, updated }, origin) => {
    if (origin === 'local') return;
    const states = awareness.getStates();
    for (const list of [added, updated]) {
      for (const id of list) {
        if (id === doc.clientID) continue;
        const state = states.get(id);
        if (state) deliver(i - 1, memberIndex(state.name), state.t);
      }
    }
    if (states.size >= n) resolveReady();
  });
  return {
    opened,
    ready,
    update(t) {
      awareness.setLocalStateField('t', t);
    },
    close() {
      provider.destroy();
      awareness.destroy();
      doc.destroy();
    },
  };
}

// --- the run -----------------------------------------------------------------

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function main() {
  if (!kind.startsWith('rollcall')) await loadYjs();
  const make = kind.startsWith('rollcall') ? rollcallClient : ywsClient;
  const setupStart = now();
  const clients = [];
  // Connect in batches, so that 500 handshakes do not all land at once.
  for (let i = 0; i < n; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 50); j++) batch.push(make(j + 1));
    clients.push(...batch);
    await withTimeout(Promise.all(batch.map((c) => c.opened)), 30_000, 'connect');
  }
  // Ready: every client sees all N members.
  await withTimeout(Promise.all(clients.map((c) => c.ready)), 60_000, 'every client sees every member');
  const setupMs = now() - setupStart;
  send({ type: 'ready', setupMs });

  // Sends are spread evenly: send j (counting from 0) is due at
  // t0 + j / (n * rate) seconds, from client j mod n.
  const t0 = now() + 100;
  winStart = t0 + warmupMs;
  winEnd = winStart + measureMs;
  const interval = 1000 / (n * rate);
  let j = 0;
  let marked = 0;
  let cpuAtStart = null;
  let cpuInWindow = null;
  let maxLag = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const at = now();
      if (marked === 0 && at >= winStart) {
        marked = 1;
        cpuAtStart = process.cpuUsage();
        send({ type: 'mark', phase: 'start' });
      }
      if (marked === 1 && at >= winEnd) {
        marked = 2;
        cpuInWindow = process.cpuUsage(cpuAtStart);
        send({ type: 'mark', phase: 'end' });
        resolve();
        return;
      }
      while (t0 + j * interval <= at) {
        maxLag = Math.max(maxLag, at - (t0 + j * interval));
        const t = now();
        sendTimes[j % n].push(t);
        clients[j % n].update(t);
        if (t >= winStart && t < winEnd) sentInWindow++;
        j++;
      }
      setTimeout(tick, Math.max(0, Math.min(5, t0 + j * interval - now())));
    };
    tick();
  });

  // Let late deliveries land (they are outside the window, so not counted).
  await new Promise((r) => setTimeout(r, 300));
  const lat = latencies.subarray(0, received).sort();
  const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : null);
  const result = {
    type: 'result',
    kind,
    n,
    rate,
    setupMs,
    measureMs,
    sentInWindow,
    expectedDeliveriesPerSec: measure === 'ack' ? n * rate : n * rate * (n - 1),
    deliveredInWindow: received,
    deliveredPerSec: received / (measureMs / 1000),
    latencyMs: { p50: pct(50), p90: pct(90), p99: pct(99), max: lat.length ? lat[lat.length - 1] : null },
    loadgenCpuSec: (cpuInWindow.user + cpuInWindow.system) / 1e6,
    loadgenMaxSendLagMs: maxLag,
  };
  for (const c of clients) c.close();
  send(result);
  setTimeout(() => process.exit(0), 100);
}

main().catch((err) => {
  console.error('loadgen:', err);
  send({ type: 'error', message: String(err?.stack ?? err) });
  setTimeout(() => process.exit(1), 100);
});
