/**
 * This node's channels: which local sockets are subscribed to what, and the broadcast path.
 *
 * The node subscribes to a channel's bus topic while it has local subscribers. A bus payload of
 * a channel is the complete `message` (or `join`/`leave`) frame: it is framed once per node and
 * queued for every live subscriber (no JSON work per message, none per subscriber).
 *
 * Joining the live stream without loss or duplicates: a new subscription is first "joining". It
 * buffers every frame of the channel while the store is read; the read puts a fence on the
 * channel's stream at the exact point of the read. Frames buffered before the fence are in the
 * read's result (or older); frames after it are newer. Once both the read's result and the fence
 * are in, the subscriber gets the recovered messages, the `subscribed` reply, the frames buffered
 * after the fence, and then becomes live. A store may read past its fence (JetStream, store.ts):
 * the buffered messages the read already returned are dropped by offset ({@link inRead}).
 *
 * Joins are batched per channel: every subscription that arrives while a read is in flight waits
 * for the next one, so a reconnect storm of N clients on a channel costs a few reads, not N. The
 * batch's read returns the retained history once; each client takes its own slice of it.
 */
import type { ChannelOptions } from '../config/namespaces.js';
import type { ChannelPosition, ReadResult } from '../stores/store.js';
import { MessageScanner } from '../protocol/message-frame.js';
import type { Client } from '../transport/client.js';
import type { Json, SubscribeFrame } from '../protocol/frames.js';
import { ChannelDelta, type ScannedMessage } from './delta.js';


/** One client's subscription to one channel. */
export class Subscription {
  /** Frames that came while joining; null once live. */
  buffer: HeldFrame[] | null = [];
  /** Index in {@link buffer} at which its batch's fence arrived; -1 before. */
  fenceAt = -1;
  /** Its batch, once the batch's read and fence are both in; cleared when it goes live. */
  ready: JoinBatch | undefined;
  /** Bytes of its client's request budget held for its recovery until it goes live. */
  reserved = 0;
  /** The subscribe hook's `data`, for the `subscribed` frame; cleared when it goes live. */
  data: { readonly value: Json } | undefined;
  /** Made by the server (`POST /api/users/{user}/subscribe`): its `subscribed` frame says `"server":true`. */
  server = false;
  /**
   * What allowed it: the identity's patterns (re-checked when the identity is renewed), the
   * subscribe hook, or a subscription token (then {@link expiresAt} is the token's `exp`).
   */
  grant: 'patterns' | 'hook' | 'token' = 'patterns';
  /** A token-held subscription's end (ms since the epoch), unless refreshed first. */
  expiresAt: number | undefined;

  constructor(
    readonly client: Client,
    readonly channel: LocalChannel,
    readonly request: SubscribeFrame,
  ) {}

  get live(): boolean {
    return this.buffer === null;
  }
}

/**
 * A frame held while joining or catching up: a `message` frame with its offset and epoch, or
 * another frame (presence) without.
 */
export interface HeldFrame {
  readonly frame: Buffer;
  readonly offset?: number;
  readonly epoch?: string;
}

/**
 * True when `held`, a frame that came after the fence, is a message the read already returned:
 * a store that read past its fence (store.ts, `fence`) has the node get those before the read
 * returns. Other stores read at the fence, and every message after it is newer.
 */
export function inRead(held: HeldFrame, result: ChannelPosition): boolean {
  return held.offset !== undefined && held.offset <= result.offset && held.epoch === result.epoch;
}

/** Subscriptions of one channel that share one read of the store and one fence. */
export interface JoinBatch {
  readonly token: string;
  readonly subs: readonly Subscription[];
  result: ReadResult | undefined;
  fenced: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Recovered `message` frames, built once per batch and shared by its subscribers. */
  readonly frames: Map<number, Buffer>;
}

/**
 * The node catching up on a channel after its bus connection came back: live frames are held
 * from the moment the route reports `disconnected` (a route may bring messages again before it
 * reports `connected`: NATS resubscribes at once, JetStream is ensured after), history after the
 * position of that moment is read (with a fence, as for a joining subscription), then the missed
 * messages and the held frames go to the live subscribers.
 */
export interface CatchUp {
  readonly token: string;
  /** The last position delivered before the outage: the read starts after it. */
  readonly since: { readonly offset: number; readonly epoch: string };
  /** The read was started (the route is connected again). */
  started: boolean;
  readonly buffer: HeldFrame[];
  fenceAt: number;
  result: ReadResult | undefined;
  timer: NodeJS.Timeout | undefined;
}

/** A channel with local subscribers. */
export class LocalChannel {
  /** Live subscribers: the broadcast set. */
  readonly live = new Set<Client>();
  /** Subscriptions joining (buffering frames). */
  readonly joining = new Set<Subscription>();
  /** Joining subscriptions waiting for the next read. */
  waiting: Subscription[] = [];
  /** The read in flight. */
  batch: JoinBatch | undefined;
  /** The last message this node delivered live (offset and epoch), once known. */
  private readonly position: MessageScanner;
  /** The bus dropped since the last message: what came meanwhile may be missing. */
  stale = false;
  catchUp: CatchUp | undefined;
  /** Delta compression (namespace `delta: fossil`): who holds which base (delta.ts); undefined for other channels. */
  readonly delta: ChannelDelta | undefined;

  constructor(
    readonly name: string,
    readonly topic: string,
    /** The channel's options (its namespace's, else the top-level ones), resolved once when the node first holds it. */
    readonly options: ChannelOptions,
  ) {
    this.position = new MessageScanner(name);
    this.delta = options.delta === 'fossil' ? new ChannelDelta() : undefined;
  }

  /** Presence is kept for the channel (its namespace's `presence`, else --presence). */
  get presence(): boolean {
    return this.options.presence;
  }

  get offset(): number {
    return this.position.offset;
  }

  get epoch(): string | undefined {
    return this.position.epoch;
  }

  /** Notes the offset and epoch of a message payload: a scan of a few bytes per message per node, no JSON parsing. False when the body is not laid out as a message. */
  track(body: Buffer): boolean {
    return this.position.scan(body);
  }

  /** Where the parts of the body last {@link track}ed are. */
  get scanned(): ScannedMessage {
    return this.position;
  }

  setPosition(offset: number, epoch: string): void {
    this.position.set(offset, epoch);
  }

  get empty(): boolean {
    return this.live.size === 0 && this.joining.size === 0;
  }
}

/** A client's subscriptions, by channel. */
export type ClientSubscriptions = Map<string, Subscription>;

/**
 * Each connection's subscriptions, made at its first subscribe. Keyed weakly by the connection
 * (a Client belongs to one node, so nodes in one process do not share entries): a late answer
 * about a closed connection cannot keep anything alive. The endpoint takes the entry away when
 * the connection closes ({@link takeSubscriptions}).
 */
const byClient = new WeakMap<Client, ClientSubscriptions>();

/** `client`'s subscriptions, made empty on first use. */
export function subscriptionsOf(client: Client): ClientSubscriptions {
  let subs = byClient.get(client);
  if (!subs) byClient.set(client, (subs = new Map()));
  return subs;
}

/** True when `client` is subscribed to `channel` (makes nothing for a client that never subscribed). */
export function isSubscribed(client: Client, channel: string): boolean {
  return byClient.get(client)?.has(channel) ?? false;
}

/** The channels `client` is subscribed to (makes nothing for a client that never subscribed). */
export function subscribedChannels(client: Client): string[] {
  const subs = byClient.get(client);
  return subs ? [...subs.keys()] : [];
}

/** Removes and returns `client`'s subscriptions: its connection closed, the caller ends each. */
export function takeSubscriptions(client: Client): ClientSubscriptions | undefined {
  const subs = byClient.get(client);
  byClient.delete(client);
  return subs;
}
