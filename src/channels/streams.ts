/**
 * The node's local channels and how a subscription joins a channel's live stream (the model is
 * in subscriptions.ts): acquiring a channel's topic while it has local subscribers, the broadcast
 * of what the topic brings, join batches with their read and fence, and going live.
 */
import type { BusStatus } from '../stores/bus.js';
import { TIMINGS } from '../config/defaults.js';
import { BusUnavailableError } from '../errors.js';
import { EnvelopeKind } from '../protocol/envelope.js';
import { frameText } from '../node/outbox.js';
import { encodeSubscribed, encodeUnsubscribed } from '../protocol/encode.js';
import type { Json, SubscribeFrame, UnsubscribeReason } from '../protocol/frames.js';
import { encodeMessage } from '../protocol/message-frame.js';
import type { Client } from '../transport/client.js';
import { CatchUps } from './catch-up.js';
import { unixSeconds } from './tokens.js';
import type { OccupancySync } from './occupancy.js';
import type { PresenceRelay } from './presence.js';
import type { ChannelRuntime } from './runtime.js';
import { FENCE } from './service.js';
import { inRead, LocalChannel, Subscription, subscriptionsOf, type HeldFrame, type JoinBatch } from './subscriptions.js';


export class ChannelStreams {
  private readonly channels = new Map<string, LocalChannel>();
  private readonly catchUps: CatchUps;

  constructor(
    private readonly rt: ChannelRuntime,
    private readonly presence: PresenceRelay,
    /** --webhook: this node's counts in the cluster-wide occupancy. */
    private readonly occupancy?: OccupancySync,
  ) {
    this.catchUps = new CatchUps(rt, this);
  }

  /** Local channels, for metrics and tests. */
  get size(): number {
    return this.channels.size;
  }

  /** The local channel of that name, if this node has one. */
  get(name: string): LocalChannel | undefined {
    return this.channels.get(name);
  }

  values(): IterableIterator<LocalChannel> {
    return this.channels.values();
  }

  /**
   * Starts `client`'s subscription: it buffers the channel's frames until its batch's read and
   * fence are in. `reserve` bytes of the client's request budget are held until it goes live
   * (its recovered messages are then queued replies) or ends.
   */
  join(client: Client, request: SubscribeFrame, reserve = 0, data?: { readonly value: Json }, server = false): Subscription {
    const local = this.acquire(request.channel);
    const sub = new Subscription(client, local, request);
    sub.data = data;
    sub.server = server;
    sub.reserved = reserve;
    this.rt.budget.reserve(client, reserve);
    subscriptionsOf(client).set(request.channel, sub);
    local.joining.add(sub);
    local.waiting.push(sub);
    this.nextBatch(local);
    return sub;
  }

  /** Ends `sub` on the server's own account (its client did not unsubscribe): the client hears `unsubscribed` with the reason. */
  drop(sub: Subscription, reason: UnsubscribeReason): void {
    const channel = sub.channel.name;
    const subs = subscriptionsOf(sub.client);
    if (subs.get(channel) !== sub) return;
    subs.delete(channel);
    this.remove(sub);
    if (sub.client.open) this.rt.send(sub.client, encodeUnsubscribed({ type: 'unsubscribed', channel, reason }));
  }

  /** Takes `sub` out of its channel (and presence); the channel's topic goes when nobody is left. */
  remove(sub: Subscription): void {
    this.release(sub);
    this.rt.ended(sub);
    const local = sub.channel;
    if (sub.live) {
      local.live.delete(sub.client);
      local.delta?.remove(sub.client);
      if (local.presence) this.presence.leave(local.name, sub.client);
      this.occupancy?.changed(local, sub.client, -1);
    } else {
      local.joining.delete(sub);
      const waiting = local.waiting.indexOf(sub);
      if (waiting >= 0) local.waiting.splice(waiting, 1);
    }
    if (local.empty && this.channels.get(local.name) === local) {
      this.channels.delete(local.name);
      this.rt.service.link.unsubscribeTopic(local.topic);
    }
  }

  /** The channel route's status: after an outage, every channel with live subscribers catches up. */
  statusChanged(status: BusStatus): void {
    // Whatever the bus carried meanwhile may be missing: no delta against a message from before.
    // Its live frames are held from now on, until the catch-up (catch-up.ts `hold`).
    if (status === 'disconnected') for (const local of this.channels.values()) {
      local.stale = true;
      local.delta?.gap();
      this.catchUps.hold(local);
    }
    if (status !== 'connected') return;
    for (const local of this.channels.values()) {
      if (!local.stale) continue;
      local.stale = false;
      // A held channel catches up even if its live subscribers left meanwhile: subscriptions that joined wait for it.
      const held = local.catchUp !== undefined && !local.catchUp.started;
      if (held || (local.live.size > 0 && local.epoch !== undefined && !local.catchUp)) this.rt.track(this.catchUps.start(local));
    }
  }

  /** The node is stopping: release every channel's topic. */
  stop(): void {
    for (const local of this.channels.values()) this.rt.service.link.unsubscribeTopic(local.topic);
  }

  private acquire(name: string): LocalChannel {
    let local = this.channels.get(name);
    if (!local) {
      const created = new LocalChannel(name, this.rt.service.topic(name), this.rt.service.channelOptions(name));
      this.channels.set(name, created);
      this.rt.service.link.subscribeTopic(created.topic, (kind, body) => this.fromBus(created, kind, body), 'deliver');
      local = created;
    }
    return local;
  }

  /**
   * The broadcast path: a channel's bus payload is the finished frame; frame it once and queue it
   * for every live subscriber (the outbox writes once per socket per flush). Joining subscribers
   * get it in their buffer, with its offset.
   */
  private fromBus(local: LocalChannel, kind: number, body: Buffer): void {
    if (kind === EnvelopeKind.CHANNEL) {
      const epoch = local.epoch;
      const scanned = local.track(body);
      let frame: Buffer | undefined;
      const whole = (): Buffer => (frame ??= frameText(body));
      let held: HeldFrame | undefined;
      const offset = scanned ? local.offset : undefined;
      const hold = (): HeldFrame => (held ??= { frame: whole(), offset, epoch: scanned ? local.epoch : undefined });
      const delta = local.delta;
      if (local.catchUp) this.catchUps.held(local, hold());
      else if (delta?.active) delta.broadcast(this.rt.outbox, local.live, body, local.scanned, scanned && epoch === local.epoch, whole);
      else this.rt.outbox.broadcast(local.live, whole());
      for (const sub of local.joining) sub.buffer!.push(hold());
      return;
    }
    if (kind === EnvelopeKind.PRESENCE) {
      const frame = frameText(body);
      this.rt.outbox.broadcast(local.live, frame);
      if (local.joining.size > 0) {
        const held: HeldFrame = { frame };
        for (const sub of local.joining) sub.buffer!.push(held);
      }
      return;
    }
    if (kind === EnvelopeKind.CONTROL && body.length > FENCE.length && body.toString('latin1', 0, FENCE.length) === FENCE) {
      const token = body.toString('latin1', FENCE.length);
      if (this.catchUps.fenced(local, token)) return;
      const batch = local.batch;
      if (!batch || batch.token !== token || batch.fenced) return;
      batch.fenced = true;
      for (const sub of batch.subs) if (sub.buffer) sub.fenceAt = sub.buffer.length;
      if (batch.result) this.completeBatch(local, batch);
    }
  }

  // ---------------------------------------------------------------- join batches

  /** Starts a read for the subscriptions waiting on `local`, unless one is in flight. */
  private nextBatch(local: LocalChannel): void {
    if (local.batch || local.waiting.length === 0) return;
    const batch: JoinBatch = {
      token: this.rt.token(),
      subs: local.waiting,
      result: undefined,
      fenced: false,
      timer: undefined,
      frames: new Map(),
    };
    local.waiting = [];
    local.batch = batch;
    this.rt.track(this.readBatch(local, batch));
  }

  private async readBatch(local: LocalChannel, batch: JoinBatch): Promise<void> {
    const { service } = this.rt;
    try {
      // The topic must be live on the bus before the read, so the fence and newer messages reach us.
      if (!service.link.connected) throw new BusUnavailableError('the bus is not connected');
      await service.link.subscribe(local.topic);
      // With `recovery: false` a `since` is answered recovered:false: no history is read for it.
      const recovering = local.options.recovery && batch.subs.some((sub) => sub.request.since !== undefined);
      // A last-value channel reads its latest message too, in the same read as the fence: the
      // subscribers' `latest` and what comes after the fence are one sequence.
      batch.result = await service.read(local.name, {
        limit: Math.max(recovering ? local.options.historySize : 0, local.options.cache ? 1 : 0),
        fence: service.fence(local.name, batch.token),
      });
    } catch (err) {
      // A broker's or store's own text stays in the logs; the client hears Fanout's sentence.
      return this.failBatch(local, batch, `cannot subscribe now: ${err instanceof BusUnavailableError ? err.clientMessage : 'the message broker did not answer'}`);
    }
    if (local.batch !== batch) return;
    if (batch.fenced) return this.completeBatch(local, batch);
    batch.timer = setTimeout(() => this.failBatch(local, batch, 'the bus did not confirm the subscription in time; retry'), TIMINGS.joinTimeoutMs);
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
      this.rt.error(sub.client, 'unavailable', message, sub.request.id, local.name);
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
      // What the channel serves for recovery: at most its own history size (a last-value
      // channel's read holds its latest message even with history-size 0).
      const size = local.options.historySize;
      const held = result.messages.length > size ? result.messages.slice(result.messages.length - size) : result.messages;
      const first = held[0];
      const complete =
        held.length < result.messages.length
          ? result.messages[result.messages.length - held.length - 1]!.offset
          : (result.completeAfter ?? (first !== undefined ? first.offset - 1 : result.offset));
      recovered = local.options.recovery && since.epoch === result.epoch && since.offset <= result.offset && since.offset >= complete;
      if (recovered) {
        for (const m of held) {
          if (m.offset <= since.offset) continue;
          let frame = batch.frames.get(m.offset);
          if (!frame) batch.frames.set(m.offset, (frame = frameText(encodeMessage(local.name, m.offset, result.epoch, m.data))));
          this.rt.outbox.reply(client, frame);
        }
      }
    }
    const data = sub.data?.value;
    const delta = request.delta === true && local.delta !== undefined ? true : undefined;
    // A last-value channel's latest message (the newest of the read, which read the latest page),
    // unless the subscription recovered (it then has it, or had it). Its offset is the reply's, or
    // below it on a log store whose positions are shared by channels (Kafka partitions).
    const latest = local.options.cache && recovered !== true ? result.messages.at(-1) : undefined;
    this.rt.send(client, encodeSubscribed({ type: 'subscribed', channel: local.name, id: request.id, offset: result.offset, epoch: result.epoch, recovered, data, server: sub.server || undefined, expires: unixSeconds(sub.expiresAt), delta }, latest));
    // What came after the fence, but for the messages the read already returned (store.ts, `fence`).
    const buffer = sub.buffer!;
    for (let i = sub.fenceAt; i < buffer.length; i++) if (!inRead(buffer[i]!, result)) this.rt.outbox.send(client, buffer[i]!.frame);
    sub.buffer = null;
    // The batch (its read and recovered frames, shared by its subscribers) and the hook's data are
    // done with: a live subscription that kept them would hold a history's worth of messages for as
    // long as it lives.
    sub.ready = undefined;
    sub.data = undefined;
    this.release(sub);
    local.live.add(client);
    // Its recovered and buffered messages were whole: its first live one is too (delta.ts).
    if (delta) local.delta!.add(client);
    if (local.presence) this.presence.join(local.name, client);
    this.occupancy?.changed(local, client, 1);
  }

  /** Subscriptions that were ready while the node caught up go live now. */
  releaseDeferred(local: LocalChannel): void {
    for (const sub of [...local.joining]) if (sub.ready) this.goLive(sub);
  }

  /** Gives back what a subscription reserved of its client's request budget (once). */
  private release(sub: Subscription): void {
    this.rt.budget.release(sub.client, sub.reserved);
    sub.reserved = 0;
  }
}
