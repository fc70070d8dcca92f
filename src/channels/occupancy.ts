/**
 * --webhook: this node's part of the cluster-wide counts (docs/hooks.md, "Webhooks"). Each
 * channel's live subscribers and, on presence channels, each user's connections are written to
 * the occupancy store as absolute numbers; the store answers which writes crossed 0↔1
 * cluster-wide, and those become webhook events (exactly one node hears each crossing).
 *
 * Bounded work: per channel one write is in flight at a time; changes meanwhile only update the
 * next write's numbers (a burst of subscribes and unsubscribes costs at most two writes, and a
 * subscriber who comes and goes while one is in flight is never seen). A write that fails (the
 * store is away) is merged back and retried every {@link RETRY_MS}; absolute numbers make
 * writing again safe.
 */
import type { OccupancyChange, OccupancyEvent, OccupancyStore } from '../stores/store.js';
import type { Client } from '../transport/client.js';
import type { ChannelRuntime } from './runtime.js';
import type { LocalChannel } from './subscriptions.js';

/** How long a failed write waits before it is sent again. */
const RETRY_MS = 1000;

/** What the channel endpoint needs for --webhook: the store, and where crossings go. */
export interface ChannelOccupancy {
  readonly store: OccupancyStore;
  emit(event: OccupancyEvent): void;
}

interface Pending {
  subscribers: number;
  readonly users: Map<string, number>;
}

export class OccupancySync {
  /** This node's connections per user per presence channel. */
  private readonly users = new Map<string, Map<string, number>>();
  private readonly dirty = new Map<string, Pending>();
  private readonly inFlight = new Set<string>();
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly rt: Pick<ChannelRuntime, 'track' | 'logger'>,
    private readonly occupancy: ChannelOccupancy,
  ) {}

  start(): void {
    this.occupancy.store.start((events) => {
      for (const event of events) this.occupancy.emit(event);
    });
  }

  /** `client` went live in (`delta` 1) or left (`delta` -1) `local`; `local.live` is already updated. */
  changed(local: LocalChannel, client: Client, delta: 1 | -1): void {
    const pending = this.pending(local.name, local.live.size);
    const user = client.identity.user;
    if (local.presence && user !== undefined) {
      let counts = this.users.get(local.name);
      if (!counts) this.users.set(local.name, (counts = new Map()));
      const n = Math.max(0, (counts.get(user) ?? 0) + delta);
      if (n > 0) counts.set(user, n);
      else counts.delete(user);
      if (counts.size === 0) this.users.delete(local.name);
      pending.users.set(user, n);
    }
    this.flush(local.name);
  }

  /** The store declared this node dead (it was cut off) and removed its counts: write them all again. */
  resync(channels: Iterable<LocalChannel>): void {
    for (const local of channels) {
      if (local.live.size === 0) continue;
      const pending = this.pending(local.name, local.live.size);
      for (const [user, n] of this.users.get(local.name) ?? []) pending.users.set(user, n);
      this.flush(local.name);
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
  }

  private pending(channel: string, subscribers: number): Pending {
    let pending = this.dirty.get(channel);
    if (!pending) this.dirty.set(channel, (pending = { subscribers, users: new Map() }));
    pending.subscribers = subscribers;
    return pending;
  }

  private flush(channel: string): void {
    if (this.inFlight.has(channel)) return;
    const pending = this.dirty.get(channel);
    if (!pending) return;
    this.dirty.delete(channel);
    this.inFlight.add(channel);
    const change: OccupancyChange = { channel, subscribers: pending.subscribers, users: [...pending.users] };
    this.rt.track(
      this.occupancy.store
        .update(change)
        .then((events) => {
          for (const event of events) this.occupancy.emit(event);
        })
        .catch((err: Error) => {
          this.rt.logger.debug({ err: err.message, channel }, 'occupancy not recorded; retrying');
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
