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
import type { ChannelStore, OutgoingMessage, PresenceEntry, PresenceStore, PublishResult, ReadOptions, ReadResult } from '../stores/store.js';
import { encodeEnvelope, EnvelopeKind } from '../protocol/envelope.js';
import type { Topics } from '../node/topics.js';
import type { HistoryMetrics } from './metrics.js';
import { Authorizer, PatternList } from './patterns.js';

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

export class ChannelService {
  readonly auth: Authorizer;
  /** Channels with presence (--presence). */
  readonly presenceChannels: PatternList;
  readonly channels: ChannelStore;
  readonly presence: PresenceStore;
  readonly link: Topics;
  private readonly config: ChannelsConfig;
  private lastStoreError = 0;

  constructor(private readonly options: ChannelServiceOptions) {
    const { config } = options;
    this.config = config;
    this.channels = options.channels;
    this.presence = options.presence;
    this.link = options.link;
    // Open to all by default only when nobody says who clients are: no JWT, no connect hook. With
    // a subscribe hook, the back end decides what the patterns leave out, so they leave out all.
    const authenticated = config.jwt || config.connectHook !== undefined;
    const open = (closed: boolean): string[] => (closed ? [] : ['*']);
    this.auth = new Authorizer(
      config.anonymousSubscribe ?? open(authenticated || config.subscribeHook !== undefined),
      config.anonymousPublish ?? open(authenticated),
    );
    this.presenceChannels = new PatternList(config.presence);
  }

  get historySize(): number {
    return this.config.historySize;
  }

  /** The bus topic of a channel. */
  topic(channel: string): string {
    return channelTopic(this.config.busPrefix, channel);
  }

  /**
   * Stores and delivers one message (`data` is its JSON text). Rejects with BusUnavailableError
   * when the bus or the store cannot take it: never a silent drop. With `once` (a message from a
   * log that may hand it over again), the store publishes it only past the source's last position
   * ({@link OutgoingMessage.once}) and otherwise resolves with `duplicate`.
   */
  async publish(channel: string, data: string, once?: OutgoingMessage['once']): Promise<PublishResult> {
    if (!this.link.connected) throw new BusUnavailableError('the bus is not connected');
    const message: OutgoingMessage = { channel, topic: this.topic(channel), origin: this.options.nodeId, data, ...(once ? { once } : {}) };
    const position = await this.toStore(EnvelopeKind.CHANNEL, () => this.channels.publish(message));
    if (position.duplicate) return position;
    // Offsets that count 1, 2, 3… in each epoch say how many of the last --history-size are kept.
    const retained = position.retained === undefined ? Math.min(position.offset, this.config.historySize) : position.retained;
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
   * The latest `limit` messages (at most --history-size) older than `before`, oldest first, at
   * most `maxBytes` of data (always at least one message); `more` says whether older ones remain.
   */
  history(channel: string, page: { readonly limit?: number; readonly before?: number; readonly maxBytes: number }): Promise<ReadResult> {
    const size = this.config.historySize;
    return this.channels.read(channel, { limit: Math.min(page.limit ?? size, size), before: page.before, maxBytes: page.maxBytes });
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
