/**
 * A tiny typed event emitter that runs in browsers and Node alike (no `node:events`).
 *
 * A listener that throws does not break the emitter or the SDK's state machine: the error is
 * reported the way the platform reports uncaught errors (`reportError` in browsers, an uncaught
 * exception in Node), after the other listeners ran.
 */

/** A map of event names to listener signatures. */
export type EventMap<E> = { [K in keyof E]: (...args: never[]) => void };

/** Removes the listener it was returned for. */
export type Unlisten = () => void;

export class Emitter<E extends EventMap<E>> {
  private readonly listeners = new Map<keyof E, Array<E[keyof E]>>();

  /** Calls `listener` on every `event`; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: E[K]): Unlisten {
    const list = this.listeners.get(event) ?? [];
    list.push(listener);
    this.listeners.set(event, list);
    return () => this.off(event, listener);
  }

  /** Calls `listener` on the next `event` only. */
  once<K extends keyof E>(event: K, listener: E[K]): Unlisten {
    const wrapper = ((...args: Parameters<E[K]>) => {
      this.off(event, wrapper);
      (listener as (...a: Parameters<E[K]>) => void)(...args);
    }) as unknown as E[K];
    return this.on(event, wrapper);
  }

  off<K extends keyof E>(event: K, listener: E[K]): void {
    const list = this.listeners.get(event);
    if (!list) return;
    const i = list.indexOf(listener);
    if (i >= 0) list.splice(i, 1);
  }

  /** @internal */
  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const list = this.listeners.get(event);
    if (!list || list.length === 0) return;
    for (const listener of [...list]) {
      try {
        (listener as (...a: Parameters<E[K]>) => void)(...args);
      } catch (err) {
        reportListenerError(err);
      }
    }
  }

  /** @internal True when someone listens to `event`. */
  protected listens(event: keyof E): boolean {
    return (this.listeners.get(event)?.length ?? 0) > 0;
  }
}

function reportListenerError(err: unknown): void {
  const report = (globalThis as { reportError?: (e: unknown) => void }).reportError;
  if (typeof report === 'function') report(err);
  else
    queueMicrotask(() => {
      throw err;
    });
}
