// Node entry: loads the wasm synchronously from the package folder.
import { readFileSync } from 'node:fs';
import { initSync } from '../pkg/rollcall_wasm.js';

initSync({ module: readFileSync(new URL('../pkg/rollcall_wasm_bg.wasm', import.meta.url)) });

export { Engine, CloseCodes, ErrorCodes, RollcallError } from './engine.js';
