/**
 * Reconnect delays: exponential backoff with jitter, so that the clients of a node that died do
 * not all come back at the same instant (the thundering herd that would hit the surviving nodes).
 */

export interface BackoffOptions {
  /** Delay before the first retry, in ms (before jitter). */
  readonly initial: number;
  /** The largest delay, in ms (before jitter). */
  readonly max: number;
  /** Growth per attempt. */
  readonly factor: number;
  /** Share of the delay that is random: 0 is none, 1 is "full jitter" (anywhere from 0 to the delay). */
  readonly jitter: number;
}

/** The SDK's defaults: 0.25 s, 0.5 s, 1 s, 2 s, … capped at 10 s, each up to half shorter at random. */
export const BACKOFF_DEFAULTS: BackoffOptions = Object.freeze({ initial: 250, max: 10_000, factor: 2, jitter: 0.5 });

/**
 * The delay before retry number `attempt` (0 for the first retry): `min(max, initial · factor^attempt)`,
 * less a random share of up to `jitter` of it. `random` is injectable for tests.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = BACKOFF_DEFAULTS, random: () => number = Math.random): number {
  const n = Math.max(0, Math.floor(attempt));
  const base = Math.min(options.max, options.initial * Math.pow(options.factor, n));
  const jitter = Math.min(1, Math.max(0, options.jitter));
  return Math.round(base * (1 - jitter * random()));
}

/** Checks user-given backoff options and fills in the defaults; throws a TypeError naming the bad field. */
export function backoffOptions(given: Partial<BackoffOptions> = {}): BackoffOptions {
  const options = { ...BACKOFF_DEFAULTS, ...given };
  for (const key of ['initial', 'max', 'factor', 'jitter'] as const) {
    if (typeof options[key] !== 'number' || !Number.isFinite(options[key]) || options[key] < 0) {
      throw new TypeError(`backoff.${key}: expected a finite number ≥ 0, got ${String(options[key])}`);
    }
  }
  if (options.factor < 1) throw new TypeError(`backoff.factor: expected at least 1, got ${options.factor}`);
  if (options.jitter > 1) throw new TypeError(`backoff.jitter: expected at most 1, got ${options.jitter}`);
  if (options.max < options.initial) throw new TypeError(`backoff.max (${options.max}) is below backoff.initial (${options.initial})`);
  return Object.freeze(options);
}
