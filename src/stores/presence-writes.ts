/**
 * Joins and leaves a shared presence store could not write (its broker away), kept to be written
 * again once it is back: the latest per channel and client wins, so what is kept never outgrows
 * the node's own present clients. Used by the Redis and the NATS KV presence stores.
 */
import type { PresenceEntry } from './store.js';

/** Writes one client's presence in a channel: the entry, or its removal (`undefined`). */
export type PresenceWrite = (channel: string, client: string, entry: PresenceEntry | undefined) => Promise<void>;

interface Unsent {
  readonly channel: string;
  readonly client: string;
  readonly entry: PresenceEntry | undefined;
}

export class PresenceWrites {
  private readonly unsent = new Map<string, Unsent>();

  constructor(
    private readonly write: PresenceWrite,
    /** The error a failed write is answered with (`unavailable` to the client). */
    private readonly refused: (err: unknown) => Error,
  ) {}

  /** How many writes wait for the broker. */
  get pending(): number {
    return this.unsent.size;
  }

  join(channel: string, entry: PresenceEntry): Promise<void> {
    return this.send({ channel, client: entry.client, entry });
  }

  leave(channel: string, client: string): Promise<void> {
    return this.send({ channel, client, entry: undefined });
  }

  /** Writes what failed before; a write that fails again is kept unless a newer one took its place. */
  replay(): void {
    const ops = [...this.unsent.values()];
    this.unsent.clear();
    for (const op of ops) {
      this.write(op.channel, op.client, op.entry).catch(() => {
        const key = keyOf(op);
        if (!this.unsent.has(key)) this.unsent.set(key, op);
      });
    }
  }

  private async send(op: Unsent): Promise<void> {
    const key = keyOf(op);
    this.unsent.delete(key);
    try {
      await this.write(op.channel, op.client, op.entry);
    } catch (err) {
      this.unsent.set(key, op);
      throw this.refused(err);
    }
  }
}

function keyOf(op: Unsent): string {
  return `${op.channel}\n${op.client}`;
}
