/**
 * Waiting in tests and the benchmark: one condition poller ({@link until}) and one event waiter
 * ({@link untilEvent}). Both reject after a timeout with a message that names what was awaited, so
 * a failing test says what never happened instead of hanging.
 *
 * Prefer an event: {@link untilEvent} for a single event (a process exit, a socket close, an IPC
 * message), and {@link until} with `wake` for a condition over state that events change (messages
 * received, statuses seen). Plain polling (`until` without `wake`) is for state with no event to
 * wait on (a broker's INFO, an HTTP probe of another process).
 */
import type { EventEmitter } from 'node:events';

/** Resolves after `ms`. For the benchmark's pacing and for tests whose point is that nothing happens. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A change notifier: the owner calls {@link notify} whenever its state changes (a message, a
 * close, a status), and {@link until} called with `wake: changes` re-checks its condition then.
 */
export class Changes {
  private waiters = new Set<() => void>();

  /** Wakes every pending wait. */
  notify(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const wake of waiters) wake();
  }

  /** Resolves at the next {@link notify}, or after `ms` at the latest. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }
}

export interface UntilOptions {
  /** How long to wait in all (default 5000 ms). */
  readonly timeoutMs?: number;
  /**
   * Time between checks (default 20 ms). With `wake`, the longest time between checks when no
   * change is notified (default: none, every check follows a notification).
   */
  readonly intervalMs?: number;
  /** What is awaited, for the timeout message ("the node to be ready"). */
  readonly what?: string;
  /** Re-check on every change notified here instead of on a timer. */
  readonly wake?: Changes;
  /** State to add to the timeout message (what was received so far, statuses…). */
  readonly detail?: () => string;
  /** Checked after each failed check: a string ends the wait at once with that reason (e.g. "socket closed (1006)"). */
  readonly abort?: () => string | undefined;
}

/** The error {@link until} and {@link untilEvent} reject with when time runs out. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
}

/**
 * Resolves once `check()` holds (it may be async). A check that throws counts as "not yet"; its
 * last error is named in the timeout message. Rejects after `timeoutMs` with
 * "timed out waiting for <what>".
 */
export async function until(check: () => boolean | Promise<boolean>, options: UntilOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const what = options.what ?? 'condition';
  const interval = options.intervalMs ?? (options.wake ? timeoutMs : 20);
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await check()) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const detail = (options.detail ? `; ${options.detail()}` : '') + (lastError === undefined ? '' : `; last error: ${(lastError as Error).message ?? String(lastError)}`);
    const aborted = options.abort?.();
    if (aborted !== undefined) throw new Error(`${aborted} while waiting for ${what}${detail}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new WaitTimeoutError(`timed out waiting for ${what} (${timeoutMs} ms)${detail}`);
    const pause = Math.min(left, interval);
    await (options.wake ? options.wake.next(pause) : sleep(pause));
  }
}

export interface UntilEventOptions<A extends unknown[]> {
  /** Default 5000 ms. */
  readonly timeoutMs?: number;
  /** What is awaited, for the timeout message (default: the event's name). */
  readonly what?: string;
  /** Only an event whose arguments pass this ends the wait (e.g. an IPC message of one type). */
  readonly filter?: (...args: A) => boolean;
  /** Events that end the wait with a rejection instead (e.g. 'exit' while waiting for a message); the error says which. */
  readonly failOn?: readonly string[];
  /** Added to a failure's message (e.g. the process output so far). */
  readonly detail?: () => string;
}

/**
 * Resolves with the arguments of the next `event` on `emitter` (that passes `filter`); rejects
 * after `timeoutMs`, or at once on an event of `failOn`. Listeners are removed either way.
 */
export function untilEvent<A extends unknown[] = unknown[]>(emitter: EventEmitter, event: string, options: UntilEventOptions<A> = {}): Promise<A> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const what = options.what ?? `'${event}'`;
  const detail = (): string => (options.detail ? `: ${options.detail()}` : '');
  return new Promise<A>((resolve, reject) => {
    const failures = (options.failOn ?? []).map((name) => {
      const listener = (...args: unknown[]): void => {
        cleanup();
        const reason = args[0] instanceof Error ? args[0].message : args.map((a) => JSON.stringify(a)).join(', ');
        reject(new Error(`'${name}' (${reason}) while waiting for ${what}${detail()}`));
      };
      return { name, listener };
    });
    const onEvent = (...args: unknown[]): void => {
      if (options.filter && !options.filter(...(args as A))) return;
      cleanup();
      resolve(args as A);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new WaitTimeoutError(`timed out waiting for ${what} (${timeoutMs} ms)${detail()}`));
    }, timeoutMs);
    function cleanup(): void {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      for (const f of failures) emitter.off(f.name, f.listener);
    }
    emitter.on(event, onEvent);
    for (const f of failures) emitter.on(f.name, f.listener);
  });
}

/** `fn` over `items`, at most `limit` at a time; the results in the items' order. */
export async function inTurns<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
