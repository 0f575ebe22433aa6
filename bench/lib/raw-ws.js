// A raw WebSocket client over node:net for floods: it completes the
// handshake, then writes frames as fast as the socket takes them and never
// answers (or even parses) what the server sends, the close frame included.
// Used by the flood bench (bench/flooder.js) and the host tests. Loopback only.
import net from 'node:net';

/** One masked text frame (mask key 0: the payload goes as it is). */
export function textFrame(text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.from([0x81, 0x80 | 126, n >> 8, n & 0xff]);
  if (n > 0xffff) throw new Error('BAD_ARGUMENT: textFrame payload over 64 KiB');
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}

/**
 * Opens `ws://host:port/path` from `localAddress` (default 127.0.0.1),
 * with extra request `headers` if given.
 * Resolves with `{ socket, status, head }` once the server answered the
 * upgrade (`status` 101 when accepted, e.g. 429 when refused; `head` the
 * response's status line and headers). `socket.gone`
 * resolves when the TCP connection is gone.
 */
export function rawConnect(url, { localAddress, headers = {} } = {}) {
  const { hostname, port, pathname, search } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port), localAddress });
    socket.gone = new Promise((r) => socket.once('close', r));
    socket.on('error', () => {});
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(
        `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') +
        '\r\n',
      );
    });
    let head = '';
    const onData = (chunk) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.resume(); // whatever follows is read and dropped
      resolve({ socket, status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1] ?? 0), head: head.slice(0, end) });
    };
    socket.on('data', onData);
    socket.once('close', () => resolve({ socket, status: 0, head }));
  });
}

/**
 * Resolves when the server's close frame arrives on a socket from
 * rawConnect (server frames are unmasked: FIN+opcode, length, payload).
 */
export function closeFrameSeen(socket) {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1] & 0x7f;
        let at = 2;
        if (len === 126) [len, at] = [buf.length >= 4 ? buf.readUInt16BE(2) : Infinity, 4];
        else if (len === 127) [len, at] = [buf.length >= 10 ? Number(buf.readBigUInt64BE(2)) : Infinity, 10];
        if (buf.length < at + len) return;
        if ((buf[0] & 0x0f) === 0x8) {
          socket.off('data', onData);
          return resolve();
        }
        buf = buf.subarray(at + len);
      }
    };
    socket.on('data', onData);
    socket.once('close', resolve);
  });
}

/**
 * Writes `frame` (a Buffer from textFrame) over and over, `batch` at a time,
 * honouring backpressure, until `stop()` or the socket goes. Returns
 * `{ stop, sent }` where `sent()` is the number of frames written.
 */
export function flood(socket, frame, batch = 256) {
  const chunk = Buffer.concat(Array.from({ length: batch }, () => frame));
  let sent = 0;
  let stopped = false;
  const pump = () => {
    while (!stopped && !socket.destroyed && socket.writable) {
      sent += batch;
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  socket.once('close', () => (stopped = true));
  setImmediate(pump);
  return { stop: () => (stopped = true), sent: () => sent };
}
