/**
 * How far this node has handed on a JetStream stream's republished channel messages, and reads
 * waiting for it to get somewhere (jetstream.ts): a read that went past its fence returns once
 * the node's route has everything up to the newest message it read (jetstream-store.ts).
 */
import { BusUnavailableError } from '../../errors.js';

export class HandedOn {
  /** The highest sequence of a republished channel message this node received; 0 before any. */
  last = 0;
  private readonly waits = new Set<{ readonly seq: number; readonly done: () => void }>();

  /** @param timeoutMs how long {@link reached} waits before it gives up. */
  constructor(private readonly timeoutMs: number) {}

  /**
   * The message at `seq` is being handed on, now (synchronously, before a waiting read goes on:
   * its continuation runs as a microtask, after the handler).
   */
  passed(seq: number): void {
    this.last = seq;
    if (this.waits.size > 0) for (const wait of this.waits) if (wait.seq <= seq) wait.done();
  }

  /** A new stream (deleted and created again) numbers from 1. */
  reset(): void {
    this.last = 0;
  }

  /**
   * Resolves once {@link passed} reached `seq`: the stream republishes in its order, so by then
   * every message up to `seq` of every channel this node subscribes to has been handed on.
   * Rejects with BusUnavailableError after the timeout (the message was lost on core NATS and
   * nothing came after it).
   */
  reached(seq: number): Promise<void> {
    if (this.last >= seq) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const wait = {
        seq,
        done: (): void => {
          clearTimeout(timer);
          this.waits.delete(wait);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waits.delete(wait);
        reject(new BusUnavailableError('the jetstream store did not deliver what it read in time'));
      }, this.timeoutMs);
      this.waits.add(wait);
    });
  }
}
