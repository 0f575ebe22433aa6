// The default entry (Node, Deno, Bun, browsers, every bundler): the wasm
// travels inside the JavaScript as base64 and is compiled synchronously, so
// no bundler loses it and nothing waits at top level. The price: about a
// third more bytes than the .wasm file and no streaming compilation (see the
// README's "Runtimes"); `rollcall/web` fetches the .wasm file instead.
import { initSync } from '../pkg/rollcall_wasm.js';
import { wasmBytes } from '../pkg/rollcall_wasm_inline.js';

initSync({ module: wasmBytes() });

export { Engine, CloseCodes, ErrorCodes, RollcallError } from './engine.js';
