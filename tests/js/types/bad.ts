// Must NOT compile: types.test.js checks that tsc refuses each mistake.
import { Engine } from 'rollcall';

new Engine({ limits: { maxMembersPerRoom: 'ten' } });
new Engine({ auth: { keys: [{ algorithm: 'none', secret: 'x' }] } });
new Engine().open('one');
new Engine({ presence: { flushIntervalMs: '50ms' } });
