/** Reconnect timing shared by the adapters that run their own reconnect loop (NATS first connect, AMQP). */

/** Reconnect backoff: 100 ms doubling to 2 s, so a restarted broker is found again within about 2 s. */
export function busRetryDelay(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(attempt, 5), 2000);
}

/** A wait that {@link Sleeper.wake} ends early, so `close()` never waits on a backoff timer. */
export class Sleeper {
  private timer: NodeJS.Timeout | undefined;
  private resolve: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.timer = setTimeout(() => this.wake(), ms);
    });
  }

  wake(): void {
    clearTimeout(this.timer);
    const resolve = this.resolve;
    this.resolve = undefined;
    resolve?.();
  }
}

/**
 * What `connect()` returns for an adapter that runs its own connect loop: one promise, settled by
 * the loop's first success or first failure (the loop keeps retrying after a failure either way).
 */
export class FirstAttempt {
  private promise: Promise<void> | undefined;
  private settle: ((err?: Error) => void) | undefined;

  /** Starts `run` once and returns the first attempt's outcome; later calls return the same promise. */
  start(run: () => void): Promise<void> {
    this.promise ??= new Promise<void>((resolve, reject) => {
      this.settle = (err) => {
        this.settle = undefined;
        if (err) reject(err);
        else resolve();
      };
      run();
    });
    return this.promise;
  }

  /** Reports an attempt's outcome; only the first report counts. */
  settled(err?: Error): void {
    this.settle?.(err);
  }
}
