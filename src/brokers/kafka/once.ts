/**
 * Once-marks on the Kafka log (brokers/kafka/log.ts): the log's order decides which of two records of
 * one mark is the message, so a writer learns whether its record was the first only when its own
 * consumer reads the record back. {@link OnceVerdicts} hands that verdict from the reader to the
 * writer, whichever of the two comes first (the consumer can read a record before the producer's
 * answer with its offset arrives).
 */
import { BusUnavailableError } from '../../errors.js';

/** Verdicts kept for a writer still waiting for its offset, at most (the oldest go first). */
const MAX_KEPT = 10_000;

/** `T`: what the reader tells the writer (true/false for a once-mark's duplicate; the first publish's position or null for an idempotency key). */
export class OnceVerdicts<T = boolean> {
  /** Per `partition:offset`, true when the record was a duplicate; read by the writer once it knows the offset. */
  private readonly kept = new Map<string, T>();
  private readonly waiting = new Map<string, (verdict: T) => void>();

  /** `timeoutMs`: how long a writer waits for its record to be read. */
  constructor(private readonly timeoutMs: number) {}

  /** How many writers wait for the reader's verdict. */
  get pending(): number {
    return this.waiting.size;
  }

  /** The reader decided on this node's record at `partition:offset`. */
  decided(key: string, verdict: T): void {
    const waiter = this.waiting.get(key);
    if (waiter) {
      this.waiting.delete(key);
      return waiter(verdict);
    }
    this.kept.set(key, verdict);
    if (this.kept.size > MAX_KEPT) this.kept.delete(this.kept.keys().next().value!);
  }

  /**
   * Whether this node's record at `key` was a duplicate. Not read within the timeout:
   * BusUnavailableError, and the caller's retry finds the mark (the record is stored once either way).
   */
  async verdict(key: string): Promise<T> {
    const known = this.kept.get(key);
    if (known !== undefined) {
      this.kept.delete(key);
      return known;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<T>((resolve, reject) => {
        this.waiting.set(key, resolve);
        timer = setTimeout(() => {
          this.waiting.delete(key);
          reject(new BusUnavailableError(`kafka: this node did not read its own write back within ${this.timeoutMs / 1000} s`));
        }, this.timeoutMs);
      });
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Runs `task` after the one `chains` holds for `key` settled (one at a time per key), and keeps
 * the map to keys with work in flight.
 */
export function oneAtATime<T>(chains: Map<string, Promise<unknown>>, key: string, task: () => Promise<T>): Promise<T> {
  const next = (chains.get(key) ?? Promise.resolve()).then(task, task);
  const settled = next.catch(() => {});
  chains.set(key, settled);
  void settled.then(() => {
    if (chains.get(key) === settled) chains.delete(key);
  });
  return next;
}
