/**
 * When the SDK refreshes a token ahead of its expiry (docs/auth.md): the connection's JWT (the
 * `connected` frame's `expires`) and each subscription token (its `subscribed` frame's
 * `expires`). Browser-safe: no Node API.
 */

/** The share of the time left before `expires` after which the SDK refreshes. */
export const REFRESH_AT = 0.8;
/** Up to this share of the time left is taken off at random, so that clients that got their tokens together do not refresh together. */
export const REFRESH_JITTER = 0.1;

/**
 * ms from `now` until the refresh of a token that expires at `expires` (unix seconds, the
 * server's clock): 80 % of the time left, less up to 10 % of it at random.
 */
export function refreshDelay(expires: number, now = Date.now(), random = Math.random()): number {
  const left = Math.max(0, expires * 1000 - now);
  return Math.round(left * (REFRESH_AT - REFRESH_JITTER * random));
}

/** A token source as the options give it: a string, or a function called for each new token. */
export type TokenSource = () => string | Promise<string>;
