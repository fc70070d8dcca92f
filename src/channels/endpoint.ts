/**
 * `/ws/v1`, the channel protocol (docs/protocol.md): subscribe with recovery, publish, history,
 * presence, as JSON text frames. Every frame is validated by decode() first; junk gets an
 * `error` frame, never a crash. Replies and broadcasts go through the node's outbox, in order.
 *
 * This file dispatches requests; joining a channel's live stream is in streams.ts, catching up
 * after a bus outage in catch-up.ts, presence in presence.ts, tokens (refresh, subscription
 * tokens) in tokens.ts.
 */
import { randomBytes } from 'node:crypto';
import { BusUnavailableError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Endpoint } from '../node/endpoint.js';
import { frameText, type Outbox } from '../node/outbox.js';
import { decode } from '../protocol/decode.js';
import { encodeAck, encodeConnected, encodeError, encodeHistory, encodePresence, encodeUnsubscribed, PING_JSON } from '../protocol/encode.js';
import {
  CHANNEL_PATH,
  type ErrorCode,
  type Json,
  type HistoryRequestFrame,
  type PresenceRequestFrame,
  type PublishFrame,
  type SubscribeFrame,
  type UnsubscribeFrame,
} from '../protocol/frames.js';
import type { Client } from '../transport/client.js';
import { OccupancySync, type ChannelOccupancy } from './occupancy.js';
import { PresenceRelay } from './presence.js';
import type { ChannelRuntime } from './runtime.js';
import type { ChannelService } from './service.js';
import { ServerSide } from './server-side.js';
import { ChannelStreams } from './streams.js';
import { presenceWithinBudget, REPLY_BUDGET_BYTES, RequestBudget } from './budget.js';
import { callerOf, cancelSubscribing, connectionHooks, subscribingOf, type ChannelHooks, type PublishAsk } from './hook-calls.js';
import { isSubscribed, subscriptionsOf, takeSubscriptions, type Subscription } from './subscriptions.js';
import { checkSubscriptionToken, refreshConnection, refreshSubscription, TokenSubscriptions, unixSeconds, type IdentityAuthority, type TokenHost } from './tokens.js';

/** What the channel endpoint uses of its node. */
export interface ChannelContext {
  readonly nodeId: string;
  readonly service: ChannelService;
  readonly outbox: Pick<Outbox, 'send' | 'broadcast' | 'reply' | 'unsentReplyBytes'>;
  readonly logger: Logger;
  /** --max-subscriptions, for the answers that name it. */
  readonly maxSubscriptions: number;
  /** --max-buffered: the bytes a connection's requests in flight and their unsent replies may hold. */
  readonly maxBuffered: number;
  /** --subscribe-hook and --publish-hook, when configured (docs/hooks.md). */
  readonly hooks?: ChannelHooks | undefined;
  /** --webhook: the cluster-wide occupancy store and where its crossings go. */
  readonly occupancy?: ChannelOccupancy | undefined;
  /** Verifies tokens sent over the socket and renews identities (`refresh`, subscription tokens); without it they are refused. */
  readonly identity?: IdentityAuthority | undefined;
  /** --heartbeat (seconds, 0: off): announced in `connected` as `ping`, with `ping` frames to idle sockets (Endpoint.idlePing). */ readonly heartbeat?: number | undefined;
}

export class ChannelEndpoint implements Endpoint, ChannelRuntime {
  readonly path = CHANNEL_PATH;
  readonly service: ChannelService;
  readonly outbox: Pick<Outbox, 'send' | 'broadcast' | 'reply' | 'unsentReplyBytes'>;
  readonly logger: Logger;
  readonly budget = new RequestBudget();
  readonly idlePing: Buffer | undefined;
  /** What the server API on users does to this node's connections (server-side subscribe, unsubscribe, listing). */
  readonly serverSide: ServerSide;
  private readonly streams: ChannelStreams;
  private readonly presence: PresenceRelay;
  private readonly occupancy: OccupancySync | undefined;
  private readonly fencePrefix: string;
  private fenceSeq = 0;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly tokens = new TokenSubscriptions((sub) => this.streams.drop(sub, 'expired'));
  private readonly tokenHost: TokenHost = { runtime: this, tokens: this.tokens, authority: () => this.context.identity };

  constructor(private readonly context: ChannelContext) {
    this.service = context.service;
    this.outbox = context.outbox;
    this.logger = context.logger;
    this.fencePrefix = `${context.nodeId}.${randomBytes(3).toString('hex')}.`;
    this.idlePing = context.heartbeat ? frameText(PING_JSON) : undefined;
    this.presence = new PresenceRelay(this);
    this.occupancy = context.occupancy ? new OccupancySync(this, context.occupancy) : undefined;
    this.streams = new ChannelStreams(this, this.presence, this.occupancy);
    this.serverSide = new ServerSide(this, this.streams, context.maxSubscriptions);
    this.presence.start();
    this.occupancy?.start();
    this.service.link.onStatus((status) => this.streams.statusChanged(status));
  }

  /** Local channels, for metrics and tests. */
  get channelCount(): number {
    return this.streams.size;
  }

  open(client: Client): void {
    this.send(client, encodeConnected({ type: 'connected', client: client.id, node: this.context.nodeId, expires: unixSeconds(client.identity.expiresAt), ping: this.context.heartbeat || undefined, session: client.session }));
  }

  message(client: Client, data: Buffer, isBinary: boolean): void {
    if (isBinary) return this.error(client, 'bad_request', 'binary frames are not part of the protocol; send JSON text');
    const decoded = decode(data);
    if (!decoded.ok) return this.error(client, decoded.code, decoded.message, decoded.id, decoded.channel);
    const frame = decoded.frame;
    switch (frame.type) {
      case 'subscribe':
        return this.subscribe(client, frame);
      case 'unsubscribe':
        return this.unsubscribe(client, frame);
      case 'publish':
        return this.admit(client, frame, data.length, () => this.publish(client, frame));
      case 'history':
        return this.admit(client, frame, this.replyBudget, () => this.history(client, frame));
      case 'presence':
        return this.admit(client, frame, this.replyBudget, () => this.presenceList(client, frame));
      case 'refresh':
        return this.answer(client, frame, frame.channel === undefined ? refreshConnection(this.tokenHost, client, frame) : refreshSubscription(this.tokenHost, client, frame, frame.channel));
    }
  }

  /** Renewed identity: what the old patterns allowed and the new do not is dropped (reason `forbidden`); hook- and token-held subscriptions stay. */
  renewed(client: Client): void {
    const subs = subscriptionsOf(client);
    for (const sub of [...subs.values()]) {
      if (sub.grant === 'patterns' && !this.service.auth.allowed(client.identity, 'subscribe', sub.channel.name)) this.streams.drop(sub, 'forbidden');
    }
  }

  ended(sub: Subscription): void {
    if (sub.grant === 'token') this.tokens.release(sub);
  }

  /** `subscribe` with a token: the token decides, not the patterns or the hook; pending as a hook's subscribe is (tokens.ts). */
  private subscribeWithToken(client: Client, frame: SubscribeFrame, token: string): void {
    const { channel, id } = frame;
    if (!this.canJoin(client, frame)) return;
    const asking = connectionHooks(client);
    asking.subscribing.add(channel);
    const handling = checkSubscriptionToken(this.context.identity, client, channel, token).then((checked) => {
      if (!asking.subscribing.delete(channel) || !client.open) return;
      if (!checked.ok) return this.error(client, checked.code, checked.message, id, channel);
      if (!this.canJoin(client, frame)) return;
      const sub = this.join(client, frame, undefined);
      if (sub) this.tokens.hold(sub, checked.expiresAt);
    });
    this.answer(client, frame, handling);
  }

  /** The most bytes one reply may take: REPLY_BUDGET_BYTES, or --max-buffered when that is smaller. */
  private get replyBudget(): number {
    return Math.min(REPLY_BUDGET_BYTES, this.context.maxBuffered);
  }

  /**
   * Runs a request whose reply may take up to `cost` bytes, if the connection has room: what its
   * requests in flight may still produce plus its replies not yet written stay within
   * --max-buffered, whatever it asks (one request is always let through). Past it the request is
   * answered `rate_limited` at once and nothing is done.
   */
  private admit(client: Client, frame: { readonly id?: number; readonly channel: string }, cost: number, run: () => Promise<void>): void {
    if (!this.hasRoom(client, cost)) return this.refuseBusy(client, frame);
    this.budget.reserve(client, cost);
    this.answer(client, frame, run().finally(() => this.budget.release(client, cost)));
  }

  /** True when `cost` more bytes of replies fit the connection's --max-buffered (or nothing is in flight). */
  private hasRoom(client: Client, cost: number): boolean {
    const busy = this.budget.inFlight(client) + this.outbox.unsentReplyBytes(client);
    return busy === 0 || busy + cost <= this.context.maxBuffered;
  }

  private refuseBusy(client: Client, frame: { readonly id?: number; readonly channel: string }): void {
    const max = this.context.maxBuffered;
    this.error(client, 'rate_limited', `too many requests in flight on this connection (their replies would pass --max-buffered, ${max} bytes); wait for the replies`, frame.id, frame.channel);
  }

  rateLimited(client: Client, data: Buffer, limit: string): void {
    const decoded = decode(data);
    const id = decoded.ok ? decoded.frame.id : decoded.id;
    this.error(client, 'rate_limited', `over ${limit}; this frame was dropped`, id);
  }

  close(client: Client): void {
    const subs = takeSubscriptions(client);
    if (!subs) return;
    for (const sub of subs.values()) this.streams.remove(sub);
  }

  async stop(): Promise<void> {
    this.tokens.stop();
    this.streams.stop();
    this.occupancy?.stop();
    // Leave events for this node's clients go out before the bus closes (presence.close sweeps them).
    await this.service.close();
    await Promise.allSettled([...this.pending]);
  }

  /** Redis declared this node dead (it was cut off): its present clients join again. */
  rejoinPresence(): void {
    this.presence.rejoin(this.streams.values());
    this.occupancy?.resync(this.streams.values());
  }

  // ---------------------------------------------------------------- requests

  /**
   * A subscribe the identity's patterns allow joins at once. Otherwise, with --subscribe-hook,
   * the back end decides (its `data` goes into the `subscribed` frame); the channel counts as a
   * subscription while the hook is asked, and an unsubscribe meanwhile cancels it.
   */
  private subscribe(client: Client, frame: SubscribeFrame): void {
    const { channel, id } = frame;
    if (frame.token !== undefined) return this.subscribeWithToken(client, frame, frame.token);
    const allowed = this.service.auth.allowed(client.identity, 'subscribe', channel);
    const url = this.service.channelOptions(channel).subscribeHook;
    const hook = url === false ? undefined : this.context.hooks?.subscribe;
    if (!allowed && !hook) return this.error(client, 'forbidden', `not allowed to subscribe to ${channel}`, id, channel);
    if (!this.canJoin(client, frame)) return;
    if (allowed || !hook) return void this.join(client, frame, undefined);
    const asking = connectionHooks(client);
    asking.subscribing.add(channel);
    const handling = asking
      .call(client, (on) => hook(callerOf(client), channel, url as string, on))
      .then((verdict) => {
        // Unsubscribed (or closed) while the back end was asked: nothing more to say.
        if (!asking.subscribing.delete(channel) || !client.open) return;
        if (verdict.kind === 'forbid') return this.error(client, 'forbidden', verdict.reason ?? `not allowed to subscribe to ${channel}`, id, channel);
        if (verdict.kind === 'limited') return this.error(client, 'rate_limited', verdict.reason, id, channel);
        if (verdict.kind !== 'allow') return this.error(client, 'unavailable', `cannot subscribe now: ${verdict.reason}; retry`, id, channel);
        if (!this.canJoin(client, frame)) return;
        const sub = this.join(client, frame, verdict.data);
        if (sub) sub.grant = 'hook';
      });
    this.answer(client, frame, handling);
  }

  /** The checks of a subscribe besides its rights; false when it was answered with an error. */
  private canJoin(client: Client, frame: SubscribeFrame): boolean {
    const { channel, id } = frame;
    const subs = subscriptionsOf(client);
    const asking = subscribingOf(client);
    if (subs.has(channel) || asking.has(channel)) {
      this.error(client, 'bad_request', `already subscribed to ${channel}`, id, channel);
      return false;
    }
    const max = this.context.maxSubscriptions;
    if (subs.size + asking.size >= max) {
      this.error(client, 'bad_request', `at most ${max} subscriptions per connection (--max-subscriptions)`, id, channel);
      return false;
    }
    return true;
  }

  /** Starts the subscription; undefined when it was refused (`rate_limited`: no room for its recovery). */
  private join(client: Client, frame: SubscribeFrame, data: { readonly value: Json } | undefined): Subscription | undefined {
    // A recovery is a reply like a history page: it reserves room until its messages are queued.
    const reserve = frame.since ? this.replyBudget : 0;
    if (reserve > 0 && !this.hasRoom(client, reserve)) return void this.refuseBusy(client, frame);
    return this.streams.join(client, frame, reserve, data);
  }

  /** History and presence: what the patterns allow, and channels the connection is subscribed to (the subscribe hook may have allowed them). */
  private mayRead(client: Client, channel: string): boolean {
    return this.service.auth.allowed(client.identity, 'subscribe', channel) || isSubscribed(client, channel);
  }

  private unsubscribe(client: Client, frame: UnsubscribeFrame): void {
    const { channel, id } = frame;
    const subs = subscriptionsOf(client);
    const sub = subs.get(channel);
    // A subscribe still waiting on the back end is cancelled: its answer will be dropped.
    if (!sub && cancelSubscribing(client, channel)) return this.send(client, encodeUnsubscribed({ type: 'unsubscribed', channel, id }));
    if (!sub) return this.error(client, 'not_found', `not subscribed to ${channel}`, id, channel);
    subs.delete(channel);
    this.streams.remove(sub);
    this.send(client, encodeUnsubscribed({ type: 'unsubscribed', channel, id }));
  }

  private async publish(client: Client, frame: PublishFrame): Promise<void> {
    const { channel, id } = frame;
    const options = this.service.channelOptions(channel);
    if (!options.clientPublish) {
      return this.error(client, 'forbidden', `not allowed to publish to ${channel}: only the back end publishes there (client-publish: false)`, id, channel);
    }
    if (!this.service.auth.allowed(client.identity, 'publish', channel)) {
      return this.error(client, 'forbidden', `not allowed to publish to ${channel}`, id, channel);
    }
    const url = options.publishHook;
    const hook = this.context.hooks?.publish;
    if (hook && url !== false) return this.publishAsking(client, frame, (caller, ch, data, on) => hook(caller, ch, data, url, on));
    try {
      const { offset, duplicate } = await this.service.publish(channel, JSON.stringify(frame.data), undefined, frame.idempotency_key);
      this.send(client, encodeAck({ type: 'ack', id, offset, ...(duplicate ? { duplicate } : {}) }));
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) throw err;
      this.error(client, 'unavailable', `not published: ${err.clientMessage}`, id, channel);
    }
  }

  /**
   * --publish-hook: every publish the patterns allow is put to the back end, which may refuse it
   * (403) or replace its data. The calls of one connection run side by side, but its publishes
   * reach the store in the order it sent them.
   */
  private async publishAsking(client: Client, frame: PublishFrame, hook: PublishAsk): Promise<void> {
    const { channel, id } = frame;
    const asking = connectionHooks(client);
    const asked = asking.call(client, (on) => hook(callerOf(client), channel, JSON.stringify(frame.data), on));
    const step = await asking.inOrder(async () => {
      const verdict = await asked;
      if (verdict.kind !== 'allow') return { verdict, stored: undefined };
      const data = verdict.data ? JSON.stringify(verdict.data.value) : JSON.stringify(frame.data);
      // Started here, awaited below: the next publish's step may start once this one is issued.
      const stored = this.service.publish(channel, data, undefined, frame.idempotency_key);
      stored.catch(() => {});
      return { verdict, stored };
    });
    const { verdict, stored } = step;
    if (verdict.kind === 'forbid') return this.error(client, 'forbidden', verdict.reason ?? `not allowed to publish to ${channel}`, id, channel);
    if (verdict.kind === 'limited') return this.error(client, 'rate_limited', verdict.reason, id, channel);
    if (verdict.kind === 'too_large') return this.error(client, 'too_large', `not published: ${verdict.reason}`, id, channel);
    if (verdict.kind === 'unavailable') return this.error(client, 'unavailable', `not published: ${verdict.reason}; retry`, id, channel);
    try {
      const { offset, duplicate } = await stored!;
      this.send(client, encodeAck({ type: 'ack', id, offset, ...(duplicate ? { duplicate } : {}) }));
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) throw err;
      this.error(client, 'unavailable', `not published: ${err.clientMessage}`, id, channel);
    }
  }

  private async history(client: Client, frame: HistoryRequestFrame): Promise<void> {
    const { channel, id } = frame;
    if (!this.mayRead(client, channel)) {
      return this.error(client, 'forbidden', `not allowed to read ${channel}`, id, channel);
    }
    try {
      const result = await this.service.history(channel, { limit: frame.limit, before: frame.before, maxBytes: this.replyBudget });
      const { epoch, offset, more } = result;
      this.reply(client, encodeHistory({ type: 'history', channel, id, epoch, offset, more: more || undefined }, result.messages));
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) throw err;
      this.error(client, 'unavailable', `history unavailable: ${err.clientMessage}`, id, channel);
    }
  }

  private async presenceList(client: Client, frame: PresenceRequestFrame): Promise<void> {
    const { channel, id } = frame;
    if (!this.mayRead(client, channel)) {
      return this.error(client, 'forbidden', `not allowed to read ${channel}`, id, channel);
    }
    if (!this.service.presenceChannels.matches(channel)) {
      return this.error(client, 'not_found', `${channel} has no presence (see --presence)`, id, channel);
    }
    try {
      const all = await this.service.presenceList(channel);
      const clients = presenceWithinBudget(all, this.replyBudget);
      this.reply(client, encodePresence({ type: 'presence', channel, id, clients, more: clients.length < all.length || undefined }));
    } catch (err) {
      if (!(err instanceof BusUnavailableError)) throw err;
      this.error(client, 'unavailable', `presence unavailable: ${err.clientMessage}`, id, channel);
    }
  }

  // ---------------------------------------------------------------- runtime (streams, catch-up, presence)

  send(client: Client, json: string): void {
    this.outbox.send(client, frameText(json));
  }

  reply(client: Client, json: string): void {
    this.outbox.reply(client, frameText(json));
  }

  error(client: Client, code: ErrorCode, message: string, id?: number, channel?: string): void {
    this.send(client, encodeError({ type: 'error', id, code, message, channel }));
  }

  token(): string {
    return this.fencePrefix + ++this.fenceSeq;
  }

  /** Keeps async work from failing unseen, and lets stop() wait for it. */
  track(promise: Promise<unknown>): void {
    this.pending.add(promise);
    promise
      .catch((err: unknown) => this.logger.error({ err }, 'channel request failed'))
      .finally(() => this.pending.delete(promise));
  }

  /** A request's handler failed unexpectedly (a bug, not an outage): the client hears `internal` instead of waiting for a reply. */
  private answer(client: Client, frame: { readonly id?: number; readonly channel?: string | undefined }, handling: Promise<void>): void {
    this.track(
      handling.catch((err: unknown) => {
        this.logger.error({ err, client: client.id, channel: frame.channel }, 'channel request failed');
        this.error(client, 'internal', 'the server failed to answer this request', frame.id, frame.channel);
      }),
    );
  }
}
