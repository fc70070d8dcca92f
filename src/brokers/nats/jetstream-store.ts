/**
 * The channel store over the JetStream log (jetstream.ts): offsets are stream sequences, the epoch
 * is the stream's identity, once-marks and idempotency keys ride on JetStream's message-id deduplication.
 */
import type { JetStreamLog } from './jetstream.js';
import { channelSubject, completeAfter } from './jetstream-layout.js';
import { logReadResult } from '../../stores/page.js';
import type { ChannelStore, OutgoingMessage, PublishResult, ReadOptions, ReadResult } from '../../stores/store.js';

/** The channel store over a {@link JetStreamLog}: offsets are stream sequences. */
export class JetStreamChannelStore implements ChannelStore {
  readonly kind = 'jetstream';

  constructor(
    private readonly log: JetStreamLog,
    private readonly nodeId: string,
    /**
     * A channel's own ttl in seconds (its namespace's `history-ttl`), when channels differ. The
     * stream has one max_age (the longest, config/namespaces.ts storedHistoryTtl); a channel whose
     * newest message is older than its own ttl is served as holding nothing (docs/brokers.md).
     */
    private readonly ttlOf?: (channel: string) => number,
  ) {}

  /**
   * {@link OutgoingMessage.once} and {@link OutgoingMessage.idempotency} ride on JetStream's
   * message-id deduplication (`Nats-Msg-Id`): a repeat within the stream's duplicate window is
   * not stored, and its ack says `duplicate` with the first one's sequence, the offset the repeat
   * is answered with; one later is stored again (docs/brokers.md).
   */
  async publish(message: OutgoingMessage): Promise<PublishResult> {
    const subject = channelSubject(this.log.layout, message.channel);
    // Sequences are the stream's: they do not say how many messages the channel keeps.
    const id = messageId(message);
    if (id === undefined) return { offset: await this.log.append(subject, message.data, this.nodeId), epoch: this.log.epoch, retained: null };
    const { seq, duplicate } = await this.log.store(subject, message.data, this.nodeId, id);
    return { offset: seq, epoch: this.log.epoch, retained: null, ...(duplicate ? { duplicate: true } : {}) };
  }

  /**
   * With a fence: the fence is stored first, so every message of the channel older than it is
   * read below and every newer one reaches the node after it. The read cannot be in the same step
   * as the fence, and messages stored in between may push older ones out of the stream
   * (max_msgs_per_subject), the one that was latest at the fence among them. So the read takes
   * what the stream holds of the channel now, past the fence too: `offset` is its newest
   * message, and the read returns only once the node has handed that one on, so the channel layer
   * has every message up to `offset` that came after the fence, and drops them (store.ts, `fence`).
   */
  async read(channel: string, options: ReadOptions = {}): Promise<ReadResult> {
    const bound = options.fence ? await this.log.appendControl(options.fence.topic, options.fence.payload) : undefined;
    const held = await this.log.messagesOf(channelSubject(this.log.layout, channel));
    const stream = await this.log.streamState();
    const lastMessage = held.messages[held.messages.length - 1];
    const offset = lastMessage ? lastMessage.offset : bound !== undefined ? bound - 1 : stream.last;
    if (bound !== undefined && offset > bound) await this.log.handed.reached(offset);
    const ttl = this.ttlOf?.(channel) ?? 0;
    if (lastMessage && ttl > 0 && held.lastAt < Date.now() - ttl * 1000) {
      // Past the channel's own ttl: its history is gone for readers; the stream keeps it until its max_age.
      return logReadResult([], { offset, epoch: stream.epoch, complete: lastMessage.offset }, options);
    }
    const all = held.messages;
    // How many the stream held, not how many were read: a flood may have pushed older ones out
    // meanwhile (then the subject was full, and nothing below the first read is vouched for).
    const complete = completeAfter({ first: all[0]?.offset, count: held.count, perSubject: this.log.perSubject, streamFirst: stream.first });
    return logReadResult(all, { offset, epoch: stream.epoch, complete }, options);
  }

  async close(): Promise<void> {}
}

/**
 * The `Nats-Msg-Id` of a message: `<source>@<position>` for a once-mark, `idem <channel> <key>`
 * for an idempotency key (a channel name has no space, so ids of two channels never meet).
 */
function messageId(message: OutgoingMessage): string | undefined {
  if (message.once) return `${message.once.source}@${message.once.position}`;
  if (message.idempotency) return `idem ${message.channel} ${message.idempotency.key}`;
  return undefined;
}
