/**
 * What the channel endpoint and the HTTP API share: the stores, authorization, and the publish
 * path (one place that turns a publish into a stored, delivered message).
 *
 * Delivery model: ordered by the store. A publish goes to the store, which assigns the offset,
 * appends to history and puts the message on the channel's topic in one step (the Redis script's
 * PUBLISH, or the memory store synchronously); every node, the publisher's included, delivers
 * what the topic brings, in the order the broker hands it over, which is offset order.
 */
import type { Config } from '../config/schema.js';
import { TIMINGS } from '../config/defaults.js';
import { BusUnavailableError, errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';
import type { ChannelStore, OutgoingMessage, PresenceEntry, PresenceStore, PublishResult, ReadOptions, ReadResult, StoredMessage } from '../stores/store.js';
import { encodeEnvelope, EnvelopeKind } from '../protocol/envelope.js';
import type { Topics } from '../node/topics.js';
import type { HistoryMetrics } from './metrics.js';
import { Authorizer } from './patterns.js';
import { Namespaces, storedHistorySize, type ChannelOptions } from '../config/namespaces.js';

/** The bus topic of `channel` under --bus-prefix `prefix`. */
export function channelTopic(prefix: string, channel: string): string {
  return `${prefix}:ch:${channel}`;
}

/** The channel a bus topic of {@link channelTopic} names; undefined for another topic. */
export function channelOfTopic(prefix: string, topic: string): string | undefined {
  const head = channelTopic(prefix, '');
  return topic.startsWith(head) ? topic.slice(head.length) : undefined;
}

/** Body prefix of fence control messages on channel topics. */
export const FENCE = 'fence:';

/** The flags the channel layer reads. */
export type ChannelsConfig = Pick<
  Config,
  | 'busPrefix'
  | 'historySize'
  | 'historyTtl'
  | 'idempotencyWindow'
  | 'namespaces'
  | 'publishHook'
  | 'maxSubscriptions'
  | 'rateLimit'
  | 'presence'
  | 'anonymousSubscribe'
  | 'anonymousPublish'
  | 'jwt'
  | 'connectHook'
  | 'subscribeHook'
>;

/**
 * How the service counts what a channel store puts on the broker itself, as a topic router counts
 * its own publishes (`fanout_messages_out_total{kind}`, `fanout_bus_errors_total{operation}`):
 * the node's bus metrics, which the composition root hands over.
 */
export interface StorePublishCounts {
  /** One message of envelope `kind` went on the broker: a plain number, per message. */
  published(kind: EnvelopeKind): void;
  busError(operation: 'publish'): void;
}

export interface ChannelServiceOptions {
  readonly nodeId: string;
  readonly config: ChannelsConfig;
  readonly channels: ChannelStore;
  readonly presence: PresenceStore;
  /** The route channel topics travel: the store's own pub/sub (the node's bus, or the history Redis). */
  readonly link: Topics;
  /** The history totals (channels/metrics.ts), reported after each publish. */
  readonly history: Pick<HistoryMetrics, 'channelSize'>;
  readonly publishes: StorePublishCounts;
  readonly logger: Logger;
}

/** Which channels have presence: a namespace's `presence`, else --presence. */
export interface PresenceChannels {
  matches(channel: string): boolean;
  /** No channel has presence (no pattern, no namespace says so): no heartbeats needed. */
  readonly empty: boolean;
}

export class ChannelService {
  readonly auth: Authorizer;
  /** The options each channel gets from its namespace, else the top-level flags (config/namespaces.ts). */
  readonly namespaces: Namespaces;
  /** Channels with presence. */
  readonly presenceChannels: PresenceChannels;
  readonly channels: ChannelStore;
  readonly presence: PresenceStore;
  readonly link: Topics;
  private readonly config: ChannelsConfig;
  private lastStoreError = 0;
  /** What the store keeps per channel: the largest history size of any namespace (config/namespaces.ts). */
  private readonly storedSize: number;

  constructor(private readonly options: ChannelServiceOptions) {
    const { config } = options;
    this.config = config;
    this.channels = options.channels;
    this.presence = options.presence;
    this.link = options.link;
    // The anonymous rights and their defaults (open only when nobody says who clients are) are
    // decided per channel, by its namespace or the --anonymous-* patterns.
    const namespaces = (this.namespaces = new Namespaces(config));
    this.storedSize = storedHistorySize(config);
    this.auth = new Authorizer(
      (channel) => namespaces.resolve(channel).anonymousSubscribe,
      (channel) => namespaces.resolve(channel).anonymousPublish,
    );
    this.presenceChannels = {
      matches: (channel) => namespaces.resolve(channel).presence,
      empty: config.presence.length === 0 && !config.namespaces.some((ns) => ns.presence === true),
    };
  }

  /** The options that apply to `channel` (its namespace's, else the top-level ones). */
  channelOptions(channel: string): ChannelOptions {
    return this.namespaces.resolve(channel);
  }

  /** The bus topic of a channel. */
  topic(channel: string): string {
    return channelTopic(this.config.busPrefix, channel);
  }

  /**
   * Stores and delivers one message (`data` is its JSON text). Rejects with BusUnavailableError
   * when the bus or the store cannot take it: never a silent drop. With `once` (a message from a
   * log that may hand it over again), the store publishes it only past the source's last position
   * ({@link OutgoingMessage.once}) and otherwise resolves with `duplicate`. With an
   * `idempotencyKey` (a client's or back end's `idempotency_key`), a repeat within the channel's
   * idempotency-window resolves with `duplicate` and the first publish's offset, nothing stored.
   */
  async publish(channel: string, data: string, once?: OutgoingMessage['once'], idempotencyKey?: string): Promise<PublishResult> {
    if (!this.link.connected) throw new BusUnavailableError('the bus is not connected');
    const idempotency = idempotencyKey === undefined ? undefined : { key: idempotencyKey, window: this.namespaces.resolve(channel).idempotencyWindow };
    const message: OutgoingMessage = { channel, topic: this.topic(channel), origin: this.options.nodeId, data, ...(once ? { once } : {}), ...(idempotency ? { idempotency } : {}) };
    const position = await this.toStore(EnvelopeKind.CHANNEL, () => this.channels.publish(message));
    if (position.duplicate) return position;
    // Offsets that count 1, 2, 3… in each epoch say how many of the last --history-size are kept.
    // A store sized for the largest namespace counts what it keeps; the channel serves at most its own size.
    const size = this.namespaces.resolve(channel).historySize;
    const retained = position.retained === undefined ? Math.min(position.offset, size) : position.retained === null ? null : Math.min(position.retained, size);
    if (retained !== null) this.options.history.channelSize(channel, retained);
    return position;
  }

  /** Reads the store; a read with a fence puts a control message on the channel's topic. */
  read(channel: string, options: ReadOptions): Promise<ReadResult> {
    if (!options.fence) return this.channels.read(channel, options);
    return this.toStore(EnvelopeKind.CONTROL, () => this.channels.read(channel, options));
  }

  /**
   * A store call that puts one `kind` message on the broker (a publish, or a read's fence),
   * counted as the topic router counts its own publishes: `fanout_messages_out_total{kind}` once
   * it is done, `fanout_bus_errors_total{op="publish"}` and a warning (at most every 10 s) when
   * it fails, and always rejected as a BusUnavailableError, never with the store's own error.
   */
  private async toStore<T>(kind: EnvelopeKind, call: () => Promise<T>): Promise<T> {
    const { publishes, logger } = this.options;
    try {
      const result = await call();
      publishes.published(kind);
      return result;
    } catch (err) {
      publishes.busError('publish');
      const now = Date.now();
      if (now - this.lastStoreError > TIMINGS.publishErrorLogMs) {
        this.lastStoreError = now;
        logger.warn({ err: errorMessage(err), store: this.channels.kind }, 'channel store publish failed (logged at most every 10 s)');
      }
      throw err instanceof BusUnavailableError ? err : new BusUnavailableError(errorMessage(err), { cause: err });
    }
  }

  /**
   * The latest `limit` messages (at most the channel's history size) older than `before`, oldest first, at
   * most `maxBytes` of data (always at least one message); `more` says whether older ones remain.
   */
  async history(channel: string, page: { readonly limit?: number; readonly before?: number; readonly maxBytes: number }): Promise<ReadResult> {
    const size = this.namespaces.resolve(channel).historySize;
    const result = await this.channels.read(channel, { limit: Math.min(page.limit ?? size, size), before: page.before, maxBytes: page.maxBytes });
    if (size >= this.storedSize) return result;
    // The store keeps the largest namespace's size: paging back stops at this channel's own last
    // `size` (offsets count 1, 2, 3… in an epoch, so they are the ones above head − size).
    const oldest = result.offset - size + 1;
    const messages = result.messages.filter((m) => m.offset >= oldest);
    return { ...result, messages, more: result.more && messages.length > 0 && messages[0]!.offset > oldest };
  }

  /**
   * The channel's latest message with its position, or undefined when it has none to serve: a
   * last-value channel (`cache: true`) keeps it whatever its history size; another channel has
   * it while its history holds it (none with history-size 0).
   */
  async latest(channel: string): Promise<(StoredMessage & { readonly epoch: string }) | undefined> {
    const options = this.namespaces.resolve(channel);
    if (!options.cache && options.historySize === 0) return undefined;
    const result = await this.channels.read(channel, { limit: 1 });
    const newest = result.messages.at(-1);
    return newest !== undefined ? { offset: newest.offset, data: newest.data, epoch: result.epoch } : undefined;
  }

  presenceList(channel: string): Promise<PresenceEntry[]> {
    return this.presence.list(channel);
  }

  /** Sends a presence event (JSON text of a join/leave frame) to every node's subscribers of `channel`. */
  presenceEvent(channel: string, frame: string): Promise<void> {
    return this.link.publish(this.topic(channel), EnvelopeKind.PRESENCE, Buffer.from(frame));
  }

  /** A fence payload (see ReadOptions.fence). */
  fence(channel: string, token: string): NonNullable<ReadOptions['fence']> {
    return { topic: this.topic(channel), payload: encodeEnvelope(EnvelopeKind.CONTROL, this.options.nodeId, Buffer.from(`${FENCE}${token}`)) };
  }

  async close(): Promise<void> {
    await this.presence.close().catch(() => {});
    await this.channels.close();
  }
}
