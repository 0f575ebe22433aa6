// The package's one error class. Engine, token and client errors all throw
// (or reject with) a RollcallError whose `code` is stable: a protocol error
// code (docs/PROTOCOL.md), a JWT reason (EXPIRED, BAD_SIGNATURE, ...), a
// host-misuse code (BAD_ARGUMENT, ENGINE_FREED, ...) or a client code
// (TIMEOUT, DISCONNECTED, CLOSED, ABORTED, AUTH_FAILED, TOKEN_EXPIRED).
// No wasm here: rollcall/client imports it without loading the engine.

const CODED = /^([A-Z][A-Z0-9_]*[A-Z0-9])(?::\s*([\s\S]*))?$/;

export class RollcallError extends Error {
  /**
   * @param {string} code a stable UPPER_SNAKE code
   * @param {string} [detail] what happened; the message is `CODE: detail` (or `CODE` alone)
   * @param {{ closeCode?: number, reason?: string, ref?: number, cause?: unknown }} [extra]
   */
  constructor(code, detail, extra = {}) {
    // A detail that already starts with the code is not prefixed twice.
    const rest = detail == null || detail === '' || detail === code ? '' : detail.startsWith(`${code}: `) ? detail.slice(code.length + 2) : detail;
    const { cause, ...fields } = extra;
    super(rest ? `${code}: ${rest}` : code, cause === undefined ? undefined : { cause });
    this.name = 'RollcallError';
    this.code = code;
    Object.assign(this, fields);
  }
}

/**
 * Turns what the wasm surface threw into a RollcallError: a message that
 * starts with a code (`CODE: ...`, or a bare AuthError name such as
 * `EXPIRED`) keeps it (every message of the wasm surface does); a trap is
 * ENGINE_BROKEN; anything else (wasm-bindgen's own checks) is BAD_ARGUMENT.
 */
export function rollcallError(err) {
  if (err instanceof RollcallError) return err;
  const message = typeof err?.message === 'string' ? err.message : String(err);
  if (err instanceof WebAssembly.RuntimeError) return new RollcallError('ENGINE_BROKEN', message, { cause: err });
  const coded = CODED.exec(message);
  if (coded) return new RollcallError(coded[1], coded[2], { cause: err });
  return new RollcallError('BAD_ARGUMENT', message, { cause: err });
}
