/**
 * `WS /app/{key}`: the Pusher Channels protocol 7 as pusher-js 8 speaks it (docs/pusher.md), for
 * one app: subscribe with Pusher's channel auth, presence (presence.ts), cache channels, client
 * events (private and presence channels only, others only, rate-limited), sign-in.
 *
 * Delivery model: the channel layer's (channels.ts): every event is published through the channel
 * service, the store puts it on the channel's bus topic, and every node (this one included)
 * frames it once and queues it for its local subscribers but the excluded socket.
 *
 * Every piece of work a client can cause is bounded: frames are capped by --max-payload, event
 * data by --pusher-max-event-bytes, subscriptions by --max-subscriptions, client events by
 * --pusher-client-event-rate, presence channels at Pusher's 100 users.
 *
 * The protocol's one dispatcher and its local channels are kept together; presence (presence.ts),
 * signatures (sign.ts) and the unknown key (unknown-app.ts) are apart.
 */
import { randomInt } from 'node:crypto';
import type { ChannelService } from '../channels/index.js';
import { BusUnavailableError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Endpoint } from '../node/endpoint.js';
import { frameText, type Outbox } from '../node/outbox.js';
import { EnvelopeKind } from '../protocol/envelope.js';
import { decodePusher, encodePusher, encodePusherError, isCacheChannel, PUSHER_CODES, PUSHER_PING, PUSHER_PONG, SERVER_TO_USER, pusherChannelKind, type PusherClientFrame } from '../protocol/pusher.js';
import type { Client } from '../transport/client.js';
import { appChannel, eventOf, internalChannel, type PusherEvent } from './channels.js';
import { MAX_PRESENCE_USERS, parseChannelData, PusherPresence } from './presence.js';
import { signedInUser, validAuth, type PusherApp } from './sign.js';
import type { PusherWebhooks } from './webhooks.js';

/** Seconds of silence after which pusher-js sends `pusher:ping` (Pusher's own value). */
export const ACTIVITY_TIMEOUT_S = 120;

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
  /** --pusher-webhook: this node's counts for the cluster-wide occupancy, client_event, cache_miss (webhooks.ts). */
  readonly webhooks?: PusherWebhooks | undefined;
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
  /** Presence channels: this node's connections per user. */
  readonly users: Map<string, number>;
}

export class PusherEndpoint implements Endpoint {
  readonly path: string;
  readonly idlePing: Buffer | undefined;
  private readonly conns = new Map<Client, Connection>();
  private readonly bySocket = new Map<string, Connection>();
  private readonly channels = new Map<string, LocalChannel>();
  private readonly pending = new Set<Promise<unknown>>();
  private readonly presence: PusherPresence;

  constructor(private readonly context: PusherContext) {
    this.presence = new PusherPresence(context.service);
    this.path = `/app/${context.app.key}`;
    this.idlePing = context.heartbeat ? frameText(PUSHER_PING) : undefined;
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
    // Unsubscribed or closed meanwhile: a channel nobody else joined goes again.
    if (conn.channels.get(channel) !== member) return this.dropIfEmpty(local);
    local.members.set(conn.client, member);
    this.counted(local, userId, 1);
    if (kind === 'presence') return this.joinPresence(local, member, userInfo);
    this.send(conn.client, encodePusher('pusher_internal:subscription_succeeded', {}, channel));
    if (isCacheChannel(channel)) await this.replayCache(conn, local);
  }

  private async joinPresence(local: LocalChannel, member: Member, userInfo: unknown): Promise<void> {
    const { conn } = member;
    try {
      const answer = await this.presence.join(local, conn.socketId, member.userId!, userInfo, () => local.members.get(conn.client) === member);
      if (answer === undefined) return;
      if (answer === 'full') {
        this.subscriptionError(conn, local.name, 'LimitReached', `${local.name} has ${MAX_PRESENCE_USERS} users, Pusher's limit per presence channel`, 403);
        return this.release(local, conn.client);
      }
      this.send(conn.client, answer);
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
    if (member.userId !== undefined) this.track(this.presence.leave(local, conn.socketId, member.userId));
    this.release(local, conn.client);
  }

  private signin(conn: Connection, frame: Extract<PusherClientFrame, { event: 'pusher:signin' }>): void {
    const user = signedInUser(this.context.app, conn.socketId, frame.auth, frame.userData);
    if (user === 'bad_signature') return this.send(conn.client, encodePusherError(PUSHER_CODES.UNAUTHORIZED, 'Invalid signature for pusher:signin'));
    if (user === 'no_id') return this.send(conn.client, encodePusherError(null, 'user_data needs a string id'));
    conn.user = user.id;
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
    await this.context.service.link.subscribe(this.localOf(channel).topic).catch(() => {});
    // The current one: another subscriber's leave may have dropped it meanwhile (its route comes back with it).
    return this.localOf(channel);
  }

  private localOf(channel: string): LocalChannel {
    const found = this.channels.get(channel);
    if (found) return found;
    const { service } = this.context;
    const internal = internalChannel(this.context.app.id, channel);
    const local: LocalChannel = { name: channel, internal, topic: service.topic(internal), members: new Map(), users: new Map() };
    this.channels.set(channel, local);
    service.link.subscribeTopic(local.topic, (kind, body) => this.fromBus(local, kind, body), 'deliver');
    return local;
  }

  private release(local: LocalChannel, client: Client): void {
    const member = local.members.get(client);
    if (!member) return;
    local.members.delete(client);
    this.counted(local, member.userId, -1);
    this.dropIfEmpty(local);
  }

  private dropIfEmpty(local: LocalChannel): void {
    if (local.members.size > 0 || this.channels.get(local.name) !== local) return;
    this.channels.delete(local.name);
    this.context.service.link.unsubscribeTopic(local.topic);
  }

  /** A member came (1) or went (-1): this node's counts for the webhooks' cluster-wide occupancy. */
  private counted(local: LocalChannel, userId: string | undefined, delta: 1 | -1): void {
    let user: [string, number] | undefined;
    if (userId !== undefined) {
      const n = Math.max(0, (local.users.get(userId) ?? 0) + delta);
      if (n > 0) local.users.set(userId, n);
      else local.users.delete(userId);
      user = [userId, n];
    }
    this.context.webhooks?.counts(local.name, local.members.size, user);
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
      this.presence.present(local, userId).then((present) => {
        if (present || this.channels.get(local.name) !== local) return;
        this.context.outbox.broadcast(local.members.keys(), frameText(encodePusher('pusher_internal:member_removed', { user_id: userId }, local.name)));
      }),
    );
  }

  /** The presence store swept a dead node's connection from `internal` (when this endpoint started the sweep). */
  departed(internal: string, userId: string | null): void {
    const name = appChannel(this.context.app.id, internal);
    if (name === undefined || userId === null) return;
    this.track(this.presence.userLeft({ name, internal }, userId));
  }

  private frameOf = (channel: string, event: PusherEvent): string => encodePusher(event.e, event.d, channel, event.u === undefined ? undefined : { user_id: event.u });

  private subscriptionError(conn: Connection, channel: string, type: string, error: string, status: number): void {
    conn.channels.delete(channel);
    this.send(conn.client, encodePusher('pusher:subscription_error', { type, error, status }, channel));
  }

  private send = (client: Client, json: string): void => this.context.outbox.send(client, frameText(json));

  private track(promise: Promise<unknown>): void {
    this.pending.add(promise);
    promise
      .catch((err: unknown) => this.context.logger.error({ err }, 'pusher request failed'))
      .finally(() => this.pending.delete(promise));
  }
}
