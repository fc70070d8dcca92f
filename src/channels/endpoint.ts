/**
 * `/ws/v1`, the channel protocol (docs/protocol.md): subscribe with recovery, publish, history,
 * presence, as JSON text frames. Every frame is validated by decode() first; junk gets an
 * `error` frame, never a crash. Replies and broadcasts go through the node's outbox, in order.
 */
import { randomBytes } from 'node:crypto';
import { BusUnavailableError, CloseCode } from '../errors.js';
import type { PresenceEntry } from '../history/store.js';
import type { Client } from '../node/client.js';
import type { Endpoint } from '../node/endpoint.js';
import { EnvelopeKind } from '../node/envelope.js';
import type { FanoutNode } from '../node/node.js';
import { frameText } from '../node/outbox.js';
import { decode } from '../protocol/decode.js';
import {
  CHANNEL_PATH,
  type ErrorCode,
  type HistoryRequestFrame,
  type PresenceRequestFrame,
  type PublishFrame,
  type SubscribeFrame,
  type UnsubscribeFrame,
} from '../protocol/frames.js';
import { ChannelService, FENCE, messageJson, messagesJson } from './service.js';
import type { ChannelTransport } from './transport.js';
import { LocalChannel, Subscription, subscriptionsOf, type CatchUp, type JoinBatch } from './subscriptions.js';

/** How long a subscription waits for its fence to come back over the bus before it answers `unavailable`. */
export const JOIN_TIMEOUT_MS = 5000;

export class ChannelEndpoint implements Endpoint {
  readonly path = CHANNEL_PATH;
  readonly service: ChannelService;
  private readonly transport: ChannelTransport;
  private readonly channels = new Map<string, LocalChannel>();
  private readonly fencePrefix: string;
  private fenceSeq = 0;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly node: FanoutNode) {
    this.service = new ChannelService(node, () => this.rejoinPresence());
    this.transport = this.service.stores.transport;
    this.fencePrefix = `${node.id}.${randomBytes(3).toString('hex')}.`;
    // Heartbeats only where presence is configured (every node of a cluster shares the flags).
    if (!this.service.presenceChannels.empty) {
      this.service.stores.presence.start((channel, entry) => this.presenceEvent(channel, 'leave', entry));
    }
    this.transport.onStatus((status) => {
      if (status === 'disconnected') for (const local of this.channels.values()) local.stale = true;
      if (status === 'connected') {
        for (const local of this.channels.values()) {
          if (!local.stale) continue;
          local.stale = false;
          if (local.live.size > 0 && local.epoch !== undefined && !local.catchUp) this.track(this.catchUp(local));
        }
      }
    });
  }

  /** Local channels, for metrics and tests. */
  get channelCount(): number {
    return this.channels.size;
  }

  open(client: Client): void {
    this.send(client, JSON.stringify({ type: 'connected', client: client.id, node: this.node.id }));
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
        return this.track(this.publish(client, frame));
      case 'history':
        return this.track(this.history(client, frame));
      case 'presence':
        return this.track(this.presence(client, frame));
    }
  }

  rateLimited(client: Client, data: Buffer): void {
    const decoded = decode(data);
    const id = decoded.ok ? decoded.frame.id : decoded.id;
    this.error(client, 'rate_limited', `over --rate-limit (${this.node.config.rateLimit}/s); this frame was dropped`, id);
  }

  close(client: Client): void {
    const subs = client.state as Map<string, Subscription> | undefined;
    if (!subs) return;
    for (const sub of subs.values()) this.remove(sub);
    subs.clear();
  }

  async stop(): Promise<void> {
    for (const local of this.channels.values()) this.transport.unsubscribeTopic(local.topic);
    // Leave events for this node's clients go out before the bus closes (presence.close sweeps them).
    await this.service.close();
    await Promise.allSettled([...this.pending]);
  }

  // ---------------------------------------------------------------- requests

  private subscribe(client: Client, frame: SubscribeFrame): void {
    const { channel, id } = frame;
    if (!this.service.auth.allowed(client.identity, 'subscribe', channel)) {
      return this.error(client, 'forbidden', `not allowed to subscribe to ${channel}`, id, channel);
    }
    const subs = subscriptionsOf(client);
    if (subs.has(channel)) return this.error(client, 'bad_request', `already subscribed to ${channel}`, id, channel);
    if (subs.size >= this.node.config.maxSubscriptions) {
      return this.error(client, 'bad_request', `at most ${this.node.config.maxSubscriptions} subscriptions per connection (--max-subscriptions)`, id, channel);
    }
    const local = this.acquire(channel);
    const sub = new Subscription(client, local, frame);
    subs.set(channel, sub);
    local.joining.add(sub);
    local.waiting.push(sub);
    this.nextBatch(local);
  }

  /** Starts a read for the subscriptions waiting on `local`, unless one is in flight. */
  private nextBatch(local: LocalChannel): void {
    if (local.batch || local.waiting.length === 0) return;
    const batch: JoinBatch = {
      token: this.fencePrefix + ++this.fenceSeq,
      subs: local.waiting,
      result: undefined,
      fenced: false,
      timer: undefined,
      frames: new Map(),
    };
    local.waiting = [];
    local.batch = batch;
    this.track(this.readBatch(local, batch));
  }

  private async readBatch(local: LocalChannel, batch: JoinBatch): Promise<void> {
    try {
      // The topic must be live on the bus before the read, so the fence and newer messages reach us.
      if (!this.transport.connected) throw new BusUnavailableError('the bus is not connected');
      await this.transport.subscribe(local.topic);
      const recovering = batch.subs.some((sub) => sub.request.since !== undefined);
      batch.result = await this.service.stores.channels.read(local.name, {
        limit: recovering ? this.node.config.historySize : 0,
        fence: { topic: local.topic, payload: this.service.fencePayload(batch.token) },
      });
    } catch (err) {
      return this.failBatch(local, batch, `cannot subscribe now: ${(err as Error).message}`);
    }
    if (local.batch !== batch) return;
    if (batch.fenced) return this.completeBatch(local, batch);
    batch.timer = setTimeout(() => this.failBatch(local, batch, 'the bus did not confirm the subscription in time; retry'), JOIN_TIMEOUT_MS);
    batch.timer.unref();
  }

  private completeBatch(local: LocalChannel, batch: JoinBatch): void {
    clearTimeout(batch.timer);
    local.batch = undefined;
    for (const sub of batch.subs) {
      if (!local.joining.has(sub)) continue;
      sub.ready = batch;
      this.goLive(sub);
    }
    this.nextBatch(local);
  }

  private failBatch(local: LocalChannel, batch: JoinBatch, message: string): void {
    if (local.batch !== batch) return;
    clearTimeout(batch.timer);
    local.batch = undefined;
    for (const sub of batch.subs) {
      const subs = subscriptionsOf(sub.client);
      if (subs.get(local.name) !== sub || sub.live) continue;
      subs.delete(local.name);
      this.remove(sub);
      this.error(sub.client, 'unavailable', message, sub.request.id, local.name);
    }
    if (this.channels.get(local.name) === local) this.nextBatch(local);
  }

  /**
   * The read's result and the fence are both in: recovered messages, `subscribed`, what came
   * after the fence, then live. The client's slice of the batch's history: every message after
   * its `since`, when the epoch is the same and the retained history reaches back to it.
   */
  private goLive(sub: Subscription): void {
    const { client, channel: local, request } = sub;
    const batch = sub.ready!;
    const result = batch.result!;
    // While the node catches up on the channel, the subscription keeps buffering; it goes live after.
    if (local.catchUp) return;
    local.joining.delete(sub);
    if (local.epoch === undefined) local.setPosition(result.offset, result.epoch);
    let recovered: boolean | undefined;
    const since = request.since;
    if (since) {
      const first = result.messages[0];
      recovered =
        since.epoch === result.epoch &&
        (since.offset === result.offset || (since.offset < result.offset && first !== undefined && first.offset <= since.offset + 1));
      if (recovered) {
        for (const m of result.messages) {
          if (m.offset <= since.offset) continue;
          let frame = batch.frames.get(m.offset);
          if (!frame) batch.frames.set(m.offset, (frame = frameText(messageJson(local.name, m.offset, result.epoch, m.data))));
          this.node.outbox.send(client, frame);
        }
      }
    }
    this.send(
      client,
      JSON.stringify({
        type: 'subscribed',
        channel: local.name,
        ...(request.id === undefined ? {} : { id: request.id }),
        offset: result.offset,
        epoch: result.epoch,
        ...(recovered === undefined ? {} : { recovered }),
      }),
    );
    const buffer = sub.buffer!;
    for (let i = sub.fenceAt; i < buffer.length; i++) this.node.outbox.send(client, buffer[i]!);
    sub.buffer = null;
    local.live.add(client);
    if (local.presence) this.join(local.name, client);
  }

  private unsubscribe(client: Client, frame: UnsubscribeFrame): void {
    const { channel, id } = frame;
    const subs = subscriptionsOf(client);
    const sub = subs.get(channel);
    if (!sub) return this.error(client, 'not_found', `not subscribed to ${channel}`, id, channel);
    subs.delete(channel);
    this.remove(sub);
    this.send(client, JSON.stringify({ type: 'unsubscribed', channel, ...(id === undefined ? {} : { id }) }));
  }

  private async publish(client: Client, frame: PublishFrame): Promise<void> {
    const { channel, id } = frame;
    if (!this.service.auth.allowed(client.identity, 'publish', channel)) {
      return this.error(client, 'forbidden', `not allowed to publish to ${channel}`, id, channel);
    }
    try {
      const { offset } = await this.service.publish(channel, JSON.stringify(frame.data));
      this.send(client, JSON.stringify({ type: 'ack', ...(id === undefined ? {} : { id }), offset }));
    } catch (err) {
      this.error(client, 'unavailable', `not published: ${(err as Error).message}`, id, channel);
    }
  }

  private async history(client: Client, frame: HistoryRequestFrame): Promise<void> {
    const { channel, id } = frame;
    if (!this.service.auth.allowed(client.identity, 'subscribe', channel)) {
      return this.error(client, 'forbidden', `not allowed to read ${channel}`, id, channel);
    }
    try {
      const result = await this.service.history(channel, frame.limit);
      const idPart = id === undefined ? '' : `,"id":${id}`;
      this.send(
        client,
        `{"type":"history","channel":${JSON.stringify(channel)}${idPart},"epoch":${JSON.stringify(result.epoch)},"offset":${result.offset},"messages":${messagesJson(result.messages)}}`,
      );
    } catch (err) {
      this.error(client, 'unavailable', `history unavailable: ${(err as Error).message}`, id, channel);
    }
  }

  private async presence(client: Client, frame: PresenceRequestFrame): Promise<void> {
    const { channel, id } = frame;
    if (!this.service.auth.allowed(client.identity, 'subscribe', channel)) {
      return this.error(client, 'forbidden', `not allowed to read ${channel}`, id, channel);
    }
    if (!this.service.presenceChannels.matches(channel)) {
      return this.error(client, 'not_found', `${channel} has no presence (see --presence)`, id, channel);
    }
    try {
      const clients = await this.service.presenceList(channel);
      this.send(client, JSON.stringify({ type: 'presence', channel, ...(id === undefined ? {} : { id }), clients }));
    } catch (err) {
      this.error(client, 'unavailable', `presence unavailable: ${(err as Error).message}`, id, channel);
    }
  }

  // ---------------------------------------------------------------- local channels

  private acquire(name: string): LocalChannel {
    let local = this.channels.get(name);
    if (!local) {
      const created = new LocalChannel(name, this.service.topic(name), this.service.presenceChannels.matches(name));
      this.channels.set(name, created);
      this.transport.subscribeTopic(created.topic, (kind, body) => this.fromBus(created, kind, body));
      local = created;
    }
    return local;
  }

  /** Takes `sub` out of its channel (and presence); the channel's topic goes when nobody is left. */
  private remove(sub: Subscription): void {
    const local = sub.channel;
    if (sub.live) {
      local.live.delete(sub.client);
      if (local.presence) this.leave(local.name, sub.client);
    } else {
      local.joining.delete(sub);
      const waiting = local.waiting.indexOf(sub);
      if (waiting >= 0) local.waiting.splice(waiting, 1);
    }
    if (local.empty && this.channels.get(local.name) === local) {
      this.channels.delete(local.name);
      this.transport.unsubscribeTopic(local.topic);
    }
  }

  /**
   * The broadcast path: a channel's bus payload is the finished frame; frame it once and queue it
   * for every live subscriber (the outbox writes once per socket per turn). Joining subscribers
   * get it in their buffer.
   */
  private fromBus(local: LocalChannel, kind: number, body: Buffer): void {
    if (kind === EnvelopeKind.CHANNEL) {
      local.track(body);
      const frame = frameText(body);
      if (local.catchUp) local.catchUp.buffer.push(frame);
      else this.node.outbox.broadcast(local.live, frame);
      for (const sub of local.joining) sub.buffer!.push(frame);
      return;
    }
    if (kind === EnvelopeKind.PRESENCE) {
      const frame = frameText(body);
      this.node.outbox.broadcast(local.live, frame);
      for (const sub of local.joining) sub.buffer!.push(frame);
      return;
    }
    if (kind === EnvelopeKind.CONTROL && body.length > FENCE.length && body.toString('latin1', 0, FENCE.length) === FENCE) {
      const token = body.toString('latin1', FENCE.length);
      const catchUp = local.catchUp;
      if (catchUp && catchUp.token === token && catchUp.fenceAt < 0) {
        catchUp.fenceAt = catchUp.buffer.length;
        if (catchUp.result) this.caughtUp(local);
        return;
      }
      const batch = local.batch;
      if (!batch || batch.token !== token || batch.fenced) return;
      batch.fenced = true;
      for (const sub of batch.subs) if (sub.buffer) sub.fenceAt = sub.buffer.length;
      if (batch.result) this.completeBatch(local, batch);
    }
  }

  // ---------------------------------------------------------------- catching up after a bus outage

  /**
   * The bus came back: the node may have missed messages of `local` meanwhile. Hold live frames,
   * read history after the last offset delivered (with a fence), then deliver the missed
   * messages (framed once each) and the held frames. If history cannot fill the gap, the live
   * subscribers are closed with 4510 so they resubscribe with `since` and learn it themselves.
   */
  private async catchUp(local: LocalChannel): Promise<void> {
    const catchUp: CatchUp = { token: this.fencePrefix + ++this.fenceSeq, buffer: [], fenceAt: -1, result: undefined, timer: undefined };
    // From here on live frames are held; the position is taken now, before frames can move it.
    local.catchUp = catchUp;
    const since = { offset: local.offset, epoch: local.epoch! };
    try {
      await this.transport.subscribe(local.topic);
      catchUp.result = await this.service.stores.channels.read(local.name, {
        since,
        fence: { topic: local.topic, payload: this.service.fencePayload(catchUp.token) },
      });
    } catch {
      return this.abandonCatchUp(local, catchUp);
    }
    if (local.catchUp !== catchUp) return;
    if (catchUp.fenceAt >= 0) return this.caughtUp(local);
    catchUp.timer = setTimeout(() => this.abandonCatchUp(local, catchUp), JOIN_TIMEOUT_MS);
    catchUp.timer.unref();
  }

  private caughtUp(local: LocalChannel): void {
    const catchUp = local.catchUp!;
    const result = catchUp.result!;
    clearTimeout(catchUp.timer);
    local.catchUp = undefined;
    if (result.covered) {
      for (const m of result.messages) this.node.outbox.broadcast(local.live, frameText(messageJson(local.name, m.offset, result.epoch, m.data)));
      for (let i = catchUp.fenceAt; i < catchUp.buffer.length; i++) this.node.outbox.broadcast(local.live, catchUp.buffer[i]!);
      if (catchUp.fenceAt === catchUp.buffer.length) local.setPosition(result.offset, result.epoch);
    } else {
      this.node.logger.warn({ channel: local.name, clients: local.live.size }, 'messages missed during a bus outage are no longer in history; closing subscribers with 4510');
      local.setPosition(result.offset, result.epoch);
      this.resubscribeAll(local);
    }
    this.releaseDeferred(local);
  }

  private abandonCatchUp(local: LocalChannel, catchUp: CatchUp): void {
    if (local.catchUp !== catchUp) return;
    clearTimeout(catchUp.timer);
    local.catchUp = undefined;
    local.stale = true;
    this.resubscribeAll(local);
    this.releaseDeferred(local);
  }

  /** Subscriptions that were ready while the node caught up go live now. */
  private releaseDeferred(local: LocalChannel): void {
    for (const sub of [...local.joining]) if (sub.ready) this.goLive(sub);
  }

  private resubscribeAll(local: LocalChannel): void {
    for (const client of local.live) client.ws.close(CloseCode.RESUBSCRIBE, 'missed messages: resubscribe with since');
  }

  // ---------------------------------------------------------------- presence

  private join(channel: string, client: Client): void {
    const entry = { client: client.id, user: client.identity.user ?? null };
    this.track(
      this.service.stores.presence
        .join(channel, entry)
        .then(() => this.presenceEvent(channel, 'join', entry))
        .catch((err: Error) => this.node.logger.debug({ err: err.message, channel }, 'presence join not recorded')),
    );
  }

  private leave(channel: string, client: Client): void {
    const entry = { client: client.id, user: client.identity.user ?? null };
    this.track(
      this.service.stores.presence
        .leave(channel, client.id)
        .then(() => this.presenceEvent(channel, 'leave', entry))
        .catch((err: Error) => this.node.logger.debug({ err: err.message, channel }, 'presence leave not recorded')),
    );
  }

  private presenceEvent(channel: string, type: 'join' | 'leave', entry: PresenceEntry): void {
    const frame = JSON.stringify({ type, channel, client: entry.client, user: entry.user });
    this.track(this.service.presenceEvent(channel, frame).catch(() => {}));
  }

  /** Redis declared this node dead (it was cut off): register its present clients again. */
  private rejoinPresence(): void {
    for (const local of this.channels.values()) {
      if (!local.presence) continue;
      for (const client of local.live) {
        const entry = { client: client.id, user: client.identity.user ?? null };
        this.track(
          this.service.stores.presence
            .join(local.name, entry)
            .then(() => this.presenceEvent(local.name, 'join', entry))
            .catch(() => {}),
        );
      }
    }
  }

  // ---------------------------------------------------------------- plumbing

  private send(client: Client, json: string): void {
    this.node.outbox.send(client, frameText(json));
  }

  private error(client: Client, code: ErrorCode, message: string, id?: number, channel?: string): void {
    this.send(
      client,
      JSON.stringify({ type: 'error', ...(id === undefined ? {} : { id }), code, message, ...(channel === undefined ? {} : { channel }) }),
    );
  }

  /** Keeps async request handlers from failing unseen, and lets stop() wait for them. */
  private track(promise: Promise<unknown>): void {
    this.pending.add(promise);
    promise
      .catch((err: unknown) => this.node.logger.error({ err }, 'channel request failed'))
      .finally(() => this.pending.delete(promise));
  }
}

