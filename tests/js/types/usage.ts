// Compiled with tsc --noEmit by types.test.js: the package's types accept
// real usage.
import { Engine, CloseCodes, ErrorCodes, type Batch, type HostEvent, type EngineOptions } from 'rollcall';
import { attach } from 'rollcall/node';

const options: EngineOptions = {
  appId: 'app',
  auth: { keys: [{ algorithm: 'HS256', secret: 's' }, { kid: 'k2', algorithm: 'ES256', pem: '...' }], leewayMs: 1000 },
  defaultRoomGrants: { 'public/*': ['subscribe'], 'team/**': ['subscribe', 'publish', 'presence'] },
  limits: { maxMembersPerRoom: 50, rate: { burst: 10, perSecond: 5 } },
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
engine.members('room').map((m) => m.clientId + m.id + m.connection);
engine.counts('room').members.toFixed();

const server = attach(engine, { port: 0, maxBufferedBytes: 1024, credentials: () => ({ identity: { clientId: 'x' } }) });
server.on('presenceLeft', (e) => e.clientId.toUpperCase());
server.on('event', (e) => e.type);
void [n, code, wake];
