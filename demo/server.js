// The demo: a Node server embedding rollcall through rollcall/node. It
// serves one page, mints demo tokens, and prints its URL.
//   PORT=8080 HOST=127.0.0.1 node demo/server.js
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { randomBytes, createHmac } from 'node:crypto';
import { Engine } from '../js/index.node.js';
import { attach } from '../js/node.js';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const secret = randomBytes(32).toString('hex'); // demo tokens live as long as the process

function mint(claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

const page = readFileSync(new URL('./index.html', import.meta.url));
const http = createServer((req, res) => {
  const url = new URL(req.url, `http://${req.headers.host}`);
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  } else if (url.pathname === '/token') {
    const name = (url.searchParams.get('name') || 'guest').slice(0, 40);
    const sub = `${name}-${randomBytes(3).toString('hex')}`;
    const token = mint({ sub, name, exp: Math.floor(Date.now() / 1000) + 3600 });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, clientId: sub }));
  } else {
    res.writeHead(404).end('not found');
  }
});

const engine = new Engine({ appId: 'demo', auth: { keys: [{ algorithm: 'HS256', secret }] } });
const server = attach(engine, { server: http, path: '/ws' });
server.on('presenceJoined', (e) => console.log(`+ ${e.clientId} joined ${e.room}`));
server.on('presenceLeft', (e) => console.log(`- ${e.clientId} left ${e.room}`));

http.listen(port, host, () => {
  console.log(`rollcall demo: http://${host}:${http.address().port}/`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, async () => {
    await server.close();
    http.close(() => process.exit(0));
  });
}
