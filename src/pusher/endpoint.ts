/**
 * `WS /app/{key}`: the Pusher Channels protocol 7 as pusher-js 8 speaks it (docs/pusher.md), for
 * one app. Connection, ping/pong, subscribe/unsubscribe with Pusher's channel auth, presence
 * (member_added/removed per user, not per connection), cache channels, client events (private and
 * presence channels only, others only, rate-limited) and user sign-in.
 *
 * Delivery model: the channel layer's (channels.ts): every event is published through the channel
 * service, the store puts it on the channel's bus topic, and every node (this one included)
 * frames it once and queues it for its local subscribers but the excluded socket.
 *
 * Every piece of work a client can cause is bounded: frames are capped by --max-payload, event
 * data by --pusher-max-event-bytes, subscriptions by --max-subscriptions, client events by
 * --pusher-client-event-rate, presence lists by the presence store's list.
 */
import { randomInt } from 'node:crypto';
import type { ChannelService } from '../channels/index.js';
import { BusUnavailableError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Endpoint } from '../node/endpoint.js';
import { frameText, type Outbox } from '../node/outbox.js';
import { EnvelopeKind } from '../protocol/envelope.js';
import {
  decodePusher,
  encodePusher,
  encodePusherError,
  isCacheChannel,
  PUSHER_CODES,
  PUSHER_PING,
  PUSHER_PONG,
  SERVER_TO_USER,
  pusherChannelKind,
  type PusherClientFrame,
} from '../protocol/pusher.js';
import type { Client } from '../transport/client.js';
import { appChannel, eventOf, internalChannel, type PusherEvent } from './channels.js';
import type { PusherHooks } from './webhooks.js';
import { validAuth, type PusherApp } from './sign.js';

/** Seconds of silence after which pusher-js sends `pusher:ping` (Pusher's own value). */
export const ACTIVITY_TIMEOUT_S = 120;
/** The most bytes of `user_info` kept per presence member (the presence store's meta cap). */
const MAX_USER_INFO_BYTES = 1024;

/** What the Pusher endpoint uses of its node. */
export interface PusherContext {
  readonly app: PusherApp;
  readonly service: ChannelService;
  readonly outbox: Pick<Outbox, 'send' | 'broadcast'>;
  readonly logger: Logger;
  readonly maxSubscriptions: number;
  readonly maxEventBytes: number;
  readonly clientEventRate: number;
  /** --heartbeat (seconds, 0: off): `pusher:ping` to idle sockets. */
  readonly heartbeat: number;
  /** Closes a socket with a Pusher code (the node's own close, so metrics and logs see it). */
  readonly closeClient: (client: Client, code: number, reason: string) => void;
  /** Pusher-format webhooks (not built yet, webhooks.ts): channel_occupied/vacated, member_added/removed, client_event, cache_miss. */
  readonly webhooks?: PusherHooks | undefined;
}

/** One connection's Pusher state. */
interface Connection {
  readonly client: Client;
  readonly socketId: string;
  readonly channels: Map<string, Member>;
  /** The signed-in user (`pusher:signin`). */
  user?: string | undefined;
  /** Client events in the current one-second window. */
  window: number;
  sent: number;
}

/** A connection's membership of a channel; `userId` on presence channels. */
interface Member {
  readonly conn: Connection;
  readonly userId?: string | undefined;
}

/** A channel with subscribers on this node. */
interface LocalChannel {
  readonly name: string;
  readonly internal: string;
  readonly topic: string;
  readonly members: Map<Client, Member>;
}

export class PusherEndpoint implements Endpoint {
  readonly path: string;
  readonly idlePing: Buffer | undefined;
  private readonly conns = new Map<Client, Connection>();
  private readonly bySocket = new Map<string, Connection>();
  private readonly channels = new Map<string, LocalChannel>();
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly context: PusherContext) {
    this.path = `/app/${context.app.key}`;
    this.idlePing = context.heartbeat ? frameText(PUSHER_PING) : undefined;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  open(client: Client): void {
    let socketId: string;
    do socketId = `${randomInt(1, 2 ** 31)}.${randomInt(1, 2 ** 31)}`;
    while (this.bySocket.has(socketId));
    const conn: Connection = { client, socketId, channels: new Map(), window: 0, sent: 0 };
    this.conns.set(client, conn);
    this.bySocket.set(socketId, conn);
    this.send(client, encodePusher('pusher:connection_established', { socket_id: socketId, activity_timeout: ACTIVITY_TIMEOUT_S }));
  }

  message(client: Client, data: Buffer, isBinary: boolean): void {
    const conn = this.conns.get(client);
    if (!conn) return;
    if (isBinary) return this.send(client, encodePusherError(null, 'binary frames are not part of the Pusher protocol'));
    const decoded = decodePusher(data.toString('utf8'));
    if (!decoded.ok) return this.send(client, encodePusherError(null, decoded.message));
    const frame = decoded.frame;
    switch (frame.event) {
      case 'pusher:ping':
        return this.send(client, PUSHER_PONG);
      case 'pusher:pong':
        return;
      case 'pusher:subscribe':
        return this.track(this.subscribe(conn, frame));
      case 'pusher:unsubscribe':
        return this.unsubscribe(conn, frame.channel);
      case 'pusher:signin':
        return this.signin(conn, frame);
      default:
        return this.clientEvent(conn, frame as Extract<PusherClientFrame, { data: unknown }>);
    }
  }

  /** Over --rate-limit: Pusher has no answer of its own for it, so `pusher:error` with no code, and the frame is dropped. */
  rateLimited(client: Client, _data: Buffer, limit: string): void {
    this.send(client, encodePusherError(null, `over ${limit}; this frame was dropped`));
  }

  close(client: Client): void {
    const conn = this.conns.get(client);
    if (!conn) return;
    this.conns.delete(client);
    this.bySocket.delete(conn.socketId);
    for (const name of [...conn.channels.keys()]) this.leave(conn, name);
  }

  async stop(): Promise<void> {
    for (const local of this.channels.values()) this.context.service.link.unsubscribeTopic(local.topic);
    await Promise.allSettled([...this.pending]);
  }

  // ------------------------------------------------------------- server API (api.ts, this node's part)

  /** This node's subscribers of each channel (`prefix` filters), for `GET /apps/{id}/channels`. */
  localChannels(prefix: string): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (const local of this.channels.values()) if (local.name.startsWith(prefix)) out.push([local.name, local.members.size]);
    return out;
  }

  /** This node's subscriber count of `channel`. */
  subscribers(channel: string): number {
    return this.channels.get(channel)?.members.size ?? 0;
  }

  /** Closes this node's connections signed in as `user` with 4009; how many there were. */
  terminate(user: string): number {
    let n = 0;
    for (const conn of [...this.conns.values()]) {
      if (conn.user !== user) continue;
      n++;
      this.send(conn.client, encodePusherError(PUSHER_CODES.UNAUTHORIZED, 'connection terminated by the server'));
      this.context.closeClient(conn.client, PUSHER_CODES.UNAUTHORIZED, 'terminated by the server');
    }
    return n;
  }

  // ------------------------------------------------------------- requests

  private async subscribe(conn: Connection, frame: Extract<PusherClientFrame, { event: 'pusher:subscribe' }>): Promise<void> {
    const { channel } = frame;
    const { app, maxSubscriptions } = this.context;
    if (conn.channels.has(channel)) return;
    if (conn.channels.size >= maxSubscriptions) {
      return this.subscriptionError(conn, channel, 'LimitReached', `at most ${maxSubscriptions} subscriptions per connection (--max-subscriptions)`, 400);
    }
    const kind = pusherChannelKind(channel);
    let userId: string | undefined;
    let userInfo: unknown;
    if (channel.startsWith(SERVER_TO_USER)) {
      if (conn.user === undefined || channel !== SERVER_TO_USER + conn.user) return this.subscriptionError(conn, channel, 'AuthError', `${channel} is the channel of another user; sign in first`, 403);
    } else if (kind === 'private' || kind === 'encrypted') {
      if (!validAuth(app, frame.auth, `${conn.socketId}:${channel}`)) return this.subscriptionError(conn, channel, 'AuthError', `Invalid signature for ${channel}`, 401);
    } else if (kind === 'presence') {
      if (frame.channelData === undefined || !validAuth(app, frame.auth, `${conn.socketId}:${channel}:${frame.channelData}`)) {
        return this.subscriptionError(conn, channel, 'AuthError', `Invalid signature or channel_data for ${channel}`, 401);
      }
      const member = parseChannelData(frame.channelData);
      if (!member) return this.subscriptionError(conn, channel, 'AuthError', 'channel_data needs a user_id (string or number)', 400);
      ({ userId, userInfo } = member);
    }
    const member: Member = { conn, userId };
    conn.channels.set(channel, member);
    const local = await this.acquire(channel);
    if (conn.channels.get(channel) !== member) return; // unsubscribed or closed meanwhile
    const first = local.members.size === 0;
    local.members.set(conn.client, member);
    if (first) this.context.webhooks?.occupied(channel, true);
    if (kind === 'presence') return this.joinPresence(local, member, userInfo);
    this.send(conn.client, encodePusher('pusher_internal:subscription_succeeded', {}, channel));
    if (isCacheChannel(channel)) await this.replayCache(conn, local);
  }

  private async joinPresence(local: LocalChannel, member: Member, userInfo: unknown): Promise<void> {
    const { service } = this.context;
    const userId = member.userId!;
    const { conn } = member;
    try {
      await service.presence.join(local.internal, { client: conn.socketId, user: userId, ...(userInfo === undefined ? {} : { meta: userInfo as never }) });
      const entries = await service.presenceList(local.internal);
      if (local.members.get(conn.client) !== member) return;
      const hash: Record<string, unknown> = {};
      let mine = 0;
      for (const entry of entries) {
        if (entry.user === null) continue;
        hash[entry.user] = entry.meta ?? null;
        if (entry.user === userId) mine++;
      }
      const ids = Object.keys(hash);
      this.send(conn.client, encodePusher('pusher_internal:subscription_succeeded', { presence: { ids, hash, count: ids.length } }, local.name));
      if (mine <= 1) {
        await this.publishPresence(local, { e: 'pusher_internal:member_added', d: { user_id: userId, user_info: userInfo ?? null }, x: conn.socketId });
        this.context.webhooks?.member(local.name, userId, true);
      }
      if (isCacheChannel(local.name)) await this.replayCache(conn, local);
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) this.context.logger.debug({ err, channel: local.name }, 'presence join failed');
      this.subscriptionError(conn, local.name, 'ServiceUnavailable', 'presence is unavailable now; retry', 503);
      conn.channels.delete(local.name);
      this.release(local, conn.client);
    }
  }

  /** A cache channel's last event to the new subscriber, or `pusher:cache_miss`. */
  private async replayCache(conn: Connection, local: LocalChannel): Promise<void> {
    const result = await this.context.service.history(local.internal, { limit: 1, maxBytes: 4 * this.context.maxEventBytes + 1024 }).catch(() => undefined);
    const last = result?.messages[result.messages.length - 1];
    const event = last ? eventOf(last.data, false) : undefined;
    if (event) return this.send(conn.client, this.frameOf(local.name, event));
    this.send(conn.client, encodePusher('pusher:cache_miss', {}, local.name));
    this.context.webhooks?.cacheMiss(local.name);
  }

  private unsubscribe(conn: Connection, channel: string): void {
    if (!conn.channels.has(channel)) return;
    this.leave(conn, channel);
  }

  /** `conn` leaves `channel`: presence leave (member_removed when it was the user's last connection), and the topic goes with the last local subscriber. */
  private leave(conn: Connection, channel: string): void {
    const member = conn.channels.get(channel);
    conn.channels.delete(channel);
    const local = this.channels.get(channel);
    if (!member || !local || local.members.get(conn.client) !== member) return;
    if (member.userId !== undefined) this.track(this.leavePresence(local, conn.socketId, member.userId));
    this.release(local, conn.client);
  }

  private async leavePresence(local: LocalChannel, socketId: string, userId: string): Promise<void> {
    const { service } = this.context;
    await service.presence.leave(local.internal, socketId);
    await this.userLeft(local.name, local.internal, userId);
  }

  /** After a presence entry of `userId` went (left, or swept with a dead node): member_removed when the user has no connection left. */
  async userLeft(name: string, internal: string, userId: string): Promise<void> {
    const { service } = this.context;
    const entries = await service.presenceList(internal);
    if (entries.some((e) => e.user === userId)) return;
    await service.presenceEvent(internal, JSON.stringify({ e: 'pusher_internal:member_removed', d: { user_id: userId } } satisfies PusherEvent));
    this.context.webhooks?.member(name, userId, false);
  }

  private signin(conn: Connection, frame: Extract<PusherClientFrame, { event: 'pusher:signin' }>): void {
    if (!validAuth(this.context.app, frame.auth, `${conn.socketId}::user::${frame.userData}`)) {
      return this.send(conn.client, encodePusherError(PUSHER_CODES.UNAUTHORIZED, 'Invalid signature for pusher:signin'));
    }
    let id: unknown;
    try {
      id = (JSON.parse(frame.userData) as { id?: unknown }).id;
    } catch {
      /* answered below */
    }
    if (typeof id !== 'string' || id === '') return this.send(conn.client, encodePusherError(null, 'user_data needs a string id'));
    conn.user = id;
    this.send(conn.client, encodePusher('pusher:signin_success', { user_data: frame.userData }));
  }

  private clientEvent(conn: Connection, frame: Extract<PusherClientFrame, { data: unknown }>): void {
    const { channel, event } = frame;
    const kind = pusherChannelKind(channel);
    const { client } = conn;
    if (kind === 'public') return this.send(client, encodePusherError(null, 'Client event rejected - only supported on private and presence channels'));
    const member = conn.channels.get(channel);
    if (!member || !this.channels.get(channel)?.members.has(client)) return this.send(client, encodePusherError(null, `Client event rejected - not subscribed to ${channel}`));
    const now = Math.floor(Date.now() / 1000);
    if (conn.window !== now) {
      conn.window = now;
      conn.sent = 0;
    }
    if (++conn.sent > this.context.clientEventRate) {
      return this.send(client, encodePusherError(PUSHER_CODES.CLIENT_EVENT_RATE_LIMIT, `Client event rejected due to rate limit (${this.context.clientEventRate}/s, --pusher-client-event-rate)`));
    }
    const payload = JSON.stringify({ e: event, d: frame.data, x: conn.socketId, u: member.userId } satisfies PusherEvent);
    const max = this.context.maxEventBytes;
    if (Buffer.byteLength(JSON.stringify(frame.data ?? null)) > max) {
      return this.send(client, encodePusherError(null, `Client event rejected - data over ${max} bytes (--pusher-max-event-bytes)`));
    }
    this.track(
      this.context.service.publish(internalChannel(this.context.app.id, channel), payload).then(
        () => this.context.webhooks?.clientEvent(channel, event, frame.data, conn.socketId, member.userId),
        (err: unknown) => {
          if (!(err instanceof BusUnavailableError)) throw err;
          this.send(client, encodePusherError(null, `Client event not delivered: ${err.clientMessage}`));
        },
      ),
    );
  }

  // ------------------------------------------------------------- the local channels

  /** The local channel, its bus topic routed here and live at the broker before the subscribe is answered. */
  private async acquire(channel: string): Promise<LocalChannel> {
    let local = this.channels.get(channel);
    const { service } = this.context;
    if (!local) {
      const internal = internalChannel(this.context.app.id, channel);
      local = { name: channel, internal, topic: service.topic(internal), members: new Map() };
      this.channels.set(channel, local);
      const route = local;
      service.link.subscribeTopic(route.topic, (kind, body) => this.fromBus(route, kind, body), 'deliver');
    }
    await service.link.subscribe(local.topic).catch(() => {});
    return local;
  }

  private release(local: LocalChannel, client: Client): void {
    if (!local.members.delete(client) || local.members.size > 0) return;
    this.channels.delete(local.name);
    this.context.service.link.unsubscribeTopic(local.topic);
    this.context.webhooks?.occupied(local.name, false);
  }

  /**
   * The broadcast: what the channel's topic brings (a stored event, or a presence event), framed
   * once and queued for every local subscriber but the excluded socket.
   */
  private fromBus(local: LocalChannel, kind: number, body: Buffer): void {
    if (kind !== EnvelopeKind.CHANNEL && kind !== EnvelopeKind.PRESENCE) return;
    const event = eventOf(body, kind === EnvelopeKind.CHANNEL);
    if (!event && kind === EnvelopeKind.PRESENCE) return this.sweptLeave(local, body);
    if (!event || this.channels.get(local.name) !== local) return;
    const frame = frameText(this.frameOf(local.name, event));
    const skip = event.x === undefined ? undefined : this.bySocket.get(event.x)?.client;
    const { members } = local;
    this.context.outbox.broadcast(skip && members.has(skip) ? [...members.keys()].filter((c) => c !== skip) : members.keys(), frame);
  }

  /**
   * A `/ws/v1` `leave` frame on a Pusher channel: the channel layer's presence sweep (it runs when
   * --presence is set) reported a client of a dead node. Each node with subscribers checks whether
   * the user is gone and tells its own subscribers (member_removed is idempotent in pusher-js).
   */
  private sweptLeave(local: LocalChannel, body: Buffer): void {
    let frame: { type?: unknown; user?: unknown };
    try {
      frame = JSON.parse(body.toString('utf8')) as typeof frame;
    } catch {
      return;
    }
    if (frame.type !== 'leave' || typeof frame.user !== 'string') return;
    const userId = frame.user;
    this.track(
      this.context.service.presenceList(local.internal).then((entries) => {
        if (entries.some((e) => e.user === userId) || this.channels.get(local.name) !== local) return;
        this.context.outbox.broadcast(local.members.keys(), frameText(encodePusher('pusher_internal:member_removed', { user_id: userId }, local.name)));
      }),
    );
  }

  /** The presence store swept a dead node's connection from `internal` (when this endpoint started the sweep). */
  departed(internal: string, userId: string | null): void {
    const name = appChannel(this.context.app.id, internal);
    if (name === undefined || userId === null) return;
    this.track(this.userLeft(name, internal, userId));
  }

  private frameOf(channel: string, event: PusherEvent): string {
    return encodePusher(event.e, event.d, channel, event.u === undefined ? undefined : { user_id: event.u });
  }

  private publishPresence(local: LocalChannel, event: PusherEvent): Promise<void> {
    return this.context.service.presenceEvent(local.internal, JSON.stringify(event));
  }

  private subscriptionError(conn: Connection, channel: string, type: string, error: string, status: number): void {
    conn.channels.delete(channel);
    this.send(conn.client, encodePusher('pusher:subscription_error', { type, error, status }, channel));
  }

  private send(client: Client, json: string): void {
    this.context.outbox.send(client, frameText(json));
  }

  private track(promise: Promise<unknown>): void {
    this.pending.add(promise);
    promise
      .catch((err: unknown) => this.context.logger.error({ err }, 'pusher request failed'))
      .finally(() => this.pending.delete(promise));
  }
}

/** `channel_data` of a presence subscribe: a user_id (a number becomes its string) and optional user_info up to MAX_USER_INFO_BYTES. */
function parseChannelData(text: string): { userId: string; userInfo: unknown } | undefined {
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

/** `/app/`: any other key. Pusher's answer: `pusher:error` 4001, then the close with 4001. */
export class UnknownAppEndpoint implements Endpoint {
  readonly path = '/app/';
  readonly prefix = true;

  constructor(private readonly context: Pick<PusherContext, 'outbox' | 'closeClient'>) {}

  open(client: Client): void {
    this.context.outbox.send(client, frameText(encodePusherError(PUSHER_CODES.APP_NOT_FOUND, 'App key not in this cluster')));
    this.context.closeClient(client, PUSHER_CODES.APP_NOT_FOUND, 'App key not in this cluster');
  }

  message(): void {}

  close(): void {}
}
