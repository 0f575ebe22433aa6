// The flooder of the flood bench (bench/flood.js), in a child process of its
// own so that it has its own CPU. Config as JSON in argv[2]: { url, mode,
// address } (the address it claims in X-Forwarded-For). It waits idle until the orchestrator sends 'go', floods
// until 'stop', then reports { connections, refused, frames } over IPC.
//
// mode 'raw':       one raw connection writing pings as fast as the socket
//                   takes them; it ignores the close (never answers it).
// mode 'reconnect': the same, but when the server's close frame arrives (or
//                   the socket goes) it drops the socket and connects again
//                   at once; a refused upgrade (429) is retried after its
//                   Retry-After.
// mode 'hammer':    'reconnect' that retries a refused upgrade at once: a
//                   connection flood, which costs the server its TCP accepts.
import { rawConnect, flood, textFrame, closeFrameSeen } from './lib/raw-ws.js';

const { url, mode, address } = JSON.parse(process.argv[2]);
const frame = textFrame('{"op":"ping"}');
let running = false;
const stats = { connections: 0, refused: 0, frames: 0 };
let current = null;

async function once() {
  const { socket, status, head } = await rawConnect(url, { headers: { 'X-Forwarded-For': address } }).catch(() => ({ socket: null, status: 0, head: '' }));
  if (status !== 101) {
    stats.refused++;
    socket?.destroy();
    const retryAfter = mode === 'reconnect' ? Number(/^retry-after:\s*(\d+)/im.exec(head)?.[1] ?? 0) : 0;
    await new Promise((r) => (retryAfter ? setTimeout(r, retryAfter * 1000) : setImmediate(r)));
    return;
  }
  stats.connections++;
  const pump = flood(socket, frame);
  current = { socket, pump };
  await (mode !== 'raw' ? Promise.race([closeFrameSeen(socket), socket.gone]) : new Promise(() => {}));
  pump.stop();
  stats.frames += pump.sent();
  socket.destroy();
  current = null;
}

async function run() {
  while (running) {
    await once();
  }
}

process.on('message', (msg) => {
  if (msg?.type === 'go' && !running) {
    running = true;
    run();
  } else if (msg?.type === 'stop') {
    running = false;
    if (current) {
      current.pump.stop();
      stats.frames += current.pump.sent();
      current.socket.destroy();
    }
    process.send({ type: 'stats', ...stats });
  }
});
process.send({ type: 'ready' });
