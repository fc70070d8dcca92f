/**
 * Pusher-format webhooks (`--pusher-webhook`, or a `pusher-apps:` entry's `webhook`, docs/pusher.md):
 * what happens on the app's channels, told once per cluster, to that app's URL signed with its
 * secret. Occupancy and membership come from the cluster-wide occupancy store, as
 * Fanout's own `--webhook` (channels/occupancy.ts): each node writes its own counts per channel
 * (subscribers, and on presence channels each user's connections) as absolute numbers, and the
 * store answers with the 0↔1 crossings, each to exactly one node. `client_event` and `cache_miss`
 * happen on one node only: that node tells.
 *
 * Bounded as Fanout's own: the writes go through stores/occupancy-writes.ts (one in flight per
 * channel, changes meanwhile only update the next one, a failed write merged back and retried).
 */
import type { PusherAppConfig } from '../config/schema.js';
import type { Logger } from '../logger.js';
import { OccupancyWrites } from '../stores/occupancy-writes.js';
import type { OccupancyEvent, OccupancyStore } from '../stores/store.js';
import { Webhooks, type WebhookOptions } from '../webhooks/webhooks.js';
import { appChannel, internalChannel } from './channels.js';

/** One event for the sender (src/webhooks, in Pusher's format). */
export interface PusherHookEvent {
  readonly name: 'channel_occupied' | 'channel_vacated' | 'member_added' | 'member_removed' | 'client_event' | 'cache_miss';
  readonly channel: string;
  readonly user?: string | undefined;
  readonly event?: string | undefined;
  readonly data?: string | undefined;
  readonly socketId?: string | undefined;
}

export class PusherWebhooks {
  private readonly writes: OccupancyWrites;

  constructor(
    private readonly options: {
      readonly appId: string;
      readonly store: Pick<OccupancyStore, 'update'>;
      readonly emit: (event: PusherHookEvent) => void;
      readonly logger: Logger;
      readonly track: (promise: Promise<unknown>) => void;
    },
  ) {
    const { appId, store, logger, track } = options;
    this.writes = new OccupancyWrites({ store, crossed: (events) => this.crossed(events), track, logger, failed: 'pusher occupancy not recorded; retrying', storeChannel: (channel) => internalChannel(appId, channel) });
  }

  /** This node now has `subscribers` on `channel` and, on a presence channel, `user` has `connections` here. */
  counts(channel: string, subscribers: number, user?: readonly [string, number]): void {
    this.writes.write(channel, subscribers, user ? [user] : []);
  }

  clientEvent(channel: string, event: string, data: unknown, socketId: string, user: string | undefined): void {
    this.options.emit({ name: 'client_event', channel, event, data: typeof data === 'string' ? data : JSON.stringify(data ?? null), socketId, user });
  }

  cacheMiss(channel: string): void {
    this.options.emit({ name: 'cache_miss', channel });
  }

  /** Crossings the store reported (a write's, or a dead node's sweep): those of this app's channels go out. */
  crossed(events: readonly OccupancyEvent[]): void {
    for (const event of events) {
      const channel = appChannel(this.options.appId, event.channel);
      if (channel !== undefined) this.options.emit({ name: event.name, channel, user: event.user });
    }
  }

  stop(): void {
    this.writes.stop();
  }
}

/** The webhooks of every app that has one: a sender each, to its URL, signed with its secret. */
export interface PusherWebhookSet {
  /** By app id. */
  readonly byApp: ReadonlyMap<string, PusherWebhooks>;
  /** Crossings of the store (a write's or the sweep's): each app takes those of its own channels. */
  crossed(events: readonly OccupancyEvent[]): void;
  /** Events waiting in every sender. */
  depth(): number;
  close(): Promise<void>;
}

/** One sender per app with a webhook (Fanout's webhooks, in Pusher's format), all on one occupancy store. */
export function pusherWebhookSet(
  apps: readonly PusherAppConfig[],
  options: Omit<WebhookOptions, 'url' | 'secret' | 'pusher'> & { readonly store: Pick<OccupancyStore, 'update'> },
): PusherWebhookSet {
  const { store, ...common } = options;
  const senders: Webhooks[] = [];
  const byApp = new Map<string, PusherWebhooks>();
  for (const app of apps) {
    if (app.webhook === undefined) continue;
    const sender = new Webhooks({ ...common, url: app.webhook, secret: app.secret, pusher: { key: app.key } });
    senders.push(sender);
    byApp.set(app.id, new PusherWebhooks({ appId: app.id, store, emit: (event) => sender.emit(event), logger: common.logger, track: (p) => void p.catch(() => {}) }));
  }
  return {
    byApp,
    crossed: (events) => byApp.forEach((hooks) => hooks.crossed(events)),
    depth: () => senders.reduce((n, sender) => n + sender.depth, 0),
    close: async () => {
      byApp.forEach((hooks) => hooks.stop());
      await Promise.all(senders.map((sender) => sender.close()));
    },
  };
}
