// Compiled with tsc --noEmit by types.test.js: the package's types accept
// real usage.
import { Engine, CloseCodes, ErrorCodes, type Batch, type HostEvent, type EngineOptions } from 'rollcall';
import { attach, NODE_DEFAULTS } from 'rollcall/node';

const options: EngineOptions = {
  appId: 'app',
  auth: { keys: [{ algorithm: 'HS256', secret: 's' }, { kid: 'k2', algorithm: 'ES256', pem: '...' }], leewayMs: 1000 },
  defaultRoomGrants: { 'public/*': ['subscribe'], 'team/**': ['subscribe', 'publish', 'presence'] },
  limits: { maxMembersPerRoom: 50, rate: { burst: 10, perSecond: 5 } },
  presence: { flushIntervalMs: 0, rooms: [{ pattern: 'cursors/**', flushIntervalMs: 50 }] },
};
const engine = new Engine(options);
const batch: Batch = engine.open(1, { identity: { clientId: 'alice', expiresAt: Date.now() + 60_000 } });
for (const send of batch.sends) send.to.forEach((id: number) => id + send.payload.length);
for (const close of batch.closes) if (close.code === CloseCodes.AUTH_FAILED) close.reason.toUpperCase();
const onEvent = (e: HostEvent) => (e.type === 'presenceJoined' ? e.clientId + e.room : e.type);
batch.events.forEach(onEvent);
engine.message(1, '{"op":"ping"}');
engine.message(1, new Uint8Array([123, 125]), Date.now());
const n: number = engine.publish('room', 'event', { any: 'json' }).recipients;
const code: string = ErrorCodes.ROOM_FULL;
const wake: number | null = engine.tick().wakeAt;
engine.flush().sends.length.toFixed();
engine.members('room').map((m) => m.clientId + m.id + m.connection);
engine.counts('room').members.toFixed();

const server = attach(engine, { port: 0, maxBufferedBytes: 1024, credentials: () => ({ identity: { clientId: 'x' } }) });
server.on('presenceLeft', (e) => e.clientId.toUpperCase());
server.on('event', (e) => e.type);
void [n, code, wake];
// rollcall/node's containment options and reported errors
const guarded = attach(engine, {
  port: 0,
  maxQueuedFrames: 10,
  maxQueuedBytes: 65536,
  connectionRate: { burst: 5, perSecond: 1 },
  addressOf: (req) => String(req.headers['x-forwarded-for'] ?? ''),
  closeTimeoutMs: 500,
  onError: (err) => console.log(err.message, err.connection, err.cause),
});
guarded.on('error', (err) => err.message.startsWith('ENGINE_FAILED'));
const internal: 1011 = CloseCodes.INTERNAL_ERROR;
void [NODE_DEFAULTS.connectionRate.burst, internal];

// rollcall/client
import { Client, RollcallError } from 'rollcall/client';
const client = new Client({ url: 'ws://127.0.0.1:1/', token: 't', getToken: async () => 't2' });
client.on('connectionStatusChanged', (s) => s === 'connected');
async function seeds() {
  await client.connect();
  const room = await client.join('myRoom');
  await room.presence.join({ username: 'Bob' });
  await room.presence.subscribe('join', (e) => e.clientId + e.timestamp);
  const direct = client.join('other');
  await direct.presence.update({ x: 1 });
  const realm = await client.realm.get('london');
  const john = await realm.object.get('deliveryRiders/johndoe-123');
  const s: 'connected' | 'disconnected' = john.connectionStatus;
  const sub = await realm.object.subscribe();
  sub.on('update', (objects) => Object.values(objects).map((o) => o.connectionStatus));
  await realm.pubsub.subscribe('connectionStatusChanged', 'deliveryRiders/*', (data, id) => [data.connectionStatus, id]);
  try { await realm.object.create('x'); } catch (e) { if (e instanceof RollcallError) e.code === 'FORBIDDEN'; }
  void s;
}
void seeds;

// rollcall/redis: a node-redis or ioredis client, or the store built over one
import { joinCluster, ioredisStore, type ClusterStore } from 'rollcall/redis';
async function cluster(ioredisClient: object) {
  const store: ClusterStore = await ioredisStore(ioredisClient, { onError: (err) => console.log(err) });
  await store.run('return 1', ['k'], ['a']);
  const joined = await joinCluster(server, { redis: ioredisClient, node: 'web-1', onRedisError: () => {} });
  await joined.close();
}
void cluster;
