// Browsers and bundlers: fetches the .wasm next to the glue, once.
import init from '../pkg/rollcall_wasm.js';

await init({ module_or_path: new URL('../pkg/rollcall_wasm_bg.wasm', import.meta.url) });

export { Engine, CloseCodes, ErrorCodes, RollcallError } from './engine.js';
