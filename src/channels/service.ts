/**
 * What the channel endpoint and the HTTP API share: the stores, authorization, and the publish
 * path (one place that turns a publish into a stored, delivered message).
 */
import { BusUnavailableError } from '../errors.js';
import { createStores, type Stores } from '../history/create.js';
import { EPOCH_OPEN, payloadTail, type ChannelPosition, type PresenceEntry, type ReadResult } from '../history/store.js';
import { encodeEnvelope, EnvelopeKind } from '../node/envelope.js';
import type { FanoutNode } from '../node/node.js';
import { Authorizer, PatternList } from './patterns.js';

/**
 * Bus payloads of channel topics carry an empty origin: they come from the store (the Redis
 * script, or the memory store), and every node delivers them, the publishing node included, in
 * the order the bus hands them over, which is offset order.
 */
const STORE_ORIGIN = '';

export class ChannelService {
  readonly stores: Stores;
  readonly auth: Authorizer;
  /** Channels with presence (--presence). */
  readonly presenceChannels: PatternList;

  constructor(readonly node: FanoutNode, rejoin: () => void) {
    const { config } = node;
    const open = config.jwt ? [] : ['*'];
    this.auth = new Authorizer(config.anonymousSubscribe ?? open, config.anonymousPublish ?? open);
    this.presenceChannels = new PatternList(config.presence);
    this.stores = createStores(node, rejoin);
  }

  /** The bus topic of a channel. */
  topic(channel: string): string {
    return this.node.topic(`ch:${channel}`);
  }

  /**
   * Stores and delivers one message (`data` is its JSON text). Rejects with BusUnavailableError
   * when the bus or the store cannot take it: never a silent drop.
   */
  async publish(channel: string, data: string): Promise<ChannelPosition> {
    if (!this.stores.transport.connected) throw new BusUnavailableError('the bus is not connected');
    const head = encodeEnvelope(EnvelopeKind.CHANNEL, STORE_ORIGIN, Buffer.from(`{"type":"message","channel":${JSON.stringify(channel)},"offset":`));
    const position = await this.stores.channels.publish({ channel, topic: this.topic(channel), head, data });
    // Offsets start at 1 in each epoch and history keeps the last --history-size of them.
    this.node.metrics.historySize(channel, Math.min(position.offset, this.node.config.historySize));
    return position;
  }

  /** The latest `limit` messages (at most --history-size), oldest first. */
  history(channel: string, limit?: number): Promise<ReadResult> {
    const size = this.node.config.historySize;
    return this.stores.channels.read(channel, { limit: Math.min(limit ?? size, size) });
  }

  presenceList(channel: string): Promise<PresenceEntry[]> {
    return this.stores.presence.list(channel);
  }

  /** Sends a presence event (JSON text of a join/leave frame) to every node's subscribers of `channel`. */
  async presenceEvent(channel: string, frame: string): Promise<void> {
    await this.stores.transport.publish(this.topic(channel), encodeEnvelope(EnvelopeKind.PRESENCE, STORE_ORIGIN, Buffer.from(frame)));
  }

  /** A fence payload (see ReadOptions.fence). */
  fencePayload(token: string): Buffer {
    return encodeEnvelope(EnvelopeKind.CONTROL, STORE_ORIGIN, Buffer.from(`${FENCE}${token}`));
  }

  async close(): Promise<void> {
    await this.stores.presence.close().catch(() => {});
    await this.stores.channels.close();
    await this.stores.close();
  }
}

/** Body prefix of fence control messages on channel topics. */
export const FENCE = 'fence:';

/** A `message` frame's JSON: the same bytes the bus carries after the envelope (see store.ts). */
export function messageJson(channel: string, offset: number, epoch: string, data: string): string {
  return `{"type":"message","channel":${JSON.stringify(channel)},"offset":${offset}${EPOCH_OPEN}${epoch}${payloadTail(data)}`;
}

/** A `history` frame's (or HTTP body's) `messages` array; `data` is spliced in as stored JSON text. */
export function messagesJson(messages: ReadResult['messages']): string {
  return `[${messages.map((m) => `{"offset":${m.offset},"data":${m.data}}`).join(',')}]`;
}
