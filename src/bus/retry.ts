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
