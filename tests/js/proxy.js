// A TCP proxy a test controls, on node:net, in front of a server on
// 127.0.0.1: it forwards, or makes the links it carries go silent (no FIN,
// no RST: a tunnel, a closed lid, a dead NAT entry), cuts them (RST), delays
// them, or refuses new ones for a while.
import net from 'node:net';

export async function startProxy(targetPort) {
  const links = new Set();
  const silenced = new Set();
  const state = { refusing: false, delayMs: 0 };
  const server = net.createServer((client) => {
    if (state.refusing) return client.resetAndDestroy();
    const upstream = net.connect(targetPort, '127.0.0.1');
    const link = { client, upstream };
    links.add(link);
    const forward = (from, to) =>
      from.on('data', (chunk) => {
        if (state.delayMs > 0) setTimeout(() => to.writable && to.write(chunk), state.delayMs);
        else if (to.writable) to.write(chunk);
      });
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    /** Every link carried now stops moving bytes both ways, and stays open. */
    silence() {
      for (const { client, upstream } of links) {
        client.pause();
        upstream.pause();
        client.removeAllListeners('data');
        upstream.removeAllListeners('data');
      }
      for (const link of links) silenced.add(link);
      links.clear();
    },
    /** Every link carried now is reset (RST both ways). */
    cut() {
      for (const { client, upstream } of links) {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }
      links.clear();
    },
    /** New connections are reset at once while `on`. */
    refuse(on) {
      state.refusing = on;
    },
    /** Every chunk is held this long before it is forwarded. */
    delay(ms) {
      state.delayMs = ms;
    },
    links: () => links.size,
    close() {
      for (const { client, upstream } of [...links, ...silenced]) {
        client.destroy();
        upstream.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
