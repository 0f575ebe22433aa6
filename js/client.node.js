// rollcall/client in Node: the same client, with `ws` as its WebSocket
// (Node 20 has no global WebSocket).
import WebSocket from 'ws';
import { Client as BaseClient } from './client.js';

export { RollcallError, globMatcher } from './client.js';

export class Client extends BaseClient {
  constructor(options = {}) {
    super({ WebSocket: globalThis.WebSocket ?? WebSocket, ...options });
  }
}
