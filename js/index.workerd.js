// Cloudflare Workers / workerd entry: the runtime compiles the imported
// .wasm (a CompiledWasm module rule); initialise synchronously from it.
import wasmModule from '../pkg/rollcall_wasm_bg.wasm';
import { initSync } from '../pkg/rollcall_wasm.js';

initSync({ module: wasmModule });

export { Engine, CloseCodes, ErrorCodes, RollcallError } from './engine.js';
