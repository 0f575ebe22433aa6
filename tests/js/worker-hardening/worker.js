// The test app for rollcall/worker's containment (tests/js/worker-hardening.test.js):
// a Durable Object whose credentials come from the request the way a host
// that verifies identities itself would take them, with knobs to make them
// bad, and TEST-ONLY routes that a real deployment must not have:
//
//   ?identity=<json>        opens with that host identity
//   ?throw=1                credentials() throws
//   ?hang=1                 credentials() never settles (the object's credentialsTimeoutMs is 500)
//   ?eventThrows=1          onEvent throws for every event from now on
//   GET /__errors?room=R    what onError was given (messages), and the engine's connection ids
import { RollcallDurableObject } from '../../../js/worker.js';

export class Presence extends RollcallDurableObject {
  errors = [];
  eventThrows = false;

  engineOptions(env) {
    // Containment, not grace: a dropped test socket goes at once.
    return { auth: { keys: [{ algorithm: 'HS256', secret: env.JWT_SECRET }] }, leaveGraceMs: 0 };
  }

  hostOptions() {
    return { credentialsTimeoutMs: 500 };
  }

  credentials(request) {
    const url = new URL(request.url);
    if (url.searchParams.get('throw')) throw new Error('credentials exploded');
    if (url.searchParams.get('hang')) return new Promise(() => {});
    if (url.searchParams.get('eventThrows')) this.eventThrows = true;
    const identity = url.searchParams.get('identity');
    if (identity) return { identity: JSON.parse(identity) };
    return super.credentials(request);
  }

  onEvent(_event) {
    if (this.eventThrows) throw new Error('onEvent bug');
  }

  onError(error) {
    this.errors.push(error.message);
  }

  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/__errors') {
      const engine = await this.engine();
      return Response.json({ errors: this.errors, connectionIds: engine.connectionIds });
    }
    return super.fetch(request);
  }
}

// The same Worker entry as the hibernation app: /__ routes to the object of ?room=, the rest through routeUpgrade.
export { default } from '../hibernation/worker.js';
