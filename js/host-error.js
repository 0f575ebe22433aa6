// The errors host adapters (rollcall/node, rollcall/worker) report when they
// contain a failure: never thrown, handed to 'error' listeners or onError.

/**
 * An Error whose message starts with a stable code (CREDENTIALS_FAILED,
 * ENGINE_FAILED, LISTENER_FAILED), with what was thrown as its `cause` and
 * the connection it concerned (if any) as `connection`.
 */
export function hostError(code, what, cause, connection) {
  const detail = cause instanceof Error ? cause.message : String(cause);
  const err = new Error(`${code}: ${what}: ${detail}`, { cause });
  if (connection != null) err.connection = connection;
  return err;
}
