/**
 * A node's counts written to the cluster-wide occupancy store, one write in flight per channel:
 * Fanout's `--webhook` (channels/occupancy.ts) and the Pusher webhooks (pusher/webhooks.ts) both
 * write through it. Each channel's subscribers on this node and, on presence channels, each user's
 * connections here are written as absolute numbers, so writing again is always safe.
 *
 * Bounded work: changes while a channel's write is in flight only update its next write's numbers
 * (a burst of subscribes and unsubscribes costs at most two writes, and a subscriber who comes and
 * goes meanwhile is never seen). A write that fails (the store is away) is merged back under newer
 * numbers and retried every {@link RETRY_MS}.
 */
import type { Logger } from '../logger.js';
import type { OccupancyChange, OccupancyEvent, OccupancyStore } from './store.js';

/** How long a failed write waits before it is sent again. */
const RETRY_MS = 1000;

interface Pending {
  subscribers: number;
  readonly users: Map<string, number>;
}

export interface OccupancyWritesOptions {
  readonly store: Pick<OccupancyStore, 'update'>;
  /** The crossings (0↔1, cluster-wide) a write made: this node is the one that tells them. */
  readonly crossed: (events: readonly OccupancyEvent[]) => void;
  readonly track: (promise: Promise<unknown>) => void;
  readonly logger: Logger;
  /** The debug line of a failed write (it is retried). */
  readonly failed: string;
  /** The store's name of a channel (the Pusher apps' channels are kept apart by app). */
  readonly storeChannel?: (channel: string) => string;
}

export class OccupancyWrites {
  private readonly dirty = new Map<string, Pending>();
  private readonly inFlight = new Set<string>();
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly options: OccupancyWritesOptions) {}

  /** This node now has `subscribers` on `channel`, and these users (on a presence channel) these connections each. */
  write(channel: string, subscribers: number, users: Iterable<readonly [string, number]> = []): void {
    let pending = this.dirty.get(channel);
    if (!pending) this.dirty.set(channel, (pending = { subscribers, users: new Map() }));
    pending.subscribers = subscribers;
    for (const [user, n] of users) pending.users.set(user, n);
    this.flush(channel);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  private flush(channel: string): void {
    if (this.inFlight.has(channel)) return;
    const pending = this.dirty.get(channel);
    if (!pending) return;
    this.dirty.delete(channel);
    this.inFlight.add(channel);
    const { store, crossed, track, logger, failed, storeChannel } = this.options;
    const change: OccupancyChange = { channel: storeChannel ? storeChannel(channel) : channel, subscribers: pending.subscribers, users: [...pending.users] };
    track(
      store
        .update(change)
        .then(crossed)
        .catch((err: Error) => {
          logger.debug({ err: err.message, channel }, failed);
          // Newer numbers win over the failed write's.
          const newer = this.dirty.get(channel);
          if (!newer) this.dirty.set(channel, pending);
          else for (const [user, n] of pending.users) if (!newer.users.has(user)) newer.users.set(user, n);
          this.scheduleRetry();
        })
        .finally(() => {
          this.inFlight.delete(channel);
          if (!this.retry) this.flush(channel);
        }),
    );
  }

  private scheduleRetry(): void {
    if (this.retry || this.stopped) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      for (const channel of [...this.dirty.keys()]) this.flush(channel);
    }, RETRY_MS);
    this.retry.unref();
  }
}
