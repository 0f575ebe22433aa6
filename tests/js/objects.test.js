// Object presence through rollcall/node with real ws clients: the seed's
// delivery riders, their data providers and connectionStatus.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Engine } from '../../js/index.node.js';
import { attach } from '../../js/node.js';
import { mintToken, TestClient, eventually } from './helpers.js';

const SECRET = 'objects-test-secret';
let server;
let url;
const exp = () => Math.floor(Date.now() / 1000) + 600;

// The seed's token, with its ids made consistent.
const riderToken = (sub) =>
  mintToken(SECRET, {
    sub,
    exp: exp(),
    per: { london: { 'deliveryRiders/*': 'R', [`deliveryRiders/${sub}`]: 'CU' } },
    dpv: { london: [`deliveryRiders/${sub}`] },
  });
const dispatcherToken = mintToken(SECRET, { sub: 'dispatch', exp: exp(), per: { london: { '**': 'R' } } });
const connect = (token) => TestClient.connect(`${url}/?token=${token}`);

before(async () => {
  // Dropped sockets leave after a short grace (tests/js/liveness.test.js has the long story).
  const engine = new Engine({ auth: { keys: [{ algorithm: 'HS256', secret: SECRET }] }, leaveGraceMs: 300 });
  server = attach(engine, { port: 0, host: '127.0.0.1' });
  await once(server, 'listening');
  url = `ws://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

test('a rider drops and reconnects: watchers see disconnected then connected', async () => {
  const dispatch = await connect(dispatcherToken);
  const sub = await dispatch.request({ op: 'realm.subscribe', realm: 'london', event: 'connectionStatusChanged', pattern: 'deliveryRiders/*' });
  assert.equal(sub.type, 'ack');
  const objects = await dispatch.request({ op: 'object.subscribe', realm: 'london' });
  assert.deepEqual(objects.objects, []);

  const john = await connect(riderToken('johndoe-123'));
  const created = await john.request({ op: 'object.create', realm: 'london', id: 'deliveryRiders/johndoe-123', data: { lat: 51.5 } });
  assert.equal(created.type, 'ack');
  const got = await john.request({ op: 'object.get', realm: 'london', id: 'deliveryRiders/johndoe-123' });
  assert.deepEqual(got.object, { id: 'deliveryRiders/johndoe-123', data: { lat: 51.5 }, connectionStatus: 'connected' });
  // He may read other riders but not update them.
  const denied = await john.request({ op: 'object.update', realm: 'london', id: 'deliveryRiders/other', data: {} });
  assert.equal(denied.code, 'FORBIDDEN');

  john.ws.terminate();
  const off = await dispatch.wait((f) => f.type === 'event' && f.data?.connectionStatus === 'disconnected');
  assert.deepEqual([off.realm, off.event, off.id, off.from], ['london', 'connectionStatusChanged', 'deliveryRiders/johndoe-123', null]);
  assert.equal(server.engine.object('london', 'deliveryRiders/johndoe-123').connectionStatus, 'disconnected');

  const again = await connect(riderToken('johndoe-123'));
  const on = await dispatch.wait((f) => f.type === 'event' && f.data?.connectionStatus === 'connected');
  assert.equal(on.id, 'deliveryRiders/johndoe-123');
  const changes = dispatch.frames.filter((f) => f.type === 'object').map((f) => [f.event, f.object.connectionStatus]);
  assert.deepEqual(changes, [['create', 'connected'], ['status', 'disconnected'], ['status', 'connected']]);
  await Promise.all([dispatch.close(), again.close()]);
});

test('two devices of one rider: disconnected only when the last one goes', async () => {
  const dispatch = await connect(dispatcherToken);
  await dispatch.request({ op: 'realm.subscribe', realm: 'london', event: 'connectionStatusChanged' });
  const phone = await connect(riderToken('jane-7'));
  await phone.request({ op: 'object.create', realm: 'london', id: 'deliveryRiders/jane-7' });
  const tablet = await connect(riderToken('jane-7'));
  await tablet.wait((f) => f.type === 'welcome');
  await eventually(() => server.engine.object('london', 'deliveryRiders/jane-7')?.providers === 2);
  phone.ws.terminate();
  await eventually(() => server.engine.object('london', 'deliveryRiders/jane-7')?.providers === 1);
  assert.equal(server.engine.object('london', 'deliveryRiders/jane-7').connectionStatus, 'connected');
  tablet.ws.terminate();
  const off = await dispatch.wait((f) => f.type === 'event' && f.id === 'deliveryRiders/jane-7');
  assert.equal(off.data.connectionStatus, 'disconnected');
  assert.equal(dispatch.frames.filter((f) => f.type === 'event' && f.id === 'deliveryRiders/jane-7').length, 1);
  await dispatch.close();
});

test('one provider bundling many riders, and no event for an id the receiver may not read', async () => {
  const proxy = await connect(
    mintToken(SECRET, { sub: 'fleet-proxy', exp: exp(), per: { '*': { 'fleet/**': 'CRUD' } }, dpv: { '*': ['fleet/cyclists/*'] } }),
  );
  for (const id of ['fleet/cyclists/a', 'fleet/cyclists/b', 'fleet/vans/c']) {
    assert.equal((await proxy.request({ op: 'object.create', realm: 'paris', id })).type, 'ack');
  }
  const statuses = server.engine.objects('paris').map((o) => [o.id, o.connectionStatus]);
  assert.deepEqual(statuses, [['fleet/cyclists/a', 'connected'], ['fleet/cyclists/b', 'connected'], ['fleet/vans/c', 'disconnected']]);

  const partial = await connect(mintToken(SECRET, { sub: 'partial', exp: exp(), per: { paris: { 'fleet/cyclists/a': 'R' } } }));
  const snap = await partial.request({ op: 'object.subscribe', realm: 'paris' });
  assert.deepEqual(snap.objects.map((o) => o.id), ['fleet/cyclists/a']);
  await partial.request({ op: 'realm.subscribe', realm: 'paris', event: 'connectionStatusChanged' });
  proxy.ws.terminate();
  await eventually(() => server.engine.objects('paris', 'fleet/cyclists/*').every((o) => o.connectionStatus === 'disconnected'));
  await partial.request({ op: 'ping' });
  const seen = partial.frames.filter((f) => f.type === 'event' || f.type === 'object').map((f) => f.id ?? f.object.id);
  assert.deepEqual(seen, ['fleet/cyclists/a', 'fleet/cyclists/a']);
  await partial.close();
});
