/**
 * Which WebSocket close codes the SDK reconnects after. This mirrors `shouldReconnect` in
 * src/errors.ts (the registry, documented in docs/errors.md) without importing server code into
 * the browser; test/unit/client-pure.test.ts checks that the two agree on every code.
 */

/** Close codes the SDK itself uses or reads. */
export const ClientCloseCode = {
  NORMAL: 1000,
  /** The socket closed without a close frame (network drop, process killed, refused upgrade in a browser). */
  ABNORMAL: 1006,
  TOKEN_EXPIRED: 4001,
} as const;

/**
 * True when a client should reconnect after `code`: 4000–4499 are terminal, and so are the RFC
 * codes that say the client itself sent something wrong (1002, 1003, 1007, 1008, 1009). Everything
 * else — network drops (1006), drains (1001, 4503), restarts (1012), overload (1013), slow
 * consumer (4508) — means "come back with backoff".
 */
export function shouldReconnect(code: number): boolean {
  if (code >= 4000 && code < 4500) return false;
  return code !== 1002 && code !== 1003 && code !== 1007 && code !== 1008 && code !== 1009;
}

/**
 * HTTP statuses of a refused upgrade that mean "do not retry" (the request itself is wrong:
 * bad token, forbidden origin, no such endpoint). Only Node's `ws` reports the status; a browser
 * sees a refused upgrade as a plain 1006 and keeps retrying with backoff.
 */
export function shouldRetryHttpStatus(status: number): boolean {
  return !(status === 400 || status === 401 || status === 403 || status === 404);
}
