/**
 * Presence of a node's subscribers: join and leave in the presence store and as events to every
 * node's subscribers of the channel, and the sweep of dead nodes' entries (the store calls back
 * with each departed client of a dead node; exactly one node publishes its `leave`).
 */
import { MAX_PRESENCE_META_BYTES, type PresenceEntry } from '../stores/store.js';
import { encodeJoinLeave } from '../protocol/encode.js';
import type { Client } from '../transport/client.js';
import type { ChannelRuntime } from './runtime.js';
import type { LocalChannel } from './subscriptions.js';

export class PresenceRelay {
  constructor(private readonly rt: ChannelRuntime) {}

  /** Heartbeats only where presence is configured (every node of a cluster shares the flags). */
  start(): void {
    if (this.rt.service.presenceChannels.empty) return;
    this.rt.service.presence.start((channel, entry) => this.event(channel, 'leave', entry));
  }

  join(channel: string, client: Client): void {
    const entry = entryOf(client);
    this.rt.track(
      this.rt.service.presence
        .join(channel, entry)
        .then(() => this.event(channel, 'join', entry))
        .catch((err: Error) => this.rt.logger.debug({ err: err.message, channel }, 'presence join not recorded')),
    );
  }

  leave(channel: string, client: Client): void {
    const entry = entryOf(client);
    this.rt.track(
      this.rt.service.presence
        .leave(channel, client.id)
        .then(() => this.event(channel, 'leave', entry))
        .catch((err: Error) => this.rt.logger.debug({ err: err.message, channel }, 'presence leave not recorded')),
    );
  }

  /** Redis declared this node dead (it was cut off): register its present clients again. */
  rejoin(channels: Iterable<LocalChannel>): void {
    for (const local of channels) {
      if (!local.presence) continue;
      for (const client of local.live) {
        const entry = entryOf(client);
        this.rt.track(
          this.rt.service.presence
            .join(local.name, entry)
            .then(() => this.event(local.name, 'join', entry))
            .catch(() => {}),
        );
      }
    }
  }

  /** A join or leave frame to the channel's subscribers on every node, unless its namespace says `join-leave: false`. */
  private event(channel: string, type: 'join' | 'leave', entry: PresenceEntry): void {
    if (!this.rt.service.channelOptions(channel).joinLeave) return;
    const frame = encodeJoinLeave({ type, channel, client: entry.client, user: entry.user, meta: entry.meta });
    this.rt.track(this.rt.service.presenceEvent(channel, frame).catch(() => {}));
  }
}

/** What presence shows of `client`: its id, user and (up to MAX_PRESENCE_META_BYTES of JSON) its connection's meta. */
function entryOf(client: Client): PresenceEntry {
  const entry = { client: client.id, user: client.identity.user ?? null };
  const meta = client.identity.meta;
  if (meta === undefined || Buffer.byteLength(JSON.stringify(meta)) > MAX_PRESENCE_META_BYTES) return entry;
  return { ...entry, meta };
}
