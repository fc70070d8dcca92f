/**
 * One channel subscription: its cursor (what the app has seen), its state and its events. The
 * client drives it; the app listens to it and may publish, read history or presence through it.
 */
import type { HistoryEntry, Json, MessageFrame, PresenceClient, StreamPosition, SubscribedFrame } from '../src/protocol/frames.js';
import { ChannelCursor, type SubscribeOutcome } from './cursor.js';
import { Emitter, type Unlisten } from './emitter.js';
import type { FanoutClientError } from './errors.js';

/** Which page of history to read: the latest `limit` messages older than offset `before`. */
export interface HistoryPage {
  readonly limit?: number;
  /** The first offset of the page read before: the next page back. */
  readonly before?: number;
}

/** A page of history, oldest first; `more` when older messages remain (read them with `before: messages[0].offset`). */
export interface HistoryResult {
  readonly epoch: string;
  readonly messages: readonly HistoryEntry[];
  readonly more: boolean;
}


export type SubscriptionState =
  /** Waiting for the server's confirmation (first time, or again after a reconnect). */
  | 'subscribing'
  /** Confirmed: messages flow. */
  | 'subscribed'
  /** The app unsubscribed. Final. */
  | 'unsubscribed'
  /** The server refused it for good (forbidden, not_found, bad_request). Final. */
  | 'failed';

/** Where a message sits in its channel. */
export interface MessageContext {
  readonly channel: string;
  readonly offset: number;
}

/** A confirmation from the server. */
export interface SubscribedInfo {
  readonly channel: string;
  /** The channel's latest offset when the subscription started. */
  readonly offset: number;
  readonly epoch: string;
  /** `fresh` (first time), `recovered` (nothing was lost while away) or `unrecovered` (reload state). */
  readonly outcome: SubscribeOutcome;
  /** True for a confirmation after a reconnect. */
  readonly resubscribed: boolean;
  /** What the back end's subscribe hook gave for this subscription (docs/hooks.md), if anything. */
  readonly data?: Json;
}

export interface SubscriptionEvents {
  /** A message the app has not seen before, in offset order. */
  message: (data: Json, context: MessageContext) => void;
  /** Every confirmation: the first one, and one after every reconnect. */
  subscribed: (info: SubscribedInfo) => void;
  /**
   * Messages may have been missed and could not be replayed: reload the channel's state (e.g. with
   * `history()`). After a resubscription the server could not recover, or when a message shows the
   * channel's epoch changed (its history was lost) while subscribed.
   */
  unrecovered: (info: SubscribedInfo) => void;
  join: (member: PresenceClient) => void;
  leave: (member: PresenceClient) => void;
  /** The server refused a subscribe (final when the state turns `failed`; retried for `unavailable`, `rate_limited`, `internal`). */
  error: (error: FanoutClientError) => void;
  state: (state: SubscriptionState, previous: SubscriptionState) => void;
}

/** Shorthand for listeners, given to `client.subscribe(channel, handlers)`. */
export interface SubscriptionHandlers {
  readonly onMessage?: SubscriptionEvents['message'];
  readonly onSubscribed?: SubscriptionEvents['subscribed'];
  readonly onUnrecovered?: SubscriptionEvents['unrecovered'];
  readonly onJoin?: SubscriptionEvents['join'];
  readonly onLeave?: SubscriptionEvents['leave'];
  readonly onError?: SubscriptionEvents['error'];
}

export interface SubscribeOptions {
  /** Resume from a position the app stored (e.g. across page loads): missed messages come first. */
  readonly since?: StreamPosition;
}

/** What a subscription needs from its client. */
export interface SubscriptionOwner {
  publish(channel: string, data: Json): Promise<{ offset: number }>;
  history(channel: string, page?: number | HistoryPage): Promise<HistoryResult>;
  presence(channel: string): Promise<readonly PresenceClient[]>;
  unsubscribe(subscription: Subscription): Promise<void>;
}

export class Subscription extends Emitter<SubscriptionEvents> {
  /** Resolves at the first confirmation; rejects if the subscription fails or ends before it. */
  readonly ready: Promise<SubscribedInfo>;

  private stateValue: SubscriptionState = 'subscribing';
  private readonly cursor: ChannelCursor;
  private confirmedOnce = false;
  private readyResolve!: (info: SubscribedInfo) => void;
  private readyReject!: (err: Error) => void;
  /** @internal The position asked for in the subscribe frame in flight. */
  asked: StreamPosition | undefined;
  /** @internal The id of the subscribe frame in flight. */
  requestId: number | undefined;
  /** @internal Retries of a subscribe the server answered with a retryable error. */
  retries = 0;

  /** @internal Made by `FanoutClient.subscribe`. */
  constructor(
    readonly channel: string,
    private readonly owner: SubscriptionOwner,
    handlers: SubscriptionHandlers = {},
    options: SubscribeOptions = {},
  ) {
    super();
    this.cursor = new ChannelCursor(options.since);
    this.ready = new Promise<SubscribedInfo>((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    // Marked handled: an app that never awaits `ready` must not get an unhandled rejection.
    this.ready.catch(() => {});
    if (handlers.onMessage) this.on('message', handlers.onMessage);
    if (handlers.onSubscribed) this.on('subscribed', handlers.onSubscribed);
    if (handlers.onUnrecovered) this.on('unrecovered', handlers.onUnrecovered);
    if (handlers.onJoin) this.on('join', handlers.onJoin);
    if (handlers.onLeave) this.on('leave', handlers.onLeave);
    if (handlers.onError) this.on('error', handlers.onError);
  }

  get state(): SubscriptionState {
    return this.stateValue;
  }

  /** The last position the app has seen; store it to resume later with `since`. */
  get position(): StreamPosition | undefined {
    return this.cursor.position;
  }

  /** True while the subscription may still deliver messages. */
  get active(): boolean {
    return this.stateValue === 'subscribing' || this.stateValue === 'subscribed';
  }

  /** Publishes to this channel; resolves with the message's offset when the server acks it. */
  publish(data: Json): Promise<{ offset: number }> {
    return this.owner.publish(this.channel, data);
  }

  /** The channel's latest messages, oldest first (at most `limit`). */
  history(page?: number | HistoryPage): Promise<HistoryResult> {
    return this.owner.history(this.channel, page);
  }

  /** Who is subscribed to the channel now, on every node. */
  presence(): Promise<readonly PresenceClient[]> {
    return this.owner.presence(this.channel);
  }

  /** Stops the subscription; no message is delivered after this call. */
  unsubscribe(): Promise<void> {
    return this.owner.unsubscribe(this);
  }

  /** Shorthand for `on('message', listener)`. */
  onMessage(listener: SubscriptionEvents['message']): Unlisten {
    return this.on('message', listener);
  }

  // ---------------------------------------------------------------- driven by the client

  /** @internal The position to resume from in the next subscribe frame. */
  sinceForNextSubscribe(): StreamPosition | undefined {
    return this.cursor.position;
  }

  /** @internal */
  handleMessage(frame: MessageFrame): void {
    if (!this.active) return;
    if (this.cursor.isOtherEpoch(frame.epoch)) {
      // The channel's stream restarted under us (its history was lost): its low offsets are new
      // messages, not duplicates, and what came between cannot be known. Say so, then go on.
      this.cursor.restart(frame.epoch!, frame.offset);
      this.emit('unrecovered', { channel: this.channel, offset: frame.offset - 1, epoch: frame.epoch!, outcome: 'unrecovered', resubscribed: false });
    }
    if (!this.cursor.accept(frame.offset)) return;
    this.emit('message', frame.data, { channel: this.channel, offset: frame.offset });
  }

  /** @internal */
  handleSubscribed(frame: SubscribedFrame): void {
    if (!this.active) return;
    const outcome = this.cursor.subscribed(frame, this.asked);
    const info: SubscribedInfo = {
      channel: this.channel,
      offset: frame.offset,
      epoch: frame.epoch,
      outcome,
      resubscribed: this.confirmedOnce,
      ...(frame.data !== undefined ? { data: frame.data } : {}),
    };
    this.confirmedOnce = true;
    this.requestId = undefined;
    this.retries = 0;
    this.setState('subscribed');
    this.readyResolve(info);
    this.emit('subscribed', info);
    if (outcome === 'unrecovered') this.emit('unrecovered', info);
  }

  /** @internal */
  handleMember(type: 'join' | 'leave', member: PresenceClient): void {
    if (this.active) this.emit(type, { client: member.client, user: member.user });
  }

  /** @internal The connection dropped: the server forgot this subscription. */
  handleDisconnect(): void {
    this.requestId = undefined;
    if (this.stateValue === 'subscribed') this.setState('subscribing');
  }

  /** @internal A retryable refusal: reported, retried by the client. */
  handleError(err: FanoutClientError): void {
    this.requestId = undefined;
    this.emit('error', err);
  }

  /** @internal A final refusal, or the end of the client. */
  fail(err: FanoutClientError): void {
    if (!this.active) return;
    this.requestId = undefined;
    this.setState('failed');
    this.readyReject(err);
    this.emit('error', err);
  }

  /** @internal */
  markUnsubscribed(err: Error): void {
    if (!this.active) return;
    this.requestId = undefined;
    this.setState('unsubscribed');
    this.readyReject(err);
  }

  private setState(state: SubscriptionState): void {
    const previous = this.stateValue;
    if (previous === state) return;
    this.stateValue = state;
    this.emit('state', state, previous);
  }
}
