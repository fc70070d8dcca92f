/**
 * Idempotency keys held in process (OutgoingMessage.idempotency): the memory store's, shared by
 * the nodes of one broker, and the Kafka index's, fed by the log. Pure: times come in, so the
 * Kafka index can decide by the log's own times (every node alike) and tests drive it directly.
 *
 * Bounds: keys come from clients, so what is held is capped in bytes ({@link DEFAULT_KEYS_MAX_BYTES});
 * past the cap the oldest keys are forgotten before their window ends (a repeat of one of them is
 * then stored again: docs/brokers.md says so). Expired keys leave from the front a bounded step
 * at a time on every call, so nothing is scanned whole.
 */
import type { ChannelPosition } from './store.js';

/** What the keys may hold together when no cap is given: 32 MiB (about 100 000 keys of 100 characters). */
export const DEFAULT_KEYS_MAX_BYTES = 32 * 1024 * 1024;
/** What one key costs beyond its channel's and its own characters (map entry, object, epoch string). */
const KEY_COST = 160;
/** Most expired keys dropped in one call. */
const SWEEP_STEP = 64;

interface Held extends ChannelPosition {
  /** When the key's window ends (ms). */
  readonly until: number;
  readonly bytes: number;
}

export class IdempotencyKeys {
  /** Oldest first (a key is written once, then only read), by `channel \n key`. */
  private readonly keys = new Map<string, Held>();
  private held = 0;

  constructor(private readonly maxBytes = DEFAULT_KEYS_MAX_BYTES) {}

  /** Keys held now (for tests and footprints). */
  get size(): number {
    return this.keys.size;
  }

  /** The first publish of `key` in `channel` when its window is still open at `now` (ms). */
  find(channel: string, key: string, now: number): ChannelPosition | undefined {
    this.sweep(now);
    const held = this.keys.get(`${channel}\n${key}`);
    return held && held.until > now ? { offset: held.offset, epoch: held.epoch } : undefined;
  }

  /** {@link find} without dropping expired keys: a look that must not move the holder's clock (the Kafka log's keys are timed by its records). */
  peek(channel: string, key: string, now: number): ChannelPosition | undefined {
    const held = this.keys.get(`${channel}\n${key}`);
    return held && held.until > now ? { offset: held.offset, epoch: held.epoch } : undefined;
  }

  /** Records the first publish of `key` in `channel`, remembered until `until` (ms). */
  remember(channel: string, key: string, position: ChannelPosition, until: number): void {
    const id = `${channel}\n${key}`;
    const old = this.keys.get(id);
    if (old) {
      this.keys.delete(id);
      this.held -= old.bytes;
    }
    const bytes = KEY_COST + 2 * id.length;
    this.keys.set(id, { offset: position.offset, epoch: position.epoch, until, bytes });
    this.held += bytes;
    for (const [first, entry] of this.keys) {
      if (this.held <= this.maxBytes || first === id) break;
      this.keys.delete(first);
      this.held -= entry.bytes;
    }
  }

  /** Forgets every key (the Kafka log is another one). */
  clear(): void {
    this.keys.clear();
    this.held = 0;
  }

  /** Drops expired keys from the front, at most {@link SWEEP_STEP}; a longer-lived key in front holds the others back until it goes. */
  private sweep(now: number): void {
    let n = 0;
    for (const [id, entry] of this.keys) {
      if (entry.until > now || n++ >= SWEEP_STEP) return;
      this.keys.delete(id);
      this.held -= entry.bytes;
    }
  }
}
