/**
 * What the server API on users (docs/auth.md, "Server API on users") does to this node's
 * connections in `/ws/v1`: subscribe one to a channel it did not ask for (`subscribed` with
 * `"server":true`), take one out of a channel (`unsubscribed` with `"reason":"server"`), list a
 * connection's channels, and count this node's subscribers per channel. The HTTP API reaches it
 * through cluster calls (node/cluster-calls.ts), one per node, and sums the nodes' answers.
 *
 * A server-side subscription skips the identity's patterns and the subscribe hook (the back end
 * asked for it) but not --max-subscriptions: a connection at its limit is left out, as is one
 * already subscribed (or being asked about) to the channel.
 */
import { encodeUnsubscribed } from '../protocol/encode.js';
import type { Client } from '../transport/client.js';
import { cancelSubscribing, subscribingOf } from './hook-calls.js';
import type { ChannelRuntime } from './runtime.js';
import type { ChannelStreams } from './streams.js';
import { subscribedChannels, subscriptionsOf } from './subscriptions.js';

/** A page of this node's channels: names after the cursor, in order, with their local live subscribers. */
export interface LocalChannelPage {
  readonly channels: ReadonlyArray<readonly [channel: string, subscribers: number]>;
  /** True when this node has more channels after the page. */
  readonly more: boolean;
}

export class ServerSide {
  constructor(
    private readonly rt: Pick<ChannelRuntime, 'send'>,
    private readonly streams: ChannelStreams,
    private readonly maxSubscriptions: number,
  ) {}

  /** Subscribes `client` to `channel` for the server; false when it already is or is at --max-subscriptions. */
  subscribe(client: Client, channel: string): boolean {
    if (!client.open) return false;
    const subs = subscriptionsOf(client);
    const asking = subscribingOf(client);
    if (subs.has(channel) || asking.has(channel)) return false;
    if (subs.size + asking.size >= this.maxSubscriptions) return false;
    this.streams.join(client, { type: 'subscribe', channel }, 0, undefined, true);
    return true;
  }

  /** Takes `client` out of `channel` (also a subscribe waiting on the back end); false when it was not in. */
  unsubscribe(client: Client, channel: string): boolean {
    const subs = subscriptionsOf(client);
    const sub = subs.get(channel);
    if (!sub) {
      if (!cancelSubscribing(client, channel)) return false;
    } else {
      subs.delete(channel);
      this.streams.remove(sub);
    }
    this.rt.send(client, encodeUnsubscribed({ type: 'unsubscribed', channel, reason: 'server' }));
    return true;
  }

  /** The channels `client` is subscribed to (live or joining), in no order. */
  channelsOf(client: Client): string[] {
    return subscribedChannels(client);
  }

  /** This node's live subscribers of `channel`. */
  subscribers(channel: string): number {
    return this.streams.get(channel)?.live.size ?? 0;
  }

  /** This node's channels with live subscribers whose name starts with `prefix` and sorts after `after`, at most `limit`. */
  channels(prefix: string, after: string, limit: number): LocalChannelPage {
    const names: string[] = [];
    for (const local of this.streams.values()) {
      if (local.live.size > 0 && local.name.startsWith(prefix) && local.name > after) names.push(local.name);
    }
    names.sort();
    const page = names.slice(0, limit);
    return { channels: page.map((name) => [name, this.streams.get(name)!.live.size] as const), more: names.length > limit };
  }
}
