/**
 * Presence on Pusher channels (docs/pusher.md): members are the presence store's entries (one per
 * connection: its socket_id, its user_id, its user_info), shown per user. `member_added` goes out
 * when a user's first connection joins, `member_removed` when its last one left, both as
 * presence-kind messages on the channel's topic, so every node's subscribers hear them.
 */
import type { ChannelService } from '../channels/index.js';
import type { Json } from '../protocol/frames.js';
import { encodePusher } from '../protocol/pusher.js';
import type { PusherEvent } from './channels.js';

/** The most bytes of `user_info` kept per member (the presence store's meta cap). */
export const MAX_USER_INFO_BYTES = 1024;
/** Pusher's limit of users per presence channel: what one subscribe answer lists at most. */
export const MAX_PRESENCE_USERS = 100;

/** A presence channel as this part sees it. */
export interface PresenceChannel {
  readonly name: string;
  readonly internal: string;
}

export class PusherPresence {
  constructor(private readonly service: Pick<ChannelService, 'presence' | 'presenceList' | 'presenceEvent'>) {}

  /**
   * Records the connection's entry, then answers with the subscribe's JSON (`ids`, `hash`,
   * `count`) and tells the others when this is the user's first connection. `stillThere` says
   * whether the subscriber is still waiting (it may have left meanwhile). `full`: a new user past
   * {@link MAX_PRESENCE_USERS}, whose entry was taken back. Rejects when the store cannot.
   */
  async join(channel: PresenceChannel, socketId: string, userId: string, userInfo: unknown, stillThere: () => boolean): Promise<string | 'full' | undefined> {
    const meta = userInfo === undefined ? {} : { meta: userInfo as Json };
    await this.service.presence.join(channel.internal, { client: socketId, user: userId, ...meta });
    const entries = await this.service.presenceList(channel.internal);
    if (!stillThere()) return undefined;
    const hash: Record<string, unknown> = {};
    let mine = 0;
    for (const entry of entries) {
      if (entry.user === null) continue;
      hash[entry.user] = entry.meta ?? null;
      if (entry.user === userId) mine++;
    }
    const ids = Object.keys(hash);
    if (ids.length > MAX_PRESENCE_USERS && mine <= 1) {
      await this.service.presence.leave(channel.internal, socketId);
      return 'full';
    }
    if (mine <= 1) await this.publish(channel, { e: 'pusher_internal:member_added', d: { user_id: userId, user_info: userInfo ?? null }, x: socketId });
    return encodePusher('pusher_internal:subscription_succeeded', { presence: { ids, hash, count: ids.length } }, channel.name);
  }

  /** The connection's entry goes; `member_removed` when it was the user's last. */
  async leave(channel: PresenceChannel, socketId: string, userId: string): Promise<void> {
    await this.service.presence.leave(channel.internal, socketId);
    await this.userLeft(channel, userId);
  }

  /** After an entry of `userId` went (left, or swept with a dead node): `member_removed` when the user has no connection left. */
  async userLeft(channel: PresenceChannel, userId: string): Promise<void> {
    if (await this.present(channel, userId)) return;
    await this.publish(channel, { e: 'pusher_internal:member_removed', d: { user_id: userId } });
  }

  /** True while `userId` has an entry in the channel, on any node. */
  async present(channel: PresenceChannel, userId: string): Promise<boolean> {
    return (await this.service.presenceList(channel.internal)).some((e) => e.user === userId);
  }

  private publish(channel: PresenceChannel, event: PusherEvent): Promise<void> {
    return this.service.presenceEvent(channel.internal, JSON.stringify(event));
  }
}

/** `channel_data` of a presence subscribe: a user_id (a number becomes its string) and optional user_info up to MAX_USER_INFO_BYTES. */
export function parseChannelData(text: string): { userId: string; userInfo: unknown } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const { user_id: id, user_info: info } = (typeof value === 'object' && value !== null ? value : {}) as { user_id?: unknown; user_info?: unknown };
  const userId = typeof id === 'number' && Number.isFinite(id) ? String(id) : id;
  if (typeof userId !== 'string' || userId === '' || userId.length > 128) return undefined;
  if (info !== undefined && Buffer.byteLength(JSON.stringify(info)) > MAX_USER_INFO_BYTES) return { userId, userInfo: undefined };
  return { userId, userInfo: info };
}
