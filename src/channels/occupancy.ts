/**
 * --webhook: this node's part of the cluster-wide counts (docs/hooks.md, "Webhooks"). Each
 * channel's live subscribers and, on presence channels, each user's connections are written to
 * the occupancy store as absolute numbers (stores/occupancy-writes.ts: one write in flight per
 * channel, failed ones merged back and retried); the store answers which writes crossed 0↔1
 * cluster-wide, and those become webhook events (exactly one node hears each crossing).
 */
import { OccupancyWrites } from '../stores/occupancy-writes.js';
import type { OccupancyEvent, OccupancyStore } from '../stores/store.js';
import type { Client } from '../transport/client.js';
import type { ChannelRuntime } from './runtime.js';
import type { LocalChannel } from './subscriptions.js';

/** What the channel endpoint needs for --webhook: the store, and where crossings go. */
export interface ChannelOccupancy {
  readonly store: OccupancyStore;
  emit(event: OccupancyEvent): void;
}

export class OccupancySync {
  /** This node's connections per user per presence channel. */
  private readonly users = new Map<string, Map<string, number>>();
  private readonly writes: OccupancyWrites;

  constructor(
    rt: Pick<ChannelRuntime, 'track' | 'logger'>,
    private readonly occupancy: ChannelOccupancy,
  ) {
    const crossed = (events: readonly OccupancyEvent[]): void => {
      for (const event of events) occupancy.emit(event);
    };
    this.writes = new OccupancyWrites({ store: occupancy.store, crossed, track: (p) => rt.track(p), logger: rt.logger, failed: 'occupancy not recorded; retrying' });
  }

  start(): void {
    this.occupancy.store.start((events) => {
      for (const event of events) this.occupancy.emit(event);
    });
  }

  /** `client` went live in (`delta` 1) or left (`delta` -1) `local`; `local.live` is already updated. */
  changed(local: LocalChannel, client: Client, delta: 1 | -1): void {
    const user = client.identity.user;
    if (!local.presence || user === undefined) return this.writes.write(local.name, local.live.size);
    let counts = this.users.get(local.name);
    if (!counts) this.users.set(local.name, (counts = new Map()));
    const n = Math.max(0, (counts.get(user) ?? 0) + delta);
    if (n > 0) counts.set(user, n);
    else counts.delete(user);
    if (counts.size === 0) this.users.delete(local.name);
    this.writes.write(local.name, local.live.size, [[user, n]]);
  }

  /** The store declared this node dead (it was cut off) and removed its counts: write them all again. */
  resync(channels: Iterable<LocalChannel>): void {
    for (const local of channels) {
      if (local.live.size > 0) this.writes.write(local.name, local.live.size, this.users.get(local.name) ?? []);
    }
  }

  stop(): void {
    this.writes.stop();
  }
}
