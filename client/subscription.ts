/**
 * One channel subscription: its cursor (what the app has seen), its state and its events. The
 * client drives it; the app listens to it and may publish, read history or presence through it.
 */
import type { DeltaMessageFrame, Json, MessageFrame, PresenceClient, StreamPosition, SubscribedFrame } from '../src/protocol/frames.js';
import { dataTextOf } from '../src/protocol/message-text.js';
import { ChannelCursor, type SubscribeOutcome } from './cursor.js';
import { Emitter, type Unlisten } from './emitter.js';
import { FanoutClientError } from './errors.js';
import { applyFossilDelta } from './fossil.js';

/** How to publish (docs/client.md, "Publishing safely"). */
export interface PublishOptions {
  /**
   * Makes the publish safe to retry (1–128 printable ASCII characters, no space; e.g. an order id):
   * sent when the connection dropped, it is sent again with the same key after the reconnect, and
   * the server stores it once within the channel's idempotency-window (default 300 s). Without a
   * key such a publish rejects with `disconnected`, since resending it might store it twice.
   */
  readonly idempotencyKey?: string;
}

/** A publish's answer: its offset; `duplicate` when the server had the key already (nothing stored again, the offset is the first publish's). */
export interface PublishAck {
  readonly offset: number;
  readonly duplicate?: true;
}

/** Which page of history to read: the latest `limit` messages older than offset `before`. */
export interface HistoryPage {
  readonly limit?: number;
  /** The first offset of the page read before: the next page back. */
  readonly before?: number;
}

/** A page of history, oldest first; `more` when older messages remain (read them with `before: messages[0].offset`). */
export interface HistoryResult<T = Json> {
  readonly epoch: string;
  readonly messages: Array<{ readonly offset: number; readonly data: T }>;
  readonly more: boolean;
}

/**
 * `T` when its values survive `JSON.stringify` as themselves: strings, numbers, booleans, null,
 * and arrays and objects of those, whether the objects are typed with `type` or `interface`;
 * `never` for functions, symbols, bigints, `undefined` and objects with methods (`Date`, `Map`).
 * Optional properties are fine (JSON leaves them out). What `publish` accepts: `data: T & JsonCompatible<T>`.
 */
export type JsonCompatible<T> = T extends string | number | boolean | null
  ? T
  : T extends bigint | symbol | undefined | ((...args: never[]) => unknown)
    ? never
    : T extends object
      ? { [K in keyof T]: JsonCompatible<T[K]> }
      : never;

/** What a subscription's `publish` takes: any JSON value while the subscription is untyped (`Json`), else its own `T`. */
export type PublishBound<T> = [Json] extends [T] ? unknown : T;


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
  /** A last-value channel's (`cache: true`) latest message, when nothing was recovered: the `message` events continue right after it. */
  readonly latest?: { readonly offset: number; readonly data: Json };
}

/** A subscription's events; `T` is the type of its messages' data (`subscribe<T>()`, default `Json`). */
export interface SubscriptionEvents<T = Json> {
  /** A message the app has not seen before, in offset order. Its data is typed `T` as the app said: the SDK does not check it. */
  message: (data: T, context: MessageContext) => void;
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
  /**
   * The server ended the subscription (final, the state turns `unsubscribed`): `server`, the back
   * end took the user out (`POST /api/users/{user}/unsubscribe`); `disconnected`, a subscription
   * the server made ended with its connection.
   */
  unsubscribed: (info: { readonly channel: string; readonly reason: string }) => void;
  state: (state: SubscriptionState, previous: SubscriptionState) => void;
}

/** Shorthand for listeners, given to `client.subscribe(channel, handlers)`. */
export interface SubscriptionHandlers<T = Json> {
  readonly onMessage?: SubscriptionEvents<T>['message'];
  readonly onSubscribed?: SubscriptionEvents['subscribed'];
  readonly onUnrecovered?: SubscriptionEvents['unrecovered'];
  readonly onJoin?: SubscriptionEvents['join'];
  readonly onLeave?: SubscriptionEvents['leave'];
  readonly onError?: SubscriptionEvents['error'];
}

export interface SubscribeOptions {
  /** Resume from a position the app stored (e.g. across page loads): missed messages come first. */
  readonly since?: StreamPosition;
  /** A subscription token for a channel the connection's token does not allow (docs/auth.md): called for every subscribe and before its expiry. */
  readonly token?: () => string | Promise<string>;
  /**
   * Ask for delta compression: on a channel whose namespace has `delta: fossil`, the server sends
   * live messages after the first as fossil deltas against the previous one, and the SDK applies
   * them, so `message` listeners still get whole data (docs/client.md). Other channels ignore it.
   */
  readonly delta?: boolean;
}

/** What a subscription needs from its client. */
export interface SubscriptionOwner {
  /** @internal `data` is JSON-compatible: the subscription's `publish` checked its type. */
  publishData(channel: string, data: unknown, options?: PublishOptions): Promise<PublishAck>;
  history(channel: string, page?: number | HistoryPage): Promise<HistoryResult<unknown>>;
  presence(channel: string): Promise<PresenceClient[]>;
  unsubscribe(subscription: Subscription<unknown>): Promise<void>;
  /** A delta could not be applied: subscribe again from the subscription's position (what it missed comes whole). */
  resync(subscription: Subscription<unknown>): void;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** One channel subscription; `T` is the type of its messages' data (`client.subscribe<T>(…)`, default `Json`). */
export class Subscription<T = Json> extends Emitter<SubscriptionEvents<T>> {
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
  /**
   * True for a subscription the server made (`POST /api/users/{user}/subscribe`), which the app
   * did not ask for: the client's `subscription` event hands it over. It lasts as long as its
   * connection (it is not resubscribed after a reconnect).
   */
  server = false;
  /** @internal Where its subscription tokens come from, when it needs them. */
  readonly tokenSource: (() => string | Promise<string>) | undefined;
  /** @internal The refresh of its subscription token, while one is scheduled (the client's). */
  refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /** @internal The connection attempt (the client's generation) its token is being fetched for, so one subscribe is not sent twice. */
  fetchingToken: number | undefined;
  /** @internal The app asked for deltas (`subscribe(…, …, { delta: true })`). */
  readonly delta: boolean;
  /** The UTF-8 bytes of the last message's `data` text: the base of the next delta. */
  private deltaBase: Uint8Array | undefined;
  private latestValue: { readonly offset: number; readonly data: T } | undefined;

  /** @internal Made by `FanoutClient.subscribe`. */
  constructor(
    readonly channel: string,
    private readonly owner: SubscriptionOwner,
    handlers: SubscriptionHandlers<T> = {},
    options: SubscribeOptions = {},
  ) {
    super();
    this.cursor = new ChannelCursor(options.since);
    this.tokenSource = options.token;
    this.delta = options.delta === true;
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

  /**
   * The channel's newest message the app knows: a last-value channel's `latest` from the
   * server's confirmation, then each `message` as it comes; undefined before either.
   */
  get latest(): { readonly offset: number; readonly data: T } | undefined {
    return this.latestValue;
  }

  /** The last position the app has seen; store it to resume later with `since`. */
  get position(): StreamPosition | undefined {
    return this.cursor.position;
  }

  /** True while the subscription may still deliver messages. */
  get active(): boolean {
    return this.stateValue === 'subscribing' || this.stateValue === 'subscribed';
  }

  /**
   * Publishes to this channel; resolves with the message's offset when the server acks it. A typed
   * subscription (`subscribe<ChatMessage>()`) takes its own type; an untyped one any JSON-compatible value.
   * With `idempotencyKey` it is retried after a reconnect and stored once ({@link PublishOptions}).
   */
  publish<D extends PublishBound<T> = T>(data: D & JsonCompatible<D>, options?: PublishOptions): Promise<PublishAck> {
    return this.owner.publishData(this.channel, data, options);
  }

  /** The channel's latest messages, oldest first (at most `limit`). */
  history(page?: number | HistoryPage): Promise<HistoryResult<T>> {
    return this.owner.history(this.channel, page) as Promise<HistoryResult<T>>;
  }

  /** Who is subscribed to the channel now, on every node. */
  presence(): Promise<PresenceClient[]> {
    return this.owner.presence(this.channel);
  }

  /** Stops the subscription; no message is delivered after this call. */
  unsubscribe(): Promise<void> {
    return this.owner.unsubscribe(this as Subscription<unknown>);
  }

  /** Shorthand for `on('message', listener)`. */
  onMessage(listener: SubscriptionEvents<T>['message']): Unlisten {
    return this.on('message', listener);
  }

  // ---------------------------------------------------------------- driven by the client

  /** @internal The position to resume from in the next subscribe frame. */
  sinceForNextSubscribe(): StreamPosition | undefined {
    return this.cursor.position;
  }

  /**
   * @internal `text` is the frame as received: a whole message's `data` text is kept from it
   * byte for byte, as the base of the next delta.
   */
  handleMessage(frame: MessageFrame | DeltaMessageFrame, text: string): void {
    if (!this.active) return;
    if ('delta' in frame) {
      const data = this.applyDelta(frame);
      if (data === undefined) return;
      frame = { type: 'message', channel: frame.channel, offset: frame.offset, epoch: frame.epoch, data };
    } else if (this.delta) {
      const data = dataTextOf(text);
      this.deltaBase = data === undefined ? undefined : utf8Encoder.encode(data);
    }
    if (this.cursor.isOtherEpoch(frame.epoch)) {
      // The channel's stream restarted under us (its history was lost): its low offsets are new
      // messages, not duplicates, and what came between cannot be known. Say so, then go on.
      this.cursor.restart(frame.epoch!, frame.offset);
      this.emit('unrecovered', { channel: this.channel, offset: frame.offset - 1, epoch: frame.epoch!, outcome: 'unrecovered', resubscribed: false });
    }
    if (!this.cursor.accept(frame.offset)) return;
    // The data is what was published; `T` is the app's word for its shape.
    this.latestValue = { offset: frame.offset, data: frame.data as T };
    this.emit('message', frame.data as T, { channel: this.channel, offset: frame.offset });
  }

  /**
   * The data of a delta frame, applied to the previous message's; undefined (reported as
   * `bad_frame`, and the subscription resumed from its position) when it cannot be applied.
   */
  private applyDelta(frame: DeltaMessageFrame): Json | undefined {
    try {
      if (frame.encoding !== 'fossil') throw new Error(`unknown delta encoding ${JSON.stringify(frame.encoding)}`);
      if (this.deltaBase === undefined) throw new Error('no previous message to apply it to');
      const bytes = applyFossilDelta(this.deltaBase, utf8Encoder.encode(frame.delta));
      const data = JSON.parse(utf8Decoder.decode(bytes)) as Json;
      this.deltaBase = bytes;
      return data;
    } catch (err) {
      this.deltaBase = undefined;
      // A resubscription is on its way (this one's frames from before it are moot).
      if (this.requestId !== undefined) return undefined;
      this.emit('error', new FanoutClientError('bad_frame', `could not apply the delta of offset ${frame.offset} on "${this.channel}" (${(err as Error).message}); resubscribing from the last message`, { channel: this.channel }));
      this.owner.resync(this as Subscription<unknown>);
      return undefined;
    }
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
      ...(frame.latest !== undefined ? { latest: frame.latest } : {}),
    };
    if (frame.latest !== undefined) this.latestValue = { offset: frame.latest.offset, data: frame.latest.data as T };
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
    if (this.active) this.emit(type, member.meta === undefined ? { client: member.client, user: member.user } : { client: member.client, user: member.user, meta: member.meta });
  }

  /** @internal The connection dropped: the server forgot this subscription. */
  handleDisconnect(): void {
    this.requestId = undefined;
    this.stopRefresh();
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
    this.stopRefresh();
    this.setState('failed');
    this.readyReject(err);
    this.emit('error', err);
  }

  /** @internal */
  markUnsubscribed(err: Error): void {
    if (!this.active) return;
    this.requestId = undefined;
    this.stopRefresh();
    this.setState('unsubscribed');
    this.readyReject(err);
  }

  /** @internal The server ended it (`reason`: `server`, or `disconnected` for a server-made one). */
  endedByServer(err: Error, reason: string): void {
    if (!this.active) return;
    this.markUnsubscribed(err);
    this.emit('unsubscribed', { channel: this.channel, reason });
  }

  /** @internal */
  stopRefresh(): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
  }

  private setState(state: SubscriptionState): void {
    const previous = this.stateValue;
    if (previous === state) return;
    this.stateValue = state;
    this.emit('state', state, previous);
  }
}
